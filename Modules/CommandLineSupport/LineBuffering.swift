// Kept apart from Foundation: with Foundation imported, `stdout` is not reachable under
// Swift 6 concurrency checking.
#if canImport(Glibc)
  @preconcurrency import Glibc
#elseif canImport(Darwin)
  @preconcurrency import Darwin
#endif

/// Makes standard output line-buffered, so progress lines appear at once in logs and pipes.
public func lineBufferStandardOutput() { setvbuf(stdout, nil, _IOLBF, 0) }
