import Agent
import Envs
import FileSupport
import Foundation
import Replay

/// Starting a run, resuming it, and reading a run without loading it.
extension TrainingRun {
  /// Starts a new run in `directory` (created if needed; it must not hold a run) and writes its
  /// configuration and a checkpoint at step 0, so the run can be resumed from the start.
  public static func start(config: TrainingConfig, in directory: URL) throws -> TrainingRun {
    try config.validate()
    let folder = RunFolder(directory)
    func refuse() -> TrainingError {
      .runFolder(
        "'\(directory.path)' already holds a run; pass --resume to continue it, or choose another --run folder")
    }
    if folder.holdsRun { throw refuse() }
    try folder.create()
    let lock = try folder.lock()
    if folder.holdsRun { throw refuse() }  // another process started it meanwhile
    try folder.removeUnfinishedStart()
    let probe = try EnvRegistry.make(config.env)
    let interface = try EnvInterface(observationSpace: probe.observationSpace, actionSpace: probe.actionSpace)
    let replay = try Replay(layout: interface.replayLayout, capacity: config.replayCapacity, seed: config.seed)
    let metrics = try MetricsLog(url: folder.metricsFile, truncatingTo: 0)
    let run = try TrainingRun(config: config, folder: folder, lock: lock, metrics: metrics, replay: replay)
    // The checkpoint at step 0 first, config.json last: killed before it, the folder holds no
    // run and the next start begins afresh; after it, the run resumes.
    try run.checkpoint()
    try folder.writeConfig(config)
    lock.recordHolder()
    return run
  }

  /// Opens the run in `directory` at its last checkpoint. `steps` and `minutes` replace the
  /// configured total and wall-clock budget (to train longer). `adjusting`, when given, is the
  /// configuration to continue with: it may differ from the stored one only in the
  /// ``TrainingConfig/adjustableOnResume`` settings (the learning rates), whose new values
  /// take effect from the checkpoint on and are recorded in `config.json`
  /// (``TrainingConfig/adjustments``); any other difference throws
  /// ``TrainingError/runFolder(_:)`` naming it.
  public static func resume(
    from directory: URL, steps: Int? = nil, minutes: Double? = nil, adjusting: TrainingConfig? = nil
  ) throws -> TrainingRun {
    let folder = RunFolder(directory)
    let stored = try folder.readConfig()
    var config = stored
    if let adjusting, let difference = stored.difference(from: adjusting, allowingAdjustments: true) {
      throw TrainingError.runFolder(
        "'\(directory.path)' holds a run with another configuration (\(difference)); only the learning rates can change on a resume"
      )
    }
    if let steps { config.steps = steps }
    if let minutes { config.minutes = minutes }
    let lock = try folder.lock()
    // Nothing is written before every part has been read back: a resume that fails leaves the
    // folder as it was.
    let manifest = try folder.readManifest()
    if let adjusting { config = config.adjusted(to: adjusting, atEnvStep: manifest.progress.envSteps) }
    try config.validate()
    let replay: Replay
    do {
      replay = try Replay.load(from: folder.replayDirectory, manifestName: manifest.replayManifest).replay
    } catch {
      throw TrainingError.runFolder("the run's replay cannot be loaded: \(error)")
    }
    let metrics = try MetricsLog(url: folder.metricsFile, create: false)
    guard manifest.metricsBytes <= metrics.bytes else {
      throw TrainingError.runFolder(
        "'\(folder.metricsFile.path)' is shorter (\(metrics.bytes) bytes) than its checkpoint says (\(manifest.metricsBytes)); the run folder was altered"
      )
    }
    let run = try TrainingRun(config: config, folder: folder, lock: lock, metrics: metrics, replay: replay)
    // A replay saved after this checkpoint (killed in between) already holds later steps of the
    // running episodes, so they cannot continue in it: the environments start new ones.
    let newer = replay.inserted - manifest.replayInserted
    guard newer >= 0 else {
      throw TrainingError.runFolder(
        "the replay in '\(folder.replayDirectory.path)' is older than its checkpoint (\(replay.inserted) steps, the checkpoint says \(manifest.replayInserted)); the run folder was altered"
      )
    }
    run.restartEpisodes = newer != 0
    do {
      try run.restoreParts(manifest)
    } catch {
      throw TrainingError.runFolder("the checkpoint in '\(folder.checkpointDirectory.path)' cannot be loaded: \(error)")
    }
    run.restartEpisodes = false
    guard run.collector.steps == manifest.progress.envSteps, run.loop.updates == manifest.progress.updates else {
      throw TrainingError.runFolder(
        "the checkpoint in '\(folder.checkpointDirectory.path)' disagrees with its state.json (steps \(run.collector.steps) against \(manifest.progress.envSteps))"
      )
    }
    try metrics.truncate(to: manifest.metricsBytes)
    try run.removeFilesOfOtherCheckpoints(than: manifest)
    if config.adjustments != stored.adjustments {
      var record = stored.adjusted(to: config, atEnvStep: manifest.progress.envSteps)
      record.steps = stored.steps  // config.json keeps the run's own budget
      record.minutes = stored.minutes
      try folder.writeConfig(record)
    }
    lock.recordHolder()
    if newer != 0 {
      run.warnings.append(
        "the replay holds \(newer) steps more than its checkpoint (the run was killed while saving); the run keeps them and starts new episodes in every environment, so it is no longer bit-identical to an uninterrupted one"
      )
    }
    return run
  }

  /// Starts the run `config` describes in `directory`, or resumes the one already there when it
  /// has the same configuration apart from `steps` and `minutes` (which take `config`'s values,
  /// so a longer or larger budget trains on). Throws ``TrainingError/runFolder(_:)`` naming
  /// what differs when the folder holds another run. `resumed` says which happened.
  public static func open(config: TrainingConfig, in directory: URL) throws -> (run: TrainingRun, resumed: Bool) {
    let folder = RunFolder(directory)
    guard folder.holdsRun else { return (try start(config: config, in: directory), false) }
    try checkCompatible(config, with: directory)
    return (try resume(from: directory, steps: config.steps, minutes: config.minutes), true)
  }

  /// Throws ``TrainingError/runFolder(_:)`` naming the first difference when the run in
  /// `directory` has another configuration than `config` (apart from `steps` and `minutes`, and
  /// with `allowingAdjustments` the learning rates a resume may change).
  public static func checkCompatible(
    _ config: TrainingConfig, with directory: URL, allowingAdjustments: Bool = false
  ) throws {
    let stored = try RunFolder(directory).readConfig()
    if let difference = stored.difference(from: config, allowingAdjustments: allowingAdjustments) {
      throw TrainingError.runFolder(
        "'\(directory.path)' holds a run with another configuration (\(difference)); choose another folder")
    }
  }

  /// Reads a run's configuration without loading it.
  public static func configuration(of directory: URL) throws -> TrainingConfig {
    try RunFolder(directory).readConfig()
  }

  /// The progress of the run in `directory` at its last checkpoint, or nil when it has none.
  public static func progress(of directory: URL) -> Progress? { RunFolder(directory).progress() }

  /// Whether a run at `progress` under `config` has nothing left to do: its steps are taken or
  /// its wall-clock budget is spent.
  public static func isFinished(_ progress: Progress, config: TrainingConfig) -> Bool {
    progress.envSteps >= config.steps || Schedule(config).budgetSpent(progress.seconds)
  }

  /// The agent of the run in `directory` at its last checkpoint (parameters only; no replay or
  /// learner state), with the configuration and the env steps it was saved at.
  public static func loadAgent(from directory: URL) throws -> (config: TrainingConfig, agent: Agent, envSteps: Int) {
    let folder = RunFolder(directory)
    let config = try folder.readConfig()
    let manifest = try folder.readManifest()
    let agent = Agent(config: config.agent, seed: config.seed)
    guard let file = manifest.files["agent"] else {
      throw TrainingError.runFolder("'\(folder.manifestFile.path)' names no agent file")
    }
    do {
      try SafeTensors.load(into: agent, from: folder.checkpointDirectory.appendingPathComponent(file))
    } catch {
      throw TrainingError.runFolder("the agent in '\(folder.checkpointDirectory.path)' cannot be loaded: \(error)")
    }
    return (config, agent, manifest.progress.envSteps)
  }
}
