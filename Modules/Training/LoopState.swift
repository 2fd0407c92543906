import Agent
import Foundation

extension TrainingRun {
  /// Takes back the loop's state from a checkpoint.
  func restoreLoop(_ saved: LoopState) throws {
    guard let rng = SeededGenerator(state: saved.learnerRNG) else {
      throw CheckpointError(problem: "the loop's state holds an invalid random state")
    }
    guard saved.pending.sums.isEmpty || saved.pending.sums.count == LearnerMetrics.fields.count else {
      throw CheckpointError(
        problem: "the loop's pending means have \(saved.pending.sums.count) metrics, not \(LearnerMetrics.fields.count)"
      )
    }
    // Every number is checked before use: a crafted file must not crash or skew the run.
    let expected = Self.trainRatio(config, ranks: communicator.size)
    let carry = saved.ratio.carry
    func check(_ ok: Bool, _ what: String) throws {
      if !ok { throw CheckpointError(problem: "the loop's state holds \(what)") }
    }
    try check(
      saved.ratio.ratio == expected.ratio && saved.ratio.stepsPerUpdate == expected.stepsPerUpdate,
      "a train ratio other than the configuration's")
    try check(carry.isFinite && carry >= 0 && carry < 1, "a train-ratio carry outside [0, 1)")
    try check(saved.updates >= 0 && saved.episodes >= 0 && saved.evaluations >= 0, "a negative counter")
    try check(saved.seconds.isFinite && saved.seconds >= 0, "a wall-clock time that is not a time")
    try check(saved.recent.count <= 100, "more than 100 recent episodes")
    let p = saved.pending
    try check(
      p.count >= 0 && p.updateSeconds.isFinite && p.lastLogSeconds.isFinite && p.lastLogSteps >= 0,
      "pending log means out of range")
    loop = saved
    learnerRNG = rng
    clock.earlier = saved.seconds
  }
}

/// The loop's own state, the checkpoint's `loop` part.
struct LoopState: Codable, Equatable {
  var updates = 0
  var episodes = 0
  var evaluations = 0
  var ratio: TrainRatio
  /// The learner's generator and the run's seconds, as of the checkpoint.
  var learnerRNG: [UInt64] = []
  var seconds: Double = 0
  var pending = PendingLog()
  /// The last (up to) 100 training episodes.
  var recent: [EpisodeRecord] = []

  func saved(learnerRNG rng: SeededGenerator, seconds: Double) -> LoopState {
    var s = self
    s.learnerRNG = rng.state
    s.seconds = seconds
    return s
  }
}

/// The learner metrics since the last `train` line: sums in ``LearnerMetrics/fields`` order,
/// kept as Double bit patterns so a resumed run writes the same means.
struct PendingLog: Codable, Equatable {
  var sums: [UInt64] = []
  var count = 0
  var updateSeconds: Double = 0
  var lastLogSteps = 0
  var lastLogSeconds: Double = 0

  mutating func add(_ m: LearnerMetrics, seconds: Double) {
    if sums.isEmpty { sums = [UInt64](repeating: 0.0.bitPattern, count: LearnerMetrics.fields.count) }
    for (i, v) in m.values.enumerated() { sums[i] = (Double(bitPattern: sums[i]) + Double(v)).bitPattern }
    count += 1
    updateSeconds += seconds
  }

  func means() -> LearnerMetrics? {
    guard count > 0, sums.count == LearnerMetrics.fields.count else { return nil }
    return LearnerMetrics(values: sums.map { Float(Double(bitPattern: $0) / Double(count)) })
  }
}
