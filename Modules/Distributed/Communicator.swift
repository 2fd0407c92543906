import Foundation

/// The processes (ranks) of a data-parallel job and the collective operations between them:
/// every rank calls each operation in the same order with buffers of the same length, and
/// returns when all have taken part. ``SingleProcess`` is the job of one; ``MPICommunicator``
/// spans the ranks `mpirun` started. Nothing outside this module calls MPI.
///
/// A failure inside MPI ends every rank (MPI's default): the operations do not throw.
public protocol Communicator: AnyObject, Sendable {
  /// This process's index, 0 ..< ``size``; rank 0 writes the job's shared files.
  var rank: Int { get }
  /// The number of ranks.
  var size: Int { get }
  /// Returns once every rank has called it.
  func barrier()
  /// Replaces `bytes` on every rank with rank `root`'s.
  func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int)
  /// Replaces `values` on every rank with the elementwise sum over the ranks.
  func sum(_ values: UnsafeMutableBufferPointer<Float>)
  /// Replaces `values` on every rank with the elementwise sum over the ranks.
  func sum(_ values: UnsafeMutableBufferPointer<Double>)
  /// Replaces `values` on every rank with the elementwise maximum over the ranks.
  func maximum(_ values: UnsafeMutableBufferPointer<Double>)
  /// Every rank's `bytes` (any length per rank), one array per rank in rank order, on every rank.
  func allGather(_ bytes: [UInt8]) -> [[UInt8]]
  /// Ends every rank of the job with `status` (after this process printed why).
  func abort(status: Int32) -> Never
  /// Time and bytes spent in the collectives so far (for measurements).
  var statistics: CommunicationStatistics { get }
}

/// What the collectives of one communicator have cost so far.
public struct CommunicationStatistics: Sendable, Equatable {
  /// Calls of ``Communicator/sum(_:)-(UnsafeMutableBufferPointer<Float>)`` and their bytes and seconds.
  public var sums = 0
  public var sumBytes = 0
  public var sumSeconds = 0.0
  /// Every other collective's calls and seconds.
  public var others = 0
  public var otherSeconds = 0.0

  public init() {}
}

/// The job of one process: rank 0 of 1, every collective a no-op.
public final class SingleProcess: Communicator {
  public init() {}
  public var rank: Int { 0 }
  public var size: Int { 1 }
  public func barrier() {}
  public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) {
    precondition(root == 0, "broadcast from rank \(root) in a job of one")
  }
  public func sum(_ values: UnsafeMutableBufferPointer<Float>) {}
  public func sum(_ values: UnsafeMutableBufferPointer<Double>) {}
  public func maximum(_ values: UnsafeMutableBufferPointer<Double>) {}
  public func allGather(_ bytes: [UInt8]) -> [[UInt8]] { [bytes] }
  public func abort(status: Int32) -> Never { exit(status) }
  public var statistics: CommunicationStatistics { CommunicationStatistics() }
}

extension Communicator {
  /// True on rank 0.
  public var isRoot: Bool { rank == 0 }

  /// The sum over the ranks of each of `values`.
  public func sum(_ values: [Double]) -> [Double] {
    var out = values
    out.withUnsafeMutableBufferPointer { sum($0) }
    return out
  }

  /// The largest of every rank's `value`.
  public func maximum(_ value: Double) -> Double {
    var out = [value]
    out.withUnsafeMutableBufferPointer { maximum($0) }
    return out[0]
  }

  /// True on every rank when `flag` is true on any.
  public func any(_ flag: Bool) -> Bool { maximum(flag ? 1 : 0) > 0 }

  /// Rank `root`'s `bytes` on every rank (each rank passes a buffer; only the count of rank
  /// `root`'s matters, the others receive it first).
  public func broadcast(_ data: Data, from root: Int) -> Data {
    var count = [Double(data.count)]
    count.withUnsafeMutableBufferPointer { b in broadcast(UnsafeMutableRawBufferPointer(b), from: root) }
    var bytes = [UInt8](repeating: 0, count: Int(count[0]))
    if rank == root { bytes = [UInt8](data) }
    bytes.withUnsafeMutableBytes { broadcast($0, from: root) }
    return Data(bytes)
  }

  /// Every rank's `values` (any count per rank), one array per rank in rank order.
  public func allGather<T: BitwiseCopyable>(_ values: [T]) -> [[T]] {
    let bytes = values.withUnsafeBytes { [UInt8]($0) }
    return allGather(bytes).map { part in
      precondition(part.count % MemoryLayout<T>.stride == 0, "allGather: a rank sent a partial value")
      return [T](unsafeUninitializedCapacity: part.count / MemoryLayout<T>.stride) { buffer, count in
        part.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
        count = part.count / MemoryLayout<T>.stride
      }
    }
  }
}
