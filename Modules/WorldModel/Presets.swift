import SSM

/// Named world-model sizes: the R2I domains (r2i.md section 6), the DreamerV3 sizes
/// (dreamerv3.md) and the benchmark presets (benchmarks.md).
public enum WorldModelPreset: String, Sendable, Codable, CaseIterable {
  case bsuite, popgym, memorymaze, dmc
  case dreamerS = "dreamerv3-S"
  case dreamerM = "dreamerv3-M"
  case dreamerL = "dreamerv3-L"
  case dreamerXL = "dreamerv3-XL"
  /// The speed benchmark's vector preset (64 floats, 4 actions; BSuite sizes).
  case benchmarkVector = "vector"
  /// The speed benchmark's image preset (64x64x3, CNN depth 32; otherwise as `vector`).
  case benchmarkImage = "image"
}

extension WorldModelConfig {
  /// A preset's sizes for a backbone, observation and action size.
  ///
  /// | preset | deter | units | MLP layers | CNN depth | SSM P / H / layers |
  /// |---|---|---|---|---|---|
  /// | bsuite | 512 | 512 | 2 | 32 | 128 / 512 / 3 |
  /// | popgym | 1024 | 512 | 2 | 32 | 128 / 512 / 3 |
  /// | memorymaze | 2048 | 1024 | 4 | 48 | 512 / 1024 / 5 (KL 0.8 / 0.2) |
  /// | dmc | 512 | 512 | 2 | 32 | 128 / 512 / 4 |
  /// | dreamerv3-S | 512 | 512 | 2 | 32 | 128 / 512 / 3 |
  /// | dreamerv3-M | 1024 | 640 | 3 | 48 | 256 / 640 / 3 |
  /// | dreamerv3-L | 2048 | 768 | 4 | 64 | 512 / 768 / 4 |
  /// | dreamerv3-XL | 4096 | 1024 | 5 | 96 | 512 / 1024 / 5 |
  ///
  /// The SSM sizes of the DreamerV3 presets are this project's choice for running R2I at those
  /// scales (the DreamerV3 paper has no SSM).
  public static func preset(
    _ p: WorldModelPreset, backbone: Backbone, observation: ObservationKind? = nil, actionSize: Int = 4,
    discreteActions: Bool = true
  ) -> WorldModelConfig {
    let (deter, units, layers, depth, ssm): (Int, Int, Int, Int, SSMSettings)
    switch p {
    case .bsuite, .dreamerS, .benchmarkVector, .benchmarkImage:
      (deter, units, layers, depth, ssm) = (512, 512, 2, 32, SSMSettings(states: 128, channels: 512, layers: 3))
    case .popgym:
      (deter, units, layers, depth, ssm) = (1024, 512, 2, 32, SSMSettings(states: 128, channels: 512, layers: 3))
    case .memorymaze:
      (deter, units, layers, depth, ssm) = (2048, 1024, 4, 48, SSMSettings(states: 512, channels: 1024, layers: 5))
    case .dmc:
      (deter, units, layers, depth, ssm) = (512, 512, 2, 32, SSMSettings(states: 128, channels: 512, layers: 4))
    case .dreamerM:
      (deter, units, layers, depth, ssm) = (1024, 640, 3, 48, SSMSettings(states: 256, channels: 640, layers: 3))
    case .dreamerL:
      (deter, units, layers, depth, ssm) = (2048, 768, 4, 64, SSMSettings(states: 512, channels: 768, layers: 4))
    case .dreamerXL:
      (deter, units, layers, depth, ssm) = (4096, 1024, 5, 96, SSMSettings(states: 512, channels: 1024, layers: 5))
    }
    let obs: ObservationKind
    if let observation {
      obs = observation
    } else {
      switch p {
      case .benchmarkVector, .bsuite, .popgym: obs = .vector(size: 64)
      default: obs = .image(height: 64, width: 64, channels: 3)
      }
    }
    var c = WorldModelConfig(
      backbone: backbone, observation: obs, actionSize: actionSize, discreteActions: discreteActions,
      deter: deter, units: units, mlpLayers: layers, cnnDepth: depth, ssm: ssm)
    if p == .memorymaze {
      c.dynamicScale = 0.8
      c.representationScale = 0.2
    }
    return c
  }

  // MARK: Analytic counts

  static func dense(_ i: Int, _ o: Int) -> Int { i * o + 2 * o }
  static func linear(_ i: Int, _ o: Int, bias: Bool = true) -> Int { i * o + (bias ? o : 0) }
  static func mlp(_ i: Int, _ u: Int, _ l: Int) -> Int { l == 0 ? 0 : dense(i, u) + (l - 1) * dense(u, u) }

  /// Parameters per component, computed from the sizes alone (no modules are built).
  public func parameterBreakdown() -> [String: Int] {
    let (d, u, l, s, a) = (deter, units, mlpLayers, stochSize, actionSize)
    let f = headFeatureSize
    var out: [String: Int] = [:]
    let embed: Int
    switch observation {
    case .vector(let n):
      out["encoder"] = Self.mlp(n, u, l)
      embed = l == 0 ? n : u
      out["decoder"] = Self.mlp(f, u, l) + Self.linear(l == 0 ? f : u, n)
    case .image(let h, let w, let c):
      let g = CNNGeometry(height: h, width: w, channels: c, depth: cnnDepth)
      let area = CNNGeometry.kernelSize * CNNGeometry.kernelSize
      // Convolutions without bias, each followed by a layer norm (scale and offset).
      out["encoder"] = g.encoderStages.reduce(0) { $0 + area * $1.input * $1.output + 2 * $1.output }
      embed = g.embedSize
      var dec = Self.linear(f, embed)
      for (k, (cin, cout)) in g.decoderStages.enumerated() {
        let last = k == CNNGeometry.stages - 1
        dec += area * cin * cout + (last ? cout : 2 * cout)
      }
      out["decoder"] = dec
    }
    let headOut = l == 0 ? f : u
    out["reward"] = Self.mlp(f, u, l) + Self.linear(headOut, TwoHotSymlog.defaultBinCount)
    out["continue"] = Self.mlp(f, u, l) + Self.linear(headOut, 1)
    let initial = learnedInitialState ? d : 0
    switch backbone {
    case .r2i:
      let (p, h) = (ssm.states, ssm.channels)
      let layer = 3 * p + 2 * p * h + 2 * h * p + h + (learnedInitialState ? 2 * p : 0)
      let block = layer + Self.linear(h, 2 * h) + 2 * h
      out["core"] =
        Self.dense(embed, u) + Self.linear(u, s) + Self.dense(s + a, h) + ssm.layers * block
        + Self.linear(h, d) + Self.dense(d, u) + Self.linear(u, s) + initial
    case .dreamerv3:
      out["core"] =
        Self.dense(s + a, u) + Self.linear(d + u, 3 * d, bias: false) + 6 * d + Self.dense(d, u)
        + Self.linear(u, s) + Self.dense(d + embed, u) + Self.linear(u, s) + initial
    }
    return out
  }

  /// Total parameters (see ``parameterBreakdown()``).
  public var parameterCount: Int { parameterBreakdown().values.reduce(0, +) }

  /// Matrix-product FLOPs of one world-model update (forward and backward) on B x T steps whose
  /// only resets are at t = 0, counted analytically: 2 m n k per product; a layer's backward
  /// pass adds its weight gradient and, when its input needs a gradient, the input gradient.
  public func updateMatmulFLOPs(batch b: Int, length t: Int) -> Int {
    let n = b * t
    let (d, u, l, s, a) = (deter, units, mlpLayers, stochSize, actionSize)
    let f = headFeatureSize
    func mm(_ m: Int, _ p: Int, _ k: Int) -> Int { 2 * m * p * k }
    // A layer whose input needs a gradient: forward, input gradient, weight gradient.
    func tracked(_ m: Int, _ i: Int, _ o: Int) -> Int { 3 * mm(m, o, i) }
    // A layer on data: forward and weight gradient only.
    func onData(_ m: Int, _ i: Int, _ o: Int) -> Int { 2 * mm(m, o, i) }
    func mlpFLOPs(_ m: Int, _ i: Int, first: (Int, Int, Int) -> Int) -> Int {
      l == 0 ? 0 : first(m, i, u) + (l - 1) * tracked(m, u, u)
    }
    var total = 0
    let embed: Int
    switch observation {
    case .vector(let o):
      total += mlpFLOPs(n, o, first: onData)
      embed = l == 0 ? o : u
      total += mlpFLOPs(n, f, first: tracked) + tracked(n, l == 0 ? f : u, o)
    case .image(let h, let w, let c):
      let g = CNNGeometry(height: h, width: w, channels: c, depth: cnnDepth)
      let (area, stride) = (CNNGeometry.kernelSize * CNNGeometry.kernelSize, CNNGeometry.stride)
      var side = (h, w)
      for (k, (cin, cout)) in g.encoderStages.enumerated() {
        side = (side.0 / stride, side.1 / stride)
        let m = n * side.0 * side.1
        total += k == 0 ? onData(m, area * cin, cout) : tracked(m, area * cin, cout)
      }
      embed = g.embedSize
      total += tracked(n, f, embed)
      side = (g.bottomHeight, g.bottomWidth)
      for (cin, cout) in g.decoderStages {
        total += tracked(n * side.0 * side.1, cin, area * cout)
        side = (side.0 * stride, side.1 * stride)
      }
    }
    let headIn = l == 0 ? f : u
    total += mlpFLOPs(n, f, first: tracked) + tracked(n, headIn, TwoHotSymlog.defaultBinCount)
    total += mlpFLOPs(n, f, first: tracked) + tracked(n, headIn, 1)
    // The initial latent (prior head on h_init), once per reset evaluation.
    let initial = tracked(1, d, u) + tracked(1, u, s)
    switch backbone {
    case .r2i:
      let (p, h) = (ssm.states, ssm.channels)
      total += tracked(n, embed, u) + tracked(n, u, s) + tracked(n, s + a, h)
      total += ssm.layers * (tracked(n, h, 2 * p) + tracked(n, 2 * p, h) + tracked(n, h, 2 * h))
      total += tracked(n, h, d) + tracked(n, d, u) + tracked(n, u, s)
      total += initial
    case .dreamerv3:
      total += onData(n, a, u) + tracked(n, embed, u)
      total += t * (tracked(b, s, u) + tracked(b, d + u, 3 * d) + tracked(b, d, u) + tracked(b, u, s))
      total += tracked(n, d, u) + tracked(n, u, s)
      // Once for the starting state, once for the resets at t = 0.
      total += 2 * initial
    }
    return total
  }
}
