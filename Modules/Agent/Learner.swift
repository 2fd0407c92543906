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

  public init() {}
}

/// What one imagined rollout gives the losses.
public struct ImaginedReturns {
  /// The rollout (H + 1 states, H actions).
  public var rollout: Imagination
  /// Lambda-returns R_0 ... R_{H-1}, [H, N] (on the tape for continuous actions).
  public var returns: Variable
  /// Critic values v_0 ... v_H, [H + 1, N].
  public var values: Variable
  /// Trajectory weights, [H + 1, N].
  public var weights: Tensor
  /// Predicted rewards r_1 ... r_H, [H, N].
  public var rewards: Tensor
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
    let rewards = worldModel.predictedReward(states)
    var continues = worldModel.predictedContinue(states)
    let n = startContinue.count
    continues = Tensor.concat(
      [startContinue.reshaped([1, n]), continues.slice(axis: 0, 1..<(s.horizon + 1))], axis: 0)
    let values = critic(states).mean
    let returns = Returns.lambdaReturns(
      rewards: rewards, continues: Variable(continues), values: values, discount: s.discount, lambda: s.lambda)
    return ImaginedReturns(
      rollout: rollout, returns: returns, values: values,
      weights: Returns.trajectoryWeights(continues: continues, discount: s.discount),
      rewards: rewards.value.slice(axis: 0, 1..<(s.horizon + 1)))
  }

  /// The actor's loss on an imagined rollout, [scalar]: discrete actions
  /// `-log pi(a) sg((R - v) / S) - eta H(pi)`, continuous ones `-(R - sg(v)) / S - eta H(pi)`,
  /// weighted and averaged over the H x N steps. Updates `returnScale` with the returns.
  public func actorLoss(_ imagined: ImaginedReturns) -> (loss: Variable, metrics: [String: Float]) {
    let h = settings.horizon
    returnScale.update(imagined.returns.value)
    let scale = returnScale.scale
    let baseline = imagined.values.value.slice(axis: 0, 0..<h)
    let states = LatentState.stacked(Array(imagined.rollout.states.prefix(h)))  // [H, N, ...]
    let pi = actor(states)
    let entropy = pi.entropy()
    let objective: Variable
    let advantage = (imagined.returns.value - baseline) / scale
    if actor.spec.isDiscrete {
      let actions = Variable(Tensor.stack(imagined.rollout.actions.map(\.value), axis: 0))
      objective = pi.logProb(actions) * advantage
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
  /// states (gradients stopped), weighted and averaged.
  public func criticLoss(_ imagined: ImaginedReturns) -> (loss: Variable, metrics: [String: Float]) {
    let h = settings.horizon
    let states = LatentState.stacked(Array(imagined.rollout.states.prefix(h))).detached
    let target = imagined.returns.value
    let slowMean = withoutGradient { slowCritic(states).mean.value }
    let distribution = critic(states)
    let weights = imagined.weights.slice(axis: 0, 0..<h)
    let perStep = -distribution.logProb(target) - distribution.logProb(slowMean) * settings.slowCriticScale
    let loss = (perStep * weights).mean()
    let valueError = abs(distribution.mean.value - target).mean().scalar
    return (loss, ["critic_loss": loss.value.scalar, "value_error": valueError])
  }

  /// One actor step, then one critic step, then the slow critic's EMA step.
  @discardableResult
  public func update(start: LatentState, startContinue: Tensor, rng: inout SeededGenerator) -> [String: Float] {
    var metrics: [String: Float] = [:]
    var imagined: ImaginedReturns?
    let (_, actorGradients) = valueAndGradient(of: actor) {
      let i = imagine(start: start, startContinue: startContinue, rng: &rng)
      imagined = i
      let (loss, m) = actorLoss(i)
      metrics.merge(m) { $1 }
      return loss
    }
    metrics["actor_grad_norm"] = actorOptimizer.update(actorGradients).gradientNorm
    let (_, criticGradients) = valueAndGradient(of: critic) {
      let (loss, m) = criticLoss(imagined!)
      metrics.merge(m) { $1 }
      return loss
    }
    metrics["critic_grad_norm"] = criticOptimizer.update(criticGradients).gradientNorm
    slowCriticEMA.update()
    return metrics
  }
}
