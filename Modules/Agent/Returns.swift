@_exported import WorldModel

/// The returns of the DreamerV3 (2023) actor-critic (`docs/method.md`, section 4), as small functions over
/// time-major sequences: row k of every input is imagined step k (k = 0 is the start state),
/// H + 1 rows for a horizon H.
public enum Returns {
  /// The bootstrapped lambda-returns R_0 ... R_{H-1}, [H, N]:
  /// `R_t = r_{t+1} + gamma c_{t+1} ((1 - lambda) v_{t+1} + lambda R_{t+1})`, `R_H = v_H`.
  ///
  /// - Parameters:
  ///   - rewards: r_k, the reward of arriving at step k, [H + 1, N] (row 0 is not used).
  ///   - continues: c_k, 1 while the episode goes on after step k, [H + 1, N] (row 0 is not used).
  ///   - values: v_k, the critic's value of step k, [H + 1, N].
  /// Differentiable in all three (the actor of continuous actions backpropagates through them).
  public static func lambdaReturns(
    rewards: Variable, continues: Variable, values: Variable, discount: Float, lambda: Float
  ) -> Variable {
    let steps = rewards.shape[0]
    precondition(steps >= 2, "lambdaReturns needs at least two steps (a horizon of 1), got \(rewards.shape)")
    precondition(
      continues.shape == rewards.shape && values.shape == rewards.shape,
      "lambdaReturns: rewards \(rewards.shape), continues \(continues.shape), values \(values.shape) must match")
    var next = values.slice(at: steps - 1)
    var out: [Variable] = []
    for t in stride(from: steps - 2, through: 0, by: -1) {
      let c = continues.slice(at: t + 1)
      let blended = values.slice(at: t + 1) * (1 - lambda) + next * lambda
      next = rewards.slice(at: t + 1) + c * blended * discount
      out.append(next)
    }
    return Variable.stack(out.reversed(), axis: 0)
  }

  /// The weight of each imagined step, [H + 1, N]: `cumprod(gamma c) / gamma`, i.e.
  /// w_0 = c_0 and w_k = gamma^k c_0 ... c_k. A step after a predicted end weighs (almost) 0.
  /// `continues` row 0 is the start state's flag from data.
  public static func trajectoryWeights(continues: Tensor, discount: Float) -> Tensor {
    let steps = continues.shape[0]
    var rows: [Tensor] = []
    var running = Tensor.ones(Array(continues.shape.dropFirst())) / discount
    for k in 0..<steps {
      running = running * continues.slice(at: k, axis: 0) * discount
      rows.append(running)
    }
    return Tensor.stack(rows, axis: 0)
  }
}

/// The return scale S = max(1, EMA(P95(R)) - EMA(P5(R))) with which advantages (R - v) / S are
/// normalised. A value passed to and returned from the learner (its state is saved with it).
public struct ReturnScale: Sendable, Codable, Equatable {
  public var low: Float
  public var high: Float
  /// The EMA decay (0.99) and the percentiles (5 and 95).
  public var decay: Float
  public var lowPercentile: Float
  public var highPercentile: Float
  /// Updates so far.
  public var updates: Int

  public init(decay: Float = 0.99, lowPercentile: Float = 5, highPercentile: Float = 95) {
    low = 0
    high = 0
    self.decay = decay
    self.lowPercentile = lowPercentile
    self.highPercentile = highPercentile
    updates = 0
  }

  /// Moves the EMAs toward this batch's percentiles of `returns` (any shape). As in DreamerV3
  /// the EMAs start at 0, so early scales are small and the floor of 1 applies.
  public mutating func update(_ returns: Tensor) {
    let values = returns.scalars.sorted()
    low = decay * low + (1 - decay) * Self.percentile(values, lowPercentile)
    high = decay * high + (1 - decay) * Self.percentile(values, highPercentile)
    updates += 1
  }

  /// S = max(1, high - low).
  public var scale: Float { max(1, high - low) }

  /// The `q`-th percentile (0...100) of sorted values, interpolating linearly between ranks (as
  /// NumPy's default).
  public static func percentile(_ sorted: [Float], _ q: Float) -> Float {
    precondition(!sorted.isEmpty, "percentile of no values")
    let position = Double(q) / 100 * Double(sorted.count - 1)
    let lower = Int(position.rounded(.down))
    let upper = min(lower + 1, sorted.count - 1)
    let fraction = Float(position - Double(lower))
    return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
  }
}
