/// bsuite's MemoryChain with one bit (`bsuite/memory_len/<L>`).
///
/// Observation (float32, 3 entries): `[1 - t/L, query, context]`; the query is always 0 with one
/// bit, and the context `2*bit - 1` is shown only at t = 0. As in bsuite, the observation
/// returned by a step is built before the step counter advances, so the first step returns the
/// same observation as the reset (context included). An episode has L + 1 steps: L with reward
/// 0, then a terminal step paying +1 if the action equals the bit and -1 otherwise.
public final class MemoryLength: Env {
  public let memoryLength: Int
  public var name: String { "bsuite/memory_len/\(memoryLength)" }
  /// L + 1: the cue's step, L steps of waiting and the query.
  public var maxEpisodeSteps: Int? { memoryLength + 1 }
  /// Solved when the answer matches the cue; needs memory; scored by BSuite's memory_len rule.
  public var task: TaskFacts {
    TaskFacts(success: .lastRewardPositive, needsMemory: true, score: .bsuiteMemoryLength(length: memoryLength))
  }
  public let observationSpace = Space.box(count: 3, low: -1, high: 1)
  public let actionSpace = Space.discrete(2)

  var rng: SeededGenerator
  var timestep = 0
  var bit = 0
  var episode = EpisodeGuard()

  /// The bit of the current episode (for scripted policies and tests).
  public var context: Int { bit }

  public init(memoryLength: Int, seed: UInt64 = 0) throws {
    guard (1...1_000_000).contains(memoryLength) else {
      throw EnvError.invalidConfiguration("bsuite/memory_len needs a length in 1...1000000, got \(memoryLength)")
    }
    self.memoryLength = memoryLength
    rng = SeededGenerator(seed: seed)
  }

  func observation() -> [Float] {
    var obs: [Float] = [1 - Float(timestep) / Float(memoryLength), 0, 0]
    if timestep == 0 { obs[2] = Float(2 * bit - 1) }
    return obs
  }

  public func reset(seed: UInt64?) -> Observation {
    if let seed { rng = SeededGenerator(seed: seed) }
    timestep = 0
    bit = rng.nextInt(below: 2)
    episode.begin()
    return .vector(observation())
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    let obs = observation()
    timestep += 1
    if timestep - 1 < memoryLength {
      return StepResult(observation: .vector(obs), reward: 0, terminated: false, truncated: false)
    }
    episode.end(if: true)
    return StepResult(
      observation: .vector(obs), reward: a == bit ? 1 : -1, terminated: true, truncated: false)
  }
}

/// bsuite's DiscountingChain (`bsuite/discounting_chain/<mapping_seed>`).
///
/// Observation (float32, 2 entries): `[context, t/100]`, context -1 at reset and the first
/// action (0...4) afterwards. Only the first action matters: arm k pays a single reward at step
/// `[1, 3, 10, 30, 100][k]`, 1.0, or 1.1 for arm `mapping_seed % 5`. Every episode has 100 steps
/// and ends by termination.
public final class DiscountingChain: Env {
  public static let rewardSteps = [1, 3, 10, 30, 100]
  public static let episodeLength = 100
  public let mappingSeed: Int
  public var name: String { "bsuite/discounting_chain/\(mappingSeed)" }
  public var maxEpisodeSteps: Int? { DiscountingChain.episodeLength }
  /// Scored by BSuite's discounting_chain rule; the chosen arm stays in the observation, so it
  /// needs no memory.
  public var task: TaskFacts { TaskFacts(score: .bsuiteDiscountingChain) }
  public let observationSpace = Space.box(low: [-1, 0], high: [4, 1])
  public let actionSpace = Space.discrete(5)

  var timestep = 0
  var chosen = -1
  var episode = EpisodeGuard()

  /// The arm paying 1.1.
  public var bestArm: Int { mappingSeed % 5 }

  public init(mappingSeed: Int, seed: UInt64 = 0) throws {
    guard mappingSeed >= 0 else {
      throw EnvError.invalidConfiguration("bsuite/discounting_chain needs a mapping seed >= 0, got \(mappingSeed)")
    }
    self.mappingSeed = mappingSeed
  }

  func observation() -> [Float] {
    [Float(chosen), Float(timestep) / Float(DiscountingChain.episodeLength)]
  }

  public func reset(seed: UInt64?) -> Observation {
    timestep = 0
    chosen = -1
    episode.begin()
    return .vector(observation())
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    if timestep == 0 { chosen = a }
    timestep += 1
    var reward = 0.0
    if timestep == DiscountingChain.rewardSteps[chosen] {
      reward = chosen == bestArm ? 1.1 : 1.0
    }
    let last = timestep == DiscountingChain.episodeLength
    episode.end(if: last)
    return StepResult(observation: .vector(observation()), reward: reward, terminated: last, truncated: false)
  }
}

/// The bsuite sweeps and scores used by the paper's memory and credit-assignment experiments.
public enum BSuite {
  /// The 23 memory lengths of the memory_len sweep.
  public static let memoryLengths = Array(1...10) + [12, 14, 17, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100]
  /// Episodes per memory_len setting.
  public static let memoryLengthEpisodes = 10_000
  /// The discounting_chain mapping seeds.
  public static let discountingChainSeeds = Array(0...19)
  /// Episodes per discounting_chain setting.
  public static let discountingChainEpisodes = 1_000

  /// Whether a memory_len setting is solved: 2 * (fraction of wrong episodes) < 0.75.
  public static func memoryLengthSolved(wrongFraction: Double) -> Bool {
    2 * wrongFraction < 0.75
  }

  /// The memory_len score: the fraction of settings solved.
  public static func memoryLengthScore(wrongFractions: [Double]) -> Double {
    guard !wrongFractions.isEmpty else { return 0 }
    return Double(wrongFractions.filter { memoryLengthSolved(wrongFraction: $0) }.count)
      / Double(wrongFractions.count)
  }

  /// The discounting_chain score of a mean episode return: clip(1 - 10 (1.1 - mean), 0, 1).
  public static func discountingChainScore(meanReturn: Double) -> Double {
    min(1, max(0, 1 - 10 * (1.1 - meanReturn)))
  }
}
