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
    let folder = RunFolder(directory)
    let config = try folder.readConfig()
    let lines = try MetricsLog.lines(folder.metricsFile)
    var r = RunResults(
      config: config, envSteps: 0, updates: 0, seconds: 0, episodes: 0, recentScore: .nan, recentSuccess: nil,
      evaluationScore: nil, evaluationSuccess: nil, curve: [], window: window)
    var episodes: [EpisodeRecord] = []
    for line in lines {
      r.envSteps = max(r.envSteps, line.stamp.envSteps)
      r.updates = max(r.updates, line.stamp.updates)
      r.seconds = max(r.seconds, line.stamp.seconds)
      switch line {
      case .evaluation(let e):
        r.evaluationScore = e.score
        r.evaluationSuccess = e.success
      case .episode(let e): episodes.append(e.episode)
      case .train: break
      }
    }
    r.episodes = episodes.count
    r.curve = curve(lines, window: window)
    let last = Array(episodes.suffix(window))
    r.recentScore = EpisodeRecord.meanScore(last)
    r.recentSuccess = EpisodeRecord.successRate(last)
    return r
  }

  /// The benchmark score of the run's last `window` episodes, for tasks with one
  /// (``TaskFacts/score``, declared by the environment); nil otherwise.
  public func benchmarkScore() throws -> Double? {
    try EnvRegistry.make(config.env).task.score?.score(success: recentSuccess, meanReturn: recentScore)
  }

  /// The learning curve of metrics lines `lines`: a point after every training episode,
  /// averaging over the last `window` episodes (fewer at first).
  public static func curve(_ lines: [MetricsLine], window: Int) -> [CurvePoint] {
    precondition(window >= 1, "the window needs at least one episode")
    var out: [CurvePoint] = []
    var scores: [Double] = []
    var flags: [Bool] = []
    var scoreSum = 0.0
    var successCount = 0
    for case .episode(let line) in lines {
      let e = line.episode
      scores.append(e.score)
      scoreSum += e.score
      if scores.count > window { scoreSum -= scores[scores.count - window - 1] }
      if let s = e.success {
        flags.append(s)
        if s { successCount += 1 }
        if flags.count > window, flags[flags.count - window - 1] { successCount -= 1 }
      }
      out.append(
        CurvePoint(
          envSteps: line.stamp.envSteps, updates: line.stamp.updates, seconds: line.stamp.seconds,
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
