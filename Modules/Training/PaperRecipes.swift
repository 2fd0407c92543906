import Agent
import Envs
import Foundation
import Replay

/// The paper's training recipes: the reference implementation's configuration for each domain
/// (chandar-lab/Recall2Imagine, `configs.yaml` blocks `popgym`, `mmaze`, `atari100k`,
/// `dmc_proprio`, `dmc_vision` over its `defaults`; BSuite from `configs_backup.yaml`, the only
/// file that has it), resolved setting by setting. `r2i train --preset popgym` trains with the
/// `popgym` recipe whole; `r2i presets` prints every recipe's settings side by side with their
/// sources; `docs/presets.md` is the table, and a test compares each recipe with it.
///
/// The DreamerV3 baseline takes the same recipe with the GRU core in place of the SSM (the
/// SSM's settings then do nothing). What this code cannot reproduce is named in
/// `docs/presets.md` ("What is not reproduced").
public enum PaperRecipe: String, CaseIterable, Codable, Sendable {
  case bsuite, popgym, memorymaze, atari100k
  case dmcProprio = "dmc-proprio"
  case dmcVision = "dmc-vision"

  /// The world-model preset that holds the recipe's sizes.
  public var preset: WorldModelPreset {
    switch self {
    case .bsuite: return .bsuite
    case .popgym: return .popgym
    case .memorymaze: return .memorymaze
    case .atari100k: return .atari100k
    case .dmcProprio: return .dmcProprio
    case .dmcVision: return .dmcVision
    }
  }

  /// Where the recipe comes from in the reference.
  public var source: String {
    switch self {
    case .bsuite: return "configs_backup.yaml: bsuite"
    case .popgym: return "configs.yaml: popgym"
    case .memorymaze: return "configs.yaml: mmaze"
    case .atari100k: return "configs.yaml: atari100k"
    case .dmcProprio: return "configs.yaml: dmc_proprio"
    case .dmcVision: return "configs.yaml: dmc_vision"
    }
  }

  /// Sequences per learner step and their length (`batch_size`, `batch_length`).
  public var batch: Int { self == .bsuite ? 16 : 4 }
  public var length: Int { self == .bsuite ? 256 : 1024 }

  /// Replayed steps per environment step (`run.train_ratio`).
  public var trainRatio: Double {
    switch self {
    case .bsuite, .atari100k: return 1024
    case .popgym, .memorymaze: return 64
    case .dmcProprio, .dmcVision: return 512
    }
  }

  /// Environments stepped together (`envs.amount`).
  public var envs: Int {
    switch self {
    case .bsuite, .atari100k: return 1
    case .popgym: return 8
    case .memorymaze: return 40
    case .dmcProprio, .dmcVision: return 4
    }
  }

  /// The run's length in environment steps (`run.steps`).
  public var steps: Int {
    switch self {
    case .bsuite: return 5_000_000
    case .popgym: return 200_000_000
    case .memorymaze: return 400_000_000
    case .atari100k: return 150_000
    case .dmcProprio: return 500_000
    case .dmcVision: return 1_000_000
    }
  }

  /// The replay's size in steps (`replay_size`; see ``TrainingConfig/recipe(_:env:backbone:steps:envs:seed:)``
  /// for the limit memory sets).
  public var replayCapacity: Int { self == .bsuite ? 5_000_000 : 10_000_000 }

  /// Random-policy steps before learning: the reference fills its replay with
  /// `max(batch_size x batch_length x envs, train_fill)` steps, `train_fill` being 0.
  public var prefill: Int { batch * length * envs }

  /// The recipe for an environment outside the paper's named domains: by family
  /// (`bsuite/`, `popgym/`, `memorymaze/`, `atari:`, `dmc:`, `dmc-vision:`), else by observation
  /// kind (`dmc-proprio` for vectors, `dmc-vision` for images, the reference's recipes for
  /// tasks without memory). Departures (``TrainingConfig/departures()``) are measured from it.
  public static func domain(of env: String, observation: ObservationKind) -> PaperRecipe {
    if env.hasPrefix("bsuite/") { return .bsuite }
    if env.hasPrefix("popgym/") { return .popgym }
    if env.hasPrefix("memorymaze/") { return .memorymaze }
    if env.hasPrefix("atari:") { return .atari100k }
    if env.hasPrefix("dmc-vision:") { return .dmcVision }
    if env.hasPrefix("dmc:") { return .dmcProprio }
    if case .image = observation { return .dmcVision }
    return .dmcProprio
  }
}

extension TrainingConfig {
  /// The paper's recipe `recipe` for `env`: the reference's sizes, optimisers, batch shape,
  /// train ratio, environments, prefill, replay size, entropy, policy input and evaluation
  /// (sampled), for `backbone` (the DreamerV3 baseline: the same with the GRU core). `steps`
  /// and `envs` nil take the recipe's. A replay of the recipe's size that would fill more than
  /// a quarter of this machine's memory (images: 12 KB a step, 123 GB for 10 million; the replay
  /// is allocated whole when the run starts, beside the model and its optimisers) is cut to fit,
  /// and ``departures()`` then names `replayCapacity`.
  public static func recipe(
    _ recipe: PaperRecipe, env: String, backbone: Backbone, steps: Int? = nil, envs: Int? = nil, seed: UInt64 = 0
  ) throws -> TrainingConfig {
    var c = try paperReference(recipe, env: env, backbone: backbone)
    c.seed = seed
    if let steps { c.steps = steps }
    if let envs { c.envs = envs }
    let layout = try EnvInterface(try EnvRegistry.make(env, seed: 0)).replayLayout
    let fits = Int(ProcessInfo.processInfo.physicalMemory / 4) / max(1, layout.bytesPerStep)
    c.replayCapacity = max(c.length, min(c.replayCapacity, fits))
    return c
  }

  /// The recipe exactly as the reference has it (no limit from this machine's memory): what
  /// ``departures()`` compares with.
  static func paperReference(_ recipe: PaperRecipe, env: String, backbone: Backbone) throws -> TrainingConfig {
    let interface = try EnvInterface(try EnvRegistry.make(env, seed: 0))
    var agent = AgentPreset.worldModel(recipe.preset).agent(
      backbone: backbone, observation: interface.observationKind, actions: interface.actionSpec)
    agent.worldModel.ssm.clipEigenvalues = false  // ssm_cell.clip_eigs: False
    switch recipe {
    case .bsuite:
      agent.worldModel.ssm.discretization = .zeroOrderHold
      agent.worldModel.learnedInitialState = false  // rssm.initial: zeros
      agent.worldModel.ssm.resetsAtEpisodeStart = false  // ssm_cell.reset_mode: none
    case .memorymaze:
      agent.worldModel.optimizer.learningRate = 3e-4
      agent.worldModel.optimizer.gradientClip = 200
      agent.worldModel.optimizer.weightDecay = 1e-2
      agent.actorCritic.actorOptimizer.learningRate = 1e-4
      agent.actorCritic.actorOptimizer.gradientClip = 200
      agent.actorCritic.criticOptimizer.learningRate = 1e-4
    default: break
    }
    return TrainingConfig(
      env: env, backbone: backbone, preset: .worldModel(recipe.preset), steps: recipe.steps, envs: recipe.envs,
      seed: 0, batch: recipe.batch, length: recipe.length, trainRatio: recipe.trainRatio, prefill: recipe.prefill,
      replayCapacity: recipe.replayCapacity, logEvery: 1000,
      evalEvery: recipe == .atari100k ? 100_000 : 5000, evalEpisodes: recipe == .atari100k ? 100 : 8,
      evaluation: .sample, checkpointEvery: 10_000, agent: agent, sampling: .uniform)
  }
}

/// One way a configuration departs from the paper's recipe for its environment: a name and the
/// settings (dotted keys) that differ.
public struct Departure: Equatable, Sendable, CustomStringConvertible {
  /// One differing setting: its dotted key, this configuration's value and the paper's (JSON text).
  public struct Setting: Equatable, Sendable {
    public var key: String
    public var value: String
    public var paper: String
  }

  /// The departure's name, as reports print it (`rewardByAction`, `smallSizes`, ...).
  public var name: String
  public var settings: [Setting]

  public var description: String {
    "\(name): " + settings.map { "\($0.key) \($0.value) (paper \($0.paper))" }.joined(separator: ", ")
  }

  /// The settings that are a run's bookkeeping, not its recipe: never departures.
  public static let bookkeepingKeys: Set<String> = [
    "version", "env", "backbone", "preset", "steps", "minutes", "seed", "logEvery", "logSeconds", "evalEvery",
    "evalEpisodes", "checkpointEvery", "checkpointKeep", "openLoopMinutes", "adjustments",
    "agent.actorCritic.imaginationChunk",
  ]

  /// The one place that names departures: each group of settings with its name, first match
  /// wins. A differing setting in no group is a departure named by its own dotted key.
  static let groups: [(name: String, matches: @Sendable (String) -> Bool)] = [
    (
      "sizes",
      { key in
        let sizes: Set<String> = [
          "agent.units", "agent.layers", "agent.worldModel.deter", "agent.worldModel.units",
          "agent.worldModel.mlpLayers", "agent.worldModel.encoderLayers", "agent.worldModel.encoderUnits",
          "agent.worldModel.cnnDepth", "agent.worldModel.latent.groups", "agent.worldModel.latent.classes",
          "agent.worldModel.ssm.states", "agent.worldModel.ssm.channels", "agent.worldModel.ssm.layers",
          "agent.worldModel.ssm.hippoBlocks", "agent.worldModel.transformer.layers",
          "agent.worldModel.transformer.width", "agent.worldModel.transformer.heads",
          "agent.worldModel.transformer.mlpRatio",
        ]
        return sizes.contains(key)
      }
    ),
    ("batchShape", { $0 == "batch" || $0 == "length" }),
    ("sampling", { $0 == "sampling" || $0.hasPrefix("sampling.") }),
    ("trainRatio", { $0 == "trainRatio" }),
    ("envs", { $0 == "envs" }),
    ("prefill", { $0 == "prefill" }),
    ("replayCapacity", { $0 == "replayCapacity" }),
    ("learningRates", { $0.hasSuffix(".learningRate") }),
    ("optimizers", { $0.contains(".optimizer.") || $0.contains("Optimizer.") }),
    ("entropy", { $0 == "agent.actorCritic.entropy" }),
    ("imaginationStarts", { $0 == "agent.actorCritic.imaginationStarts" }),
    ("rewardByAction", { $0 == "agent.worldModel.rewardByAction" }),
    ("headInput", { $0 == "agent.worldModel.headInput" }),
    ("policyInput", { $0 == "agent.policyInput" }),
    ("greedyEvaluation", { $0 == "evaluation" }),
    (
      "lossScales",
      {
        ["agent.worldModel.dynamicScale", "agent.worldModel.representationScale", "agent.worldModel.freeBits"].contains(
          $0)
      }
    ),
    ("clipEigenvalues", { $0 == "agent.worldModel.ssm.clipEigenvalues" }),
    ("ssmResets", { $0 == "agent.worldModel.ssm.resetsAtEpisodeStart" }),
    ("discretization", { $0 == "agent.worldModel.ssm.discretization" }),
    ("initialState", { $0 == "agent.worldModel.learnedInitialState" }),
    ("window", { $0 == "agent.worldModel.transformer.window" }),
  ]
}

extension TrainingConfig {
  /// Every setting as a dotted key with its value's JSON text (unset optional ones as `null`).
  public func settingsByKey() throws -> [String: String] {
    let root = Self.namingUnset(try JSONSerialization.jsonObject(with: encoded()) as! [String: Any], of: self)
    var out: [String: String] = [:]
    func walk(_ value: Any, _ key: String) {
      if let object = value as? [String: Any], !object.isEmpty {
        for (k, v) in object { walk(v, key.isEmpty ? k : "\(key).\(k)") }
      } else {
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])
        out[key] = data.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
      }
    }
    walk(root, "")
    return out
  }

  /// What departs from the paper's recipe for this environment (``PaperRecipe/domain(of:observation:)``)
  /// and backbone, grouped and named in one place (``Departure``), in the groups' order; empty
  /// when the configuration is the recipe (bookkeeping such as the budget, seed and logging
  /// aside). Sizes are named `smallSizes` when they are the `small` preset's (``withSizes(of:)``),
  /// `sizes` otherwise.
  /// With the GRU or the Transformer core the SSM's settings do nothing and are not compared
  /// (the Transformer's recipe is the paper's with its core in place of the SSM's).
  public func departures() throws -> [Departure] {
    let recipe = PaperRecipe.domain(of: env, observation: agent.worldModel.observation)
    let paper = try Self.paperReference(recipe, env: env, backbone: backbone).settingsByKey()
    let mine = try settingsByKey()
    var byGroup: [String: [Departure.Setting]] = [:]
    var position: [String: Int] = [:]  // the group's place in Departure.groups (ungrouped keys last)
    for key in Set(mine.keys).union(paper.keys).sorted() where !Departure.bookkeepingKeys.contains(key) {
      if backbone != .r2i && key.hasPrefix("agent.worldModel.ssm.") { continue }
      let (a, b) = (mine[key] ?? "absent", paper[key] ?? "absent")
      if a == b { continue }
      let group = Departure.groups.firstIndex { $0.matches(key) }
      var name = group.map { Departure.groups[$0].name } ?? key
      if name == "sizes" && hasSmallSizes { name = "smallSizes" }
      if name == "sampling" && sampling == .episodes { name = "wholeEpisodes" }
      position[name] = group ?? Int.max
      byGroup[name, default: []].append(Departure.Setting(key: key, value: a, paper: b))
    }
    return byGroup.keys.sorted { (position[$0]!, $0) < (position[$1]!, $1) }
      .map { Departure(name: $0, settings: byGroup[$0]!) }
  }

  /// The agent's name as reports print it: "R2I", "DreamerV3" or "Transformer" alone when
  /// nothing departs from the paper's recipe, else with each departure added, "R2I +
  /// smallSizes + rewardByAction" (no commas, so a CSV cell holds it as it is).
  public func agentName() throws -> String {
    let base = backbone.displayName
    return ([base] + (try departures().map(\.name))).joined(separator: " + ")
  }
}

extension PaperRecipe {
  /// Every setting a recipe decides, as a dotted key of ``TrainingConfig``, with the reference
  /// setting it comes from: the rows of `r2i presets` and of `docs/presets.md`.
  public static let settingSources: [(key: String, source: String)] = [
    ("batch", "batch_size"),
    ("length", "batch_length"),
    ("sampling", "uniform windows of batch_length (replay: uniform)"),
    ("trainRatio", "run.train_ratio"),
    ("envs", "envs.amount"),
    ("steps", "run.steps"),
    ("prefill", "max(batch_size x batch_length x envs.amount, run.train_fill = 0)"),
    ("replayCapacity", "replay_size"),
    ("evaluation", "the policy's samples (no greedy mode)"),
    ("agent.policyInput", "actor.inputs, critic.inputs"),
    ("agent.units", "actor.units, critic.units"),
    ("agent.layers", "actor.layers, critic.layers"),
    ("agent.actorCritic.horizon", "imag_horizon"),
    ("agent.actorCritic.discount", "1 - 1 / horizon (horizon 333)"),
    ("agent.actorCritic.lambda", "return_lambda"),
    ("agent.actorCritic.entropy", "actent"),
    ("agent.actorCritic.slowCriticRate", "slow_critic_fraction (every update)"),
    ("agent.actorCritic.slowCriticScale", "loss_scales.slowreg"),
    ("agent.actorCritic.imaginationStarts", "every start of the batch"),
    ("agent.actorCritic.actorOptimizer.learningRate", "actor_opt.lr"),
    ("agent.actorCritic.actorOptimizer.epsilon", "actor_opt.eps"),
    ("agent.actorCritic.actorOptimizer.gradientClip", "actor_opt.clip"),
    ("agent.actorCritic.actorOptimizer.weightDecay", "actor_opt.wd"),
    ("agent.actorCritic.actorOptimizer.beta1", "optax.scale_by_adam b1"),
    ("agent.actorCritic.actorOptimizer.beta2", "optax.scale_by_adam b2"),
    ("agent.actorCritic.criticOptimizer.learningRate", "critic_opt.lr"),
    ("agent.actorCritic.criticOptimizer.epsilon", "critic_opt.eps"),
    ("agent.actorCritic.criticOptimizer.gradientClip", "critic_opt.clip"),
    ("agent.actorCritic.criticOptimizer.weightDecay", "critic_opt.wd"),
    ("agent.actorCritic.criticOptimizer.beta1", "optax.scale_by_adam b1"),
    ("agent.actorCritic.criticOptimizer.beta2", "optax.scale_by_adam b2"),
    ("agent.worldModel.deter", "rssm.deter"),
    ("agent.worldModel.units", "rssm.units, reward_head.units, cont_head.units"),
    ("agent.worldModel.mlpLayers", "reward_head.layers, cont_head.layers"),
    ("agent.worldModel.encoderLayers", "encoder.mlp_layers, decoder.mlp_layers (vector inputs)"),
    ("agent.worldModel.encoderUnits", "encoder.mlp_units, decoder.mlp_units (vector inputs)"),
    ("agent.worldModel.cnnDepth", "encoder.cnn_depth, decoder.cnn_depth (image inputs)"),
    ("agent.worldModel.latent.groups", "rssm.stoch"),
    ("agent.worldModel.latent.classes", "rssm.classes"),
    ("agent.worldModel.latent.unimix", "rssm.unimix"),
    ("agent.worldModel.learnedInitialState", "rssm.initial (learned or zeros)"),
    ("agent.worldModel.headInput", "reward_head.inputs, cont_head.inputs ([deter, stoch])"),
    ("agent.worldModel.rewardByAction", "one reward distribution (reward_head)"),
    ("agent.worldModel.dynamicScale", "loss_scales.dyn"),
    ("agent.worldModel.representationScale", "loss_scales.rep"),
    ("agent.worldModel.freeBits", "dyn_loss.free, rep_loss.free"),
    ("agent.worldModel.optimizer.learningRate", "model_opt.lr (model_opt_groups.group1.lr alike)"),
    ("agent.worldModel.optimizer.epsilon", "model_opt.eps"),
    ("agent.worldModel.optimizer.gradientClip", "model_opt.clip"),
    ("agent.worldModel.optimizer.weightDecay", "model_opt.wd (kernels only; the SSM's group none)"),
    ("agent.worldModel.optimizer.beta1", "optax.scale_by_adam b1"),
    ("agent.worldModel.optimizer.beta2", "optax.scale_by_adam b2"),
    ("agent.worldModel.ssm.states", "rssm.hidden"),
    ("agent.worldModel.ssm.channels", "rssm.units"),
    ("agent.worldModel.ssm.layers", "ssm.n_layers"),
    ("agent.worldModel.ssm.hippoBlocks", "ssm_cell.n_blocks"),
    ("agent.worldModel.ssm.discretization", "ssm_cell.discretization"),
    ("agent.worldModel.ssm.clipEigenvalues", "ssm_cell.clip_eigs"),
    ("agent.worldModel.ssm.minStep", "ssm_cell.dt_min"),
    ("agent.worldModel.ssm.maxStep", "ssm_cell.dt_max"),
    ("agent.worldModel.ssm.inputScale", "B's lecun-normal initialisation, unscaled"),
    ("agent.worldModel.ssm.resetsAtEpisodeStart", "ssm_cell.reset_mode (init or none)"),
  ]

  /// Settings of the Transformer backbone: the paper has none, so no recipe decides them (this
  /// project pairs its sizes with the SSM's, ``TransformerSettings/matching(_:)``).
  public static func isTransformerSetting(_ key: String) -> Bool { key.hasPrefix("agent.worldModel.transformer") }

  /// Settings that follow the environment (its spaces), not the recipe.
  public static func followsEnvironment(_ key: String) -> Bool {
    key.hasPrefix("agent.actions") || key.hasPrefix("agent.worldModel.observation")
      || key == "agent.worldModel.actionSize" || key == "agent.worldModel.discreteActions"
      || key == "agent.worldModel.backbone"
  }

  /// A native environment with the domain's kind of observations and actions, whose settings
  /// stand for the recipe's where no environment is named (`r2i presets`, the recipe table's
  /// test): the recipe's settings that do not follow the environment are the same on every one.
  public var standIn: String {
    switch self {
    case .bsuite: return "bsuite/memory_len/10"
    case .popgym: return "popgym/RepeatPreviousEasy"
    case .memorymaze: return "memorymaze/9x9"
    case .atari100k: return "classic/CartPole-pixels"
    case .dmcProprio: return "classic/Pendulum"
    case .dmcVision: return "classic/Pendulum-pixels"
    }
  }

  /// The recipe's settings on `env` by dotted key (the rows of ``settingSources``), as JSON text.
  public func settings(env: String, backbone: Backbone = .r2i) throws -> [String: String] {
    try TrainingConfig.paperReference(self, env: env, backbone: backbone).settingsByKey()
  }
}

extension TrainingConfig {
  /// The size settings (``Departure`` group `sizes`): the networks' widths and depths, the
  /// latent's groups and classes and the SSM's state, channel, layer and block counts.
  static var sizeKeyPaths: [WritableKeyPath<AgentConfig, Int>] {
    [
      \.units, \.layers, \.worldModel.deter, \.worldModel.units, \.worldModel.mlpLayers, \.worldModel.cnnDepth,
      \.worldModel.groups, \.worldModel.classes, \.worldModel.ssm.states, \.worldModel.ssm.channels,
      \.worldModel.ssm.layers, \.worldModel.ssm.hippoBlocks,
    ]
  }

  /// This configuration with the model sizes of `preset` (``sizeKeyPaths`` and the encoder's
  /// MLP) and every other setting kept: `r2i train --preset bsuite --sizes small` is the paper's
  /// BSuite recipe at the CPU preset's sizes, whose only departure is `smallSizes`.
  public func withSizes(of preset: AgentPreset) -> TrainingConfig {
    let sized = preset.agent(
      backbone: backbone, observation: agent.worldModel.observation, actions: agent.actions)
    var c = self
    for path in Self.sizeKeyPaths { c.agent[keyPath: path] = sized[keyPath: path] }
    c.agent.worldModel.encoderLayers = sized.worldModel.encoderLayers
    c.agent.worldModel.encoderUnits = sized.worldModel.encoderUnits
    if var t = sized.worldModel.transformer {
      t.window = c.agent.worldModel.transformer?.window ?? t.window
      c.agent.worldModel.transformer = t
    }
    return c
  }

  /// Whether the model sizes are those of the `small` preset.
  var hasSmallSizes: Bool {
    let small = withSizes(of: .small)
    return Self.sizeKeyPaths.allSatisfy { agent[keyPath: $0] == small.agent[keyPath: $0] }
      && agent.worldModel.encoderMLP == small.agent.worldModel.encoderMLP
      && agent.worldModel.transformer == small.agent.worldModel.transformer
  }
}
