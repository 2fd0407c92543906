import ArgumentParser
import CommandLineSupport
import Foundation
import Training

/// Prints a run's events the same way in `r2i train` and in the memory sweep's runs. On a
/// terminal: one progress line redrawn in place at most twice a second (steps, pace, learner
/// steps, last score, losses, time left) and a line per evaluation. Elsewhere (a log file): the
/// `train` lines as they are written, evaluations and checkpoints.
///
/// ```swift
/// let printer = ProgressPrinter(run: run, terminal: isatty(STDOUT_FILENO) != 0)
/// let summary = try run.run { printer.show($0); return .proceed }
/// printer.finish(summary)
/// ```
public final class ProgressPrinter {
  let run: TrainingRun
  let terminal: Bool
  let startSteps: Int
  let start = Date()
  var lastDraw = Date.distantPast
  var lastScore = Double.nan
  var lastLosses = ""

  public init(run: TrainingRun, terminal: Bool) {
    self.run = run
    self.terminal = terminal
    startSteps = run.collector.steps
  }

  public func show(_ event: TrainingEvent) {
    switch event {
    case .episode(let e, _): lastScore = e.score
    case .update(let u): lastLosses = TrainLine.losses(u.metrics)
    case .log(let line): if !terminal { print(line) }
    case .evaluation(let e): print(terminal ? "\r\u{1B}[K\(e)" : "\(e)")
    case .checkpoint(let c): if !terminal { print(c) }
    case .collected(let steps): if terminal { redraw(steps) }
    }
  }

  func redraw(_ steps: Int) {
    guard Date().timeIntervalSince(lastDraw) > 0.5 else { return }
    lastDraw = Date()
    let rate = Double(steps - startSteps) / max(1e-9, Date().timeIntervalSince(start))
    let eta = rate > 0 ? Double(run.config.steps - steps) / rate : .nan
    let line =
      "\r\u{1B}[K\(steps)/\(run.config.steps) steps | \(TrainLine.format(rate, 0)) steps/s | \(run.updates) updates | last score \(TrainLine.format(lastScore, 2)) | \(lastLosses) | ETA \(TrainLine.format(eta / 60, 1)) min"
    FileHandle.standardOutput.write(Data(line.utf8))
  }

  /// How the run ended, where its files are, and how to go on.
  public func finish(_ summary: TrainingSummary) {
    func fmt(_ x: Double, _ d: Int) -> String { TrainLine.format(x, d) }
    if terminal { print("") }
    let ended = summary.budgetReached ? "wall-clock budget reached" : summary.stoppedEarly ? "stopped" : "done"
    print(
      "\(ended) at env step \(summary.envSteps): \(summary.updates) learner steps, \(summary.episodes) episodes, \(fmt(summary.seconds / 60, 1)) min in all"
    )
    let success = summary.recentSuccess.map { ", success \(fmt(100 * $0, 0))%" } ?? ""
    print("score of the last \(min(100, summary.episodes)) episodes: \(fmt(summary.recentScore, 2))\(success)")
    if let e = summary.lastEvaluation { print("last evaluation: \(e)") }
    let path = run.directory.path
    print("checkpoint and metrics in \(path); plot with: r2i plot \(path)")
    if summary.budgetReached {
      print("train longer with: r2i train --run \(path) --resume --minutes M")
    } else if summary.stoppedEarly {
      print("resume with: r2i train --run \(path) --resume")
    }
  }
}

extension TrainingRun {
  /// Trains to the end, the budget or a stop signal, printing every event as ``ProgressPrinter``
  /// does (`terminal`: redrawn in place; else log lines) and the summary after. From the first
  /// signal on, the run stops after its step and a second signal waits for the checkpoint that
  /// stop writes; a run stopped by a signal exits with status 130.
  public func runPrinting(terminal: Bool, stop: StopRequest) throws {
    let printer = ProgressPrinter(run: self, terminal: terminal)
    var stopping = false
    defer { if stopping { stop.protect(false) } }
    let summary = try run { event in
      printer.show(event)
      if stop.isRequested && !stopping {
        stopping = true
        stop.protect(true)
      }
      return stopping ? .stop : .proceed
    }
    printer.finish(summary)
    if stopping { throw ExitCode(130) }
  }
}
