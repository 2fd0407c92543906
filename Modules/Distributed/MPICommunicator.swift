import COpenMPI
import Foundation

/// The ranks `mpirun` started, over MPI's world communicator. Create it once per process, on
/// the thread that will call the collectives (``Job/world`` does); MPI is finalised when the
/// process exits normally, and ``abort(status:)`` ends every rank.
public final class MPICommunicator: Communicator, @unchecked Sendable {
  public let rank: Int
  public let size: Int
  private let lock = NSLock()
  private var counters = CommunicationStatistics()
  private let world = r2i_mpi_comm_world()

  /// Initialises MPI (thread level "funneled": only this thread calls MPI).
  init() {
    var provided: Int32 = 0
    MPI_Init_thread(nil, nil, r2i_mpi_thread_funneled(), &provided)
    var r: Int32 = 0
    var s: Int32 = 0
    MPI_Comm_rank(world, &r)
    MPI_Comm_size(world, &s)
    rank = Int(r)
    size = Int(s)
    atexit { MPICommunicator.finalize() }
  }

  private static func finalize() {
    var finalized: Int32 = 0
    MPI_Finalized(&finalized)
    if finalized == 0 { MPI_Finalize() }
  }

  public var statistics: CommunicationStatistics {
    lock.lock()
    defer { lock.unlock() }
    return counters
  }

  private func timed<R>(sumBytes: Int? = nil, _ body: () -> R) -> R {
    let start = DispatchTime.now().uptimeNanoseconds
    let r = body()
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    lock.lock()
    if let sumBytes {
      counters.sums += 1
      counters.sumBytes += sumBytes
      counters.sumSeconds += seconds
    } else {
      counters.others += 1
      counters.otherSeconds += seconds
    }
    lock.unlock()
    return r
  }

  /// MPI counts are 32-bit: larger buffers go in pieces.
  private static let piece = 1 << 28

  public func barrier() { timed { _ = MPI_Barrier(world) } }

  public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) {
    timed {
      var offset = 0
      while offset < bytes.count {
        let n = min(Self.piece, bytes.count - offset)
        MPI_Bcast(bytes.baseAddress! + offset, Int32(n), r2i_mpi_byte(), Int32(root), world)
        offset += n
      }
    }
  }

  public func sum(_ values: UnsafeMutableBufferPointer<Float>) {
    reduce(values, type: r2i_mpi_float(), op: r2i_mpi_sum(), bytes: values.count * 4)
  }

  public func sum(_ values: UnsafeMutableBufferPointer<Double>) {
    reduce(values, type: r2i_mpi_double(), op: r2i_mpi_sum(), bytes: nil)
  }

  public func maximum(_ values: UnsafeMutableBufferPointer<Double>) {
    reduce(values, type: r2i_mpi_double(), op: r2i_mpi_max(), bytes: nil)
  }

  private func reduce<T>(_ values: UnsafeMutableBufferPointer<T>, type: MPI_Datatype, op: MPI_Op, bytes: Int?) {
    timed(sumBytes: bytes) {
      var offset = 0
      while offset < values.count {
        let n = min(Self.piece / MemoryLayout<T>.stride, values.count - offset)
        MPI_Allreduce(r2i_mpi_in_place(), values.baseAddress! + offset, Int32(n), type, op, world)
        offset += n
      }
    }
  }

  public func allGather(_ bytes: [UInt8]) -> [[UInt8]] {
    timed {
      var counts = [Int32](repeating: 0, count: size)
      var mine = Int32(bytes.count)
      MPI_Allgather(&mine, 1, r2i_mpi_int(), &counts, 1, r2i_mpi_int(), world)
      var offsets = [Int32](repeating: 0, count: size)
      for r in 1..<max(1, size) { offsets[r] = offsets[r - 1] + counts[r - 1] }
      let total = Int(counts.reduce(0, +))
      var all = [UInt8](repeating: 0, count: total)
      bytes.withUnsafeBytes { send in
        all.withUnsafeMutableBytes { receive in
          _ = MPI_Allgatherv(
            send.baseAddress, mine, r2i_mpi_byte(), receive.baseAddress, &counts, &offsets, r2i_mpi_byte(), world)
        }
      }
      return (0..<size).map { r in Array(all[Int(offsets[r])..<Int(offsets[r] + counts[r])]) }
    }
  }

  public func abort(status: Int32) -> Never {
    MPI_Abort(world, status)
    exit(status)
  }
}
