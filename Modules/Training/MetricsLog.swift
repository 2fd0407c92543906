import Foundation

/// `metrics.jsonl`: one JSON object per line (``MetricsLine``), keys sorted, non-finite numbers
/// as `null`.
///
/// Lines are appended as they happen; ``synchronize()`` flushes them to disk (a checkpoint
/// does, and records ``bytes``, so a resumed run cuts the lines written after its checkpoint).
public final class MetricsLog {
  public let url: URL
  let handle: FileHandle
  /// The file's length in bytes.
  public private(set) var bytes: UInt64

  /// Opens (creating) `url` for appending; `truncatingTo` first cuts it to that many bytes.
  public init(url: URL, truncatingTo length: UInt64? = nil) throws {
    self.url = url
    let fm = FileManager.default
    if !fm.fileExists(atPath: url.path) {
      guard fm.createFile(atPath: url.path, contents: nil) else {
        throw TrainingError.runFolder("cannot create '\(url.path)'; check that the run folder is writable")
      }
    }
    do {
      handle = try FileHandle(forUpdating: url)
      if let length {
        let size = try handle.seekToEnd()
        guard length <= size else {
          throw TrainingError.runFolder(
            "'\(url.path)' is shorter (\(size) bytes) than its checkpoint says (\(length)); the run folder was altered")
        }
        try handle.truncate(atOffset: length)
      }
      bytes = try handle.seekToEnd()
    } catch let e as TrainingError {
      throw e
    } catch {
      throw TrainingError.runFolder("cannot open '\(url.path)' (\(error.localizedDescription))")
    }
  }

  deinit { try? handle.close() }

  /// Appends one line.
  public func write(_ line: MetricsLine) throws {
    var data = try Self.encoder.encode(line)
    data.append(0x0A)
    try handle.write(contentsOf: data)
    bytes += UInt64(data.count)
  }

  static let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return e
  }()

  /// Flushes the appended lines to disk.
  public func synchronize() throws { try handle.synchronize() }

  /// Every line of a metrics file, typed. Throws naming the first line that is not one.
  public static func lines(_ url: URL) throws -> [MetricsLine] {
    let decoder = JSONDecoder()
    return try text(url).split(separator: "\n").enumerated().map { i, line in
      do {
        return try decoder.decode(MetricsLine.self, from: Data(line.utf8))
      } catch {
        throw TrainingError.runFolder(
          "line \(i + 1) of '\(url.path)' is not a metrics line (\(TrainingConfig.describe(error)))")
      }
    }
  }

  /// Every line of a metrics file as named values, whatever its fields (numbers as Double,
  /// `null` as NaN): the generic view a script has of the file.
  public static func read(_ url: URL) throws -> [[String: MetricValue]] {
    var out: [[String: MetricValue]] = []
    for (i, line) in try text(url).split(separator: "\n").enumerated() {
      guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw TrainingError.runFolder("line \(i + 1) of '\(url.path)' is not a JSON object")
      }
      var row: [String: MetricValue] = [:]
      for (k, v) in obj {
        switch v {
        case let s as String: row[k] = .text(s)
        case is NSNull: row[k] = .number(.nan)
        case let n as NSNumber: row[k] = .number(n.doubleValue)
        default: continue
        }
      }
      out.append(row)
    }
    return out
  }

  static func text(_ url: URL) throws -> String {
    do {
      return try String(contentsOf: url, encoding: .utf8)
    } catch {
      throw TrainingError.runFolder("cannot read '\(url.path)' (\(error.localizedDescription))")
    }
  }
}

/// One value of a metrics line read generically (``MetricsLog/read(_:)``): a number or text.
public enum MetricValue: Equatable, Sendable {
  case number(Double)
  case text(String)

  /// The value as a number, or nil for text.
  public var number: Double? {
    switch self {
    case .number(let x): return x
    case .text: return nil
    }
  }
}
