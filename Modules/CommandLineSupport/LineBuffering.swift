// Kept apart from Foundation: with Foundation imported, `stdout` is not reachable under
// Swift 6 concurrency checking.
#if canImport(Glibc)
  @preconcurrency import Glibc
#elseif canImport(Darwin)
  @preconcurrency import Darwin
#endif

/// Makes standard output line-buffered, so progress lines appear at once in logs and pipes.
public func lineBufferStandardOutput() { setvbuf(stdout, nil, _IOLBF, 0) }

/// Lets a write past the file-size limit (`ulimit -f`) fail with an error the command reports,
/// instead of SIGXFSZ ending the process without a word.
public func ignoreFileSizeSignal() { signal(SIGXFSZ, SIG_IGN) }

/// Unblocks the stop signals (SIGINT, SIGTERM, SIGHUP) in this thread, and so in the threads it
/// starts. A process inherits the signal mask of the thread that started it, and programs that
/// start commands from worker threads (test runners, thread pools) pass on masks that block
/// them: a Ctrl-C or `kill` then stays pending, and the `StopRequest` that is installed later
/// discards it. Call first thing in `main`.
public func unblockStopSignals() {
  var set = sigset_t()
  sigemptyset(&set)
  for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, s) }
  pthread_sigmask(SIG_UNBLOCK, &set, nil)
}
