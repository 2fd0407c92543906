/// MLP -> logits over symlog bins (two-hot, 255 by default), output layer zero-initialised.
public final class RewardHead: Module {
  public let mlp: MLP
  public let out: Linear
  /// The symlog bins of the two-hot output (`bins` points over -20...20).
  public let binValues: Tensor

  public init(
    featureSize: Int, units: Int, layers: Int, bins: Int = TwoHotSymlog.defaultBinCount, rng: inout SeededGenerator
  ) {
    mlp = MLP(featureSize, units: units, depth: layers, rng: &rng)
    out = Linear(mlp.outFeatures(input: featureSize), bins, initializer: .zeros, rng: &rng)
    binValues = bins == TwoHotSymlog.defaultBinCount ? TwoHotSymlog.defaultBins : TwoHotSymlog.bins(count: bins)
  }

  public func callAsFunction(_ features: Variable) -> TwoHotSymlog {
    TwoHotSymlog(logits: out(mlp(features)), bins: binValues)
  }
}

/// MLP -> one Bernoulli logit for the continue flag.
public final class ContinueHead: Module {
  public let mlp: MLP
  public let out: Linear

  public init(featureSize: Int, units: Int, layers: Int, rng: inout SeededGenerator) {
    mlp = MLP(featureSize, units: units, depth: layers, rng: &rng)
    out = Linear(mlp.outFeatures(input: featureSize), 1, rng: &rng)
  }

  public func callAsFunction(_ features: Variable) -> Bernoulli {
    let logits = out(mlp(features))
    return Bernoulli(logits: logits.reshaped(Array(logits.shape.dropLast())))
  }
}

// MARK: Analytic counts

extension RewardHead {
  static func parameterCount(featureSize f: Int, units u: Int, layers l: Int, bins: Int = TwoHotSymlog.defaultBinCount)
    -> Int
  { Counting.mlp(f, u, l) + Counting.linear(l == 0 ? f : u, bins) }

  static func updateFLOPs(
    steps n: Int, featureSize f: Int, units u: Int, layers l: Int, bins: Int = TwoHotSymlog.defaultBinCount
  )
    -> Int
  { Counting.mlpFLOPs(n, f, units: u, layers: l, first: Counting.tracked) + Counting.tracked(n, l == 0 ? f : u, bins) }
}

extension ContinueHead {
  static func parameterCount(featureSize f: Int, units u: Int, layers l: Int) -> Int {
    Counting.mlp(f, u, l) + Counting.linear(l == 0 ? f : u, 1)
  }

  static func updateFLOPs(steps n: Int, featureSize f: Int, units u: Int, layers l: Int) -> Int {
    Counting.mlpFLOPs(n, f, units: u, layers: l, first: Counting.tracked) + Counting.tracked(n, l == 0 ? f : u, 1)
  }
}
