@_exported import Random

/// The set of valid observations or actions of an environment.
public enum Space: Equatable, Hashable, Sendable, CustomStringConvertible {
  /// One integer in `0..<n`.
  case discrete(Int)
  /// A vector of integers, entry i in `0..<counts[i]`.
  case multiDiscrete([Int])
  /// A float vector with per-entry bounds (infinite bounds allowed).
  case box(low: [Float], high: [Float])
  /// An 8-bit image, height x width x channels.
  case image(height: Int, width: Int, channels: Int)

  /// A box of `count` entries with the same bounds.
  public static func box(count: Int, low: Float, high: Float) -> Space {
    .box(low: [Float](repeating: low, count: count), high: [Float](repeating: high, count: count))
  }

  /// The length of the float vector this space becomes when flattened (one-hot for discrete
  /// parts), or the pixel count for images.
  public var flatSize: Int {
    switch self {
    case .discrete(let n): return n
    case .multiDiscrete(let ns): return ns.reduce(0, +)
    case .box(let low, _): return low.count
    case .image(let h, let w, let c): return h * w * c
    }
  }

  public var description: String {
    switch self {
    case .discrete(let n): return "Discrete(\(n))"
    case .multiDiscrete(let ns):
      // Long uniform vectors (card grids, boards) are summarised as count x size.
      if ns.count > 8 && Set(ns).count == 1 { return "MultiDiscrete(\(ns.count) x \(ns[0]))" }
      return "MultiDiscrete(\(ns))"
    case .box(let low, let high):
      if Set(low).count == 1 && Set(high).count == 1 {
        return "Box(\(low.first ?? 0), \(high.first ?? 0), [\(low.count)])"
      }
      return "Box(low: \(low), high: \(high))"
    case .image(let h, let w, let c): return "Image(\(h)x\(w)x\(c))"
    }
  }

  /// Throws an ``EnvError`` naming the problem when `action` is not in this space.
  public func validate(_ action: Action, env: String) throws {
    switch (self, action) {
    case (.discrete(let n), .discrete(let a)):
      guard a >= 0 && a < n else {
        throw EnvError.invalidAction(env: env, "action \(a) is outside Discrete(\(n)); valid actions are 0...\(n - 1)")
      }
    case (.multiDiscrete(let ns), .multiDiscrete(let a)):
      guard a.count == ns.count else {
        throw EnvError.invalidAction(env: env, "action \(a) has \(a.count) entries; \(self) needs \(ns.count)")
      }
      for (i, (v, n)) in zip(a, ns).enumerated() where v < 0 || v >= n {
        throw EnvError.invalidAction(env: env, "entry \(i) of action \(a) is \(v), outside 0...\(n - 1) of \(self)")
      }
    case (.box(let low, let high), .continuous(let a)):
      guard a.count == low.count else {
        throw EnvError.invalidAction(env: env, "action has \(a.count) entries; \(self) needs \(low.count)")
      }
      for i in 0..<a.count where !(a[i] >= low[i] && a[i] <= high[i]) {
        throw EnvError.invalidAction(
          env: env,
          "entry \(i) of the action is \(a[i]), outside [\(low[i]), \(high[i])] (clip actions, e.g. with ClipAction)")
      }
    default:
      throw EnvError.invalidAction(env: env, "action \(action) does not fit the action space \(self)")
    }
  }

  /// A uniformly random member of a discrete, multi-discrete or bounded box space.
  public func sample(using rng: inout SeededGenerator) -> Action {
    switch self {
    case .discrete(let n): return .discrete(rng.nextInt(below: n))
    case .multiDiscrete(let ns): return .multiDiscrete(ns.map { rng.nextInt(below: $0) })
    case .box(let low, let high):
      return .continuous(
        zip(low, high).map { l, h in
          let lo = l.isFinite ? l : -1
          let hi = h.isFinite ? h : 1
          return lo + (hi - lo) * rng.nextFloat()
        })
    case .image: preconditionFailure("cannot sample an action from an image space")
    }
  }
}

/// An action for ``Env/step(_:)``.
public enum Action: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
  case discrete(Int)
  case multiDiscrete([Int])
  case continuous([Float])

  public var description: String {
    switch self {
    case .discrete(let a): return "\(a)"
    case .multiDiscrete(let a): return "\(a)"
    case .continuous(let a): return "\(a)"
    }
  }
}

/// An 8-bit RGB (or gray/RGBA) picture, rows top to bottom.
public struct Frame: Equatable, Sendable {
  public let width: Int
  public let height: Int
  public let channels: Int
  public var pixels: [UInt8]

  public init(width: Int, height: Int, channels: Int = 3, pixels: [UInt8]? = nil) {
    self.width = width
    self.height = height
    self.channels = channels
    self.pixels = pixels ?? [UInt8](repeating: 0, count: width * height * channels)
    precondition(self.pixels.count == width * height * channels, "Frame: pixel count mismatch")
  }

  /// The bytes of the pixel at (x, y).
  public subscript(x: Int, y: Int) -> [UInt8] {
    let o = (y * width + x) * channels
    return Array(pixels[o..<(o + channels)])
  }
}

/// What an environment returns.
public enum Observation: Equatable, Sendable {
  case discrete(Int)
  case multiDiscrete([Int])
  case vector([Float])
  case image(Frame)

  /// The observation as a float vector: one-hot for discrete parts (using `space`), the values
  /// for vectors, pixels / 255 for images.
  public func flattened(in space: Space) -> [Float] {
    switch (self, space) {
    case (.discrete(let v), .discrete(let n)):
      var out = [Float](repeating: 0, count: n)
      out[v] = 1
      return out
    case (.multiDiscrete(let vs), .multiDiscrete(let ns)):
      var out = [Float](repeating: 0, count: ns.reduce(0, +))
      var offset = 0
      for (v, n) in zip(vs, ns) {
        out[offset + v] = 1
        offset += n
      }
      return out
    case (.vector(let v), _): return v
    case (.image(let f), _): return f.pixels.map { Float($0) / 255 }
    default: preconditionFailure("observation \(self) does not match space \(space)")
    }
  }
}

/// The result of one environment step.
public struct StepResult: Equatable, Sendable {
  public var observation: Observation
  public var reward: Double
  /// The episode ended by the task's rules (the value of the next state is zero).
  public var terminated: Bool
  /// The episode was cut by a time limit (the next state still has value).
  public var truncated: Bool

  public init(observation: Observation, reward: Double, terminated: Bool, truncated: Bool) {
    self.observation = observation
    self.reward = reward
    self.terminated = terminated
    self.truncated = truncated
  }

  /// Whether this is the last step of the episode.
  public var isLast: Bool { terminated || truncated }
}

/// Errors a user of an environment can cause.
public enum EnvError: Error, CustomStringConvertible, Equatable {
  case invalidAction(env: String, String)
  case episodeOver(env: String)
  case unknownName(String, available: [String])
  case invalidConfiguration(String)
  /// An environment in another process (``PythonEnvironment``) exited, crashed, hung or raised;
  /// the message names what happened and the worker's last output.
  case workerFailed(env: String, String)

  public var description: String {
    switch self {
    case .invalidAction(let env, let msg): return "\(env): \(msg)"
    case .episodeOver(let env):
      return "\(env): the episode is over; call reset() before step()"
    case .unknownName(let name, let available):
      return "unknown environment '\(name)'. Available: \(available.joined(separator: ", "))"
    case .invalidConfiguration(let msg): return msg
    case .workerFailed(let env, let msg): return "\(env): \(msg)"
    }
  }
}

/// An environment in the spirit of Gymnasium.
///
/// ```swift
/// let env = try EnvRegistry.make("popgym/RepeatPreviousEasy", seed: 1)
/// var obs = try env.reset(seed: nil)
/// var done = false
/// while !done {
///   let r = try env.step(env.actionSpace.sample(using: &rng))
///   obs = r.observation
///   done = r.isLast
/// }
/// ```
public protocol Env: AnyObject {
  /// The registry name, e.g. `popgym/RepeatPreviousEasy`.
  var name: String { get }
  var observationSpace: Space { get }
  var actionSpace: Space { get }
  /// Starts an episode. A seed restarts the environment's random stream (same seed, same
  /// episode); nil continues it. Throws only for environments that can fail to start one (a
  /// worker process that died); an implementation that cannot fail need not be `throws`.
  func reset(seed: UInt64?) throws -> Observation
  /// Advances one step; throws for an action outside the space or after the episode ended.
  func step(_ action: Action) throws -> StepResult
  /// An RGB picture of the current state, if the environment can draw one.
  func render() -> Frame?
  /// The most steps an episode can take before it ends (terminated or truncated), or nil when
  /// no bound is known. Learners that batch whole episodes size their sequences from it.
  var maxEpisodeSteps: Int? { get }
  /// What the task is: its success rule, whether it needs memory, its benchmark score
  /// (none of these by default).
  var task: TaskFacts { get }
}

extension Env {
  public func render() -> Frame? { nil }
  public var maxEpisodeSteps: Int? { nil }
  public var task: TaskFacts { TaskFacts() }
  /// Starts an episode continuing the environment's random stream.
  public func reset() throws -> Observation { try reset(seed: nil) }
}

/// Tracks whether an episode is running, for the shared "call reset first" rule.
struct EpisodeGuard {
  var running = false
  mutating func begin() { running = true }
  func check(_ env: String) throws {
    if !running { throw EnvError.episodeOver(env: env) }
  }
  mutating func end(if last: Bool) { if last { running = false } }
}

/// What a learner or a benchmark needs to know about a task beyond its spaces, declared by the
/// environment (``Env/task``) so that code above Envs asks the environment instead of matching
/// on registry names. A new task states its own facts; nothing elsewhere changes.
public struct TaskFacts: Sendable, Equatable {
  /// When an episode counts as solved, for tasks that define success.
  public var success: SuccessRule?
  /// Whether the task needs memory: the answer depends on something seen many steps earlier,
  /// so a learner should replay whole episodes from their start rather than windows.
  public var needsMemory: Bool
  /// How a benchmark scores a run's last episodes, for tasks with a published score.
  public var score: BenchmarkScore?

  public init(success: SuccessRule? = nil, needsMemory: Bool = false, score: BenchmarkScore? = nil) {
    self.success = success
    self.needsMemory = needsMemory
    self.score = score
  }
}

/// When an episode counts as solved.
public enum SuccessRule: Sendable, Equatable {
  /// The last reward of the episode is positive (BSuite memory_len: the answer matched the cue).
  case lastRewardPositive

  /// Whether an episode whose last reward is `lastReward` and whose return is `score` is solved.
  public func isSolved(lastReward: Double, score: Double) -> Bool {
    switch self {
    case .lastRewardPositive: return lastReward > 0
    }
  }
}

/// A published benchmark score of a task, computed from a run's last episodes.
public enum BenchmarkScore: Sendable, Equatable {
  /// BSuite memory_len: a setting is solved (1) when 2 x (share of wrong episodes) < 0.75, else 0;
  /// the score of a sweep is the mean over its settings.
  case bsuiteMemoryLength(length: Int)
  /// BSuite discounting_chain: clip(1 - 10 (1.1 - mean return), 0, 1).
  case bsuiteDiscountingChain

  /// The score from the share of solved episodes (`success`, where the task defines it) and the
  /// mean return; nil when the figure it needs is missing.
  public func score(success: Double?, meanReturn: Double) -> Double? {
    switch self {
    case .bsuiteMemoryLength:
      guard let success else { return nil }
      return BSuite.memoryLengthSolved(wrongFraction: 1 - success) ? 1 : 0
    case .bsuiteDiscountingChain:
      return meanReturn.isFinite ? BSuite.discountingChainScore(meanReturn: meanReturn) : nil
    }
  }
}
