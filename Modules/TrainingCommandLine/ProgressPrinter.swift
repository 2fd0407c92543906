import ArgumentParser
import CommandLineSupport
import Foundation
import Training

/// Prints a run's events the same way in `r2i train` and in the memory sweep's runs. On a
/// terminal: one progress line redrawn in place at most twice a second (steps, pace, learner
/// steps, time so far, last score and evaluation, losses, time left) and a line per evaluation.
/// Elsewhere (a log file): the `train` lines as they are written (by steps and by time, see
/// ``TrainingConfig/logSeconds``) with the time left, evaluations and checkpoints. The time
/// left comes from the recent pace after the random prefill (``ProgressEstimate``); once it is
/// measured, a run that would take more than a day says so, once.
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
  /// Seconds on a clock that only moves forward (a test passes its own).
  let now: () -> Double
  let write: (String) -> Void
  var lastDraw = -Double.infinity
  var lastScore = Double.nan
  var lastLosses = ""
  var lastEvaluation: EvaluationReport?
  public private(set) var estimate: ProgressEstimate
  /// The run's first learner step of this session, and whether the long-run warning was given.
  var firstUpdate: (seconds: Double, updates: Int)?
  var warned = false

  /// A printer of `run`'s events; `write` receives each piece of output (default: standard
  /// output), `now` the clock the pace is measured by.
  public init(
    run: TrainingRun, terminal: Bool, now: @escaping () -> Double = { ProcessInfo.processInfo.systemUptime },
    write: @escaping (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }
  ) {
    self.run = run
    self.terminal = terminal
    self.now = now
    self.write = write
    startSteps = run.envSteps
    startUpdates = run.updates
    estimate = ProgressEstimate(prefill: run.config.prefill)
  }

  public func show(_ event: TrainingEvent) {
    switch event {
    case .episode(let e, _): lastScore = e.score
    case .update(let u):
      lastLosses = TrainLine.losses(u.metrics)
      if firstUpdate == nil { firstUpdate = (now(), u.updates) }
    case .log(let line):
      if !terminal { write("\(line) | ETA \(ProgressEstimate.duration(remaining(line.stamp.envSteps)))\n") }
    case .evaluation(let e):
      lastEvaluation = e
      write(terminal ? "\r\u{1B}[K\(e)\n" : "\(e)\n")
    case .checkpoint(let c): if !terminal { write("\(c)\n") }
    case .collected(let steps):
      estimate.observe(steps: steps, seconds: now())
      warnIfLong(steps)
      if terminal { redraw(steps) }
    }
  }

  /// Seconds left at `steps` (nil before the pace after prefill is known, without a budget).
  func remaining(_ steps: Int) -> Double? {
    estimate.remainingSeconds(
      at: steps, target: run.config.steps, elapsed: run.progress.seconds,
      budgetSeconds: run.config.minutes.map { $0 * 60 })
  }

  /// Once a minute of learning (and 10 learner steps) has been measured: a warning when the
  /// run would take more than a day at this pace.
  func warnIfLong(_ steps: Int) {
    guard !warned, let first = firstUpdate, now() - first.seconds >= 60, run.updates - first.updates >= 10,
      let left = remaining(steps)
    else { return }
    warned = true
    guard left > 86_400 else { return }
    let budget = run.config.minutes == nil ? "" : " (its wall-clock budget included)"
    write(
      "\(terminal ? "\r\u{1B}[K" : "")warning: at its pace so far this run needs \(ProgressEstimate.duration(left)) more to reach \(run.config.steps) env steps\(budget); set a budget with --minutes, fewer --steps, or a smaller --preset (compute per preset: docs/compute.md)\n"
    )
  }

  func redraw(_ steps: Int) {
    let t = now()
    guard t - lastDraw >= 0.5 else { return }
    lastDraw = t
    let rate = estimate.stepsPerSecond.map { TrainLine.format($0, 0) } ?? "-"
    let eta = steps < run.config.prefill ? "after prefill" : ProgressEstimate.duration(remaining(steps))
    let eval = lastEvaluation.map { " | eval \(TrainLine.format($0.meanScore, 2))" } ?? ""
    write(
      "\r\u{1B}[K\(steps)/\(run.config.steps) steps | \(rate) steps/s | \(run.updates) updates | \(ProgressEstimate.duration(run.progress.seconds)) | score \(TrainLine.format(lastScore, 2))\(eval) | \(lastLosses) | ETA \(eta)"
    )
  }

  /// How the run ended, where its files are, and how to go on.
  public func finish(_ summary: TrainingSummary) {
    func fmt(_ x: Double, _ d: Int) -> String { TrainLine.format(x, d) }
    func print(_ line: String) { write(line + "\n") }
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
