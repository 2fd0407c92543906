import Foundation

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

/// Something done every `period` environment steps (a log line, an evaluation, a checkpoint);
/// a period of 0 never comes.
public struct Every: Sendable, Equatable {
  public var period: Int

  public init(_ period: Int) { self.period = period }

  /// Whether a multiple of the period lies in (before, after]: the step that went from
  /// `before` to `after` environment steps crossed it.
  public func crossed(from before: Int, to after: Int) -> Bool {
    period > 0 && after / period > before / period
  }
}

/// When a run does what: random actions until `prefill`, then learner steps by the train ratio;
/// log lines, evaluations and checkpoints by their periods (log lines by time as well); a
/// wall-clock budget over all sessions.
struct Schedule {
  let prefill: Int
  let log: Every
  /// A log line also after this many seconds since the last (nil: by steps only).
  let logSeconds: Double?
  let evaluation: Every
  let checkpoint: Every
  /// The wall-clock budget in seconds (nil: none).
  let budget: Double?

  init(_ config: TrainingConfig) {
    prefill = config.prefill
    log = Every(config.logEvery)
    logSeconds = config.logSeconds > 0 ? config.logSeconds : nil
    evaluation = Every(config.evalEvery)
    checkpoint = Every(config.checkpointEvery)
    budget = config.minutes.map { $0 * 60 }
  }

  /// Whether the next step acts at random (the replay is still being filled).
  func actsAtRandom(atStep steps: Int) -> Bool { steps < prefill }

  /// Learner steps owed by the step from `before` to `after` (none before the prefill ends).
  func updatesOwed(from before: Int, to after: Int, ratio: inout TrainRatio) -> Int {
    after > prefill ? ratio.updates(forEnvSteps: after - max(before, prefill)) : 0
  }

  /// Whether a log line is due by time at `seconds`, the last having been written at `last`.
  func logDue(at seconds: Double, last: Double) -> Bool { logSeconds.map { seconds - last >= $0 } == true }

  /// Whether `seconds` of wall-clock time spend the budget.
  func budgetSpent(_ seconds: Double) -> Bool { budget.map { seconds >= $0 } == true }
}

/// Wall-clock seconds of a run over all its sessions: those before this session (from the
/// checkpoint) and this one's so far, read from `now` (seconds on any fixed origin; a test
/// passes a clock of its own).
struct WallClock {
  var earlier: Double = 0
  let now: @Sendable () -> Double
  let sessionStart: Double

  init(now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
    self.now = now
    sessionStart = now()
  }

  var total: Double { earlier + now() - sessionStart }
}
