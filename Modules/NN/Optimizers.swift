#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
/// Adam's settings as one value, shared by every optimiser of the project (the world model, the
/// actor and the critic use different values of it).
public struct AdamSettings: Sendable, Codable, Equatable {
  public var learningRate: Float
  public var epsilon: Float
  /// Global gradient-norm clip (nil: none).
  public var gradientClip: Float?
  public var beta1: Float = 0.9
  public var beta2: Float = 0.999
  /// Decoupled weight decay on the weight matrices and convolution kernels (parameters named
  /// `weight` or `kernel`; not biases, norms or the SSM's own parameters), added to Adam's step
  /// before the learning rate scales it: `p -= lr (adam + weightDecay p)`. 0: none (every domain
  /// of the reference except Memory Maze, which uses 1e-2 on the world model).
  public var weightDecay: Float = 0

  public init(
    learningRate: Float, epsilon: Float = 1e-8, gradientClip: Float? = nil, beta1: Float = 0.9, beta2: Float = 0.999,
    weightDecay: Float = 0
  ) {
    self.learningRate = learningRate
    self.epsilon = epsilon
    self.gradientClip = gradientClip
    self.beta1 = beta1
    self.beta2 = beta2
    self.weightDecay = weightDecay
  }

  private enum CodingKeys: String, CodingKey {
    case learningRate, epsilon, gradientClip, beta1, beta2, weightDecay
  }

  /// Reads the JSON form; `weightDecay`, which older builds did not write, is 0 when absent.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    learningRate = try c.decode(Float.self, forKey: .learningRate)
    epsilon = try c.decode(Float.self, forKey: .epsilon)
    gradientClip = try c.decodeIfPresent(Float.self, forKey: .gradientClip)
    beta1 = try c.decode(Float.self, forKey: .beta1)
    beta2 = try c.decode(Float.self, forKey: .beta2)
    weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? 0
  }
}

/// Adam with optional global-norm gradient clipping (clip first, then Adam), as DreamerV3 uses.
///
/// Update per parameter with bias-corrected moments:
/// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr * m_hat / (sqrt(v_hat) + eps)`.
///
/// ```swift
/// let opt = Adam(for: model, learningRate: 1e-4, epsilon: 1e-8, clipGlobalNorm: 1000)
/// let (loss, grads) = valueAndGradient(of: model) { ... }
/// let stats = opt.update(grads)      // stats.gradientNorm before clipping
/// ```
public final class Adam: @unchecked Sendable {
  public var learningRate: Float
  public let beta1: Float
  public let beta2: Float
  public let epsilon: Float
  /// Clip gradients to this global norm before the update (nil: no clipping).
  public var clipGlobalNorm: Float?
  /// Decoupled weight decay of the parameters named `weight` or `kernel` (see
  /// ``AdamSettings/weightDecay``).
  public var weightDecay: Float = 0
  /// Updates taken so far.
  public private(set) var step: Int = 0
  /// Applied to the gradients before anything else in ``update(_:)-([Tensor])`` (nil: nothing):
  /// data-parallel training averages them over its processes here, so the norm, the clipping
  /// and the step see the job's gradient.
  public var reduceGradients: ((inout [Tensor]) -> Void)?

  let names: [String]
  let parameters: [Parameter]
  var m: [Tensor]
  var v: [Tensor]

  /// An optimiser for every parameter of `model`.
  public convenience init(
    for model: Module, learningRate: Float, epsilon: Float = 1e-8, beta1: Float = 0.9,
    beta2: Float = 0.999, clipGlobalNorm: Float? = nil
  ) {
    let named = model.namedParameters()
    self.init(
      names: named.map { $0.name }, parameters: named.map { $0.parameter },
      learningRate: learningRate, epsilon: epsilon, beta1: beta1, beta2: beta2,
      clipGlobalNorm: clipGlobalNorm)
  }

  /// An optimiser for an explicit list of named parameters.
  /// Adam over every parameter of `model` with `settings`.
  public convenience init(for model: Module, settings: AdamSettings) {
    self.init(
      for: model, learningRate: settings.learningRate, epsilon: settings.epsilon, beta1: settings.beta1,
      beta2: settings.beta2, clipGlobalNorm: settings.gradientClip)
    weightDecay = settings.weightDecay
  }

  /// Whether weight decay applies to the parameter called `name`: weight matrices and
  /// convolution kernels.
  public static func decays(_ name: String) -> Bool {
    let last = name.split(separator: ".").last ?? ""
    return last == "weight" || last == "kernel"
  }

  public init(
    names: [String], parameters: [Parameter], learningRate: Float, epsilon: Float = 1e-8,
    beta1: Float = 0.9, beta2: Float = 0.999, clipGlobalNorm: Float? = nil
  ) {
    precondition(names.count == parameters.count)
    self.names = names
    self.parameters = parameters
    self.learningRate = learningRate
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.clipGlobalNorm = clipGlobalNorm
    m = parameters.map { Tensor.zeros($0.shape) }
    v = parameters.map { Tensor.zeros($0.shape) }
  }

  /// What one update did.
  public struct Statistics: Sendable {
    /// Global gradient norm before clipping.
    public let gradientNorm: Float
    /// Whether clipping scaled the gradients.
    public let clipped: Bool
  }

  /// Applies one update with `gradients` (which must belong to this optimiser's parameters).
  @discardableResult
  public func update(_ gradients: Gradients) -> Statistics {
    precondition(
      gradients.parameters.count == parameters.count
        && zip(gradients.parameters, parameters).allSatisfy { $0 === $1 },
      "Adam.update: the gradients are for different parameters than this optimiser's")
    return update(gradients.tensors)
  }

  /// Applies one update with raw gradient tensors aligned with the parameters.
  @discardableResult
  public func update(_ grads: [Tensor]) -> Statistics {
    precondition(
      grads.count == parameters.count, "Adam.update: \(grads.count) gradients for \(parameters.count) parameters")
    var grads = grads
    reduceGradients?(&grads)
    let norm = Float(grads.reduce(0.0) { $0 + $1.sumOfSquares() }.squareRoot())
    var scale: Float = 1
    if let clip = clipGlobalNorm, norm > clip, norm > 0 { scale = clip / norm }
    step += 1
    let c1 = 1 - Float(pow(Double(beta1), Double(step)))
    let c2 = 1 - Float(pow(Double(beta2), Double(step)))
    for i in parameters.indices {
      precondition(
        grads[i].shape == parameters[i].shape,
        "Adam.update: gradient for \(names[i]) has shape \(grads[i].shape), parameter \(parameters[i].shape)")
      Adam.kernel(
        parameter: &parameters[i].value, m: &m[i], v: &v[i], gradient: grads[i], scale: scale,
        lr: learningRate, b1: beta1, b2: beta2, eps: epsilon, c1: c1, c2: c2,
        decay: weightDecay != 0 && Adam.decays(names[i]) ? learningRate * weightDecay : 0)
    }
    return Statistics(gradientNorm: norm, clipped: scale < 1)
  }

  /// One fused pass over parameter, both moments and the gradient.
  static func kernel(
    parameter p: inout Tensor, m: inout Tensor, v: inout Tensor, gradient g: Tensor, scale: Float,
    lr: Float, b1: Float, b2: Float, eps: Float, c1: Float, c2: Float, decay: Float = 0
  ) {
    let n = p.count
    p.withUnsafeMutableBufferPointer { pp in
      m.withUnsafeMutableBufferPointer { mp in
        v.withUnsafeMutableBufferPointer { vp in
          g.withUnsafeBufferPointer { gp in
            let (P, M, V, G) = (pp.baseAddress!, mp.baseAddress!, vp.baseAddress!, gp.baseAddress!)
            let stepSize = lr / c1
            let invSqrtC2 = 1 / c2.squareRoot()
            Parallelism.forEachChunk(count: n, grain: elementwiseGrain) { r in
              for i in r {
                let gi = G[i] * scale
                let mi = b1 * M[i] + (1 - b1) * gi
                let vi = b2 * V[i] + (1 - b2) * gi * gi
                M[i] = mi
                V[i] = vi
                P[i] -= stepSize * mi / ((vi.squareRoot() * invSqrtC2) + eps) + decay * P[i]
              }
            }
          }
        }
      }
    }
  }

  /// The optimiser state as named tensors (for checkpoints): `m/<name>`, `v/<name>`, `step`.
  public func stateTensors() -> [(String, Tensor)] {
    var out: [(String, Tensor)] = [("step", Tensor(Float(step)))]
    for (i, n) in names.enumerated() {
      out.append(("m/\(n)", m[i]))
      out.append(("v/\(n)", v[i]))
    }
    return out
  }

  /// Restores state written by ``stateTensors()``; throws naming any missing or mismatched entry.
  public func loadState(_ tensors: [String: Tensor]) throws {
    guard let s = tensors["step"], s.count == 1 else {
      throw CheckpointError(problem: "optimiser state has no 'step' entry")
    }
    var newM = m
    var newV = v
    for (i, n) in names.enumerated() {
      for (prefix, target) in [("m", 0), ("v", 1)] {
        guard let t = tensors["\(prefix)/\(n)"] else {
          throw CheckpointError(problem: "optimiser state is missing '\(prefix)/\(n)'")
        }
        guard t.shape == parameters[i].shape else {
          throw CheckpointError(
            problem: "optimiser state '\(prefix)/\(n)' has shape \(t.shape), expected \(parameters[i].shape)")
        }
        if target == 0 { newM[i] = t } else { newV[i] = t }
      }
    }
    let count = s.scalar
    guard count.isFinite, count >= 0, count <= 1e9, count.rounded() == count else {
      throw CheckpointError(problem: "optimiser state 'step' is \(count), not a step count")
    }
    // Second moments are squares: a negative or non-finite one would poison every update.
    for (i, t) in newV.enumerated() where !t.scalars.allSatisfy({ $0.isFinite && $0 >= 0 }) {
      throw CheckpointError(problem: "optimiser state 'v/\(names[i])' holds a negative or non-finite value")
    }
    for (i, t) in newM.enumerated() where !t.scalars.allSatisfy(\.isFinite) {
      throw CheckpointError(problem: "optimiser state 'm/\(names[i])' holds a non-finite value")
    }
    m = newM
    v = newV
    step = Int(count)
  }
}

/// An exponential moving average of a module's parameters kept in another module of the same
/// structure (DreamerV3's slow critic): `target = (1 - rate) * target + rate * source`.
public struct ParameterEMA {
  public let rate: Float
  let source: [Parameter]
  let target: [Parameter]

  /// Starts `target` as a copy of `source`.
  public init(source: Module, target: Module, rate: Float) {
    precondition(rate > 0 && rate <= 1, "ParameterEMA rate must be in (0, 1], got \(rate)")
    target.copyParameters(from: source)
    self.rate = rate
    self.source = source.parameters
    self.target = target.parameters
  }

  /// Moves the target a step `rate` towards the source.
  public func update() {
    for (s, t) in zip(source, target) {
      var tv = t.value
      t.value = Tensor.zeros([0])  // drop the extra reference so the update is in place
      tv *= (1 - rate)
      tv.addScaled(s.value, rate)
      t.value = tv
    }
  }
}
