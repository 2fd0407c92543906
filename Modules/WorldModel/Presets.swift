import SSM

/// Named world-model sizes: the R2I domains, the DreamerV3 sizes and the
/// benchmark presets (`docs/method.md`, section 5).
public enum WorldModelPreset: String, Sendable, Codable, CaseIterable {
  case bsuite, popgym, memorymaze, atari100k
  case dmcProprio = "dmc-proprio"
  case dmcVision = "dmc-vision"
  /// The DMC sizes (as `dmc-vision`), kept for runs and benchmarks that name it.
  case dmc
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
  /// | bsuite | 512 | 512 | 2 (encoder, decoder 5 x 1024) | 32 | 128 / 512 / 3 |
  /// | popgym | 1024 | 512 | 2 (encoder, decoder 1 x 512) | 32 | 128 / 512 / 3 |
  /// | memorymaze | 2048 | 1024 | 4 | 48 | 512 / 1024 / 5 (KL 0.8 / 0.2) |
  /// | atari100k, dmc-vision, dmc | 512 | 512 | 2 | 32 | 128 / 512 / 4 |
  /// | dmc-proprio | 512 | 512 | 2 (encoder, decoder 5 x 1024) | 32 | 128 / 512 / 4 |
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
    case .dmc, .dmcProprio, .dmcVision, .atari100k:
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
      case .benchmarkVector, .bsuite, .popgym, .dmcProprio: obs = .vector(size: 64)
      default: obs = .image(height: 64, width: 64, channels: 3)
      }
    }
    var c = WorldModelConfig(
      backbone: backbone, observation: obs, actionSize: actionSize, discreteActions: discreteActions,
      deter: deter, units: units, mlpLayers: layers, cnnDepth: depth, ssm: ssm)
    switch p {
    case .memorymaze:
      c.dynamicScale = 0.8
      c.representationScale = 0.2
    case .bsuite, .dmcProprio:
      // The reference's encoder and decoder MLPs: set for BSuite, its defaults for DMC proprio
      // (whose `.*\.units` and `.*\.layers` overrides do not reach `mlp_units`, `mlp_layers`).
      (c.encoderLayers, c.encoderUnits) = (5, 1024)
    case .popgym:
      (c.encoderLayers, c.encoderUnits) = (1, 512)
    default: break
    }
    if backbone == .transformer { c.transformer = TransformerSettings.matching(ssm) }
    return c
  }

  // MARK: Analytic counts (each network states its own; see `Counting`)

  /// Parameters per part (encoder, core, decoder, reward, continue), from the formulas each
  /// network states beside itself.
  public func parameterBreakdown() -> [String: Int] {
    let (u, l) = (units, mlpLayers)
    let f = headFeatureSize
    var out: [String: Int] = [:]
    let embed: Int
    switch observation {
    case .vector(let n):
      let (el, eu) = encoderMLP
      out["encoder"] = VectorEncoder.parameterCount(inputSize: n, units: eu, layers: el)
      embed = VectorEncoder.embedSize(inputSize: n, units: eu, layers: el)
      out["decoder"] = VectorDecoder.parameterCount(featureSize: f, outputSize: n, units: eu, layers: el)
    case .image(let h, let w, let c):
      let g = CNNGeometry(height: h, width: w, channels: c, depth: cnnDepth)
      out["encoder"] = ImageEncoder.parameterCount(g)
      embed = g.embedSize
      out["decoder"] = ImageDecoder.parameterCount(featureSize: f, g)
    }
    let heads = featureSize(headView)
    out["reward"] = RewardHead.parameterCount(
      featureSize: heads, units: u, layers: l, rows: rewardHeadActions > 0 ? rewardHeadActions + 1 : 1)
    out["continue"] = ContinueHead.parameterCount(featureSize: heads, units: u, layers: l)
    switch backbone {
    case .r2i: out["core"] = S3M.parameterCount(embed: embed, self)
    case .dreamerv3: out["core"] = DreamerCore.parameterCount(embed: embed, self)
    case .transformer: out["core"] = TransformerCore.parameterCount(embed: embed, self)
    }
    return out
  }

  /// Total parameters (see ``parameterBreakdown()``).
  public var parameterCount: Int { parameterBreakdown().values.reduce(0, +) }

  /// FLOPs of the fused attention kernels in one world-model update (forward and backward) on
  /// B x T steps whose only resets are at t = 0: zero but for the Transformer, whose attention
  /// runs outside BLAS (``updateMatmulFLOPs(batch:length:)`` counts its projections).
  public func updateAttentionFLOPs(batch b: Int, length t: Int) -> Int {
    backbone == .transformer ? TransformerCore.attentionFLOPs(batch: b, length: t, self) : 0
  }

  /// Matrix-product FLOPs of one world-model update (forward and backward) on B x T steps whose
  /// only resets are at t = 0, counted analytically: 2 m n k per product; a layer's backward
  /// pass adds its weight gradient and, when its input needs a gradient, the input gradient.
  public func updateMatmulFLOPs(batch b: Int, length t: Int) -> Int {
    let n = b * t
    let (u, l) = (units, mlpLayers)
    let f = headFeatureSize
    var total = 0
    let embed: Int
    switch observation {
    case .vector(let o):
      let (el, eu) = encoderMLP
      total += VectorEncoder.updateFLOPs(steps: n, inputSize: o, units: eu, layers: el)
      embed = VectorEncoder.embedSize(inputSize: o, units: eu, layers: el)
      total += VectorDecoder.updateFLOPs(steps: n, featureSize: f, outputSize: o, units: eu, layers: el)
    case .image(let h, let w, let c):
      let g = CNNGeometry(height: h, width: w, channels: c, depth: cnnDepth)
      total += ImageEncoder.updateFLOPs(steps: n, g)
      embed = g.embedSize
      total += ImageDecoder.updateFLOPs(steps: n, featureSize: f, g)
    }
    let heads = featureSize(headView)
    total += RewardHead.updateFLOPs(
      steps: n, featureSize: heads, units: u, layers: l, rows: rewardHeadActions > 0 ? rewardHeadActions + 1 : 1)
    total += ContinueHead.updateFLOPs(steps: n, featureSize: heads, units: u, layers: l)
    switch backbone {
    case .r2i: total += S3M.updateFLOPs(batch: b, length: t, embed: embed, self)
    case .dreamerv3: total += DreamerCore.updateFLOPs(batch: b, length: t, embed: embed, self)
    case .transformer: total += TransformerCore.updateFLOPs(batch: b, length: t, embed: embed, self)
    }
    return total
  }
}
