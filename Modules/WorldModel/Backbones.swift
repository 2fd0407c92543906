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
  public var hippoBlocks: Int
  public var discretization = Discretization.bilinear
  /// Keep Re(Lambda) <= -1e-4 (S5's clip; see ``SSMLayer/clipEigenvalues``).
  public var clipEigenvalues = true
  /// The range of the initial step sizes Delta (log-uniform per state; S5 and R2I: 0.001 to
  /// 0.1). A one-shot input enters the state scaled by about Delta, so larger steps make a
  /// cue's trace larger at the start of training (and shorten the slowest timescales).
  public var minStep: Float = 0.001
  public var maxStep: Float = 0.1
  /// A factor on the initial input matrix B (1: lecun-normal as S5 and R2I). A one-shot input's
  /// trace in the state, and so its share of the layer's output next to the feed-through D u,
  /// grows with it.
  public var inputScale: Float = 1
  /// Whether the SSM's states restart from the initial state at an episode's first step (true,
  /// the reference's `reset_mode: init` in every domain but BSuite). False never restarts them:
  /// they run on across episode boundaries inside a sequence and while acting, and a sequence
  /// with no carried state starts from zeros, as the reference's BSuite configuration
  /// (`reset_mode: none` with a zero initial state); the latent and action fed in at an
  /// episode's first step are still the initial ones.
  public var resetsAtEpisodeStart = true

  /// A stack of `layers` layers of `states` complex states over `channels` channels; the other
  /// settings start at their defaults above.
  public init(states: Int, channels: Int, layers: Int, hippoBlocks: Int = 8) {
    self.states = states
    self.channels = channels
    self.layers = layers
    self.hippoBlocks = hippoBlocks
  }

  private enum CodingKeys: String, CodingKey {
    case states, channels, layers, hippoBlocks, discretization, clipEigenvalues, minStep, maxStep, inputScale
    case resetsAtEpisodeStart
  }

  /// Reads the JSON form; `resetsAtEpisodeStart`, which older builds did not write (they always
  /// reset), is true when absent.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    states = try c.decode(Int.self, forKey: .states)
    channels = try c.decode(Int.self, forKey: .channels)
    layers = try c.decode(Int.self, forKey: .layers)
    hippoBlocks = try c.decode(Int.self, forKey: .hippoBlocks)
    discretization = try c.decode(Discretization.self, forKey: .discretization)
    clipEigenvalues = try c.decode(Bool.self, forKey: .clipEigenvalues)
    minStep = try c.decode(Float.self, forKey: .minStep)
    maxStep = try c.decode(Float.self, forKey: .maxStep)
    inputScale = try c.decode(Float.self, forKey: .inputScale)
    resetsAtEpisodeStart = try c.decodeIfPresent(Bool.self, forKey: .resetsAtEpisodeStart) ?? true
  }
}

/// The R2I backbone: a non-recurrent posterior q(z_t | o_t), the SSM stack over
/// u_t = Dense(H)([z_{t-1}, a_{t-1}]), h_t = SiLU(Linear(deter)(SSM output)) and the prior
/// p(z_t | h_t). A whole sequence is one parallel computation: all posteriors at once, then the
/// scan.
public final class S3M: Module, SequenceModel {
  public let backbone = Backbone.r2i
  public let deterSize: Int
  public let latent: CategoricalLatent
  public let actionSize: Int

  /// q(z_t | o_t): the posterior from the embedding alone.
  public let posterior: LatentHead
  /// Whether the SSM's states restart at episode starts (``SSMSettings/resetsAtEpisodeStart``).
  public let resetsAtEpisodeStart: Bool
  public let inputLayer: Dense
  public let stack: SSMStack
  public let outProjection: Linear
  /// p(z_t | h_t).
  public let prior: LatentHead
  /// h_init = tanh(w) and z_init = the prior's mode on it.
  public let initial: InitialLatent

  public init(
    embedSize: Int, actionSize: Int, deter: Int, units: Int, ssm: SSMSettings,
    latent: CategoricalLatent = CategoricalLatent(), learnedInitialState: Bool = true, rng: inout SeededGenerator
  ) {
    deterSize = deter
    self.latent = latent
    self.actionSize = actionSize
    resetsAtEpisodeStart = ssm.resetsAtEpisodeStart
    posterior = LatentHead(embedSize, units: units, latent: latent, rng: &rng)
    inputLayer = Dense(latent.size + actionSize, ssm.channels, rng: &rng)
    stack = SSMStack(
      layers: ssm.layers, states: ssm.states, channels: ssm.channels, hippoBlocks: ssm.hippoBlocks,
      discretization: ssm.discretization, learnedInitialState: learnedInitialState,
      clipEigenvalues: ssm.clipEigenvalues, minStep: ssm.minStep, maxStep: ssm.maxStep,
      inputScale: ssm.inputScale, rng: &rng)
    outProjection = Linear(ssm.channels, deter, rng: &rng)
    prior = LatentHead(deter, units: units, latent: latent, rng: &rng)
    initial = InitialLatent(deter: deter, learned: learnedInitialState)
  }

  public var memorySize: Int { stack.featureSize }

  /// The resets the SSM stack sees: the episode starts, or none (``resetsAtEpisodeStart``).
  func stackResets(_ isFirst: Tensor) -> Tensor { resetsAtEpisodeStart ? isFirst : Tensor.zeros(isFirst.shape) }

  func initialLatent() -> (h: Variable, z: Variable) { initial(prior: prior.callAsFunction, latent: latent) }

  public func initialState(batch: Int) -> LatentState {
    let (h, z) = initialLatent()
    return LatentState(
      deter: h.broadcast(to: [batch, deterSize]), stoch: z.broadcast(to: [batch, stochSize]),
      recurrent: stack.zeroState(batch: batch).layers)
  }

  func outputs(_ o: Variable) -> (h: Variable, priorLogits: Variable) {
    let h = silu(outProjection(o))
    return (h, prior(h))
  }

  public func observe(
    embed: Variable, prevActions: Variable, isFirst: Tensor, state: LatentState?,
    rng: inout SeededGenerator
  ) -> SequenceOutput {
    let postLogits = posterior(embed)
    let z = latent.sampleSequence(postLogits, using: &rng)
    let zPrev = previousLatents(z, carried: state?.stoch, initial: initialLatent().z, isFirst: isFirst)
    let u = inputLayer(blocks: [InputBlock(zPrev, mayBeBinary: true), InputBlock(prevActions, mayBeBinary: true)])
    let carry = state.map { SSMStackState(layers: $0.recurrent) }
    let (o, layerStates, _) = stack(u, isFirst: stackResets(isFirst), state: carry)
    let (h, priorLogits) = outputs(o)
    return SequenceOutput(
      states: LatentState(deter: h, stoch: z, recurrent: layerStates), postLogits: postLogits,
      priorLogits: priorLogits)
  }

  public func observeStep(
    embed: Variable, prevAction: Variable, isFirst: Tensor, state: LatentState,
    rng: inout SeededGenerator
  ) -> (state: LatentState, postLogits: Variable, priorLogits: Variable) {
    let (postLogits, z, zPrev) = observedLatents(
      embed, posterior: posterior, latent: latent, previous: state.stoch, initial: initialLatent().z,
      isFirst: isFirst, rng: &rng)
    let u = inputLayer(Variable.concat([zPrev, prevAction], axis: -1))
    let (o, next) = stack.step(u, isFirst: stackResets(isFirst), state: SSMStackState(layers: state.recurrent))
    let (h, priorLogits) = outputs(o)
    return (LatentState(deter: h, stoch: z, recurrent: next.layers), postLogits, priorLogits)
  }

  public func imagineStep(state: LatentState, action: Variable, rng: inout SeededGenerator) -> (
    state: LatentState, priorLogits: Variable
  ) {
    let u = inputLayer(blocks: [InputBlock(state.stoch, mayBeBinary: true), InputBlock(action, mayBeBinary: true)])
    let (o, next) = stack.step(u, state: SSMStackState(layers: state.recurrent))
    let (h, logits) = outputs(o)
    return (LatentState(deter: h, stoch: latent.sample(logits, using: &rng), recurrent: next.layers), logits)
  }
}

/// The DreamerV3 backbone: the GRU ``RSSM`` behind the ``SequenceModel`` interface. Its memory
/// x is h itself.
public final class DreamerCore: Module, SequenceModel {
  public let backbone = Backbone.dreamerv3
  public let rssm: RSSM

  public init(
    embedSize: Int, actionSize: Int, deter: Int, units: Int, latent: CategoricalLatent = CategoricalLatent(),
    learnedInitialState: Bool = true, rng: inout SeededGenerator
  ) {
    rssm = RSSM(
      deter: deter, units: units, actionSize: actionSize, embedSize: embedSize, latent: latent,
      learnedInitialState: learnedInitialState, rng: &rng)
  }

  public var deterSize: Int { rssm.deter }
  public var latent: CategoricalLatent { rssm.latent }
  public var memorySize: Int { rssm.deter }

  public func initialState(batch: Int) -> LatentState {
    let (h, z) = rssm.initialLatent()
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

// MARK: Analytic counts

extension S3M {
  /// Parameters of an S3M for embeddings of `embed` features and the config's sizes.
  static func parameterCount(embed: Int, _ c: WorldModelConfig) -> Int {
    let (d, u, s, a) = (c.deter, c.units, c.stochSize, c.actionSize)
    let (p, h) = (c.ssm.states, c.ssm.channels)
    let layer = 3 * p + 2 * p * h + 2 * h * p + h + (c.learnedInitialState ? 2 * p : 0)
    let block = layer + Counting.linear(h, 2 * h) + 2 * h
    return Counting.dense(embed, u) + Counting.linear(u, s) + Counting.dense(s + a, h) + c.ssm.layers * block
      + Counting.linear(h, d) + Counting.dense(d, u) + Counting.linear(u, s) + (c.learnedInitialState ? d : 0)
  }

  /// Matrix-product FLOPs of forward and backward over B x T steps: all steps at once.
  static func updateFLOPs(batch b: Int, length t: Int, embed: Int, _ c: WorldModelConfig) -> Int {
    let n = b * t
    let (d, u, s, a) = (c.deter, c.units, c.stochSize, c.actionSize)
    let (p, h) = (c.ssm.states, c.ssm.channels)
    // The input layer reads [z_{t-1}, a_{t-1}] as blocks: forward and weight gradient over both,
    // the input gradient only into z (the actions are data).
    var total = Counting.tracked(n, embed, u) + Counting.tracked(n, u, s) + Counting.onData(n, s + a, h)
    total += Counting.product(n, h, s)
    total +=
      c.ssm.layers * (Counting.tracked(n, h, 2 * p) + Counting.tracked(n, 2 * p, h) + Counting.tracked(n, h, 2 * h))
    total += Counting.tracked(n, h, d) + Counting.tracked(n, d, u) + Counting.tracked(n, u, s)
    // The initial latent (prior head on h_init), once per reset evaluation.
    return total + Counting.tracked(1, d, u) + Counting.tracked(1, u, s)
  }
}

extension DreamerCore {
  static func parameterCount(embed: Int, _ c: WorldModelConfig) -> Int {
    let (d, u, s, a) = (c.deter, c.units, c.stochSize, c.actionSize)
    return Counting.dense(s + a, u) + Counting.linear(d + u, 3 * d, bias: false) + 6 * d + Counting.dense(d, u)
      + Counting.linear(u, s) + Counting.dense(d + embed, u) + Counting.linear(u, s) + (c.learnedInitialState ? d : 0)
  }

  /// Matrix-product FLOPs over B x T steps: the recurrent products step by step on B rows, the
  /// rest over all steps.
  static func updateFLOPs(batch b: Int, length t: Int, embed: Int, _ c: WorldModelConfig) -> Int {
    let n = b * t
    let (d, u, s, a) = (c.deter, c.units, c.stochSize, c.actionSize)
    var total = Counting.onData(n, a, u) + Counting.tracked(n, embed, u)
    total +=
      t
      * (Counting.tracked(b, s, u) + Counting.tracked(b, d + u, 3 * d) + Counting.tracked(b, d, u)
        + Counting.tracked(b, u, s))
    total += Counting.tracked(n, d, u) + Counting.tracked(n, u, s)
    // The initial latent: once for the starting state, once for the resets at t = 0.
    return total + 2 * (Counting.tracked(1, d, u) + Counting.tracked(1, u, s))
  }
}
