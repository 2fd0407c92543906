import RSSM
import SSM

/// SSM sizes of the R2I backbone.
public struct SSMSettings: Sendable, Codable, Equatable {
  /// Complex states per layer (P).
  public var states: Int
  /// Channels (H).
  public var channels: Int
  public var layers: Int
  /// HiPPO initialisation blocks.
  public var hippoBlocks: Int = 8
  public var discretization: Discretization = .bilinear
  /// Keep Re(Lambda) <= -1e-4 (S5's clip; see ``SSMLayer/clipEigenvalues``).
  public var clipEigenvalues = true

  public init(
    states: Int, channels: Int, layers: Int, hippoBlocks: Int = 8, discretization: Discretization = .bilinear,
    clipEigenvalues: Bool = true
  ) {
    self.states = states
    self.channels = channels
    self.layers = layers
    self.hippoBlocks = hippoBlocks
    self.discretization = discretization
    self.clipEigenvalues = clipEigenvalues
  }
}

/// The R2I backbone: a non-recurrent posterior q(z_t | o_t), the SSM stack over
/// u_t = Dense(H)([z_{t-1}, a_{t-1}]), h_t = SiLU(Linear(deter)(SSM output)) and the prior
/// p(z_t | h_t). A whole sequence is one parallel computation: all posteriors at once, then the
/// scan.
public final class S3M: Module, SequenceModel {
  public let backbone = Backbone.r2i
  public let deterSize: Int
  public let groups: Int
  public let classes: Int
  public let unimix: Float
  public let actionSize: Int

  public let postHidden: Dense
  public let postOut: Linear
  public let inputLayer: Dense
  public let stack: SSMStack
  public let outProjection: Linear
  public let priorHidden: Dense
  public let priorOut: Linear
  /// w of the learned initial h_init = tanh(w) (z_init is the mode of the prior on it).
  public let initialWeight: Parameter?

  public init(
    embedSize: Int, actionSize: Int, deter: Int, units: Int, ssm: SSMSettings, groups: Int = 32,
    classes: Int = 32, unimix: Float = 0.01, learnedInitialState: Bool = true,
    rng: inout SeededGenerator
  ) {
    deterSize = deter
    self.groups = groups
    self.classes = classes
    self.unimix = unimix
    self.actionSize = actionSize
    let s = groups * classes
    postHidden = Dense(embedSize, units, rng: &rng)
    postOut = Linear(units, s, initializer: .uniform(), rng: &rng)
    inputLayer = Dense(s + actionSize, ssm.channels, rng: &rng)
    stack = SSMStack(
      layers: ssm.layers, states: ssm.states, channels: ssm.channels, hippoBlocks: ssm.hippoBlocks,
      discretization: ssm.discretization, learnedInitialState: learnedInitialState,
      clipEigenvalues: ssm.clipEigenvalues, rng: &rng)
    outProjection = Linear(ssm.channels, deter, rng: &rng)
    priorHidden = Dense(deter, units, rng: &rng)
    priorOut = Linear(units, s, initializer: .uniform(), rng: &rng)
    initialWeight = learnedInitialState ? Parameter(Tensor.zeros([deter])) : nil
  }

  public var memorySize: Int { stack.featureSize }

  func initialLatent() -> (h: Variable, z: Variable) {
    let h = initialWeight.map { tanh($0.variable).reshaped([1, deterSize]) } ?? Variable(Tensor.zeros([1, deterSize]))
    let logits = priorOut(priorHidden(h))
    let z = OneHotCategorical(logits: logits.reshaped([1, groups, classes]), unimix: unimix).mode
    return (h, z.reshaped([1, stochSize]))
  }

  public func initialState(batch: Int) -> LatentState {
    let (h, z) = initialLatent()
    return LatentState(
      deter: h.broadcast(to: [batch, deterSize]), stoch: z.broadcast(to: [batch, stochSize]),
      recurrent: stack.zeroState(batch: batch).layers)
  }

  func outputs(_ o: Variable) -> (h: Variable, priorLogits: Variable) {
    let h = silu(outProjection(o))
    return (h, priorOut(priorHidden(h)))
  }

  public func observe(
    embed: Variable, prevActions: Variable, isFirst: Tensor, state: LatentState?,
    rng: inout SeededGenerator
  ) -> SequenceOutput {
    let (b, t) = (embed.shape[0], embed.shape[1])
    let s = stochSize
    let postLogits = postOut(postHidden(embed))
    let z = OneHotCategorical(logits: postLogits.reshaped([b, t, groups, classes]), unimix: unimix)
      .sampleTimeMajor(using: &rng).reshaped([b, t, s])
    // z_{t-1}: the carried latent before t = 0, the initial latent at resets.
    let zInit = initialLatent().z
    let first = (state?.stoch ?? zInit.broadcast(to: [b, s])).reshaped([b, 1, s])
    let shifted = t > 1 ? Variable.concat([first, z.slice(axis: 1, 0..<(t - 1))], axis: 1) : first
    let zPrev = select(isFirst.reshaped([b, t, 1]), zInit.reshaped([1, 1, s]), shifted)
    let u = inputLayer(Variable.concat([zPrev, prevActions], axis: -1))
    let carry = state.map { SSMStackState(layers: $0.recurrent) }
    let (o, layerStates, _) = stack(u, isFirst: isFirst, state: carry)
    let (h, priorLogits) = outputs(o)
    return SequenceOutput(
      states: LatentState(deter: h, stoch: z, recurrent: layerStates), postLogits: postLogits,
      priorLogits: priorLogits)
  }

  public func observeStep(
    embed: Variable, prevAction: Variable, isFirst: Tensor, state: LatentState,
    rng: inout SeededGenerator
  ) -> (state: LatentState, postLogits: Variable, priorLogits: Variable) {
    let b = embed.shape[0]
    let postLogits = postOut(postHidden(embed))
    let z = sample(postLogits, rng: &rng)
    let zPrev = select(isFirst.reshaped([b, 1]), initialLatent().z, state.stoch)
    let u = inputLayer(Variable.concat([zPrev, prevAction], axis: -1))
    let (o, next) = stack.step(u, isFirst: isFirst, state: SSMStackState(layers: state.recurrent))
    let (h, priorLogits) = outputs(o)
    return (LatentState(deter: h, stoch: z, recurrent: next.layers), postLogits, priorLogits)
  }

  public func imagineStep(state: LatentState, action: Variable, rng: inout SeededGenerator) -> (
    state: LatentState, priorLogits: Variable
  ) {
    let u = inputLayer(Variable.concat([state.stoch, action], axis: -1))
    let (o, next) = stack.step(u, state: SSMStackState(layers: state.recurrent))
    let (h, logits) = outputs(o)
    return (LatentState(deter: h, stoch: sample(logits, rng: &rng), recurrent: next.layers), logits)
  }
}

/// The DreamerV3 backbone: the GRU ``RSSM`` behind the ``SequenceModel`` interface. Its memory
/// x is h itself.
public final class DreamerCore: Module, SequenceModel {
  public let backbone = Backbone.dreamerv3
  public let rssm: RSSM

  public init(
    embedSize: Int, actionSize: Int, deter: Int, units: Int, groups: Int = 32, classes: Int = 32,
    unimix: Float = 0.01, learnedInitialState: Bool = true, rng: inout SeededGenerator
  ) {
    rssm = RSSM(
      deter: deter, units: units, actionSize: actionSize, embedSize: embedSize, groups: groups,
      classes: classes, unimix: unimix, learnedInitialState: learnedInitialState, rng: &rng)
  }

  public var deterSize: Int { rssm.deter }
  public var groups: Int { rssm.groups }
  public var classes: Int { rssm.classes }
  public var unimix: Float { rssm.unimix }
  public var memorySize: Int { rssm.deter }

  public func initialState(batch: Int) -> LatentState {
    let (h, z) = rssm.initialState()
    return LatentState(
      deter: h.broadcast(to: [batch, deterSize]), stoch: z.broadcast(to: [batch, stochSize]), recurrent: [])
  }

  public func observe(
    embed: Variable, prevActions: Variable, isFirst: Tensor, state: LatentState?,
    rng: inout SeededGenerator
  ) -> SequenceOutput {
    let start = state ?? initialState(batch: embed.shape[0])
    let out = rssm.observe(
      embed: embed, prevActions: prevActions, isFirst: isFirst, h: start.deter, z: start.stoch, rng: &rng)
    return SequenceOutput(
      states: LatentState(deter: out.h, stoch: out.z, recurrent: []), postLogits: out.postLogits,
      priorLogits: out.priorLogits)
  }

  public func observeStep(
    embed: Variable, prevAction: Variable, isFirst: Tensor, state: LatentState,
    rng: inout SeededGenerator
  ) -> (state: LatentState, postLogits: Variable, priorLogits: Variable) {
    let r = rssm.observeStep(
      h: state.deter, z: state.stoch, prevAction: prevAction, embed: embed, isFirst: isFirst, rng: &rng)
    return (LatentState(deter: r.h, stoch: r.z, recurrent: []), r.postLogits, rssm.priorLogits(r.h))
  }

  public func imagineStep(state: LatentState, action: Variable, rng: inout SeededGenerator) -> (
    state: LatentState, priorLogits: Variable
  ) {
    let r = rssm.imagineStep(h: state.deter, z: state.stoch, action: action, rng: &rng)
    return (LatentState(deter: r.h, stoch: r.z, recurrent: []), r.priorLogits)
  }
}
