import CommandLineSupport
import Foundation
import TestSupport
import Testing

/// Bad command lines against the built executables: each must exit with the usage status (64),
/// name the option in its message, never trap, and create no file.
@Suite struct BadCommandLineTests {
  static let cases: [(tool: String, arguments: [String], mentions: String)] = [
    ("r2i-bench", ["ssm", "--repeats", "0", "--lengths", "2", "--threads", "1"], "--repeats"),
    ("r2i-bench", ["ssm", "--repeats=-1"], "--repeats"),
    ("r2i-bench", ["ssm", "--batch=-1"], "--batch"),
    ("r2i-bench", ["ssm", "--batch", "0"], "--batch"),
    ("r2i-bench", ["ssm", "--lengths", "9223372036854775807"], "--lengths"),
    ("r2i-bench", ["ssm", "--threads", "0,1"], "--threads"),
    ("r2i-bench", ["speed", "--lengths", "9223372036854775807"], "--lengths"),
    ("r2i-bench", ["speed", "--batch", "9223372036854775807", "--lengths", "2"], "--batch"),
    ("r2i-bench", ["speed", "--batch", "1024", "--lengths", "16384"], "--batch"),
    ("r2i-bench", ["speed", "--lengths", ""], "--lengths"),
    ("r2i-bench", ["speed", "--lengths", ","], "--lengths"),
    ("r2i-bench", ["speed", "--backbones", ""], "--backbones"),
    ("r2i-bench", ["speed", "--backbones", "r2i,lstm"], "lstm"),
    ("r2i-bench", ["speed", "--threads", "0"], "--threads"),
    ("r2i-bench", ["speed", "--repeats", "-1"], "--repeats"),
    ("r2i-bench", ["speed", "--preset", "huge"], "--preset"),
    ("r2i-bench", ["recall", "--lengths", "9223372036854775807"], "--lengths"),
    ("r2i-bench", ["recall", "--target", "sum"], "--target"),
    ("r2i-bench", ["recall", "--step-range", "0.1,0.01"], "--step-range"),
    ("r2i-bench", ["recall", "--control-threshold", "0.2"], "--control-threshold"),
    ("r2i-bench", ["memory", "--tasks", "bsuite/memory_len/0"], "--tasks"),
    ("r2i-bench", ["memory", "--tasks", "a,,b"], "--tasks"),
    ("r2i-bench", ["memory", "--mode", "huge"], "--mode"),
    ("r2i-bench", ["memory", "--minutes", "-1"], "--minutes"),
    ("r2i-bench", ["memory", "--jobs", "0"], "--jobs"),
    ("r2i-bench", ["memory", "--steps", "10"], "--steps"),
    ("r2i-bench", ["memory", "--seeds", "x"], "--seeds"),
    ("r2i-bench", ["memory", "--set", "trainRatoi=3"], "trainRatoi"),
    ("r2i-bench", ["recall", "--backbones", ""], "--backbones"),
    ("r2i-bench", ["recall", "--learning-rate", "nan"], "--learning-rate"),
    ("r2i-bench", ["recall", "--test-episodes", "10"], "--test-episodes"),
    ("r2i-bench", ["recall", "--updates", "-1"], "--updates"),
    ("r2i-bench", ["recall", "--seed", "-1"], "--seed"),
    ("r2i-bench", ["tensor", "--threads", "0"], "--threads"),
    ("r2i-bench", ["tensor", "--repeats", "0"], "--repeats"),
    ("r2i-bench", ["envs", "--steps", "-1"], "--steps"),
    ("r2i-bench", ["replay", "--capacity", "10"], "--capacity"),
    ("r2i-bench", ["no-such-benchmark"], "no-such-benchmark"),
    ("r2i", ["presets", "--actions", "9223372036854775807"], "--actions"),
    ("r2i", ["presets", "--actions", "0"], "--actions"),
    ("r2i", ["presets", "--observation", "vector:9223372036854775807"], "--observation"),
    ("r2i", ["presets", "--observation", "vector:0"], "--observation"),
    ("r2i", ["info", "--threads", "9223372036854775807"], "--threads"),
    ("r2i", ["render", "--steps", "-1"], "--steps"),
    ("r2i", ["render", "--scale", "0"], "--scale"),
    ("r2i", ["render", "--seed", "-1"], "--seed"),
    ("r2i", ["render", "--env", "nope/x"], "--env"),
    ("r2i", ["render", "--env", "bsuite/memory_len/9223372036854775807"], "--env"),
    ("r2i", ["render", "--policy", "smart"], "--policy"),
    ("r2i", ["train", "--env", "bsuite/memory_len/0"], "--env"),
    ("r2i", ["train", "--env", "atari/Pong"], "--env"),
    ("r2i", ["train", "--preset", "huge"], "--preset"),
    ("r2i", ["train", "--steps", "0"], "--steps"),
    ("r2i", ["train", "--set", "agent.units=0"], "agent.units"),
    ("r2i", ["train", "--set", "agent.actorCritic.slowCriticRate=0"], "agent.actorCritic.slowCriticRate"),
    ("r2i", ["train", "--set", "agent.worldModel.ssm.states=33"], "agent.worldModel.ssm.states"),
    ("r2i", ["train", "--set", "agent.actorCritic.discount=2"], "agent.actorCritic.discount"),
    ("r2i", ["train", "--set", "agent.worldModel.optimizer.learningRate=-1"], "learningRate"),
    ("r2i", ["train", "--minutes", "0"], "--minutes"),
    ("r2i", ["train", "--minutes", "nan"], "--minutes"),
    ("r2i", ["train", "--set", "minutes=-3"], "minutes"),
    ("r2i", ["train", "--envs", "5000"], "--envs"),
    ("r2i", ["train", "--set", "trainRatoi=3"], "trainRatoi"),
    ("r2i", ["train", "--set", "trainRatio"], "--set"),
    ("r2i", ["train", "--set", "batch=many"], "--set"),
    ("r2i", ["train", "--config", "missing.json"], "--config"),
    ("r2i", ["train", "--resume"], "--resume"),
    ("r2i", ["train", "--run", "no-such-run", "--resume"], "--run"),
    ("r2i", ["eval", "--run", "no-such-run"], "--run"),
    ("r2i", ["eval", "--run", "x", "--episodes", "0"], "--episodes"),
    ("r2i", ["plot", "no-such-run"], "no-such-run"),
  ]

  @Test func everyBadCommandLineIsAUsageErrorThatNamesTheOption() throws {
    let cwd = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: cwd) }
    for c in Self.cases {
      let r = try runProcess(try BuiltProducts.executable(c.tool), c.arguments, in: cwd)
      let line = "\(c.tool) \(c.arguments.joined(separator: " "))"
      #expect(!r.signalled, "\(line) crashed (signal \(r.status))")
      #expect(r.status == ExitStatus.usage, "\(line) exited with \(r.status)")
      #expect(r.standardError.contains(c.mentions), "\(line) printed: \(r.standardError)")
      print("\(line)\n  -> exit \(r.status): \(r.standardError.split(separator: "\n").first ?? "")")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: cwd.path).isEmpty, "a rejected command wrote files")
  }

  @Test func anOutputPathThatIsAFileIsAUsageError() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("taken")
    try Data("keep".utf8).write(to: file)
    let r = try runProcess(
      try BuiltProducts.executable("r2i-bench"), ["speed", "--output", file.path, "--lengths", "2"])
    #expect(r.status == ExitStatus.usage && r.standardError.contains("--output"))
    #expect(try String(contentsOf: file, encoding: .utf8) == "keep")
  }

  @Test func bothToolsPrintTheirVersion() throws {
    for tool in ["r2i", "r2i-bench"] {
      let r = try runProcess(try BuiltProducts.executable(tool), ["--version"])
      #expect(r.status == 0 && r.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == r2iVersion)
    }
  }

  @Test func renderingAgainReplacesTheEarlierEpisodesFrames() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("render-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let r2i = try BuiltProducts.executable("r2i")
    let common = ["render", "--env", "memorymaze/9x9", "--policy", "random", "--scale", "1", "--output", dir.path]
    #expect(try runProcess(r2i, common + ["--steps", "12"]).status == 0)
    try Data("notes".utf8).write(to: dir.appendingPathComponent("notes.txt"))
    #expect(try runProcess(r2i, common + ["--steps", "4", "--seed", "3"]).status == 0)
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    #expect(files == (0...4).map { "memorymaze_9x9_0000\($0).png" } + ["notes.txt"])
  }
}
