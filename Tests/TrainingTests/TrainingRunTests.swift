import Agent
import Envs
import Foundation
import Replay
import TestSupport
import Testing
import WorldModel

@testable import Training

/// The tiny training configuration of every test here.
func tinyTrainingConfig(env: String = "bsuite/memory_len/3", backbone: Backbone = .r2i, steps: Int = 240) throws
  -> TrainingConfig
{
  try TinyConfigs.training(env: env, backbone: backbone, steps: steps)
}

/// The metrics lines without their wall-clock fields.
func deterministicLines(_ folder: URL) throws -> [[String: MetricValue]] {
  try MetricsLog.read(folder.appendingPathComponent("metrics.jsonl")).map { line in
    line.filter { !["seconds", "steps_per_second", "update_ms"].contains($0.key) }
  }
}

@Suite struct TrainRatioTests {
  @Test func theRatioOwesTheStatedNumberOfLearnerSteps() {
    var rng = SeededGenerator(seed: 3)
    for (ratio, perUpdate) in [(64.0, 1024), (2.0, 32), (0.75, 100), (512, 16 * 64)] {
      var r = TrainRatio(ratio: ratio, stepsPerUpdate: perUpdate)
      var steps = 0
      var owed = 0
      for _ in 0..<500 {
        let n = 1 + rng.nextInt(below: 16)
        steps += n
        owed += r.updates(forEnvSteps: n)
        // Never ahead, and never a whole step behind, of steps x ratio / (B x T).
        let exact = Double(steps) * ratio / Double(perUpdate)
        #expect(Double(owed) <= exact + 1e-9 && Double(owed) > exact - 1 - 1e-9, "\(ratio) \(perUpdate) at \(steps)")
      }
    }
  }
}

@Suite struct BatchEnvSnapshotTests {
  @Test(arguments: ["bsuite/memory_len/5", "classic/CartPole", "popgym/RepeatPreviousEasy", "memorymaze/9x9"])
  func aRestoredBatchContinuesExactlyAsTheOriginal(_ name: String) throws {
    let a = try BatchEnv(name: name, count: 3, seed: 11)
    var rng = SeededGenerator(seed: 12)
    for _ in 0..<37 { _ = try a.step((0..<3).map { _ in a.actionSpace.sample(using: &rng) }) }
    let snapshot = a.snapshot()
    let b = try BatchEnv(name: name, count: 3, seed: 999)  // another seed: everything comes from the snapshot
    try b.restore(snapshot)
    #expect(b.snapshot() == snapshot)
    for _ in 0..<60 {
      let actions = (0..<3).map { _ in a.actionSpace.sample(using: &rng) }
      #expect(try a.step(actions) == b.step(actions), "\(name)")
    }
    // A snapshot survives JSON.
    let decoded = try JSONDecoder().decode(BatchEnv.Snapshot.self, from: JSONEncoder().encode(a.snapshot()))
    #expect(decoded == a.snapshot())
    let wrongCount = try BatchEnv(name: name, count: 2, seed: 0)
    #expect(throws: EnvError.self) { try wrongCount.restore(snapshot) }
  }
}

@Suite(.serialized) struct TrainingRunTests {
  /// N steps in one go equal N/2 steps, a stop, and a resume for the rest: parameters, learner
  /// state and every metrics line (bar wall-clock fields) bit for bit.
  @Test(arguments: Backbone.allCases)
  func aStoppedAndResumedRunEqualsAnUninterruptedOne(_ backbone: Backbone) throws {
    let config = try tinyTrainingConfig(backbone: backbone)
    let whole = temporaryFolder("whole")
    let split = temporaryFolder("split")
    defer {
      try? FileManager.default.removeItem(at: whole)
      try? FileManager.default.removeItem(at: split)
    }
    let a = try TrainingRun.start(config: config, in: whole)
    let summaryA = try a.run()
    #expect(summaryA.envSteps == 240 && !summaryA.stoppedEarly)
    #expect(a.updates > 5, "the test needs learner steps on both sides of the stop")

    let b = try TrainingRun.start(config: config, in: split)
    let first = try b.run { event in
      if case .collected(let steps) = event, steps >= 130 { return .stop }
      return .proceed
    }
    #expect(first.stoppedEarly && first.envSteps == 130)
    #expect(b.updates > 0 && b.updates < a.updates)
    let c = try TrainingRun.resume(from: split)
    try c.run()

    let pa = a.agent.namedParameters()
    let pc = c.agent.namedParameters()
    #expect(pa.map(\.name) == pc.map(\.name))
    for (x, y) in zip(pa, pc) { #expect(x.parameter.value == y.parameter.value, "\(backbone): \(x.name) differs") }
    let la = a.learner.stateTensors()
    let lc = c.learner.stateTensors()
    for (x, y) in zip(la, lc) { #expect(x.0 == y.0 && x.1 == y.1, "\(backbone): learner state \(x.0) differs") }
    #expect(a.updates == c.updates && a.episodes == c.episodes)
    let linesA = try deterministicLines(whole)
    let linesC = try deterministicLines(split)
    #expect(linesA.count == linesC.count && linesA.count > 10)
    for (i, (x, y)) in zip(linesA, linesC).enumerated() {
      #expect(x == y, "\(backbone): metrics line \(i + 1) differs")
    }
  }

  @Test func learnerStepsFollowTheTrainRatioAfterPrefill() throws {
    let config = try tinyTrainingConfig(steps: 200)
    let folder = temporaryFolder("ratio")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    var updateSteps: [Int] = []
    try run.run { event in
      if case .update(let u) = event { updateSteps.append(u.envSteps) }
      return .proceed
    }
    // (200 - 48) env steps x ratio 2 / 32 replayed per step = 9.5 -> 9 learner steps, none in prefill.
    #expect(run.updates == 9 && updateSteps.count == 9)
    #expect(updateSteps.allSatisfy { $0 > 48 })
    let trainLines = try MetricsLog.read(folder.appendingPathComponent("metrics.jsonl")).filter {
      $0["kind"] == .text("train")
    }
    #expect(trainLines.count == 5)  // every 40 env steps
    #expect(trainLines.compactMap { $0["learner_steps_in_line"]?.number }.reduce(0, +) == 9)
  }

  /// Evaluation acts as `evaluation` says: sampling from the policy by default (the paper's),
  /// its most likely actions with `greedy`; the report says which.
  @Test(arguments: EvaluationMode.allCases)
  func evaluationActsAsTheSettingSays(_ mode: EvaluationMode) throws {
    var config = try tinyTrainingConfig(env: "classic/CartPole", steps: 10)
    #expect(config.evaluation == .sample)
    config.evaluation = mode
    let folder = temporaryFolder("eval")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    let report = try run.evaluate(episodes: 3, index: 5)
    #expect(report.episodes.count == 3 && report.mode == mode)
    #expect("\(report)".contains(mode == .greedy ? "greedy score" : "sampled score"))
    // The same episodes from a collector acting in that mode on the evaluation's seeds, and
    // other ones from the other mode.
    func collect(_ mode: Agent.Mode) throws -> [EpisodeRecord] {
      var seeds = SeededGenerator(seed: config.seed &+ 5, stream: StreamTag.evaluation)
      let envs = try BatchEnv(name: config.env, count: 2, seed: seeds.next())
      let c = try Collector(agent: run.agent, envs: envs, seed: seeds.next())
      var done: [EpisodeRecord] = []
      while done.count < 3 { done += try c.step(.agent(mode)) }
      return Array(done.prefix(3))
    }
    let (same, other): (Agent.Mode, Agent.Mode) = mode == .greedy ? (.greedy, .sample) : (.sample, .greedy)
    #expect(try collect(same) == report.episodes)
    #expect(try collect(other) != report.episodes)
  }

  @Test func aNonFiniteLossStopsTheRunAndKeepsTheLastGoodCheckpoint() throws {
    let config = try tinyTrainingConfig(steps: 240)
    let folder = temporaryFolder("nan")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    var checkpointSteps: [Int] = []
    do {
      try run.run { event in
        if case .checkpoint(let c) = event { checkpointSteps.append(c.envSteps) }
        if case .update(let u) = event, u.updates == 6 {
          // Poison one weight: the next learner step's losses become NaN.
          let p = run.agent.worldModel.namedParameters().first { $0.name.hasPrefix("encoder") }!.parameter
          var v = p.value
          v.withUnsafeMutableBufferPointer { $0[0] = Float.nan }
          p.value = v
        }
        return .proceed
      }
      Issue.record("the run did not stop on a NaN")
    } catch let TrainingError.nonFinite(term, update, envSteps) {
      #expect(update == 7, "stopped at learner step \(update)")
      #expect(term.contains("loss"), "named \(term)")
      #expect(envSteps > checkpointSteps.last ?? 0)
    }
    // The folder resumes from the last checkpoint written before the NaN, with finite weights.
    let resumed = try TrainingRun.resume(from: folder)
    #expect(resumed.collector.steps == checkpointSteps.last)
    #expect(resumed.agent.parameters.allSatisfy { $0.value.scalars.allSatisfy(\.isFinite) })
  }

  /// The NaN guard's advice: a resume may lower the learning rates. The new rates drive the
  /// optimisers from the checkpoint on, `config.json` records each change with the step it
  /// took effect at (and keeps it for later resumes), and any other change is refused with the
  /// folder left as it was.
  @Test func aResumeMayChangeTheLearningRatesAndRecordsIt() throws {
    let config = try tinyTrainingConfig(steps: 120)
    let folder = temporaryFolder("adjust")
    defer { try? FileManager.default.removeItem(at: folder) }
    _ = try TrainingRun.start(config: config, in: folder).run()
    let before = try folderContents(folder)

    var other = config
    other.agent.worldModel.optimizer.learningRate = 2.5e-4
    other.batch += 1
    #expect(throws: TrainingError.self) { try TrainingRun.resume(from: folder, adjusting: other) }
    other.batch = config.batch
    other.agent.actorCritic.actorOptimizer.learningRate = -1
    #expect(throws: TrainingError.self) { try TrainingRun.resume(from: folder, adjusting: other) }
    #expect(try folderContents(folder) == before, "a refused resume changed the folder")

    other.agent.actorCritic.actorOptimizer.learningRate = 1e-5
    let adjusted = try TrainingRun.resume(from: folder, steps: 160, adjusting: other)
    #expect(adjusted.learner.worldModelTrainer.optimizer.learningRate == 2.5e-4)
    #expect(adjusted.learner.actorCritic.actorOptimizer.learningRate == 1e-5)
    #expect(
      adjusted.learner.actorCritic.criticOptimizer.learningRate
        == config.agent.actorCritic.criticOptimizer.learningRate)
    let expected = [
      SettingAdjustment(
        setting: "agent.worldModel.optimizer.learningRate",
        from: config.agent.worldModel.optimizer.learningRate, to: 2.5e-4, envSteps: 120),
      SettingAdjustment(
        setting: "agent.actorCritic.actorOptimizer.learningRate",
        from: config.agent.actorCritic.actorOptimizer.learningRate, to: 1e-5, envSteps: 120),
    ]
    #expect(adjusted.config.adjustments == expected)
    #expect(try adjusted.run().envSteps == 160)
    let stored = try TrainingRun.configuration(of: folder)
    #expect(stored.adjustments == expected && stored.steps == 120, "\(stored.adjustments)")
    #expect(stored.agent.worldModel.optimizer.learningRate == 2.5e-4)

    // A later resume keeps the new rates and the record; --set cannot forge the record.
    let again = try TrainingRun.resume(from: folder, steps: 170)
    #expect(again.learner.worldModelTrainer.optimizer.learningRate == 2.5e-4 && again.config.adjustments == expected)
    #expect(throws: TrainingError.self) { try config.applying(["adjustments=[]"]) }
  }

  @Test func aRunFolderIsNeverTakenOverAndDamageIsNamed() throws {
    let config = try tinyTrainingConfig(steps: 60)
    let folder = temporaryFolder("taken")
    defer { try? FileManager.default.removeItem(at: folder) }
    try TrainingRun.start(config: config, in: folder).run()
    #expect(throws: TrainingError.self) { try TrainingRun.start(config: config, in: folder) }
    let state = folder.appendingPathComponent("checkpoint/state.json")
    try Data("{ not json".utf8).write(to: state)
    #expect {
      try TrainingRun.resume(from: folder)
    } throws: { error in
      "\(error)".contains("state.json") && "\(error)".contains("damaged")
    }
  }

  /// A kill between the replay's save and `state.json` leaves a newer replay beside the
  /// checkpoint's: the checkpoint names its own replay manifest, so the resume reads exactly
  /// the replay it saved, without a warning, and the running episodes go on.
  @Test func aReplaySavedAfterItsCheckpointIsIgnoredAndTheResumeIsExact() throws {
    let config = try tinyTrainingConfig(steps: 100)
    let folder = temporaryFolder("newer")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    try run.run { event in
      if case .collected(let steps) = event, steps >= 66 { return .stop }
      return .proceed
    }
    let inserted = run.replay.inserted
    // Mid-episode in both environments (memory_len/3: a reset and 4 steps per episode).
    let seeds = run.collector.envs.snapshot().episodeSeeds
    #expect(seeds.allSatisfy { $0 != nil })
    for _ in 0..<5 { try run.collector.step(.agent(.sample), into: run.replay) }
    // What a checkpoint killed after its replay save leaves: a newer manifest of its own, and
    // (a direct save) a newer manifest.json.
    let replayFolder = folder.appendingPathComponent("replay")
    try run.replay.save(to: replayFolder, manifestName: "manifest-killed.json")
    try run.replay.save(to: replayFolder)
    let resumed = try TrainingRun.resume(from: folder)
    #expect(resumed.collector.steps == 66 && resumed.replay.inserted == inserted)
    #expect(resumed.collector.envs.snapshot().episodeSeeds == seeds, "the running episodes did not go on")
    // The next checkpoint retires the stray manifests, and its replay loads on its own.
    try resumed.run()
    let manifests = try FileManager.default.contentsOfDirectory(atPath: replayFolder.path).filter {
      $0.hasPrefix("manifest")
    }
    #expect(manifests.count == 2 && manifests.contains("manifest.json"), "\(manifests)")
    #expect(try Replay.load(from: replayFolder).replay.inserted == resumed.replay.inserted)
  }

  @Test func settingsChangeNamedKeysAndRejectUnknownOnes() throws {
    let c = try tinyTrainingConfig()
    let changed = try c.applying(["trainRatio=32", "agent.actorCritic.entropy=0.001", "env=bsuite/memory_len/4"])
    #expect(
      changed.trainRatio == 32 && changed.agent.actorCritic.entropy == 0.001 && changed.env == "bsuite/memory_len/4")
    #expect(throws: TrainingError.self) { try c.applying(["trainRatoi=3"]) }
    #expect(throws: TrainingError.self) { try c.applying(["agent.actorCritic=3"]) }
    #expect(throws: TrainingError.self) { try c.applying(["trainRatio"]) }
    #expect(throws: TrainingError.self) { try c.applying(["batch=many"]) }
    // The optional wall-clock budget can be set and cleared, and is checked.
    #expect(try c.applying(["minutes=2.5"]).minutes == 2.5)
    #expect(try c.applying(["minutes=2.5"]).applying(["minutes=null"]).minutes == nil)
    #expect(throws: TrainingError.self) { try c.applying(["minutes=-1"]).validate() }
    // Optional settings inside the agent, absent from the JSON when unset, can be set too.
    let nested = try c.applying(["agent.worldModel.headInput=full", "agent.actorCritic.imaginationStarts=64"])
    #expect(nested.agent.worldModel.headInput == .full && nested.agent.actorCritic.imaginationStarts == 64)
    #expect(
      try nested.applying(["agent.actorCritic.imaginationStarts=null"]).agent.actorCritic.imaginationStarts == nil)
    #expect(throws: TrainingError.self) { try c.applying(["agent.worldModel.headInput=everything"]) }
    #expect(throws: TrainingError.self) { try c.applying(["agent.actorCritic.imaginationStarts=0"]).validate() }
    // A configuration without a budget has no `minutes` key (run folders written before it existed read alike).
    let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as! [String: Any]
    #expect(json["minutes"] == nil)
    #expect(try JSONDecoder().decode(TrainingConfig.self, from: JSONEncoder().encode(c)) == c)
  }

  /// A version-1 configuration (no version, the settings added since absent, unset options as
  /// null) reads as version 4 with the values version 1 meant; a newer version is refused.
  @Test func aVersionOneConfigurationIsMigrated() throws {
    var c = try tinyTrainingConfig()
    c.sampling = .episodes
    c.agent.worldModel.rewardByAction = true
    (c.logSeconds, c.checkpointKeep, c.openLoopMinutes) = (30, 3, 5)
    var object = try JSONSerialization.jsonObject(with: c.encoded()) as! [String: Any]
    #expect(object["version"] as? Int == 4)
    for key in ["version", "sampling", "evaluation", "logSeconds", "checkpointKeep", "openLoopMinutes"] {
      object[key] = nil
    }
    var agent = object["agent"] as! [String: Any]
    var model = agent["worldModel"] as! [String: Any]
    model["rewardByAction"] = NSNull()
    model["headInput"] = nil
    var ssm = model["ssm"] as! [String: Any]
    for key in ["minStep", "maxStep", "inputScale", "resetsAtEpisodeStart"] { ssm[key] = nil }
    model["ssm"] = ssm
    var optimizer = model["optimizer"] as! [String: Any]
    optimizer["weightDecay"] = nil
    model["optimizer"] = optimizer
    agent["worldModel"] = model
    object["agent"] = agent
    let migrated = try TrainingConfig.decode(JSONSerialization.data(withJSONObject: object), source: "v1.json")
    var expected = c
    expected.sampling = .uniform
    expected.agent.worldModel.rewardByAction = false
    expected.evaluation = .greedy  // what version 1 and 2 runs did
    (expected.logSeconds, expected.checkpointKeep, expected.openLoopMinutes) = (0, 1, 0)  // and versions 1 to 3
    #expect(migrated == expected)
    #expect(migrated.agent.worldModel.ssm.minStep == 0.001 && migrated.agent.worldModel.ssm.inputScale == 1)
    #expect(migrated.agent.worldModel.ssm.resetsAtEpisodeStart && migrated.agent.worldModel.optimizer.weightDecay == 0)
    object["version"] = 5
    #expect {
      try TrainingConfig.decode(JSONSerialization.data(withJSONObject: object), source: "v5.json")
    } throws: { "\($0)".contains("version 5") && "\($0)".contains("v5.json") }
    #expect(throws: TrainingError.self) { try TrainingConfig.decode(Data("[1]".utf8), source: "list.json") }
  }

  @Test func aWallClockBudgetEndsTheRunAndCountsEarlierSessions() throws {
    var config = try tinyTrainingConfig(steps: 240)
    config.minutes = 0.004  // 0.24 s
    let folder = temporaryFolder("budget")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    // A clock of the test's own: a loaded machine cannot spend the budget before the third step.
    let clock = FakeClock()
    run.clock = WallClock(now: clock.now)
    var collected = 0
    let summary = try run.run { event in
      if case .collected = event {
        collected += 1
        if collected == 3 { clock.advance(0.3) }  // the budget is spent during the third step
      }
      return .proceed
    }
    #expect(summary.budgetReached && summary.stoppedEarly)
    #expect(summary.envSteps == 3 * config.envs && collected == 3)
    let progress = try #require(TrainingRun.progress(of: folder))
    #expect(progress.envSteps == 3 * config.envs && progress.seconds >= 0.24)
    #expect(TrainingRun.isFinished(progress, config: config))
    var longer = config
    longer.minutes = 10
    #expect(!TrainingRun.isFinished(progress, config: longer))
    // Resumed under the same budget: the earlier session's time counts, so nothing more is done.
    let metricsBytes = try Data(contentsOf: folder.appendingPathComponent("metrics.jsonl")).count
    let stateBefore = try Data(contentsOf: folder.appendingPathComponent("checkpoint/state.json"))
    let again = try TrainingRun.resume(from: folder)
    let second = try again.run()
    #expect(try Data(contentsOf: folder.appendingPathComponent("checkpoint/state.json")) == stateBefore)
    #expect(second.envSteps == 3 * config.envs && second.budgetReached)
    #expect(try Data(contentsOf: folder.appendingPathComponent("metrics.jsonl")).count == metricsBytes)
    // With a larger budget it trains on to its steps.
    let third = try TrainingRun.resume(from: folder, steps: 20, minutes: 10).run()
    #expect(third.envSteps == 20 && !third.budgetReached && !third.stoppedEarly)
  }

  /// `open` starts a run, resumes it under new steps and budget, and refuses another configuration
  /// without touching the folder.
  @Test func openStartsResumesAndRefusesAnotherConfiguration() throws {
    let config = try tinyTrainingConfig(steps: 8)
    let folder = temporaryFolder("open")
    defer { try? FileManager.default.removeItem(at: folder) }
    let (first, resumedFirst) = try TrainingRun.open(config: config, in: folder)
    #expect(!resumedFirst && first.collector.steps == 0)
    #expect(try first.run().envSteps == 8)
    var longer = config
    longer.steps = 16
    longer.minutes = 5
    let (second, resumed) = try TrainingRun.open(config: longer, in: folder)
    #expect(resumed && second.collector.steps == 8 && second.config.steps == 16 && second.config.minutes == 5)
    #expect(try second.run().envSteps == 16)
    let state = try Data(contentsOf: folder.appendingPathComponent("checkpoint/state.json"))
    var other = longer
    other.batch += 1
    #expect(
      config.difference(from: other)
        == "batch \(config.batch) x \(config.length), not \(other.batch) x \(config.length)")
    #expect(config.difference(from: longer) == nil)
    do {
      _ = try TrainingRun.open(config: other, in: folder)
      Issue.record("another configuration was opened")
    } catch let e as TrainingError {
      #expect("\(e)".contains("another configuration (batch"), "\(e)")
    }
    #expect(try Data(contentsOf: folder.appendingPathComponent("checkpoint/state.json")) == state)
  }

  /// A run whose config.json is version 3 (no watching settings: they read as 0, 0 and 1)
  /// resumes under today's defaults (60 s, 10 min, 1), which change nothing it computes; a
  /// resume that gives other watching values keeps them in config.json.
  @Test func aVersionThreeRunResumesUnderTodaysWatchingDefaults() throws {
    var config = try tinyTrainingConfig(steps: 8)
    let folder = temporaryFolder("open-v3")
    defer { try? FileManager.default.removeItem(at: folder) }
    try TrainingRun.start(config: config, in: folder).run()
    let file = folder.appendingPathComponent("config.json")
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
    for key in ["crc32", "logSeconds", "openLoopMinutes", "checkpointKeep"] { object[key] = nil }
    object["version"] = 3
    try JSONSerialization.data(withJSONObject: object).write(to: file)
    (config.logSeconds, config.openLoopMinutes, config.checkpointKeep) = (60, 10, 1)
    config.steps = 16
    let (run, resumed) = try TrainingRun.open(config: config, in: folder)
    #expect(resumed && run.config.logSeconds == 0 && run.config.openLoopMinutes == 0)
    try run.run()
    var watching = config
    (watching.logSeconds, watching.openLoopMinutes, watching.checkpointKeep) = (5, 2, 3)
    watching.steps = 24
    let again = try TrainingRun.resume(from: folder, steps: 24, adjusting: watching)
    #expect(again.config.logSeconds == 5 && again.config.openLoopMinutes == 2 && again.config.checkpointKeep == 3)
    let stored = try TrainingRun.configuration(of: folder)
    #expect(stored.logSeconds == 5 && stored.openLoopMinutes == 2 && stored.checkpointKeep == 3 && stored.steps == 8)
  }
}

@Suite struct SamplingSettingTests {
  /// `sampling=episodes` gives learner batches that hold whole episodes from their first step,
  /// padded with mask 0; uniform windows start anywhere.
  @Test func episodeSamplingStartsEveryRowAtAnEpisodeStart() throws {
    var firstOfRow: [String: [Bool]] = [:]
    for (name, sampling) in [("uniform", SamplingMode.uniform), ("episodes", .episodes)] {
      var config = try tinyTrainingConfig(env: "bsuite/memory_len/3", steps: 48).applying(["sampling=\(name)"])
      config.batch = 16
      #expect(config.sampling == sampling)
      let folder = temporaryFolder("sampling")
      defer { try? FileManager.default.removeItem(at: folder) }
      let run = try TrainingRun.start(config: config, in: folder)
      try run.run()
      let batch = try #require(try run.sampleBatch())
      let t = config.length
      // The first observation of an episode has the timer 1 - t/L at 1 (and the cue); later
      // steps count down. (isFirst cannot tell: the replay sets it on every window's first step.)
      let size = batch.layout.vectorSize
      firstOfRow[name] = (0..<config.batch).map { batch.vectors[$0 * t * size] == 1 }
      if sampling == .episodes {
        // memory_len/3 episodes are 5 entries (the reset, then 4 steps), then padding.
        for row in 0..<config.batch {
          #expect(Array(batch.mask[(row * t)..<(row * t + t)]) == [1, 1, 1, 1, 1, 0, 0, 0])
          #expect(batch.isLast[row * t + 4] == 1)
        }
      }
    }
    #expect(firstOfRow["episodes"]!.allSatisfy { $0 })
    #expect(firstOfRow["uniform"]!.contains(false))
    #expect(throws: TrainingError.self) { try tinyTrainingConfig().applying(["sampling=shuffled"]) }
  }

  /// memory_len learns from whole episodes by default (the reset and L + 1 steps); other tasks
  /// from uniform windows of 64.
  @Test func memoryLengthDefaultsHoldWholeEpisodes() throws {
    for l in [3, 10, 100] {
      let c = try TrainingConfig.defaults(env: "bsuite/memory_len/\(l)", backbone: .r2i)
      #expect(c.sampling == .episodes && c.length == l + 2)
      #expect(c.agent.actorCritic.imaginationStarts == TrainingConfig.memoryTaskImaginationStarts)
      #expect(c.agent.actorCritic.actorOptimizer.learningRate == 3e-5)
      #expect(c.agent.worldModel.rewardByAction)
      // An episode is exactly that long: the reset, L steps with reward 0 and the terminal step.
      let env = try EnvRegistry.make("bsuite/memory_len/\(l)", seed: 1)
      _ = try env.reset(seed: 1)
      var entries = 1
      while try !env.step(.discrete(0)).isLast { entries += 1 }
      #expect(entries + 1 == c.length)
    }
    for env in ["classic/CartPole", "bsuite/discounting_chain/0", "memorymaze/9x9"] {
      let c = try TrainingConfig.defaults(env: env, backbone: .dreamerv3)
      #expect(c.sampling == .uniform && c.length == 64)
      #expect(c.agent.actorCritic.imaginationStarts == nil && !c.agent.worldModel.rewardByAction)
      #expect(c.agent.actorCritic.actorOptimizer.learningRate == 3e-4)  // the small preset's
    }
  }

  /// POPGym games learn from whole episodes too: the reset and every step (hand-counted from
  /// docs/environments.md: N - 1 steps for a deck of N, Autoencode 2N - 1), cut at 1,024; the reward head
  /// goes by action only where an action is one discrete choice (not Battleship's row and column).
  @Test func popGymDefaultsHoldWholeEpisodes() throws {
    let lengths = [
      "popgym/RepeatPreviousEasy": 52, "popgym/RepeatPreviousHard": 156, "popgym/AutoencodeMedium": 208,
      "popgym/RepeatFirstHard": 832, "popgym/ConcentrationMedium": 209, "popgym/BattleshipEasy": 65,
    ]
    for (env, length) in lengths {
      for backbone in Backbone.allCases {
        let c = try TrainingConfig.defaults(env: env, backbone: backbone)
        #expect(c.sampling == .episodes && c.length == length, "\(env): \(c.length)")
        #expect(c.agent.actorCritic.imaginationStarts == TrainingConfig.memoryTaskImaginationStarts)
        #expect(c.agent.actorCritic.actorOptimizer.learningRate == 3e-5)
        #expect(c.agent.worldModel.rewardByAction == (env != "popgym/BattleshipEasy"), "\(env)")
        try c.validate()
      }
    }
    let memoryTask = TaskFacts(needsMemory: true)
    #expect(TrainingConfig.sequenceDefaults(task: memoryTask, maxEpisodeSteps: 5000).length == 1024)
    #expect(TrainingConfig.sequenceDefaults(task: memoryTask, maxEpisodeSteps: nil).sampling == .uniform)
    #expect(TrainingConfig.sequenceDefaults(task: TaskFacts(), maxEpisodeSteps: 100).sampling == .uniform)
    // A by-action head on multi-discrete actions is refused, naming the key.
    let battleship = try TrainingConfig.defaults(env: "popgym/BattleshipEasy", backbone: .r2i)
    #expect {
      try battleship.applying(["agent.worldModel.rewardByAction=true"]).validate()
    } throws: { error in
      "\(error)".contains("rewardByAction") && "\(error)".contains("multi-discrete")
    }
    let pendulum = try TrainingConfig.defaults(env: "classic/Pendulum", backbone: .r2i)
    #expect {
      try pendulum.applying(["agent.worldModel.rewardByAction=true"]).validate()
    } throws: { error in
      "\(error)".contains("rewardByAction") && "\(error)".contains("continuous")
    }
  }
}

@Suite struct RunResultsTests {
  /// A new run folder with a tiny configuration and an empty metrics log.
  static func runFolder(_ name: String) throws -> (URL, MetricsLog) {
    let folder = temporaryFolder(name)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try tinyTrainingConfig().encoded().write(to: folder.appendingPathComponent("config.json"))
    return (folder, try MetricsLog(url: folder.appendingPathComponent("metrics.jsonl"), truncatingTo: 0))
  }

  /// The recent figures, the curve and the last evaluation against hand-computed values.
  @Test func resultsAreReadFromTheMetrics() throws {
    let (folder, log) = try Self.runFolder("results")
    defer { try? FileManager.default.removeItem(at: folder) }
    let episodes: [(Double, Bool)] = [(1, true), (-1, false), (-1, false), (1, true), (1, true)]
    for (i, e) in episodes.enumerated() {
      let stamp = LineStamp(kind: "episode", envSteps: 10 * (i + 1), updates: i, seconds: Double(i))
      let record = EpisodeRecord(environment: 0, score: e.0, length: 4, success: e.1)
      try log.write(.episode(EpisodeLine(stamp: stamp, episode: record)))
      if i == 2 {
        let stamp = LineStamp(kind: "eval", envSteps: 30, updates: 2, seconds: 2.5)
        try log.write(.evaluation(EvaluationLine(stamp: stamp, score: 0.5, length: 4, episodes: 4, success: 0.75)))
      }
    }
    try log.write(
      .train(TrainLine(stamp: LineStamp(kind: "train", envSteps: 55, updates: 9, seconds: 7), learnerSteps: 0)))
    try log.synchronize()
    let r = try RunResults.read(folder, window: 3)
    #expect(r.envSteps == 55 && r.updates == 9 && r.seconds == 7 && r.episodes == 5)
    #expect(r.recentScore == 1.0 / 3 && r.recentSuccess == 2.0 / 3)
    #expect(r.evaluationScore == 0.5 && r.evaluationSuccess == 0.75)
    // Success over the last (up to) 3 episodes after each one.
    let expected: [Double] = [1, 0.5, 1.0 / 3, 1.0 / 3, 2.0 / 3]
    #expect(r.curve.map(\.value) == expected)
    let scores: [Double] = [1, 0, -1.0 / 3, -1.0 / 3, 1.0 / 3]  // mean score over the same windows
    #expect(r.curve.map(\.score) == scores)
    #expect(
      RunResults.curve(try MetricsLog.lines(folder.appendingPathComponent("metrics.jsonl")), window: 3) == r.curve)
    #expect(r.curve.map(\.envSteps) == [10, 20, 30, 40, 50])
    #expect(r.curve.map(\.updates) == [0, 1, 2, 3, 4])
    // The first two points (1 and 0.5) average over fewer than 3 episodes and do not count.
    #expect(r.first(reaching: 0.9) == nil)
    #expect(r.first(reaching: 0.3)?.envSteps == 30 && r.first(reaching: 0.3)?.updates == 2)
    #expect(r.shareHeld(atOrAbove: 0.3) == 1)
    #expect(r.first(reaching: 0.5)?.envSteps == 50 && r.shareHeld(atOrAbove: 0.5) == nil)  // nothing after it
  }

  /// A run that solves, falls back and recovers: the first full window at the threshold and the
  /// share of later points that held it, against values counted by hand.
  @Test func solvedAndHeldFollowTheCurve() throws {
    let (folder, log) = try Self.runFolder("held")
    defer { try? FileManager.default.removeItem(at: folder) }
    for (i, s) in [1, 1, 0, 0, 1, 1, 1, 0].enumerated() {
      let stamp = LineStamp(kind: "episode", envSteps: 10 * (i + 1), updates: 3 * i, seconds: 60 * Double(i))
      let record = EpisodeRecord(environment: 0, score: s == 1 ? 1 : -1, length: 4, success: s == 1)
      try log.write(.episode(EpisodeLine(stamp: stamp, episode: record)))
    }
    try log.synchronize()
    let r = try RunResults.read(folder, window: 2)
    // Windows of 2: 1, 1, 0.5, 0, 0.5, 1, 1, 0.5 (the first has one episode only).
    #expect(r.curve.map(\.value) == [1, 1, 0.5, 0, 0.5, 1, 1, 0.5])
    let solved = try #require(r.first(reaching: 0.9))
    #expect(solved.envSteps == 20 && solved.updates == 3 && solved.seconds == 60)
    // After it: 0.5, 0, 0.5, 1, 1, 0.5; two of six at or above 0.9.
    #expect(r.shareHeld(atOrAbove: 0.9) == 2.0 / 6)
    #expect(r.shareHeld(atOrAbove: 0.5) == 5.0 / 6)  // first at the second point; only the 0 falls below
    #expect(r.first(reaching: 1.5) == nil && r.shareHeld(atOrAbove: 1.5) == nil)
  }

  /// The scores the environments declare follow the BSuite rules, and the defaults ask the
  /// environment, not its name.
  @Test func taskScoresFollowTheBSuiteRules() throws {
    func score(_ env: String, _ success: Double?, _ meanReturn: Double) throws -> Double? {
      try EnvRegistry.make(env).task.score?.score(success: success, meanReturn: meanReturn)
    }
    // memory_len: solved when 2 x wrong share < 0.75, i.e. success above 0.625.
    #expect(try score("bsuite/memory_len/30", 0.63, 0) == 1)
    #expect(try score("bsuite/memory_len/30", 0.62, 0) == 0)
    #expect(try score("bsuite/memory_len/30", nil, 0) == nil)
    // discounting_chain: clip(1 - 10 (1.1 - mean return), 0, 1).
    #expect(abs(try score("bsuite/discounting_chain/2", nil, 1.05)! - 0.5) < 1e-12)
    #expect(try score("bsuite/discounting_chain/2", nil, 0.2) == 0)
    #expect(try score("popgym/RepeatPreviousEasy", nil, 0.9) == nil)
    #expect(try EnvRegistry.make("bsuite/memory_len/100").task.score == .bsuiteMemoryLength(length: 100))
    // Facts pass through wrappers: the pixel CartPole has none, memory_len keeps its rule.
    #expect(try EnvRegistry.make("classic/CartPole-pixels").task == TaskFacts())
    #expect(try BatchEnv(name: "bsuite/memory_len/4", count: 2, seed: 0).task.success == .lastRewardPositive)
    #expect(try TimeLimit(try EnvRegistry.make("popgym/RepeatFirstEasy"), maxSteps: 5).task.needsMemory)
  }
}

@Suite struct EnvInterfaceTests {
  /// Agent actions become valid environment actions for every kind of action space, and a one-hot
  /// action maps to the index it marks.
  @Test func agentActionsBecomeValidEnvironmentActions() throws {
    var rng = SeededGenerator(seed: 1)
    for name in ["bsuite/memory_len/3", "popgym/BattleshipEasy", "popgym/MineSweeperEasy", "classic/Pendulum"] {
      let env = try EnvRegistry.make(name)
      let i = try EnvInterface(observationSpace: env.observationSpace, actionSpace: env.actionSpace)
      let actions = i.randomActions(count: 50, rng: &rng)
      #expect(actions.shape == [50, i.actionSpec.size])
      for a in i.environmentActions(actions) { try env.actionSpace.validate(a, env: name) }
    }
    let battleship = try EnvInterface(
      observationSpace: .discrete(2), actionSpace: .multiDiscrete([3, 2]))
    #expect(battleship.environmentActions(Tensor([0, 0, 1, 1, 0], shape: [1, 5])) == [.multiDiscrete([2, 0])])
    let box = try EnvInterface(observationSpace: .discrete(2), actionSpace: .box(low: [-2], high: [4]))
    #expect(box.environmentActions(Tensor([-1, 0, 1, 3], shape: [4, 1])) == [-2, 1, 4, 4].map { .continuous([$0]) })
  }

  /// Multi-discrete actions (POPGym Battleship) through the whole loop: acting, replay, learning.
  @Test func aMultiDiscreteTaskTrains() throws {
    var config = try tinyTrainingConfig(env: "popgym/BattleshipEasy", steps: 120)
    // Uniform windows: a random Battleship episode lasts about 60 steps, longer than this run
    // gives each environment, and whole-episode batches wait for a finished episode.
    config.sampling = .uniform
    guard case .multiDiscrete(let parts) = config.agent.actions else {
      Issue.record("Battleship should have a multi-discrete action space, got \(config.agent.actions)")
      return
    }
    #expect(parts.count == 2)
    let folder = temporaryFolder("battleship")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    var metrics = LearnerMetrics()
    try run.run { event in
      if case .update(let u) = event { metrics = u.metrics }
      return .proceed
    }
    #expect(run.updates > 0 && metrics.nonFinite.isEmpty && metrics.behaviour.actorLoss != 0)
    // Every stored action is one one-hot per component.
    let batch = try #require(try run.replay.sample(batchSize: 4, length: 8))
    let width = parts.reduce(0, +)
    for row in stride(from: 0, to: batch.actions.count, by: width) {
      var offset = row
      for n in parts {
        let slice = batch.actions[offset..<(offset + n)]
        #expect(slice.filter { $0 == 1 }.count == 1 && slice.filter { $0 == 0 }.count == n - 1)
        offset += n
      }
    }
  }
}
