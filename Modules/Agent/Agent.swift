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
    /// a latent exists `deter`, `stoch` and `recurrent.<layer>`; with a Transformer's cache also
    /// `context.ownFirst`, `context.position` and, once it holds steps, `context.<layer>.keys`
    /// and `.values` [steps, N, width]. (An acting state's cache has no shared prefix.)
    public func tensors(prefix: String) -> [(String, Tensor)] {
      var out = [("\(prefix)previousAction", previousAction)]
      if let latent {
        out += [("\(prefix)deter", latent.deter.value), ("\(prefix)stoch", latent.stoch.value)]
        out += latent.recurrent.enumerated().map { ("\(prefix)recurrent.\($0.offset)", $0.element.value) }
        if let context = latent.context {
          precondition(
            context.sequence == nil && !context.rows.prefixRow.contains { $0 >= 0 },
            "Agent.State.tensors: an acting state's cache has no shared prefix")
          out.append(("\(prefix)context.ownFirst", Tensor(context.rows.ownFirst.map(Float.init))))
          out.append(("\(prefix)context.position", Tensor(context.rows.position.map(Float.init))))
          if context.ownSteps > 0 {
            for (i, layer) in context.layers.enumerated() {
              out.append(("\(prefix)context.\(i).keys", Tensor.stack(layer.ownKeys.map(\.value), axis: 0)))
              out.append(("\(prefix)context.\(i).values", Tensor.stack(layer.ownValues.map(\.value), axis: 0)))
            }
          }
        }
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
        if let template = l.context {
          let n = template.rows.count
          var context = AttentionContext(empty: n, layers: template.layers.count, window: template.window)
          context.rows.ownFirst = try take("context.ownFirst", [n]).scalars.map { Int32($0) }
          context.rows.position = try take("context.position", [n]).scalars.map { Int32($0) }
          if let keys = tensors[prefix + "context.0.keys"] {
            let steps = keys.shape.first ?? 0
            guard keys.rank == 3, keys.shape[1] == n else {
              throw CheckpointError(
                problem: "'\(prefix)context.0.keys' has shape \(keys.shape), expected [steps, \(n), width]")
            }
            for i in context.layers.indices {
              let shape = [steps, n, keys.shape[2]]
              let k = try take("context.\(i).keys", shape)
              let v = try take("context.\(i).values", shape)
              context.layers[i].ownKeys = (0..<steps).map { Variable(k.slice(at: $0, axis: 0)) }
              context.layers[i].ownValues = (0..<steps).map { Variable(v.slice(at: $0, axis: 0)) }
            }
          }
          guard context.rows.ownFirst.allSatisfy({ $0 >= 0 && Int($0) <= context.ownSteps }) else {
            throw CheckpointError(
              problem: "'\(prefix)context.ownFirst' points past the \(context.ownSteps) cached steps")
          }
          latent?.context = context
        }
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
