import Foundation
@_exported import NN

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// How the continuous-time SSM is discretised.
public enum Discretization: String, Sendable, Codable, CaseIterable {
  /// Lambda_bar = (1 + Delta Lambda / 2) / (1 - Delta Lambda / 2),
  /// B_bar = Delta / (1 - Delta Lambda / 2) * B~ (the default).
  case bilinear
  /// Lambda_bar = exp(Delta Lambda), B_bar = (Lambda_bar - 1) / Lambda * B~.
  case zeroOrderHold
}

/// An S5-style diagonal MIMO state-space layer: P complex states, H channels.
///
/// `x_t = Lambda_bar x_{t-1} + B_bar u_t`, `y_t = Re(C~ x_t) + D u_t`, with episode resets
/// that restart from the (optionally learned) initial state x_init. Complex values are pairs of
/// real tensors; states use the split layout [..., 2P] (real parts, then imaginary parts).
///
/// Initialisation (HiPPO-N): Lambda = -1/2 + i w from the normal part of HiPPO-LegS of size
/// P / hippoBlocks, tiled over the hippoBlocks with block-diagonal eigenvectors V; B~ = V^H B and
/// C~ = C V with B (P x H) and C (H x P) lecun-normal (fan-in = the first axis, as JAX's
/// default); D ~ N(0, 1); log Delta ~ U[log 0.001, log 0.1] per state.
///
/// ```swift
/// var rng = SeededGenerator(seed: 0)
/// let layer = SSMLayer(states: 128, channels: 512, rng: &rng)
/// let u = Variable(Tensor.normal([4, 64, 512], using: &rng))          // [B, T, H]
/// var flags = Tensor.zeros([4, 64])                                     // is_first, [B, T]
/// for b in 0..<4 { flags[b, 0] = 1 }
/// let (y, xs) = layer(u, isFirst: flags, state: nil)                   // [B, T, H], [B, T, 2P]
/// let last = xs.slice(at: 63, axis: 1)                                  // [B, 2P]
/// let ut = Variable(Tensor.normal([4, 512], using: &rng))
/// let (yt, x) = layer.step(ut, isFirst: Tensor.zeros([4]), state: last) // [B, H], [B, 2P]
/// ```
/// (This example is compiled and run by `SSMTests.DocumentationExampleTests`.)
public final class SSMLayer: Module {
  public let states: Int
  public let channels: Int
  public let hippoBlocks: Int
  public let discretization: Discretization
  /// Keep Re(Lambda) <= -1e-4 in the forward pass (S5's clip): with a positive real part the
  /// state grows without bound over long sequences. The parameter itself is not changed; its
  /// gradient is zero where the clip is active.
  public let clipEigenvalues: Bool
  /// The largest real part the clip allows.
  public static let maximumRealPart: Float = -1e-4

  public let lambdaRe: Parameter
  public let lambdaIm: Parameter
  /// B~ = V^H B, [P, H] real and imaginary parts.
  public let bRe: Parameter
  public let bIm: Parameter
  /// C~ = C V, [H, P] real and imaginary parts.
  public let cRe: Parameter
  public let cIm: Parameter
  /// Feed-through, [H].
  public let d: Parameter
  /// log Delta, [P].
  public let logStep: Parameter
  /// The learned initial state [2P] (nil: zeros).
  public let xInit: Parameter?

  /// Discretised matrices for inference (no gradient), reused while the parameters' versions
  /// are unchanged: acting and imagination call the layer once per step.
  final class Cache: @unchecked Sendable {
    let lock = NSLock()
    var versions: [Int] = []
    var lambdaBar = Tensor(0)
    var inputWeight = Tensor(0)
    var outputWeight = Tensor(0)
  }
  let cache = Cache()

  var discretizationParameters: [Parameter] { [lambdaRe, lambdaIm, bRe, bIm, cRe, cIm, logStep] }

  public init(
    states: Int, channels: Int, hippoBlocks: Int = 8, discretization: Discretization = .bilinear,
    learnedInitialState: Bool = true, clipEigenvalues: Bool = true, minStep: Float = 0.001,
    maxStep: Float = 0.1, inputScale: Float = 1, rng: inout SeededGenerator
  ) {
    precondition(states >= 1 && channels >= 1, "SSMLayer needs positive sizes")
    precondition(inputScale > 0 && inputScale.isFinite, "SSMLayer: inputScale must be positive, got \(inputScale)")
    precondition(
      minStep > 0 && minStep <= maxStep && maxStep.isFinite,
      "SSMLayer: the step range \(minStep)...\(maxStep) must be positive and ordered")
    precondition(
      hippoBlocks >= 1 && states % hippoBlocks == 0,
      "SSMLayer: states \(states) must be divisible by hippoBlocks \(hippoBlocks)")
    self.states = states
    self.channels = channels
    self.hippoBlocks = hippoBlocks
    self.discretization = discretization
    self.clipEigenvalues = clipEigenvalues
    let bs = states / hippoBlocks
    let hippo = HiPPO.normal(size: bs)
    let (p, h) = (states, channels)
    lambdaRe = Parameter(Tensor((0..<p).map { Float(hippo.lambdaRe[$0 % bs]) }))
    lambdaIm = Parameter(Tensor((0..<p).map { Float(hippo.lambdaIm[$0 % bs]) }))
    let b = (Initializer.lecunNormal.make([p, h], rng: &rng) * inputScale).scalars
    let c = Initializer.lecunNormal.make([h, p], rng: &rng).scalars
    // B~ = V^H B block by block: B~[j*bs + r, :] = sum_k conj(V[k, r]) B[j*bs + k, :].
    var br = [Float](repeating: 0, count: p * h)
    var bi = [Float](repeating: 0, count: p * h)
    // C~ = C V block by block: C~[:, j*bs + col] = sum_k C[:, j*bs + k] V[k, col].
    var cr = [Float](repeating: 0, count: h * p)
    var ci = [Float](repeating: 0, count: h * p)
    for j in 0..<hippoBlocks {
      for r in 0..<bs {
        for k in 0..<bs {
          let vr = hippo.vectorsRe[k * bs + r]
          let vi = hippo.vectorsIm[k * bs + r]
          for col in 0..<h {
            let x = Double(b[(j * bs + k) * h + col])
            br[(j * bs + r) * h + col] += Float(vr * x)
            bi[(j * bs + r) * h + col] += Float(-vi * x)
          }
        }
      }
      for row in 0..<h {
        for col in 0..<bs {
          var sr = 0.0
          var si = 0.0
          for k in 0..<bs {
            let x = Double(c[row * p + j * bs + k])
            sr += x * hippo.vectorsRe[k * bs + col]
            si += x * hippo.vectorsIm[k * bs + col]
          }
          cr[row * p + j * bs + col] = Float(sr)
          ci[row * p + j * bs + col] = Float(si)
        }
      }
    }
    bRe = Parameter(Tensor(br, shape: [p, h]))
    bIm = Parameter(Tensor(bi, shape: [p, h]))
    cRe = Parameter(Tensor(cr, shape: [h, p]))
    cIm = Parameter(Tensor(ci, shape: [h, p]))
    d = Parameter(Tensor.normal([h], using: &rng))
    logStep = Parameter(
      Tensor.uniform([p], low: logf(minStep), high: logf(maxStep), using: &rng))
    xInit = learnedInitialState ? Parameter(Tensor.zeros([2 * p])) : nil
  }

  /// x_init as a variable [2P] (zeros when not learned).
  public var xInitValue: Variable {
    xInit?.variable ?? Variable(Tensor.zeros([2 * states]))
  }

  /// The discrete state diagonal [2P] and the input weight [2P, H] (rows: Re B_bar, Im B_bar).
  public func discretize() -> (lambdaBar: Variable, inputWeight: Variable) {
    let lr = clipEigenvalues ? minimum(lambdaRe.variable, SSMLayer.maximumRealPart) : lambdaRe.variable
    let li = lambdaIm.variable
    let delta = exp(logStep.variable)
    let lbr: Variable
    let lbi: Variable
    let cr: Variable
    let ci: Variable
    switch discretization {
    case .bilinear:
      let hr = delta * lr * 0.5
      let hi = delta * li * 0.5
      let (nr, ni) = (1 + hr, hi)
      let (dr, di) = (1 - hr, -hi)
      let den2 = dr * dr + di * di
      lbr = (nr * dr + ni * di) / den2
      lbi = (ni * dr - nr * di) / den2
      cr = delta * dr / den2
      ci = -(delta * di) / den2
    case .zeroOrderHold:
      let er = exp(delta * lr)
      lbr = er * cos(delta * li)
      lbi = er * sin(delta * li)
      let l2 = lr * lr + li * li
      let mr = lbr - 1
      cr = (mr * lr + lbi * li) / l2
      ci = (lbi * lr - mr * li) / l2
    }
    let crc = cr.reshaped([states, 1])
    let cic = ci.reshaped([states, 1])
    let b1 = bRe.variable
    let b2 = bIm.variable
    let bbr = crc * b1 - cic * b2
    let bbi = crc * b2 + cic * b1
    return (
      Variable.concat([lbr, lbi], axis: 0), Variable.concat([bbr, bbi], axis: 0)
    )
  }

  /// The output weight [2P, H] = [C~re^T; -C~im^T], so y = x_split W.
  public func outputWeight() -> Variable {
    Variable.concat([cRe.variable.transposed(), -cIm.variable.transposed()], axis: 0)
  }

  /// Runs the layer over [B, T, H] inputs; returns the outputs [B, T, H] and the states
  /// [B, T, 2P]. `state` [B, 2P] is x before the first step (used where that step is not a reset;
  /// nil: zeros).
  public func callAsFunction(_ u: Variable, isFirst: Tensor, state: Variable?) -> (
    output: Variable, states: Variable
  ) {
    precondition(
      u.rank == 3 && u.shape[2] == channels,
      "SSMLayer(\(channels) channels) got input \(u.shape); expected [B, T, \(channels)]")
    let (lambdaBar, wb, wc) = matrices()
    let bu = matmul(u, wb, transposeB: true)
    let xs = linearRecurrence(
      inputs: bu, lambdaBar: lambdaBar, xInit: xInitValue, state: state,
      isFirst: isFirst)
    let y = matmul(xs, wc) + u * d.variable
    return (y, xs)
  }

  /// Lambda_bar, the input weight and the output weight: computed on the tape when any of
  /// them is being differentiated, otherwise taken from (or stored in) the inference cache.
  func matrices() -> (Variable, Variable, Variable) {
    let ps = discretizationParameters
    if ps.contains(where: { $0.isTracked }) {
      let (l, w) = discretize()
      return (l, w, outputWeight())
    }
    let versions = ps.map { $0.version }
    return cache.lock.withLock {
      if cache.versions != versions {
        let (l, w) = withoutGradient { discretize() }
        cache.lambdaBar = l.value
        cache.inputWeight = w.value
        cache.outputWeight = withoutGradient { outputWeight() }.value
        cache.versions = versions
      }
      return (Variable(cache.lambdaBar), Variable(cache.inputWeight), Variable(cache.outputWeight))
    }
  }

  /// One step: input [B, H], flags [B], state [B, 2P] (nil: zeros) -> output [B, H], state.
  public func step(_ u: Variable, isFirst: Tensor, state: Variable?) -> (output: Variable, state: Variable) {
    let b = u.shape[0]
    let (y, xs) = self(
      u.reshaped([b, 1, channels]), isFirst: isFirst.reshaped([b, 1]), state: state)
    return (y.reshaped([b, channels]), xs.reshaped([b, 2 * states]))
  }
}

/// The R2I sequence block: SSM -> GELU -> GLU -> + input -> LayerNorm.
public final class SSMBlock: Module {
  public let ssm: SSMLayer
  public let glu: GLU
  public let norm: LayerNorm

  /// `minStep` / `maxStep`: the range of the log-uniform initial step sizes Delta;
  /// `inputScale`: the factor on the initial input matrix B (see ``SSMLayer``).
  public init(
    states: Int, channels: Int, hippoBlocks: Int = 8, discretization: Discretization = .bilinear,
    learnedInitialState: Bool = true, clipEigenvalues: Bool = true, minStep: Float = 0.001, maxStep: Float = 0.1,
    inputScale: Float = 1, rng: inout SeededGenerator
  ) {
    ssm = SSMLayer(
      states: states, channels: channels, hippoBlocks: hippoBlocks, discretization: discretization,
      learnedInitialState: learnedInitialState, clipEigenvalues: clipEigenvalues, minStep: minStep,
      maxStep: maxStep, inputScale: inputScale, rng: &rng)
    glu = GLU(channels, channels, rng: &rng)
    norm = LayerNorm(channels, epsilon: 1e-6)
  }

  /// [B, T, H] -> ([B, T, H], states [B, T, 2P]).
  public func callAsFunction(_ u: Variable, isFirst: Tensor, state: Variable?) -> (
    output: Variable, states: Variable
  ) {
    let (y, xs) = ssm(u, isFirst: isFirst, state: state)
    return (norm(glu(gelu(y)) + u), xs)
  }

  /// One step: [B, H] -> ([B, H], state [B, 2P]).
  public func step(_ u: Variable, isFirst: Tensor, state: Variable?) -> (output: Variable, state: Variable) {
    let (y, x) = ssm.step(u, isFirst: isFirst, state: state)
    return (norm(glu(gelu(y)) + u), x)
  }
}

/// The hidden state of an ``SSMStack``: every layer's complex state, [B, 2P] each.
public struct SSMStackState {
  public var layers: [Variable]
  public init(layers: [Variable]) { self.layers = layers }

  /// The flat real view [B, n * 2P]: each layer's real parts, then its imaginary parts.
  public var features: Variable { Variable.concat(layers, axis: -1) }

  /// The same state with gradients stopped.
  public var detached: SSMStackState { SSMStackState(layers: layers.map { $0.detached }) }
}

/// A stack of ``SSMBlock``s, run over whole sequences (training) or one step at a time
/// (acting and imagination) with the same parameters.
public final class SSMStack: Module {
  public let blocks: [SSMBlock]

  public init(
    layers: Int, states: Int, channels: Int, hippoBlocks: Int = 8,
    discretization: Discretization = .bilinear, learnedInitialState: Bool = true,
    clipEigenvalues: Bool = true, minStep: Float = 0.001, maxStep: Float = 0.1, inputScale: Float = 1,
    rng: inout SeededGenerator
  ) {
    precondition(layers >= 1, "SSMStack needs at least one layer")
    var bs: [SSMBlock] = []
    for _ in 0..<layers {
      bs.append(
        SSMBlock(
          states: states, channels: channels, hippoBlocks: hippoBlocks, discretization: discretization,
          learnedInitialState: learnedInitialState, clipEigenvalues: clipEigenvalues, minStep: minStep,
          maxStep: maxStep, inputScale: inputScale, rng: &rng))
    }
    self.blocks = bs
  }

  public var layerCount: Int { blocks.count }
  public var states: Int { blocks[0].ssm.states }
  public var channels: Int { blocks[0].ssm.channels }
  /// Size of the flat hidden-state features.
  public var featureSize: Int { layerCount * 2 * states }

  /// A zero state for `batch` sequences (the learned x_init takes over at every reset).
  public func zeroState(batch: Int) -> SSMStackState {
    SSMStackState(layers: blocks.map { _ in Variable(Tensor.zeros([batch, 2 * states])) })
  }

  /// Runs all layers over [B, T, H]. Returns the output [B, T, H], every layer's states
  /// [B, T, 2P] (concatenated, they are the hidden features of each step) and the final state.
  public func callAsFunction(_ u: Variable, isFirst: Tensor, state: SSMStackState?) -> (
    output: Variable, states: [Variable], final: SSMStackState
  ) {
    let (b, t) = (u.shape[0], u.shape[1])
    var h = u
    var all: [Variable] = []
    var finals: [Variable] = []
    for (i, block) in blocks.enumerated() {
      let (out, xs) = block(h, isFirst: isFirst, state: state?.layers[i])
      h = out
      all.append(xs)
      finals.append(xs.slice(axis: 1, (t - 1)..<t).reshaped([b, 2 * states]))
    }
    return (h, all, SSMStackState(layers: finals))
  }

  /// One step for every sequence of the batch: [B, H] -> ([B, H], next state). `isFirst` nil
  /// means no sequence starts here (imagination).
  public func step(_ u: Variable, isFirst: Tensor? = nil, state: SSMStackState?) -> (
    output: Variable, state: SSMStackState
  ) {
    let isFirst = isFirst ?? Tensor.zeros([u.shape[0]])
    var h = u
    var next: [Variable] = []
    for (i, block) in blocks.enumerated() {
      let (out, x) = block.step(h, isFirst: isFirst, state: state?.layers[i])
      h = out
      next.append(x)
    }
    return (h, SSMStackState(layers: next))
  }
}
