import Agent
import Envs
import FileSupport
import Foundation
import Replay

/// A training run in a run folder (``RunFolder``): the agent and its learner, the replay, the
/// collector stepping the environments, and the loop that joins them on a ``Schedule``.
///
/// ```swift
/// let run = try TrainingRun.start(config: try .defaults(env: "classic/CartPole", backbone: .r2i), in: folder)
/// let summary = try run.run { event in
///   if case .evaluation(let e) = event { print(e) }
///   return .proceed
/// }
/// // later, or after a crash:
/// let again = try TrainingRun.resume(from: folder)
/// ```
///
/// A run stopped (``TrainingDisposition/stop``) and resumed continues bit for bit as if it had
/// never stopped: parameters, optimiser states, replay content and sampler, environments
/// (their running episodes are replayed from seed and actions), agent states, random
/// generators, the train-ratio carry and the pending log means are all in the checkpoint
/// (``checkpoint()``). Killed at any moment, the folder keeps its last completed checkpoint.
public final class TrainingRun {
  public let config: TrainingConfig
  public let folder: RunFolder
  public let agent: Agent
  public let learner: AgentLearner
  public let replay: Replay
  public let collector: Collector
  /// Problems found on resume that did not stop it (e.g. a replay saved after its checkpoint).
  public internal(set) var warnings: [String] = []
  /// The last evaluation of this session.
  public private(set) var lastEvaluation: EvaluationReport?
  var loop: LoopState
  var learnerRNG: SeededGenerator
  var metrics: MetricsLog
  var clock = WallClock()
  let schedule: Schedule
  /// The run folder's exclusive lock (one writer per folder): taken by start and resume, held
  /// until ``run(_:)`` returns, taken again by a later ``run(_:)`` or ``checkpoint()``.
  var lock: DirectoryLock?
  /// Set while resuming from a replay newer than the checkpoint: the collector starts new episodes.
  var restartEpisodes = false

  /// The run folder's location.
  public var directory: URL { folder.url }
  /// Learner steps, training episodes and evaluations so far.
  public var updates: Int { loop.updates }
  public var episodes: Int { loop.episodes }
  public var evaluations: Int { loop.evaluations }

  /// Where a run stands: steps, learner steps, episodes and wall-clock seconds over all sessions.
  public struct Progress: Codable, Sendable, Equatable {
    public var envSteps: Int
    public var updates: Int
    public var episodes: Int
    public var seconds: Double
  }

  public var progress: Progress {
    Progress(envSteps: collector.steps, updates: loop.updates, episodes: loop.episodes, seconds: clock.total)
  }

  init(config: TrainingConfig, folder: RunFolder, lock: DirectoryLock, metrics: MetricsLog, replay: Replay) throws {
    try config.validate()
    self.lock = lock
    self.config = config
    self.folder = folder
    self.metrics = metrics
    self.replay = replay
    agent = Agent(config: config.agent, seed: config.seed)
    learner = AgentLearner(agent: agent)
    var seeds = SeededGenerator(seed: config.seed, stream: StreamTag.environments)
    let envs = try BatchEnv(name: config.env, count: config.envs, seed: seeds.next())
    collector = try Collector(agent: agent, envs: envs, seed: config.seed)
    learnerRNG = SeededGenerator(seed: config.seed, stream: StreamTag.learner)
    loop = LoopState(ratio: TrainRatio(ratio: config.trainRatio, stepsPerUpdate: config.batch * config.length))
    schedule = Schedule(config)
  }

  /// Trains until `config.steps` environment steps, the wall-clock budget `config.minutes` or a
  /// `.stop`, whichever comes first, writing metrics, evaluating and checkpointing on schedule,
  /// and always checkpointing at the end. Throws ``TrainingError/nonFinite(term:update:envSteps:)``
  /// when a loss or gradient norm is not finite, without writing a checkpoint after it.
  @discardableResult
  public func run(_ handler: (TrainingEvent) -> TrainingDisposition = { _ in .proceed }) throws -> TrainingSummary {
    try holdLock()
    defer { releaseLock() }
    var stop = false
    func report(_ event: TrainingEvent) { if handler(event) == .stop { stop = true } }
    // The checkpoint on disk is at the current step (start and resume leave it so): a run that
    // takes no step (its budget or steps already spent) writes nothing, not even the replay.
    var savedAt = collector.steps
    var budget = schedule.budgetSpent(clock.total)
    while collector.steps < config.steps && !stop && !budget {
      let before = collector.steps
      let finished = try collector.step(
        schedule.actsAtRandom(atStep: before) ? .random : .agent(.sample), into: replay)
      let after = collector.steps
      for e in finished {
        try record(e)
        report(.episode(e, envSteps: after))
      }
      for _ in 0..<schedule.updatesOwed(from: before, to: after, ratio: &loop.ratio) {
        guard let update = try learn() else { break }
        report(.update(update))
      }
      if schedule.log.crossed(from: before, to: after) { report(.log(try writeTrainLine())) }
      if schedule.evaluation.crossed(from: before, to: after) { report(.evaluation(try evaluateOnSchedule())) }
      if schedule.checkpoint.crossed(from: before, to: after) {
        report(.checkpoint(try checkpoint()))
        savedAt = after
      }
      report(.collected(envSteps: after))
      budget = schedule.budgetSpent(clock.total)
    }
    if savedAt != collector.steps { _ = handler(.checkpoint(try checkpoint())) }
    return TrainingSummary(
      envSteps: collector.steps, updates: loop.updates, episodes: loop.episodes, seconds: clock.total,
      stoppedEarly: collector.steps < config.steps, budgetReached: budget && collector.steps < config.steps,
      recentScore: EpisodeRecord.meanScore(loop.recent), recentSuccess: EpisodeRecord.successRate(loop.recent),
      lastEvaluation: lastEvaluation)
  }

  /// Takes the folder's lock unless this run holds it.
  func holdLock() throws {
    guard lock == nil else { return }
    let taken = try folder.lock()
    taken.recordHolder()
    lock = taken
  }

  /// Lets another writer (or another run object of this process) open the folder.
  func releaseLock() {
    lock?.unlock()
    lock = nil
  }

  /// A batch drawn from the replay as a learner step draws it (`config.batch` x `config.length`,
  /// `config.sampling`); nil when no window fits yet. Advances the replay's sampler, so a run
  /// that calls it is no longer the run it would have been.
  public func sampleBatch() throws -> ReplayBatch? {
    try replay.sample(batchSize: config.batch, length: config.length, mode: config.sampling)
  }

  /// One learner step on a replay batch; nil when the replay has no window yet.
  func learn() throws -> UpdateReport? {
    guard let sampled = try sampleBatch() else { return nil }
    let start = Date()
    let m = learner.train(WorldModelBatch(sampled), rng: &learnerRNG)
    let seconds = Date().timeIntervalSince(start)
    loop.updates += 1
    let bad = m.nonFinite
    if !bad.isEmpty {
      throw TrainingError.nonFinite(term: bad.joined(separator: ", "), update: loop.updates, envSteps: collector.steps)
    }
    loop.pending.add(m, seconds: seconds)
    return UpdateReport(updates: loop.updates, envSteps: collector.steps, metrics: m, seconds: seconds)
  }

  func stamp(_ kind: String) -> LineStamp {
    LineStamp(kind: kind, envSteps: collector.steps, updates: loop.updates, seconds: clock.total)
  }

  /// Counts a finished training episode and writes its line.
  func record(_ e: EpisodeRecord) throws {
    loop.episodes += 1
    loop.recent.append(e)
    if loop.recent.count > 100 { loop.recent.removeFirst(loop.recent.count - 100) }
    try metrics.write(.episode(EpisodeLine(stamp: stamp("episode"), episode: e)))
  }

  /// Writes the `train` line of the learner steps since the last one and starts the next.
  func writeTrainLine() throws -> TrainLine {
    let now = clock.total
    let steps = collector.steps
    let p = loop.pending
    var line = TrainLine(stamp: stamp("train"), learnerSteps: p.count)
    line.metrics = p.means()
    if p.count > 0 { line.updateMilliseconds = 1000 * p.updateSeconds / Double(p.count) }
    if now > p.lastLogSeconds { line.stepsPerSecond = Double(steps - p.lastLogSteps) / (now - p.lastLogSeconds) }
    let recent = loop.recent
    if !recent.isEmpty {
      line.recentScore = EpisodeRecord.meanScore(recent)
      line.recentLength = Double(recent.map(\.length).reduce(0, +)) / Double(recent.count)
      line.recentSuccess = EpisodeRecord.successRate(recent)
    }
    loop.pending = PendingLog(lastLogSteps: steps, lastLogSeconds: now)
    try metrics.write(.train(line))
    return line
  }

  /// The scheduled greedy evaluation, written as an `eval` line.
  func evaluateOnSchedule() throws -> EvaluationReport {
    loop.evaluations += 1
    let e = try evaluate(episodes: config.evalEpisodes, index: loop.evaluations)
    lastEvaluation = e
    try metrics.write(
      .evaluation(
        EvaluationLine(
          stamp: stamp("eval"), score: e.meanScore, length: e.meanLength, episodes: e.episodes.count,
          success: e.successRate)))
    return e
  }
}
