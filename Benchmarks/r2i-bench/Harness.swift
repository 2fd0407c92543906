import ArgumentParser
import CommandLineSupport
import Dispatch
import Foundation
import Imaging
import Tensor
import WorldModel

/// Median, min and max of repeated timings, in milliseconds.
struct Timing: CustomStringConvertible {
  let samples: [Double]
  var median: Double {
    guard !samples.isEmpty else { return .nan }
    let s = samples.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
  }
  var min: Double { samples.min() ?? .nan }
  var max: Double { samples.max() ?? .nan }
  var description: String {
    String(format: "%.3f ms (min %.3f, max %.3f, n=%d)", median, min, max, samples.count)
  }
}

/// Runs `body` `warmup` times, then times it until `repeats` samples or `budget` seconds.
func measure(warmup: Int = 2, repeats: Int = 9, budget: Double = 10, _ body: () -> Void) -> Timing {
  precondition(repeats >= 1, "measure needs at least one repetition (options are validated before this)")
  for _ in 0..<warmup { body() }
  var samples: [Double] = []
  let start = DispatchTime.now().uptimeNanoseconds
  while samples.count < repeats {
    let t0 = DispatchTime.now().uptimeNanoseconds
    body()
    let t1 = DispatchTime.now().uptimeNanoseconds
    samples.append(Double(t1 - t0) / 1e6)
    if Double(t1 - start) / 1e9 > budget && samples.count >= 3 { break }
  }
  return Timing(samples: samples)
}

/// Process memory from /proc (Linux): current and peak resident set size in MB.
enum ProcessMemory {
  static func field(_ name: String) -> Double? {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in s.split(separator: "\n") where line.hasPrefix(name + ":") {
      let parts = line.split(separator: " ", omittingEmptySubsequences: true)
      if parts.count >= 2, let kb = Double(parts[1]) { return kb / 1024 }
    }
    return nil
  }
  static var residentMB: Double { field("VmRSS") ?? .nan }
  static var peakResidentMB: Double { field("VmHWM") ?? .nan }
  /// Resets the kernel's peak RSS mark (VmHWM) to the current RSS.
  static func resetPeak() {
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
  }
}

/// A description of the machine for result files.
enum Machine {
  static var cpuModel: String {
    guard let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
    for line in s.split(separator: "\n") where line.hasPrefix("model name") {
      return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
    }
    return "unknown"
  }
  static var summary: String {
    "\(cpuModel), \(Parallelism.onlineCores) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
  }
}

/// A table printed with aligned columns and optionally written as CSV.
struct ResultTable {
  let columns: [String]
  var rows: [[String]] = []

  init(_ columns: [String]) { self.columns = columns }

  mutating func add(_ row: [String]) {
    precondition(row.count == columns.count)
    rows.append(row)
  }

  func render() -> String {
    var widths = columns.map { $0.count }
    for r in rows { for (i, c) in r.enumerated() { widths[i] = Swift.max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
        .joined(separator: "  ")
    }
    return
      ([line(columns), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
      + rows.map(line)).joined(separator: "\n")
  }

  func csv() -> String {
    ([columns] + rows).map { $0.map { $0.contains(",") ? "\"\($0)\"" : $0 }.joined(separator: ",") }
      .joined(separator: "\n") + "\n"
  }

  func writeCSV(to url: URL) throws {
    try FileManager.default.createDirectory(
      at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try csv().write(to: url, atomically: true, encoding: .utf8)
  }
}

/// Writes `<name>.csv`, `<name>.png` and `<name>.svg` into `directory` and prints where they went.
func writeResults(_ table: ResultTable, chart: LineChart, to directory: URL, name: String) throws {
  let csv = directory.appendingPathComponent("\(name).csv")
  try table.writeCSV(to: csv)
  let png = directory.appendingPathComponent("\(name).png")
  guard !chart.isEmpty else {
    print("\nCSV: \(csv.path)\n(no chart: nothing was measured)")
    return
  }
  try chart.writePNG(to: png)
  try chart.writeSVG(to: directory.appendingPathComponent("\(name).svg"))
  print("\nCSV: \(csv.path)\nChart: \(png.path) (and .svg)")
}

func fmt(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

/// Limits shared by the benchmark options (each names itself in its error message).
enum Limits {
  static let batch = 1...1024
  static let repeats = 1...1000
  /// Steps in one batch (batch x length): beyond this an update needs far more memory than a
  /// workstation has (about 2.8 MB per step for the vector preset).
  static let stepsPerBatch = 1 << 20
}

struct BenchError: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}

/// Creates `path` as a directory (with parents) before a long run, so a bad `--output` fails at
/// once with a clear message instead of after the measurements.
func prepareOutputDirectory(_ path: String) throws -> URL {
  let url = URL(fileURLWithPath: path)
  var isDirectory: ObjCBool = false
  if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
    throw ValidationError("--output \(path) is a file; give a directory (it is created if missing)")
  }
  do {
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  } catch {
    throw ValidationError("--output: cannot create the directory \(path): \(error.localizedDescription)")
  }
  guard FileManager.default.isWritableFile(atPath: url.path) else {
    throw ValidationError("--output: the directory \(path) is not writable; choose another")
  }
  return url
}

/// Checks before a long run that the CSV at `path` can be written (its directory is created).
func prepareOutputFile(_ path: String) throws -> URL {
  let url = URL(fileURLWithPath: path)
  var isDirectory: ObjCBool = false
  if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
    throw ValidationError("--output \(path) is a directory; give a file name such as \(path)/results.csv")
  }
  _ = try prepareOutputDirectory(url.deletingLastPathComponent().path)
  return url
}
