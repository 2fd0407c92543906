import Distributed

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
/// print(metrics.actorLoss, metrics.criticLoss, metrics.entropy)
/// ```
///
/// The update reads as DreamerV3's: ``update(start:startContinue:rng:)`` takes the gradients
/// and steps the optimisers; ``gradientsInOnePass(start:startContinue:rng:)`` is the loss of one
/// batch of starts (imagine, lambda-returns, return scale, actor and critic losses). Splitting
/// many starts into chunks that bound memory is a layer of its own (`ChunkedImagination.swift`).
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
  /// The data-parallel job the updates are shared with (set by ``AgentLearner/share(with:)``):
  /// each rank imagines from its own starts, which follow those of the ranks before it.
  var communicator: any Communicator = SingleProcess()

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

  /// One actor step, then one critic step, then the slow critic's EMA step, on imagination from
  /// every start [N, ...] (or ``ActorCriticSettings/imaginationStarts`` of them, drawn by
  /// ``chooseStarts(_:continues:rng:)``). Returns the metrics, with the two gradient norms.
  @discardableResult
  public func update(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> BehaviourMetrics {
    var start = start
    var startContinue = startContinue
    // Data-parallel: each rank its share of the starts, among its own rows.
    let limit = settings.imaginationStarts.map { ($0 + communicator.size - 1) / communicator.size }
    if let chosen = Self.chooseStarts(limit, continues: startContinue, rng: &rng) {
      start = start.rows(chosen)
      startContinue = startContinue.gather(indices: chosen, axis: 0)
    }
    let g = gradients(start: start, startContinue: startContinue, rng: &rng)
    var metrics = g.metrics
    metrics.actorGradientNorm = actorOptimizer.update(g.actor).gradientNorm
    metrics.criticGradientNorm = criticOptimizer.update(g.critic).gradientNorm
    slowCriticEMA.update()
    return metrics
  }

  /// The actor's and the critic's gradients on imagination from every start [N, ...], and the
  /// metrics (weighted means over all starts). Updates the return scale, nothing else. The
  /// critic's loss does not read the actor's parameters, so computing both gradients before
  /// either optimiser step is the same as DreamerV3's actor-then-critic order. Discrete actions
  /// with every start in one chunk take ``gradientsInOnePass(start:startContinue:rng:)``; other
  /// cases ``chunkedGradients(_:)``.
  public func gradients(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> (
    actor: Gradients, critic: Gradients, metrics: BehaviourMetrics
  ) {
    precondition(
      startContinue.count == start.batchSize,
      "gradients: \(start.batchSize) starts but \(startContinue.count) continues")
    let parts = localChunks(starts: start.batchSize, rng: &rng)
    if actor.spec.isDiscrete && parts.ranges.count == 1 {
      var r = parts.generators[0]
      return gradientsInOnePass(start: start, startContinue: startContinue, rng: &r)
    }
    return chunkedGradients(
      StartChunks(start: start, continues: startContinue, ranges: parts.ranges, generators: parts.generators))
  }

  /// Moves the return scale with `returns`, and in a data-parallel job with every rank's.
  func updateReturnScale(_ returns: Tensor) {
    guard communicator.size > 1 else { return returnScale.update(returns) }
    let all = communicator.allGather(returns.scalars).flatMap { $0 }
    returnScale.update(Tensor(all, shape: [all.count]))
  }

  /// ``gradients(start:startContinue:rng:)`` for discrete actions and one chunk, with every
  /// network run once per imagined state: one tape records the actor while it imagines and the
  /// critic on the imagined states (see ``discreteRollout(start:startContinue:actorOnTape:rng:)``);
  /// the actor's loss reads the policy of the raw outputs it produced while imagining, the
  /// critic's loss the forward pass whose means gave the lambda-returns. The two losses read
  /// disjoint parameters, so one backward pass of their sum gives both gradients. Same random
  /// draws, same values as imagining first and running the networks again.
  func gradientsInOnePass(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> (
    actor: Gradients, critic: Gradients, metrics: BehaviourMetrics
  ) {
    var metrics = BehaviourMetrics()
    let (_, g) = valueAndGradient(of: [actor, critic]) {
      let rollout = discreteRollout(start: start, startContinue: startContinue, actorOnTape: true, rng: &rng)
      updateReturnScale(rollout.imagined.returns.value)
      let (actorLoss, actorMetrics) = actorLoss(rollout.imagined, policy: rollout.policy)
      let (criticLoss, criticMetrics) = criticLoss(rollout.imagined, distribution: rollout.values)
      metrics = actorMetrics.adding(criticMetrics)
      return actorLoss + criticLoss
    }
    metrics.returnScale = returnScale.scale
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

  /// Imagines `horizon` steps from `start` [N, ...] (gradients stopped) and computes rewards,
  /// continues (the start's from `startContinue` [N], data), critic values, lambda-returns and
  /// weights. Discrete actions are imagined without a tape (REINFORCE needs no world-model
  /// gradient); continuous ones on the tape, so the returns carry the actor's gradient through
  /// the dynamics. The actor reads each state with its gradient stopped (DreamerV3, 2023): an
  /// action's gradient reaches the actor's parameters through that action only, not through
  /// the earlier actions that led to its state.
  public func imagine(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> ImaginedReturns {
    let s = settings
    let start = start.detached
    let policy: (LatentState, inout SeededGenerator) -> Variable = { state, r in
      self.actor(state.detached).sample(using: &r)
    }
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
      worldModel.config.rewardByAction
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
  /// `-log pi(a) sg((R - v) / S) - eta H(pi)`, continuous ones `-(R - v) / S - eta H(pi)`,
  /// weighted and averaged over the H x N steps. S is `returnScale.scale` as it stands (``update``
  /// updates it with all returns of the batch first). pi reads the imagined states with their
  /// gradients stopped, so the entropy's gradient does not flow back through the dynamics. With
  /// continuous actions the baseline v is the critic on the imagined states as the rollout
  /// computed it, on the tape, as DreamerV3 (2023) and R2I's reference: the return's gradient
  /// through the dynamics is taken relative to the value of the state the actions led to.
  /// `policy` is pi on the first H imagined states when it is already known (the raw outputs
  /// the actor produced while imagining); nil runs the actor on them.
  public func actorLoss(_ imagined: ImaginedReturns, policy: ActionDistribution? = nil) -> (
    loss: Variable, metrics: BehaviourMetrics
  ) {
    let h = imagined.horizon
    let scale = returnScale.scale
    let baseline = imagined.values.value.slice(axis: 0, 0..<h)
    let pi = policy ?? actor(imagined.states.rows(0..<h).detached)  // [H, N, ...]
    let entropy = pi.entropy()
    let objective: Variable
    let advantage = (imagined.returns.value - baseline) / scale
    if actor.spec.isDiscrete {
      objective = pi.logProb(imagined.actions.detached) * advantage
    } else {
      objective = (imagined.returns - imagined.values.slice(axis: 0, 0..<h)) / scale
    }
    let weights = imagined.weights.slice(axis: 0, 0..<h)
    let loss = -((objective + entropy * settings.entropy) * weights).mean()
    var metrics = BehaviourMetrics()
    metrics.actorLoss = loss.value.scalar
    metrics.imaginedReturn = imagined.returns.value.mean().scalar
    metrics.advantage = advantage.mean().scalar
    metrics.advantageMagnitude = abs(advantage).mean().scalar
    metrics.entropy = entropy.value.mean().scalar
    metrics.returnScale = scale
    metrics.imaginedReward = imagined.rewards.mean().scalar
    return (loss, metrics)
  }

  /// The critic's loss: `-log p(sg(R)) - scale * log p(sg(slow critic mean))` on the imagined
  /// states (gradients stopped), weighted and averaged. `distribution` is the critic on the
  /// first H imagined states when it is already known; nil runs the critic on them.
  public func criticLoss(_ imagined: ImaginedReturns, distribution known: TwoHotSymlog? = nil) -> (
    loss: Variable, metrics: BehaviourMetrics
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
    var metrics = BehaviourMetrics()
    metrics.criticLoss = loss.value.scalar
    metrics.valueError = valueError
    return (loss, metrics)
  }
}
