/// The value function: an MLP on the chosen feature view to a 255-bin two-hot symlog
/// distribution whose output layer starts at zero (so early values are 0).
public final class Critic: Module {
  public let mlp: MLP
  public let out: Linear
  public let input: FeatureView

  public init(featureSize: Int, units: Int, layers: Int, input: FeatureView, rng: inout SeededGenerator) {
    self.input = input
    mlp = MLP(featureSize, units: units, depth: layers, rng: &rng)
    out = Linear(mlp.outFeatures(input: featureSize), TwoHotSymlog.defaultBinCount, initializer: .zeros, rng: &rng)
  }

  /// v(features [..., F]).
  public func callAsFunction(_ features: Variable) -> TwoHotSymlog { TwoHotSymlog(logits: out(mlp(features))) }

  /// v(state), reading the critic's feature view (as blocks, see ``Actor/rawOutput(_:)-(LatentState)``).
  public func callAsFunction(_ state: LatentState) -> TwoHotSymlog {
    TwoHotSymlog(logits: out(mlp(blocks: state.featureBlocks(input))))
  }
}
