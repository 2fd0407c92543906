/// DreamerV3's stochastic latent z: `groups` one-hot categoricals of `classes` each, mixed with
/// `unimix` uniform probability, as flat features [..., groups * classes]. Both world-model
/// backbones (and a discrete policy) speak this one vocabulary.
///
/// ```swift
/// let latent = CategoricalLatent(groups: 32, classes: 32)
/// let z = latent.sample(logits, using: &rng)          // [B, 1024], straight-through one-hot
/// let kl = OneHotCategorical.kl(latent.distribution(post), latent.distribution(prior))
/// ```
public struct CategoricalLatent: Sendable, Codable, Equatable {
  public var groups: Int
  public var classes: Int
  public var unimix: Float

  public init(groups: Int = 32, classes: Int = 32, unimix: Float = 0.01) {
    self.groups = groups
    self.classes = classes
    self.unimix = unimix
  }

  /// Features of one sample, groups x classes.
  public var size: Int { groups * classes }

  /// The distribution of flat logits [..., G * C] (log-probabilities and KLs sum over groups
  /// and classes).
  public func distribution(_ logits: Variable) -> OneHotCategorical {
    let lead = Array(logits.shape.dropLast())
    return OneHotCategorical(logits: logits.reshaped(lead + [groups, classes]), unimix: unimix, eventAxes: 2)
  }

  /// A straight-through one-hot sample, flat [..., G * C].
  public func sample(_ logits: Variable, using rng: inout SeededGenerator) -> Variable {
    distribution(logits).sample(using: &rng).reshaped(logits.shape)
  }

  /// A sample of sequence logits [B, T, G * C] drawn step after step (t = 0 for every b, then
  /// t = 1, ...), so it consumes the random stream as T single-step samples would.
  public func sampleSequence(_ logits: Variable, using rng: inout SeededGenerator) -> Variable {
    distribution(logits).sampleTimeMajor(using: &rng).reshaped(logits.shape)
  }

  /// The most likely class of every group, one-hot and flat.
  public func mode(_ logits: Variable) -> Variable { distribution(logits).mode.reshaped(logits.shape) }
}

/// Features -> latent logits: Dense(units) then a Linear to groups x classes with the scaled
/// uniform initialisation of DreamerV3's latent heads (prior and posterior).
public final class LatentHead: Module {
  public let hidden: Dense
  public let out: Linear

  public init(_ inFeatures: Int, units: Int, latent: CategoricalLatent, rng: inout SeededGenerator) {
    hidden = Dense(inFeatures, units, rng: &rng)
    out = Linear(units, latent.size, initializer: .uniform(), rng: &rng)
  }

  public func callAsFunction(_ x: Variable) -> Variable { out(hidden(x)) }
}

/// The learned initial latent of a sequence: h_init = tanh(w) (zeros when not learned) and
/// z_init = the mode of the prior on h_init. Used at the start and at every reset.
public final class InitialLatent: Module {
  /// w [deter], or nil for h_init = 0.
  public let weight: Parameter?
  public let deter: Int

  public init(deter: Int, learned: Bool) {
    self.deter = deter
    weight = learned ? Parameter(Tensor.zeros([deter])) : nil
  }

  /// (h_init [1, deter], z_init [1, G * C]) for the prior head `prior`.
  public func callAsFunction(prior: (Variable) -> Variable, latent: CategoricalLatent) -> (h: Variable, z: Variable) {
    let h = weight.map { tanh($0.variable).reshaped([1, deter]) } ?? Variable(Tensor.zeros([1, deter]))
    return (h, latent.mode(prior(h)))
  }
}

extension Dense {
  /// The rows of the weight that act on each part of a concatenated input ([a, b] -> W_a, W_b),
  /// so a part that does not depend on a recurrence can be projected once for a whole
  /// sequence; finish with ``activate(_:)`` on the sum of the parts' products.
  public func inputWeights(splitting sizes: [Int]) -> [Variable] {
    linear.weight.variable.split(sizes: sizes, axis: 0)
  }

  /// The rest of the layer after its matrix product: LayerNorm, then SiLU.
  public func activate(_ preactivation: Variable) -> Variable { norm(preactivation, activation: .silu) }
}
