import ArgumentParser
import CommandLineSupport
import Foundation
import Imaging
import Training

/// Learning curves of one or more runs from their metrics.jsonl.
struct Plot: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Learning curves from runs' metrics.jsonl: score against env steps and against wall-clock (PNG and SVG).",
    discussion: """
      One line per run: the mean training episode score over a sliding window, with the run's \
      evaluations as dots of the same colour. With --metric any numeric field of the 'train' \
      lines can be drawn instead (e.g. success_recent, wm/loss, actor/entropy).
      """)

  @Argument(help: "Run folders (or metrics.jsonl files).")
  var runs: [String]

  @Option(
    help: "Output file prefix: writes <prefix>_steps.png/.svg and <prefix>_time.png/.svg (default: <first run>/curves)."
  )
  var output: String?

  @Option(help: "What to draw: 'score' (default) or a field of the train lines.")
  var metric: String = "score"

  @Option(
    parsing: .unconditional,
    help: "Sliding window of training episodes for the score when a run has no evaluations, 1...10000.")
  var window: Int = 50

  func validate() throws {
    guard !runs.isEmpty else { throw ValidationError("give at least one run folder") }
    try OptionCheck.range(window, 1...10_000, "--window")
  }

  /// One run's points: (env steps, seconds, value) of its training curve (the mean score of
  /// the last `window` training episodes, or the `metric` field of its train lines) and of its
  /// evaluations (score only).
  func points(_ url: URL) throws -> (curve: [(Double, Double, Double)], evaluations: [(Double, Double, Double)]) {
    if metric != "score" {
      // Any field, by its name in the file: the generic view of the lines.
      let curve = try MetricsLog.read(url).compactMap { r -> (Double, Double, Double)? in
        guard case .text("train")? = r["kind"], let s = r["env_steps"]?.number, let t = r["seconds"]?.number,
          let v = r[metric]?.number, v.isFinite
        else { return nil }
        return (s, t, v)
      }
      return (curve, [])
    }
    let lines = try MetricsLog.lines(url)
    let evals = lines.compactMap { line -> EvaluationLine? in
      if case .evaluation(let e) = line { return e } else { return nil }
    }
    let curve = RunResults.curve(lines, window: window)
    let every = max(1, curve.count / 500)  // at most about 500 points per line
    return (
      curve.enumerated().filter { $0.offset % every == 0 || $0.offset == curve.count - 1 }.map {
        (Double($0.element.envSteps), $0.element.seconds, $0.element.score)
      },
      evals.map { (Double($0.stamp.envSteps), $0.stamp.seconds, $0.score) }
    )
  }

  func run() throws {
    var series: [(name: String, curve: [(Double, Double, Double)], evaluations: [(Double, Double, Double)])] = []
    for path in runs {
      var url = URL(fileURLWithPath: path)
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ValidationError("\(path): no such run folder or metrics file")
      }
      if isDirectory.boolValue { url = url.appendingPathComponent("metrics.jsonl") }
      // A metrics file that cannot be read is a failure (status 1), not a usage mistake.
      let p = try points(url)
      var name = URL(fileURLWithPath: path).lastPathComponent
      if let config = try? TrainingRun.configuration(of: url.deletingLastPathComponent()) {
        name = "\((try? config.agentName()) ?? config.backbone.rawValue) \(config.env) s\(config.seed)"
      }
      if p.curve.isEmpty && p.evaluations.isEmpty { print("\(path): no '\(metric)' values yet") }
      series.append((name, p.curve, p.evaluations))
    }
    // Runs of the same backbone, task and seed are told apart by their folder names.
    let names = series.map(\.name)
    for i in series.indices where names.filter({ $0 == names[i] }).count > 1 {
      series[i].name += " (\(URL(fileURLWithPath: runs[i]).lastPathComponent))"
    }
    let what =
      metric == "score" ? "score (line: last \(window) training episodes; dots: evaluations)" : metric
    var bySteps = LineChart(title: "Learning curves", xLabel: "environment steps", yLabel: what)
    var byTime = LineChart(title: "Learning curves", xLabel: "wall-clock minutes", yLabel: what)
    for s in series {
      // A run's training curve and its evaluations share a colour.
      let evalName = s.curve.isEmpty ? s.name : "\(s.name) eval"
      if !s.curve.isEmpty {
        bySteps.add(series: s.name, points: s.curve.map { ($0.0, $0.2) }, style: .line)
        byTime.add(series: s.name, points: s.curve.map { ($0.1 / 60, $0.2) }, style: .line)
      }
      if !s.evaluations.isEmpty {
        bySteps.add(series: evalName, points: s.evaluations.map { ($0.0, $0.2) }, style: .markers, colorOf: s.name)
        byTime.add(series: evalName, points: s.evaluations.map { ($0.1 / 60, $0.2) }, style: .markers, colorOf: s.name)
      }
    }
    guard !bySteps.isEmpty else {
      print("nothing to plot yet: no run has a finished episode, train line or evaluation; no chart written")
      return
    }
    // A run folder, or a metrics file (whose folder then gets the curves).
    var first = URL(fileURLWithPath: runs[0])
    if first.pathExtension == "jsonl" { first = first.deletingLastPathComponent() }
    let prefix = output ?? first.appendingPathComponent("curves").path
    let base = URL(fileURLWithPath: prefix)
    do {
      try FileManager.default.createDirectory(
        at: base.deletingLastPathComponent(), withIntermediateDirectories: true)
    } catch {
      throw ValidationError("--output: cannot create '\(base.deletingLastPathComponent().path)'")
    }
    for (chart, suffix) in [(bySteps, "steps"), (byTime, "time")] {
      try chart.writePNG(to: URL(fileURLWithPath: "\(prefix)_\(suffix).png"))
      try chart.writeSVG(to: URL(fileURLWithPath: "\(prefix)_\(suffix).svg"))
    }
    print("wrote \(prefix)_steps.png, \(prefix)_time.png (and .svg)")
    for s in series {
      if let last = s.curve.last {
        print(
          "  \(s.name): \(s.curve.count) points, last \(String(format: "%.3f", last.2)) at step \(Int(last.0)) (\(String(format: "%.1f", last.1 / 60)) min)"
        )
      }
      if let last = s.evaluations.last {
        print(
          "  \(s.name): \(s.evaluations.count) evaluations, last \(String(format: "%.3f", last.2)) at step \(Int(last.0))"
        )
      }
    }
  }
}
