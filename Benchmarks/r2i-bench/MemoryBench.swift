import Agent
import ArgumentParser
import CommandLineSupport
import Envs
import Foundation
import Imaging
import Tensor
import Training

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

/// RL on memory tasks: trains both backbones with the Training module under one budget and
/// reports success rates, BSuite scores and POPGym returns, with curves.
struct MemoryBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "memory",
    abstract: "Train R2I and DreamerV3 on BSuite and POPGym memory tasks under one budget; CSV, table and charts.",
    discussion: """
      Every (task, backbone, seed) trains in its own run folder under <output>/runs, as \
      'r2i train' would, until --steps or --minutes (wall-clock over all its sessions), \
      whichever comes first. The sweep is resumable: run the same command again and finished \
      runs are skipped, unfinished ones resume from their last checkpoint. --jobs runs that many \
      at once (each on cores/jobs threads; the two backbones of a task run side by side, so host \
      noise hits both alike). Ctrl-C stops every run with a checkpoint. The report (memory.csv, \
      memory.md, charts) is written at the end, or alone with --report-only.
      """)

  @Option(help: "quick (memory_len 10/30/100) or full (memory_len 10...300, discounting_chain 0-4, POPGym).")
  var mode: MemorySweep = .quick

  @Option(help: "Comma-separated environment names to run instead of the mode's (e.g. popgym/RepeatPreviousEasy).")
  var tasks: String?

  @OptionGroup var backboneOption: BackboneListOption

  @Option(help: "Comma-separated seeds, each 0...1000000.")
  var seeds = "0"

  @Option(parsing: .unconditional, help: "Wall-clock minutes per run (default: 30 quick, 60 full).")
  var minutes: Double?

  @Option(parsing: .unconditional, help: "Environment steps per run at most, 1000...10^9.")
  var steps = 1_000_000

  @Option(parsing: .unconditional, help: "Environments per run, 1...1024.")
  var envs = 4

  @Option(parsing: .unconditional, help: "Runs at once, 1...64 (each gets cores/jobs threads, at least one).")
  var jobs = 2

  @Option(
    name: .customLong("set"),
    help: "A training setting for every run, key=value with a dotted key as in 'r2i train --set' (repeatable).")
  var settings: [String] = []

  @Option(help: "Directory for run folders, logs, memory.csv, memory.md and charts.")
  var output = "results/memory"

  @Flag(help: "Write the report from the run folders that exist, without training.")
  var reportOnly = false

  func validate() throws {
    _ = try backboneOption.parsed()
    _ = try seedList()
    _ = try taskList()
    if let minutes, !(minutes > 0 && minutes <= 1e6) {
      throw ValidationError("--minutes must be in (0, 1000000], got \(minutes)")
    }
    try OptionCheck.range(steps, 1000...1_000_000_000, "--steps")
    try OptionCheck.range(envs, 1...1024, "--envs")
    try OptionCheck.range(jobs, 1...64, "--jobs")
    // Every setting must apply to a configuration (unknown keys fail now, not an hour in).
    do {
      _ = try TrainingConfig.defaults(env: try taskList()[0], backbone: .r2i).applying(settings)
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
        for backbone in try backboneOption.parsed() {
          jobList.append(MemoryJob(env: env, backbone: backbone, seed: seed, runs: runs))
        }
      }
    }
    if !reportOnly { try train(jobList) }
    try report(jobList, to: out)
  }

  /// The configuration a job trains with.
  func requested(_ job: MemoryJob) throws -> TrainingConfig {
    var c = try TrainingConfig.defaults(env: job.env, backbone: job.backbone, steps: steps, envs: envs, seed: job.seed)
    c = try c.applying(settings)
    c.minutes = budgetMinutes
    return c
  }

  /// Runs the unfinished jobs, `jobs` at a time, each in a child process.
  func train(_ jobList: [MemoryJob]) throws {
    var pending: [MemoryJob] = []
    for job in jobList {
      let c = try requested(job)
      if FileManager.default.fileExists(atPath: job.folder.appendingPathComponent("config.json").path) {
        let stored = try TrainingRun.configuration(of: job.folder)
        if let difference = stored.difference(from: c) {
          throw ValidationError(
            "\(job.folder.path) holds a run with another configuration (\(difference)); give the same --set/--envs as before, or another --output"
          )
        }
        if let p = TrainingRun.progress(of: job.folder), TrainingRun.isFinished(p, config: c) {
          print("\(job.name): finished (\(p.envSteps) env steps, \(fmt(p.seconds / 60, 1)) min), skipped")
          continue
        }
      }
      pending.append(job)
    }
    guard !pending.isEmpty else { return }
    let threads = max(1, Parallelism.onlineCores / jobs)
    let total = pending.count
    let rounds = (total + jobs - 1) / jobs
    print(
      "memory sweep on \(Machine.summary): \(total) runs, \(min(jobs, total)) at a time on \(threads) thread(s) each, \(fmt(budgetMinutes, 0)) min or \(steps) env steps per run (about \(fmt(Double(rounds) * budgetMinutes, 0)) min in all)"
    )
    print(
      "logs: \(pending[0].log.deletingLastPathComponent().path)/<run>.log; Ctrl-C stops every run with a checkpoint\n")

    let stop = StopRequest(
      message: "stopping: every run writes a checkpoint; run the same command to resume", quitMessage: nil)
    defer { stop.cancel() }

    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var running: [(MemoryJob, Process, Date)] = []
    var failed: [String] = []
    var lastStatus = Date()
    var queue = pending[...]
    while !queue.isEmpty || !running.isEmpty {
      let stopping = stop.isRequested
      while !stopping && running.count < jobs, let job = queue.popFirst() {
        let p = Process()
        p.executableURL = executable
        var args = [
          "memory-run", "--env", job.env, "--backbone", job.backbone.rawValue, "--seed", "\(job.seed)", "--run",
          job.folder.path, "--steps", "\(steps)", "--minutes", "\(budgetMinutes)", "--envs", "\(envs)", "--threads",
          "\(threads)",
        ]
        for s in settings { args += ["--set", s] }
        p.arguments = args
        try FileManager.default.createDirectory(
          at: job.log.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: job.log.path) {
          FileManager.default.createFile(atPath: job.log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: job.log)
        try handle.seekToEnd()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        print("[\(timestamp())] started \(job.name)")
        running.append((job, p, Date()))
      }
      if stopping && queue.count > 0 { queue.removeAll() }
      Thread.sleep(forTimeInterval: 2)
      if stopping { for (_, p, _) in running where p.isRunning { p.interrupt() } }
      for (job, p, _) in running where !p.isRunning {
        if p.terminationStatus == 0 {
          print("[\(timestamp())] finished \(job.name): \(statusLine(job.folder))")
        } else {
          failed.append(job.name)
          print("[\(timestamp())] FAILED \(job.name) (exit \(p.terminationStatus)); see \(job.log.path):")
          if let text = try? String(contentsOf: job.log, encoding: .utf8) {
            for line in text.split(separator: "\n").suffix(5) { print("    \(line)") }
          }
        }
      }
      running.removeAll { !$0.1.isRunning }
      if Date().timeIntervalSince(lastStatus) > 300 && !running.isEmpty {
        lastStatus = Date()
        for (job, _, _) in running { print("[\(timestamp())]   \(job.name): \(statusLine(job.folder))") }
      }
    }
    if stop.isRequested {
      print("\nstopped; run the same command to resume the unfinished runs")
    }
    if !failed.isEmpty {
      throw BenchError("\(failed.count) run(s) failed: \(failed.joined(separator: ", ")); the report covers the others")
    }
  }

  func timestamp() -> String {
    let f = DateFormatter()
    f.dateFormat = "HH:mm:ss"
    return f.string(from: Date())
  }

  /// Where a run stands, from its metrics.
  func statusLine(_ folder: URL) -> String {
    guard let r = try? RunResults.read(folder) else { return "no metrics yet" }
    let success = r.recentSuccess.map { ", success \(fmt(100 * $0, 0))%" } ?? ""
    return
      "\(r.envSteps) env steps, \(r.updates) learner steps, \(fmt(r.seconds / 60, 1)) min; last 100 episodes: score \(fmt(r.recentScore, 2))\(success)"
  }

  /// memory.csv, memory.md and the charts, from whatever the run folders hold.
  func report(_ jobList: [MemoryJob], to out: URL) throws {
    var table = ResultTable([
      "task", "backbone", "seed", "env_steps", "learner_steps", "minutes", "episodes", "success_last100",
      "return_last100", "eval_success", "eval_return", "score", "first90_minutes", "first90_learner_steps",
      "held90", "finished",
    ])
    /// One run as the report sees it, read once: its figures, whether it spent its budget, and
    /// (tasks with success only) its first 90 % window and the share of later windows held there.
    struct Reported {
      let job: MemoryJob
      let r: RunResults
      let finished: Bool
      let solved: RunResults.CurvePoint?
      let held: Double?
    }
    var results: [Reported] = []
    for job in jobList {
      guard FileManager.default.fileExists(atPath: job.folder.appendingPathComponent("metrics.jsonl").path) else {
        continue
      }
      let r: RunResults
      do {
        r = try RunResults.read(job.folder)
      } catch {
        print("\(job.name): cannot be read (\(error)); left out of the report")
        continue
      }
      let config = try requested(job)
      let finished = TrainingRun.progress(of: job.folder).map { TrainingRun.isFinished($0, config: config) } == true
      // 90 % is a success rate: tasks without success (discounting_chain, POPGym) get no window
      // rather than one comparing their mean return with 0.9.
      let hasSuccess = r.recentSuccess != nil
      let solved = hasSuccess ? r.first(reaching: 0.9) : nil
      let held = hasSuccess ? r.shareHeld(atOrAbove: 0.9) : nil
      results.append(Reported(job: job, r: r, finished: finished, solved: solved, held: held))
      let score = TaskScore.score(env: job.env, success: r.recentSuccess, meanReturn: r.recentScore)
      func opt(_ x: Double?, _ d: Int = 3) -> String { x.map { fmt($0, d) } ?? "" }
      table.add([
        job.env, job.backbone.rawValue, "\(job.seed)", "\(r.envSteps)", "\(r.updates)", fmt(r.seconds / 60, 1),
        "\(r.episodes)", opt(r.recentSuccess), fmt(r.recentScore, 3), opt(r.evaluationSuccess), opt(r.evaluationScore),
        opt(score, 2), opt(solved.map { $0.seconds / 60 }, 2), solved.map { "\($0.updates)" } ?? "",
        opt(held), finished ? "yes" : "no",
      ])
    }
    guard !results.isEmpty else {
      print("no run folders under \(out.appendingPathComponent("runs").path) yet; nothing to report")
      return
    }
    try table.writeCSV(to: out.appendingPathComponent("memory.csv"))

    // The summary: per task and backbone, the mean over seeds.
    let backbones = try backboneOption.parsed()
    var md = "# Memory benchmark\n\n"
    md +=
      "Budget per run: \(fmt(budgetMinutes, 0)) min of wall-clock or \(steps) env steps, \(envs) envs, \(jobs) run(s) at a time on \(Machine.summary).\n"
    md += "Figures over the last 100 training episodes (sampled policy), mean over seeds. Greedy eval: the last"
    md += " greedy evaluation (success, or return where the task has no success). First >= 90 %: the first"
    md += " 100-episode window at 90 % success or more (mean over the seeds that got there); held: the share"
    md += " of the later windows still at 90 % or more.\n\n"
    md +=
      "| task | backbone | success | return | greedy eval | env steps | learner steps | first >= 90 % | held |\n"
    md += "|---|---|---|---|---|---|---|---|---|\n"
    func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }
    for env in try taskList() {
      for b in backbones {
        let runs = results.filter { $0.job.env == env && $0.job.backbone == b }
        let rs = runs.map(\.r)
        guard !rs.isEmpty else { continue }
        var cells = [env, b.rawValue]
        cells.append(mean(rs.compactMap(\.recentSuccess)).map { "\(fmt(100 * $0, 0)) %" } ?? "-")
        cells.append(mean(rs.map(\.recentScore).filter(\.isFinite)).map { fmt($0, 2) } ?? "-")
        let greedy = rs.compactMap { $0.evaluationSuccess.map { 100 * $0 } ?? $0.evaluationScore }
        let hasSuccess = rs.contains { $0.recentSuccess != nil }
        cells.append(mean(greedy).map { hasSuccess ? "\(fmt($0, 0)) %" : fmt($0, 2) } ?? "-")
        cells.append(mean(rs.map { Double($0.envSteps) }).map { "\(Int($0))" } ?? "-")
        cells.append(mean(rs.map { Double($0.updates) }).map { "\(Int($0))" } ?? "-")
        if hasSuccess {
          let solved = runs.compactMap(\.solved)
          if let minutes = mean(solved.map { $0.seconds / 60 }), let steps = mean(solved.map { Double($0.updates) }) {
            let seeds = solved.count < rs.count ? ", \(solved.count) of \(rs.count) seeds" : ""
            cells.append("\(fmt(minutes, 1)) min (\(Int(steps)) learner steps\(seeds))")
          } else {
            cells.append("never")
          }
          cells.append(mean(runs.compactMap(\.held)).map { "\(fmt(100 * $0, 0)) %" } ?? "-")
        } else {
          cells += ["-", "-"]
        }
        md += "| " + cells.joined(separator: " | ") + " |\n"
      }
    }
    md += "\n"
    for b in backbones {
      let mine = results.filter { $0.job.backbone == b }
      // A score over runs still short of their budget is provisional; say how many.
      func scored(_ prefix: String) -> (scores: [Double], unfinished: Int) {
        let runs = mine.compactMap { run in
          run.job.env.hasPrefix(prefix)
            ? TaskScore.score(env: run.job.env, success: run.r.recentSuccess, meanReturn: run.r.recentScore).map {
              ($0, run.finished)
            } : nil
        }
        return (runs.map(\.0), runs.filter { !$0.1 }.count)
      }
      func runs(_ n: Int) -> String { n == 1 ? "1 run" : "\(n) runs" }
      func pending(_ n: Int) -> String { n == 0 ? "" : "; \(n) of them not finished, so the score is provisional" }
      let memory = scored("bsuite/memory_len/")
      let chain = scored("bsuite/discounting_chain/")
      if let m = mean(memory.scores) {
        md +=
          "- \(b.rawValue): BSuite memory_len score \(fmt(m, 2)) (share of the \(runs(memory.scores.count)) solved, a run counting as solved when 2 x its share of wrong episodes among the last 100 is below 0.75\(pending(memory.unfinished)))\n"
      }
      if let c = mean(chain.scores) {
        md +=
          "- \(b.rawValue): BSuite discounting_chain score \(fmt(c, 2)) (mean over \(runs(chain.scores.count))\(pending(chain.unfinished)))\n"
      }
    }
    try md.write(to: out.appendingPathComponent("memory.md"), atomically: true, encoding: .utf8)

    // Success against memory length, per backbone.
    var byLength = LineChart(
      title: "BSuite memory_len: success (last 100 episodes)", xLabel: "memory length", yLabel: "success rate",
      logX: true)
    byLength.yRange = (0, 1)
    for b in backbones {
      var points: [(Double, Double)] = []
      for env in Set(results.map(\.job.env)) {
        guard let length = TaskScore.memoryLength(of: env) else { continue }
        let s = results.filter { $0.job.env == env && $0.job.backbone == b }.compactMap(\.r.recentSuccess)
        if let m = mean(s) { points.append((Double(length), m)) }
      }
      byLength.add(series: b.rawValue, points: points.sorted { $0.0 < $1.0 })
    }
    if byLength.series.contains(where: { !$0.points.isEmpty }) {
      try byLength.writePNG(to: out.appendingPathComponent("memory_len_success.png"))
      try byLength.writeSVG(to: out.appendingPathComponent("memory_len_success.svg"))
    }

    // Learning curves per task, against env steps and against wall-clock.
    let curves = out.appendingPathComponent("curves")
    try FileManager.default.createDirectory(at: curves, withIntermediateDirectories: true)
    for env in Set(results.map(\.job.env)).sorted() {
      let mine = results.filter { $0.job.env == env }
      let what =
        mine.contains { $0.r.recentSuccess != nil } ? "success (last 100 episodes)" : "return (last 100 episodes)"
      var bySteps = LineChart(title: env, xLabel: "environment steps", yLabel: what)
      var byTime = LineChart(title: env, xLabel: "wall-clock minutes", yLabel: what)
      for run in mine {
        let (job, r) = (run.job, run.r)
        let every = max(1, r.curve.count / 400)
        let points = r.curve.enumerated().filter { $0.offset % every == 0 || $0.offset == r.curve.count - 1 }.map {
          $0.element
        }
        let label = "\(job.backbone.rawValue) s\(job.seed)"
        bySteps.add(series: label, points: points.map { (Double($0.envSteps), $0.value) })
        byTime.add(series: label, points: points.map { ($0.seconds / 60, $0.value) })
      }
      let slug = env.replacingOccurrences(of: "/", with: "-")
      for (chart, suffix) in [(bySteps, "steps"), (byTime, "time")] {
        try chart.writePNG(to: curves.appendingPathComponent("\(slug)_\(suffix).png"))
        try chart.writeSVG(to: curves.appendingPathComponent("\(slug)_\(suffix).svg"))
      }
    }
    print("\n" + table.render())
    print("\n" + md)
    print(
      "CSV: \(out.appendingPathComponent("memory.csv").path); table: memory.md; charts: memory_len_success.png, curves/"
    )
  }
}

/// One run of the memory sweep, in a child process (`r2i-bench memory` starts these): starts or
/// resumes the run folder and trains to its budget.
struct MemoryRunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "memory-run", abstract: "One run of the memory sweep (started by 'r2i-bench memory').",
    shouldDisplay: false)

  @Option var env: String
  @Option var backbone: Backbone
  @Option var seed: UInt64
  @Option(name: .customLong("run")) var runFolder: String
  @Option var steps: Int
  @Option var minutes: Double
  @Option var envs: Int
  @Option(name: .customLong("set")) var settings: [String] = []
  @OptionGroup var threadOption: ThreadOption

  func run() throws {
    Parallelism.setThreadCount(threadOption.count)
    let folder = URL(fileURLWithPath: runFolder)
    try FileManager.default.createDirectory(at: folder.deletingLastPathComponent(), withIntermediateDirectories: true)
    // One process per run folder: a second sweep on the same output waits for nobody.
    let lockPath = folder.path + ".lock"
    let fd = open(lockPath, O_CREAT | O_RDWR, 0o644)
    guard fd >= 0, flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      throw BenchError("\(folder.path) is in use by another process (lock \(lockPath)); wait for it or stop it")
    }
    defer { close(fd) }
    var c = try TrainingConfig.defaults(env: env, backbone: backbone, steps: steps, envs: envs, seed: seed)
    c = try c.applying(settings)
    c.minutes = minutes
    let (training, resumed) = try TrainingRun.open(config: c, in: folder)
    if resumed {
      print("resuming at env step \(training.collector.steps), learner step \(training.updates)")
      for w in training.warnings { print("warning: \(w)") }
    } else {
      print(
        "training \(backbone.rawValue) (\(training.agent.parameterCount) parameters) on \(env): \(steps) env steps or \(minutes) min, seed \(seed), \(threadOption.count) thread(s)"
      )
    }
    // The sweep forwards Ctrl-C to its runs as well as the terminal does: every SIGINT only asks
    // for a stop with a checkpoint.
    let stop = StopRequest(message: nil, quitMessage: nil)
    defer { stop.cancel() }
    let summary = try training.run { event in
      switch event {
      case .log(let line):
        let success = line["success_recent"]?.number.map { " success \(fmt(100 * $0, 0))%" } ?? ""
        print(
          "step \(Int(line["env_steps"]?.number ?? 0)) updates \(training.updates) | \(fmt(line["seconds"]?.number.map { $0 / 60 } ?? 0, 1)) min | \(fmt(line["steps_per_second"]?.number ?? .nan, 0)) steps/s | score (last 100) \(fmt(line["score_recent"]?.number ?? .nan, 2))\(success) | wm \(fmt(line["loss"]?.number ?? .nan, 3)) actor \(fmt(line["actor_loss"]?.number ?? .nan, 3)) critic \(fmt(line["critic_loss"]?.number ?? .nan, 3))"
        )
      case .evaluation(let e):
        print(
          "eval at step \(e.envSteps): greedy score \(fmt(e.meanScore, 2))\(e.successRate.map { ", success \(fmt(100 * $0, 0))%" } ?? "")"
        )
      default: break
      }
      return stop.isRequested ? .stop : .proceed
    }
    print(
      "\(summary.budgetReached ? "budget reached" : summary.stoppedEarly ? "stopped" : "done") at env step \(summary.envSteps): \(summary.updates) learner steps, \(summary.episodes) episodes, \(fmt(summary.seconds / 60, 1)) min"
    )
  }
}
