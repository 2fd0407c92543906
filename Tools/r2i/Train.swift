import ArgumentParser
import CommandLineSupport
import Distributed
import Foundation
import Tensor
import Training
import TrainingCommandLine

/// Trains an agent on one environment in a run folder.
struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train an agent (R2I or DreamerV3) on an environment; resumable, Ctrl-C saves and stops.",
    discussion: """
      The run folder gets config.json (the whole configuration), metrics.jsonl (one JSON object \
      per line), checkpoint/ and replay/. Ctrl-C stops after the current step and writes a \
      checkpoint; --resume continues exactly where it stopped. Plot with 'r2i plot DIR', \
      evaluate with 'r2i eval --run DIR'.
      """)

  @OptionGroup var options: TrainingOptions

  @Option(name: .customLong("run"), help: "Run folder (default runs/<env>-<backbone>-s<seed>).")
  var runFolder: String?

  @Flag(help: "Continue the run in --run from its last checkpoint.")
  var resume = false

  @Option(help: "A TrainingConfig JSON file (e.g. a run's config.json) to start from.")
  var config: String?

  @OptionGroup var threadOption: ThreadOption

  func validate() throws {
    if resume && runFolder == nil { throw ValidationError("--resume needs --run DIR (the run folder to continue)") }
    if resume && config != nil { throw ValidationError("--config cannot change a run that exists; drop it to resume") }
  }

  func folder() -> URL {
    if let runFolder { return URL(fileURLWithPath: runFolder) }
    let slug = (options.env ?? "classic/CartPole").replacingOccurrences(of: "/", with: "-")
    return URL(fileURLWithPath: "runs/\(slug)-\((options.backbone ?? .r2i).rawValue)-s\(options.seed ?? 0)")
  }

  /// The `--config` file, if given.
  func configFile() throws -> TrainingConfig? {
    guard let config else { return nil }
    guard let data = try? Data(contentsOf: URL(fileURLWithPath: config)) else {
      throw ValidationError("--config: cannot read '\(config)'; give the path of a TrainingConfig JSON file")
    }
    do {
      return try TrainingConfig.decode(data, source: config)
    } catch {
      throw ValidationError("--config: \(error)")
    }
  }

  func run() throws {
    // Under mpirun every rank runs this command: one run, its steps shared (docs/distributed.md).
    try Job.runAsRank("r2i train") { try train($0) }
  }

  func train(_ world: any Communicator) throws {
    Parallelism.setThreadCount(threadOption.count)
    let dir = folder()
    let training: TrainingRun
    if resume {
      let stored: TrainingConfig
      do {
        stored = try TrainingRun.configuration(of: dir)
      } catch {
        throw ValidationError("--run: \(error)")
      }
      if let ranks = TrainingRun.processes(of: dir),
        let problem = TrainingRun.processCountProblem(dir, trainedBy: ranks, job: world.size)
      {
        throw ValidationError("--run: \(problem)")  // a command-line mistake (64), found before loading
      }
      let wanted = try options.resumed(stored)
      do {
        try TrainingRun.checkCompatible(wanted, with: dir, allowingAdjustments: true)
      } catch let e as TrainingError {
        throw ValidationError(
          "--run: \(e); drop the flags that change it to resume it (only learning rates can change on a resume)")
      }
      training = try TrainingRun.resume(
        from: dir, steps: options.steps, minutes: options.minutes, adjusting: wanted, communicator: world)
      guard world.isRoot else { return try runQuietly(training) }
      print("resuming \(dir.path) at env step \(training.envSteps), learner step \(training.updates)")
      for a in training.config.adjustments.dropFirst(stored.adjustments.count) {
        print("\(a.setting) changed from \(a.from) to \(a.to) from env step \(a.envSteps) on (recorded in config.json)")
      }
      if TrainingRun.isFinished(training.progress, config: training.config) {
        let c = training.config
        let budget = c.minutes.map { " or \(TrainLine.format($0, 1)) min" } ?? ""
        print(
          "nothing to do: the run has its \(c.steps) env steps\(budget) (at env step \(training.envSteps), \(TrainLine.format(training.progress.seconds / 60, 1)) min); give a larger --steps or --minutes to train on"
        )
      }
    } else {
      let c = try options.newRun(from: try configFile())
      do {
        training = try TrainingRun.start(config: c, in: dir, communicator: world)
      } catch let e as TrainingError {
        if case .writeFailed = e { throw e }  // not the command line's mistake: status 1
        throw ValidationError("--run: \(e)")
      }
      guard world.isRoot else { return try runQuietly(training) }
      let ranks = world.size > 1 ? " on \(world.size) processes (each \(c.envs) envs, batch \(c.batch))" : ""
      print(
        "training \(c.backbone.rawValue) (\(c.preset), \(training.agent.parameterCount) parameters) on \(c.env): \(c.steps) env steps, \(c.envs) envs, batch \(c.batch) x \(c.length), train ratio \(c.trainRatio), seed \(c.seed)\(ranks)"
      )
      print("run folder: \(dir.path)")
      print("agent: \(try c.agentName()) (docs/presets.md; 'r2i presets' lists the paper's recipes)")
    }
    let stop = StopRequest(
      message: "stopping after this step and writing a checkpoint (a second signal quits once it is written)",
      quitMessage: "second signal: quitting")
    defer { stop.cancel() }
    try training.runPrinting(terminal: isatty(STDOUT_FILENO) != 0, stop: stop)
  }

  /// The other ranks of a job: the same run, printing nothing (rank 0 prints for all).
  func runQuietly(_ training: TrainingRun) throws {
    let stop = StopRequest(message: nil, quitMessage: nil)
    defer { stop.cancel() }
    try training.runPrinting(terminal: false, stop: stop)
  }
}
