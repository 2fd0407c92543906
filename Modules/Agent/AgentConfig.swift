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

  /// A preset's world model (`docs/method.md`, section 5) with actor and critic of the preset's MLP sizes;
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
    if backbone == .transformer { wm.transformer = TransformerSettings.matching(wm.ssm) }
    wm.optimizer.learningRate = 1e-3
    var ac = ActorCriticSettings()
    ac.actorOptimizer.learningRate = 3e-4
    ac.criticOptimizer.learningRate = 3e-4
    return AgentConfig(worldModel: wm, actions: actions, policyInput: .hidden, units: 128, layers: 2, actorCritic: ac)
  }
}

/// The settings of the actor-critic update (`docs/method.md`, section 4; DreamerV3 2023).
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

/// The agent presets: `small` (``AgentConfig/small(backbone:observation:actions:)``), or the
/// sizes of a world-model preset (``AgentConfig/preset(_:backbone:observation:actions:)``).
/// Written as its name (`"small"`, `"bsuite"`, `"dreamerv3-S"` ...).
public enum AgentPreset: Hashable, Sendable, Codable, CaseIterable, RawRepresentable, CustomStringConvertible {
  case small
  case worldModel(WorldModelPreset)

  public init?(rawValue: String) {
    if rawValue == "small" {
      self = .small
    } else if let p = WorldModelPreset(rawValue: rawValue) {
      self = .worldModel(p)
    } else {
      return nil
    }
  }

  public var rawValue: String {
    switch self {
    case .small: return "small"
    case .worldModel(let p): return p.rawValue
    }
  }

  public var description: String { rawValue }

  public static var allCases: [AgentPreset] { [.small] + WorldModelPreset.allCases.map { .worldModel($0) } }

  /// The agent of this preset for a backbone and an environment's observation and actions.
  public func agent(backbone: Backbone, observation: ObservationKind, actions: ActionSpec) -> AgentConfig {
    switch self {
    case .small: return .small(backbone: backbone, observation: observation, actions: actions)
    case .worldModel(let p): return .preset(p, backbone: backbone, observation: observation, actions: actions)
    }
  }
}
