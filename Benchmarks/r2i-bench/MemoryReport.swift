import Agent
import Envs
import Foundation
import Imaging
import Training

/// One run of the memory sweep as the report sees it, read once: its figures, its task's
/// facts, whether it spent its budget, and (tasks with success only) its first 90 % window and
/// the share of later windows held there.
struct ReportedRun {
  let job: MemoryJob
  let r: RunResults
  let task: TaskFacts
  let finished: Bool
  let solved: RunResults.CurvePoint?
  let held: Double?
  /// The task's benchmark score over the last 100 episodes, where it has one.
  let score: Double?
  /// The agent as reports name it: "R2I" or "DreamerV3", with what departs from the paper's
  /// recipe (``TrainingConfig/agentName()``).
  let agent: String
  /// How the run evaluates.
  let evaluation: EvaluationMode

  /// Reads the run of `job`; nil (with a message) when its folder has no metrics yet or cannot
  /// be read.
  static func read(_ job: MemoryJob, config: TrainingConfig) -> ReportedRun? {
    guard FileManager.default.fileExists(atPath: RunFolder(job.folder).metricsFile.path) else { return nil }
    do {
      let r = try RunResults.read(job.folder)
      let task = try EnvRegistry.make(job.env).task
      let finished = TrainingRun.progress(of: job.folder).map { TrainingRun.isFinished($0, config: config) } == true
      // 90 % is a success rate: tasks without success (discounting_chain, POPGym) get no window
      // rather than one comparing their mean return with 0.9.
      let hasSuccess = r.recentSuccess != nil
      return ReportedRun(
        job: job, r: r, task: task, finished: finished, solved: hasSuccess ? r.first(reaching: 0.9) : nil,
        held: hasSuccess ? r.shareHeld(atOrAbove: 0.9) : nil,
        score: task.score?.score(success: r.recentSuccess, meanReturn: r.recentScore), agent: try config.agentName(),
        evaluation: config.evaluation)
    } catch {
      print("\(job.name): cannot be read (\(error)); left out of the report")
      return nil
    }
  }
}

/// The memory sweep's report: `memory.csv` (one row per run), `memory.md` (per task and
/// backbone, means over seeds, and the BSuite scores), success against memory length and the
/// learning curves, written from whatever the run folders hold.
struct MemoryReport {
  let runs: [ReportedRun]
  let tasks: [String]
  let backbones: [Backbone]
  /// The budget line of `memory.md`.
  let budget: String

  func write(to out: URL) throws {
    let table = csv()
    try table.writeCSV(to: out.appendingPathComponent("memory.csv"))
    let md = markdown()
    try md.write(to: out.appendingPathComponent("memory.md"), atomically: true, encoding: .utf8)
    try lengthChart(to: out)
    try curves(to: out.appendingPathComponent("curves"))
    print("\n" + table.render())
    print("\n" + md)
    print(
      "CSV: \(out.appendingPathComponent("memory.csv").path); table: memory.md; charts: memory_len_success.png, curves/"
    )
  }

  func csv() -> ResultTable {
    var table = ResultTable([
      "task", "backbone", "agent", "seed", "env_steps", "learner_steps", "minutes", "episodes", "success_last100",
      "return_last100", "eval_success", "eval_return", "score", "first90_minutes", "first90_learner_steps",
      "held90", "finished",
    ])
    func opt(_ x: Double?, _ d: Int = 3) -> String { x.map { fmt($0, d) } ?? "" }
    for run in runs {
      let (job, r) = (run.job, run.r)
      table.add([
        job.env, job.backbone.rawValue, run.agent, "\(job.seed)", "\(r.envSteps)", "\(r.updates)",
        fmt(r.seconds / 60, 1),
        "\(r.episodes)", opt(r.recentSuccess), fmt(r.recentScore, 3), opt(r.evaluationSuccess), opt(r.evaluationScore),
        opt(run.score, 2), opt(run.solved.map { $0.seconds / 60 }, 2), run.solved.map { "\($0.updates)" } ?? "",
        opt(run.held), run.finished ? "yes" : "no",
      ])
    }
    return table
  }

  static func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }

  func markdown() -> String {
    var md = "# Memory benchmark\n\n"
    md += budget + "\n"
    md += "Figures over the last 100 training episodes (sampled policy), mean over seeds. Eval: the last"
    md += " evaluation (success, or return where the task has no success), with the policy's samples or"
    md += " greedy as the run's `evaluation` setting says. Agent: \"R2I\" or \"DreamerV3\" alone is the paper's"
    md +=
      " recipe for the task; otherwise the name lists what departs from it (docs/presets.md). First >= 90 %: the first"
    md += " 100-episode window at 90 % success or more (mean over the seeds that got there); held: the share"
    md += " of the later windows still at 90 % or more.\n\n"
    md +=
      "| task | agent | success | return | eval | env steps | learner steps | first >= 90 % | held |\n"
    md += "|---|---|---|---|---|---|---|---|---|\n"
    for env in tasks {
      for b in backbones {
        let mine = runs.filter { $0.job.env == env && $0.job.backbone == b }
        if !mine.isEmpty { md += "| " + row(env, mine).joined(separator: " | ") + " |\n" }
      }
    }
    md += "\n"
    for b in backbones { md += scores(b) }
    return md
  }

  /// The table row of one task and backbone.
  func row(_ env: String, _ runs: [ReportedRun]) -> [String] {
    let mean = Self.mean
    let rs = runs.map(\.r)
    let names = Set(runs.map(\.agent)).sorted()
    let modes = Set(runs.map(\.evaluation))
    var cells = [env, names.joined(separator: " / ")]
    cells.append(mean(rs.compactMap(\.recentSuccess)).map { "\(fmt(100 * $0, 0)) %" } ?? "-")
    cells.append(mean(rs.map(\.recentScore).filter(\.isFinite)).map { fmt($0, 2) } ?? "-")
    let evaluated = rs.compactMap { $0.evaluationSuccess.map { 100 * $0 } ?? $0.evaluationScore }
    let hasSuccess = rs.contains { $0.recentSuccess != nil }
    let greedy = modes == [.greedy] ? " (greedy)" : modes.count > 1 ? " (mixed)" : ""
    cells.append(mean(evaluated).map { (hasSuccess ? "\(fmt($0, 0)) %" : fmt($0, 2)) + greedy } ?? "-")
    cells.append(mean(rs.map { Double($0.envSteps) }).map { "\(Int($0))" } ?? "-")
    cells.append(mean(rs.map { Double($0.updates) }).map { "\(Int($0))" } ?? "-")
    guard hasSuccess else { return cells + ["-", "-"] }
    let solved = runs.compactMap(\.solved)
    if let minutes = mean(solved.map { $0.seconds / 60 }), let steps = mean(solved.map { Double($0.updates) }) {
      let seeds = solved.count < rs.count ? ", \(solved.count) of \(rs.count) seeds" : ""
      cells.append("\(fmt(minutes, 1)) min (\(Int(steps)) learner steps\(seeds))")
    } else {
      cells.append("never")
    }
    cells.append(mean(runs.compactMap(\.held)).map { "\(fmt(100 * $0, 0)) %" } ?? "-")
    return cells
  }

  /// The BSuite score lines of one backbone (a score over runs still short of their budget is
  /// provisional; the line says how many).
  func scores(_ b: Backbone) -> String {
    let mine = runs.filter { $0.job.backbone == b }
    func scored(_ matches: (BenchmarkScore) -> Bool) -> (scores: [Double], unfinished: Int) {
      let picked = mine.filter { $0.task.score.map(matches) == true }.compactMap { run in
        run.score.map { ($0, run.finished) }
      }
      return (picked.map(\.0), picked.filter { !$0.1 }.count)
    }
    func count(_ n: Int) -> String { n == 1 ? "1 run" : "\(n) runs" }
    func pending(_ n: Int) -> String { n == 0 ? "" : "; \(n) of them not finished, so the score is provisional" }
    let memory = scored { if case .bsuiteMemoryLength = $0 { return true } else { return false } }
    let chain = scored { $0 == .bsuiteDiscountingChain }
    var md = ""
    if let m = Self.mean(memory.scores) {
      md +=
        "- \(b.rawValue): BSuite memory_len score \(fmt(m, 2)) (share of the \(count(memory.scores.count)) solved, a run counting as solved when 2 x its share of wrong episodes among the last 100 is below 0.75\(pending(memory.unfinished)))\n"
    }
    if let c = Self.mean(chain.scores) {
      md +=
        "- \(b.rawValue): BSuite discounting_chain score \(fmt(c, 2)) (mean over \(count(chain.scores.count))\(pending(chain.unfinished)))\n"
    }
    return md
  }

  /// Success against memory length, per backbone (`memory_len_success.png` and `.svg`).
  func lengthChart(to out: URL) throws {
    var chart = LineChart(
      title: "BSuite memory_len: success (last 100 episodes)", xLabel: "memory length", yLabel: "success rate",
      logX: true)
    chart.yRange = (0, 1)
    for b in backbones {
      var lengths: [Int: [Double]] = [:]
      for run in runs where run.job.backbone == b {
        guard case .bsuiteMemoryLength(let length)? = run.task.score, let s = run.r.recentSuccess else { continue }
        lengths[length, default: []].append(s)
      }
      let points = lengths.compactMap { l, s in Self.mean(s).map { (Double(l), $0) } }
      chart.add(series: b.rawValue, points: points.sorted { $0.0 < $1.0 })
    }
    guard !chart.isEmpty else { return }
    try chart.writePNG(to: out.appendingPathComponent("memory_len_success.png"))
    try chart.writeSVG(to: out.appendingPathComponent("memory_len_success.svg"))
  }

  /// Learning curves per task, against env steps and against wall-clock, in `directory`.
  func curves(to directory: URL) throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    for env in Set(runs.map(\.job.env)).sorted() {
      let mine = runs.filter { $0.job.env == env }
      let what =
        mine.contains { $0.r.recentSuccess != nil } ? "success (last 100 episodes)" : "return (last 100 episodes)"
      var bySteps = LineChart(title: env, xLabel: "environment steps", yLabel: what)
      var byTime = LineChart(title: env, xLabel: "wall-clock minutes", yLabel: what)
      for run in mine {
        let curve = run.r.curve
        let every = max(1, curve.count / 400)
        let points = curve.enumerated().filter { $0.offset % every == 0 || $0.offset == curve.count - 1 }.map(\.element)
        let label = "\(run.job.backbone.rawValue) s\(run.job.seed)"
        bySteps.add(series: label, points: points.map { (Double($0.envSteps), $0.value) }, style: .line)
        byTime.add(series: label, points: points.map { ($0.seconds / 60, $0.value) }, style: .line)
      }
      let slug = env.replacingOccurrences(of: "/", with: "-")
      for (chart, suffix) in [(bySteps, "steps"), (byTime, "time")] where !chart.isEmpty {
        try chart.writePNG(to: directory.appendingPathComponent("\(slug)_\(suffix).png"))
        try chart.writeSVG(to: directory.appendingPathComponent("\(slug)_\(suffix).svg"))
      }
    }
  }
}
