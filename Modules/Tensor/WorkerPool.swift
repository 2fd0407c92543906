import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A small pool of persistent worker threads for the kernels' parallel loops.
///
/// Dispatch's `concurrentPerform` wakes a parked worker for every call, a cost of the order of a
/// short kernel itself. Kernels run hundreds of short parallel loops per training step, so the
/// pool keeps its workers spinning briefly on a generation counter after each job and only then
/// parks them on a condition variable (`r2i-bench tensor` times both).
///
/// One job runs at a time. A job submitted while another runs (another thread, or a kernel
/// called from inside a job) runs inline on the submitting thread; chunk boundaries are fixed
/// by the caller, so results do not depend on which thread ran which chunk.
@usableFromInline
final class WorkerPool: @unchecked Sendable {
  @usableFromInline static let shared = WorkerPool(workers: max(0, Parallelism.onlineCores - 1))

  let workerCount: Int
  // Job description, written by the submitter before `generation` is bumped.
  nonisolated(unsafe) var job: ((Int) -> Void)?
  let chunkTotal = Atomic<Int>(0)
  let nextChunk = Atomic<Int>(0)
  let remaining = Atomic<Int>(0)
  let generation = Atomic<UInt64>(0)
  let sleepers = Atomic<Int>(0)
  let busy = Atomic<Bool>(false)
  /// The generation whose job is valid (0: none). A worker increments `active` before checking
  /// it and decrements after it is done with `job`; the submitter invalidates it and waits for
  /// `active` to reach 0 before clearing `job`, so no worker ever reads a stale closure.
  let jobGeneration = Atomic<UInt64>(0)
  let active = Atomic<Int>(0)
  var mutex = pthread_mutex_t()
  var condition = pthread_cond_t()
  /// Spin iterations before a worker parks (tens of microseconds).
  let spinLimit = 100_000

  init(workers: Int) {
    workerCount = workers
    pthread_mutex_init(&mutex, nil)
    pthread_cond_init(&condition, nil)
    for _ in 0..<workers {
      let box = Unmanaged.passRetained(self)
      var thread = pthread_t()
      let status = pthread_create(
        &thread, nil,
        { raw in
          let pool = Unmanaged<WorkerPool>.fromOpaque(raw!).takeRetainedValue()
          pool.workerLoop()
          return nil
        }, box.toOpaque())
      if status == 0 { pthread_detach(thread) } else { box.release() }
    }
  }

  /// Calls `body(i)` for every `i` in `0..<chunks`, on the pool's threads and the caller's.
  @usableFromInline func run(chunks: Int, _ body: (Int) -> Void) {
    if chunks <= 1 || workerCount == 0
      || !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    {
      for i in 0..<chunks { body(i) }
      return
    }
    withoutActuallyEscaping(body) { escapable in
      job = escapable
      chunkTotal.store(chunks, ordering: .sequentiallyConsistent)
      nextChunk.store(0, ordering: .sequentiallyConsistent)
      remaining.store(chunks, ordering: .sequentiallyConsistent)
      let g = generation.add(1, ordering: .sequentiallyConsistent).newValue
      jobGeneration.store(g, ordering: .sequentiallyConsistent)
      if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
      }
      work(escapable)
      while remaining.load(ordering: .sequentiallyConsistent) > 0 {}
      jobGeneration.store(0, ordering: .sequentiallyConsistent)
      while active.load(ordering: .sequentiallyConsistent) > 0 {}
      job = nil
    }
    busy.store(false, ordering: .releasing)
  }

  /// Claims and runs chunks of the current job until none are left.
  func work(_ body: (Int) -> Void) {
    let total = chunkTotal.load(ordering: .sequentiallyConsistent)
    while true {
      let i = nextChunk.add(1, ordering: .sequentiallyConsistent).oldValue
      if i >= total { return }
      body(i)
      remaining.subtract(1, ordering: .releasing)
    }
  }

  func workerLoop() {
    var seen = generation.load(ordering: .sequentiallyConsistent)
    while true {
      var spins = 0
      while generation.load(ordering: .sequentiallyConsistent) == seen && spins < spinLimit { spins += 1 }
      if generation.load(ordering: .sequentiallyConsistent) == seen {
        pthread_mutex_lock(&mutex)
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while generation.load(ordering: .sequentiallyConsistent) == seen {
          pthread_cond_wait(&condition, &mutex)
        }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(&mutex)
      }
      seen = generation.load(ordering: .sequentiallyConsistent)
      // Join the job only while it is still the published one.
      active.add(1, ordering: .sequentiallyConsistent)
      if jobGeneration.load(ordering: .sequentiallyConsistent) == seen, let body = job {
        work(body)
      }
      active.subtract(1, ordering: .sequentiallyConsistent)
    }
  }
}
