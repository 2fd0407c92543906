/// How a weight tensor is initialised.
///
/// Fans: for a [in, out] matrix fan_in = in and fan_out = out; for a [KH, KW, Cin, Cout] kernel
/// both are multiplied by KH * KW. fan_avg is their mean.
public enum Initializer: Sendable, Equatable {
  /// Truncated normal in [-2, 2] std with std = sqrt(scale / fan_avg) / 0.87962566 (the
  /// DreamerV3 default; the divisor restores the variance the truncation removes).
  case truncatedNormal(scale: Float = 1)
  /// Uniform in [-limit, limit], limit = sqrt(3 * scale / fan_avg).
  case uniform(scale: Float = 1)
  /// LeCun normal: truncated normal with std sqrt(1 / fan_in) / 0.87962566 (as JAX's).
  case lecunNormal
  /// All zeros (for output layers that must start neutral).
  case zeros
  /// A standard normal scaled by `std` (not truncated).
  case normal(std: Float)

  /// The std of a standard normal truncated to [-2, 2].
  public static let truncationStd: Float = 0.879_625_661_034_239_78

  /// (fan_in, fan_out) of a weight shape.
  public static func fans(_ shape: [Int]) -> (fanIn: Float, fanOut: Float) {
    switch shape.count {
    case 0: return (1, 1)
    case 1: return (Float(shape[0]), Float(shape[0]))
    case 2: return (Float(shape[0]), Float(shape[1]))
    default:
      let receptive = Float(shape.dropLast(2).reduce(1, *))
      return (Float(shape[shape.count - 2]) * receptive, Float(shape[shape.count - 1]) * receptive)
    }
  }

  /// A tensor of `shape` initialised by this rule.
  public func make(_ shape: [Int], rng: inout SeededGenerator) -> Tensor {
    let (fanIn, fanOut) = Initializer.fans(shape)
    let fanAvg = (fanIn + fanOut) / 2
    switch self {
    case .truncatedNormal(let scale):
      let std = (scale / fanAvg).squareRoot() / Initializer.truncationStd
      return Tensor.truncatedNormal(shape, std: std, using: &rng)
    case .uniform(let scale):
      let limit = (3 * scale / fanAvg).squareRoot()
      return Tensor.uniform(shape, low: -limit, high: limit, using: &rng)
    case .lecunNormal:
      let std = (1 / fanIn).squareRoot() / Initializer.truncationStd
      return Tensor.truncatedNormal(shape, std: std, using: &rng)
    case .zeros:
      return Tensor.zeros(shape)
    case .normal(let std):
      return Tensor.normal(shape, std: std, using: &rng)
    }
  }
}

/// y = x W (+ b), with W of shape [in, out]; works on any leading batch axes.
public final class Linear: Module {
  /// [inFeatures, outFeatures].
  public let weight: Parameter
  /// [outFeatures], when the layer has a bias.
  public let bias: Parameter?

  public init(
    _ inFeatures: Int, _ outFeatures: Int, bias: Bool = true,
    initializer: Initializer = .truncatedNormal(), rng: inout SeededGenerator
  ) {
    weight = Parameter(initializer.make([inFeatures, outFeatures], rng: &rng))
    self.bias = bias ? Parameter(Tensor.zeros([outFeatures])) : nil
  }

  public var inFeatures: Int { weight.shape[0] }
  public var outFeatures: Int { weight.shape[1] }

  public func callAsFunction(_ x: Variable) -> Variable {
    precondition(
      x.shape.last == inFeatures,
      "Linear(\(inFeatures) -> \(outFeatures)) got input of shape \(x.shape)")
    let y = matmul(x, weight.variable)
    if let bias { return y + bias.variable }
    return y
  }

  /// The layer on the concatenation of `blocks` along the last axis, without forming it; binary
  /// blocks (one-hot latents and actions) add weight rows (see ``matmul(blocks:_:)``).
  public func callAsFunction(blocks: [InputBlock]) -> Variable {
    if blocks.count == 1 && !blocks[0].mayBeBinary { return self(blocks[0].value) }
    let y = matmul(blocks: blocks, weight.variable)
    if let bias { return y + bias.variable }
    return y
  }
}

/// Layer normalisation over the last axis with a learned scale and offset.
public final class LayerNorm: Module {
  public let scale: Parameter
  public let offset: Parameter
  public let epsilon: Float

  public init(_ features: Int, epsilon: Float = 1e-3) {
    scale = Parameter(Tensor.ones([features]))
    offset = Parameter(Tensor.zeros([features]))
    self.epsilon = epsilon
  }

  public func callAsFunction(_ x: Variable, activation: NormActivation = .identity) -> Variable {
    layerNorm(
      x, scale: scale.variable, offset: offset.variable, epsilon: epsilon, activation: activation)
  }
}

/// The DreamerV3 dense block: Linear without bias -> LayerNorm (eps 1e-3) -> SiLU
/// (the norm and activation run as one fused kernel).
public final class Dense: Module {
  public let linear: Linear
  public let norm: LayerNorm

  public init(
    _ inFeatures: Int, _ outFeatures: Int, epsilon: Float = 1e-3,
    initializer: Initializer = .truncatedNormal(), rng: inout SeededGenerator
  ) {
    linear = Linear(inFeatures, outFeatures, bias: false, initializer: initializer, rng: &rng)
    norm = LayerNorm(outFeatures, epsilon: epsilon)
  }

  public func callAsFunction(_ x: Variable) -> Variable {
    norm(linear(x), activation: .silu)
  }

  /// The block on the concatenation of `blocks` (see ``Linear/callAsFunction(blocks:)``).
  public func callAsFunction(blocks: [InputBlock]) -> Variable {
    norm(linear(blocks: blocks), activation: .silu)
  }
}

/// A stack of ``Dense`` blocks.
public final class MLP: Module {
  public let layers: [Dense]

  /// `inFeatures` -> `units` repeated `depth` times.
  public init(_ inFeatures: Int, units: Int, depth: Int, rng: inout SeededGenerator) {
    precondition(depth >= 0, "MLP depth must be >= 0")
    var ls: [Dense] = []
    var n = inFeatures
    for _ in 0..<depth {
      ls.append(Dense(n, units, rng: &rng))
      n = units
    }
    layers = ls
  }

  /// The output width (the input width when empty).
  public func outFeatures(input: Int) -> Int { layers.last?.linear.outFeatures ?? input }

  public func callAsFunction(_ x: Variable) -> Variable {
    layers.reduce(x) { $1($0) }
  }

  /// The stack on the concatenation of `blocks`: the first layer reads them as blocks (see
  /// ``Linear/callAsFunction(blocks:)``); an empty stack concatenates them.
  public func callAsFunction(blocks: [InputBlock]) -> Variable {
    guard let first = layers.first else { return Variable.concat(blocks.map(\.value), axis: -1) }
    return layers.dropFirst().reduce(first(blocks: blocks)) { $1($0) }
  }
}

/// Gated linear unit over the channel axis: `Linear_a(x) * sigmoid(Linear_b(x))`, computed as one
/// product to 2H features then split.
public final class GLU: Module {
  public let linear: Linear

  public init(_ inFeatures: Int, _ outFeatures: Int, rng: inout SeededGenerator) {
    linear = Linear(inFeatures, 2 * outFeatures, bias: true, rng: &rng)
  }

  public func callAsFunction(_ x: Variable) -> Variable {
    let parts = linear(x).split(count: 2, axis: -1)
    return parts[0] * sigmoid(parts[1])
  }
}

/// 2-D convolution over NHWC inputs with a [K, K, Cin, Cout] kernel.
public final class Conv2D: Module {
  public let kernel: Parameter
  public let bias: Parameter?
  public let stride: Int
  public let padding: ConvPadding

  public init(
    _ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1,
    padding: ConvPadding = .same, bias: Bool = true, initializer: Initializer = .truncatedNormal(),
    rng: inout SeededGenerator
  ) {
    kernel = Parameter(
      initializer.make([kernelSize, kernelSize, inChannels, outChannels], rng: &rng))
    self.bias = bias ? Parameter(Tensor.zeros([outChannels])) : nil
    self.stride = stride
    self.padding = padding
  }

  public func callAsFunction(_ x: Variable) -> Variable {
    let y = conv2d(x, kernel.variable, stride: stride, padding: padding)
    if let bias { return y + bias.variable }
    return y
  }
}

/// Transposed 2-D convolution over NHWC inputs with a [K, K, Cout, Cin] kernel (the adjoint
/// of ``Conv2D``'s convolution; "same" padding multiplies the spatial size by the stride).
public final class ConvTranspose2D: Module {
  public let kernel: Parameter
  public let bias: Parameter?
  public let stride: Int
  public let padding: ConvPadding

  public init(
    _ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1,
    padding: ConvPadding = .same, bias: Bool = true, initializer: Initializer = .truncatedNormal(),
    rng: inout SeededGenerator
  ) {
    // Fans as for the forward convolution this one is the transpose of.
    kernel = Parameter(
      initializer.make([kernelSize, kernelSize, outChannels, inChannels], rng: &rng))
    self.bias = bias ? Parameter(Tensor.zeros([outChannels])) : nil
    self.stride = stride
    self.padding = padding
  }

  public func callAsFunction(_ x: Variable) -> Variable {
    let y = convTranspose2d(x, kernel.variable, stride: stride, padding: padding)
    if let bias { return y + bias.variable }
    return y
  }
}
