import Agent
import Envs
import Foundation
import Replay

/// Everything that decides a training run. A run folder stores it as `config.json` (with its
/// ``version``; older versions are migrated when read, see ``decode(_:source:)``), so a run is
/// reproduced from its folder alone. Every setting has one type and one default, set by
/// ``defaults(env:backbone:preset:steps:envs:seed:)``.
public struct TrainingConfig: Codable, Equatable, Sendable {
  /// The version of the JSON form this build writes.
  public static let currentVersion = 4
  /// The version of the JSON form the configuration was read from or will be written as.
  public var version = TrainingConfig.currentVersion
  /// The environment's registry name (see ``EnvRegistry``).
  public var env: String
  public var backbone: Backbone
  /// The agent preset the agent was built from.
  public var preset: AgentPreset
  /// Environment steps to train for (all environments together, resets included).
  public var steps: Int
  /// Environments stepped together.
  public var envs: Int
  public var seed: UInt64
  /// Sequences per learner step and their length.
  public var batch: Int
  public var length: Int
  /// Replayed steps per environment step: one learner step (batch x length replayed steps) is
  /// owed every batch x length / ratio environment steps.
  public var trainRatio: Double
  /// Environment steps taken with uniformly random actions before learning starts.
  public var prefill: Int
  /// Steps the replay keeps (FIFO).
  public var replayCapacity: Int
  /// A metrics line of the learner's means every this many environment steps.
  public var logEvery: Int
  /// A metrics line also when this many wall-clock seconds passed since the last one (0: by
  /// steps only), so a slow run reports as often as a fast one (DreamerV3 logs by time). Lines
  /// by time depend on the machine's speed: runs that must give identical `metrics.jsonl` files
  /// set it to 0.
  public var logSeconds: Double = 60
  /// Evaluation every this many environment steps (0: never), over this many episodes.
  public var evalEvery: Int
  public var evalEpisodes: Int
  /// How evaluation episodes act: sampling from the policy (the reference's only mode) or its
  /// most likely action (`greedy`, `r2i train --greedy`; what runs of version 2 did).
  public var evaluation: EvaluationMode
  /// A checkpoint every this many environment steps (and always at the end or on a stop).
  public var checkpointEvery: Int
  /// Checkpoints kept in the run folder, the last first (`checkpoint/`, earlier ones in
  /// `checkpoint/kept-<env step>/`, each with the agent's parameters for `r2i eval`); a resume
  /// continues from the last.
  public var checkpointKeep: Int = 1
  /// An open-loop prediction image (real frames above the model's, see `openl` in the event
  /// file and `openl/` in the run folder) every this many minutes of training, for image
  /// observations (0: never). It reads the replay with a generator of its own, so the run
  /// trains exactly as without it.
  public var openLoopMinutes: Double = 10
  /// The agent, resolved from the preset and the environment's spaces.
  public var agent: AgentConfig
  /// A wall-clock budget in minutes (nil: none). The run stops, with a checkpoint, at the end of
  /// the first environment step after its total time over all sessions reaches it (a resumed
  /// run counts the time up to its last checkpoint). Whichever of `steps` and `minutes` is
  /// reached first ends the run.
  public var minutes: Double?
  /// How learner batches are drawn from the replay.
  public var sampling: SamplingMode
  /// The settings changed on resumes, oldest first (a record, not a setting; see
  /// ``adjustableOnResume``).
  public var adjustments: [SettingAdjustment] = []

  /// The agent a run builds: ``agent`` with a Transformer window of 0 (the default) set to the
  /// batch length.
  public var resolvedAgent: AgentConfig {
    var a = agent
    if var t = a.worldModel.transformer, t.window == 0 {
      t.window = length
      a.worldModel.transformer = t
    }
    return a
  }

  /// The defaults for `env` and `preset`. A preset that is one of the paper's recipes
  /// (``PaperRecipe``: `bsuite`, `popgym`, `memorymaze`, `atari100k`, `dmc-proprio`,
  /// `dmc-vision`; no preset: ``defaultPreset(env:)``) gives that recipe whole (``recipe(_:env:backbone:steps:envs:seed:)``); `steps`
  /// and `envs` nil take the recipe's. Any other preset gives this project's CPU defaults: the
  /// preset's sizes, 4 environments, batch 16 x 64 (uniform windows), train ratio 64, prefill
  /// 1,000 steps, the replay of ``defaultReplayCapacity(_:)``, a log line every 1,000 steps,
  /// evaluation (8 episodes, sampled) every 5,000 and a checkpoint every 10,000, 50,000 steps.
  /// Tasks that need memory (``TaskFacts/needsMemory``, declared by the environment) learn from
  /// whole episodes instead (see ``sequenceDefaults(task:maxEpisodeSteps:)``), imagine from
  /// ``memoryTaskImaginationStarts`` of their steps, train the actor at
  /// ``memoryTaskActorLearningRate`` and, with one discrete action per step, predict rewards by
  /// action (``WorldModelConfig/rewardByAction``). Why each of these: `docs/results/memory-tasks.md`.
  /// What departs from the paper is listed by ``departures``.
  public static func defaults(
    env: String, backbone: Backbone, preset: AgentPreset? = nil, steps: Int? = nil, envs: Int? = nil,
    seed: UInt64 = 0
  ) throws -> TrainingConfig {
    let preset = preset ?? defaultPreset(env: env)
    if case .worldModel(let p) = preset, let recipe = PaperRecipe(rawValue: p.rawValue) {
      return try Self.recipe(recipe, env: env, backbone: backbone, steps: steps, envs: envs, seed: seed)
    }
    let steps = steps ?? 50_000
    let envs = envs ?? 4
    let probe = try EnvRegistry.make(env, seed: 0)
    let interface = try EnvInterface(probe)
    let sequences = sequenceDefaults(task: probe.task, maxEpisodeSteps: probe.maxEpisodeSteps)
    var agent = preset.agent(backbone: backbone, observation: interface.observationKind, actions: interface.actionSpec)
    if sequences.sampling == .episodes {
      agent.actorCritic.imaginationStarts = memoryTaskImaginationStarts
      agent.actorCritic.actorOptimizer.learningRate = memoryTaskActorLearningRate
      // The memory tasks' rewards are "the action matches what was seen": one distribution per
      // action makes each a function of the memory alone.
      if interface.actionSpec.isSingleDiscrete { agent.worldModel.rewardByAction = true }
    }
    return TrainingConfig(
      env: env, backbone: backbone, preset: preset, steps: steps, envs: envs, seed: seed, batch: 16,
      length: sequences.length, trainRatio: 64, prefill: 1000,
      replayCapacity: defaultReplayCapacity(interface.replayLayout), logEvery: 1000, evalEvery: 5000, evalEpisodes: 8,
      evaluation: .sample, checkpointEvery: 10_000, agent: agent, sampling: sequences.sampling)
  }

  /// The preset an environment trains with when none is given: the paper's recipe for Atari
  /// (`atari:`) and DeepMind Control (`dmc:`, `dmc-vision:`), whose reference settings are those
  /// of non-memory tasks; ``AgentPreset/small`` (this project's CPU settings) for the rest.
  public static func defaultPreset(env: String) -> AgentPreset {
    for (prefix, recipe) in [("atari:", PaperRecipe.atari100k), ("dmc:", .dmcProprio), ("dmc-vision:", .dmcVision)]
    where env.hasPrefix(prefix) {
      if let preset = AgentPreset(rawValue: recipe.rawValue) { return preset }
    }
    return .small
  }

  /// Starts of imagination per learner step on the tasks that learn from whole episodes
  /// (``ActorCriticSettings/imaginationStarts``). The world model still learns from the whole
  /// batch; below this many starts nothing changes.
  public static let memoryTaskImaginationStarts = 256

  /// The actor's learning rate on the memory tasks (the paper's 3e-5; the small preset uses
  /// 3e-4 elsewhere, at which a memory task's policy saturates and can fall back from solved).
  public static let memoryTaskActorLearningRate: Float = 3e-5

  /// The longest learner sequence a whole-episode default asks for; longer episodes are cut
  /// into chunks of this length (the paper's POPGym sequences are 1,024 long).
  public static let longestEpisodeSequence = 1024

  /// How learner sequences are drawn for a task by default, given the most steps its episodes
  /// take (``Env/maxEpisodeSteps``). Tasks that need memory, with a known bound: whole episodes
  /// (``SamplingMode/episodes``), length bound + 1 (the reset and every step; at most
  /// ``longestEpisodeSequence``), so a sequence always holds the cue and the step that needs
  /// it, which uniform windows starting from the initial state cannot promise. Other tasks:
  /// uniform windows of 64.
  public static func sequenceDefaults(task: TaskFacts, maxEpisodeSteps: Int?) -> (sampling: SamplingMode, length: Int) {
    if task.needsMemory, let steps = maxEpisodeSteps { return (.episodes, min(steps + 1, longestEpisodeSequence)) }
    return (.uniform, 64)
  }

  /// One million steps (DreamerV3's replay size), or fewer where that would take more than
  /// 2 GiB (images: about 170,000 steps of 64 x 64 x 3). Not tied to `steps`, so a run resumed
  /// for longer keeps the replay it would have had.
  public static func defaultReplayCapacity(_ layout: ReplayLayout) -> Int {
    min(1_000_000, max(10_000, (2 << 30) / max(1, layout.bytesPerStep)))
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
    try check((0...1_000_000_000).contains(prefill), "prefill must be in 0...1000000000, got \(prefill)")
    try check(steps <= 1_000_000_000_000, "steps must be at most 10^12, got \(steps)")
    try check(
      replayCapacity >= length && replayCapacity <= 100_000_000,
      "replayCapacity must be in length...100000000 (\(length)...), got \(replayCapacity)")
    try check(version == Self.currentVersion, "version must be \(Self.currentVersion), got \(version)")
    try check(logEvery >= 1, "logEvery must be at least 1, got \(logEvery)")
    try check(
      logSeconds >= 0 && logSeconds <= 1e6, "logSeconds must be in 0...1000000 (0: by steps only), got \(logSeconds)")
    try check((1...1000).contains(checkpointKeep), "checkpointKeep must be in 1...1000, got \(checkpointKeep)")
    try check(
      openLoopMinutes >= 0 && openLoopMinutes <= 1e6,
      "openLoopMinutes must be in 0...1000000 (0: never), got \(openLoopMinutes)")
    try check(evalEvery >= 0, "evalEvery must be >= 0 (0 turns evaluation off), got \(evalEvery)")
    try check((1...10_000).contains(evalEpisodes), "evalEpisodes must be in 1...10000, got \(evalEpisodes)")
    try check(checkpointEvery >= 1, "checkpointEvery must be at least 1, got \(checkpointEvery)")
    if let minutes {
      try check(
        minutes > 0 && minutes <= 1e6, "minutes must be in (0, 1000000] (or absent for no limit), got \(minutes)")
    }
    if case .recency(let h) = sampling {
      try check(h > 0 && h.isFinite, "sampling recency:<half-life> needs a positive half-life, got \(h)")
    }
    try check(
      batch * length <= 1 << 22,
      "batch x length must be at most \(1 << 22) steps per learner step, got \(batch) x \(length)")
    try check(agent.worldModel.backbone == backbone, "agent.worldModel.backbone differs from backbone")
    do {
      try agent.validate()
    } catch let e as SettingError {
      throw TrainingError.badConfiguration("\(e)")
    }
    // The head picks its row with the action's one-hot: several components would add rows.
    if agent.worldModel.rewardByAction, !agent.actions.isSingleDiscrete {
      let kind = agent.actions.isDiscrete ? "multi-discrete" : "continuous"
      throw TrainingError.badConfiguration(
        "agent.worldModel.rewardByAction needs one discrete action per step; \(env) has \(kind) ones (set it to false)")
    }
    _ = try EnvRegistry.make(env, seed: 0)
  }

  /// What differs between this (a stored run's) configuration and `other`, ignoring `steps`
  /// and `minutes` (a resume may change them), the ``watchingSettings`` (which change nothing
  /// the run computes) and the ``adjustments`` record, first difference only; nil when nothing
  /// does. With `allowingAdjustments`, the ``adjustableOnResume`` settings may differ too.
  public func difference(from other: TrainingConfig, allowingAdjustments: Bool = false) -> String? {
    var a = self
    a.steps = other.steps
    a.minutes = other.minutes
    a.adjustments = other.adjustments
    a.takeWatchingSettings(of: other)
    if allowingAdjustments { for (_, path) in Self.adjustableOnResume { a[keyPath: path] = other[keyPath: path] } }
    guard a != other else { return nil }
    if env != other.env { return "env \(env), not \(other.env)" }
    if backbone != other.backbone { return "backbone \(backbone.rawValue), not \(other.backbone.rawValue)" }
    if preset != other.preset { return "preset \(preset), not \(other.preset)" }
    if seed != other.seed { return "seed \(seed), not \(other.seed)" }
    if envs != other.envs { return "\(envs) envs, not \(other.envs)" }
    if batch != other.batch || length != other.length {
      return "batch \(batch) x \(length), not \(other.batch) x \(other.length)"
    }
    for (key, path) in Self.adjustableOnResume where a[keyPath: path] != other[keyPath: path] {
      return "\(key) \(a[keyPath: path]), not \(other[keyPath: path])"
    }
    if a.agent != other.agent { return "another agent configuration" }
    return "other training settings"
  }
}

/// How evaluation episodes choose actions.
public enum EvaluationMode: String, Codable, Sendable, CaseIterable {
  /// Sample from the policy, as during training (the reference's evaluation).
  case sample
  /// Take the policy's most likely action.
  case greedy
}

/// Why a training run stopped or could not start.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
  /// A configuration value is wrong; the message names it and the fix.
  case badConfiguration(String)
  /// The run folder cannot be used as asked (exists, belongs to another configuration, damaged).
  case runFolder(String)
  /// A file of the run could not be written (a full disk, a file-size limit, a read-only
  /// folder); the message names the cause and the checkpoint the folder still holds.
  case writeFailed(String)
  /// A loss or gradient norm became NaN or infinite.
  case nonFinite(term: String, update: Int, envSteps: Int)
  /// An environment in a worker process failed (exited, crashed, hung or raised); the run wrote
  /// a checkpoint at `envSteps` first, so `--resume` continues from there.
  case environmentFailed(String, envSteps: Int)

  public var description: String {
    switch self {
    case .badConfiguration(let m): return m
    case .runFolder(let m): return m
    case .writeFailed(let m): return m
    case .environmentFailed(let m, let steps):
      return
        "\(m)\nThe run stopped with a checkpoint at env step \(steps); fix the environment, then continue with r2i train --run RUN --resume"
    case .nonFinite(let term, let update, let steps):
      return
        "'\(term)' became non-finite at learner step \(update) (env step \(steps)); the run stopped and its last checkpoint, from before it, is kept. Resuming as it is would repeat the same steps; resume with lower learning rates instead (the change is recorded in config.json): r2i train --run RUN --resume --set agent.worldModel.optimizer.learningRate=... (or agent.actorCritic.actorOptimizer.learningRate, agent.actorCritic.criticOptimizer.learningRate)"
    }
  }
}

extension TrainingConfig {
  /// The settings that change only what a user sees of a run, not what it computes: log lines
  /// by time, open-loop pictures, checkpoints kept. A run started under another build or with
  /// other values of these resumes all the same (with the values a resume gives, see
  /// ``TrainingRun/resume(from:steps:minutes:adjusting:communicator:)``).
  public static let watchingSettings = ["logSeconds", "openLoopMinutes", "checkpointKeep"]

  /// Takes `other`'s ``watchingSettings``.
  public mutating func takeWatchingSettings(of other: TrainingConfig) {
    logSeconds = other.logSeconds
    openLoopMinutes = other.openLoopMinutes
    checkpointKeep = other.checkpointKeep
  }
}
