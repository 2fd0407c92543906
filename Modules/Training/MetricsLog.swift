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

  /// Opens `url` for appending (`O_APPEND`: every line lands at the end, whatever another
  /// handle did), creating it when `create` is set; throws naming the file when it cannot.
  public init(url: URL, create: Bool) throws {
    self.url = url
    let fd = open(url.path, O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0o644)
    guard fd >= 0 else {
      let code = errno
      throw TrainingError.runFolder(
        code == ENOENT
          ? "'\(url.path)' is missing; the run folder was altered"
          : "cannot open '\(url.path)' (errno \(code)); check that the run folder is writable")
    }
    handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    do {
      bytes = try handle.seekToEnd()
    } catch {
      throw TrainingError.runFolder("cannot read the length of '\(url.path)' (\(error.localizedDescription))")
    }
  }

  /// Opens (creating) `url` for appending; `truncatingTo` first cuts it to that many bytes.
  public convenience init(url: URL, truncatingTo length: UInt64? = nil) throws {
    try self.init(url: url, create: true)
    if let length { try truncate(to: length) }
  }

  /// Cuts the file to `length` bytes (the lines written after a checkpoint); throws when it is
  /// shorter than that.
  public func truncate(to length: UInt64) throws {
    guard length <= bytes else {
      throw TrainingError.runFolder(
        "'\(url.path)' is shorter (\(bytes) bytes) than its checkpoint says (\(length)); the run folder was altered")
    }
    do {
      try handle.truncate(atOffset: length)
      bytes = length
    } catch {
      throw TrainingError.runFolder("cannot cut '\(url.path)' (\(error.localizedDescription))")
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
