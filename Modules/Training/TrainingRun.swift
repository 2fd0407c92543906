import Agent
import Envs
import FileSupport
import Foundation
import Replay

/// Learner steps owed per environment step: `ratio` replayed steps per environment step, one
/// learner step replaying batch x length of them, with the fraction carried over.
public struct TrainRatio: Codable, Equatable, Sendable {
  public var ratio: Double
  public var stepsPerUpdate: Int
  /// The owed fraction of a learner step (stored as its bit pattern, so a resumed run carries
  /// exactly the same number).
  public var carryBits: UInt64 = 0

  public init(ratio: Double, stepsPerUpdate: Int) {
    self.ratio = ratio
    self.stepsPerUpdate = stepsPerUpdate
  }

  public var carry: Double {
    get { Double(bitPattern: carryBits) }
    set { carryBits = newValue.bitPattern }
  }

  /// The whole learner steps owed after `envSteps` more environment steps.
  public mutating func updates(forEnvSteps envSteps: Int) -> Int {
    let owed = carry + Double(envSteps) * ratio / Double(stepsPerUpdate)
    let whole = owed.rounded(.down)
    carry = owed - whole
    return Int(whole)
  }
}

/// What a training run reports while it runs.
public enum TrainingEvent {
  /// Every environment took one step; `envSteps` counts all of them so far. A `.stop` returned
  /// here (or from any event of this step) ends the run after this step, with a checkpoint.
  case collected(envSteps: Int)
  /// An episode ended.
  case episode(EpisodeRecord, envSteps: Int)
  /// A learner step finished.
  case update(UpdateReport)
  /// A `train` line of means was written to `metrics.jsonl`.
  case log([String: MetricValue])
  /// A greedy evaluation finished.
  case evaluation(EvaluationReport)
  /// A checkpoint was written.
  case checkpoint(CheckpointReport)
}

/// Whether the run goes on after an event.
public enum TrainingDisposition: Sendable { case proceed, stop }

/// One learner step.
public struct UpdateReport: Sendable {
  public var updates: Int
  public var envSteps: Int
  public var metrics: [String: Float]
  /// Wall-clock seconds the step took.
  public var seconds: Double
}

/// Greedy episodes of the current policy.
public struct EvaluationReport: Sendable {
  public var envSteps: Int
  public var episodes: [EpisodeRecord]

  public init(envSteps: Int, episodes: [EpisodeRecord]) {
    self.envSteps = envSteps
    self.episodes = episodes
  }

  public var meanScore: Double { episodes.isEmpty ? .nan : episodes.map(\.score).reduce(0, +) / Double(episodes.count) }
  public var meanLength: Double {
    episodes.isEmpty ? .nan : Double(episodes.map(\.length).reduce(0, +)) / Double(episodes.count)
  }
  /// The share of solved episodes, for tasks that define success.
  public var successRate: Double? { TrainingRun.successRate(episodes) }
}

/// A written checkpoint.
public struct CheckpointReport: Sendable {
  public var envSteps: Int
  public var updates: Int
  public var directory: URL
  public var seconds: Double
}

/// How a run ended.
public struct TrainingSummary: Sendable {
  public var envSteps: Int
  public var updates: Int
  public var episodes: Int
  /// Wall-clock seconds over all sessions of the run.
  public var seconds: Double
  /// Whether it stopped before `steps` (asked to, or at the wall-clock budget).
  public var stoppedEarly: Bool
  /// Whether the wall-clock budget (`TrainingConfig.minutes`) ended it.
  public var budgetReached: Bool
  /// Mean score and success rate of the last (up to) 100 training episodes.
  public var recentScore: Double
  public var recentSuccess: Double?
  public var lastEvaluation: EvaluationReport?
}

/// A training run in a run folder: `config.json`, `metrics.jsonl`, `checkpoint/` (agent
/// parameters as safetensors, the learner and collector state, `state.json` with counters and
/// random states, written last) and `replay/`.
///
/// ```swift
/// let run = try TrainingRun.start(config: try .defaults(env: "classic/CartPole", backbone: .r2i), in: folder)
/// let summary = try run.run { event in
///   if case .evaluation(let e) = event { print(e.meanScore) }
///   return .proceed
/// }
/// // later, or after a crash:
/// let again = try TrainingRun.resume(from: folder)
/// ```
///
/// A run stopped (``TrainingDisposition/stop``) and resumed continues bit for bit as if it had
/// never stopped: parameters, optimiser states, replay content and sampler, environments
/// (their running episodes are replayed from seed and actions), agent states, random
/// generators, the train-ratio carry and the pending log means are all in the checkpoint.
/// Killed at any moment, the folder keeps its last completed checkpoint.
public final class TrainingRun {
  public let config: TrainingConfig
  public let directory: URL
  public let agent: Agent
  public let learner: AgentLearner
  public let replay: Replay
  public let collector: Collector
  public private(set) var updates = 0
  public private(set) var episodes = 0
  public private(set) var evaluations = 0
  /// Problems found on resume that did not stop it (e.g. a replay saved after its checkpoint).
  public private(set) var warnings: [String] = []
  /// The last evaluation of this session.
  public private(set) var lastEvaluation: EvaluationReport?
  var learnerRNG: SeededGenerator
  var ratio: TrainRatio
  var metrics: MetricsLog
  var pending = PendingLog()
  var recent: [EpisodeRecord] = []
  let success: ((Double, Double) -> Bool)?
  /// Seconds of earlier sessions, and when this one started.
  var earlierSeconds: Double = 0
  let sessionStart = Date()

  static let stateName = "state.json"

  /// The means of learner metrics since the last `train` line (sums kept as bit patterns).
  struct PendingLog: Codable, Equatable {
    var sums: [String: UInt64] = [:]
    var count = 0
    var updateSeconds: Double = 0
    var lastLogSteps = 0
    var lastLogSeconds: Double = 0
  }

  /// What `checkpoint/state.json` holds.
  struct CheckpointState: Codable {
    var format = "r2i-run"
    var version = 1
    var envSteps: Int
    var updates: Int
    var episodes: Int
    var evaluations: Int
    var seconds: Double
    var ratio: TrainRatio
    var learnerRNG: [UInt64]
    var collector: Collector.Snapshot
    var metricsBytes: UInt64
    var agentFile: String
    var learnerFile: String
    var replayInserted: Int
    var pending: PendingLog
    var recent: [EpisodeRecord]
  }

  var totalSeconds: Double { earlierSeconds + Date().timeIntervalSince(sessionStart) }

  init(config: TrainingConfig, directory: URL, metrics: MetricsLog, replay: Replay) throws {
    try config.validate()
    self.config = config
    self.directory = directory
    self.metrics = metrics
    self.replay = replay
    agent = Agent(config: config.agent, seed: config.seed)
    learner = AgentLearner(agent: agent)
    var seeds = SeededGenerator(seed: config.seed, stream: StreamTag.environments)
    let envs = try BatchEnv(name: config.env, count: config.envs, seed: seeds.next())
    success = SuccessRule.rule(for: config.env)
    collector = try Collector(agent: agent, envs: envs, seed: config.seed, success: success)
    learnerRNG = SeededGenerator(seed: config.seed, stream: StreamTag.learner)
    ratio = TrainRatio(ratio: config.trainRatio, stepsPerUpdate: config.batch * config.length)
  }

  static func paths(_ directory: URL) -> (config: URL, metrics: URL, checkpoint: URL, replay: URL) {
    (
      directory.appendingPathComponent("config.json"), directory.appendingPathComponent("metrics.jsonl"),
      directory.appendingPathComponent("checkpoint"), directory.appendingPathComponent("replay")
    )
  }

  /// Starts a new run in `directory` (created if needed; it must not hold a run) and writes its
  /// configuration and a checkpoint at step 0, so the run can be resumed from the start.
  public static func start(config: TrainingConfig, in directory: URL) throws -> TrainingRun {
    try config.validate()
    let p = paths(directory)
    let fm = FileManager.default
    if fm.fileExists(atPath: p.config.path) || fm.fileExists(atPath: p.checkpoint.path) {
      throw TrainingError.runFolder(
        "'\(directory.path)' already holds a run; pass --resume to continue it, or choose another --run folder")
    }
    do {
      try fm.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw TrainingError.runFolder("cannot create '\(directory.path)' (\(error.localizedDescription))")
    }
    let probe = try EnvRegistry.make(config.env)
    let interface = try EnvInterface(observationSpace: probe.observationSpace, actionSpace: probe.actionSpace)
    let replay = try Replay(
      layout: interface.replayLayout, capacity: config.replayCapacity, seed: config.seed)
    let metrics = try MetricsLog(url: p.metrics, truncatingTo: 0)
    let run = try TrainingRun(config: config, directory: directory, metrics: metrics, replay: replay)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try AtomicFile.write(try encoder.encode(config), to: p.config)
    _ = try run.checkpoint()
    return run
  }

  /// Reads a run's configuration without loading it.
  public static func configuration(of directory: URL) throws -> TrainingConfig {
    let p = paths(directory)
    guard let data = try? Data(contentsOf: p.config) else {
      throw TrainingError.runFolder(
        "'\(directory.path)' holds no run (no config.json); start one with r2i train --run \(directory.path)")
    }
    do {
      return try JSONDecoder().decode(TrainingConfig.self, from: data)
    } catch {
      throw TrainingError.runFolder(
        "'\(p.config.path)' is damaged or from another version (\(TrainingConfig.describe(error)))")
    }
  }

  /// Where a run stands at its last checkpoint (read from `checkpoint/state.json` only).
  public struct Progress: Sendable, Equatable {
    public var envSteps: Int
    public var updates: Int
    public var episodes: Int
    /// Wall-clock seconds over all sessions up to the checkpoint.
    public var seconds: Double
  }

  /// The progress of the run in `directory` at its last checkpoint, or nil when it has none.
  public static func progress(of directory: URL) -> Progress? {
    let url = paths(directory).checkpoint.appendingPathComponent(stateName)
    guard let data = try? Data(contentsOf: url), let s = try? JSONDecoder().decode(CheckpointState.self, from: data)
    else { return nil }
    return Progress(envSteps: s.envSteps, updates: s.updates, episodes: s.episodes, seconds: s.seconds)
  }

  /// Whether a run at `progress` under `config` has nothing left to do: its steps are taken or
  /// its wall-clock budget is spent.
  public static func isFinished(_ progress: Progress, config: TrainingConfig) -> Bool {
    progress.envSteps >= config.steps || config.minutes.map { progress.seconds >= $0 * 60 } == true
  }

  /// Opens the run in `directory` at its last checkpoint. `steps` and `minutes` replace the
  /// configured total and wall-clock budget (to train longer); nothing else of the
  /// configuration can change.
  public static func resume(from directory: URL, steps: Int? = nil, minutes: Double? = nil) throws -> TrainingRun {
    var config = try configuration(of: directory)
    if let steps { config.steps = steps }
    if let minutes { config.minutes = minutes }
    let p = paths(directory)
    let stateURL = p.checkpoint.appendingPathComponent(stateName)
    guard let data = try? Data(contentsOf: stateURL) else {
      throw TrainingError.runFolder("'\(directory.path)' has no checkpoint (\(stateURL.path) is missing)")
    }
    let state: CheckpointState
    do {
      state = try JSONDecoder().decode(CheckpointState.self, from: data)
    } catch {
      throw TrainingError.runFolder("'\(stateURL.path)' is damaged (\(TrainingConfig.describe(error)))")
    }
    guard state.format == "r2i-run", state.version == 1 else {
      throw TrainingError.runFolder(
        "'\(stateURL.path)' is format \(state.format) v\(state.version); this build reads r2i-run v1")
    }
    let loaded: Replay
    do {
      loaded = try Replay.load(from: p.replay).replay
    } catch {
      throw TrainingError.runFolder("the run's replay cannot be loaded: \(error)")
    }
    let metrics = try MetricsLog(url: p.metrics, truncatingTo: state.metricsBytes)
    let run = try TrainingRun(config: config, directory: directory, metrics: metrics, replay: loaded)
    do {
      try SafeTensors.load(into: run.agent, from: p.checkpoint.appendingPathComponent(state.agentFile))
      let learnerTensors = try SafeTensors.read(from: p.checkpoint.appendingPathComponent(state.learnerFile)).tensors
      try run.learner.loadState(learnerTensors)
      var collectorState = state.collector
      if loaded.inserted != state.replayInserted {
        // The replay was saved after this checkpoint (killed in between): its streams already
        // hold later steps, so the running episodes cannot continue in them. Start new ones.
        collectorState.environments.needsReset = collectorState.environments.needsReset.map { _ in true }
        collectorState.environments.episodeSeeds = collectorState.environments.episodeSeeds.map { _ in nil }
        collectorState.environments.episodeActions = collectorState.environments.episodeActions.map { _ in [] }
      }
      try run.collector.restore(collectorState, tensors: learnerTensors)
    } catch {
      throw TrainingError.runFolder("the checkpoint in '\(p.checkpoint.path)' cannot be loaded: \(error)")
    }
    guard let rng = SeededGenerator(state: state.learnerRNG) else {
      throw TrainingError.runFolder("'\(stateURL.path)' holds an invalid random state")
    }
    run.learnerRNG = rng
    run.ratio = state.ratio
    run.updates = state.updates
    run.episodes = state.episodes
    run.evaluations = state.evaluations
    run.earlierSeconds = state.seconds
    run.pending = state.pending
    run.recent = state.recent
    if loaded.inserted != state.replayInserted {
      run.warnings.append(
        "the replay holds \(loaded.inserted - state.replayInserted) steps more than its checkpoint (the run was killed while saving); the run keeps them and starts new episodes in every environment, so it is no longer bit-identical to an uninterrupted one"
      )
    }
    return run
  }

  /// Starts the run `config` describes in `directory`, or resumes the one already there when it
  /// has the same configuration apart from `steps` and `minutes` (which take `config`'s values,
  /// so a longer or larger budget trains on). Throws ``TrainingError/runFolder(_:)`` naming
  /// what differs when the folder holds another run. `resumed` says which happened.
  public static func open(config: TrainingConfig, in directory: URL) throws -> (run: TrainingRun, resumed: Bool) {
    guard FileManager.default.fileExists(atPath: paths(directory).config.path) else {
      return (try start(config: config, in: directory), false)
    }
    let stored = try configuration(of: directory)
    if let difference = stored.difference(from: config) {
      throw TrainingError.runFolder(
        "'\(directory.path)' holds a run with another configuration (\(difference)); choose another folder")
    }
    return (try resume(from: directory, steps: config.steps, minutes: config.minutes), true)
  }

  /// The agent of the run in `directory` at its last checkpoint (parameters only; no replay or
  /// learner state), with the configuration and the env steps it was saved at.
  public static func loadAgent(from directory: URL) throws -> (config: TrainingConfig, agent: Agent, envSteps: Int) {
    let config = try configuration(of: directory)
    let p = paths(directory)
    let stateURL = p.checkpoint.appendingPathComponent(stateName)
    guard let data = try? Data(contentsOf: stateURL),
      let state = try? JSONDecoder().decode(CheckpointState.self, from: data)
    else {
      throw TrainingError.runFolder("'\(directory.path)' has no readable checkpoint (\(stateURL.path))")
    }
    let agent = Agent(config: config.agent, seed: config.seed)
    do {
      try SafeTensors.load(into: agent, from: p.checkpoint.appendingPathComponent(state.agentFile))
    } catch {
      throw TrainingError.runFolder("the agent in '\(p.checkpoint.path)' cannot be loaded: \(error)")
    }
    return (config, agent, state.envSteps)
  }

  /// Writes a checkpoint: the replay, the agent, the learner and collector state, then
  /// `state.json` naming them, then removes the files of the previous one.
  @discardableResult
  public func checkpoint() throws -> CheckpointReport {
    let start = Date()
    let p = Self.paths(directory)
    try metrics.synchronize()
    try replay.save(to: p.replay)
    let fm = FileManager.default
    try fm.createDirectory(at: p.checkpoint, withIntermediateDirectories: true)
    let token = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    let agentFile = "agent-\(token).safetensors"
    let learnerFile = "learner-\(token).safetensors"
    let steps = collector.steps
    try SafeTensors.save(
      agent, to: p.checkpoint.appendingPathComponent(agentFile),
      metadata: [
        "env_steps": "\(steps)", "updates": "\(updates)", "env": config.env, "backbone": config.backbone.rawValue,
      ])
    let (snapshot, collectorTensors) = collector.snapshot()
    try SafeTensors.write(
      learner.stateTensors() + collectorTensors, to: p.checkpoint.appendingPathComponent(learnerFile))
    try FileSystem.synchronizeDirectory(p.checkpoint)
    let state = CheckpointState(
      envSteps: steps, updates: updates, episodes: episodes, evaluations: evaluations, seconds: totalSeconds,
      ratio: ratio, learnerRNG: learnerRNG.state, collector: snapshot, metricsBytes: metrics.bytes,
      agentFile: agentFile, learnerFile: learnerFile, replayInserted: replay.inserted, pending: pending, recent: recent)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    try AtomicFile.write(try encoder.encode(state), to: p.checkpoint.appendingPathComponent(Self.stateName))
    try FileSystem.synchronizeDirectory(p.checkpoint)
    for name in (try? fm.contentsOfDirectory(atPath: p.checkpoint.path)) ?? []
    where name != Self.stateName && name != agentFile && name != learnerFile {
      try? fm.removeItem(at: p.checkpoint.appendingPathComponent(name))
    }
    return CheckpointReport(
      envSteps: steps, updates: updates, directory: p.checkpoint, seconds: Date().timeIntervalSince(start))
  }

  /// The share of successes among `episodes` that define success.
  static func successRate(_ episodes: [EpisodeRecord]) -> Double? {
    let flags = episodes.compactMap(\.success)
    return flags.isEmpty ? nil : Double(flags.filter { $0 }.count) / Double(flags.count)
  }

  func common(_ kind: String) -> [String: MetricValue] {
    [
      "kind": .text(kind), "env_steps": .integer(collector.steps), "updates": .integer(updates),
      "seconds": .number(totalSeconds),
    ]
  }

  /// `count` greedy episodes on fresh environments (seeded by the evaluation's index), with
  /// a fresh agent state; training state is untouched. Stops early, with the episodes it has,
  /// after 10,000 steps per episode asked for.
  public func evaluate(episodes count: Int, index: Int) throws -> EvaluationReport {
    let episodes = try Self.greedyEpisodes(
      agent: agent, env: config.env, count: count, environments: config.envs, seed: config.seed &+ UInt64(index))
    return EvaluationReport(envSteps: collector.steps, episodes: episodes)
  }

  /// `count` greedy episodes of `agent` on at most `environments` fresh copies of `env`, seeded
  /// from `seed` (stream `StreamTag.evaluation`); `onStep` sees the collector after every step
  /// (for frames). Stops early after 10,000 steps per episode asked for.
  public static func greedyEpisodes(
    agent: Agent, env: String, count: Int, environments: Int, seed: UInt64,
    onStep: (Collector, [EpisodeRecord]) throws -> Void = { _, _ in }
  ) throws -> [EpisodeRecord] {
    var seeds = SeededGenerator(seed: seed, stream: StreamTag.evaluation)
    let k = min(count, environments)
    let envs = try BatchEnv(name: env, count: k, seed: seeds.next())
    let c = try Collector(agent: agent, envs: envs, seed: seeds.next(), success: SuccessRule.rule(for: env))
    var done: [EpisodeRecord] = []
    var steps = 0
    while done.count < count && steps < 10_000 * count {
      let finished = try c.step(.agent(.greedy))
      try onStep(c, finished)
      done += finished
      steps += k
    }
    return Array(done.prefix(count))
  }

  /// A batch drawn from the replay as a learner step draws it (`config.batch` x `config.length`,
  /// `config.sampling`); nil when no window fits yet. Advances the replay's sampler, so a run
  /// that calls it is no longer the run it would have been.
  public func sampleBatch() throws -> ReplayBatch? {
    try replay.sample(batchSize: config.batch, length: config.length, mode: config.samplingMode)
  }

  /// One learner step on a replay batch; nil when the replay has no window yet.
  func learn() throws -> UpdateReport? {
    guard let sampled = try sampleBatch() else { return nil }
    let start = Date()
    let m = learner.train(WorldModelBatch(sampled), rng: &learnerRNG)
    let seconds = Date().timeIntervalSince(start)
    updates += 1
    let bad = m.filter { !$0.value.isFinite }.map(\.key).sorted()
    if !bad.isEmpty {
      throw TrainingError.nonFinite(term: bad.joined(separator: ", "), update: updates, envSteps: collector.steps)
    }
    for (k, v) in m {
      let sum = Double(bitPattern: pending.sums[k] ?? 0.0.bitPattern) + Double(v)
      pending.sums[k] = sum.bitPattern
    }
    pending.count += 1
    pending.updateSeconds += seconds
    return UpdateReport(updates: updates, envSteps: collector.steps, metrics: m, seconds: seconds)
  }

  func trainLine() -> [String: MetricValue] {
    var line = common("train")
    let now = totalSeconds
    let steps = collector.steps
    for (k, bits) in pending.sums where pending.count > 0 {
      line[k] = .number(Double(bitPattern: bits) / Double(pending.count))
    }
    line["learner_steps_in_line"] = .integer(pending.count)
    if pending.count > 0 { line["update_ms"] = .number(1000 * pending.updateSeconds / Double(pending.count)) }
    let elapsed = now - pending.lastLogSeconds
    if elapsed > 0 { line["steps_per_second"] = .number(Double(steps - pending.lastLogSteps) / elapsed) }
    if !recent.isEmpty {
      line["score_recent"] = .number(recent.map(\.score).reduce(0, +) / Double(recent.count))
      line["length_recent"] = .number(Double(recent.map(\.length).reduce(0, +)) / Double(recent.count))
      if let s = Self.successRate(recent) { line["success_recent"] = .number(s) }
    }
    pending = PendingLog(lastLogSteps: steps, lastLogSeconds: now)
    return line
  }

  /// Whether the wall-clock budget is spent.
  var budgetSpent: Bool { config.minutes.map { totalSeconds >= $0 * 60 } == true }

  /// Trains until `config.steps` environment steps, the wall-clock budget `config.minutes` or a
  /// `.stop`, whichever comes first, writing metrics, evaluating
  /// and checkpointing on schedule, and always checkpointing at the end. Throws
  /// ``TrainingError/nonFinite(term:update:envSteps:)`` when a loss or gradient norm is not
  /// finite, without writing a checkpoint after it.
  @discardableResult
  public func run(_ handler: (TrainingEvent) -> TrainingDisposition = { _ in .proceed }) throws -> TrainingSummary {
    var stop = false
    // The checkpoint on disk is at the current step (start and resume leave it so): a run that
    // takes no step (its budget or steps already spent) writes nothing, not even the replay.
    var savedAt = collector.steps
    func crossed(_ every: Int, _ before: Int, _ after: Int) -> Bool { every > 0 && after / every > before / every }
    var budget = budgetSpent
    while collector.steps < config.steps && !stop && !budget {
      let before = collector.steps
      let finished = try collector.step(before < config.prefill ? .random : .agent(.sample), into: replay)
      let after = collector.steps
      for e in finished {
        episodes += 1
        recent.append(e)
        if recent.count > 100 { recent.removeFirst(recent.count - 100) }
        var line = common("episode")
        line["score"] = .number(e.score)
        line["length"] = .integer(e.length)
        line["environment"] = .integer(e.environment)
        if let s = e.success { line["success"] = .integer(s ? 1 : 0) }
        try metrics.write(line)
        if handler(.episode(e, envSteps: after)) == .stop { stop = true }
      }
      if after > config.prefill {
        let owed = ratio.updates(forEnvSteps: after - max(before, config.prefill))
        for _ in 0..<owed {
          guard let report = try learn() else { break }
          if handler(.update(report)) == .stop { stop = true }
        }
      }
      if crossed(config.logEvery, before, after) {
        let line = trainLine()
        try metrics.write(line)
        if handler(.log(line)) == .stop { stop = true }
      }
      if crossed(config.evalEvery, before, after) {
        evaluations += 1
        let e = try evaluate(episodes: config.evalEpisodes, index: evaluations)
        lastEvaluation = e
        var line = common("eval")
        line["eval_score"] = .number(e.meanScore)
        line["eval_length"] = .number(e.meanLength)
        line["eval_episodes"] = .integer(e.episodes.count)
        if let s = e.successRate { line["eval_success"] = .number(s) }
        try metrics.write(line)
        if handler(.evaluation(e)) == .stop { stop = true }
      }
      if crossed(config.checkpointEvery, before, after) {
        let c = try checkpoint()
        savedAt = after
        if handler(.checkpoint(c)) == .stop { stop = true }
      }
      if handler(.collected(envSteps: after)) == .stop { stop = true }
      budget = budgetSpent
    }
    if savedAt != collector.steps {
      let c = try checkpoint()
      _ = handler(.checkpoint(c))
    }
    return TrainingSummary(
      envSteps: collector.steps, updates: updates, episodes: episodes, seconds: totalSeconds,
      stoppedEarly: collector.steps < config.steps, budgetReached: budget && collector.steps < config.steps,
      recentScore: recent.isEmpty ? .nan : recent.map(\.score).reduce(0, +) / Double(recent.count),
      recentSuccess: Self.successRate(recent), lastEvaluation: lastEvaluation)
  }
}
