import NN

/// What one world-model update measures, logged under `wm/`: the loss and its terms (means over
/// the real steps of the batch), the entropies of the posterior and the prior, and the gradient
/// norm before clipping.
public struct WorldModelMetrics: MetricSet {
  /// The training loss (``WorldModel/loss(_:rng:)``).
  public var loss: Float = 0
  /// The observation's negative log-likelihood.
  public var reconstruction: Float = 0
  /// The reward head's negative log-likelihood.
  public var reward: Float = 0
  /// The continue head's negative log-likelihood.
  public var continuation: Float = 0
  /// KL[sg(posterior) || prior] before free bits (the dynamics term).
  public var dynamics: Float = 0
  /// KL[posterior || sg(prior)] before free bits (the representation term).
  public var representation: Float = 0
  public var posteriorEntropy: Float = 0
  public var priorEntropy: Float = 0
  /// The global gradient norm before clipping.
  public var gradientNorm: Float = 0

  public init() {}

  public static var fields: [MetricField<WorldModelMetrics>] {
    [
      .init("wm/loss", \.loss), .init("wm/rec", \.reconstruction), .init("wm/rew", \.reward),
      .init("wm/cont", \.continuation), .init("wm/dyn", \.dynamics), .init("wm/rep", \.representation),
      .init("wm/post_entropy", \.posteriorEntropy), .init("wm/prior_entropy", \.priorEntropy),
      .init("wm/grad_norm", \.gradientNorm),
    ]
  }
}
