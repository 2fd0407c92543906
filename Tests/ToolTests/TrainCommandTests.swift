import Foundation
import Random
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
    FileManager.default.createFile(atPath: log.path, contents: nil)
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
    #expect(resumed.warnings.isEmpty && resumed.collector.steps == progress.envSteps)
  }

  /// SIGKILL at random moments from a new run's first instant on (starting when the folder
  /// holds no run, resuming when it does): after every kill the folder either holds no run and
  /// starts afresh, or resumes.
  @Test func aKillAtAnyMomentLeavesAFolderThatStartsOrResumes() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("kills")
    defer { try? FileManager.default.removeItem(at: root) }
    let folder = root.appendingPathComponent("run")
    var rng = SeededGenerator(seed: 9)
    var outcomes = (fresh: 0, resumed: 0)
    for round in 0..<16 {
      // Even rounds: a new run in an emptied folder, killed in its first 0.2 s; odd rounds: a
      // resume of whatever the folder holds, killed later.
      if round % 2 == 0 { try? FileManager.default.removeItem(at: folder) }
      let holds = FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path)
      let p = Process()
      p.executableURL = r2i
      p.arguments =
        holds
        ? ["train", "--run", folder.path, "--resume", "--steps", "1000000", "--threads", "1"]
        : ["train", "--run", folder.path, "--steps", "1000000"] + Self.tiny + ["--set", "checkpointEvery=4"]
      p.standardOutput = FileHandle.nullDevice
      p.standardError = FileHandle.nullDevice
      try p.run()
      usleep(UInt32(round % 2 == 0 ? rng.nextInt(below: 200_000) : 200_000 + rng.nextInt(below: 800_000)))
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
      if FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path) {
        let run = try TrainingRun.resume(from: folder)
        #expect(run.warnings.isEmpty, "round \(round): \(run.warnings)")
        outcomes.resumed += 1
      } else {
        var config = try TinyConfigs.training(steps: 1_000_000)
        config.checkpointEvery = 4
        #expect(try TrainingRun.start(config: config, in: folder).collector.steps == 0, "round \(round)")
        outcomes.fresh += 1
      }
    }
    print("kills from the first instant: \(outcomes.fresh) left no run, \(outcomes.resumed) resumed")
    #expect(outcomes.resumed > 0)
  }

  /// SIGKILL at random moments of a run that checkpoints every few steps: the folder always
  /// resumes from a complete checkpoint.
  @Test func aKilledRunAlwaysResumesFromACompleteCheckpoint() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let folder = temporaryFolder("killed")
    defer { try? FileManager.default.removeItem(at: folder) }
    var config = try TinyConfigs.training(steps: 1_000_000)
    config.checkpointEvery = 4
    config.evalEvery = 0
    _ = try TrainingRun.start(config: config, in: folder)
    var rng = SeededGenerator(seed: 5)
    var lastSteps = 0
    var advanced = 0
    for round in 0..<12 {
      let p = Process()
      p.executableURL = r2i
      p.arguments = ["train", "--run", folder.path, "--resume", "--threads", "1"]
      p.standardOutput = FileHandle.nullDevice
      p.standardError = FileHandle.nullDevice
      try p.run()
      usleep(UInt32(300_000 + rng.nextInt(below: 1_200_000)))
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
      let run = try TrainingRun.resume(from: folder)
      // The checkpoint's own replay manifest: never the newer-replay path that is not bit-exact.
      #expect(run.warnings.isEmpty, "round \(round): \(run.warnings)")
      #expect(run.collector.steps >= lastSteps, "round \(round): the checkpoint went back")
      if run.collector.steps > lastSteps { advanced += 1 }
      lastSteps = run.collector.steps
    }
    #expect(advanced >= 3, "the runs were killed before making progress; the test proves nothing")
    // The next checkpoint leaves exactly its own files (state.json and the parts it names),
    // whatever the kills left behind.
    try TrainingRun.resume(from: folder).checkpoint()
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("checkpoint").path)
    let state =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: folder.appendingPathComponent("checkpoint/state.json"))) as? [String: Any]
    let named = try #require(state?["files"] as? [String: String])
    #expect(named.count == 4, "\(named)")
    #expect(Set(files) == Set(named.values).union(["state.json"]), "checkpoint files pile up: \(files)")
    print("kill loop: 12 kills, the run reached env step \(lastSteps), advanced in \(advanced) rounds")
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
    #expect(table.allSatisfy { $0[3] == "1000" && $0[4] == "245" && $0.last == "yes" }, "\(table)")
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
    #expect(table.allSatisfy { $0[3] == "1100" && $0[4] == "270" }, "\(table)")
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
      #expect(run.collector.steps > 0 && run.warnings.isEmpty, "\(folder.lastPathComponent)")
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
}
