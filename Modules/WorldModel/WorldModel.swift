import RSSM
import SSM

/// Everything that determines a world model's structure and its update.
public struct WorldModelConfig: Sendable, Codable, Equatable {
  public var backbone: Backbone
  public var observation: ObservationKind
  public var actionSize: Int
  /// Whether actions are one-hot (discrete) or continuous (scaled by sg(1 / max(1, |a|))).
  public var discreteActions: Bool = true
  public var deter: Int
  /// Width of the Dense layers (posterior, prior, input projection for the GRU, heads, MLPs).
  public var units: Int
  /// Dense blocks in the encoder, decoder and head MLPs.
  public var mlpLayers: Int
  /// Dense blocks and width of the vector encoder's and decoder's MLPs when they differ from
  /// the heads' (the reference sizes them apart: BSuite 5 x 1024, POPGym 1 x 512 with heads of
  /// 2 x 512); nil: `mlpLayers` and `units`.
  public var encoderLayers: Int?
  public var encoderUnits: Int?
  /// The vector encoder's and decoder's MLP: (layers, units).
  public var encoderMLP: (layers: Int, units: Int) { (encoderLayers ?? mlpLayers, encoderUnits ?? units) }
  /// Channel multiplier of the image encoder and decoder.
  public var cnnDepth: Int
  public var ssm: SSMSettings
  /// The Transformer backbone's sizes (nil: ``TransformerSettings/matching(_:)`` the SSM's;
  /// the other backbones ignore them).
  public var transformer: TransformerSettings?
  /// The stochastic latent: 32 groups of 32 classes with 1 % unimix by default.
  public var latent = CategoricalLatent(groups: 32, classes: 32, unimix: 0.01)
  public var groups: Int {
    get { latent.groups }
    set { latent.groups = newValue }
  }
  public var classes: Int {
    get { latent.classes }
    set { latent.classes = newValue }
  }
  public var learnedInitialState: Bool = true
  /// Loss scales: KL[sg(post) || prior] and KL[post || sg(prior)], with free bits.
  public var dynamicScale: Float = 0.5
  public var representationScale: Float = 0.1
  public var freeBits: Float = 1
  /// Adam settings of the world-model update (`docs/method.md`, section 2).
  public var optimizer = AdamSettings(learningRate: 1e-4, epsilon: 1e-8, gradientClip: 1000)
  /// What the reward and continue heads read: ``FeatureView/output``, [h, z], as the paper.
  /// `full` [h, z, x] lets them read R2I's memory x directly: a cue held in x reaches the reward
  /// head without first having to pass through the SSM's output. The decoder always reads [h, z].
  public var headInput = FeatureView.output
  /// Whether the reward head predicts one distribution per discrete action and reads the one of
  /// the action taken before the step (see ``RewardHead``; false: one distribution, as the
  /// paper). Discrete actions only.
  public var rewardByAction = false

  public init(
    backbone: Backbone, observation: ObservationKind, actionSize: Int, discreteActions: Bool = true,
    deter: Int, units: Int, mlpLayers: Int, cnnDepth: Int = 32, ssm: SSMSettings
  ) {
    self.backbone = backbone
    self.observation = observation
    self.actionSize = actionSize
    self.discreteActions = discreteActions
    self.deter = deter
    self.units = units
    self.mlpLayers = mlpLayers
    self.cnnDepth = cnnDepth
    self.ssm = ssm
  }

  public var stochSize: Int { latent.size }
  /// Size of the [h, z] features the decoder reads.
  public var headFeatureSize: Int { deter + stochSize }
  /// The actions the reward head has a distribution for: `actionSize` with ``rewardByAction``,
  /// else 0.
  public var rewardHeadActions: Int { rewardByAction ? actionSize : 0 }

  /// The view the reward and continue heads read (``headInput``).
  public var headView: FeatureView { headInput }
  /// Size of x as features: the real and imaginary parts of every SSM layer's P states, or h
  /// for the GRU.
  public var memorySize: Int { backbone == .r2i ? ssm.layers * 2 * ssm.states : deter }
  /// The Transformer's sizes in effect: ``transformer``, or those matching the SSM's.
  public var transformerSettings: TransformerSettings { transformer ?? TransformerSettings.matching(ssm) }
  /// Size of the features of `view`.
  public func featureSize(_ view: FeatureView) -> Int {
    switch view {
    case .output: return deter + stochSize
    case .hidden: return stochSize + memorySize
    case .full: return deter + stochSize + memorySize
    }
  }
}

/// A batch of sequences for the world model, in the replay convention (`docs/method.md`, section 1).
public struct WorldModelBatch {
  /// [B, T, obs] floats, or [B, T, H, W, C] pixel values 0...255 as floats.
  public var observations: Tensor
  /// a_t chosen after seeing o_t, [B, T, A] (one-hot for discrete actions).
  public var actions: Tensor
  /// r_t received on arriving at o_t, [B, T].
  public var rewards: Tensor
  public var isFirst: Tensor
  public var isTerminal: Tensor
  /// 1 for real steps, 0 for padding, [B, T] (nil: all real).
  public var mask: Tensor?

  public init(
    observations: Tensor, actions: Tensor, rewards: Tensor, isFirst: Tensor, isTerminal: Tensor,
    mask: Tensor? = nil
  ) {
    self.observations = observations
    self.actions = actions
    self.rewards = rewards
    self.isFirst = isFirst
    self.isTerminal = isTerminal
    self.mask = mask
  }

  public var batchSize: Int { rewards.shape[0] }
  public var length: Int { rewards.shape[1] }
}

/// The world model: encoder, sequence backbone, decoder, reward and continue heads.
///
/// ```swift
/// let config = WorldModelConfig.preset(.bsuite, backbone: .r2i, observation: .vector(size: 3), actionSize: 2)
/// let model = WorldModel(config: config, seed: 0)
/// let trainer = WorldModelTrainer(model: model)
/// var rng = SeededGenerator(seed: 1)
/// let batch = WorldModelBatch(                       // B = 2 sequences of T = 8 steps
///   observations: Tensor.normal([2, 8, 3], using: &rng), actions: Tensor.zeros([2, 8, 2]),
///   rewards: Tensor.zeros([2, 8]), isFirst: Tensor.zeros([2, 8]), isTerminal: Tensor.zeros([2, 8]))
/// let update = trainer.update(batch, rng: &rng)
/// print(update.metrics.loss, update.metrics.reconstruction)  // typed: WorldModelMetrics
/// ```
/// (This example is compiled and run by `WorldModelTests.DocumentationExampleTests`.)
public final class WorldModel: Module {
  public let config: WorldModelConfig
  public let encoder: any ObservationEncoder
  public let core: any SequenceModel
  public let decoder: any ObservationDecoder
  public let reward: RewardHead
  public let cont: ContinueHead

  public init(config c: WorldModelConfig, seed: UInt64) {
    config = c
    var rng = SeededGenerator(seed: seed, stream: StreamTag.worldModelInitialisation)
    let f = c.headFeatureSize
    switch c.observation {
    case .vector(let n):
      let e = VectorEncoder(inputSize: n, units: c.encoderMLP.units, layers: c.encoderMLP.layers, rng: &rng)
      encoder = e
      decoder = VectorDecoder(
        featureSize: f, outputSize: n, units: c.encoderMLP.units, layers: c.encoderMLP.layers, rng: &rng)
    case .image(let h, let w, let ch):
      encoder = ImageEncoder(height: h, width: w, channels: ch, depth: c.cnnDepth, rng: &rng)
      decoder = ImageDecoder(featureSize: f, height: h, width: w, channels: ch, depth: c.cnnDepth, rng: &rng)
    }
    let embed = encoder.embedSize
    switch c.backbone {
    case .r2i:
      core = S3M(
        embedSize: embed, actionSize: c.actionSize, deter: c.deter, units: c.units, ssm: c.ssm, latent: c.latent,
        learnedInitialState: c.learnedInitialState, rng: &rng)
    case .dreamerv3:
      core = DreamerCore(
        embedSize: embed, actionSize: c.actionSize, deter: c.deter, units: c.units, latent: c.latent,
        learnedInitialState: c.learnedInitialState, rng: &rng)
    case .transformer:
      let settings = c.transformerSettings
      core = TransformerCore(
        embedSize: embed, actionSize: c.actionSize, deter: c.deter, units: c.units, settings: settings,
        window: settings.window > 0 ? settings.window : Int(Int32.max), latent: c.latent,
        learnedInitialState: c.learnedInitialState, rng: &rng)
    }
    precondition(
      !c.rewardByAction || c.discreteActions, "WorldModel: rewardByAction needs discrete actions")
    let heads = c.featureSize(c.headView)
    reward = RewardHead(
      featureSize: heads, units: c.units, layers: c.mlpLayers, actions: c.rewardHeadActions, rng: &rng)
    cont = ContinueHead(featureSize: heads, units: c.units, layers: c.mlpLayers, rng: &rng)
  }

  /// Actions as the backbone consumes them: continuous ones scaled by sg(1 / max(1, |a|)).
  public func preprocess(actions: Tensor) -> Tensor {
    config.discreteActions ? actions : actions / maximum(abs(actions), 1)
  }

  /// The same on the tape: the gradient flows through `a`, not through the scale (imagined
  /// continuous actions are trained by backpropagation through the dynamics).
  public func preprocess(actions: Variable) -> Variable {
    config.discreteActions ? actions : actions / Variable(maximum(abs(actions.value), 1))
  }

  // MARK: Observing and imagining (what the agent calls; it never touches `core`)

  /// The state before anything was observed (learned or zeros), for `batch` entries.
  public func initialState(batch: Int) -> LatentState { core.initialState(batch: batch) }

  /// Observes whole sequences: encodes the observations, forms a_{t-1} (zero at resets;
  /// `previousAction` [B, A] at t = 0, zeros when nil) and runs the backbone from `state` (nil:
  /// the initial state). Returns the posterior state of every step and the logits.
  public func observe(
    _ batch: WorldModelBatch, state: LatentState? = nil, previousAction: Tensor? = nil,
    rng: inout SeededGenerator
  ) -> SequenceOutput {
    let actions = preprocess(actions: batch.actions)
    let first = previousAction.map { preprocess(actions: $0) }
    let prev = previousActions(actions, isFirst: batch.isFirst, first: first)
    return core.observe(
      embed: encoder.encode(batch.observations), prevActions: Variable(prev), isFirst: batch.isFirst,
      state: state, rng: &rng)
  }

  /// One observation step for a batch of environments (acting). `observation` is [B, ...] (one
  /// step, no time axis), `previousAction` [B, A] the action taken before it, `isFirst` [B].
  /// Where `isFirst` is set the previous action is ignored and the latent and memory restart
  /// from the initial state, so a caller can pass the state of the episode that just ended.
  public func observeStep(
    observation: Tensor, previousAction: Tensor, isFirst: Tensor, state: LatentState?,
    rng: inout SeededGenerator
  ) -> LatentState {
    let b = observation.shape[0]
    let embed = encoder.encode(observation.reshaped([b, 1] + observation.shape.dropFirst()))
    let action = preprocess(actions: previousAction) * (1 - isFirst).reshaped([b, 1])
    return core.observeStep(
      embed: embed.reshaped([b, encoder.embedSize]), prevAction: Variable(action), isFirst: isFirst,
      state: state ?? core.initialState(batch: b), rng: &rng
    ).state
  }

  /// One imagination step: the prior after `action` [B, A] (preprocessed on the tape), with z
  /// sampled from it.
  public func imagineStep(state: LatentState, action: Variable, rng: inout SeededGenerator) -> (
    state: LatentState, priorLogits: Variable
  ) {
    core.imagineStep(state: state, action: preprocess(actions: action), rng: &rng)
  }

  /// A rollout of `horizon` steps from `start` [N, ...] under `policy`, which maps a state to
  /// an action [N, A]. For discrete actions call it inside `withoutGradient` (REINFORCE needs no
  /// world-model gradient); for continuous ones on the tape (the actor learns through the
  /// dynamics).
  public func imagine(
    from start: LatentState, horizon: Int, rng: inout SeededGenerator,
    policy: (LatentState, inout SeededGenerator) -> Variable
  ) -> Imagination {
    var states = [start]
    var actions: [Variable] = []
    var logits: [Variable] = []
    for _ in 0..<horizon {
      let a = policy(states[states.count - 1], &rng)
      let (next, priorLogits) = imagineStep(state: states[states.count - 1], action: a, rng: &rng)
      actions.append(a)
      logits.append(priorLogits)
      states.append(next)
    }
    return Imagination(states: states, actions: actions, priorLogits: logits)
  }

  /// DreamerV3's open-loop prediction ("openl"): observes the first `context` steps of `batch`,
  /// then imagines the remaining ones with the batch's own actions, and decodes every state.
  /// Returns [B, T, ...] in observation space (images: pixels in [0, 1]): reconstructions for
  /// t < context, predictions from imagination alone after. No gradient is recorded.
  public func openLoopPrediction(_ batch: WorldModelBatch, context: Int, rng: inout SeededGenerator) -> Tensor {
    let (b, t) = (batch.batchSize, batch.length)
    precondition(context >= 1 && context <= t, "openLoopPrediction: context must be in 1...\(t), got \(context)")
    return withoutGradient {
      func part(_ x: Tensor?) -> Tensor? { x?.slice(axis: 1, 0..<context) }
      let seen = WorldModelBatch(
        observations: part(batch.observations)!, actions: part(batch.actions)!, rewards: part(batch.rewards)!,
        isFirst: part(batch.isFirst)!, isTerminal: part(batch.isTerminal)!, mask: part(batch.mask))
      let out = observe(seen, rng: &rng)
      var frames = [decoder.reconstruct(features: out.states.features(.output))]  // [B, context, ...]
      var state = out.states.step(context - 1)
      for step in context..<t {
        state =
          imagineStep(
            state: state, action: Variable(batch.actions.slice(at: step - 1, axis: 1)), rng: &rng
          ).state
        let predicted = decoder.reconstruct(features: state.features(.output))  // [B, ...]
        frames.append(predicted.reshaped([b, 1] + predicted.shape.dropFirst()))
      }
      return Tensor.concat(frames, axis: 1)
    }
  }

  /// The reward the model expects on arriving at `state` (the reward head's mean), [...].
  /// `previousAction` [..., A] is the action taken into `state` (zeros where none); a reward head
  /// by action (``WorldModelConfig/rewardByAction``) needs it, others ignore it.
  public func predictedReward(_ state: LatentState, previousAction: Tensor? = nil) -> Variable {
    rewardDistribution(state, previousAction: previousAction).mean
  }

  /// The reward head's distribution at `state` (see ``predictedReward(_:previousAction:)``).
  public func rewardDistribution(_ state: LatentState, previousAction: Tensor? = nil) -> TwoHotSymlog {
    reward(
      blocks: state.featureBlocks(config.headView),
      previousAction: config.rewardByAction ? previousAction : nil)
  }

  /// Whether the model expects the episode to go on after `state` (the continue head's mode,
  /// 1 or 0), [...].
  public func predictedContinue(_ state: LatentState) -> Tensor {
    cont(blocks: state.featureBlocks(config.headView)).mode
  }

  /// a_{t-1} for every step: shifted by one, `first` (or zeros) at t = 0, zero at resets.
  public func previousActions(_ actions: Tensor, isFirst: Tensor, first: Tensor? = nil) -> Tensor {
    let (b, t, a) = (actions.shape[0], actions.shape[1], actions.shape[2])
    let head = first?.reshaped([b, 1, a]) ?? Tensor.zeros([b, 1, a])
    let shifted = t > 1 ? Tensor.concat([head, actions.slice(axis: 1, 0..<(t - 1))], axis: 1) : head
    return shifted * (1 - isFirst).reshaped([b, t, 1])
  }

  /// The loss terms of one batch.
  public struct Losses {
    /// Scalar training loss (masked mean over B x T).
    public var total: Variable
    /// Per-term means (reconstruction, reward, continue, raw dynamic and representation KL) and
    /// entropies; the gradient norm is left 0 (the trainer fills it in).
    public var metrics: WorldModelMetrics
    /// The observe output, for imagination.
    public var output: SequenceOutput
  }

  /// Observes the batch and computes the loss of `docs/method.md`, section 2:
  /// `rec + rew + cont + 0.5 max(1, KL[sg(post) || prior]) + 0.1 max(1, KL[post || sg(prior)])`
  /// per step, KL summed over the latents, averaged over the real steps.
  public func loss(_ batch: WorldModelBatch, rng: inout SeededGenerator) -> Losses {
    let (b, t) = (batch.batchSize, batch.length)
    let c = config
    let out = observe(batch, rng: &rng)
    // The heads and the decoder read [h, z] (or the head view) as blocks: z, one-hot in every
    // group, adds weight rows instead of multiplying (see `Linear.callAsFunction(blocks:)`).
    let headFeat = out.states.featureBlocks(c.headView)
    let rec = decoder.loss(blocks: out.states.featureBlocks(.output), target: batch.observations)
    let previous =
      c.rewardByAction ? previousActions(preprocess(actions: batch.actions), isFirst: batch.isFirst) : nil
    let rew = -reward(blocks: headFeat, previousAction: previous).logProb(
      batch.rewards.reshaped([b, t, 1]).squeezingShape(at: [2]))
    let contTarget = 1 - batch.isTerminal
    let con = -cont(blocks: headFeat).logProb(contTarget)
    let post = c.latent.distribution(out.postLogits)
    let prior = c.latent.distribution(out.priorLogits)
    // KL balance: the dynamics loss trains the prior toward the (fixed) posterior, the
    // representation loss the posterior toward the (fixed) prior, each with free bits.
    let dyn = OneHotCategorical.kl(post.detached, prior)
    let rep = OneHotCategorical.kl(post, prior.detached)
    let klBalance = maximum(dyn, c.freeBits) * c.dynamicScale + maximum(rep, c.freeBits) * c.representationScale
    let perStep = rec + rew + con + klBalance
    let mask = batch.mask ?? Tensor.ones([b, t])
    let count = max(mask.sumAll(), 1)
    let total = (perStep * mask).sum() / count
    func mean(_ v: Variable) -> Float { ((v.value * mask).sumAll()) / count }
    var metrics = WorldModelMetrics()
    metrics.loss = total.value.scalar
    metrics.reconstruction = mean(rec)
    metrics.reward = mean(rew)
    metrics.continuation = mean(con)
    metrics.dynamics = mean(dyn)
    metrics.representation = mean(rep)
    metrics.posteriorEntropy = mean(post.entropy())
    metrics.priorEntropy = mean(prior.entropy())
    return Losses(total: total, metrics: metrics, output: out)
  }
}

/// A rollout in imagination: `states[0]` is the start, `states[k + 1]` follows `actions[k]`,
/// whose prior logits are `priorLogits[k]`.
public struct Imagination {
  public var states: [LatentState]
  public var actions: [Variable]
  public var priorLogits: [Variable]
  public var horizon: Int { actions.count }
}

/// What one world-model update returns.
public struct WorldModelUpdate {
  /// Loss terms, entropies and the gradient norm.
  public var metrics: WorldModelMetrics
  /// The posterior states of the batch with gradients stopped: imagination starts from all
  /// B x T of them (`posterior.states.flattened()`).
  public var posterior: SequenceOutput
}

/// The world-model update: Adam with the config's settings (lr 1e-4, eps 1e-8, global-norm
/// clipping at 1000 by default).
public final class WorldModelTrainer {
  public let model: WorldModel
  public let optimizer: Adam

  public init(model: WorldModel) {
    self.model = model
    optimizer = Adam(for: model, settings: model.config.optimizer)
  }

  /// One update on `batch`.
  @discardableResult
  public func update(_ batch: WorldModelBatch, rng: inout SeededGenerator) -> WorldModelUpdate {
    var metrics = WorldModelMetrics()
    var posterior: SequenceOutput?
    let (_, grads) = valueAndGradient(of: model) {
      let l = model.loss(batch, rng: &rng)
      metrics = l.metrics
      posterior = l.output.detached
      return l.total
    }
    let stats = optimizer.update(grads)
    metrics.gradientNorm = stats.gradientNorm
    return WorldModelUpdate(metrics: metrics, posterior: posterior!)
  }
}
