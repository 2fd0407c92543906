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
  let startUpdates: Int
  let start = Date()
  var lastDraw = Date.distantPast
  var lastScore = Double.nan
  var lastLosses = ""

  public init(run: TrainingRun, terminal: Bool) {
    self.run = run
    self.terminal = terminal
    startSteps = run.envSteps
    startUpdates = run.updates
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
    let ranks = run.communicator.size
    let learned = run.updates - startUpdates
    if ranks > 1 && learned > 0 {
      // The gradient sums, waits for the slower rank included.
      let c = run.communicator.statistics
      print(
        "this session on \(ranks) processes: gradient sums \(fmt(1000 * c.sumSeconds / Double(learned), 1)) ms per learner step (\(fmt(Double(c.sumBytes) / Double(learned) / 1e6, 1)) MB), other collectives \(fmt(1000 * c.otherSeconds / Double(learned), 1)) ms"
      )
    }
    let path = run.directory.path
    print("checkpoint and metrics in \(path); plot with: r2i plot \(path)")
    let train = ranks > 1 ? "mpirun -np \(ranks) r2i train" : "r2i train"
    if summary.budgetReached {
      print("train longer with: \(train) --run \(path) --resume --minutes M")
    } else if summary.stoppedEarly {
      print("resume with: \(train) --run \(path) --resume")
    }
  }
}

extension TrainingRun {
  /// Trains to the end, the budget or a stop signal, printing every event as ``ProgressPrinter``
  /// does (`terminal`: redrawn in place; else log lines) and the summary after. From the first
  /// signal on, the run stops after its step and a second signal waits for the checkpoint that
  /// stop writes; a run stopped by a signal exits with status 130. `onEvent` sees every event
  /// after it is printed.
  public func runPrinting(
    terminal: Bool, stop: StopRequest, onEvent: (TrainingEvent) -> Void = { _ in }
  ) throws {
    // In a job of several processes rank 0 prints for all.
    let printer = communicator.rank == 0 ? ProgressPrinter(run: self, terminal: terminal) : nil
    var stopping = false
    defer { if stopping { stop.protect(false) } }
    let summary = try run { event in
      printer?.show(event)
      onEvent(event)
      if stop.isRequested && !stopping {
        stopping = true
        stop.protect(true)
      }
      return stopping ? .stop : .proceed
    }
    printer?.finish(summary)
    if stopping { throw ExitCode(130) }
  }
}
