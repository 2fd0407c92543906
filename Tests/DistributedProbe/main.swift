// Runs under `mpirun -np N distributed-probe MODE`; DistributedTests starts it.
//   collectives: every collective of Job.world, each rank checking the result itself; prints
//                "rank R ok" and exits 0, or names the first wrong result and exits 1.
//   abort:       the last rank aborts with status 3 while the others wait in a barrier.
//   learner DIR: every DataParallelFixture case on this rank's rows of the batch; every rank
//                checks its parameters equal rank 0's, and rank 0 writes DIR/<case>.json.
import Distributed
import Foundation
import Tensor
import TestSupport

let world = Job.world
let mode = CommandLine.arguments.dropFirst().first ?? "collectives"
var failures: [String] = []
@MainActor func check(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { failures.append(what()) } }

switch mode {
case "collectives":
  let n = world.size
  let r = world.rank
  check(Job.launchedByMPI && n >= 2, "not launched as one of several ranks (size \(n))")
  let greeting = world.broadcast(r == 0 ? Data("from rank 0".utf8) : Data(), from: 0)
  check(String(decoding: greeting, as: UTF8.self) == "from rank 0", "broadcast gave \(greeting)")
  var floats: [Float] = [Float(r + 1), Float(2 * (r + 1))]
  floats.withUnsafeMutableBufferPointer { world.sum($0) }
  let total = Float(n * (n + 1) / 2)
  check(floats == [total, 2 * total], "sum gave \(floats)")
  check(world.sum([Double(r), 0.5]) == [Double(n * (n - 1) / 2), 0.5 * Double(n)], "sum of doubles")
  check(world.maximum(Double(r)) == Double(n - 1), "maximum")
  check(world.any(r == n - 1) && !world.any(false), "any")
  // Sizes that make the buckets (7 values) pack two tensors, hold one, and send one larger
  // than a bucket alone.
  var tensors = [[2, 3], [1], [3], [4, 5], [2]].enumerated().map { k, shape in
    Tensor.full(shape, Float((r + 1) * (k + 1)))
  }
  world.average(&tensors, bucketFloats: 7)
  for (k, t) in tensors.enumerated() {
    let expected = Float(k + 1) * Float(n + 1) / 2
    check(t.scalars.allSatisfy { $0 == expected }, "average of tensor \(k): \(t.scalars) not \(expected)")
  }
  let gathered = world.allGather([Float](repeating: Float(r), count: r + 1))
  check(gathered.count == n, "allGather gave \(gathered.count) parts")
  for (q, part) in gathered.enumerated() {
    check(part == [Float](repeating: Float(q), count: q + 1), "allGather part \(q): \(part)")
  }
  var mine = [Tensor.full([3], Float(r + 10))]
  world.broadcast(&mine, from: n - 1)
  check(mine[0].scalars == [Float](repeating: Float(n - 1 + 10), count: 3), "broadcast tensors: \(mine[0].scalars)")
  world.barrier()
  // One sum of two floats, then the buckets: [6 + 1], [3], [20] alone, [2].
  let stats = world.statistics
  check(stats.sums == 5 && stats.sumBytes == 4 * (2 + 7 + 3 + 20 + 2), "statistics \(stats)")
case "abort":
  if world.rank == world.size - 1 {
    FileHandle.standardError.write(Data("rank \(world.rank): failing on purpose\n".utf8))
    world.abort(status: 3)
  }
  world.barrier()
  failures.append("rank \(world.rank) passed a barrier that a rank aborted in")
case "learner":
  let directory = URL(fileURLWithPath: CommandLine.arguments[2])
  let rows = DataParallelFixture.batchSize / world.size
  for c in DataParallelFixture.cases {
    let out = DataParallelFixture.train(c, rows: (world.rank * rows)..<((world.rank + 1) * rows), communicator: world)
    let everyRank = world.allGather(out.parameters)
    check(everyRank.allSatisfy { $0 == everyRank[0] }, "\(c): the ranks' parameters differ")
    if world.isRoot {
      let json = try JSONSerialization.data(withJSONObject: [
        "parameters": out.parameters, "metrics": out.metrics, "returnScale": out.returnScale,
      ])
      try json.write(to: directory.appendingPathComponent("\(c).json"))
    }
  }
default:
  failures.append("unknown mode \(mode)")
}
if failures.isEmpty {
  print("rank \(world.rank) ok")
} else {
  for f in failures { print("rank \(world.rank): \(f)") }
  exit(1)
}
