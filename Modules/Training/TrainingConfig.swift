import Agent
import Envs
import Foundation
import Replay

/// Everything that decides a training run. A run folder stores it as `config.json`; resuming
/// reads it back, so a run is reproduced from its folder alone.
public struct TrainingConfig: Codable, Equatable, Sendable {
  /// The environment's registry name (see ``EnvRegistry``).
  public var env: String
  public var backbone: Backbone
  /// The agent preset the agent was built from: `small` (``AgentConfig/small(backbone:observation:actions:)``)
  /// or a world-model preset name (`bsuite`, `popgym`, `memorymaze`, `dmc`, `dreamerv3-S` ...).
  public var preset: String
  /// Environment steps to train for (all environments together, resets included).
  public var steps: Int
  /// Environments stepped together.
  public var envs: Int
  public var seed: UInt64
  /// Sequences per learner step and their length.
  public var batch: Int
  public var length: Int
  /// Replayed steps per environment step: one learner step (batch x length replayed steps) is
  /// owed every batch x length / ratio environment steps (r2i.md section 6).
  public var trainRatio: Double
  /// Environment steps taken with uniformly random actions before learning starts.
  public var prefill: Int
  /// Steps the replay keeps (FIFO).
  public var replayCapacity: Int
  /// A metrics line of the learner's means every this many environment steps.
  public var logEvery: Int
  /// Greedy evaluation every this many environment steps (0: never), over this many episodes.
  public var evalEvery: Int
  public var evalEpisodes: Int
  /// A checkpoint every this many environment steps (and always at the end or on a stop).
  public var checkpointEvery: Int
  /// The agent, resolved from the preset and the environment's spaces.
  public var agent: AgentConfig
  /// A wall-clock budget in minutes (nil: none). The run stops, with a checkpoint, at the end of
  /// the first environment step after its total time over all sessions reaches it (a resumed
  /// run counts the time up to its last checkpoint). Whichever of `steps` and `minutes` is
  /// reached first ends the run.
  public var minutes: Double?
  /// How learner batches are drawn from the replay (nil: ``Sampling/uniform``).
  public var sampling: Sampling?

  /// How learner batches are drawn from the replay.
  public enum Sampling: String, Codable, Sendable, CaseIterable {
    /// Every window of `length` steps equally likely; windows may span episode boundaries
    /// (DreamerV3's default).
    case uniform
    /// Whole episodes from their first step, padded (mask 0) to `length`, or cut into chunks of
    /// `length` aligned to the episode start (the paper's choice for memory tasks: a sequence
    /// holds the cue and the step that needs it).
    case episodes
  }

  /// The replay's sampling mode for ``sampling``.
  public var samplingMode: SamplingMode { sampling == .episodes ? .episodes : .uniform }

  /// The defaults for `env`: the `small` agent preset, 4 environments, batch 16 x 64 (uniform
  /// windows), train ratio 64, prefill 1,000 steps, the replay of ``defaultReplayCapacity(_:)``,
  /// a log line every 1,000 steps, evaluation (8 episodes) every 5,000 and a checkpoint every
  /// 10,000. The memory tasks (``isMemoryTask(_:)``: `bsuite/memory_len/<L>` and POPGym) learn
  /// from whole episodes instead (see ``sequenceDefaults(env:maxEpisodeSteps:)``), imagine from
  /// ``memoryTaskImaginationStarts`` of their steps, train the actor at
  /// ``memoryTaskActorLearningRate`` and, with one discrete action per step,
  /// predict rewards by action (``WorldModelConfig/rewardByAction``).
  public static func defaults(
    env: String, backbone: Backbone, preset: String = "small", steps: Int = 50_000, envs: Int = 4, seed: UInt64 = 0
  ) throws -> TrainingConfig {
    let probe = try EnvRegistry.make(env, seed: 0)
    let interface = try EnvInterface(observationSpace: probe.observationSpace, actionSpace: probe.actionSpace)
    let sequences = sequenceDefaults(env: env, maxEpisodeSteps: probe.maxEpisodeSteps)
    var agent = try agentConfig(preset: preset, backbone: backbone, interface: interface)
    if sequences.sampling == .episodes {
      agent.actorCritic.imaginationStarts = memoryTaskImaginationStarts
      agent.actorCritic.actorOptimizer.learningRate = memoryTaskActorLearningRate
      // memory_len's reward is cue xor last action, and POPGym's rewards are "the action equals
      // a remembered card": one distribution per action makes each a function of the memory
      // alone (recall probe, xor target, 2,000 updates, small model, one seed: R2I 52.5 / 48.2 %
      // at L = 10 / 100 with one distribution, 99.6 / 100 % by action).
      if interface.actionSpec.isSingleDiscrete { agent.worldModel.rewardByAction = true }
    }
    return TrainingConfig(
      env: env, backbone: backbone, preset: preset, steps: steps, envs: envs, seed: seed, batch: 16,
      length: sequences.length, trainRatio: 64, prefill: 1000,
      replayCapacity: defaultReplayCapacity(interface.replayLayout), logEvery: 1000, evalEvery: 5000, evalEpisodes: 8,
      checkpointEvery: 10_000, agent: agent, sampling: sequences.sampling)
  }

  /// Starts of imagination per learner step on the tasks that learn from whole episodes
  /// (``ActorCriticSettings/imaginationStarts``): at memory_len/100 a batch holds 16 x 102 =
  /// 1,632 starts, and imagining from all of them is about 90 % of a learner step (small
  /// preset, one thread: 918 ms per step with all of them, 224 ms with 256; R2I in 30 minutes on
  /// one core: 2,024 learner steps with all, 9,656 with 256). The world model still learns from
  /// the whole batch. Below 256 starts (memory_len/10: 192) nothing changes. With this and the
  /// reward head by action R2I passed 90 % success over 100 episodes at memory_len/100 after
  /// 2,248 learner steps (6.8 minutes on one core; DreamerV3: chance after 30 minutes).
  public static let memoryTaskImaginationStarts = 256

  /// The actor's learning rate on the memory tasks (the spec's 3e-5 for DreamerV3 and R2I; the
  /// small preset uses 3e-4 elsewhere). At 3e-4 the actor is near-deterministic within 125
  /// learner steps (entropy 0.11 nats of 0.69 at memory_len/30) and R2I fell from solved back to
  /// chance: the policy becomes confidently wrong, and a categorical near its unimix floor gets
  /// almost no gradient from the actions it takes, so it stays there (R2I, memory_len/30, one
  /// core, seed 0, 30 minutes: first above 90 % over 100 episodes at 2.1 minutes, then above it
  /// for 55 % of the episodes that followed, at 3e-4; at 3e-5 first at 3.0 minutes, then above it
  /// for 97 %, never below 87 %).
  public static let memoryTaskActorLearningRate: Float = 3e-5

  /// Whether `env` is one of the memory tasks that learn from whole episodes by default:
  /// `bsuite/memory_len/<L>` and every POPGym game. (discounting_chain shows the chosen arm in
  /// its observation, so it needs no memory and keeps uniform windows.)
  public static func isMemoryTask(_ env: String) -> Bool {
    TaskScore.memoryLength(of: env) != nil || env.hasPrefix("popgym/")
  }

  /// The longest learner sequence a whole-episode default asks for; longer episodes are cut
  /// into chunks of this length (the paper's POPGym sequences are 1,024 long).
  public static let longestEpisodeSequence = 1024

  /// How learner sequences are drawn for `env` by default, given the most steps its episodes
  /// take (``Env/maxEpisodeSteps``). Memory tasks (``isMemoryTask(_:)``) with a known bound:
  /// whole episodes (``Sampling/episodes``), length bound + 1 (the reset and every step; at
  /// most ``longestEpisodeSequence``), the paper's choice for memory tasks: uniform windows of
  /// 64 start from the initial state, so a window never holds a cue more than 63 steps before
  /// the step that needs it (RepeatPreviousHard asks for the suit 64 steps back). At
  /// `bsuite/memory_len/<L>` that is length L + 2, so every
  /// sequence holds the cue and the reward that depends on it (uniform windows of 64 cannot for
  /// L >= 63: the learner starts every window from the initial state), and a learner step
  /// replays 16 x 12 steps at L = 10 instead of 16 x 64, about six times as many learner steps
  /// per minute. Measured at L = 10 (one core, seed 0): R2I went from chance (49 % success over
  /// the last 1,000 episodes after 30 minutes with 16 x 64 windows) to 90 % over the last 100
  /// episodes at 31,600 env steps (18 minutes) and 99.6 % over the last 1,000 by 25 minutes.
  /// Other tasks: uniform windows of 64.
  public static func sequenceDefaults(env: String, maxEpisodeSteps: Int?) -> (sampling: Sampling?, length: Int) {
    if isMemoryTask(env), let steps = maxEpisodeSteps { return (.episodes, min(steps + 1, longestEpisodeSequence)) }
    return (nil, 64)
  }

  /// One million steps (DreamerV3's replay size), or fewer where that would take more than
  /// 2 GiB (images: about 170,000 steps of 64 x 64 x 3). Not tied to `steps`, so a run resumed
  /// for longer keeps the replay it would have had.
  public static func defaultReplayCapacity(_ layout: ReplayLayout) -> Int {
    min(1_000_000, max(10_000, (2 << 30) / max(1, layout.bytesPerStep)))
  }

  /// The presets `--preset` accepts.
  public static var presets: [String] { ["small"] + WorldModelPreset.allCases.map(\.rawValue) }

  /// The agent of `preset` for an environment's spaces.
  public static func agentConfig(preset: String, backbone: Backbone, interface: EnvInterface) throws -> AgentConfig {
    if preset == "small" {
      return .small(backbone: backbone, observation: interface.observationKind, actions: interface.actionSpec)
    }
    guard let p = WorldModelPreset(rawValue: preset) else {
      throw TrainingError.badConfiguration(
        "unknown preset '\(preset)'; available: \(presets.joined(separator: ", "))")
    }
    return .preset(p, backbone: backbone, observation: interface.observationKind, actions: interface.actionSpec)
  }

  /// Throws naming the first value out of range, with the fix.
  public func validate() throws {
    func check(_ ok: Bool, _ message: String) throws {
      if !ok { throw TrainingError.badConfiguration(message) }
    }
    try check(steps >= 1, "steps must be at least 1, got \(steps)")
    try check((1...1024).contains(envs), "envs must be in 1...1024, got \(envs)")
    try check((1...1024).contains(batch), "batch must be in 1...1024, got \(batch)")
    try check((1...16_384).contains(length), "length must be in 1...16384, got \(length)")
    try check(trainRatio > 0 && trainRatio <= 1_000_000, "trainRatio must be in (0, 1000000], got \(trainRatio)")
    try check(prefill >= 0, "prefill must be >= 0, got \(prefill)")
    try check(
      replayCapacity >= length && replayCapacity <= 100_000_000,
      "replayCapacity must be in length...100000000 (\(length)...), got \(replayCapacity)")
    try check(logEvery >= 1, "logEvery must be at least 1, got \(logEvery)")
    try check(evalEvery >= 0, "evalEvery must be >= 0 (0 turns evaluation off), got \(evalEvery)")
    try check((1...10_000).contains(evalEpisodes), "evalEpisodes must be in 1...10000, got \(evalEpisodes)")
    try check(checkpointEvery >= 1, "checkpointEvery must be at least 1, got \(checkpointEvery)")
    if let minutes {
      try check(
        minutes > 0 && minutes <= 1e6, "minutes must be in (0, 1000000] (or absent for no limit), got \(minutes)")
    }
    try check(agent.worldModel.backbone == backbone, "agent.worldModel.backbone differs from backbone")
    if let starts = agent.actorCritic.imaginationStarts {
      try check(
        starts >= 1, "agent.actorCritic.imaginationStarts must be at least 1 (or null for every start), got \(starts)")
    }
    // The head picks its row with the action's one-hot: several components would add rows.
    if agent.worldModel.rewardByAction == true, !agent.actions.isSingleDiscrete {
      let kind = agent.actions.isDiscrete ? "multi-discrete" : "continuous"
      throw TrainingError.badConfiguration(
        "agent.worldModel.rewardByAction needs one discrete action per step; \(env) has \(kind) ones (set it to null)")
    }
    let ssm = agent.worldModel.ssm
    try check(
      ssm.minStep > 0 && ssm.minStep <= ssm.maxStep && ssm.maxStep <= 100,
      "agent.worldModel.ssm.minStep and maxStep must satisfy 0 < minStep <= maxStep <= 100, got \(ssm.minStep) and \(ssm.maxStep)"
    )
    try check(
      ssm.inputScale > 0 && ssm.inputScale <= 1000,
      "agent.worldModel.ssm.inputScale must be in (0, 1000], got \(ssm.inputScale)")
    _ = try EnvRegistry.make(env, seed: 0)
  }

  /// What differs between this (a stored run's) configuration and `other`, ignoring `steps`
  /// and `minutes` (a resume may change them), first difference only; nil when nothing does.
  public func difference(from other: TrainingConfig) -> String? {
    var a = self
    a.steps = other.steps
    a.minutes = other.minutes
    guard a != other else { return nil }
    if env != other.env { return "env \(env), not \(other.env)" }
    if backbone != other.backbone { return "backbone \(backbone.rawValue), not \(other.backbone.rawValue)" }
    if preset != other.preset { return "preset \(preset), not \(other.preset)" }
    if seed != other.seed { return "seed \(seed), not \(other.seed)" }
    if envs != other.envs { return "\(envs) envs, not \(other.envs)" }
    if batch != other.batch || length != other.length {
      return "batch \(batch) x \(length), not \(other.batch) x \(other.length)"
    }
    if agent != other.agent { return "another agent configuration" }
    return "other training settings"
  }

  /// The configuration with `key=value` settings applied; keys are dotted paths into the JSON
  /// form (`trainRatio=32`, `agent.actorCritic.entropy=0.001`, `agent.worldModel.optimizer.learningRate=3e-4`).
  /// Throws for a malformed setting, an unknown key (listing the keys at that level) or a
  /// value of the wrong type.
  public func applying(_ settings: [String]) throws -> TrainingConfig {
    guard !settings.isEmpty else { return self }
    let encoder = JSONEncoder()
    var root = try JSONSerialization.jsonObject(with: encoder.encode(self)) as! [String: Any]
    // Optional settings are absent from the JSON form when unset; name them so they can be set.
    for key in Self.optionalKeys { root = Self.naming(root, path: key.split(separator: ".").map(String.init)) }
    for setting in settings {
      guard let eq = setting.firstIndex(of: "="), eq != setting.startIndex else {
        throw TrainingError.badConfiguration("--set '\(setting)' is not key=value (e.g. --set trainRatio=32)")
      }
      let key = String(setting[..<eq])
      let text = String(setting[setting.index(after: eq)...])
      let value: Any =
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) ?? text
      root = try Self.set(root, path: key.split(separator: ".").map(String.init), value: value, full: key)
    }
    let data = try JSONSerialization.data(withJSONObject: root)
    do {
      return try JSONDecoder().decode(TrainingConfig.self, from: data)
    } catch {
      throw TrainingError.badConfiguration(
        "--set \(settings.joined(separator: " ")): a value has the wrong type (\(Self.describe(error)))")
    }
  }

  /// Settings that may be absent (null), as dotted paths.
  static let optionalKeys = [
    "minutes", "sampling", "agent.worldModel.headInput", "agent.worldModel.rewardByAction",
    "agent.actorCritic.imaginationStarts",
  ]

  /// `object` with the optional setting at `path` present (null when it was absent).
  static func naming(_ object: [String: Any], path: [String]) -> [String: Any] {
    var object = object
    if path.count == 1 {
      if object[path[0]] == nil { object[path[0]] = NSNull() }
    } else if let inner = object[path[0]] as? [String: Any] {
      object[path[0]] = naming(inner, path: Array(path.dropFirst()))
    }
    return object
  }

  static func set(_ object: [String: Any], path: [String], value: Any, full: String) throws -> [String: Any] {
    var object = object
    let key = path[0]
    guard let current = object[key] else {
      throw TrainingError.badConfiguration(
        "--set: unknown key '\(full)': '\(key)' is not one of \(object.keys.sorted().joined(separator: ", "))")
    }
    if path.count == 1 {
      if current is [String: Any] {
        throw TrainingError.badConfiguration("--set: '\(full)' is a group; set one of its keys")
      }
      object[key] = value
    } else {
      guard let inner = current as? [String: Any] else {
        throw TrainingError.badConfiguration("--set: '\(key)' in '\(full)' is a value, not a group")
      }
      object[key] = try set(inner, path: Array(path.dropFirst()), value: value, full: full)
    }
    return object
  }

  /// A short description of a decoding error: the key path and what was wrong.
  public static func describe(_ error: Error) -> String {
    switch error as? DecodingError {
    case .typeMismatch(let type, let c)?:
      return "\(c.codingPath.map(\.stringValue).joined(separator: ".")) must be \(type)"
    case .dataCorrupted(let c)?:
      return "\(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
    case .keyNotFound(let k, _)?: return "missing \(k.stringValue)"
    case .valueNotFound(_, let c)?: return "\(c.codingPath.map(\.stringValue).joined(separator: ".")) is missing"
    default: return "\(error)"
    }
  }
}

/// Why a training run stopped or could not start.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
  /// A configuration value is wrong; the message names it and the fix.
  case badConfiguration(String)
  /// The run folder cannot be used as asked (exists, belongs to another configuration, damaged).
  case runFolder(String)
  /// A loss or gradient norm became NaN or infinite.
  case nonFinite(term: String, update: Int, envSteps: Int)

  public var description: String {
    switch self {
    case .badConfiguration(let m): return m
    case .runFolder(let m): return m
    case .nonFinite(let term, let update, let steps):
      return
        "'\(term)' became non-finite at learner step \(update) (env step \(steps)); the run stopped and the last checkpoint before it is kept (lower the learning rates with --set, or resume from it)"
    }
  }
}
