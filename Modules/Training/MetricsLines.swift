import Agent
import Foundation

/// One line of `metrics.jsonl`. Every line has `kind` (`episode`, `train` or `eval`),
/// `env_steps`, `updates` and `seconds`; learner metrics carry their namespaced names
/// (`wm/loss`, `actor/entropy`, `critic/loss`, see ``LearnerMetrics``), so a Python reader
/// sees the names this code uses. Non-finite numbers are written as `null`.
public enum MetricsLine: Codable, Sendable, Equatable {
  case episode(EpisodeLine)
  case train(TrainLine)
  case evaluation(EvaluationLine)

  /// When a line was written.
  public var stamp: LineStamp {
    switch self {
    case .episode(let l): return l.stamp
    case .train(let l): return l.stamp
    case .evaluation(let l): return l.stamp
    }
  }

  public init(from decoder: Decoder) throws {
    let stamp = try LineStamp(from: decoder)
    switch stamp.kind {
    case "episode": self = .episode(try EpisodeLine(from: decoder))
    case "train": self = .train(try TrainLine(from: decoder))
    case "eval": self = .evaluation(try EvaluationLine(from: decoder))
    default:
      throw DecodingError.dataCorrupted(
        .init(codingPath: [], debugDescription: "unknown kind '\(stamp.kind)' (episode, train or eval)"))
    }
  }

  public func encode(to encoder: Encoder) throws {
    switch self {
    case .episode(let l): try l.encode(to: encoder)
    case .train(let l): try l.encode(to: encoder)
    case .evaluation(let l): try l.encode(to: encoder)
    }
  }
}

/// The fields every line has.
public struct LineStamp: Codable, Sendable, Equatable {
  public var kind: String
  public var envSteps: Int
  public var updates: Int
  /// Wall-clock seconds over all sessions of the run.
  public var seconds: Double

  public init(kind: String, envSteps: Int, updates: Int, seconds: Double) {
    self.kind = kind
    self.envSteps = envSteps
    self.updates = updates
    self.seconds = seconds
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: LineKey.self)
    kind = try c.decode(String.self, forKey: LineKey("kind"))
    guard let steps = try c.count("env_steps") else {
      throw DecodingError.keyNotFound(
        LineKey("env_steps"), .init(codingPath: [], debugDescription: "missing env_steps"))
    }
    envSteps = steps
    updates = try c.count("updates") ?? 0
    seconds = try c.number("seconds") ?? 0
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: LineKey.self)
    try c.encode(kind, forKey: LineKey("kind"))
    try c.encode(envSteps, forKey: LineKey("env_steps"))
    try c.encode(updates, forKey: LineKey("updates"))
    try c.number(seconds, "seconds")
  }
}

/// A finished training episode (`kind` `episode`).
public struct EpisodeLine: Codable, Sendable, Equatable {
  public var stamp: LineStamp
  public var episode: EpisodeRecord

  public init(stamp: LineStamp, episode: EpisodeRecord) {
    self.stamp = stamp
    self.episode = episode
  }

  public init(from decoder: Decoder) throws {
    stamp = try LineStamp(from: decoder)
    let c = try decoder.container(keyedBy: LineKey.self)
    episode = EpisodeRecord(
      environment: try c.count("environment") ?? 0, score: try c.required("score"),
      length: try c.count("length") ?? 0, success: try c.number("success").map { $0 > 0 })
  }

  public func encode(to encoder: Encoder) throws {
    try stamp.encode(to: encoder)
    var c = encoder.container(keyedBy: LineKey.self)
    try c.number(episode.score, "score")
    try c.encode(episode.length, forKey: LineKey("length"))
    try c.encode(episode.environment, forKey: LineKey("environment"))
    if let s = episode.success { try c.encode(s ? 1 : 0, forKey: LineKey("success")) }
  }
}

/// Means of the learner steps since the previous `train` line, with the pace of the run and the
/// last 100 training episodes (`kind` `train`).
public struct TrainLine: Codable, Sendable, Equatable, CustomStringConvertible {
  public var stamp: LineStamp
  /// Learner steps averaged in this line.
  public var learnerSteps: Int
  /// The mean learner metrics (nil when no learner step fell in the line).
  public var metrics: LearnerMetrics?
  /// Mean wall-clock milliseconds per learner step.
  public var updateMilliseconds: Double?
  /// Environment steps per second since the previous line.
  public var stepsPerSecond: Double?
  /// Over the last (up to) 100 training episodes: mean score and length, success rate.
  public var recentScore: Double?
  public var recentLength: Double?
  public var recentSuccess: Double?

  public init(stamp: LineStamp, learnerSteps: Int) {
    self.stamp = stamp
    self.learnerSteps = learnerSteps
  }

  public init(from decoder: Decoder) throws {
    stamp = try LineStamp(from: decoder)
    let c = try decoder.container(keyedBy: LineKey.self)
    learnerSteps = try c.count("learner_steps_in_line") ?? 0
    var m = LearnerMetrics()
    var found = false
    for field in LearnerMetrics.fields {
      guard let x = try c.number(field.name) else { continue }
      m[keyPath: field.path] = Float(x)
      found = true
    }
    metrics = found ? m : nil
    updateMilliseconds = try c.number("update_ms")
    stepsPerSecond = try c.number("steps_per_second")
    recentScore = try c.number("score_recent")
    recentLength = try c.number("length_recent")
    recentSuccess = try c.number("success_recent")
  }

  public func encode(to encoder: Encoder) throws {
    try stamp.encode(to: encoder)
    var c = encoder.container(keyedBy: LineKey.self)
    try c.encode(learnerSteps, forKey: LineKey("learner_steps_in_line"))
    for (name, value) in metrics?.named ?? [] { try c.number(Double(value), name) }
    try c.number(updateMilliseconds, "update_ms")
    try c.number(stepsPerSecond, "steps_per_second")
    try c.number(recentScore, "score_recent")
    try c.number(recentLength, "length_recent")
    try c.number(recentSuccess, "success_recent")
  }

  /// The progress line `r2i train` and the memory benchmark print for it.
  public var description: String {
    let success = recentSuccess.map { " success \(Self.format(100 * $0, 0))%" } ?? ""
    var text =
      "step \(stamp.envSteps) updates \(stamp.updates) | \(Self.format(stepsPerSecond ?? .nan, 0)) steps/s | \(Self.format(stamp.seconds / 60, 1)) min | score (last 100) \(Self.format(recentScore ?? .nan, 2))\(success)"
    if let m = metrics { text += " | " + Self.losses(m) }
    return text
  }

  /// `wm L actor L critic L`, three decimals.
  public static func losses(_ m: LearnerMetrics) -> String {
    "wm \(format(Double(m.worldModel.loss), 3)) actor \(format(Double(m.behaviour.actorLoss), 3)) critic \(format(Double(m.behaviour.criticLoss), 3))"
  }

  /// `x` with `digits` decimals, or `-` when it is not finite.
  public static func format(_ x: Double, _ digits: Int) -> String {
    x.isFinite ? String(format: "%.\(digits)f", x) : "-"
  }
}

/// A greedy evaluation (`kind` `eval`).
public struct EvaluationLine: Codable, Sendable, Equatable {
  public var stamp: LineStamp
  public var score: Double
  public var length: Double
  public var episodes: Int
  /// The share of solved episodes, for tasks that define success.
  public var success: Double?

  public init(stamp: LineStamp, score: Double, length: Double, episodes: Int, success: Double?) {
    self.stamp = stamp
    self.score = score
    self.length = length
    self.episodes = episodes
    self.success = success
  }

  public init(from decoder: Decoder) throws {
    stamp = try LineStamp(from: decoder)
    let c = try decoder.container(keyedBy: LineKey.self)
    score = try c.required("eval_score")
    length = try c.number("eval_length") ?? .nan
    episodes = try c.count("eval_episodes") ?? 0
    success = try c.number("eval_success")
  }

  public func encode(to encoder: Encoder) throws {
    try stamp.encode(to: encoder)
    var c = encoder.container(keyedBy: LineKey.self)
    try c.number(score, "eval_score")
    try c.number(length, "eval_length")
    try c.encode(episodes, forKey: LineKey("eval_episodes"))
    try c.number(success, "eval_success")
  }
}
