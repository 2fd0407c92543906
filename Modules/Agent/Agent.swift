/// Everything that decides an agent: its world model, action space, policy input, network sizes
/// and the actor-critic settings. Checkpoints store it as JSON.
public struct AgentConfig: Sendable, Codable, Equatable {
  public var worldModel: WorldModelConfig
  public var actions: ActionSpec
  /// What the actor and critic read: `hidden` [z, x] (R2I's choice for memory tasks), `output`
  /// [h, z] or `full` [h, z, x].
  public var policyInput: FeatureView
  public var units: Int
  public var layers: Int
  public var actorCritic: ActorCriticSettings

  public init(
    worldModel: WorldModelConfig, actions: ActionSpec, policyInput: FeatureView, units: Int, layers: Int,
    actorCritic: ActorCriticSettings = .init()
  ) {
    self.worldModel = worldModel
    self.actions = actions
    self.policyInput = policyInput
    self.units = units
    self.layers = layers
    self.actorCritic = actorCritic
  }

  /// A preset's world model (r2i.md section 6) with actor and critic of the preset's MLP sizes;
  /// policy input `hidden` for the memory domains (BSuite, POPGym) and the speed benchmark's
  /// `vector` preset (what the reference feeds its actor and critic on vector tasks, so the two
  /// networks have the reference's sizes), `full` otherwise.
  public static func preset(
    _ p: WorldModelPreset, backbone: Backbone, observation: ObservationKind? = nil, actions: ActionSpec
  ) -> AgentConfig {
    let wm = WorldModelConfig.preset(
      p, backbone: backbone, observation: observation, actionSize: actions.size, discreteActions: actions.isDiscrete)
    var ac = ActorCriticSettings()
    if p == .memorymaze { ac.entropy = 1e-3 }
    return AgentConfig(
      worldModel: wm, actions: actions,
      policyInput: [.bsuite, .popgym, .benchmarkVector].contains(p) ? .hidden : .full,
      units: wm.units, layers: wm.mlpLayers, actorCritic: ac)
  }

  /// A small agent that learns the vector tasks quickly on a CPU: deter, units and SSM width
  /// 128 (P 32, 2 layers), 8 x 8 latents, MLPs of 2 x 128, world model lr 1e-3, actor and critic
  /// lr 3e-4, horizon 15.
  public static func small(backbone: Backbone, observation: ObservationKind, actions: ActionSpec) -> AgentConfig {
    var wm = WorldModelConfig(
      backbone: backbone, observation: observation, actionSize: actions.size, discreteActions: actions.isDiscrete,
      deter: 128, units: 128, mlpLayers: 2, cnnDepth: 16,
      ssm: SSMSettings(states: 32, channels: 128, layers: 2, hippoBlocks: 4))
    wm.groups = 8
    wm.classes = 8
    wm.optimizer.learningRate = 1e-3
    var ac = ActorCriticSettings()
    ac.actorOptimizer.learningRate = 3e-4
    ac.criticOptimizer.learningRate = 3e-4
    return AgentConfig(worldModel: wm, actions: actions, policyInput: .hidden, units: 128, layers: 2, actorCritic: ac)
  }
}

/// The agent: world model, actor, critic and slow critic in one parameter tree, so one
/// safetensors checkpoint holds all of them.
public final class Agent: Module {
  public let config: AgentConfig
  public let worldModel: WorldModel
  public let actor: Actor
  public let critic: Critic
  public let slowCritic: Critic

  public init(config: AgentConfig, seed: UInt64) {
    self.config = config
    worldModel = WorldModel(config: config.worldModel, seed: seed)
    var rng = SeededGenerator(seed: seed, stream: StreamTag.agentInitialisation)
    let f = worldModel.initialState(batch: 1).features(config.policyInput).shape[1]
    actor = Actor(
      featureSize: f, units: config.units, layers: config.layers, spec: config.actions, input: config.policyInput,
      rng: &rng)
    critic = Critic(featureSize: f, units: config.units, layers: config.layers, input: config.policyInput, rng: &rng)
    slowCritic = Critic(
      featureSize: f, units: config.units, layers: config.layers, input: config.policyInput, rng: &rng)
    slowCritic.copyParameters(from: critic)
  }

  /// What the agent carries between steps of a batch of environments: its latent state and the
  /// action it took last. A value passed in and returned.
  public struct State {
    public var latent: LatentState?
    public var previousAction: Tensor

    public init(latent: LatentState?, previousAction: Tensor) {
      self.latent = latent
      self.previousAction = previousAction
    }

    /// The state as named tensors under `prefix` (for checkpoints): `previousAction`, and when
    /// a latent exists `deter`, `stoch` and `recurrent.<layer>`.
    public func tensors(prefix: String) -> [(String, Tensor)] {
      var out = [("\(prefix)previousAction", previousAction)]
      if let latent {
        out += [("\(prefix)deter", latent.deter.value), ("\(prefix)stoch", latent.stoch.value)]
        out += latent.recurrent.enumerated().map { ("\(prefix)recurrent.\($0.offset)", $0.element.value) }
      }
      return out
    }

    /// Reads ``tensors(prefix:)`` back; `like` gives the shapes to expect (an agent's state for
    /// the same batch). Throws naming a missing or misshapen entry.
    public init(tensors: [String: Tensor], prefix: String, like: State) throws {
      func take(_ name: String, _ shape: [Int]) throws -> Tensor {
        guard let t = tensors[prefix + name] else {
          throw CheckpointError(problem: "the agent state lacks '\(prefix + name)'")
        }
        guard t.shape == shape else {
          throw CheckpointError(problem: "'\(prefix + name)' has shape \(t.shape), expected \(shape)")
        }
        return t
      }
      previousAction = try take("previousAction", like.previousAction.shape)
      if tensors[prefix + "deter"] == nil {
        latent = nil
      } else {
        guard let l = like.latent else {
          throw CheckpointError(problem: "an agent state with a latent needs a template with one")
        }
        latent = LatentState(
          deter: Variable(try take("deter", l.deter.shape)), stoch: Variable(try take("stoch", l.stoch.shape)),
          recurrent: try l.recurrent.enumerated().map { Variable(try take("recurrent.\($0.offset)", $0.element.shape)) }
        )
      }
    }
  }

  /// The state before the first step of `batch` environments.
  public func initialState(batch: Int) -> State {
    State(latent: nil, previousAction: Tensor.zeros([batch, config.actions.size]))
  }

  /// How actions are chosen: sampled (training) or the policy's mode (evaluation).
  public enum Mode: Sendable { case sample, greedy }

  /// One step for a batch of environments: observes `observation` [B, ...] with `isFirst` [B]
  /// (where set, the latent restarts and the previous action is ignored), then picks actions
  /// [B, A] (one-hot for discrete spaces).
  public func act(
    observation: Tensor, isFirst: Tensor, state: State, mode: Mode, rng: inout SeededGenerator
  ) -> (actions: Tensor, state: State) {
    withoutGradient {
      let latent = worldModel.observeStep(
        observation: observation, previousAction: state.previousAction, isFirst: isFirst, state: state.latent,
        rng: &rng)
      let pi = actor(latent)
      let action = (mode == .greedy ? pi.mode : pi.sample(using: &rng)).value
      return (action, State(latent: latent, previousAction: action))
    }
  }
}

/// Learning for an ``Agent``: one world-model update, then the actor and the critic on
/// imagination from all B x T posterior states (r2i.md section 5 order).
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

  /// One learner step on `batch`; the metrics of both halves (world-model terms as they are,
  /// actor-critic terms by name).
  @discardableResult
  public func train(_ batch: WorldModelBatch, rng: inout SeededGenerator) -> [String: Float] {
    let update = worldModelTrainer.update(batch, rng: &rng)
    let n = batch.batchSize * batch.length
    // Padded steps (mask 0) and terminal ones start nothing.
    var startContinue = (1 - batch.isTerminal).reshaped([n])
    if let mask = batch.mask { startContinue = startContinue * mask.reshaped([n]) }
    var metrics = update.metrics
    let behaviour = actorCritic.update(
      start: update.posterior.states.flattened(), startContinue: startContinue, rng: &rng)
    metrics.merge(behaviour) { $1 }
    return metrics
  }
}
