import Dispatch
import FileSupport
import Foundation
@_exported import Random

/// What one stored step holds (sizes are fixed per replay).
public struct ReplayLayout: Equatable, Sendable, Codable {
  /// Float observation entries per step (0: none).
  public var vectorSize: Int
  /// Image observation shape (height, width, channels), or nil.
  public var imageHeight: Int
  public var imageWidth: Int
  public var imageChannels: Int
  /// Float entries of the action (one-hot for discrete actions).
  public var actionSize: Int

  public init(vectorSize: Int = 0, image: (height: Int, width: Int, channels: Int)? = nil, actionSize: Int) {
    self.vectorSize = vectorSize
    imageHeight = image?.height ?? 0
    imageWidth = image?.width ?? 0
    imageChannels = image?.channels ?? 0
    self.actionSize = actionSize
  }

  /// Bytes of one image (0 without images).
  public var imageSize: Int { imageHeight * imageWidth * imageChannels }

  /// Bytes one step occupies in the replay.
  public var bytesPerStep: Int { vectorSize * 4 + imageSize + actionSize * 4 + 4 + 1 }
}

/// One environment step as stored: the observation o_t, the action a_t chosen after seeing it,
/// the reward r_t received on arriving at o_t, and the episode flags (`docs/method.md`, section 1).
public struct ReplayStep: Equatable, Sendable {
  public var vector: [Float]
  public var image: [UInt8]
  public var action: [Float]
  public var reward: Float
  public var isFirst: Bool
  public var isLast: Bool
  public var isTerminal: Bool

  public init(
    vector: [Float] = [], image: [UInt8] = [], action: [Float], reward: Float, isFirst: Bool,
    isLast: Bool, isTerminal: Bool
  ) {
    self.vector = vector
    self.image = image
    self.action = action
    self.reward = reward
    self.isFirst = isFirst
    self.isLast = isLast
    self.isTerminal = isTerminal
  }
}

/// A batch of sequences in contiguous row-major buffers, ready to become tensors.
public struct ReplayBatch: Equatable, Sendable {
  public let batchSize: Int
  public let length: Int
  public let layout: ReplayLayout
  /// [B, T, vectorSize]
  public var vectors: [Float]
  /// [B, T, H, W, C]
  public var images: [UInt8]
  /// [B, T, actionSize]
  public var actions: [Float]
  /// [B, T]
  public var rewards: [Float]
  /// [B, T] as 0 / 1; the first step of every window is forced to 1.
  public var isFirst: [Float]
  public var isLast: [Float]
  public var isTerminal: [Float]
  /// [B, T]: 1 for real steps, 0 for padding (episode mode).
  public var mask: [Float]
  /// Which stream each row came from and the stream position of its first step.
  public var streams: [Int]
  public var starts: [Int]

  /// A batch with no rows (a buffer to pass to ``Replay/sample(batchSize:length:mode:into:)``).
  public static func empty(layout: ReplayLayout) -> ReplayBatch {
    ReplayBatch(
      batchSize: 0, length: 0, layout: layout, vectors: [], images: [], actions: [], rewards: [],
      isFirst: [], isLast: [], isTerminal: [], mask: [], streams: [], starts: [])
  }

  /// Resizes the buffers for `batchSize` x `length` (keeping them when the sizes already match).
  /// Contents are unspecified until written.
  mutating func prepare(batchSize b: Int, length t: Int, layout l: ReplayLayout) {
    // New buffers are left uninitialised: the gather writes every element (zeros for padding).
    func fit<T: Numeric>(_ a: inout [T], _ n: Int) {
      if a.count != n { a = [T](unsafeUninitializedCapacity: n) { _, count in count = n } }
    }
    self = ReplayBatch(
      batchSize: b, length: t, layout: l, vectors: vectors, images: images, actions: actions,
      rewards: rewards, isFirst: isFirst, isLast: isLast, isTerminal: isTerminal, mask: mask,
      streams: streams, starts: starts)
    fit(&vectors, b * t * l.vectorSize)
    fit(&images, b * t * l.imageSize)
    fit(&actions, b * t * l.actionSize)
    fit(&rewards, b * t)
    fit(&isFirst, b * t)
    fit(&isLast, b * t)
    fit(&isTerminal, b * t)
    fit(&mask, b * t)
  }

  mutating func withMutableBuffers(
    _ body: (
      UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<UInt8>,
      UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
      UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
      UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>
    ) -> Void
  ) {
    vectors.withUnsafeMutableBufferPointer { a in
      images.withUnsafeMutableBufferPointer { b in
        actions.withUnsafeMutableBufferPointer { c in
          rewards.withUnsafeMutableBufferPointer { d in
            isFirst.withUnsafeMutableBufferPointer { e in
              isLast.withUnsafeMutableBufferPointer { f in
                isTerminal.withUnsafeMutableBufferPointer { g in
                  mask.withUnsafeMutableBufferPointer { h in body(a, b, c, d, e, f, g, h) }
                }
              }
            }
          }
        }
      }
    }
  }
}

/// How windows are chosen.
public enum SamplingMode: Equatable, Sendable {
  /// Every window of length T inside one stream equally likely (stride 1); windows may span
  /// episode boundaries (is_first marks them).
  case uniform
  /// Whole episodes: a random complete episode, from its first step; shorter episodes are padded
  /// (mask 0), longer ones are cut into chunks of T aligned to the episode start and one chunk
  /// is drawn.
  case episodes
  /// Like `uniform`, but a window starting `a` steps before the newest valid start of its stream
  /// has weight 2^(-a / halfLife).
  case recency(halfLife: Double)
}

/// In JSON: `"uniform"`, `"episodes"` or `"recency:1000"` (the half-life in steps); the form
/// older builds wrote for recency (`{"recency": {"halfLife": 1000}}`) is read too.
extension SamplingMode: Codable {
  enum CodingKeys: String, CodingKey { case recency }
  enum RecencyKeys: String, CodingKey { case halfLife }

  /// The plain form: `uniform`, `episodes`, `recency:<half-life>`.
  public var plainText: String {
    switch self {
    case .uniform: return "uniform"
    case .episodes: return "episodes"
    case .recency(let h): return "recency:\(h.rounded() == h && abs(h) < 1e15 ? String(Int(h)) : String(h))"
    }
  }

  /// Reads ``plainText``; nil when `text` is not one.
  public init?(plainText text: String) {
    switch text {
    case "uniform": self = .uniform
    case "episodes": self = .episodes
    default:
      guard text.hasPrefix("recency:"), let h = Double(text.dropFirst("recency:".count)) else { return nil }
      self = .recency(halfLife: h)
    }
  }

  public init(from decoder: Decoder) throws {
    if let name = try? decoder.singleValueContainer().decode(String.self) {
      guard let mode = SamplingMode(plainText: name) else {
        throw DecodingError.dataCorrupted(
          .init(
            codingPath: decoder.codingPath,
            debugDescription: "'\(name)' is not uniform, episodes or recency:<half-life>"))
      }
      self = mode
      return
    }
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let r = try c.nestedContainer(keyedBy: RecencyKeys.self, forKey: .recency)
    self = .recency(halfLife: try r.decode(Double.self, forKey: .halfLife))
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(plainText)
  }
}

/// Problems a user can cause with a replay (bad sizes, files).
public struct ReplayError: Error, CustomStringConvertible, Equatable {
  public let problem: String
  public init(_ problem: String) { self.problem = problem }
  public var description: String { "replay: \(problem)" }
}

/// Episode-aware sequence replay for several parallel environment streams.
///
/// Steps are kept in a preallocated arena of `capacity` steps in insertion order; when full, the
/// oldest step is evicted (FIFO), so memory is fixed (``memoryBytes``). Windows never cross from
/// one stream into another. Insertion and sampling may run on different threads.
///
/// ```swift
/// let replay = try Replay(layout: ReplayLayout(vectorSize: 64, actionSize: 4), capacity: 1_000_000, seed: 0)
/// try replay.insert(step, stream: envIndex)
/// if let batch = try replay.sample(batchSize: 16, length: 64) { ... }
/// try replay.save(to: URL(fileURLWithPath: "runs/x/replay"))
/// ```
public final class Replay: @unchecked Sendable {
  public let layout: ReplayLayout
  public let capacity: Int
  let lock = NSLock()

  // Arena, one slot per step.
  var vectors: [Float]
  var images: [UInt8]
  var actions: [Float]
  var rewards: [Float]
  var flags: [UInt8]
  /// Segment of each slot, and the global sequence number of the step it holds.
  var slotSegment: [Int32]
  var slotSequence: [Int]
  /// Insertion order: the ring of occupied slots starts at `oldest`.
  var oldest = 0
  var filled = 0
  /// Steps inserted since creation (the global sequence number of the next step).
  public var inserted: Int { lock.withLock { insertedCount } }
  var insertedCount = 0

  /// A run of consecutive steps of one stream.
  struct Segment {
    var stream: Int
    /// Stream position of the first kept step.
    var firstIndex: Int
    var slots: [Int32]
    var head: Int
    var count: Int { slots.count - head }
    func slot(_ i: Int) -> Int { Int(slots[head + i]) }
  }
  var segments: [Segment] = []
  /// The segment new steps of each stream go to.
  var active: [Int: Int] = [:]
  /// Next stream position per stream.
  var nextIndex: [Int: Int] = [:]
  var rng: SeededGenerator
  /// Chunk files this replay saved to, or loaded from, one folder: saves reuse them without
  /// encoding or checksumming their steps again (see ``save(to:chunkSize:)``).
  var persisted: ReplayFormat.PersistedChunks?

  /// A replay with a fixed `capacity` in steps; `seed` drives sampling.
  public init(layout: ReplayLayout, capacity: Int, seed: UInt64 = 0) throws {
    guard capacity >= 1 else { throw ReplayError("capacity must be at least 1 step, got \(capacity)") }
    guard layout.vectorSize >= 0, layout.actionSize >= 0, layout.imageSize >= 0 else {
      throw ReplayError("layout sizes must be non-negative: \(layout)")
    }
    let bytes = Double(capacity) * Double(layout.bytesPerStep)
    guard bytes < 1e12 else {
      throw ReplayError(
        "capacity \(capacity) x \(layout.bytesPerStep) bytes per step is too large; give a smaller capacity")
    }
    self.layout = layout
    self.capacity = capacity
    vectors = [Float](repeating: 0, count: capacity * layout.vectorSize)
    images = [UInt8](repeating: 0, count: capacity * layout.imageSize)
    actions = [Float](repeating: 0, count: capacity * layout.actionSize)
    rewards = [Float](repeating: 0, count: capacity)
    flags = [UInt8](repeating: 0, count: capacity)
    slotSegment = [Int32](repeating: -1, count: capacity)
    slotSequence = [Int](repeating: -1, count: capacity)
    rng = SeededGenerator(seed: seed, stream: StreamTag.replaySampling)
  }

  /// Bytes held by the step arena (fixed at creation).
  public var memoryBytes: Int { capacity * layout.bytesPerStep }

  /// Steps currently stored.
  public var count: Int { lock.withLock { filled } }

  /// Steps currently stored per stream.
  public func counts() -> [Int: Int] {
    lock.withLock {
      var out: [Int: Int] = [:]
      for s in segments { out[s.stream, default: 0] += s.count }
      return out
    }
  }

  // MARK: Inserting

  /// Appends a step to `stream`; when full, the oldest stored step is evicted first.
  public func insert(_ step: ReplayStep, stream: Int) throws {
    guard step.vector.count == layout.vectorSize else {
      throw ReplayError("step has \(step.vector.count) vector entries, layout needs \(layout.vectorSize)")
    }
    guard step.image.count == layout.imageSize else {
      throw ReplayError("step has \(step.image.count) image bytes, layout needs \(layout.imageSize)")
    }
    guard step.action.count == layout.actionSize else {
      throw ReplayError("step has \(step.action.count) action entries, layout needs \(layout.actionSize)")
    }
    guard stream >= 0 else { throw ReplayError("stream ids must be >= 0, got \(stream)") }
    lock.withLock { appendLocked(step, stream: stream) }
  }

  /// Appends one step for each of several streams (one lock acquisition).
  public func insert(_ steps: [ReplayStep], streams: [Int]) throws {
    guard steps.count == streams.count else {
      throw ReplayError("\(steps.count) steps for \(streams.count) stream ids")
    }
    for (s, id) in zip(steps, streams) {
      guard s.vector.count == layout.vectorSize, s.image.count == layout.imageSize,
        s.action.count == layout.actionSize, id >= 0
      else { throw ReplayError("a step of stream \(id) does not match the layout \(layout)") }
    }
    lock.withLock { for (s, id) in zip(steps, streams) { appendLocked(s, stream: id) } }
  }

  func appendLocked(_ step: ReplayStep, stream: Int) {
    if filled == capacity { evictOldestLocked() }
    let slot = (oldest + filled) % capacity
    filled += 1
    let l = layout
    if l.vectorSize > 0 {
      vectors.withUnsafeMutableBufferPointer { d in
        step.vector.withUnsafeBufferPointer { s in
          (d.baseAddress! + slot * l.vectorSize).update(from: s.baseAddress!, count: l.vectorSize)
        }
      }
    }
    if l.imageSize > 0 {
      images.withUnsafeMutableBufferPointer { d in
        step.image.withUnsafeBufferPointer { s in
          (d.baseAddress! + slot * l.imageSize).update(from: s.baseAddress!, count: l.imageSize)
        }
      }
    }
    if l.actionSize > 0 {
      actions.withUnsafeMutableBufferPointer { d in
        step.action.withUnsafeBufferPointer { s in
          (d.baseAddress! + slot * l.actionSize).update(from: s.baseAddress!, count: l.actionSize)
        }
      }
    }
    rewards[slot] = step.reward
    flags[slot] = (step.isFirst ? 1 : 0) | (step.isLast ? 2 : 0) | (step.isTerminal ? 4 : 0)
    let index = nextIndex[stream, default: 0]
    nextIndex[stream] = index + 1
    let seg: Int
    if let a = active[stream] {
      seg = a
    } else {
      segments.append(Segment(stream: stream, firstIndex: index, slots: [], head: 0))
      seg = segments.count - 1
      active[stream] = seg
    }
    segments[seg].slots.append(Int32(slot))
    slotSegment[slot] = Int32(seg)
    slotSequence[slot] = insertedCount
    insertedCount += 1
  }

  func evictOldestLocked() {
    let slot = oldest
    let seg = Int(slotSegment[slot])
    segments[seg].head += 1
    segments[seg].firstIndex += 1
    if segments[seg].head > 1024 && segments[seg].head * 2 > segments[seg].slots.count {
      segments[seg].slots.removeFirst(segments[seg].head)
      segments[seg].head = 0
    }
    slotSegment[slot] = -1
    oldest = (oldest + 1) % capacity
    filled -= 1
  }

  /// Every stored step of each stream in order (for inspection and tests).
  public func stepsByStream() -> [Int: [ReplayStep]] {
    lock.withLock {
      var out: [Int: [ReplayStep]] = [:]
      for s in segments {
        out[s.stream, default: []] += (0..<s.count).map { stepLocked(slot: s.slot($0)) }
      }
      return out
    }
  }

  func stepLocked(slot: Int) -> ReplayStep {
    let l = layout
    return ReplayStep(
      vector: Array(vectors[(slot * l.vectorSize)..<((slot + 1) * l.vectorSize)]),
      image: Array(images[(slot * l.imageSize)..<((slot + 1) * l.imageSize)]),
      action: Array(actions[(slot * l.actionSize)..<((slot + 1) * l.actionSize)]),
      reward: rewards[slot], isFirst: flags[slot] & 1 != 0, isLast: flags[slot] & 2 != 0,
      isTerminal: flags[slot] & 4 != 0)
  }

  // MARK: Sampling

  /// A batch of `batchSize` sequences of `length` steps, or nil when no window fits yet
  /// (uniform and recency modes need a stream with at least `length` steps; episode mode a
  /// complete episode).
  public func sample(batchSize: Int, length: Int, mode: SamplingMode = .uniform) throws -> ReplayBatch? {
    var batch = ReplayBatch.empty(layout: layout)
    return try sample(batchSize: batchSize, length: length, mode: mode, into: &batch) ? batch : nil
  }

  /// Like ``sample(batchSize:length:mode:)`` but writes into `batch`, reusing its buffers when
  /// they already have the right sizes (no allocation in a training loop). Returns false, leaving
  /// `batch` unchanged, when no window fits yet.
  public func sample(
    batchSize: Int, length: Int, mode: SamplingMode = .uniform, into batch: inout ReplayBatch
  ) throws -> Bool {
    var own: SeededGenerator? = nil
    return try sample(batchSize: batchSize, length: length, mode: mode, into: &batch, generator: &own)
  }

  /// Like ``sample(batchSize:length:mode:)`` but draws with `generator` instead of the replay's
  /// own generator, which stays as it was: a look at the replay (a picture, a diagnostic) that
  /// leaves the batches a learner draws unchanged.
  public func sample(
    batchSize: Int, length: Int, mode: SamplingMode = .uniform, using generator: inout SeededGenerator
  ) throws -> ReplayBatch? {
    var batch = ReplayBatch.empty(layout: layout)
    var external: SeededGenerator? = generator
    defer { generator = external! }
    return try sample(batchSize: batchSize, length: length, mode: mode, into: &batch, generator: &external)
      ? batch : nil
  }

  /// Draws with `generator`, or the replay's own generator when it is nil.
  func sample(
    batchSize: Int, length: Int, mode: SamplingMode, into batch: inout ReplayBatch,
    generator: inout SeededGenerator?
  ) throws -> Bool {
    guard batchSize >= 1, length >= 1 else {
      throw ReplayError("batch size and length must be positive, got \(batchSize) x \(length)")
    }
    if case .recency(let h) = mode, !(h > 0) {
      throw ReplayError("recency half-life must be positive, got \(h)")
    }
    return lock.withLock { () -> Bool in
      var rng = generator ?? self.rng
      defer { if generator == nil { self.rng = rng } else { generator = rng } }
      var picks: [(segment: Int, start: Int, valid: Int)] = []
      picks.reserveCapacity(batchSize)
      switch mode {
      case .uniform, .recency:
        let counts = segments.map { max(0, $0.count - length + 1) }
        let total = counts.reduce(0, +)
        guard total > 0 else { return false }
        var weights: [Double] = []
        var halfLife = 0.0
        if case .recency(let h) = mode {
          halfLife = h
          // Sum of 2^(-a/h) for a in 0..<n, per segment (a geometric series).
          let q = pow(2.0, -1 / h)
          weights = counts.map { n in n == 0 ? 0 : (1 - pow(q, Double(n))) / (1 - q) }
        }
        for _ in 0..<batchSize {
          if weights.isEmpty {
            var r = rng.nextInt(below: total)
            var s = 0
            while r >= counts[s] {
              r -= counts[s]
              s += 1
            }
            picks.append((s, r, length))
          } else {
            let s = rng.nextCategorical(weights: weights)
            // Inverse CDF of the truncated geometric over ages 0..<n.
            let n = Double(counts[s])
            let q = pow(2.0, -1 / halfLife)
            let u = rng.nextDouble()
            var age = Int((log(1 - u * (1 - pow(q, n))) / log(q)).rounded(.down))
            age = min(max(age, 0), counts[s] - 1)
            picks.append((s, counts[s] - 1 - age, length))
          }
        }
      case .episodes:
        // Complete episodes: start with is_first (or a kept stream start) and end with is_last.
        var episodes: [(segment: Int, start: Int, length: Int)] = []
        for (si, seg) in segments.enumerated() {
          var start: Int? = nil
          for i in 0..<seg.count {
            let f = flags[seg.slot(i)]
            if f & 1 != 0 { start = i }
            if f & 2 != 0, let s = start {
              episodes.append((si, s, i - s + 1))
              start = nil
            }
          }
        }
        guard !episodes.isEmpty else { return false }
        for _ in 0..<batchSize {
          let e = episodes[rng.nextInt(below: episodes.count)]
          let chunks = (e.length + length - 1) / length
          let c = rng.nextInt(below: chunks)
          picks.append((e.segment, e.start + c * length, min(length, e.length - c * length)))
        }
      }
      gatherLocked(picks, length: length, into: &batch)
      return true
    }
  }

  func gatherLocked(
    _ picks: [(segment: Int, start: Int, valid: Int)], length: Int, into batch: inout ReplayBatch
  ) {
    let l = layout
    let b = picks.count
    batch.prepare(batchSize: b, length: length, layout: l)
    batch.streams = picks.map { segments[$0.segment].stream }
    batch.starts = picks.map { segments[$0.segment].firstIndex + $0.start }
    // Slot of every (row, t), -1 for padding, resolved once so the copy can run in parallel.
    var slotOf = [Int](repeating: -1, count: b * length)
    for (row, p) in picks.enumerated() {
      let seg = segments[p.segment]
      for t in 0..<p.valid { slotOf[row * length + t] = seg.slot(p.start + t) }
    }
    let vs = l.vectorSize
    let isz = l.imageSize
    let asz = l.actionSize
    vectors.withUnsafeBufferPointer { sv in
      images.withUnsafeBufferPointer { si in
        actions.withUnsafeBufferPointer { sa in
          rewards.withUnsafeBufferPointer { sr in
            flags.withUnsafeBufferPointer { sf in
              batch.withMutableBuffers { dv, di, da, dr, dfirst, dlast, dterm, dmask in
                nonisolated(unsafe) let (SV, SI, SA, SR, SF) = (
                  sv.baseAddress, si.baseAddress, sa.baseAddress, sr.baseAddress!, sf.baseAddress!
                )
                nonisolated(unsafe) let (DV, DI, DA) = (dv.baseAddress, di.baseAddress, da.baseAddress)
                nonisolated(unsafe) let (DR, DF, DL, DT, DM) = (
                  dr.baseAddress!, dfirst.baseAddress!, dlast.baseAddress!, dterm.baseAddress!, dmask.baseAddress!
                )
                let slots = slotOf
                let chunks =
                  b * length * (isz + vs * 4) > 1 << 20 ? min(b, ProcessInfo.processInfo.activeProcessorCount) : 1
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                  for row in (b * c / chunks)..<(b * (c + 1) / chunks) {
                    for t in 0..<length {
                      let o = row * length + t
                      let slot = slots[o]
                      if slot < 0 {
                        if vs > 0 { (DV! + o * vs).update(repeating: 0, count: vs) }
                        if isz > 0 { (DI! + o * isz).update(repeating: 0, count: isz) }
                        if asz > 0 { (DA! + o * asz).update(repeating: 0, count: asz) }
                        DR[o] = 0
                        DF[o] = 0
                        DL[o] = 0
                        DT[o] = 0
                        DM[o] = 0
                        continue
                      }
                      if vs > 0 { (DV! + o * vs).update(from: SV! + slot * vs, count: vs) }
                      if isz > 0 { (DI! + o * isz).update(from: SI! + slot * isz, count: isz) }
                      if asz > 0 { (DA! + o * asz).update(from: SA! + slot * asz, count: asz) }
                      DR[o] = SR[slot]
                      let f = SF[slot]
                      DF[o] = t == 0 || f & 1 != 0 ? 1 : 0
                      DL[o] = f & 2 != 0 ? 1 : 0
                      DT[o] = f & 4 != 0 ? 1 : 0
                      DM[o] = 1
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
