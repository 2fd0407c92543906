import Agent
import Distributed
import Envs
import FileSupport
import Foundation
import Replay

/// Starting a run, resuming it, and reading a run without loading it.
extension TrainingRun {
  /// Starts a new run in `directory` (created if needed; it must not hold a run) and writes its
  /// configuration and a checkpoint at step 0, so the run can be resumed from the start. Every
  /// rank of `communicator` calls it (see ``TrainingRun`` for what a run of several does).
  public static func start(
    config: TrainingConfig, in directory: URL, communicator: any Communicator = SingleProcess()
  ) throws -> TrainingRun {
    try config.validate()
    let folder = RunFolder(directory)
    func refuse() -> TrainingError {
      .runFolder(
        "'\(directory.path)' already holds a run; pass --resume to continue it, or choose another --run folder")
    }
    var lock: DirectoryLock?
    var metrics: MetricsLog?
    // Rank 0 prepares the folder; the other ranks learn whether it could.
    try communicator.everyRankSucceeds("prepare the run folder") {
      guard communicator.rank == 0 else { return }
      if folder.holdsRun { throw refuse() }
      try folder.create()
      lock = try folder.lock()
      if folder.holdsRun { throw refuse() }  // another process started it meanwhile
      try folder.removeUnfinishedStart()
      metrics = try MetricsLog(url: folder.metricsFile, truncatingTo: 0)
    }
    let probe = try EnvRegistry.make(config.env)
    let interface = try EnvInterface(observationSpace: probe.observationSpace, actionSpace: probe.actionSpace)
    let replay = try Replay(
      layout: interface.replayLayout, capacity: shardCapacity(config, ranks: communicator.size),
      seed: rankSeed(config.seed, rank: communicator.rank))
    let run = try TrainingRun(
      config: config, folder: folder, lock: lock, metrics: metrics, replay: replay, communicator: communicator)
    if communicator.rank == 0 { run.events = try newEventFile(folder) }
    run.shareParameters()
    // The checkpoint at step 0 first, config.json last: killed before it, the folder holds no
    // run and the next start begins afresh; after it, the run resumes.
    try run.checkpoint()
    try communicator.everyRankSucceeds("write config.json") {
      guard communicator.rank == 0 else { return }
      try folder.writeConfig(config)
      lock?.recordHolder()
    }
    return run
  }

  /// Each rank's replay shard: the configured capacity split over the ranks (at least one
  /// sequence).
  static func shardCapacity(_ config: TrainingConfig, ranks: Int) -> Int {
    max(config.length, config.replayCapacity / ranks)
  }

  /// Every rank takes rank 0's parameters (equal by construction at a start, read from rank 0's
  /// file at a resume; this makes it so).
  func shareParameters() {
    guard communicator.size > 1 else { return }
    var values = agent.parameters.map(\.value)
    communicator.broadcast(&values, from: 0)
    for (p, v) in zip(agent.parameters, values) { p.value = v }
  }

  /// Starts a run on an environment of your own given by its factory: `factory` is registered
  /// under `config.env` (``EnvRegistry/register(name:replacing:factory:)``, replacing an earlier
  /// registration of that name in this process), so the run's evaluation finds it, and a later
  /// ``resume(from:environment:steps:minutes:adjusting:communicator:)`` with the same factory
  /// continues it. `config.env` must have the registry's `<family>/<name>` form.
  public static func start(
    config: TrainingConfig, in directory: URL, environment factory: @escaping EnvRegistry.Factory,
    communicator: any Communicator = SingleProcess()
  ) throws -> TrainingRun {
    try EnvRegistry.register(name: config.env, replacing: true, factory: factory)
    return try start(config: config, in: directory, communicator: communicator)
  }

  /// Resumes a run started with an environment factory (or any run), registering `factory`
  /// under the environment name its `config.json` records first.
  public static func resume(
    from directory: URL, environment factory: @escaping EnvRegistry.Factory, steps: Int? = nil,
    minutes: Double? = nil, adjusting: TrainingConfig? = nil, communicator: any Communicator = SingleProcess()
  ) throws -> TrainingRun {
    let env = try RunFolder(directory).readConfig().env
    try EnvRegistry.register(name: env, replacing: true, factory: factory)
    return try resume(from: directory, steps: steps, minutes: minutes, adjusting: adjusting, communicator: communicator)
  }

  /// Opens the run in `directory` at its last checkpoint. `steps` and `minutes` replace the
  /// configured total and wall-clock budget (to train longer). `adjusting`, when given, is the
  /// configuration to continue with: it may differ from the stored one only in the
  /// ``TrainingConfig/adjustableOnResume`` settings (the learning rates), whose new values
  /// take effect from the checkpoint on and are recorded in `config.json`
  /// (``TrainingConfig/adjustments``); any other difference throws
  /// ``TrainingError/runFolder(_:)`` naming it; its watching settings
  /// (``TrainingConfig/watchingSettings``: log seconds, picture minutes, checkpoints kept) are
  /// taken as given. Every rank of `communicator` calls it; a run resumes only with as many
  /// ranks as trained it.
  public static func resume(
    from directory: URL, steps: Int? = nil, minutes: Double? = nil, adjusting: TrainingConfig? = nil,
    communicator: any Communicator = SingleProcess()
  ) throws -> TrainingRun {
    let folder = RunFolder(directory)
    let rank = communicator.rank
    var stored: TrainingConfig?
    var manifest: CheckpointManifest?
    var run: TrainingRun?
    // Nothing is written before every part has been read back on every rank: a resume that
    // fails leaves the folder as it was.
    try communicator.everyRankSucceeds("open the run and read its part of the checkpoint") {
      let config = try folder.readConfig()
      stored = config
      if let adjusting, let difference = config.difference(from: adjusting, allowingAdjustments: true) {
        throw TrainingError.runFolder(
          "'\(directory.path)' holds a run with another configuration (\(difference)); only the learning rates can change on a resume"
        )
      }
      let lock = rank == 0 ? try folder.lock() : nil
      let m = try folder.readManifest()
      manifest = m
      if let problem = processCountProblem(directory, trainedBy: m.ranks ?? 1, job: communicator.size) {
        throw TrainingError.runFolder(problem)
      }
      run = try open(
        folder, config: config, manifest: m, steps: steps, minutes: minutes, adjusting: adjusting, lock: lock,
        communicator: communicator)
    }
    guard let stored, let manifest, let run else { preconditionFailure("every rank read its part") }
    run.shareParameters()
    try communicator.everyRankSucceeds("finish the resume") {
      try run.metrics?.truncate(to: manifest.metricsBytes)
      if rank == 0 { try run.restoreEvents(cutTo: manifest.eventsBytes) }
      try run.removeFilesOfOtherCheckpoints(than: manifest)
      guard rank == 0 else { return }
      // config.json takes the new learning rates and their record, and the watching settings
      // given, and keeps its own budget.
      var updated = stored.adjusted(to: run.config, atEnvStep: manifest.progress.envSteps)
      updated.takeWatchingSettings(of: run.config)
      if updated != stored { try folder.writeConfig(updated) }
      run.lock?.recordHolder()
    }
    return run
  }

  /// Reads this rank's run back from the checkpoint `manifest` names (writing nothing).
  private static func open(
    _ folder: RunFolder, config stored: TrainingConfig, manifest: CheckpointManifest, steps: Int?, minutes: Double?,
    adjusting: TrainingConfig?, lock: DirectoryLock?, communicator: any Communicator
  ) throws -> TrainingRun {
    var config = stored
    if let steps { config.steps = steps }
    if let minutes { config.minutes = minutes }
    if let adjusting {
      config = config.adjusted(to: adjusting, atEnvStep: manifest.progress.envSteps)
      config.takeWatchingSettings(of: adjusting)
    }
    try config.validate()
    let rank = communicator.rank
    let replay: Replay
    do {
      replay = try Replay.load(from: folder.replayDirectory(rank: rank), manifestName: manifest.replayManifest).replay
    } catch {
      throw TrainingError.runFolder("the run's replay cannot be loaded: \(error)")
    }
    var metrics: MetricsLog?
    if rank == 0 {
      let log = try MetricsLog(url: folder.metricsFile, create: false)
      guard manifest.metricsBytes <= log.bytes else {
        throw TrainingError.runFolder(
          "'\(folder.metricsFile.path)' is shorter (\(log.bytes) bytes) than its checkpoint says (\(manifest.metricsBytes)); the run folder was altered"
        )
      }
      metrics = log
      // The replay named by this checkpoint took in exactly the steps it says (rank 0's count).
      guard replay.inserted == manifest.replayInserted else {
        throw TrainingError.runFolder(
          "the replay in '\(folder.replayDirectory.path)' holds \(replay.inserted) steps, its checkpoint says \(manifest.replayInserted); the run folder was altered"
        )
      }
    }
    let run = try TrainingRun(
      config: config, folder: folder, lock: lock, metrics: metrics, replay: replay, communicator: communicator)
    do {
      try run.restoreParts(manifest)
    } catch {
      throw TrainingError.runFolder("the checkpoint in '\(folder.checkpointDirectory.path)' cannot be loaded: \(error)")
    }
    guard run.envSteps == manifest.progress.envSteps, run.loop.updates == manifest.progress.updates else {
      throw TrainingError.runFolder(
        "the checkpoint in '\(folder.checkpointDirectory.path)' disagrees with its state.json (steps \(run.envSteps) against \(manifest.progress.envSteps))"
      )
    }
    return run
  }

  /// Starts the run `config` describes in `directory`, or resumes the one already there when it
  /// has the same configuration apart from `steps` and `minutes` (which take `config`'s values,
  /// so a longer or larger budget trains on). Throws ``TrainingError/runFolder(_:)`` naming
  /// what differs when the folder holds another run. `resumed` says which happened.
  public static func open(
    config: TrainingConfig, in directory: URL, communicator: any Communicator = SingleProcess()
  ) throws -> (run: TrainingRun, resumed: Bool) {
    let folder = RunFolder(directory)
    guard folder.holdsRun else { return (try start(config: config, in: directory, communicator: communicator), false) }
    try checkCompatible(config, with: directory)
    let run = try resume(from: directory, steps: config.steps, minutes: config.minutes, communicator: communicator)
    return (run, true)
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

  /// The processes that trained the run in `directory` (1 unless it ran under `mpirun`), or
  /// nil when it has no readable checkpoint; a resume needs as many.
  public static func processes(of directory: URL) -> Int? {
    (try? RunFolder(directory).readManifest()).map { $0.ranks ?? 1 }
  }

  /// Why a job of `job` processes cannot resume the run in `directory`, which `trainedBy`
  /// processes trained (with the command that can), or nil when the counts agree.
  public static func processCountProblem(_ directory: URL, trainedBy ranks: Int, job: Int) -> String? {
    guard ranks != job else { return nil }
    let launch = ranks == 1 ? "without mpirun" : "with mpirun -np \(ranks) r2i train ..."
    return
      "'\(directory.path)' was trained by \(ranks) process\(ranks == 1 ? "" : "es") and this job has \(job); resume it \(launch)"
  }

  /// The progress of the run in `directory` at its last checkpoint, or nil when it has none.
  public static func progress(of directory: URL) -> Progress? { RunFolder(directory).progress() }

  /// Whether a run at `progress` under `config` has nothing left to do: its steps are taken or
  /// its wall-clock budget is spent.
  public static func isFinished(_ progress: Progress, config: TrainingConfig) -> Bool {
    progress.envSteps >= config.steps || Schedule(config).budgetSpent(progress.seconds)
  }

  /// The agent of the run in `directory` at its last checkpoint (parameters only; no replay or
  /// learner state), with the configuration and the env steps it was saved at; with `envSteps`,
  /// the agent of the earlier checkpoint at that step (kept when ``TrainingConfig/checkpointKeep``
  /// is above 1; ``keptCheckpoints(of:)`` lists them).
  public static func loadAgent(from directory: URL, envSteps wanted: Int? = nil) throws -> (
    config: TrainingConfig, agent: Agent, envSteps: Int
  ) {
    let folder = RunFolder(directory)
    let config = try folder.readConfig()
    let manifest = try folder.readManifest()
    let agent = Agent(config: config.resolvedAgent, seed: config.seed)
    guard let file = manifest.files["agent"] else {
      throw TrainingError.runFolder("'\(folder.manifestFile.path)' names no agent file")
    }
    var url = folder.checkpointDirectory.appendingPathComponent(file)
    var steps = manifest.progress.envSteps
    if let wanted, wanted != steps {
      let kept = folder.keptAgentSteps()
      guard kept.contains(wanted) else {
        let list = (kept + [steps]).map(String.init).joined(separator: ", ")
        throw TrainingError.runFolder(
          "'\(directory.path)' keeps no checkpoint at env step \(wanted); it has \(list) (keep more with --set checkpointKeep=N)"
        )
      }
      url = folder.keptDirectory.appendingPathComponent("agent-\(wanted).safetensors")
      steps = wanted
    }
    do {
      try SafeTensors.load(into: agent, from: url)
    } catch {
      throw TrainingError.runFolder("the agent in '\(url.path)' cannot be loaded: \(error)")
    }
    return (config, agent, steps)
  }

  /// The env steps of the checkpoints whose agents the run in `directory` keeps, oldest first,
  /// the last checkpoint's included.
  public static func keptCheckpoints(of directory: URL) -> [Int] {
    let folder = RunFolder(directory)
    return folder.keptAgentSteps() + ((try? folder.readManifest()).map { [$0.progress.envSteps] } ?? [])
  }
}
