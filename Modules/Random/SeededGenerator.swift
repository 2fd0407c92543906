/// A small, fast, seedable random number generator (xoshiro256**), reproducible across runs
/// and platforms.
///
/// Every random choice in the project (initialisation, sampling, environments, replay) draws
/// from a `SeededGenerator`, so a run is repeatable for a fixed seed. Independent streams for
/// parallel consumers come from ``init(seed:stream:)`` or ``split()``.
///
/// ```swift
/// var rng = SeededGenerator(seed: 42)
/// let u = rng.nextFloat()          // uniform in [0, 1)
/// let z = rng.nextNormal()         // standard normal
/// let k = rng.nextInt(below: 6)    // uniform in 0..<6
/// var envRNG = SeededGenerator(seed: 42, stream: 3)  // independent stream number 3
/// ```
public struct SeededGenerator: RandomNumberGenerator, Sendable, Hashable {
  @usableFromInline var s0: UInt64
  @usableFromInline var s1: UInt64
  @usableFromInline var s2: UInt64
  @usableFromInline var s3: UInt64
  /// When set, the rows this process holds of a batch split over several processes: the
  /// batch-wise samplers (`Tensor.sampleCategorical`, `Tensor.normalRows`) then draw for every
  /// row of the whole batch, in the order one process holding all of it would, and keep this
  /// process's rows, so the processes together draw exactly what one would. Not part of
  /// ``state``; ``split()`` does not pass it on.
  public var shard: RowShard?

  /// Creates a generator for `seed`; different `stream` numbers give statistically independent
  /// sequences for the same seed.
  public init(seed: UInt64, stream: UInt64 = 0) {
    var sm = SplitMix64(state: seed)
    // Mix the stream number through a second SplitMix so nearby (seed, stream) pairs diverge.
    var streamMix = SplitMix64(state: stream &* 0xD1B5_4A32_D192_ED03 &+ 0x8CB9_2BA7_2F3D_8DD7)
    let offset = streamMix.next()
    sm.state ^= offset
    s0 = sm.next()
    s1 = sm.next()
    s2 = sm.next()
    s3 = sm.next()
    if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }
    shard = nil
  }

  /// The next 64 random bits.
  @inlinable
  public mutating func next() -> UInt64 {
    let result = rotl(s1 &* 5, 7) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 45)
    return result
  }

  @inlinable @inline(__always)
  func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

  /// The full internal state, for saving and restoring a generator exactly.
  public var state: [UInt64] { [s0, s1, s2, s3] }

  /// A generator restored from ``state``; nil unless `state` has four words, not all zero.
  public init?(state: [UInt64]) {
    guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
    (s0, s1, s2, s3) = (state[0], state[1], state[2], state[3])
    shard = nil
  }

  /// A new generator whose stream is independent of this one; advances this generator.
  public mutating func split() -> SeededGenerator {
    SeededGenerator(seed: next(), stream: next())
  }

  /// Uniform `Float` in [0, 1) with 24 random bits.
  @inlinable
  public mutating func nextFloat() -> Float {
    Float(next() >> 40) * (1.0 / 16_777_216.0)
  }

  /// Uniform `Double` in [0, 1) with 53 random bits.
  @inlinable
  public mutating func nextDouble() -> Double {
    Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
  }

  /// Uniform integer in `0..<bound` without modulo bias. `bound` must be positive.
  @inlinable
  public mutating func nextInt(below bound: Int) -> Int {
    precondition(bound > 0, "nextInt(below:) needs a positive bound, got \(bound)")
    // Lemire's nearly divisionless method.
    let b = UInt64(bound)
    var m = next().multipliedFullWidth(by: b)
    if m.low < b {
      let threshold = (0 &- b) % b
      while m.low < threshold { m = next().multipliedFullWidth(by: b) }
    }
    return Int(m.high)
  }

  /// Uniform integer in `range`.
  @inlinable
  public mutating func nextInt(in range: Range<Int>) -> Int {
    range.lowerBound + nextInt(below: range.count)
  }

  /// A standard normal sample (Box-Muller on 53-bit uniforms, computed in `Double`).
  @inlinable
  public mutating func nextNormal() -> Float {
    Float(nextNormalDouble())
  }

  /// A standard normal sample as `Double`.
  @inlinable
  public mutating func nextNormalDouble() -> Double {
    // 1 - u is in (0, 1], so the log is finite.
    let u1 = 1.0 - nextDouble()
    let u2 = nextDouble()
    return (-2.0 * _log(u1)).squareRoot() * _cos(2.0 * Double.pi * u2)
  }

  /// Index drawn from unnormalised non-negative `weights` (at least one positive).
  public mutating func nextCategorical<C: Collection>(weights: C) -> Int
  where C.Element: BinaryFloatingPoint {
    var total = 0.0
    for w in weights { total += Double(w) }
    precondition(total > 0, "nextCategorical needs at least one positive weight")
    let target = nextDouble() * total
    var cumulative = 0.0
    var index = 0
    var last = 0
    for w in weights {
      cumulative += Double(w)
      if Double(w) > 0 { last = index }
      if target < cumulative { return index }
      index += 1
    }
    return last  // rounding at the top end
  }

  /// A Bernoulli draw with probability `p` of `true`.
  @inlinable
  public mutating func nextBool(probability p: Double = 0.5) -> Bool {
    nextDouble() < p
  }

  /// Fisher-Yates shuffle of `array` in place.
  public mutating func shuffle<T>(_ array: inout [T]) {
    guard array.count > 1 else { return }
    for i in stride(from: array.count - 1, to: 0, by: -1) {
      let j = nextInt(below: i + 1)
      if i != j { array.swapAt(i, j) }
    }
  }
}

/// SplitMix64, used to expand seeds into generator state.
@usableFromInline
struct SplitMix64 {
  @usableFromInline var state: UInt64
  @usableFromInline init(state: UInt64) { self.state = state }
  @usableFromInline mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

@usableFromInline @inline(__always) func _log(_ x: Double) -> Double { log(x) }
@usableFromInline @inline(__always) func _cos(_ x: Double) -> Double { cos(x) }

/// The stream tags of the project, in one place so no two consumers of one seed share a stream
/// by accident. Each value spells its name in ASCII.
public enum StreamTag {
  /// Parameter initialisation of a world model ("wm").
  public static let worldModelInitialisation: UInt64 = 0x776D
  /// Window sampling of a replay ("repl").
  public static let replaySampling: UInt64 = 0x7265_706C
  /// Random directions of the finite-difference gradient checker ("grad").
  public static let gradientCheck: UInt64 = 0x6772_6164
  /// Random directions of the parameter gradient checker ("para").
  public static let parameterGradientCheck: UInt64 = 0x7061_7261
  /// The random policy of `r2i render` ("rndr").
  public static let renderPolicy: UInt64 = 0x726E_6472
  /// Parameter initialisation of an agent's actor and critics ("agnt").
  public static let agentInitialisation: UInt64 = 0x6167_6E74
  /// Acting in a training run: policy and posterior samples, random prefill ("coll").
  public static let collector: UInt64 = 0x636F_6C6C
  /// Learner steps of a training run: latent samples and imagination ("lrnr").
  public static let learner: UInt64 = 0x6C72_6E72
  /// Greedy evaluation episodes of a training run ("eval").
  public static let evaluation: UInt64 = 0x6576_616C
  /// The environments' reset seeds in a training run ("envs").
  public static let environments: UInt64 = 0x656E_7673
  /// The open-loop pictures of a training run: their replay windows and latent samples ("openl").
  public static let openLoop: UInt64 = 0x6F70_656E_6C

  /// Every tag, for the uniqueness test.
  public static let all: [UInt64] = [
    worldModelInitialisation, replaySampling, gradientCheck, parameterGradientCheck, renderPolicy,
    agentInitialisation, collector, learner, evaluation, environments,
  ]
}

/// Rows `offset ..< offset + count` of a batch of `total` rows: the part of a batch one process
/// of a data-parallel job holds (see ``SeededGenerator/shard``).
public struct RowShard: Sendable, Hashable {
  public let offset: Int
  public let count: Int
  public let total: Int

  public init(offset: Int, count: Int, total: Int) {
    precondition(
      offset >= 0 && count >= 0 && offset + count <= total, "RowShard: rows \(offset)..<\(offset + count) of \(total)")
    self.offset = offset
    self.count = count
    self.total = total
  }

  /// The rows after this shard's.
  public var after: Int { total - offset - count }
}
