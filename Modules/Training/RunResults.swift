import Envs
import Foundation

/// What a run folder's `metrics.jsonl` says about a run: where it got to, how its last episodes
/// went, its last greedy evaluation and its learning curve. Read by `r2i plot` style tools and
/// the memory benchmark; reading never changes the folder.
///
/// ```swift
/// let r = try RunResults.read(URL(fileURLWithPath: "runs/bsuite-memory_len-10-r2i-s0"))
/// print(r.recentSuccess ?? .nan, r.envSteps, r.seconds / 60)
/// ```
public struct RunResults: Sendable {
  /// One point of a learning curve: after a training episode, the figures over the latest
  /// episodes.
  public struct CurvePoint: Sendable, Equatable {
    public var envSteps: Int
    /// Learner steps taken when the episode ended.
    public var updates: Int
    public var seconds: Double
    /// Mean episode score.
    public var score: Double
    /// Share of successes, for tasks that define success.
    public var success: Double?
    /// The success rate where defined, else the mean score.
    public var value: Double { success ?? score }
  }

  public var config: TrainingConfig
  /// Environment and learner steps and wall-clock seconds of the last line written.
  public var envSteps: Int
  public var updates: Int
  public var seconds: Double
  /// Training episodes finished.
  public var episodes: Int
  /// Over the last `window` training episodes (fewer if the run has fewer): mean score, and the
  /// share of successes for tasks that define success.
  public var recentScore: Double
  public var recentSuccess: Double?
  /// The last greedy evaluation: mean score and success rate.
  public var evaluationScore: Double?
  public var evaluationSuccess: Double?
  /// After every training episode: the success rate (tasks that define it) or the mean score
  /// over the last `window` episodes.
  public var curve: [CurvePoint]
  /// The number of latest episodes the recent figures and each curve point average over.
  public var window: Int

  /// Reads the run in `directory` (its `config.json` and `metrics.jsonl`); `window` is the
  /// number of latest episodes the recent figures and each curve point average over.
  public static func read(_ directory: URL, window: Int = 100) throws -> RunResults {
    precondition(window >= 1, "the window needs at least one episode")
    let config = try TrainingRun.configuration(of: directory)
    let rows = try MetricsLog.read(TrainingRun.paths(directory).metrics)
    var r = RunResults(
      config: config, envSteps: 0, updates: 0, seconds: 0, episodes: 0, recentScore: .nan, recentSuccess: nil,
      evaluationScore: nil, evaluationSuccess: nil, curve: [], window: window)
    var scores: [Double] = []
    var flags: [Bool] = []
    for row in rows {
      r.envSteps = max(r.envSteps, Int(row["env_steps"]?.number ?? 0))
      r.updates = max(r.updates, Int(row["updates"]?.number ?? 0))
      r.seconds = max(r.seconds, row["seconds"]?.number ?? 0)
      guard case .text(let kind)? = row["kind"] else { continue }
      if kind == "eval" {
        r.evaluationScore = row["eval_score"]?.number
        r.evaluationSuccess = row["eval_success"]?.number
      }
      guard kind == "episode", let score = row["score"]?.number else { continue }
      r.episodes += 1
      scores.append(score)
      if let s = row["success"]?.number { flags.append(s > 0) }
    }
    r.curve = curve(rows, window: window)
    let last = scores.suffix(window)
    r.recentScore = last.isEmpty ? .nan : last.reduce(0, +) / Double(last.count)
    let lastFlags = flags.suffix(window)
    r.recentSuccess = lastFlags.isEmpty ? nil : Double(lastFlags.filter { $0 }.count) / Double(lastFlags.count)
    return r
  }

  /// The learning curve of metrics lines `rows` (as ``MetricsLog/read(_:)`` gives them): a point
  /// after every training episode, averaging over the last `window` episodes (fewer at first).
  public static func curve(_ rows: [[String: MetricValue]], window: Int) -> [CurvePoint] {
    precondition(window >= 1, "the window needs at least one episode")
    var out: [CurvePoint] = []
    var scores: [Double] = []
    var flags: [Bool] = []
    var scoreSum = 0.0
    var successCount = 0
    for row in rows {
      guard case .text("episode")? = row["kind"], let score = row["score"]?.number,
        let steps = row["env_steps"]?.number
      else { continue }
      scores.append(score)
      scoreSum += score
      if scores.count > window { scoreSum -= scores[scores.count - window - 1] }
      if let s = row["success"]?.number {
        flags.append(s > 0)
        if s > 0 { successCount += 1 }
        if flags.count > window, flags[flags.count - window - 1] { successCount -= 1 }
      }
      out.append(
        CurvePoint(
          envSteps: Int(steps), updates: Int(row["updates"]?.number ?? 0), seconds: row["seconds"]?.number ?? 0,
          score: scoreSum / Double(min(window, scores.count)),
          success: flags.isEmpty ? nil : Double(successCount) / Double(min(window, flags.count))))
    }
    return out
  }

  /// The first point of the learning curve whose window is full (the run's first `window - 1`
  /// episodes average over fewer, so they do not count) and whose value (success rate, or mean
  /// score for tasks without success) is at or above `threshold`; nil if no point is.
  ///
  /// ```swift
  /// if let solved = r.first(reaching: 0.9) { print(solved.seconds / 60, solved.updates) }
  /// ```
  public func first(reaching threshold: Double) -> CurvePoint? {
    firstIndex(reaching: threshold).map { curve[$0] }
  }

  /// How well the run held `threshold` once it got there: the share of the curve points after
  /// ``first(reaching:)`` (one per training episode) whose value is still at or above it. 1 when
  /// it never fell back, nil when it never got there or no episode followed.
  public func shareHeld(atOrAbove threshold: Double) -> Double? {
    guard let start = firstIndex(reaching: threshold), start + 1 < curve.count else { return nil }
    let after = curve[(start + 1)...]
    return Double(after.filter { $0.value >= threshold }.count) / Double(after.count)
  }

  /// The index in `curve` of ``first(reaching:)``: the one place the full-window rule lives.
  private func firstIndex(reaching threshold: Double) -> Int? {
    guard curve.count >= window else { return nil }
    return curve[(window - 1)...].firstIndex { $0.value >= threshold }
  }
}

/// The benchmark score of a memory or credit-assignment task from a run's last episodes
/// (envs.md): `bsuite/memory_len/<L>` is solved (1) when 2 x (share of wrong episodes) < 0.75,
/// else 0, so the BSuite score of a sweep is the mean over its settings; `bsuite/discounting_chain`
/// scores clip(1 - 10 (1.1 - mean return), 0, 1); other tasks have no such score (nil).
public enum TaskScore {
  public static func score(env: String, success: Double?, meanReturn: Double) -> Double? {
    if env.hasPrefix("bsuite/memory_len/") {
      guard let success else { return nil }
      return BSuite.memoryLengthSolved(wrongFraction: 1 - success) ? 1 : 0
    }
    if env.hasPrefix("bsuite/discounting_chain/") {
      return meanReturn.isFinite ? BSuite.discountingChainScore(meanReturn: meanReturn) : nil
    }
    return nil
  }

  /// The memory length of a `bsuite/memory_len/<L>` name.
  public static func memoryLength(of env: String) -> Int? {
    env.hasPrefix("bsuite/memory_len/") ? Int(env.dropFirst("bsuite/memory_len/".count)) : nil
  }
}
