/// The kind of observation a world model sees.
public enum ObservationKind: Sendable, Codable, Equatable {
  /// A float vector of this size.
  case vector(size: Int)
  /// An 8-bit image (height, width, channels); 64 x 64 for the CNN.
  case image(height: Int, width: Int, channels: Int)

  public var flatSize: Int {
    switch self {
    case .vector(let n): return n
    case .image(let h, let w, let c): return h * w * c
    }
  }
}

/// Maps observations [B, T, ...] to embeddings [B, T, E].
public protocol ObservationEncoder: AnyObject {
  var embedSize: Int { get }
  func encode(_ observations: Tensor) -> Variable
}

/// Predicts observations from features and returns the per-step reconstruction loss [B, T].
public protocol ObservationDecoder: AnyObject {
  func loss(features: Variable, target: Tensor) -> Variable
  /// The reconstruction in observation space (vector: symexp of the prediction; image: pixels in
  /// [0, 1]).
  func reconstruct(features: Variable) -> Tensor
}

/// symlog, then an MLP of Dense blocks.
public final class VectorEncoder: Module, ObservationEncoder {
  public let mlp: MLP
  public let embedSize: Int

  public init(inputSize: Int, units: Int, layers: Int, rng: inout SeededGenerator) {
    mlp = MLP(inputSize, units: units, depth: layers, rng: &rng)
    embedSize = mlp.outFeatures(input: inputSize)
  }

  public func encode(_ observations: Tensor) -> Variable { mlp(Variable(symlog(observations))) }
}

/// MLP of Dense blocks, then a Linear to the observation size, predicting symlog(observation)
/// (loss: summed squared error in symlog space).
public final class VectorDecoder: Module, ObservationDecoder {
  public let mlp: MLP
  public let out: Linear

  public init(featureSize: Int, outputSize: Int, units: Int, layers: Int, rng: inout SeededGenerator) {
    mlp = MLP(featureSize, units: units, depth: layers, rng: &rng)
    out = Linear(mlp.outFeatures(input: featureSize), outputSize, rng: &rng)
  }

  public func loss(features: Variable, target: Tensor) -> Variable {
    -SymlogDistribution(prediction: out(mlp(features))).logProb(target)
  }

  public func reconstruct(features: Variable) -> Tensor { symexp(out(mlp(features)).value) }
}

/// Four stride-2 stages of Conv(k4, no bias) -> LayerNorm over channels -> SiLU with channels
/// depth x {1, 2, 4, 8}, on x/255 - 0.5, then flatten (4 x 4 x 8 depth for 64 x 64 inputs).
public final class ImageEncoder: Module, ObservationEncoder {
  public let convs: [Conv2D]
  public let norms: [LayerNorm]
  public let embedSize: Int
  let height: Int, width: Int, channels: Int

  public init(height: Int, width: Int, channels: Int, depth: Int, rng: inout SeededGenerator) {
    precondition(
      height % 16 == 0 && width % 16 == 0, "ImageEncoder needs sides divisible by 16, got \(height)x\(width)")
    var cs: [Conv2D] = []
    var ns: [LayerNorm] = []
    var cin = channels
    for k in 0..<4 {
      let cout = depth << k
      cs.append(Conv2D(cin, cout, kernelSize: 4, stride: 2, bias: false, rng: &rng))
      ns.append(LayerNorm(cout, epsilon: 1e-3))
      cin = cout
    }
    convs = cs
    norms = ns
    self.height = height
    self.width = width
    self.channels = channels
    embedSize = (height / 16) * (width / 16) * 8 * depth
  }

  public func encode(_ observations: Tensor) -> Variable {
    let (b, t) = (observations.shape[0], observations.shape[1])
    var x = Variable(observations.reshaped([b * t, height, width, channels]) / 255 - 0.5)
    for (c, n) in zip(convs, norms) { x = n(c(x), activation: .silu) }
    return x.reshaped([b, t, embedSize])
  }
}

/// Linear to 4 x 4 x 8 depth, then stride-2 transposed convolutions (k4) with LayerNorm + SiLU,
/// the last one to the image channels without norm; output + 0.5; loss: summed squared error
/// against pixels / 255.
public final class ImageDecoder: Module, ObservationDecoder {
  public let input: Linear
  public let deconvs: [ConvTranspose2D]
  public let norms: [LayerNorm]
  let height: Int, width: Int, channels: Int, depth: Int

  public init(featureSize: Int, height: Int, width: Int, channels: Int, depth: Int, rng: inout SeededGenerator) {
    self.height = height
    self.width = width
    self.channels = channels
    self.depth = depth
    input = Linear(featureSize, (height / 16) * (width / 16) * 8 * depth, rng: &rng)
    var ds: [ConvTranspose2D] = []
    var ns: [LayerNorm] = []
    var cin = 8 * depth
    for k in 0..<4 {
      let last = k == 3
      let cout = last ? channels : cin / 2
      ds.append(ConvTranspose2D(cin, cout, kernelSize: 4, stride: 2, bias: last, rng: &rng))
      if !last { ns.append(LayerNorm(cout, epsilon: 1e-3)) }
      cin = cout
    }
    deconvs = ds
    norms = ns
  }

  func predict(_ features: Variable) -> Variable {
    let lead = Array(features.shape.dropLast())
    let n = lead.reduce(1, *)
    var x = input(features.reshaped([n, features.shape.last!])).reshaped([n, height / 16, width / 16, 8 * depth])
    for (k, d) in deconvs.enumerated() {
      x = d(x)
      if k < 3 { x = norms[k](x, activation: .silu) }
    }
    return (x + 0.5).reshaped(lead + [height, width, channels])
  }

  public func loss(features: Variable, target: Tensor) -> Variable {
    let pred = predict(features)
    let lead = features.rank - 1
    return square(pred - target / 255).sum(axes: Array(lead..<(lead + 3)))
  }

  public func reconstruct(features: Variable) -> Tensor { clamp(predict(features).value, min: 0, max: 1) }
}

/// MLP -> 255 logits over symlog bins (two-hot), output layer zero-initialised.
public final class RewardHead: Module {
  public let mlp: MLP
  public let out: Linear

  public init(featureSize: Int, units: Int, layers: Int, bins: Int = 255, rng: inout SeededGenerator) {
    mlp = MLP(featureSize, units: units, depth: layers, rng: &rng)
    out = Linear(mlp.outFeatures(input: featureSize), bins, initializer: .zeros, rng: &rng)
  }

  public func callAsFunction(_ features: Variable) -> TwoHotSymlog { TwoHotSymlog(logits: out(mlp(features))) }
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
