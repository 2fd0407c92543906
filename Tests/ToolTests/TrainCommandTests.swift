import Foundation
import Random
import TensorBoard
import TestSupport
import Testing
import Training

/// `r2i train`, `r2i eval` and `r2i plot` as a user runs them.
@Suite(.serialized) struct TrainCommandTests {
  static let tiny = [
    "--env", "bsuite/memory_len/3", "--envs", "2", "--set", "batch=4", "--set", "length=8", "--set", "prefill=20",
    "--set", "logEvery=20", "--set", "evalEvery=40", "--set", "evalEpisodes=2", "--set", "checkpointEvery=30",
    "--threads", "1",
  ]

  /// `--backbone transformer` trains, resumes and evaluates like the other two, its sizes in
  /// `config.json`; a width its heads do not divide is refused naming the setting.
  @Test func theTransformerBackboneTrainsResumesAndEvaluates() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("cli-transformer")
    defer { try? FileManager.default.removeItem(at: root) }
    let run = root.appendingPathComponent("run")
    let trained = try runProcess(
      r2i, ["train", "--steps", "40", "--run", run.path, "--backbone", "transformer"] + Self.tiny)
    #expect(trained.status == 0, "\(trained.standardError)")
    #expect(trained.standardOutput.contains("Transformer + "), "\(trained.standardOutput)")
    let config = try TrainingConfig.decode(
      Data(contentsOf: run.appendingPathComponent("config.json")), source: "config.json")
    #expect(config.backbone == .transformer && config.agent.worldModel.transformer != nil)
    let resumed = try runProcess(r2i, ["train", "--run", run.path, "--resume", "--steps", "70", "--threads", "1"])
    #expect(resumed.status == 0 && resumed.standardOutput.contains("done at env step 70"), "\(resumed.standardError)")
    let evaluated = try runProcess(r2i, ["eval", "--run", run.path, "--episodes", "2", "--threads", "1"])
    #expect(evaluated.status == 0 && evaluated.standardOutput.contains("mean score"), "\(evaluated.standardError)")
    let refused = try runProcess(
      r2i,
      ["train", "--steps", "40", "--run", root.appendingPathComponent("bad").path, "--backbone", "transformer"]
        + Self.tiny + ["--set", "agent.worldModel.transformer.heads=3"])
    #expect(refused.status == 64 && refused.standardError.contains("transformer.width"), "\(refused.standardError)")
  }

  @Test func trainEvalPlotAndEveryMisuseOfARunFolder() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("cli-run")
    defer { try? FileManager.default.removeItem(at: root) }
    let run = root.appendingPathComponent("run")
    let trained = try runProcess(r2i, ["train", "--steps", "60", "--run", run.path] + Self.tiny)
    #expect(trained.status == 0, "\(trained.standardError)")
    #expect(trained.standardOutput.contains("done at env step 60"), "\(trained.standardOutput)")
    for name in ["config.json", "metrics.jsonl", "checkpoint/state.json", "replay/manifest.json"] {
      #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent(name).path), "\(name) missing")
    }
    let before = try folderContents(run)

    let misuses: [([String], String)] = [
      (["train", "--run", run.path] + Self.tiny, "already holds a run"),
      (["train", "--run", run.path, "--resume", "--env", "classic/CartPole"], "another configuration"),
      (["train", "--run", run.path, "--resume", "--seed", "3"], "another configuration"),
      (["train", "--run", run.path, "--resume", "--set", "batch=8"], "another configuration"),
    ]
    for (arguments, message) in misuses {
      let r = try runProcess(r2i, arguments)
      #expect(r.status == 64 && r.standardError.contains(message), "\(arguments): \(r.status) \(r.standardError)")
    }
    #expect(try folderContents(run) == before, "a rejected command changed the run folder")

    let evaluated = try runProcess(r2i, ["eval", "--run", run.path, "--episodes", "3", "--threads", "1"])
    #expect(evaluated.status == 0 && evaluated.standardOutput.contains("mean score"), "\(evaluated.standardError)")
    #expect(evaluated.standardOutput.contains("success rate"))
    let plotted = try runProcess(r2i, ["plot", run.path, "--output", root.appendingPathComponent("curves").path])
    #expect(plotted.status == 0, "\(plotted.standardError)")
    for suffix in ["steps.png", "steps.svg", "time.png", "time.svg"] {
      #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("curves_\(suffix)").path))
    }

    // plot takes the metrics file itself (its folder gets the curves), and a line with a
    // non-finite score or an impossible step count is named, not a crash.
    let byFile = try runProcess(r2i, ["plot", run.appendingPathComponent("metrics.jsonl").path])
    #expect(byFile.status == 0, "\(byFile.standardError)")
    #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("curves_steps.png").path))
    let odd = root.appendingPathComponent("odd.jsonl")
    try Data(
      """
      {"kind":"episode","env_steps":4,"updates":0,"seconds":1,"score":null,"length":3,"environment":0}
      {"kind":"episode","env_steps":8,"updates":0,"seconds":2,"score":1e300,"length":3,"environment":0}
      {"kind":"episode","env_steps":12,"updates":0,"seconds":3,"score":-1e300,"length":3,"environment":0}

      """.utf8
    ).write(to: odd)
    let plottedOdd = try runProcess(r2i, ["plot", odd.path, "--window", "1"])
    #expect(plottedOdd.status == 0 && !plottedOdd.signalled, "\(plottedOdd.standardError)")
    try Data("{\"kind\":\"episode\",\"env_steps\":1e300,\"score\":1}\n".utf8).write(to: odd)
    let huge = try runProcess(r2i, ["plot", odd.path])
    #expect(huge.status == 1 && !huge.signalled && huge.standardError.contains("env_steps"), "\(huge.standardError)")

    // A damaged checkpoint is named, and left as it is.
    let damaged = root.appendingPathComponent("damaged")
    try FileManager.default.copyItem(at: run, to: damaged)
    let state = damaged.appendingPathComponent("checkpoint/state.json")
    try Data("{ \"format\": 1".utf8).write(to: state)
    let copy = try folderContents(damaged)
    let r = try runProcess(r2i, ["train", "--run", damaged.path, "--resume", "--steps", "80"])
    #expect(r.status != 0 && !r.signalled && r.standardError.contains("state.json"), "\(r.standardError)")
    #expect(try folderContents(damaged) == copy)

    // And the intact one resumes and trains on.
    let resumed = try runProcess(r2i, ["train", "--run", run.path, "--resume", "--steps", "80", "--threads", "1"])
    #expect(resumed.status == 0 && resumed.standardOutput.contains("resuming"), "\(resumed.standardError)")
    #expect(resumed.standardOutput.contains("done at env step 80"))
    let idle = try runProcess(r2i, ["train", "--run", run.path, "--resume", "--steps", "50", "--threads", "1"])
    #expect(idle.status == 0 && idle.standardOutput.contains("nothing to do"), "\(idle.standardOutput)")
    #expect(idle.standardOutput.contains("at env step 80"), "\(idle.standardOutput)")

    // The learning rates, and only they, may change on a resume; the change is printed and kept.
    let slower = try runProcess(
      r2i,
      [
        "train", "--run", run.path, "--resume", "--steps", "90", "--threads", "1", "--set",
        "agent.worldModel.optimizer.learningRate=0.0005",
      ])
    #expect(slower.status == 0, "\(slower.standardError)")
    #expect(
      slower.standardOutput.contains(
        "agent.worldModel.optimizer.learningRate changed from 0.001 to 0.0005 from env step 80 on"
      ), "\(slower.standardOutput)")
    let config = try String(contentsOf: run.appendingPathComponent("config.json"), encoding: .utf8)
    #expect(config.contains("\"adjustments\"") && config.contains("\"envSteps\" : 80"), "\(config)")
  }

  /// One writer per run folder: a second `r2i train --resume` beside a running one exits at once
  /// naming its pid and changes nothing; SIGTERM then stops the first like Ctrl-C, with a
  /// checkpoint at the stop step and status 130, and the run resumes from there.
  @Test func aSecondWriterIsRefusedAndSIGTERMStopsWithACheckpoint() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("writers")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    let run = root.appendingPathComponent("run")
    let log = root.appendingPathComponent("first.log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let first = Process()
    first.executableURL = r2i
    first.arguments = ["train", "--steps", "1000000", "--run", run.path] + Self.tiny
    let handle = try FileHandle(forWritingTo: log)
    first.standardOutput = handle
    first.standardError = handle
    try first.run()
    defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
    let config = run.appendingPathComponent("config.json")
    let deadline = Date().addingTimeInterval(60)
    while !FileManager.default.fileExists(atPath: config.path) && Date() < deadline { usleep(50_000) }
    usleep(500_000)
    let second = try runProcess(r2i, ["train", "--run", run.path, "--resume", "--threads", "1"])
    #expect(second.status != 0 && !second.signalled)
    #expect(second.standardError.contains("pid \(first.processIdentifier)"), "\(second.standardError)")
    kill(first.processIdentifier, SIGTERM)
    first.waitUntilExit()
    try handle.close()
    let output = try String(contentsOf: log, encoding: .utf8)
    #expect(first.terminationStatus == 130, "\(output.suffix(400))")
    let stopped = try #require(output.range(of: "stopped at env step "), "\(output.suffix(400))")
    let steps = Int(output[stopped.upperBound...].prefix { $0.isNumber })
    let progress = try #require(TrainingRun.progress(of: run))
    #expect(steps == progress.envSteps && progress.envSteps > 0)
    let resumed = try TrainingRun.resume(from: run, steps: progress.envSteps + 10)
    #expect(resumed.collector.steps == progress.envSteps)
  }

  /// A checkpoint that cannot be written (here a file-size limit, `ulimit -f`, below the
  /// learner file's size; a full disk takes the same path) stops the run with status 1 and a
  /// message naming the file, the cause and what the folder still holds; the folder then starts
  /// afresh or resumes exactly as before.
  @Test func aCheckpointThatCannotBeWrittenIsNamedAndLosesNothing() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("limit")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    var config = try TinyConfigs.training(steps: 100)
    config.checkpointEvery = 40
    let configFile = root.appendingPathComponent("tiny.json")
    try config.encoded().write(to: configFile)
    let run = root.appendingPathComponent("run")
    // 100 KiB (bash counts in KiB): the tiny agent's file (about 90 KB) fits, its learner file (about 140 KB) does not.
    func limited(_ arguments: [String]) throws -> ProcessResult {
      try runProcess(
        URL(fileURLWithPath: "/bin/bash"),
        ["-c", "ulimit -f 100; exec \"$0\" \"$@\"", r2i.path] + arguments + ["--threads", "1"])
    }
    let first = try limited(["train", "--config", configFile.path, "--run", run.path])
    #expect(first.status == 1 && !first.signalled, "\(first.status) \(first.standardError)")
    #expect(first.standardError.contains("file-size limit") && first.standardError.contains("learner-"))
    #expect(first.standardError.contains("next start begins afresh"), "\(first.standardError)")
    #expect(TrainingRun.progress(of: run) == nil)

    let started = try runProcess(r2i, ["train", "--config", configFile.path, "--run", run.path, "--steps", "40"])
    #expect(started.status == 0, "\(started.standardError)")
    let before = try folderContents(run).filter { !$0.key.hasSuffix(".lock") }
    let resumed = try limited(["train", "--run", run.path, "--resume", "--steps", "100"])
    #expect(resumed.status == 1 && !resumed.signalled, "\(resumed.status) \(resumed.standardError)")
    #expect(
      resumed.standardError.contains("still holds the checkpoint at env step 40"), "\(resumed.standardError)")
    let again = try TrainingRun.resume(from: run)
    #expect(again.collector.steps == 40)
    let after = try folderContents(run).filter { !$0.key.hasSuffix(".lock") && !$0.key.hasPrefix("metrics") }
    #expect(
      after == before.filter { !$0.key.hasPrefix("metrics") }, "the resume did not clear the failed checkpoint's files")
  }

  /// SIGKILL at 100 random moments of short runs (chains of up to 20 kills) that checkpoint every 4 env steps (so many
  /// kills land inside a checkpoint), each chain of kills beginning in an empty folder (so some
  /// land in a new run's first instant): after every kill the folder either holds no run and
  /// starts afresh, or resumes without a warning, and each chain, run to its end, leaves exactly
  /// the files of an uninterrupted run: the same agent, optimiser, collector and replay bytes,
  /// the same loop state, the same metrics lines and event-file scalars, wall-clock fields aside.
  @Test func killedRunsResumeBitExactlyLikeAnUninterruptedRun() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("kills")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    var config = try TinyConfigs.training(steps: 400)
    config.checkpointEvery = 4
    let configFile = root.appendingPathComponent("tiny.json")
    try config.encoded().write(to: configFile)
    let start = ["train", "--config", configFile.path, "--threads", "1", "--run"]

    let reference = root.appendingPathComponent("reference")
    let whole = try runProcess(r2i, start + [reference.path])
    #expect(whole.status == 0, "\(whole.standardError)")
    let expected = try RunFingerprint(reference)

    var rng = SeededGenerator(seed: 9)
    var tally = (kills: 0, noRun: 0, insideCheckpoint: 0)
    var chain = 0
    while tally.kills < 100 {
      defer { chain += 1 }
      #expect(chain < 10, "the runs end before they can be killed; the test proves too little")
      if chain >= 10 { break }
      let folder = root.appendingPathComponent("chain-\(chain)")
      for kill in 0..<min(20, 100 - tally.kills) {
        let holds = FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path)
        let p = Process()
        p.executableURL = r2i
        p.arguments = holds ? ["train", "--run", folder.path, "--resume", "--threads", "1"] : start + [folder.path]
        let log = root.appendingPathComponent("chain-\(chain)-\(kill).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        // A new run dies in its first 0.2 s; a resume anywhere in its first 0.6 s.
        usleep(UInt32(rng.nextInt(below: holds ? 600_000 : 200_000)))
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        try handle.close()
        let output = try String(contentsOf: log, encoding: .utf8)
        #expect(!output.contains("warning"), "chain \(chain), kill \(kill): \(output)")
        guard p.terminationReason == .uncaughtSignal else { break }  // the run ended first
        tally.kills += 1
        if !FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path) {
          tally.noRun += 1
        } else if try RunFingerprint.hasFilesOfAnUnfinishedCheckpoint(folder) {
          tally.insideCheckpoint += 1
        }
      }
      let finish =
        FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path)
        ? ["train", "--run", folder.path, "--resume", "--threads", "1"] : start + [folder.path]
      let finished = try runProcess(r2i, finish)
      #expect(finished.status == 0 && !finished.standardError.contains("warning"), "\(finished.standardError)")
      #expect(try !RunFingerprint.hasFilesOfAnUnfinishedCheckpoint(folder), "chain \(chain): stray files remain")
      let got = try RunFingerprint(folder)
      #expect(got.differences(from: expected).isEmpty, "chain \(chain): \(got.differences(from: expected))")
    }
    print(
      "kill loop: \(tally.kills) kills, \(tally.noRun) left no run, \(tally.insideCheckpoint) inside a checkpoint")
    #expect(tally.noRun > 0 && tally.insideCheckpoint > 0, "no kill landed in a first instant or inside a checkpoint")
  }
}

/// What a finished run folder holds, wall-clock fields aside: the checkpoint's binary parts
/// byte for byte, its loop state and metrics lines as JSON without their timings, and the
/// replay chunks byte for byte.
private struct RunFingerprint {
  static let timings: Set<String> = ["seconds", "lastLogSeconds", "updateSeconds", "update_ms", "steps_per_second"]
  var parts: [String: Data] = [:]
  var loop: NSDictionary = [:]
  var metrics: [NSDictionary] = []
  var chunks: [Data] = []
  var replayState: NSDictionary = [:]
  /// The event file's scalars (step, tag, value bits), wall-clock tags aside.
  var events: [String] = []

  init(_ run: URL) throws {
    let checkpoint = run.appendingPathComponent("checkpoint")
    let state = try Self.json(Data(contentsOf: checkpoint.appendingPathComponent("state.json")))
    let files = try #require(state["files"] as? [String: String])
    for (part, name) in files {
      let data = try Data(contentsOf: checkpoint.appendingPathComponent(name))
      if part == "loop" { loop = try Self.json(data) } else { parts[part] = data }
    }
    let text = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
    metrics = try text.split(separator: "\n").map { try Self.json(Data($0.utf8)) }
    let wallClock: Set<String> = ["train/seconds", "train/update_ms", "train/steps_per_second"]
    events = try EventFileReader.scalars(run.appendingPathComponent(EventFileWriter.fileName)).filter {
      !wallClock.contains($0.tag)
    }.map { "\($0.step) \($0.tag) \($0.value.bitPattern)" }
    // The chunks the checkpoint's replay manifest names, in order, by content (their names
    // carry a random token, and which older chunks stay beside them depends on the history).
    let replay = run.appendingPathComponent("replay")
    let manifestName = try #require(state["replayManifest"] as? String)
    let manifest = try Self.json(Data(contentsOf: replay.appendingPathComponent(manifestName)))
    replayState = try Self.json(Data(contentsOf: replay.appendingPathComponent(manifestName)), without: ["file"])
    for case let segment as [String: Any] in try #require(manifest["segments"] as? [Any]) {
      for case let chunk as [String: Any] in try #require(segment["chunks"] as? [Any]) {
        let file = try #require(chunk["file"] as? String, "\(chunk)")
        chunks.append(try Data(contentsOf: replay.appendingPathComponent(file)))
      }
    }
  }

  /// True when `checkpoint/` or `replay/` holds files that `state.json` does not name: a kill
  /// landed while a checkpoint was being written.
  static func hasFilesOfAnUnfinishedCheckpoint(_ run: URL) throws -> Bool {
    let checkpoint = run.appendingPathComponent("checkpoint")
    let stateURL = checkpoint.appendingPathComponent("state.json")
    guard FileManager.default.fileExists(atPath: stateURL.path) else { return true }
    let state = try json(Data(contentsOf: stateURL))
    let named = Set((state["files"] as? [String: String] ?? [:]).values).union(["state.json"])
    let present = Set(try FileManager.default.contentsOfDirectory(atPath: checkpoint.path))
    let manifests = try FileManager.default.contentsOfDirectory(
      atPath: run.appendingPathComponent("replay").path
    ).filter { $0.hasPrefix("manifest-") }
    return !present.isSubset(of: named) || manifests.contains { $0 != state["replayManifest"] as? String }
  }

  func differences(from other: RunFingerprint) -> [String] {
    var out: [String] = []
    for (name, data) in parts where other.parts[name] != data { out.append("checkpoint part \(name)") }
    if parts.count != other.parts.count { out.append("checkpoint parts \(parts.keys) vs \(other.parts.keys)") }
    if loop != other.loop { out.append("loop state") }
    if metrics.count != other.metrics.count { out.append("\(metrics.count) metrics lines, not \(other.metrics.count)") }
    for (i, (a, b)) in zip(metrics, other.metrics).enumerated() where a != b {
      out.append("metrics line \(i + 1): \(a) vs \(b)")
      break
    }
    if replayState != other.replayState { out.append("replay manifest") }
    if events != other.events { out.append("event file (\(events.count) vs \(other.events.count) scalars)") }
    if chunks != other.chunks { out.append("replay chunks (\(chunks.count) vs \(other.chunks.count) files)") }
    return out
  }

  /// A JSON object with the wall-clock fields, checksums and the keys `without` removed at every depth.
  private static func json(_ data: Data, without: Set<String> = []) throws -> NSDictionary {
    let dropped = timings.union(without).union(["crc32"])
    func strip(_ value: Any) -> Any {
      if let d = value as? [String: Any] {
        return d.filter { !dropped.contains($0.key) }.mapValues(strip)
      }
      if let a = value as? [Any] { return a.map(strip) }
      return value
    }
    let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    return strip(object) as! [String: Any] as NSDictionary
  }
}

/// `r2i-bench memory` as a user runs it: a sweep trains its runs in child processes, writes the
/// report, skips finished runs, resumes unfinished ones and refuses a changed configuration.
@Suite(.serialized) struct MemoryBenchCommandTests {
  @Test func aSweepReportsSkipsFinishedRunsResumesTheOthersAndRefusesAnotherConfiguration() throws {
    let bench = try BuiltProducts.executable("r2i-bench")
    let out = temporaryFolder("memory-bench")
    defer { try? FileManager.default.removeItem(at: out) }
    let common = [
      "memory", "--tasks", "bsuite/memory_len/3", "--backbones", "r2i,dreamerv3", "--jobs", "2", "--envs", "2",
      "--minutes", "30", "--output", out.path, "--set", "batch=4", "--set", "length=8", "--set", "prefill=20",
      "--set", "logEvery=20", "--set", "trainRatio=8",
    ]
    func rows() throws -> [[String]] {
      let text = try String(contentsOf: out.appendingPathComponent("memory.csv"), encoding: .utf8)
      return text.split(separator: "\n").dropFirst().map {
        $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
      }
    }
    let first = try runProcess(bench, common + ["--steps", "1000"])
    #expect(first.status == 0, "\(first.standardError)\n\(first.standardOutput)")
    for name in ["r2i", "dreamerv3"] {
      #expect(first.standardOutput.contains("finished bsuite-memory_len-3-\(name)-s0"), "\(first.standardOutput)")
    }
    // One row per run, at its steps, finished; learner steps from the train ratio ((1000 - 20) x 8 / 32).
    var table = try rows()
    #expect(table.count == 2)
    #expect(table.allSatisfy { $0[4] == "1000" && $0[5] == "245" && $0.last == "yes" }, "\(table)")
    // Each row names its agent with what departs from the paper's BSuite recipe.
    #expect(
      table.map { $0[2].hasPrefix($0[1] == "r2i" ? "R2I + smallSizes + " : "DreamerV3 + smallSizes + ") } == [
        true, true,
      ])
    for file in [
      "memory.md", "memory_len_success.png", "curves/bsuite-memory_len-3_steps.svg",
      "curves/bsuite-memory_len-3_time.png",
    ] {
      #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "\(file) missing")
    }
    // The same command again: nothing left to train.
    let again = try runProcess(bench, common + ["--steps", "1000"])
    #expect(again.status == 0 && again.standardOutput.contains("finished (1000 env steps"), "\(again.standardOutput)")
    #expect(!again.standardOutput.contains("started"))
    // The report alone under a larger budget: both runs are now short of it, and the score says so.
    let pending = try runProcess(bench, common + ["--steps", "1100", "--report-only"])
    #expect(pending.status == 0, "\(pending.standardError)")
    #expect(try rows().allSatisfy { $0.last == "no" })
    let summary = try String(contentsOf: out.appendingPathComponent("memory.md"), encoding: .utf8)
    for name in ["r2i", "dreamerv3"] {
      #expect(
        summary.contains("- \(name): BSuite memory_len score")
          && summary.contains("(share of the 1 run solved, a run counting as solved"), "\(summary)")
    }
    #expect(summary.components(separatedBy: "; 1 of them not finished, so the score is provisional").count == 3)
    // More steps: both runs resume from their checkpoints.
    let longer = try runProcess(bench, common + ["--steps", "1100"])
    #expect(longer.status == 0, "\(longer.standardError)")
    let log = try String(
      contentsOf: out.appendingPathComponent("runs/bsuite-memory_len-3-r2i-s0.log"), encoding: .utf8)
    #expect(log.contains("resuming at env step 1000"), "\(log)")
    table = try rows()
    #expect(table.allSatisfy { $0[4] == "1100" && $0[5] == "270" }, "\(table)")
    // Another setting in the same output folder is refused before anything runs.
    let changed = try runProcess(bench, common + ["--steps", "1100", "--set", "batch=8"])
    #expect(changed.status != 0 && changed.standardError.contains("another configuration"), "\(changed.standardError)")
    #expect(!(try String(contentsOf: out.appendingPathComponent("memory.md"), encoding: .utf8)).contains("provisional"))
  }

  /// SIGTERM to a sweep stops its runs with checkpoints and waits for them: no run outlives it,
  /// and the same command resumes them.
  @Test func aTerminatedSweepLeavesNoRunBehind() throws {
    let bench = try BuiltProducts.executable("r2i-bench")
    let out = temporaryFolder("memory-bench-term")
    defer { try? FileManager.default.removeItem(at: out) }
    let arguments = [
      "memory", "--tasks", "bsuite/memory_len/3", "--backbones", "r2i,dreamerv3", "--jobs", "2", "--envs", "2",
      "--minutes", "30", "--output", out.path, "--set", "batch=4", "--set", "length=8", "--set", "prefill=20",
      "--set", "logEvery=20",
    ]
    let sweep = Process()
    sweep.executableURL = bench
    sweep.arguments = arguments
    sweep.standardOutput = FileHandle.nullDevice
    sweep.standardError = FileHandle.nullDevice
    try sweep.run()
    defer { if sweep.isRunning { kill(sweep.processIdentifier, SIGKILL) } }
    // Wait until both runs have written their first checkpoint.
    let runs = out.appendingPathComponent("runs")
    let folders = ["r2i", "dreamerv3"].map { runs.appendingPathComponent("bsuite-memory_len-3-\($0)-s0") }
    let deadline = Date().addingTimeInterval(60)
    while !folders.allSatisfy({ TrainingRun.progress(of: $0) != nil }) && Date() < deadline { usleep(100_000) }
    usleep(1_000_000)
    kill(sweep.processIdentifier, SIGTERM)
    sweep.waitUntilExit()
    // No run of this sweep is left: each folder's lock is free (a resume can take it).
    for folder in folders {
      let run = try TrainingRun.resume(from: folder)
      #expect(run.collector.steps > 0, "\(folder.lastPathComponent)")
    }
    let log = try String(contentsOf: runs.appendingPathComponent("bsuite-memory_len-3-r2i-s0.log"), encoding: .utf8)
    #expect(log.contains("stopped at env step"), "\(log.suffix(300))")
  }

  /// A task without success (discounting_chain: returns of 1.0 or 1.1) gets its BSuite score and
  /// no "first >= 90 %" or "held": those columns are about success rates, and a mean return that
  /// starts above 0.9 once compared with them as if the task were solved from its first window.
  @Test func aTaskWithoutSuccessLeavesTheSuccessColumnsEmpty() throws {
    let bench = try BuiltProducts.executable("r2i-bench")
    let out = temporaryFolder("memory-bench-chain")
    defer { try? FileManager.default.removeItem(at: out) }
    // 2 envs x 101-step episodes (the reset and 100 steps): 10,400 env steps finish 102 episodes,
    // more than the 100-episode window.
    let run = try runProcess(
      bench,
      [
        "memory", "--tasks", "bsuite/discounting_chain/1", "--backbones", "r2i", "--jobs", "1", "--envs", "2",
        "--steps", "10400", "--output", out.path, "--set", "batch=4", "--set", "length=8", "--set", "prefill=20",
        "--set", "logEvery=5000", "--set", "trainRatio=1", "--set", "evalEvery=0",
      ])
    #expect(run.status == 0, "\(run.standardError)\n\(run.standardOutput)")
    let text = try String(contentsOf: out.appendingPathComponent("memory.csv"), encoding: .utf8)
    let lines = text.split(separator: "\n").map {
      $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }
    try #require(lines.count == 2)
    let row = Dictionary(uniqueKeysWithValues: zip(lines[0], lines[1]))
    #expect((Int(row["episodes"] ?? "") ?? 0) >= 100, "\(row)")
    // The BSuite score follows the mean return over the last 100 episodes (the CSV rounds the
    // return to 3 digits and the score, 10 times as steep, to 2).
    let meanReturn = try #require(Double(row["return_last100"] ?? ""))
    let score = try #require(Double(row["score"] ?? ""))
    #expect(abs(score - min(max(1 - 10 * (1.1 - meanReturn), 0), 1)) < 0.011, "\(row)")
    #expect(row["success_last100"] == "" && row["first90_minutes"] == "" && row["first90_learner_steps"] == "")
    #expect(row["held90"] == "" && row["finished"] == "yes", "\(row)")
    let summary = try String(contentsOf: out.appendingPathComponent("memory.md"), encoding: .utf8)
    #expect(
      summary.contains("- r2i: BSuite discounting_chain score \(String(format: "%.2f", score)) (mean over 1 run)\n"))
  }

  /// `--probe-arms` writes one reading per metrics line: the policy's probabilities of the five
  /// arms (a distribution) and each arm's imagined return (finite); a resumed run keeps the
  /// readings up to its checkpoint and goes on after them, none repeated.
  @Test func theArmProbeWritesOneReadingPerMetricsLineAndResumesWithoutRepeats() throws {
    let bench = try BuiltProducts.executable("r2i-bench")
    let out = temporaryFolder("memory-bench-arms")
    defer { try? FileManager.default.removeItem(at: out) }
    func sweep(_ steps: Int) throws {
      let run = try runProcess(
        bench,
        [
          "memory", "--tasks", "bsuite/discounting_chain/0", "--backbones", "r2i", "--jobs", "1", "--envs", "2",
          "--steps", "\(steps)", "--output", out.path, "--probe-arms", "--set", "batch=4", "--set", "length=8",
          "--set", "prefill=20", "--set", "logEvery=200", "--set", "trainRatio=1", "--set", "evalEvery=0",
          "--set", "checkpointEvery=500",
        ])
      #expect(run.status == 0, "\(run.standardError)\n\(run.standardOutput)")
    }
    try sweep(1000)
    try sweep(1600)
    let folder = out.appendingPathComponent("runs/bsuite-discounting_chain-0-r2i-s0")
    let text = try String(contentsOf: folder.appendingPathComponent("arms.jsonl"), encoding: .utf8)
    let readings = try text.split(separator: "\n").map {
      try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
    let steps = readings.map { $0["envSteps"] as! Int }
    let logged = try MetricsLog.read(folder.appendingPathComponent("metrics.jsonl")).filter {
      $0["kind"] == .text("train")
    }
    #expect(steps == logged.map { Int($0["env_steps"]!.number!) }, "\(steps)")
    #expect(steps.count >= 5 && steps == steps.sorted() && Set(steps).count == steps.count)
    for r in readings {
      let p = r["probabilities"] as! [Double]
      let q = r["returns"] as! [Double]
      #expect(p.count == 5 && abs(p.reduce(0, +) - 1) < 1e-4 && p.allSatisfy { $0 > 0 })
      #expect(q.count == 5 && q.allSatisfy(\.isFinite))
    }
  }
}
