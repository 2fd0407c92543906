import Foundation
import TestSupport
import Testing

/// The main job (`r2i-bench speed`) runs to the end in both phases at the smallest sizes and
/// writes a CSV whose every row has the header's columns (a row short of a new column once
/// trapped the table after the timings).
@Suite struct SpeedBenchSmokeTests {
  @Test(arguments: [
    ["speed", "--lengths", "2", "--batch", "1", "--repeats", "1", "--backbones", "r2i,dreamerv3"],
    ["speed", "--phase", "train", "--preset", "small", "--lengths", "2", "--batch", "2", "--repeats", "1"],
  ])
  func bothPhasesRunAndWriteWholeRows(_ arguments: [String]) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("speed-smoke-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let r = try runProcess(try BuiltProducts.executable("r2i-bench"), arguments + ["--output", dir.path])
    #expect(r.status == 0 && !r.signalled, "exit \(r.status): \(r.standardError.suffix(2000))")
    let name = arguments.contains("train") ? "speed_train_small.csv" : "speed_vector.csv"
    let csv = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
    let lines = csv.split(separator: "\n")
    let columns = lines[0].split(separator: ",", omittingEmptySubsequences: false).count
    #expect(lines.count >= 3, "\(csv)")
    for line in lines.dropFirst() {
      #expect(line.split(separator: ",", omittingEmptySubsequences: false).count == columns, "\(line)")
    }
    #expect(lines[0].contains("model_gflops"))
  }
}
