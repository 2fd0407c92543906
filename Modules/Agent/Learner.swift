/// The settings of the actor-critic update (r2i.md section 5; DreamerV3 2023).
public struct ActorCriticSettings: Sendable, Codable, Equatable {
  public var horizon = 15
  public var discount: Float = 1 - 1.0 / 333
  public var lambda: Float = 0.95
  /// Scale of the entropy bonus of the actor (Memory Maze: 1e-3).
  public var entropy: Float = 3e-4
  /// The slow critic follows the critic at this rate per update.
  public var slowCriticRate: Float = 0.02
  /// Scale of the critic's regulariser toward the slow critic.
  public var slowCriticScale: Float = 1
  public var actorOptimizer = AdamSettings(learningRate: 3e-5, epsilon: 1e-5, gradientClip: 100)
  public var criticOptimizer = AdamSettings(learningRate: 3e-5, epsilon: 1e-5, gradientClip: 100)
  /// Imagination from N starts runs in chunks of at most this many starts (memory stays bounded
  /// at long sequences; see ``ActorCriticLearner/update(start:startContinue:rng:)``). Chunking
  /// changes which random numbers each start draws, not what is computed.
  public var imaginationChunk = 1024
  /// Imagine from at most this many starts per update, drawn uniformly without replacement
  /// among the starts that continue (nil: every start of the batch, as DreamerV3). Imagination
  /// (15 steps of the backbone, the heads, the actor and the critic per start) is most of a
  /// learner step, so on a CPU this buys learner steps per minute at long batch sequences; the
  /// world model still learns from the whole batch. See ``ActorCriticLearner/chooseStarts(_:continues:rng:)``.
  public var imaginationStarts: Int?

  public init() {}
}

/// What one imagined rollout gives the losses.
public struct ImaginedReturns {
  /// The imagined states s_0 ... s_H, stacked: [H + 1, N, ...] (s_0 the detached starts).
  public var states: LatentState
  /// The actions a_0 ... a_{H-1} the policy took, [H, N, A].
  public var actions: Variable
  /// Lambda-returns R_0 ... R_{H-1}, [H, N] (on the tape for continuous actions).
  public var returns: Variable
  /// Critic values v_0 ... v_H, [H + 1, N].
  public var values: Variable
  /// Trajectory weights, [H + 1, N].
  public var weights: Tensor
  /// Predicted rewards r_1 ... r_H, [H, N].
  public var rewards: Tensor

  /// The horizon H.
  public var horizon: Int { actions.shape[0] }

  /// The same rollout with every gradient stopped (what the critic's loss reads).
  public var detached: ImaginedReturns {
    ImaginedReturns(
      states: states.detached, actions: actions.detached, returns: returns.detached, values: values.detached,
      weights: weights, rewards: rewards)
  }
}

/// The "behaviour" half of DreamerV3's update: imagine from the world model's posterior
/// states, then one actor step and one critic step. It owns the two optimisers, the slow
/// critic's EMA and the return scale.
///
/// ```swift
/// let update = worldModelTrainer.update(batch, rng: &rng)
/// let metrics = learner.update(
///   start: update.posterior.states.flattened(), startContinue: 1 - batch.isTerminal.reshaped([-1]), rng: &rng)
/// ```
public final class ActorCriticLearner {
  public let worldModel: WorldModel
  public let actor: Actor
  public let critic: Critic
  public let slowCritic: Critic
  public let settings: ActorCriticSettings
  public let actorOptimizer: Adam
  public let criticOptimizer: Adam
  let slowCriticEMA: ParameterEMA
  /// The return normalisation's state.
  public var returnScale = ReturnScale()

  /// `slowCritic` must have the critic's structure; it starts as a copy of the critic.
  public init(
    worldModel: WorldModel, actor: Actor, critic: Critic, slowCritic: Critic, settings: ActorCriticSettings = .init()
  ) {
    self.worldModel = worldModel
    self.actor = actor
    self.critic = critic
    self.slowCritic = slowCritic
    self.settings = settings
    actorOptimizer = Adam(for: actor, settings: settings.actorOptimizer)
    criticOptimizer = Adam(for: critic, settings: settings.criticOptimizer)
    slowCriticEMA = ParameterEMA(source: critic, target: slowCritic, rate: settings.slowCriticRate)
  }

  /// Imagines `horizon` steps from `start` [N, ...] (gradients stopped) and computes rewards,
  /// continues (the start's from `startContinue` [N], data), critic values, lambda-returns and
  /// weights. Discrete actions are imagined without a tape (REINFORCE needs no world-model
  /// gradient); continuous ones on the tape, so the returns carry the actor's gradient through
  /// the dynamics.
  public func imagine(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> ImaginedReturns {
    let s = settings
    let start = start.detached
    let policy: (LatentState, inout SeededGenerator) -> Variable = { state, r in self.actor(state).sample(using: &r) }
    let rollout =
      actor.spec.isDiscrete
      ? withoutGradient { worldModel.imagine(from: start, horizon: s.horizon, rng: &rng, policy: policy) }
      : worldModel.imagine(from: start, horizon: s.horizon, rng: &rng, policy: policy)
    let states = LatentState.stacked(rollout.states)  // [H + 1, N, ...]
    let actions = Variable.stack(rollout.actions, axis: 0)  // [H, N, A]
    let (rewards, continues) = headPredictions(states, actions: actions, startContinue: startContinue)
    let values = critic(states).mean
    return finish(states: states, actions: actions, rewards: rewards, continues: continues, values: values)
  }

  /// The reward and continue heads on the imagined states, [H + 1, N] each; row 0 of the
  /// continues is `startContinue` (data). A reward head by action reads the action taken into
  /// each state (none into the start, whose reward no return reads). The heads run on the start
  /// too, although nothing reads their row 0: H + 1 rows keep every product the shape it had,
  /// so the results stay bit for bit those of the golden test (`GoldenLearnerStepTests`).
  func headPredictions(_ states: LatentState, actions: Variable, startContinue: Tensor) -> (
    rewards: Variable, continues: Tensor
  ) {
    let h = settings.horizon
    let n = startContinue.count
    let into =
      worldModel.config.rewardByAction == true
      ? Tensor.concat([Tensor.zeros([1] + Array(actions.shape.dropFirst())), actions.value], axis: 0) : nil
    let rewards = worldModel.predictedReward(states, previousAction: into)
    let continues = Tensor.concat(
      [startContinue.reshaped([1, n]), worldModel.predictedContinue(states).slice(axis: 0, 1..<(h + 1))], axis: 0)
    return (rewards, continues)
  }

  /// Lambda-returns and weights of a rollout whose rewards, continues and values [H + 1, N] are known.
  func finish(states: LatentState, actions: Variable, rewards: Variable, continues: Tensor, values: Variable)
    -> ImaginedReturns
  {
    let s = settings
    let returns = Returns.lambdaReturns(
      rewards: rewards, continues: Variable(continues), values: values, discount: s.discount, lambda: s.lambda)
    return ImaginedReturns(
      states: states, actions: actions, returns: returns, values: values,
      weights: Returns.trajectoryWeights(continues: continues, discount: s.discount),
      rewards: rewards.value.slice(axis: 0, 1..<(s.horizon + 1)))
  }

  /// The actor's loss on an imagined rollout, [scalar]: discrete actions
  /// `-log pi(a) sg((R - v) / S) - eta H(pi)`, continuous ones `-(R - sg(v)) / S - eta H(pi)`,
  /// weighted and averaged over the H x N steps. S is `returnScale.scale` as it stands (``update``
  /// updates it with all returns of the batch first). `policy` is pi on the first H imagined
  /// states when it is already known (the raw outputs the actor produced while imagining);
  /// nil runs the actor on them.
  public func actorLoss(_ imagined: ImaginedReturns, policy: ActionDistribution? = nil) -> (
    loss: Variable, metrics: [String: Float]
  ) {
    let h = imagined.horizon
    let scale = returnScale.scale
    let baseline = imagined.values.value.slice(axis: 0, 0..<h)
    let pi = policy ?? actor(imagined.states.rows(0..<h))  // [H, N, ...]
    let entropy = pi.entropy()
    let objective: Variable
    let advantage = (imagined.returns.value - baseline) / scale
    if actor.spec.isDiscrete {
      objective = pi.logProb(imagined.actions.detached) * advantage
    } else {
      objective = (imagined.returns - baseline) / scale
    }
    let weights = imagined.weights.slice(axis: 0, 0..<h)
    let loss = -((objective + entropy * settings.entropy) * weights).mean()
    return (
      loss,
      [
        "actor_loss": loss.value.scalar, "return": imagined.returns.value.mean().scalar,
        "advantage": advantage.mean().scalar, "advantage_abs": abs(advantage).mean().scalar,
        "entropy": entropy.value.mean().scalar, "return_scale": scale,
        "imagined_reward": imagined.rewards.mean().scalar,
      ]
    )
  }

  /// The critic's loss: `-log p(sg(R)) - scale * log p(sg(slow critic mean))` on the imagined
  /// states (gradients stopped), weighted and averaged. `distribution` is the critic on the
  /// first H imagined states when it is already known; nil runs the critic on them.
  public func criticLoss(_ imagined: ImaginedReturns, distribution known: TwoHotSymlog? = nil) -> (
    loss: Variable, metrics: [String: Float]
  ) {
    let h = imagined.horizon
    let states = imagined.states.rows(0..<h).detached
    let target = imagined.returns.value
    let slowMean = withoutGradient { slowCritic(states).mean.value }
    let distribution = known ?? critic(states)
    let weights = imagined.weights.slice(axis: 0, 0..<h)
    let perStep = -distribution.logProb([(target, 1), (slowMean, settings.slowCriticScale)])
    let loss = (perStep * weights).mean()
    // A known distribution gave the rollout's values: its means are their first H rows.
    let means = known == nil ? distribution.meanValue : imagined.values.value.slice(axis: 0, 0..<h)
    let valueError = abs(means - target).mean().scalar
    return (loss, ["critic_loss": loss.value.scalar, "value_error": valueError])
  }

  /// The starts to imagine from under a limit of `limit` (``ActorCriticSettings/imaginationStarts``):
  /// nil when every start is kept (no limit, or no more starts that continue than the limit),
  /// else `limit` distinct indices, in increasing order, drawn uniformly among the starts whose
  /// `continues` [N] entry is positive (terminal and padded starts carry no weight).
  public static func chooseStarts(_ limit: Int?, continues: Tensor, rng: inout SeededGenerator) -> [Int]? {
    guard let limit else { return nil }
    precondition(limit >= 1, "imaginationStarts must be at least 1, got \(limit)")
    let values = continues.scalars
    var eligible = values.indices.filter { values[$0] > 0 }
    guard eligible.count > limit else { return nil }
    for i in 0..<limit {  // a partial Fisher-Yates shuffle: the first `limit` are a uniform draw
      eligible.swapAt(i, i + rng.nextInt(below: eligible.count - i))
    }
    return eligible[0..<limit].sorted()
  }

  /// The chunks the N starts are imagined in: consecutive ranges of at most
  /// `settings.imaginationChunk` starts.
  public func chunks(starts n: Int) -> [Range<Int>] {
    let size = max(1, settings.imaginationChunk)
    return stride(from: 0, to: n, by: size).map { $0..<min(n, $0 + size) }
  }

  /// One actor step, then one critic step, then the slow critic's EMA step, on imagination from
  /// every start [N, ...] (or ``ActorCriticSettings/imaginationStarts`` of them, drawn by
  /// ``chooseStarts(_:continues:rng:)``) (see ``gradients(start:startContinue:rng:)``). Returns the metrics,
  /// with the two gradient norms.
  @discardableResult
  public func update(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> [String: Float] {
    var start = start
    var startContinue = startContinue
    if let chosen = Self.chooseStarts(settings.imaginationStarts, continues: startContinue, rng: &rng) {
      start = start.rows(chosen)
      startContinue = startContinue.gather(indices: chosen, axis: 0)
    }
    let g = gradients(start: start, startContinue: startContinue, rng: &rng)
    var metrics = g.metrics
    metrics["actor_grad_norm"] = actorOptimizer.update(g.actor).gradientNorm
    metrics["critic_grad_norm"] = criticOptimizer.update(g.critic).gradientNorm
    slowCriticEMA.update()
    return metrics
  }

  /// The actor's and the critic's gradients on imagination from every start [N, ...], and the
  /// metrics (weighted means over all starts). Updates the return scale, nothing else. The
  /// critic's loss does not read the actor's parameters, so computing both gradients before
  /// either optimiser step is the same as DreamerV3's actor-then-critic order.
  ///
  /// The starts are imagined in chunks (``chunks(starts:)``), each from its own generator split
  /// off `rng` in order, so memory is bounded by one chunk's tape plus the imagined states. The
  /// return scale is updated once with the returns of all chunks before any advantage is
  /// computed; each chunk's losses enter weighted by its share of the starts, so the gradient is
  /// that of the mean over all starts. Discrete actions: every chunk is imagined once, off the
  /// tape, and kept. Continuous actions with several chunks: a first pass off the tape gives the
  /// returns for the scale, and each chunk is imagined again (same generator, same values) on
  /// the tape for the actor's gradient.
  public func gradients(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> (
    actor: Gradients, critic: Gradients, metrics: [String: Float]
  ) {
    let n = start.batchSize
    precondition(startContinue.count == n, "gradients: \(n) starts but \(startContinue.count) continues")
    let ranges = chunks(starts: n)
    let generators = ranges.map { _ in rng.split() }
    func imagineChunk(_ i: Int) -> ImaginedReturns {
      var r = generators[i]
      return imagine(
        start: start.rows(ranges[i]), startContinue: startContinue.slice(axis: 0, ranges[i]), rng: &r)
    }
    let discrete = actor.spec.isDiscrete
    if discrete && ranges.count == 1 {
      var r = generators[0]
      return gradientsInOnePass(start: start, startContinue: startContinue, rng: &r)
    }
    var sums: [String: Double] = [:]
    func add(_ m: [String: Float], weight: Float) {
      for (k, v) in m { sums[k, default: 0] += Double(v * weight) }
    }
    var kept: [ImaginedReturns] = []  // detached, for the critic (and the discrete actor)
    var criticGradients: Gradients?
    if discrete {
      // Each chunk is imagined once with the critic on a tape of its own: its loss needs no
      // return scale, so its gradient is taken at once; the actor runs again per chunk below,
      // once the scale has seen every return.
      for i in ranges.indices {
        let weight = Float(ranges[i].count) / Float(n)
        var r = generators[i]
        let (_, g) = valueAndGradient(of: critic) {
          let rollout = discreteRollout(
            start: start.rows(ranges[i]), startContinue: startContinue.slice(axis: 0, ranges[i]),
            actorOnTape: false, rng: &r)
          kept.append(rollout.imagined)
          let (loss, m) = criticLoss(rollout.imagined, distribution: rollout.values)
          add(m, weight: weight)
          return loss * weight
        }
        if criticGradients == nil { criticGradients = g } else { criticGradients!.accumulate(g) }
      }
      returnScale.update(Tensor.concat(kept.map(\.returns.value), axis: 1))
    } else if ranges.count > 1 {
      let returns = ranges.indices.map { i in withoutGradient { imagineChunk(i).returns.value } }
      returnScale.update(Tensor.concat(returns, axis: 1))
    }

    var actorGradients: Gradients?
    for i in ranges.indices {
      let weight = Float(ranges[i].count) / Float(n)
      let (_, g) = valueAndGradient(of: actor) {
        let imagined: ImaginedReturns
        if discrete {
          imagined = kept[i]
        } else {
          imagined = imagineChunk(i)
          if ranges.count == 1 { returnScale.update(imagined.returns.value) }
          kept.append(imagined.detached)
        }
        let (loss, m) = actorLoss(imagined)
        add(m, weight: weight)
        return loss * weight
      }
      if actorGradients == nil { actorGradients = g } else { actorGradients!.accumulate(g) }
    }
    for i in ranges.indices where !discrete {
      let weight = Float(ranges[i].count) / Float(n)
      let (_, g) = valueAndGradient(of: critic) {
        let (loss, m) = criticLoss(kept[i])
        add(m, weight: weight)
        return loss * weight
      }
      if criticGradients == nil { criticGradients = g } else { criticGradients!.accumulate(g) }
    }
    var metrics = sums.mapValues { Float($0) }
    metrics["return_scale"] = returnScale.scale
    return (actorGradients!, criticGradients!, metrics)
  }

  /// ``gradients(start:startContinue:rng:)`` for discrete actions and one chunk, with every
  /// network run once per imagined state: one tape records the actor while it imagines and the
  /// critic on the imagined states (see ``discreteRollout(start:startContinue:actorOnTape:rng:)``);
  /// the actor's loss reads the policy of the raw outputs it produced while imagining, the
  /// critic's loss the forward pass whose means gave the lambda-returns. The two losses read
  /// disjoint parameters, so one backward pass of their sum gives both gradients. Same random
  /// draws, same values as imagining first and running the networks again.
  func gradientsInOnePass(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> (
    actor: Gradients, critic: Gradients, metrics: [String: Float]
  ) {
    var metrics: [String: Float] = [:]
    let (_, g) = valueAndGradient(of: [actor, critic]) {
      let rollout = discreteRollout(start: start, startContinue: startContinue, actorOnTape: true, rng: &rng)
      returnScale.update(rollout.imagined.returns.value)
      let (actorLoss, actorMetrics) = actorLoss(rollout.imagined, policy: rollout.policy)
      let (criticLoss, criticMetrics) = criticLoss(rollout.imagined, distribution: rollout.values)
      metrics = actorMetrics.merging(criticMetrics) { $1 }
      return actorLoss + criticLoss
    }
    metrics["return_scale"] = returnScale.scale
    // The combined gradients list the actor's parameters, then the critic's, in their own order.
    let actorNames = actor.namedParameters().map(\.name)
    let criticNames = critic.namedParameters().map(\.name)
    let a = actorNames.count
    return (
      Gradients(names: actorNames, parameters: Array(g.parameters[0..<a]), tensors: Array(g.tensors[0..<a])),
      Gradients(names: criticNames, parameters: Array(g.parameters[a...]), tensors: Array(g.tensors[a...])),
      metrics
    )
  }

  /// Imagination with discrete actions from `start` [N, ...]: the world model steps off the tape
  /// on the sampled (detached) actions, the actor on the current tape when `actorOnTape` (its
  /// raw outputs give `policy` [H, N, ...]; else off it and `policy` is nil), and the critic on
  /// the current tape on the first H states (`values`, whose means, with the last state's
  /// off the tape, give the lambda-returns; the last state only bootstraps).
  func discreteRollout(start: LatentState, startContinue: Tensor, actorOnTape: Bool, rng: inout SeededGenerator)
    -> (imagined: ImaginedReturns, values: TwoHotSymlog, policy: ActionDistribution?)
  {
    let h = settings.horizon
    var state = start.detached
    var states = [state]
    var raws: [Variable] = []
    var actions: [Variable] = []
    for _ in 0..<h {
      let raw = actorOnTape ? actor.rawOutput(state) : withoutGradient { actor.rawOutput(state) }
      let action = actor.distribution(raw: raw.detached).sample(using: &rng)
      state = withoutGradient { worldModel.imagineStep(state: state, action: action, rng: &rng).state }
      if actorOnTape { raws.append(raw) }
      actions.append(action)
      states.append(state)
    }
    let stacked = LatentState.stacked(states)  // [H + 1, N, ...]
    states.removeAll()  // what the actor's tape does not hold is freed now, not at the return
    let actionTensor = Variable.stack(actions, axis: 0)  // [H, N, A]
    let (rewards, continues) = withoutGradient {
      headPredictions(stacked, actions: actionTensor, startContinue: startContinue)
    }
    let values = critic(stacked.rows(0..<h))  // on the tape, for the loss and the returns
    let means = values.meanValue
    let last = withoutGradient { critic(stacked.rows(h..<(h + 1))).meanValue }
    let valueTensor = Variable(Tensor.concat([means, last], axis: 0))
    let imagined = finish(
      states: stacked, actions: actionTensor, rewards: rewards, continues: continues, values: valueTensor)
    return (imagined, values, actorOnTape ? actor.distribution(raw: Variable.stack(raws, axis: 0)) : nil)
  }
}
