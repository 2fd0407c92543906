import Distributed
import Foundation
import Tensor
import TestSupport
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
    let r = try runMPI(ranks: 2, probe, ["abort"], timeout: 60)
    #expect(r.status != mpiTimedOut, "the job hung after a rank aborted")
    #expect(r.status == 3 && r.standardError.contains("rank 1: failing on purpose"), "\(r.status) \(r.standardError)")
    #expect(!r.standardOutput.contains("passed a barrier"))
  }
}

/// Data-parallel learning: two ranks with half a fixed batch each end two learner steps with
/// the parameters, metrics and return scale of one process with the whole batch, for both
/// backbones, discrete and continuous actions, and imagination chunks that straddle the ranks'
/// halves or hold every start.
@Suite struct DataParallelLearnerTests {
  @Test func twoRanksWithHalfTheBatchEachAreOneLearnerWithAllOfIt() throws {
    let probe = try BuiltProducts.executable("distributed-probe")
    let folder = temporaryFolder("data-parallel")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let r = try runMPI(ranks: 2, probe, ["learner", folder.path])
    #expect(r.status == 0, "\(r.standardOutput)\(r.standardError)")
    for c in DataParallelFixture.cases {
      let one = DataParallelFixture.train(
        c, rows: 0..<DataParallelFixture.batchSize, communicator: SingleProcess())
      let data = try Data(contentsOf: folder.appendingPathComponent("\(c).json"))
      let two = try #require(try JSONSerialization.jsonObject(with: data) as? [String: [Double]])
      for (name, expected) in [
        ("parameters", one.parameters), ("metrics", one.metrics), ("returnScale", one.returnScale),
      ] {
        let got = try #require(two[name]).map(Float.init)
        #expect(got.count == expected.count, "\(c) \(name)")
        // Relative to each value (below 1e-3 in size, to 1e-3: a difference of sums' order).
        let worst = zip(got, expected).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? 0
        print("\(c) \(name): \(worst)")
        #expect(worst <= 1e-5, "\(c) \(name): largest relative difference \(worst)")
      }
      // The test can fail: one process on half the batch is another learner.
      let half = DataParallelFixture.train(
        c, rows: 0..<(DataParallelFixture.batchSize / 2), communicator: SingleProcess())
      #expect(half.parameters != one.parameters, "\(c)")
    }
  }
}
