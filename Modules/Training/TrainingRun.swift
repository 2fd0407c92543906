import Agent
import Distributed
import Envs
import FileSupport
import Foundation
import Imaging
import Replay
import TensorBoard

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
///
/// Data-parallel (``communicator`` of several ranks, `mpirun -np N r2i train`): every rank runs
/// `config.envs` environments of its own (seeded by rank) and a replay shard of
/// `config.replayCapacity / N` steps; the learner steps are shared (``AgentLearner/share(with:)``),
/// so N ranks at batch B learn as one at batch N x B; env steps, the train ratio and every
/// schedule count the steps of all ranks; rank 0 writes `metrics.jsonl` (every rank's episodes),
/// evaluates, and holds the folder's lock. A checkpoint holds every rank's part.
public final class TrainingRun {
  public let config: TrainingConfig
  public let folder: RunFolder
  public let agent: Agent
  public let learner: AgentLearner
  public let replay: Replay
  public let collector: Collector
  /// The job the run is trained by (one process unless started under `mpirun`).
  public let communicator: any Communicator
  /// The last evaluation of this session.
  public private(set) var lastEvaluation: EvaluationReport?
  var loop: LoopState
  var learnerRNG: SeededGenerator
  /// The open-loop pictures' own generator (replay windows, latent samples): not part of the
  /// training state, so pictures change nothing the run computes.
  var pictureRNG: SeededGenerator
  /// `metrics.jsonl`, written by rank 0 (nil on the other ranks).
  var metrics: MetricsLog?
  /// The TensorBoard event file, written by rank 0 beside `metrics.jsonl` (nil on the other ranks).
  var events: EventFileWriter?
  var clock = WallClock()
  let schedule: Schedule
  /// The run folder's exclusive lock (one writer per folder): taken by start and resume, held
  /// until ``run(_:)`` returns, taken again by a later ``run(_:)`` or ``checkpoint()``.
  var lock: DirectoryLock?

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
    Progress(envSteps: envSteps, updates: loop.updates, episodes: loop.episodes, seconds: clock.total)
  }

  /// Environment steps of every rank (each takes `config.envs` per step, so all have taken the
  /// same number): the count the train ratio, the schedules and `config.steps` read.
  public var envSteps: Int { collector.steps * communicator.size }

  init(
    config: TrainingConfig, folder: RunFolder, lock: DirectoryLock?, metrics: MetricsLog?, replay: Replay,
    communicator: any Communicator
  ) throws {
    try config.validate()
    self.lock = lock
    self.config = config
    self.folder = folder
    self.metrics = metrics
    self.replay = replay
    self.communicator = communicator
    agent = Agent(config: config.resolvedAgent, seed: config.seed)
    learner = AgentLearner(agent: agent)
    learner.share(with: communicator)
    // Rank 0 draws as a run of one process does; every other rank from streams of its own.
    let rank = UInt64(communicator.rank)
    var seeds = SeededGenerator(seed: config.seed, stream: StreamTag.environments)
    var envSeed = seeds.next()
    if rank > 0 {
      var rankSeeds = SeededGenerator(seed: envSeed, stream: rank)
      envSeed = rankSeeds.next()
    }
    let envs = try BatchEnv(name: config.env, count: config.envs, seed: envSeed)
    collector = try Collector(agent: agent, envs: envs, seed: Self.rankSeed(config.seed, rank: communicator.rank))
    learnerRNG = SeededGenerator(seed: config.seed, stream: StreamTag.learner)  // the same on every rank
    pictureRNG = SeededGenerator(seed: config.seed, stream: StreamTag.openLoop)
    loop = LoopState(ratio: Self.trainRatio(config, ranks: communicator.size))
    schedule = Schedule(config)
  }

  /// The learner steps owed per env step: `config.trainRatio` replayed steps per env step of
  /// every rank, a learner step replaying the job's batch (`ranks` x batch x length).
  static func trainRatio(_ config: TrainingConfig, ranks: Int) -> TrainRatio {
    TrainRatio(ratio: config.trainRatio, stepsPerUpdate: config.batch * config.length * ranks)
  }

  /// The seed of rank `rank`'s own generators (the collector's, the replay's): `seed` on rank 0.
  static func rankSeed(_ seed: UInt64, rank: Int) -> UInt64 {
    guard rank > 0 else { return seed }
    var g = SeededGenerator(seed: seed, stream: 0x5241_4E4B &+ UInt64(rank))  // "RANK" + rank
    return g.next()
  }

  /// Trains until `config.steps` environment steps, the wall-clock budget `config.minutes` or a
  /// `.stop`, whichever comes first, writing metrics, evaluating and checkpointing on schedule,
  /// and always checkpointing at the end. Throws ``TrainingError/nonFinite(term:update:envSteps:)``
  /// when a loss or gradient norm is not finite, without writing a checkpoint after it, and
  /// ``TrainingError/environmentFailed(_:envSteps:)`` when a worker-process environment fails,
  /// after a checkpoint of the step before.
  @discardableResult
  public func run(_ handler: (TrainingEvent) -> TrainingDisposition = { _ in .proceed }) throws -> TrainingSummary {
    try holdLock()
    defer { releaseLock() }
    var stop = false
    func report(_ event: TrainingEvent) { if handler(event) == .stop { stop = true } }
    // The checkpoint on disk is at the current step (start and resume leave it so): a run that
    // takes no step (its budget or steps already spent) writes nothing, not even the replay.
    var savedAt = envSteps
    var budget = agreed([schedule.budgetSpent(clock.total)])[0]
    // A log line due by time, agreed by every rank at the end of the step before.
    var logDue = false
    // The next open-loop picture (rank 0, image observations), in seconds of the run's clock.
    let pictures = communicator.rank == 0 && config.openLoopMinutes > 0 && replay.layout.imageSize > 0
    var nextPicture = clock.total + 60 * config.openLoopMinutes
    while envSteps < config.steps && !stop && !budget {
      let before = envSteps
      let finished: [EpisodeRecord]
      do {
        finished = try collector.step(
          schedule.actsAtRandom(atStep: before) ? .random : .agent(.sample), into: replay)
      } catch EnvError.workerFailed(let env, let message) {
        // The batch and the collector are as before this step (BatchEnv.step commits nothing
        // when an environment fails): a checkpoint of them resumes exactly here.
        if savedAt != envSteps { _ = handler(.checkpoint(try checkpoint())) }
        throw TrainingError.environmentFailed("\(env): \(message)", envSteps: envSteps)
      }
      let after = envSteps
      for e in everyRank(finished) {
        try record(e)
        report(.episode(e, envSteps: after))
      }
      for _ in 0..<schedule.updatesOwed(from: before, to: after, ratio: &loop.ratio) {
        guard let update = try learn() else { break }
        report(.update(update))
      }
      if schedule.log.crossed(from: before, to: after) || logDue { report(.log(try writeTrainLine())) }
      if schedule.evaluation.crossed(from: before, to: after) {
        if let e = try evaluateOnSchedule() { report(.evaluation(e)) }
      }
      if pictures && loop.updates > 0 && clock.total >= nextPicture {
        try writeOpenLoopPicture()
        nextPicture = clock.total + 60 * config.openLoopMinutes
      }
      if schedule.checkpoint.crossed(from: before, to: after) {
        report(.checkpoint(try checkpoint()))
        savedAt = after
      }
      report(.collected(envSteps: after))
      // Every rank stops at the same step: when any asked to, or its clock ran out.
      let now = clock.total
      let flags = agreed([
        stop, schedule.budgetSpent(now), schedule.logDue(at: now, last: loop.pending.lastLogSeconds),
      ])
      (stop, budget, logDue) = (flags[0], flags[1], flags[2])
    }
    if savedAt != envSteps { _ = handler(.checkpoint(try checkpoint())) }
    return TrainingSummary(
      envSteps: envSteps, updates: loop.updates, episodes: loop.episodes, seconds: clock.total,
      stoppedEarly: envSteps < config.steps, budgetReached: budget && envSteps < config.steps,
      recentScore: EpisodeRecord.meanScore(loop.recent), recentSuccess: EpisodeRecord.successRate(loop.recent),
      lastEvaluation: lastEvaluation)
  }

  /// Each of `flags`, true on every rank when it is true on any: one collective for all of them
  /// (in a run of one process, `flags` as they are).
  func agreed(_ flags: [Bool]) -> [Bool] {
    guard communicator.size > 1 else { return flags }
    var values = flags.map { $0 ? 1.0 : 0.0 }
    values.withUnsafeMutableBufferPointer { communicator.maximum($0) }
    return values.map { $0 > 0 }
  }

  /// The episodes every rank finished on this step, in rank order, each environment numbered
  /// across the ranks (rank R's environment i is R x envs + i).
  func everyRank(_ finished: [EpisodeRecord]) -> [EpisodeRecord] {
    guard communicator.size > 1 else { return finished }
    let encoded = finished.flatMap { e -> [Double] in
      [Double(e.environment), e.score, Double(e.length), e.success.map { $0 ? 1 : 0 } ?? -1]
    }
    return communicator.allGather(encoded).enumerated().flatMap { rank, values in
      stride(from: 0, to: values.count, by: 4).map { i in
        EpisodeRecord(
          environment: rank * config.envs + Int(values[i]), score: values[i + 1], length: Int(values[i + 2]),
          success: values[i + 3] < 0 ? nil : values[i + 3] > 0)
      }
    }
  }

  /// Takes the folder's lock unless this run holds it (rank 0 only: the other ranks write only
  /// inside their own folders, while rank 0 holds the lock).
  func holdLock() throws {
    guard lock == nil, communicator.rank == 0 else { return }
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
    let sampled = try sampleBatch()
    // A learner step is a step of every rank, or of none.
    guard !agreed([sampled == nil])[0], let sampled else { return nil }
    let start = Date()
    let m = learner.train(WorldModelBatch(sampled), rng: &learnerRNG)
    let seconds = Date().timeIntervalSince(start)
    loop.updates += 1
    let bad = m.nonFinite
    if !bad.isEmpty {
      throw TrainingError.nonFinite(term: bad.joined(separator: ", "), update: loop.updates, envSteps: envSteps)
    }
    loop.pending.add(m, seconds: seconds)
    return UpdateReport(updates: loop.updates, envSteps: envSteps, metrics: m, seconds: seconds)
  }

  func stamp(_ kind: String) -> LineStamp {
    LineStamp(kind: kind, envSteps: envSteps, updates: loop.updates, seconds: clock.total)
  }

  /// Counts a finished training episode and writes its line.
  func record(_ e: EpisodeRecord) throws {
    loop.episodes += 1
    loop.recent.append(e)
    if loop.recent.count > 100 { loop.recent.removeFirst(loop.recent.count - 100) }
    try write(.episode(EpisodeLine(stamp: stamp("episode"), episode: e)))
  }

  /// Writes the `train` line of the learner steps since the last one and starts the next.
  func writeTrainLine() throws -> TrainLine {
    let now = clock.total
    let steps = envSteps
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
    try write(.train(line))
    return line
  }

  /// The scheduled greedy evaluation, written as an `eval` line; rank 0 evaluates, the other
  /// ranks count it and return nil.
  func evaluateOnSchedule() throws -> EvaluationReport? {
    loop.evaluations += 1
    guard communicator.rank == 0 else { return nil }
    let e = try evaluate(episodes: config.evalEpisodes, index: loop.evaluations)
    lastEvaluation = e
    try write(
      .evaluation(
        EvaluationLine(
          stamp: stamp("eval"), score: e.meanScore, length: e.meanLength, episodes: e.episodes.count,
          success: e.successRate)))
    return e
  }

  /// Writes an open-loop prediction picture of a few replayed sequences to `openl/` and to the
  /// event file (tag `openl`), drawn with ``pictureRNG`` so the training itself is unchanged.
  func writeOpenLoopPicture() throws {
    let length = min(config.length, OpenLoopPicture.span)
    guard
      let sampled = try replay.sample(batchSize: 3, length: length, mode: config.sampling, using: &pictureRNG),
      let picture = OpenLoopPicture.render(agent: agent, batch: WorldModelBatch(sampled), rng: &pictureRNG)
    else { return }
    let url = folder.openLoopDirectory.appendingPathComponent("openl-\(envSteps).png")
    let png: Data
    do {
      try FileManager.default.createDirectory(at: folder.openLoopDirectory, withIntermediateDirectories: true)
      png = try picture.pngData()
      try png.write(to: url)
    } catch {
      throw TrainingError.runFolder("cannot write the open-loop picture '\(url.path)' (\(error.localizedDescription))")
    }
    try writeEvent(
      step: envSteps,
      values: [.image(tag: "openl", png: [UInt8](png), width: picture.width, height: picture.height, channels: 3)])
  }
}
