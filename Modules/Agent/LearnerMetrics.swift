/// What one actor-critic update measures, logged under `actor/` and `critic/`. Means are
/// weighted by the trajectory weights over the H x N imagined steps, as the losses are.
public struct BehaviourMetrics: MetricSet {
  /// The actor's loss (``ActorCriticLearner/actorLoss(_:policy:)``).
  public var actorLoss: Float = 0
  /// The mean lambda-return of the imagined steps.
  public var imaginedReturn: Float = 0
  /// The mean of (R - v) / S, and the mean of its magnitude.
  public var advantage: Float = 0
  public var advantageMagnitude: Float = 0
  /// The policy's mean entropy on the imagined states (nats).
  public var entropy: Float = 0
  /// S, the return scale the advantages were divided by.
  public var returnScale: Float = 0
  /// The mean predicted reward of the imagined steps.
  public var imaginedReward: Float = 0
  /// The actor's gradient norm before clipping.
  public var actorGradientNorm: Float = 0
  /// The critic's loss (``ActorCriticLearner/criticLoss(_:distribution:)``).
  public var criticLoss: Float = 0
  /// The mean |v - R| of the critic's values against the returns.
  public var valueError: Float = 0
  /// The critic's gradient norm before clipping.
  public var criticGradientNorm: Float = 0

  public init() {}

  public static var fields: [MetricField<BehaviourMetrics>] {
    [
      .init("actor/loss", \.actorLoss), .init("actor/return", \.imaginedReturn),
      .init("actor/advantage", \.advantage), .init("actor/advantage_abs", \.advantageMagnitude),
      .init("actor/entropy", \.entropy), .init("actor/return_scale", \.returnScale),
      .init("actor/imagined_reward", \.imaginedReward), .init("actor/grad_norm", \.actorGradientNorm),
      .init("critic/loss", \.criticLoss), .init("critic/value_error", \.valueError),
      .init("critic/grad_norm", \.criticGradientNorm),
    ]
  }
}

/// What one learner step measures: the world-model update (`wm/...`), then the actor and the
/// critic (`actor/...`, `critic/...`).
public struct LearnerMetrics: MetricSet {
  public var worldModel = WorldModelMetrics()
  public var behaviour = BehaviourMetrics()

  public init() {}

  public init(worldModel: WorldModelMetrics, behaviour: BehaviourMetrics) {
    self.worldModel = worldModel
    self.behaviour = behaviour
  }

  public static var fields: [MetricField<LearnerMetrics>] {
    let worldModel: WritableKeyPath<LearnerMetrics, WorldModelMetrics> = \.worldModel
    let behaviour: WritableKeyPath<LearnerMetrics, BehaviourMetrics> = \.behaviour
    return WorldModelMetrics.fields.map { MetricField($0.name, worldModel.appending(path: $0.path)) }
      + BehaviourMetrics.fields.map { MetricField($0.name, behaviour.appending(path: $0.path)) }
  }
}
