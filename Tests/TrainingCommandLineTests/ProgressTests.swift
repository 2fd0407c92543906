import Foundation
import TestSupport
import Testing
import Training
import TrainingCommandLine

@Suite struct ProgressEstimateTests {
  /// A prefill of 100 steps at 1,000 steps/s, then learning at 10 steps/s: the rate and the
  /// time left are the learning ones; the fast prefill is not counted.
  @Test func theTimeLeftIgnoresThePrefill() throws {
    var e = ProgressEstimate(prefill: 100, window: 120)
    var t = 0.0
    for steps in stride(from: 0, to: 100, by: 4) {
      e.observe(steps: steps, seconds: t)
      t += 0.004
    }
    #expect(e.stepsPerSecond == nil)
    #expect(e.remainingSeconds(at: 96, target: 1000, elapsed: 0.1, budgetSeconds: nil) == nil)
    #expect(e.remainingSeconds(at: 96, target: 1000, elapsed: 10, budgetSeconds: 60) == 50)
    for steps in stride(from: 100, through: 200, by: 4) {
      e.observe(steps: steps, seconds: t)
      t += 0.4
    }
    let rate = try #require(e.stepsPerSecond)
    #expect(abs(rate - 10) < 1e-9)
    let left = try #require(e.remainingSeconds(at: 200, target: 1000, elapsed: 20, budgetSeconds: nil))
    #expect(abs(left - 80) < 1e-9)
    // A budget that ends first wins; a finished run has nothing left.
    #expect(e.remainingSeconds(at: 200, target: 1000, elapsed: 20, budgetSeconds: 50) == 30)
    #expect(e.remainingSeconds(at: 1000, target: 1000, elapsed: 20, budgetSeconds: nil) == 0)
  }

  /// After the pace doubles, the rate follows within the window.
  @Test func theRateFollowsTheRecentPace() throws {
    var e = ProgressEstimate(prefill: 0, window: 60)
    var (steps, t) = (0, 0.0)
    for _ in 0..<300 {
      e.observe(steps: steps, seconds: t)
      steps += 10
      t += 1
    }
    #expect(abs((e.stepsPerSecond ?? 0) - 10) < 1e-9)
    for _ in 0..<100 {
      e.observe(steps: steps, seconds: t)
      steps += 20
      t += 1
    }
    #expect(abs((e.stepsPerSecond ?? 0) - 20) < 0.5)
  }

  @Test func durationsReadNaturally() {
    #expect(ProgressEstimate.duration(45) == "45 s")
    #expect(ProgressEstimate.duration(12 * 60) == "12 min")
    #expect(ProgressEstimate.duration(3900) == "1 h 05 min")
    #expect(ProgressEstimate.duration(3 * 86_400) == "3.0 days")
    #expect(ProgressEstimate.duration(nil) == "-")
  }
}

@Suite(.serialized) struct ProgressPrinterTests {
  final class Output: @unchecked Sendable {
    var text = ""
  }

  /// A clock that moves 100,000 s per step: once a minute of learning is measured, the printer
  /// warns, once, that the run needs days; log lines carry the time left.
  @Test func aRunThatWouldTakeDaysIsNamedOnce() throws {
    var config = try TinyConfigs.training(steps: 240)
    config.evalEvery = 0
    let folder = temporaryFolder("printer")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    let out = Output()
    var now = 0.0
    let printer = ProgressPrinter(run: run, terminal: false, now: { now }, write: { out.text += $0 })
    let summary = try run.run { event in
      printer.show(event)
      if case .collected = event { now += 100_000 }
      return .proceed
    }
    printer.finish(summary)
    let warnings = out.text.components(separatedBy: "\n").filter { $0.hasPrefix("warning:") }
    #expect(warnings.count == 1, "\(out.text)")
    #expect(warnings.first?.contains("days") == true && warnings.first?.contains("--minutes") == true)
    let logLines = out.text.components(separatedBy: "\n").filter { $0.hasPrefix("step ") }
    #expect(!logLines.isEmpty && logLines.allSatisfy { $0.contains("| ETA ") })
    // After the prefill the pace is 2 steps per 100,000 s: the time left is read from it.
    #expect(logLines.last?.contains("ETA -") == false)
    #expect(out.text.contains("done at env step 240"))
  }
}
