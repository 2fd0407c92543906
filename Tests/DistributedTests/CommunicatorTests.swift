import Distributed
import Foundation
import TestSupport
import Tensor
import Testing

/// The job of one process, and the collectives across two ranks under `mpirun`.
@Suite struct CommunicatorTests {
  @Test func aJobOfOneLeavesEveryValueAsItIs() {
    let one = SingleProcess()
    #expect(one.rank == 0 && one.size == 1 && one.isRoot)
    var tensors = [Tensor([1, 2, 3], shape: [3]), Tensor([4], shape: [1])]
    one.average(&tensors)
    #expect(tensors[0].scalars == [1, 2, 3] && tensors[1].scalars == [4])
    #expect(one.sum([1.5, -2]) == [1.5, -2] && one.maximum(7) == 7 && one.any(true) && !one.any(false))
    #expect(one.allGather([Float(1), 2]) == [[1, 2]])
    #expect(one.broadcast(Data("x".utf8), from: 0) == Data("x".utf8))
    #expect(!Job.launchedByMPI, "the tests themselves must not run under mpirun")
  }

  /// Each rank checks every collective's result itself (see `Tests/DistributedProbe`).
  @Test func everyCollectiveGivesTheRightResultOnTwoRanks() throws {
    let probe = try BuiltProducts.executable("distributed-probe")
    let r = try runMPI(ranks: 2, probe, ["collectives"])
    #expect(r.status == 0, "\(r.standardOutput)\(r.standardError)")
    #expect(r.standardOutput.contains("rank 0 ok") && r.standardOutput.contains("rank 1 ok"), "\(r.standardOutput)")
  }

  /// A rank that aborts ends the job (the other does not wait forever) with its status.
  @Test func anAbortingRankEndsEveryRank() throws {
    let probe = try BuiltProducts.executable("distributed-probe")
    let start = Date()
    let r = try runMPI(ranks: 2, probe, ["abort"])
    #expect(r.status != 0 && r.standardError.contains("rank 1: failing on purpose"), "\(r.standardError)")
    #expect(!r.standardOutput.contains("passed a barrier"))
    #expect(Date().timeIntervalSince(start) < 60)
  }
}
