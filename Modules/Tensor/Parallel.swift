internal import COpenBLAS
import Dispatch
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// How many threads the numerical kernels use.
///
/// Large elementwise loops, reductions, convolutions' im2col and the SSM scan split their work
/// into at most ``threadCount`` chunks with Dispatch. Matrix products are split the same way by
/// default (``GEMMThreading/split``): OpenBLAS runs single-threaded on each part, so only one
/// thread pool exists: OpenBLAS's own pool busy-waits between calls and would compete with the
/// elementwise threads (`r2i-bench tensor` compares the two). The default is the number of
/// online cores. Chunk
/// boundaries depend only on the problem size and the thread count, so results are repeatable
/// for a fixed thread count.
///
/// ```swift
/// Parallelism.setThreadCount(1)   // single-threaded kernels and BLAS
/// ```
public enum Parallelism {
  static let threads = Atomic<Int>(Parallelism.onlineCores)

  /// Who parallelises matrix products.
  public enum GEMMThreading: Int, Sendable {
    /// This project splits large products across ``threadCount`` threads; OpenBLAS runs
    /// single-threaded (the default).
    case split
    /// OpenBLAS's own thread pool with ``threadCount`` threads.
    case blas
  }

  static let gemmMode = Atomic<Int>(GEMMThreading.split.rawValue)
  nonisolated(unsafe) static var blasConfigured = false

  /// The current matrix-product threading.
  public static var gemmThreading: GEMMThreading {
    GEMMThreading(rawValue: gemmMode.load(ordering: .relaxed)) ?? .split
  }

  /// Chooses who parallelises matrix products (applies OpenBLAS's thread count accordingly).
  public static func setGEMMThreading(_ mode: GEMMThreading) {
    gemmMode.store(mode.rawValue, ordering: .relaxed)
    openblas_set_num_threads(mode == .split ? 1 : Int32(threads.load(ordering: .relaxed)))
  }

  /// The number of online cores of this machine.
  public static let onlineCores: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

  /// A thread count for the current task only (see ``withThreadCount(_:_:)``).
  @TaskLocal static var scopedCount: Int?

  /// The number of threads the kernels use in this task: the scoped count if one is set,
  /// otherwise the process-wide setting.
  public static var threadCount: Int { scopedCount ?? threads.load(ordering: .relaxed) }

  /// Runs `body` with this task's kernels limited to `count` threads, leaving the process-wide
  /// setting (and OpenBLAS, whose pool is process-wide) unchanged.
  public static func withThreadCount<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
    precondition(count >= 1, "Parallelism.withThreadCount needs at least 1 thread, got \(count)")
    return try $scopedCount.withValue(count) { try body() }
  }

  /// Sets the number of threads for the project's kernels and for OpenBLAS.
  /// - Parameter count: at least 1.
  public static func setThreadCount(_ count: Int) {
    precondition(count >= 1, "Parallelism.setThreadCount needs at least 1 thread, got \(count)")
    threads.store(count, ordering: .relaxed)
    openblas_set_num_threads(gemmThreading == .split ? 1 : Int32(count))
  }

  /// Puts OpenBLAS in the state the current settings want (called before the first product).
  @usableFromInline
  static func configureBLASOnce() {
    if blasConfigured { return }
    blasConfigured = true
    openblas_set_num_threads(gemmThreading == .split ? 1 : Int32(threads.load(ordering: .relaxed)))
  }

  /// The thread count OpenBLAS reports.
  public static var blasThreadCount: Int { Int(openblas_get_num_threads()) }

  /// Calls `body` on disjoint chunks that cover `0..<count`, in parallel when the work is large.
  ///
  /// - Parameters:
  ///   - count: the number of items.
  ///   - grain: the minimum number of items worth a thread of its own.
  ///   - body: receives a chunk of item indices; it must only write to locations its chunk owns.
  @inlinable
  public static func forEachChunk(
    count: Int, grain: Int, _ body: (Range<Int>) -> Void
  ) {
    let chunks = chunkCount(count: count, grain: grain)
    if chunks <= 1 {
      if count > 0 { body(0..<count) }
      return
    }
    WorkerPool.shared.run(chunks: chunks) { c in
      let lo = count * c / chunks
      let hi = count * (c + 1) / chunks
      if lo < hi { body(lo..<hi) }
    }
  }

  /// The number of chunks ``forEachChunk(count:grain:_:)`` would use.
  @inlinable
  public static func chunkCount(count: Int, grain: Int) -> Int {
    let t = threadCount
    if t <= 1 || count <= grain { return 1 }
    return min(t, (count + grain - 1) / max(grain, 1))
  }

  /// Calls `body(i)` for `i` in `0..<iterations` in parallel (one task per iteration).
  @inlinable
  public static func forEach(iterations: Int, _ body: (Int) -> Void) {
    if iterations <= 1 || threadCount <= 1 {
      for i in 0..<iterations { body(i) }
      return
    }
    WorkerPool.shared.run(chunks: iterations) { i in body(i) }
  }
}
