/// Learning for an ``Agent``: one world-model update, then the actor and the critic on
/// imagination from all B x T posterior states (the order of `docs/method.md`, section 4).
public final class AgentLearner {
  public let agent: Agent
  public let worldModelTrainer: WorldModelTrainer
  public let actorCritic: ActorCriticLearner

  public init(agent: Agent) {
    self.agent = agent
    worldModelTrainer = WorldModelTrainer(model: agent.worldModel)
    actorCritic = ActorCriticLearner(
      worldModel: agent.worldModel, actor: agent.actor, critic: agent.critic, slowCritic: agent.slowCritic,
      settings: agent.config.actorCritic)
  }

  /// The learner's state as named tensors, for checkpoints next to the agent's parameters: the
  /// three Adam states (prefixes `worldModel/`, `actor/`, `critic/`) and the return scale
  /// (`returnScale` = [low, high, updates]). The slow critic is part of the agent's parameters.
  public func stateTensors() -> [(String, Tensor)] {
    var out: [(String, Tensor)] = []
    for (prefix, optimizer) in optimizers { out += optimizer.stateTensors().map { ("\(prefix)/\($0.0)", $0.1) } }
    let scale = actorCritic.returnScale
    out.append(("returnScale", Tensor([scale.low, scale.high, Float(scale.updates)])))
    return out
  }

  /// Restores ``stateTensors()``; throws naming the first missing or mismatched entry, and then
  /// changes nothing.
  public func loadState(_ tensors: [String: Tensor]) throws {
    guard let scale = tensors["returnScale"], scale.shape == [3] else {
      throw CheckpointError(problem: "learner state lacks 'returnScale' [3]; was it saved by this version?")
    }
    guard scale[0].isFinite, scale[1].isFinite, scale[0] <= scale[1], scale[2] >= 0, scale[2] <= 1e9,
      scale[2].rounded() == scale[2]
    else {
      throw CheckpointError(
        problem: "learner state 'returnScale' holds \(scale.scalars), not a low <= high and a count")
    }
    let before = optimizers.map { $0.1.stateTensors() }
    do {
      for (prefix, optimizer) in optimizers {
        var mine: [String: Tensor] = [:]
        for (name, t) in tensors where name.hasPrefix(prefix + "/") {
          mine[String(name.dropFirst(prefix.count + 1))] = t
        }
        do {
          try optimizer.loadState(mine)
        } catch let e as CheckpointError {
          throw CheckpointError(problem: "\(prefix) \(e.problem)")
        }
      }
    } catch {
      for ((_, optimizer), state) in zip(optimizers, before) {
        try? optimizer.loadState(Dictionary(uniqueKeysWithValues: state))
      }
      throw error
    }
    actorCritic.returnScale.low = scale[0]
    actorCritic.returnScale.high = scale[1]
    actorCritic.returnScale.updates = Int(scale[2])
  }

  var optimizers: [(String, Adam)] {
    [
      ("worldModel", worldModelTrainer.optimizer), ("actor", actorCritic.actorOptimizer),
      ("critic", actorCritic.criticOptimizer),
    ]
  }

  /// One learner step on `batch`: the world-model update, then the actor and the critic on
  /// imagination from its posterior states; the metrics of both.
  @discardableResult
  public func train(_ batch: WorldModelBatch, rng: inout SeededGenerator) -> LearnerMetrics {
    let update = worldModelTrainer.update(batch, rng: &rng)
    let n = batch.batchSize * batch.length
    // Padded steps (mask 0) and terminal ones start nothing.
    var startContinue = (1 - batch.isTerminal).reshaped([n])
    if let mask = batch.mask { startContinue = startContinue * mask.reshaped([n]) }
    let behaviour = actorCritic.update(
      start: update.posterior.states.flattened(), startContinue: startContinue, rng: &rng)
    return LearnerMetrics(worldModel: update.metrics, behaviour: behaviour)
  }
}
