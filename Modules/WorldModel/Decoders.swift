/// Predicts observations from features and returns the per-step reconstruction loss [B, T].
public protocol ObservationDecoder: AnyObject {
  func loss(features: Variable, target: Tensor) -> Variable
  /// ``loss(features:target:)`` on features given as blocks (see ``Linear/callAsFunction(blocks:)``);
  /// by default on their concatenation.
  func loss(blocks: [InputBlock], target: Tensor) -> Variable
  /// The reconstruction in observation space (vector: symexp of the prediction; image: pixels in
  /// [0, 1]).
  func reconstruct(features: Variable) -> Tensor
}

extension ObservationDecoder {
  public func loss(blocks: [InputBlock], target: Tensor) -> Variable {
    loss(features: Variable.concat(blocks.map(\.value), axis: -1), target: target)
  }
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

  public func loss(blocks: [InputBlock], target: Tensor) -> Variable {
    -SymlogDistribution(prediction: out(mlp(blocks: blocks))).logProb(target)
  }

  public func reconstruct(features: Variable) -> Tensor { symexp(out(mlp(features)).value) }
}

/// Linear to 4 x 4 x 8 depth, then stride-2 transposed convolutions (k4) with LayerNorm + SiLU,
/// the last one to the image channels without norm; output + 0.5; loss: summed squared error
/// against pixels / 255.
public final class ImageDecoder: Module, ObservationDecoder {
  public let input: Linear
  public let deconvs: [ConvTranspose2D]
  public let norms: [LayerNorm]
  public let geometry: CNNGeometry

  public init(featureSize: Int, height: Int, width: Int, channels: Int, depth: Int, rng: inout SeededGenerator) {
    let g = CNNGeometry(height: height, width: width, channels: channels, depth: depth)
    geometry = g
    input = Linear(featureSize, g.embedSize, rng: &rng)
    var ds: [ConvTranspose2D] = []
    var ns: [LayerNorm] = []
    for (k, (cin, cout)) in g.decoderStages.enumerated() {
      let last = k == CNNGeometry.stages - 1
      ds.append(
        ConvTranspose2D(
          cin, cout, kernelSize: CNNGeometry.kernelSize, stride: CNNGeometry.stride, bias: last, rng: &rng))
      if !last { ns.append(LayerNorm(cout, epsilon: 1e-3)) }
    }
    deconvs = ds
    norms = ns
  }

  func predict(_ features: Variable) -> Variable { predict(blocks: [InputBlock(features)]) }

  func predict(blocks: [InputBlock]) -> Variable {
    let g = geometry
    let lead = Array(blocks[0].value.shape.dropLast())
    let n = lead.reduce(1, *)
    let rows = blocks.map { InputBlock($0.value.reshaped([n, $0.value.shape.last!]), mayBeBinary: $0.mayBeBinary) }
    var x = input(blocks: rows).reshaped([n, g.bottomHeight, g.bottomWidth, g.bottomChannels])
    for (k, d) in deconvs.enumerated() {
      x = d(x)
      if k < norms.count { x = norms[k](x, activation: .silu) }
    }
    return (x + 0.5).reshaped(lead + [g.height, g.width, g.channels])
  }

  public func loss(features: Variable, target: Tensor) -> Variable {
    loss(blocks: [InputBlock(features)], target: target)
  }

  public func loss(blocks: [InputBlock], target: Tensor) -> Variable {
    let pred = predict(blocks: blocks)
    let lead = blocks[0].value.rank - 1
    return square(pred - target / 255).sum(axes: Array(lead..<(lead + 3)))
  }

  public func reconstruct(features: Variable) -> Tensor { clamp(predict(features).value, min: 0, max: 1) }
}

// MARK: Analytic counts

extension VectorDecoder {
  static func parameterCount(featureSize f: Int, outputSize n: Int, units u: Int, layers l: Int) -> Int {
    Counting.mlp(f, u, l) + Counting.linear(l == 0 ? f : u, n)
  }

  static func updateFLOPs(steps: Int, featureSize f: Int, outputSize n: Int, units u: Int, layers l: Int) -> Int {
    Counting.mlpFLOPs(steps, f, units: u, layers: l, first: Counting.tracked)
      + Counting.tracked(steps, l == 0 ? f : u, n)
  }
}

extension ImageDecoder {
  /// The input Linear, then transposed convolutions with LayerNorm (the last one has a bias and
  /// no norm).
  static func parameterCount(featureSize f: Int, _ g: CNNGeometry) -> Int {
    let area = CNNGeometry.kernelSize * CNNGeometry.kernelSize
    var total = Counting.linear(f, g.embedSize)
    for (k, (cin, cout)) in g.decoderStages.enumerated() {
      let last = k == CNNGeometry.stages - 1
      total += area * cin * cout + (last ? cout : 2 * cout)
    }
    return total
  }

  static func updateFLOPs(steps n: Int, featureSize f: Int, _ g: CNNGeometry) -> Int {
    let area = CNNGeometry.kernelSize * CNNGeometry.kernelSize
    var total = Counting.tracked(n, f, g.embedSize)
    var side = (g.bottomHeight, g.bottomWidth)
    for (cin, cout) in g.decoderStages {
      total += Counting.tracked(n * side.0 * side.1, cin, area * cout)
      side = (side.0 * CNNGeometry.stride, side.1 * CNNGeometry.stride)
    }
    return total
  }
}
