/// MLP -> logits over symlog bins (two-hot, 255 by default), output layer zero-initialised.
///
/// With `actions` > 0 the head predicts one distribution per discrete action plus one for "no
/// action" (the first step of an episode), and reads the one of the action taken before the
/// step: r_t ~ R(s_t)[a_{t-1}]. A reward that depends on a remembered cue and the action (BSuite
/// memory_len: +1 when the last action matches the cue) is then, for each action, a function of
/// the cue alone, not a product of the two that a single output must learn from scratch.
public final class RewardHead: Module {
  public let mlp: MLP
  public let out: Linear
  /// The symlog bins of the two-hot output (`bins` points over -20...20).
  public let binValues: Tensor
  /// Discrete actions the head has a distribution for (0: one distribution for every action).
  public let actions: Int

  public init(
    featureSize: Int, units: Int, layers: Int, bins: Int = TwoHotSymlog.defaultBinCount, actions: Int = 0,
    rng: inout SeededGenerator
  ) {
    precondition(actions >= 0, "RewardHead: actions must be >= 0, got \(actions)")
    self.actions = actions
    mlp = MLP(featureSize, units: units, depth: layers, rng: &rng)
    let rows = actions > 0 ? actions + 1 : 1
    out = Linear(mlp.outFeatures(input: featureSize), rows * bins, initializer: .zeros, rng: &rng)
    binValues = bins == TwoHotSymlog.defaultBinCount ? TwoHotSymlog.defaultBins : TwoHotSymlog.bins(count: bins)
  }

  /// The reward distribution at states with `features` [..., F]. A head with ``actions`` > 0
  /// needs `previousAction` [..., A]: the one-hot (or multi-one-hot) action taken before each
  /// state, all zeros at an episode's first step; several ones add their rows' logits.
  public func callAsFunction(_ features: Variable, previousAction: Tensor? = nil) -> TwoHotSymlog {
    distribution(logits: out(mlp(features)), previousAction: previousAction)
  }

  /// The head on features given as blocks (see ``MLP/callAsFunction(blocks:)``).
  public func callAsFunction(blocks: [InputBlock], previousAction: Tensor? = nil) -> TwoHotSymlog {
    distribution(logits: out(mlp(blocks: blocks)), previousAction: previousAction)
  }

  func distribution(logits: Variable, previousAction: Tensor?) -> TwoHotSymlog {
    guard actions > 0 else { return TwoHotSymlog(logits: logits, bins: binValues) }
    guard let previousAction else {
      preconditionFailure("RewardHead with \(actions) actions needs the previous action")
    }
    let lead = Array(logits.shape.dropLast())
    precondition(
      previousAction.shape == lead + [actions],
      "RewardHead: previous action \(previousAction.shape), expected \(lead + [actions])")
    let k = binValues.count
    // The selector [..., A + 1]: the action's one-hot, and 1 in the last slot where there is none.
    let taken = previousAction.sum(axes: [-1], keepDims: true)
    let none = Tensor(taken.scalars.map { $0 == 0 ? 1 : 0 }, shape: taken.shape)
    let selector = Tensor.concat([previousAction, none], axis: -1).reshaped(lead + [actions + 1, 1])
    let chosen = (logits.reshaped(lead + [actions + 1, k]) * selector).sum(axes: [-2])
    return TwoHotSymlog(logits: chosen, bins: binValues)
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

  public func callAsFunction(_ features: Variable) -> Bernoulli { distribution(logits: out(mlp(features))) }

  /// The head on features given as blocks (see ``MLP/callAsFunction(blocks:)``).
  public func callAsFunction(blocks: [InputBlock]) -> Bernoulli { distribution(logits: out(mlp(blocks: blocks))) }

  func distribution(logits: Variable) -> Bernoulli {
    Bernoulli(logits: logits.reshaped(Array(logits.shape.dropLast())))
  }
}

// MARK: Analytic counts

extension RewardHead {
  /// `rows`: 1, or actions + 1 for a head with one distribution per action.
  static func parameterCount(
    featureSize f: Int, units u: Int, layers l: Int, bins: Int = TwoHotSymlog.defaultBinCount, rows: Int = 1
  ) -> Int { Counting.mlp(f, u, l) + Counting.linear(l == 0 ? f : u, rows * bins) }

  static func updateFLOPs(
    steps n: Int, featureSize f: Int, units u: Int, layers l: Int, bins: Int = TwoHotSymlog.defaultBinCount,
    rows: Int = 1
  ) -> Int {
    Counting.mlpFLOPs(n, f, units: u, layers: l, first: Counting.tracked)
      + Counting.tracked(n, l == 0 ? f : u, rows * bins)
  }
}

extension ContinueHead {
  static func parameterCount(featureSize f: Int, units u: Int, layers l: Int) -> Int {
    Counting.mlp(f, u, l) + Counting.linear(l == 0 ? f : u, 1)
  }

  static func updateFLOPs(steps n: Int, featureSize f: Int, units u: Int, layers l: Int) -> Int {
    Counting.mlpFLOPs(n, f, units: u, layers: l, first: Counting.tracked) + Counting.tracked(n, l == 0 ? f : u, 1)
  }
}
