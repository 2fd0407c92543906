import Foundation

/// A setting changed when a run was resumed (``TrainingRun/resume(from:steps:minutes:adjusting:)``),
/// kept in the run's `config.json` under `adjustments`, oldest first. The configuration's
/// fields hold the values in force now; the records say from which env step each held and what
/// it replaced, so the run's history stays readable from its folder.
public struct SettingAdjustment: Codable, Equatable, Sendable {
  /// The setting's `--set` key, e.g. `agent.worldModel.optimizer.learningRate`.
  public var setting: String
  public var from: Float
  public var to: Float
  /// The env step of the checkpoint the changed run resumed from.
  public var envSteps: Int

  public init(setting: String, from: Float, to: Float, envSteps: Int) {
    self.setting = setting
    self.from = from
    self.to = to
    self.envSteps = envSteps
  }
}

extension TrainingConfig {
  /// The settings a resume may change, by `--set` key: the learning rates of the three
  /// optimisers (the fix when a run's losses turn non-finite). Every other setting decides
  /// what the run is and is fixed when it starts.
  public static var adjustableOnResume: [(key: String, path: WritableKeyPath<TrainingConfig, Float>)] {
    [
      ("agent.worldModel.optimizer.learningRate", \.agent.worldModel.optimizer.learningRate),
      ("agent.actorCritic.actorOptimizer.learningRate", \.agent.actorCritic.actorOptimizer.learningRate),
      ("agent.actorCritic.criticOptimizer.learningRate", \.agent.actorCritic.criticOptimizer.learningRate),
    ]
  }

  /// This configuration with `other`'s values of the ``adjustableOnResume`` settings, each
  /// change appended to ``adjustments`` at `envSteps`. Nothing else is taken from `other`.
  public func adjusted(to other: TrainingConfig, atEnvStep envSteps: Int) -> TrainingConfig {
    var out = self
    for (key, path) in Self.adjustableOnResume where self[keyPath: path] != other[keyPath: path] {
      out[keyPath: path] = other[keyPath: path]
      out.adjustments.append(
        SettingAdjustment(
          setting: key, from: self[keyPath: path], to: other[keyPath: path], envSteps: envSteps))
    }
    return out
  }
}
