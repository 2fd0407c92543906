import ArgumentParser
import Foundation

/// `--threads N`: kernel and BLAS threads, 1...256 (default: every online core). Shared by the
/// commands that run on one thread count (`@OptionGroup var threadOption: ThreadOption`).
public struct ThreadOption: ParsableArguments {
  @Option(parsing: .unconditional, help: "Threads for kernels and BLAS, 1...256 (default: all cores).")
  public var threads: Int?

  public init() {}

  public func validate() throws {
    if let threads { try OptionCheck.range(threads, ThreadOption.range, "--threads") }
  }

  /// The accepted thread counts.
  public static let range = 1...256

  /// The chosen count, or every online core.
  public var count: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }
}

/// `--threads 1,2`: a list of thread counts to measure, each 1...256. Shared by the benchmarks
/// that compare thread counts.
public struct ThreadListOption: ParsableArguments {
  @Option(help: "Comma-separated thread counts, each 1...256.")
  public var threads = "1,2"

  public init() {}

  public func validate() throws { _ = try counts() }

  public func counts() throws -> [Int] { try OptionCheck.integers(threads, ThreadOption.range, "--threads") }
}
