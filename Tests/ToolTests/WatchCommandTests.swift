import Envs
import Foundation
import TestSupport
import Testing
import Training

/// What a user watches, through the real tools: TensorBoard reading a run's event file, videos
/// Pillow decodes, the configuration printout that `r2i train --config` takes back.
@Suite(.serialized) struct WatchCommandTests {
  /// The `.venv` Python and the folder of the project's Python files.
  static func python() throws -> (python: URL, folder: URL) {
    let found = try PythonEnvironment.interpreter()
    return (URL(fileURLWithPath: found.python), URL(fileURLWithPath: found.script).deletingLastPathComponent())
  }

  @Test func tensorBoardReadsTheSameScalarsAsMetricsAndTheOpenLoopImages() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("cli-tensorboard")
    defer { try? FileManager.default.removeItem(at: root) }
    let run = root.appendingPathComponent("run")
    let tiny = ["--env", "classic/CartPole-pixels"] + TrainCommandTests.tiny.dropFirst(2)
    let trained = try runProcess(
      r2i,
      ["train", "--steps", "120", "--run", run.path] + tiny + [
        "--set", "logSeconds=0", "--set", "openLoopMinutes=0.0001",
      ])
    #expect(trained.status == 0, "\(trained.standardError)")
    let (python, folder) = try Self.python()
    let dumped = try runProcess(python, [folder.appendingPathComponent("tensorboard_dump.py").path, run.path])
    #expect(dumped.status == 0, "\(dumped.standardError)")
    let object = try #require(
      try JSONSerialization.jsonObject(with: Data(dumped.standardOutput.utf8)) as? [String: Any])
    let scalars = try #require(object["scalars"] as? [String: [[Any]]])
    let images = try #require(object["images"] as? [String: [[Any]]])
    // Every number of metrics.jsonl, under its tag, at its step, in order.
    var expected: [String: [(Int, Double?)]] = [:]
    for line in try MetricsLog.read(run.appendingPathComponent("metrics.jsonl")) {
      guard case .text(let kind)? = line["kind"], let step = line["env_steps"]?.number else { continue }
      for (key, value) in line {
        guard let x = value.number, !["kind", "env_steps", "environment"].contains(key),
          kind == "train" || !["updates", "seconds"].contains(key)
        else { continue }
        let name = kind == "eval" && key.hasPrefix("eval_") ? String(key.dropFirst(5)) : key
        expected[key.contains("/") ? key : "\(kind)/\(name)", default: []].append((Int(step), x.isFinite ? x : nil))
      }
    }
    #expect(Set(scalars.keys) == Set(expected.keys))
    for (tag, points) in expected {
      let read = scalars[tag] ?? []
      #expect(read.count == points.count, "\(tag)")
      for (r, e) in zip(read, points) {
        let step = (r[0] as? NSNumber)?.intValue
        let value = (r[1] as? NSNumber)?.doubleValue
        #expect(step == e.0, "\(tag)")
        if let ev = e.1 {
          #expect(value.map { abs($0 - Double(Float(ev))) <= 1e-6 * max(1, abs(ev)) } == true, "\(tag): \(r) vs \(ev)")
        } else {
          #expect(value == nil, "\(tag): \(r) should be non-finite")
        }
      }
    }
    let pictures = try #require(images["openl"])
    let files = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("openl").path)
    #expect(!pictures.isEmpty && pictures.count == files.count)
  }

  /// The tiny run's options without `--threads` (which only commands that compute take).
  static let options = Array(TrainCommandTests.tiny.dropLast(2))

  @Test func aPrintedConfigurationStartsTheSameRun() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("cli-config")
    defer { try? FileManager.default.removeItem(at: root) }
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    let printed = try runProcess(
      r2i, ["config", "--steps", "40", "--set", "trainRatio=8", "--set", "sampling=recency:500"] + Self.options)
    #expect(printed.status == 0, "\(printed.standardError)")
    let file = root.appendingPathComponent("c.json")
    try Data(printed.standardOutput.utf8).write(to: file)
    // Plain strings for the kinds, old files' forms aside.
    #expect(printed.standardOutput.contains(#""sampling" : "recency:500""#))
    #expect(printed.standardOutput.contains(#""actions" : "discrete:2""#))
    #expect(printed.standardOutput.contains(#""observation" : "vector:3""#))
    let run = root.appendingPathComponent("run")
    let trained = try runProcess(r2i, ["train", "--config", file.path, "--run", run.path, "--threads", "1"])
    #expect(trained.status == 0, "\(trained.standardError)")
    #expect(try Data(contentsOf: run.appendingPathComponent("config.json")) == Data(contentsOf: file))
    // Every key of --keys is one --set takes.
    let keys = try runProcess(r2i, ["config", "--keys"] + Self.options)
    #expect(keys.status == 0, "\(keys.standardError)")
    let lines = keys.standardOutput.split(separator: "\n").map(String.init)
    #expect(lines.contains("trainRatio=64") && lines.contains("agent.worldModel.observation=\"vector:3\""))
    let back = try runProcess(
      r2i, ["config"] + Self.options + lines.filter { !$0.hasPrefix("adjustments=") }.flatMap { ["--set", $0] })
    let again = try runProcess(r2i, ["config"] + Self.options)
    #expect(back.status == 0 && back.standardOutput == again.standardOutput, "\(back.standardError)")
    // An existing run's configuration.
    let ofRun = try runProcess(r2i, ["config", "--run", run.path])
    let fileData = try Data(contentsOf: file)
    #expect(ofRun.status == 0 && Data(ofRun.standardOutput.utf8) == fileData)
  }

  @Test func videosDecodeWithPillowToTheFramesWritten() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("cli-video")
    defer { try? FileManager.default.removeItem(at: root) }
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    let gif = root.appendingPathComponent("cartpole.gif")
    let frames = root.appendingPathComponent("frames")
    // The same episode as PNG frames and as a GIF: a task that draws itself but observes vectors.
    for extra in [["--output", frames.path], ["--video", gif.path]] {
      let r = try runProcess(
        r2i, ["render", "--env", "classic/CartPole", "--steps", "30", "--seed", "4", "--scale", "1"] + extra)
      #expect(r.status == 0, "\(r.standardError)")
      #expect(r.standardOutput.contains("random policy"), "\(r.standardOutput)")
    }
    let pngs = try FileManager.default.contentsOfDirectory(atPath: frames.path).filter { $0.hasSuffix(".png") }.sorted()
    #expect(pngs.count >= 2)
    let (python, _) = try Self.python()
    let script = """
      import json, sys
      from PIL import Image, ImageSequence
      gif = Image.open(sys.argv[1])
      frames = [f.convert("RGB") for f in ImageSequence.Iterator(gif)]
      pngs = [Image.open(p).convert("RGB") for p in sys.argv[2:]]
      same = [a.size == b.size and a.tobytes() == b.tobytes() for a, b in zip(frames, pngs)]
      print(json.dumps({"frames": len(frames), "same": same, "loop": gif.info.get("loop"), "duration": gif.info.get("duration")}))
      """
    let checked = try runProcess(
      python, ["-c", script, gif.path] + pngs.map { frames.appendingPathComponent($0).path })
    #expect(checked.status == 0, "\(checked.standardError)")
    let result = try #require(
      try JSONSerialization.jsonObject(with: Data(checked.standardOutput.utf8)) as? [String: Any])
    #expect((result["frames"] as? Int) == pngs.count)
    // CartPole's drawing has few colours: the GIF holds the frames exactly.
    #expect((result["same"] as? [Bool]).map { $0.count == pngs.count && $0.allSatisfy { $0 } } == true, "\(result)")
    #expect((result["loop"] as? Int) == 0 && (result["duration"] as? Int) == 50)
  }
}
