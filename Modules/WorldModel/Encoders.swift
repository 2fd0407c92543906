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

  /// The plain form `config.json` holds and `--set` takes: `vector:5`, `image:64x64x3`
  /// (height x width x channels).
  public var plainText: String {
    switch self {
    case .vector(let n): return "vector:\(n)"
    case .image(let h, let w, let c): return "image:\(h)x\(w)x\(c)"
    }
  }

  /// Reads ``plainText``; nil when `text` is not one.
  public init?(plainText text: String) {
    let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
    guard parts.count == 2 else { return nil }
    let ns = parts[1].split(separator: "x", omittingEmptySubsequences: false).compactMap { Int($0) }
    switch (parts[0], ns.count) {
    case ("vector", 1) where !parts[1].contains("x"): self = .vector(size: ns[0])
    case ("image", 3): self = .image(height: ns[0], width: ns[1], channels: ns[2])
    default: return nil
    }
  }

  private enum CodingKeys: String, CodingKey { case vector, image }
  private enum VectorKeys: String, CodingKey { case size }
  private enum ImageKeys: String, CodingKey { case height, width, channels }

  /// The JSON form is ``plainText`` (`"vector:5"`); the form older builds wrote
  /// (`{"vector": {"size": 5}}`, `{"image": {"height": 64, "width": 64, "channels": 3}}`) is
  /// read too.
  public init(from decoder: Decoder) throws {
    if let text = try? decoder.singleValueContainer().decode(String.self) {
      guard let kind = ObservationKind(plainText: text) else {
        throw DecodingError.dataCorrupted(
          .init(
            codingPath: decoder.codingPath,
            debugDescription: "'\(text)' is not an observation kind (vector:N or image:HxWxC)"))
      }
      self = kind
      return
    }
    let c = try decoder.container(keyedBy: CodingKeys.self)
    if c.contains(.vector) {
      let v = try c.nestedContainer(keyedBy: VectorKeys.self, forKey: .vector)
      self = .vector(size: try v.decode(Int.self, forKey: .size))
    } else {
      let i = try c.nestedContainer(keyedBy: ImageKeys.self, forKey: .image)
      self = .image(
        height: try i.decode(Int.self, forKey: .height), width: try i.decode(Int.self, forKey: .width),
        channels: try i.decode(Int.self, forKey: .channels))
    }
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(plainText)
  }
}

/// Maps observations [B, T, ...] to embeddings [B, T, E].
public protocol ObservationEncoder: AnyObject {
  var embedSize: Int { get }
  func encode(_ observations: Tensor) -> Variable
}

/// The geometry shared by the image encoder and decoder and by the parameter and FLOP formulas
/// of the presets (DreamerV3's CNN): four stride-2 stages with 4 x 4 kernels; encoder stage k
/// outputs depth x 2^k channels, so a 64 x 64 image becomes 4 x 4 x 8 depth; the decoder mirrors
/// it, its last stage producing the image channels.
public struct CNNGeometry: Sendable, Equatable {
  public static let stages = 4
  public static let kernelSize = 4
  public static let stride = 2
  /// How much the sides shrink through the encoder (16).
  public static var reduction: Int { (0..<stages).reduce(1) { r, _ in r * stride } }

  public let height: Int
  public let width: Int
  public let channels: Int
  public let depth: Int

  public init(height: Int, width: Int, channels: Int, depth: Int) {
    self.height = height
    self.width = width
    self.channels = channels
    self.depth = depth
  }

  /// Input and output channels of every encoder stage.
  public var encoderStages: [(input: Int, output: Int)] {
    (0..<Self.stages).map { k in (k == 0 ? channels : depth << (k - 1), depth << k) }
  }

  /// Input and output channels of every decoder stage (the last outputs the image channels).
  public var decoderStages: [(input: Int, output: Int)] {
    (0..<Self.stages).map { k in
      let input = bottomChannels >> k
      return (input, k == Self.stages - 1 ? channels : input / 2)
    }
  }

  /// The encoder's output grid: sides / 16 and 8 x depth channels.
  public var bottomHeight: Int { height / Self.reduction }
  public var bottomWidth: Int { width / Self.reduction }
  public var bottomChannels: Int { depth << (Self.stages - 1) }

  /// Size of the flattened embedding.
  public var embedSize: Int { bottomHeight * bottomWidth * bottomChannels }
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

/// Four stride-2 stages of Conv(k4, no bias) -> LayerNorm over channels -> SiLU with channels
/// depth x {1, 2, 4, 8}, on x/255 - 0.5, then flatten (4 x 4 x 8 depth for 64 x 64 inputs).
public final class ImageEncoder: Module, ObservationEncoder {
  public let convs: [Conv2D]
  public let norms: [LayerNorm]
  public let embedSize: Int
  let height: Int, width: Int, channels: Int

  public init(height: Int, width: Int, channels: Int, depth: Int, rng: inout SeededGenerator) {
    let r = CNNGeometry.reduction
    precondition(
      height % r == 0 && width % r == 0, "ImageEncoder needs sides divisible by \(r), got \(height)x\(width)")
    let g = CNNGeometry(height: height, width: width, channels: channels, depth: depth)
    var cs: [Conv2D] = []
    var ns: [LayerNorm] = []
    for (cin, cout) in g.encoderStages {
      cs.append(
        Conv2D(cin, cout, kernelSize: CNNGeometry.kernelSize, stride: CNNGeometry.stride, bias: false, rng: &rng))
      ns.append(LayerNorm(cout, epsilon: 1e-3))
    }
    convs = cs
    norms = ns
    self.height = height
    self.width = width
    self.channels = channels
    embedSize = g.embedSize
  }

  public func encode(_ observations: Tensor) -> Variable {
    let (b, t) = (observations.shape[0], observations.shape[1])
    var x = Variable(observations.reshaped([b * t, height, width, channels]) / 255 - 0.5)
    for (c, n) in zip(convs, norms) { x = n(c(x), activation: .silu) }
    return x.reshaped([b, t, embedSize])
  }
}

// MARK: Analytic counts

extension VectorEncoder {
  /// Parameters of an encoder of these sizes.
  static func parameterCount(inputSize n: Int, units u: Int, layers l: Int) -> Int { Counting.mlp(n, u, l) }
  /// The embedding size.
  static func embedSize(inputSize n: Int, units u: Int, layers l: Int) -> Int { l == 0 ? n : u }
  /// Matrix-product FLOPs of forward and backward over `steps` observations (they are data).
  static func updateFLOPs(steps: Int, inputSize n: Int, units u: Int, layers l: Int) -> Int {
    Counting.mlpFLOPs(steps, n, units: u, layers: l, first: Counting.onData)
  }
}

extension ImageEncoder {
  /// Convolutions without bias, each followed by a LayerNorm (scale and offset).
  static func parameterCount(_ g: CNNGeometry) -> Int {
    let area = CNNGeometry.kernelSize * CNNGeometry.kernelSize
    return g.encoderStages.reduce(0) { $0 + area * $1.input * $1.output + 2 * $1.output }
  }

  /// Convolutions as products over every output pixel; the first stage reads data.
  static func updateFLOPs(steps n: Int, _ g: CNNGeometry) -> Int {
    let area = CNNGeometry.kernelSize * CNNGeometry.kernelSize
    var side = (g.height, g.width)
    var total = 0
    for (k, (cin, cout)) in g.encoderStages.enumerated() {
      side = (side.0 / CNNGeometry.stride, side.1 / CNNGeometry.stride)
      let m = n * side.0 * side.1
      total += k == 0 ? Counting.onData(m, area * cin, cout) : Counting.tracked(m, area * cin, cout)
    }
    return total
  }
}
