import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The heap buffer behind a ``Tensor``: 64-byte aligned `Float` elements.
///
/// Tensors share a storage until one of them is mutated (copy on write). Allocation is counted
/// so that benchmarks and tests can report live and peak tensor memory
/// (``TensorMemory``).
@usableFromInline
final class TensorStorage: @unchecked Sendable {
  @usableFromInline let base: UnsafeMutablePointer<Float>
  @usableFromInline let count: Int

  /// Allocates `count` elements, uninitialised (any bit pattern is a valid `Float`).
  @usableFromInline
  init(uninitializedCount count: Int) {
    self.count = count
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    let raw = BufferCache.allocate(bytes: bytes)
    base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    TensorMemory.didAllocate(bytes: bytes)
  }

  @usableFromInline
  convenience init(repeating value: Float, count: Int) {
    self.init(uninitializedCount: count)
    if value == 0 {
      memset(base, 0, count * MemoryLayout<Float>.stride)
    } else {
      base.initialize(repeating: value, count: count)
    }
  }

  @usableFromInline
  func copy() -> TensorStorage {
    let s = TensorStorage(uninitializedCount: count)
    s.base.update(from: base, count: count)
    return s
  }

  deinit {
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    TensorMemory.didFree(bytes: bytes)
    BufferCache.release(UnsafeMutableRawPointer(base), bytes: bytes)
  }
}

/// Live and peak bytes held by tensor storage in this process.
///
/// ```swift
/// TensorMemory.resetPeak()
/// let y = model(x)
/// print(TensorMemory.peakBytes)   // high-water mark since the reset
/// ```
public enum TensorMemory {
  static let live = Atomic<Int>(0)
  static let peak = Atomic<Int>(0)

  @usableFromInline
  static func didAllocate(bytes: Int) {
    let now = live.add(bytes, ordering: .relaxed).newValue
    var seen = peak.load(ordering: .relaxed)
    while now > seen {
      let (exchanged, original) = peak.compareExchange(
        expected: seen, desired: now, ordering: .relaxed)
      if exchanged { break }
      seen = original
    }
  }

  @usableFromInline
  static func didFree(bytes: Int) {
    live.subtract(bytes, ordering: .relaxed)
  }

  /// Bytes currently held by all tensors.
  public static var liveBytes: Int { live.load(ordering: .relaxed) }

  /// The largest value of ``liveBytes`` since the process started or ``resetPeak()``.
  public static var peakBytes: Int { peak.load(ordering: .relaxed) }

  /// Sets the peak to the current live value.
  public static func resetPeak() {
    peak.store(live.load(ordering: .relaxed), ordering: .relaxed)
  }

  /// Bytes of freed large buffers kept for reuse (not counted in ``liveBytes``).
  public static var cachedBytes: Int { BufferCache.state.withLock { $0.cachedBytes } }

  /// The most idle bytes the buffer cache keeps; beyond it freed buffers go back to the system.
  /// Defaults to three eighths of physical memory, at most 12 GiB (a long-sequence update keeps
  /// several GiB of activations; a smaller cache sends them back to the system each step and
  /// pays the page faults again). Set 0 to disable caching.
  public static var cacheLimitBytes: Int {
    get { BufferCache.limit.load(ordering: .relaxed) }
    set {
      BufferCache.limit.store(max(0, newValue), ordering: .relaxed)
      if newValue <= 0 { releaseCache() }
    }
  }

  /// Returns every cached idle buffer to the system.
  public static func releaseCache() { BufferCache.drain() }

  /// Large allocations served from the cache, served fresh, and frees the full cache refused.
  public static var cacheStatistics: (hits: Int, misses: Int, rejected: Int) {
    (
      BufferCache.hits.load(ordering: .relaxed), BufferCache.misses.load(ordering: .relaxed),
      BufferCache.rejected.load(ordering: .relaxed)
    )
  }
}

/// Keeps freed large buffers, by size class, for reuse.
///
/// A fresh large allocation costs a page fault per 4 KiB page on first touch, several times the
/// cost of an elementwise op over the same floats. Training repeats the
/// same shapes every step, so reusing buffers removes that cost. Buffers under 64 KiB go
/// straight to `malloc`, which already recycles them.
enum BufferCache {
  struct State: ~Copyable {
    /// Idle buffers by size class, as addresses (kept as integers so the state is Sendable).
    var free: [Int: [UInt]] = [:]
    var cachedBytes = 0
  }
  static let state = Mutex(State())
  static let limit = Atomic<Int>(defaultLimit)
  static let minimumCachedBytes = 1 << 16
  static let hits = Atomic<Int>(0)
  static let misses = Atomic<Int>(0)
  static let rejected = Atomic<Int>(0)

  static var defaultLimit: Int {
    let pages = sysconf(Int32(_SC_PHYS_PAGES))
    let pageSize = sysconf(Int32(_SC_PAGESIZE))
    let physical = pages > 0 && pageSize > 0 ? pages * pageSize : 8 << 30
    return min(12 << 30, physical / 8 * 3)
  }

  /// Rounds large sizes up to one of 8 classes per power of two (at most 12.5% slack).
  static func sizeClass(_ bytes: Int) -> Int {
    if bytes < minimumCachedBytes { return bytes }
    let top = Int.bitWidth - 1 - bytes.leadingZeroBitCount
    let step = 1 << (top - 3)
    return (bytes + step - 1) / step * step
  }

  static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
    let size = sizeClass(bytes)
    if size >= minimumCachedBytes {
      let reused: UInt? = state.withLock { s in
        guard var list = s.free[size], let p = list.popLast() else { return nil }
        s.free[size] = list
        s.cachedBytes -= size
        return p
      }
      if let reused, let p = UnsafeMutableRawPointer(bitPattern: reused) {
        hits.add(1, ordering: .relaxed)
        return p
      }
      misses.add(1, ordering: .relaxed)
    }
    var raw: UnsafeMutableRawPointer? = nil
    let status = posix_memalign(&raw, 64, size)
    guard status == 0, let raw else {
      fatalError("Tensor: could not allocate \(size) bytes (posix_memalign status \(status))")
    }
    return raw
  }

  static func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
    let size = sizeClass(bytes)
    if size >= minimumCachedBytes {
      let cap = limit.load(ordering: .relaxed)
      let address = UInt(bitPattern: pointer)
      let kept: Bool = state.withLock { s in
        guard s.cachedBytes + size <= cap else { return false }
        s.free[size, default: []].append(address)
        s.cachedBytes += size
        return true
      }
      if kept { return }
      rejected.add(1, ordering: .relaxed)
    }
    free(pointer)
  }

  static func drain() {
    let addresses: [UInt] = state.withLock { s in
      let all = s.free.values.flatMap { $0 }
      s.free = [:]
      s.cachedBytes = 0
      return all
    }
    for a in addresses { free(UnsafeMutableRawPointer(bitPattern: a)) }
  }
}
