import Synchronization

/// Ends episodes after `maxSteps` steps by truncation (unless the inner environment ended
/// them first).
public final class TimeLimit: Env {
  public let inner: any Env
  public let maxSteps: Int
  var steps = 0

  public init(_ inner: any Env, maxSteps: Int) throws {
    guard maxSteps >= 1 else { throw EnvError.invalidConfiguration("TimeLimit needs maxSteps >= 1, got \(maxSteps)") }
    self.inner = inner
    self.maxSteps = maxSteps
  }

  public var name: String { inner.name }
  public var observationSpace: Space { inner.observationSpace }
  public var actionSpace: Space { inner.actionSpace }
  public var maxEpisodeSteps: Int? { min(maxSteps, inner.maxEpisodeSteps ?? maxSteps) }
  public var task: TaskFacts { inner.task }

  public func reset(seed: UInt64?) throws -> Observation {
    steps = 0
    return try inner.reset(seed: seed)
  }

  public func step(_ action: Action) throws -> StepResult {
    var r = try inner.step(action)
    steps += 1
    if steps >= maxSteps && !r.terminated { r.truncated = true }
    return r
  }

  public func render() -> Frame? { inner.render() }
}

/// Turns discrete and multi-discrete observations into one-hot float vectors (box observations
/// pass through).
public final class FlattenObservation: Env {
  public let inner: any Env
  public let observationSpace: Space

  public init(_ inner: any Env) throws {
    if case .image = inner.observationSpace {
      throw EnvError.invalidConfiguration(
        "FlattenObservation: \(inner.name) has image observations; use them as images")
    }
    self.inner = inner
    let n = inner.observationSpace.flatSize
    if case .box(let low, let high) = inner.observationSpace {
      observationSpace = .box(low: low, high: high)
    } else {
      observationSpace = .box(count: n, low: 0, high: 1)
    }
  }

  public var name: String { inner.name }
  public var maxEpisodeSteps: Int? { inner.maxEpisodeSteps }
  public var task: TaskFacts { inner.task }
  public var actionSpace: Space { inner.actionSpace }

  public func reset(seed: UInt64?) throws -> Observation {
    .vector(try inner.reset(seed: seed).flattened(in: inner.observationSpace))
  }

  public func step(_ action: Action) throws -> StepResult {
    var r = try inner.step(action)
    r.observation = .vector(r.observation.flattened(in: inner.observationSpace))
    return r
  }

  public func render() -> Frame? { inner.render() }
}

/// Appends the previous action (one-hot for discrete parts, zeros after a reset) and an
/// is-first flag to the flattened observation, as the POPGym baselines do.
public final class PreviousActionObservation: Env {
  public let inner: any Env
  public let observationSpace: Space
  var previous: [Float]
  let actionSize: Int

  public init(_ inner: any Env) throws {
    if case .image = inner.observationSpace {
      throw EnvError.invalidConfiguration(
        "PreviousActionObservation needs vector observations; \(inner.name) has images")
    }
    self.inner = inner
    actionSize = inner.actionSpace.flatSize
    previous = [Float](repeating: 0, count: actionSize)
    let obs = inner.observationSpace
    var low: [Float]
    var high: [Float]
    if case .box(let l, let h) = obs {
      low = l
      high = h
    } else {
      low = [Float](repeating: 0, count: obs.flatSize)
      high = [Float](repeating: 1, count: obs.flatSize)
    }
    if case .box(let al, let ah) = inner.actionSpace {
      low += al
      high += ah
    } else {
      low += [Float](repeating: 0, count: actionSize)
      high += [Float](repeating: 1, count: actionSize)
    }
    observationSpace = .box(low: low + [0], high: high + [1])
  }

  public var name: String { inner.name }
  public var maxEpisodeSteps: Int? { inner.maxEpisodeSteps }
  public var task: TaskFacts { inner.task }
  public var actionSpace: Space { inner.actionSpace }

  /// The flat encoding of an action in `space`.
  public static func encode(_ action: Action, in space: Space) -> [Float] {
    switch (action, space) {
    case (.discrete(let a), .discrete(let n)):
      var v = [Float](repeating: 0, count: n)
      v[a] = 1
      return v
    case (.multiDiscrete(let a), .multiDiscrete(let ns)):
      return Observation.multiDiscrete(a).flattened(in: .multiDiscrete(ns))
    case (.continuous(let a), _): return a
    default: preconditionFailure("action \(action) does not match \(space)")
    }
  }

  public func reset(seed: UInt64?) throws -> Observation {
    previous = [Float](repeating: 0, count: actionSize)
    return .vector(try inner.reset(seed: seed).flattened(in: inner.observationSpace) + previous + [1])
  }

  public func step(_ action: Action) throws -> StepResult {
    var r = try inner.step(action)
    previous = PreviousActionObservation.encode(action, in: inner.actionSpace)
    r.observation = .vector(r.observation.flattened(in: inner.observationSpace) + previous + [0])
    return r
  }

  public func render() -> Frame? { inner.render() }
}

/// Replaces the observation by the environment's 64x64 RGB rendering (pixel variants of the
/// classic control tasks).
public final class PixelObservation: Env {
  public let inner: any Env
  public let observationSpace: Space

  public init(_ inner: any Env) throws {
    guard let f = inner.render() else {
      throw EnvError.invalidConfiguration("PixelObservation: \(inner.name) cannot render")
    }
    self.inner = inner
    observationSpace = .image(height: f.height, width: f.width, channels: f.channels)
  }

  public var name: String { inner.name + "-pixels" }
  public var maxEpisodeSteps: Int? { inner.maxEpisodeSteps }
  public var task: TaskFacts { inner.task }
  public var actionSpace: Space { inner.actionSpace }

  public func reset(seed: UInt64?) throws -> Observation {
    _ = try inner.reset(seed: seed)
    return .image(inner.render()!)
  }

  public func step(_ action: Action) throws -> StepResult {
    var r = try inner.step(action)
    r.observation = .image(inner.render()!)
    return r
  }

  public func render() -> Frame? { inner.render() }
}

/// Clips continuous actions into the action box before passing them on (policies sample from
/// unbounded distributions; environments reject out-of-range actions).
public final class ClipAction: Env {
  public let inner: any Env
  public init(_ inner: any Env) { self.inner = inner }
  public var name: String { inner.name }
  public var maxEpisodeSteps: Int? { inner.maxEpisodeSteps }
  public var task: TaskFacts { inner.task }
  public var observationSpace: Space { inner.observationSpace }
  public var actionSpace: Space { inner.actionSpace }
  public func reset(seed: UInt64?) throws -> Observation { try inner.reset(seed: seed) }
  public func step(_ action: Action) throws -> StepResult {
    if case .continuous(let a) = action, case .box(let low, let high) = inner.actionSpace,
      a.count == low.count
    {
      return try inner.step(.continuous((0..<a.count).map { min(max(a[$0].isNaN ? 0 : a[$0], low[$0]), high[$0]) }))
    }
    return try inner.step(action)
  }
  public func render() -> Frame? { inner.render() }
}

/// One step of one environment in a ``BatchEnv``, in the replay's convention: the observation
/// reached, the reward received on arriving there, and the episode flags.
public struct Transition: Equatable, Sendable {
  public var observation: Observation
  public var reward: Double
  public var isFirst: Bool
  public var isLast: Bool
  public var isTerminal: Bool

  public init(observation: Observation, reward: Double, isFirst: Bool, isLast: Bool, isTerminal: Bool) {
    self.observation = observation
    self.reward = reward
    self.isFirst = isFirst
    self.isLast = isLast
    self.isTerminal = isTerminal
  }
}

/// N environments stepped together with automatic resets, for acting on a batch.
///
/// The first call, and the call after an episode's last step, resets that environment and
/// returns its first observation with `isFirst` and reward 0; the action given for it is
/// ignored (the DreamerV3 convention). Environment i is seeded with stream i of `seed`.
///
/// A ``Snapshot`` holds what it takes to continue exactly where the batch was (each
/// environment's random stream, and the reset seed and actions of its running episode, which
/// ``restore(_:)`` replays): environments need no save format of their own, only the
/// determinism every registered one has (same seed and actions, same episode).
public final class BatchEnv {
  public let envs: [any Env]
  var needsReset: [Bool]
  var rngs: [SeededGenerator]
  /// The seed each running episode was reset with, and the actions taken in it since.
  var episodeSeeds: [UInt64?]
  var episodeActions: [[Action]]

  public init(_ envs: [any Env], seed: UInt64) throws {
    guard !envs.isEmpty else { throw EnvError.invalidConfiguration("BatchEnv needs at least one environment") }
    let a = envs[0].actionSpace
    let o = envs[0].observationSpace
    for e in envs where e.actionSpace != a || e.observationSpace != o {
      throw EnvError.invalidConfiguration("BatchEnv: \(e.name) has different spaces from \(envs[0].name)")
    }
    self.envs = envs
    needsReset = [Bool](repeating: true, count: envs.count)
    rngs = (0..<envs.count).map { SeededGenerator(seed: seed, stream: UInt64($0)) }
    episodeSeeds = [UInt64?](repeating: nil, count: envs.count)
    episodeActions = [[Action]](repeating: [], count: envs.count)
  }

  /// `count` copies of the environment `name` from the registry.
  public convenience init(name: String, count: Int, seed: UInt64) throws {
    guard count >= 1 else { throw EnvError.invalidConfiguration("BatchEnv needs count >= 1, got \(count)") }
    try self.init((0..<count).map { try EnvRegistry.make(name, seed: seed &+ UInt64($0)) }, seed: seed)
  }

  public var count: Int { envs.count }
  /// The task's facts (those of the first environment; all are copies of one task).
  public var task: TaskFacts { envs[0].task }
  public var observationSpace: Space { envs[0].observationSpace }
  public var actionSpace: Space { envs[0].actionSpace }

  /// Steps every environment (or resets it when its episode is over).
  ///
  /// Environments in other processes (``PythonEnvironment``) get their requests first and are
  /// read afterwards, so they step in parallel. All-or-nothing for the batch's own state: when
  /// an action does not fit its space, nothing moves; when an environment fails, the batch's
  /// bookkeeping (and so its ``snapshot()``) stays as it was before the call, though the
  /// environments that answered have moved on: continue with a new batch restored from that
  /// snapshot.
  public func step(_ actions: [Action]) throws -> [Transition] {
    guard actions.count == envs.count else {
      throw EnvError.invalidConfiguration("BatchEnv.step got \(actions.count) actions for \(envs.count) environments")
    }
    for i in envs.indices where !needsReset[i] {
      try envs[i].actionSpace.validate(actions[i], env: envs[i].name)
    }
    var generators = rngs
    var seeds = [UInt64?](repeating: nil, count: envs.count)
    for i in envs.indices where needsReset[i] { seeds[i] = generators[i].next() }
    var pending: [Int] = []
    do {
      for i in envs.indices {
        guard let remote = envs[i] as? any PipelinedEnv else { continue }
        if needsReset[i] { try remote.sendReset(seed: seeds[i]) } else { try remote.sendStep(actions[i]) }
        pending.append(i)
      }
      var out: [Transition] = []
      out.reserveCapacity(envs.count)
      for i in envs.indices {
        let remote = envs[i] as? any PipelinedEnv
        if needsReset[i] {
          let observation = try remote?.receiveReset() ?? envs[i].reset(seed: seeds[i])
          out.append(Transition(observation: observation, reward: 0, isFirst: true, isLast: false, isTerminal: false))
        } else {
          let r = try remote?.receiveStep() ?? envs[i].step(actions[i])
          out.append(
            Transition(
              observation: r.observation, reward: r.reward, isFirst: false, isLast: r.isLast, isTerminal: r.terminated))
        }
        pending.removeAll { $0 == i }
      }
      // Every environment answered: commit.
      rngs = generators
      for i in envs.indices {
        if needsReset[i] {
          needsReset[i] = false
          episodeSeeds[i] = seeds[i]
          episodeActions[i].removeAll(keepingCapacity: true)
        } else if out[i].isLast {
          needsReset[i] = true
          episodeSeeds[i] = nil
          episodeActions[i].removeAll(keepingCapacity: true)
        } else {
          episodeActions[i].append(actions[i])
        }
      }
      return out
    } catch {
      // Read the replies still owed, so the other workers are not left mid-request.
      for i in pending {
        let remote = envs[i] as? any PipelinedEnv
        if needsReset[i] { _ = try? remote?.receiveReset() } else { _ = try? remote?.receiveStep() }
      }
      throw error
    }
  }

  /// What ``restore(_:)`` needs to continue a batch exactly: per environment, its random
  /// stream, whether it resets next, and the seed and actions of its running episode.
  public struct Snapshot: Codable, Equatable, Sendable {
    public var rngStates: [[UInt64]]
    public var needsReset: [Bool]
    public var episodeSeeds: [UInt64?]
    public var episodeActions: [[Action]]
  }

  /// The batch's state now (cheap: episodes are kept as their actions).
  public func snapshot() -> Snapshot {
    Snapshot(
      rngStates: rngs.map(\.state), needsReset: needsReset, episodeSeeds: episodeSeeds, episodeActions: episodeActions)
  }

  /// Puts the batch where `snapshot` was taken: every running episode is reset with its seed and
  /// its actions are stepped again. Throws when the snapshot is for another number of
  /// environments or holds an invalid random state, and when an action no longer fits (a
  /// snapshot of another environment); the batch is unusable after such an error.
  public func restore(_ snapshot: Snapshot) throws {
    let n = envs.count
    guard snapshot.rngStates.count == n, snapshot.needsReset.count == n, snapshot.episodeSeeds.count == n,
      snapshot.episodeActions.count == n
    else {
      throw EnvError.invalidConfiguration(
        "BatchEnv.restore: the snapshot is for \(snapshot.rngStates.count) environments, this batch has \(n)")
    }
    var generators: [SeededGenerator] = []
    for state in snapshot.rngStates {
      guard let g = SeededGenerator(state: state) else {
        throw EnvError.invalidConfiguration("BatchEnv.restore: the snapshot holds an invalid random state")
      }
      generators.append(g)
    }
    for i in 0..<n {
      if let seed = snapshot.episodeSeeds[i] {
        _ = try envs[i].reset(seed: seed)
        for a in snapshot.episodeActions[i] {
          let r = try envs[i].step(a)
          guard !r.isLast else {
            throw EnvError.invalidConfiguration(
              "BatchEnv.restore: environment \(i)'s episode ended while replaying the snapshot (a snapshot of another environment?)"
            )
          }
        }
      }
    }
    rngs = generators
    needsReset = snapshot.needsReset
    episodeSeeds = snapshot.episodeSeeds
    episodeActions = snapshot.episodeActions
  }
}

/// Environments by name.
///
/// Names: `bsuite/memory_len/<L>`, `bsuite/discounting_chain/<mapping seed>`,
/// `popgym/<Game><Easy|Medium|Hard>`, `memorymaze/<9|11|13|15>x<same>[-6CL]`, `classic/CartPole`,
/// `classic/Pendulum`, `classic/Acrobot`, and `-pixels` variants of the classic tasks; the
/// Python families of ``PythonEnvironment`` (`gym:<id>`, `dmc:<task>`, `atari:<Game>`, ...);
/// and the names registered with ``register(name:factory:)``.
public enum EnvRegistry {
  /// Builds a registered environment from a seed.
  public typealias Factory = @Sendable (_ seed: UInt64) throws -> any Env

  /// The families of the built-in environments, which registered names may not use.
  public static let builtInFamilies = ["bsuite", "popgym", "memorymaze", "classic"]

  private static let registered = Mutex<[String: Factory]>([:])

  /// Adds your own environment under `name`, so that everything that takes an environment name
  /// (``make(_:seed:)``, `BatchEnv`, `TrainingConfig.defaults`, `TrainingRun`) takes it, in this
  /// process, from now on. `name` is `<family>/<name>` (letters, digits, `_`, `-`, `.` and more
  /// `/`-separated parts), its family not a built-in one; a name already registered is refused.
  /// `factory` must give the same episodes for the same seed and actions (a resumed run replays
  /// its running episodes that way). Register before starting or resuming a run that uses it.
  /// `replacing: true` replaces an earlier registration of `name` instead of refusing it.
  public static func register(name: String, replacing: Bool = false, factory: @escaping Factory) throws {
    let parts = name.split(separator: "/", omittingEmptySubsequences: false)
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
    guard parts.count >= 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(allowed.contains) }) else {
      throw EnvError.invalidConfiguration(
        "cannot register '\(name)': a name is <family>/<name> of letters, digits, '_', '-' and '.', e.g. mine/GridWorld"
      )
    }
    guard !builtInFamilies.contains(String(parts[0])) else {
      throw EnvError.invalidConfiguration(
        "cannot register '\(name)': '\(parts[0])' is a built-in family (\(builtInFamilies.joined(separator: ", "))); choose a family of your own"
      )
    }
    try registered.withLock { table in
      guard table[name] == nil || replacing else {
        throw EnvError.invalidConfiguration("cannot register '\(name)': it is registered already")
      }
      table[name] = factory
    }
  }

  /// Every accepted name (parametric ones with their parameter in angle brackets), the
  /// registered ones last.
  public static var names: [String] {
    builtInNames + registered.withLock { $0.keys.sorted() }
  }

  static var builtInNames: [String] {
    nativeNames + PythonEnvironment.families.map(\.form)
  }

  static var nativeNames: [String] {
    ["bsuite/memory_len/<L>", "bsuite/discounting_chain/<mapping seed>"]
      + POPGym.games.flatMap { g in Difficulty.allCases.map { "popgym/\(g)\($0.rawValue)" } }
      + MemoryMaze.configurations.map { "memorymaze/\($0.size)x\($0.size)" }
      + MemoryMaze.configurations.map { "memorymaze/\($0.size)x\($0.size)-6CL" }
      + ["classic/CartPole", "classic/Pendulum", "classic/Acrobot"]
      + ["classic/CartPole-pixels", "classic/Pendulum-pixels", "classic/Acrobot-pixels"]
  }

  /// Builds the environment called `name`; throws listing the available names when unknown.
  public static func make(_ name: String, seed: UInt64 = 0) throws -> any Env {
    if let factory = registered.withLock({ $0[name] }) { return try factory(seed) }
    if PythonEnvironment.handles(name) { return try PythonEnvironment(name: name, seed: seed) }
    let parts = name.split(separator: "/").map(String.init)
    func unknown() -> EnvError { .unknownName(name, available: names) }
    guard parts.count >= 2 else { throw unknown() }
    switch parts[0] {
    case "bsuite":
      guard parts.count == 3, let v = Int(parts[2]) else { throw unknown() }
      switch parts[1] {
      case "memory_len": return try MemoryLength(memoryLength: v, seed: seed)
      case "discounting_chain": return try DiscountingChain(mappingSeed: v, seed: seed)
      default: throw unknown()
      }
    case "popgym":
      guard parts.count == 2 else { throw unknown() }
      for d in Difficulty.allCases where parts[1].hasSuffix(d.rawValue) {
        let game = String(parts[1].dropLast(d.rawValue.count))
        if let env = POPGym.make(game: game, difficulty: d, seed: seed) { return env }
      }
      throw unknown()
    case "memorymaze":
      guard parts.count == 2 else { throw unknown() }
      let randomColours = parts[1].hasSuffix("-6CL")
      let dims = (randomColours ? parts[1].dropLast(4) : Substring(parts[1])).split(separator: "x").compactMap {
        Int($0)
      }
      guard dims.count == 2, dims[0] == dims[1] else { throw unknown() }
      return try MemoryMaze(size: dims[0], randomColours: randomColours, seed: seed)
    case "classic":
      guard parts.count == 2 else { throw unknown() }
      let pixels = parts[1].hasSuffix("-pixels")
      let base: any Env
      switch pixels ? String(parts[1].dropLast(7)) : parts[1] {
      case "CartPole": base = CartPole(seed: seed)
      case "Pendulum": base = Pendulum(seed: seed)
      case "Acrobot": base = Acrobot(seed: seed)
      default: throw unknown()
      }
      if pixels {
        _ = try base.reset(seed: seed)
        return try PixelObservation(base)
      }
      return base
    default:
      throw unknown()
    }
  }
}
