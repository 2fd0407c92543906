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
