import Distributed

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

  /// The job this learner's steps are shared with (``share(with:)``); one process by default.
  public private(set) var communicator: any Communicator = SingleProcess()

  /// Makes every learner step a step of the data-parallel job `communicator`: each rank passes
  /// its own batch of the same shape (its rows of the job's batch, in rank order) and the same
  /// generator state, draws what one process holding the whole batch would draw for its rows
  /// (``SeededGenerator/shard``), averages every gradient over the ranks before the optimiser
  /// steps, combines the returns of every rank for the return scale, and reports metrics
  /// averaged over the ranks. With equal ranks (no padded steps, every imagination start used),
  /// N ranks at batch B are one learner at batch N x B; with
  /// ``ActorCriticSettings/imaginationStarts`` each rank imagines from its share of the starts,
  /// drawn among its own rows. The parameters must be equal on every rank already.
  public func share(with communicator: any Communicator) {
    self.communicator = communicator
    for (_, optimizer) in optimizers {
      optimizer.reduceGradients = communicator.size > 1 ? { communicator.average(&$0) } : nil
    }
    actorCritic.communicator = communicator
  }

  /// One learner step on `batch`: the world-model update, then the actor and the critic on
  /// imagination from its posterior states; the metrics of both.
  @discardableResult
  public func train(_ batch: WorldModelBatch, rng: inout SeededGenerator) -> LearnerMetrics {
    let ranks = communicator.size
    if ranks > 1 {
      rng.shard = RowShard(
        offset: communicator.rank * batch.batchSize, count: batch.batchSize, total: ranks * batch.batchSize)
    }
    let update = worldModelTrainer.update(batch, rng: &rng)
    rng.shard = nil
    let n = batch.batchSize * batch.length
    // Padded steps (mask 0) and terminal ones start nothing.
    var startContinue = (1 - batch.isTerminal).reshaped([n])
    if let mask = batch.mask { startContinue = startContinue * mask.reshaped([n]) }
    let behaviour = actorCritic.update(
      start: update.posterior.states.flattened(), startContinue: startContinue, rng: &rng)
    let metrics = LearnerMetrics(worldModel: update.metrics, behaviour: behaviour)
    guard ranks > 1 else { return metrics }
    let sums = communicator.sum(metrics.values.map(Double.init))
    return LearnerMetrics(values: sums.map { Float($0 / Double(ranks)) })
  }
}
