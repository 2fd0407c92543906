import Agent
import ArgumentParser
import CommandLineSupport
import Envs
import Foundation
import Tensor
import Training
import TrainingCommandLine

/// The sets of tasks the memory benchmark trains on.
enum MemorySweep: String, CaseIterable, ExpressibleByArgument {
  /// BSuite memory_len 10, 30, 100: about 90 minutes on 2 cores at the default budget.
  case quick
  /// BSuite memory_len 10 ... 300 and discounting_chain (reward delays 1 ... 100), and the POPGym
  /// memory tasks of the R2I paper.
  case full

  var tasks: [String] {
    let lengths = self == .quick ? [10, 30, 100] : [10, 30, 100, 300]
    var tasks = lengths.map { "bsuite/memory_len/\($0)" }
    if self == .full {
      tasks += (0...4).map { "bsuite/discounting_chain/\($0)" }
      tasks += [
        "RepeatPreviousEasy", "RepeatPreviousMedium", "RepeatPreviousHard", "RepeatFirstEasy", "AutoencodeEasy",
        "AutoencodeMedium", "ConcentrationMedium", "CountRecallEasy",
      ].map { "popgym/\($0)" }
    }
    return tasks
  }

  /// Minutes of wall-clock per run by default.
  var minutes: Double { self == .quick ? 30 : 60 }
}

/// One run of the sweep: a task, a backbone and a seed, in its own run folder.
struct MemoryJob {
  let env: String
  let backbone: Backbone
  let seed: UInt64
  /// `<runs>/<env with dashes>-<backbone>-s<seed>`.
  let folder: URL

  init(env: String, backbone: Backbone, seed: UInt64, runs: URL) {
    self.env = env
    self.backbone = backbone
    self.seed = seed
    folder = runs.appendingPathComponent(
      "\(env.replacingOccurrences(of: "/", with: "-"))-\(backbone.rawValue)-s\(seed)")
  }

  var name: String { folder.lastPathComponent }
  /// The run's output, beside its folder.
  var log: URL { folder.deletingLastPathComponent().appendingPathComponent("\(name).log") }
}

/// RL on memory tasks: trains the backbones with the Training module under one budget and
/// reports success rates, BSuite scores and POPGym returns, with curves.
struct MemoryBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "memory",
    abstract:
      "Train R2I and DreamerV3 (and with --backbones the Transformer) on BSuite and POPGym memory tasks under one budget; CSV, table and charts.",
    discussion: """
      Every (task, backbone, seed) trains in its own run folder under <output>/runs, as \
      'r2i train' would, until --steps or --minutes (wall-clock over all its sessions), \
      whichever comes first. The sweep is resumable: run the same command again and finished \
      runs are skipped, unfinished ones resume from their last checkpoint. --jobs runs that many \
      at once (each on cores/jobs threads; the backbones of a task run side by side, so host \
      noise hits both alike). Ctrl-C stops every run with a checkpoint. The report (memory.csv, \
      memory.md, charts) is written at the end, or alone with --report-only.
      """)

  @Option(help: "quick (memory_len 10/30/100) or full (memory_len 10...300, discounting_chain 0-4, POPGym).")
  var mode: MemorySweep = .quick

  @Option(help: "Comma-separated environment names to run instead of the mode's (e.g. popgym/RepeatPreviousEasy).")
  var tasks: String?

  /// `--backbones`; without it R2I and DreamerV3 (add `transformer` for the third).
  @OptionGroup var backboneOption: BackboneListOption
  static let defaultBackbones: [Backbone] = [.r2i, .dreamerv3]

  @Option(help: "Comma-separated seeds, each 0...1000000.")
  var seeds = "0"

  @Option(parsing: .unconditional, help: "Wall-clock minutes per run (default: 30 quick, 60 full).")
  var minutes: Double?

  @Option(parsing: .unconditional, help: "Environment steps per run at most, 1000...10^9.")
  var steps = 1_000_000

  @Option(parsing: .unconditional, help: "Environments per run, 1...1024 (default 4, or the recipe's with --preset).")
  var envs: Int?

  @Option(
    help:
      "Preset of every run: small (default; this project's CPU settings) or one of the paper's recipes (bsuite, popgym, ...; 'r2i presets')."
  )
  var preset: AgentPreset?

  @Option(
    help: "Model sizes of this preset with every other setting from --preset (e.g. --preset bsuite --sizes small).")
  var sizes: AgentPreset?

  @Option(parsing: .unconditional, help: "Runs at once, 1...64 (each gets cores/jobs threads, at least one).")
  var jobs = 2

  @Option(
    parsing: .unconditional,
    help:
      "Processes per run, 1...64: above 1 each run trains under mpirun as one data-parallel job (its batch per process; docs/distributed.md)."
  )
  var mpi = 1

  @Option(
    name: .customLong("set"),
    help: "A training setting for every run, key=value with a dotted key as in 'r2i train --set' (repeatable).")
  var settings: [String] = []

  @Option(help: "Directory for run folders, logs, memory.csv, memory.md and charts.")
  var output = "results/memory"

  @Flag(help: "Write the report from the run folders that exist, without training.")
  var reportOnly = false

  @Flag(
    help:
      "Record the per-arm diagnostic in every run (arms.jsonl: the policy at the reset state and each first action's imagined return, at every metrics line); tasks with one discrete action per step."
  )
  var probeArms = false

  func validate() throws {
    _ = try backboneOption.parsed(default: Self.defaultBackbones)
    _ = try seedList()
    _ = try taskList()
    if let minutes, !(minutes > 0 && minutes <= 1e6) {
      throw ValidationError("--minutes must be in (0, 1000000], got \(minutes)")
    }
    try OptionCheck.range(steps, 1000...1_000_000_000, "--steps")
    if let envs { try OptionCheck.range(envs, 1...1024, "--envs") }
    try OptionCheck.range(jobs, 1...64, "--jobs")
    try OptionCheck.range(mpi, 1...64, "--mpi")
    if mpi > 1 && MPILauncher.mpirun == nil {
      throw ValidationError(
        "--mpi needs mpirun: install Open MPI (apt-get install openmpi-bin, or ./Tools/dev.sh deps)")
    }
    // Every setting must apply to a configuration (unknown keys fail now, not an hour in).
    do {
      _ = try TrainingConfig.defaults(env: try taskList()[0], backbone: .r2i, preset: preset ?? .small)
        .applying(settings)
    } catch {
      throw ValidationError("--set: \(error)")
    }
  }

  func seedList() throws -> [UInt64] {
    try OptionCheck.integers(seeds, 0...1_000_000, "--seeds").map { UInt64($0) }
  }

  func taskList() throws -> [String] {
    guard let tasks else { return mode.tasks }
    let names = tasks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    guard !names.isEmpty, !names.contains(where: \.isEmpty) else {
      throw ValidationError("--tasks: give comma-separated environment names, e.g. bsuite/memory_len/10")
    }
    for n in names {
      do {
        _ = try EnvRegistry.make(n)
      } catch {
        throw ValidationError("--tasks: \(error)")
      }
    }
    return names
  }

  var budgetMinutes: Double { minutes ?? mode.minutes }

  func run() throws {
    let out = try prepareOutputDirectory(output)
    let runs = out.appendingPathComponent("runs")
    var jobList: [MemoryJob] = []
    for env in try taskList() {
      for seed in try seedList() {
        for backbone in try backboneOption.parsed(default: Self.defaultBackbones) {
          jobList.append(MemoryJob(env: env, backbone: backbone, seed: seed, runs: runs))
        }
      }
    }
    if !reportOnly { try train(jobList) }
    let reported = try jobList.compactMap { ReportedRun.read($0, config: try requested($0)) }
    guard !reported.isEmpty else {
      print("no run folders under \(out.appendingPathComponent("runs").path) yet; nothing to report")
      return
    }
    let budget =
      "Budget per run: \(fmt(budgetMinutes, 0)) min of wall-clock or \(steps) env steps, \(envs.map { "\($0)" } ?? "the preset's") envs, \(jobs) run(s) at a time on \(Machine.summary)."
    try MemoryReport(
      runs: reported, tasks: try taskList(), backbones: try backboneOption.parsed(default: Self.defaultBackbones),
      budget: budget
    )
    .write(to: out)
  }

  /// The training options of a job's run: what `memory-run` is given, so that the sweep and
  /// the run build the configuration from the same arguments.
  func runOptions(_ job: MemoryJob) -> [String] {
    var args = [
      "--env", job.env, "--backbone", job.backbone.rawValue, "--seed", "\(job.seed)", "--steps", "\(steps)",
      "--minutes", "\(budgetMinutes)",
    ]
    if let envs { args += ["--envs", "\(envs)"] }
    if let preset { args += ["--preset", preset.rawValue] }
    if let sizes { args += ["--sizes", sizes.rawValue] }
    for s in settings { args += ["--set", s] }
    return args
  }

  /// The configuration a job trains with.
  func requested(_ job: MemoryJob) throws -> TrainingConfig {
    try TrainingOptions.parse(runOptions(job)).newRun()
  }

  /// The `memory-run` arguments of a job.
  func arguments(_ job: MemoryJob, threads: Int) -> [String] {
    ["memory-run"] + runOptions(job) + ["--run", job.folder.path, "--threads", "\(threads)"]
      + (probeArms ? ["--probe-arms"] : [])
  }

  /// A job as a child process: this executable, or `mpi` ranks of it under mpirun.
  func child(_ job: MemoryJob, threads: Int) -> ChildJob {
    let args = arguments(job, threads: threads)
    guard mpi > 1, let mpirun = MPILauncher.mpirun else {
      return ChildJob(name: job.name, arguments: args, log: job.log)
    }
    return ChildJob(
      name: job.name, arguments: MPILauncher.arguments(ranks: mpi) + [ChildProcessPool.executable().path] + args,
      log: job.log, launcher: mpirun)
  }

  /// Runs the unfinished jobs, `jobs` at a time, each in a child process.
  func train(_ jobList: [MemoryJob]) throws {
    var pending: [MemoryJob] = []
    for job in jobList {
      let c = try requested(job)
      if FileManager.default.fileExists(atPath: RunFolder(job.folder).configFile.path) {
        do {
          try TrainingRun.checkCompatible(c, with: job.folder)
        } catch {
          throw ValidationError("\(error); give the same --set/--envs as before, or another --output")
        }
        if let ranks = TrainingRun.processes(of: job.folder), ranks != mpi {
          throw ValidationError(
            "\(job.name) was trained by \(ranks) process(es); give --mpi \(ranks) to resume it, or another --output")
        }
        if let p = TrainingRun.progress(of: job.folder), TrainingRun.isFinished(p, config: c) {
          print("\(job.name): finished (\(p.envSteps) env steps, \(fmt(p.seconds / 60, 1)) min), skipped")
          continue
        }
      }
      pending.append(job)
    }
    guard !pending.isEmpty else { return }
    let threads = max(1, Parallelism.onlineCores / (jobs * mpi))
    let rounds = (pending.count + jobs - 1) / jobs
    print(
      "memory sweep on \(Machine.summary): \(pending.count) runs, \(min(jobs, pending.count)) at a time on \(mpi > 1 ? "\(mpi) processes x " : "")\(threads) thread(s) each, \(fmt(budgetMinutes, 0)) min or \(steps) env steps per run (about \(fmt(Double(rounds) * budgetMinutes, 0)) min in all)"
    )
    print(
      "logs: \(pending[0].log.deletingLastPathComponent().path)/<run>.log; Ctrl-C stops every run with a checkpoint\n")
    let children = pending.map { child($0, threads: threads) }
    let folders = Dictionary(uniqueKeysWithValues: pending.map { ($0.name, $0.folder) })
    let pool = ChildProcessPool(limit: jobs) { job in Self.statusLine(folders[job.name]!) }
    let (failed, stopped) = try pool.run(children)
    if stopped { print("\nstopped; run the same command to resume the unfinished runs") }
    if !failed.isEmpty {
      throw BenchError("\(failed.count) run(s) failed: \(failed.joined(separator: ", ")); the report covers the others")
    }
  }

  /// Where a run stands, from its metrics.
  static func statusLine(_ folder: URL) -> String {
    guard let r = try? RunResults.read(folder) else { return "no metrics yet" }
    let success = r.recentSuccess.map { ", success \(fmt(100 * $0, 0))%" } ?? ""
    return
      "\(r.envSteps) env steps, \(r.updates) learner steps, \(fmt(r.seconds / 60, 1)) min; last 100 episodes: score \(fmt(r.recentScore, 2))\(success)"
  }
}
