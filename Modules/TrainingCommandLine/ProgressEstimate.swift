import Foundation

/// The pace of a run and the time it has left, from the steps it took after its random prefill:
/// the prefill steps are far faster than learning ones, so counting them would promise an end
/// far too early. The rate is that of the last ``window`` seconds (or all the learning steps
/// of this session while fewer have passed), so it follows a run whose pace changes.
public struct ProgressEstimate: Sendable {
  /// Seconds of recent samples the rate is measured over.
  public let window: Double
  let prefill: Int
  var samples: [(seconds: Double, steps: Int)] = []

  /// An estimate for a run that acts at random for its first `prefill` env steps.
  public init(prefill: Int, window: Double = 120) {
    self.prefill = prefill
    self.window = window
  }

  /// Records that the run stood at `steps` env steps at `seconds` (any clock that only moves
  /// forward). Samples before the prefill ended are not kept.
  public mutating func observe(steps: Int, seconds: Double) {
    guard steps >= prefill else { return }
    samples.append((seconds, steps))
    // Keep one sample older than the window, so the rate always spans the whole window.
    while samples.count > 2, seconds - samples[1].seconds >= window { samples.removeFirst() }
  }

  /// Env steps per second over the recent learning steps; nil until two samples are apart.
  public var stepsPerSecond: Double? {
    guard let first = samples.first, let last = samples.last, last.seconds > first.seconds, last.steps > first.steps
    else { return nil }
    return Double(last.steps - first.steps) / (last.seconds - first.seconds)
  }

  /// Seconds until the run reaches `target` env steps or spends its budget (`budgetSeconds`
  /// over all sessions, of which `elapsed` are spent), whichever comes first; nil when neither
  /// can be told yet (no learning steps measured and no budget).
  public func remainingSeconds(
    at steps: Int, target: Int, elapsed: Double, budgetSeconds: Double?
  ) -> Double? {
    let byBudget = budgetSeconds.map { max(0, $0 - elapsed) }
    var bySteps: Double?
    if steps >= target {
      bySteps = 0
    } else if let rate = stepsPerSecond {
      bySteps = Double(target - steps) / rate
      // Prefill steps still to come go at an unknown (fast) pace: counted as learning ones.
    }
    switch (bySteps, byBudget) {
    case (let a?, let b?): return min(a, b)
    case (let a?, nil): return a
    case (nil, let b?): return b
    case (nil, nil): return nil
    }
  }

  /// `1 h 05 min`, `12 min`, `45 s`, or `2.3 days`; `-` for nil.
  public static func duration(_ seconds: Double?) -> String {
    guard let s = seconds, s.isFinite else { return "-" }
    if s < 60 { return "\(Int(s.rounded())) s" }
    if s < 3600 { return "\(Int((s / 60).rounded())) min" }
    if s < 48 * 3600 {
      let minutes = Int((s / 60).rounded())
      return String(format: "%d h %02d min", minutes / 60, minutes % 60)
    }
    return String(format: "%.1f days", s / 86_400)
  }
}
