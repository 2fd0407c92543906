import ArgumentParser
import CommandLineSupport
import Distributed
import Foundation
import Tensor
import Training
import TrainingCommandLine

/// One run of the memory sweep, in a child process (`r2i-bench memory` starts these): starts or
/// resumes the run folder with the options `r2i train` takes and trains to its budget, printing
/// as `r2i train` prints into a log.
struct MemoryRunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "memory-run", abstract: "One run of the memory sweep (started by 'r2i-bench memory').",
    shouldDisplay: false)

  @OptionGroup var options: TrainingOptions
  @Option(name: .customLong("run")) var runFolder: String
  @OptionGroup var threadOption: ThreadOption
  @Flag(help: "Write the per-arm diagnostic (ArmProbe) to arms.jsonl at every metrics line.")
  var probeArms = false

  func run() throws {
    // Under mpirun (r2i-bench memory --mpi N) every rank runs this: one data-parallel run.
    try Job.runAsRank("memory-run") { try train($0) }
  }

  func train(_ world: any Communicator) throws {
    Parallelism.setThreadCount(threadOption.count)
    let folder = URL(fileURLWithPath: runFolder)
    if world.isRoot {
      try FileManager.default.createDirectory(
        at: folder.deletingLastPathComponent(), withIntermediateDirectories: true)
    }
    let (training, resumed) = try TrainingRun.open(config: try options.newRun(), in: folder, communicator: world)
    if world.isRoot && resumed {
      print("resuming at env step \(training.envSteps), learner step \(training.updates)")
    } else if world.isRoot {
      let c = training.config
      let ranks = world.size > 1 ? " x \(world.size) processes" : ""
      print(
        "training \(c.backbone.rawValue) (\(training.agent.parameterCount) parameters) on \(c.env): \(c.steps) env steps or \(c.minutes.map { "\($0)" } ?? "no") min, seed \(c.seed), \(threadOption.count) thread(s)\(ranks)"
      )
    }
    // The sweep forwards Ctrl-C to its runs as well as the terminal does: every SIGINT only asks
    // for a stop with a checkpoint.
    let stop = StopRequest(message: nil, quitMessage: nil)
    defer { stop.cancel() }
    let arms =
      probeArms && world.isRoot
      ? try ArmProbe.open(folder.appendingPathComponent("arms.jsonl"), keepingUpTo: training.envSteps) : nil
    defer { try? arms?.close() }
    let probe = arms == nil ? nil : ArmProbe.learner(for: training.agent)
    try training.runPrinting(terminal: false, stop: stop) { event in
      guard let arms, let probe, case .log = event else { return }
      do {
        let reading = try ArmProbe.read(
          agent: training.agent, learner: probe, env: training.config.env, envSteps: training.envSteps)
        try ArmProbe.append(reading, to: arms)
      } catch {
        print("arm probe: \(error)")
      }
    }
  }
}
