import Agent
import Foundation

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
  case log(TrainLine)
  /// An evaluation finished.
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
  public var metrics: LearnerMetrics
  /// Wall-clock seconds the step took.
  public var seconds: Double
}

/// Evaluation episodes of the current policy.
public struct EvaluationReport: Sendable, CustomStringConvertible {
  public var envSteps: Int
  public var episodes: [EpisodeRecord]
  /// How the episodes chose actions.
  public var mode: EvaluationMode

  public init(envSteps: Int, episodes: [EpisodeRecord], mode: EvaluationMode) {
    self.envSteps = envSteps
    self.episodes = episodes
    self.mode = mode
  }

  public var meanScore: Double { episodes.isEmpty ? .nan : episodes.map(\.score).reduce(0, +) / Double(episodes.count) }
  public var meanLength: Double {
    episodes.isEmpty ? .nan : Double(episodes.map(\.length).reduce(0, +)) / Double(episodes.count)
  }
  /// The share of solved episodes, for tasks that define success.
  public var successRate: Double? { EpisodeRecord.successRate(episodes) }

  /// `eval at step N: sampled score S over K episodes (length L, success P%)` (or `greedy score`).
  public var description: String {
    let success = successRate.map { ", success \(TrainLine.format(100 * $0, 0))%" } ?? ""
    return
      "eval at step \(envSteps): \(mode == .greedy ? "greedy" : "sampled") score \(TrainLine.format(meanScore, 2)) over \(episodes.count) episodes (length \(TrainLine.format(meanLength, 0))\(success))"
  }
}

/// A written checkpoint.
public struct CheckpointReport: Sendable, CustomStringConvertible {
  public var envSteps: Int
  public var updates: Int
  public var directory: URL
  public var seconds: Double

  public var description: String { "checkpoint at step \(envSteps) (\(TrainLine.format(seconds, 2)) s)" }
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

extension EpisodeRecord {
  /// The share of successes among `episodes` that define success; nil when none does.
  public static func successRate(_ episodes: [EpisodeRecord]) -> Double? {
    let flags = episodes.compactMap(\.success)
    return flags.isEmpty ? nil : Double(flags.filter { $0 }.count) / Double(flags.count)
  }

  /// The mean score of `episodes` (NaN for none).
  public static func meanScore(_ episodes: [EpisodeRecord]) -> Double {
    episodes.isEmpty ? .nan : episodes.map(\.score).reduce(0, +) / Double(episodes.count)
  }
}
