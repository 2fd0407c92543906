import Dispatch
import Glibc
import Synchronization
import Testing

@testable import Tensor

final class Counter: Sendable {
  let value = Atomic<Int>(0)
}

@Suite struct WorkerPoolTests {
  @Test func everyChunkRunsExactlyOnceUnderConcurrencyAndNesting() {
    let pool = WorkerPool.shared
    let rounds = 2000
    let submitters = 4
    let errors = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: submitters) { s in
      for r in 0..<rounds {
        let chunks = 1 + (r + s) % 7
        let counts = (0..<chunks).map { _ in Counter() }
        pool.run(chunks: chunks) { i in
          counts[i].value.add(1, ordering: .relaxed)
          // A nested parallel call runs inline and still covers its chunks.
          if r % 50 == 0 {
            let inner = Atomic<Int>(0)
            pool.run(chunks: 3) { _ in inner.add(1, ordering: .relaxed) }
            if inner.load(ordering: .relaxed) != 3 { errors.add(1, ordering: .relaxed) }
          }
        }
        for c in counts where c.value.load(ordering: .relaxed) != 1 { errors.add(1, ordering: .relaxed) }
      }
    }
    #expect(errors.load(ordering: .relaxed) == 0)
  }

  @Test func parallelLoopsCoverTheirRangeWithIdleGaps() {
    // Workers park between jobs; jobs after a pause must still run completely.
    for gap in [0, 2_000, 20_000] {
      let sum = Atomic<Int>(0)
      Parallelism.withThreadCount(2) {
        Parallelism.forEachChunk(count: 100_000, grain: 1000) { r in
          sum.add(r.reduce(0, +), ordering: .relaxed)
        }
      }
      #expect(sum.load(ordering: .relaxed) == 99_999 * 100_000 / 2)
      usleep(useconds_t(gap))
    }
  }
}
