import ArgumentParser
import Foundation

/// The benchmark harness: each subcommand measures one part of the system and writes a CSV.
@main
struct R2IBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "r2i-bench",
    abstract: "Benchmarks for the R2I toolkit (release build; run on a quiet machine).",
    subcommands: [SpeedBench.self, RecallBench.self, TensorBench.self, EnvsBench.self, ReplayBench.self, SSMBench.self])

  /// Line-buffered output, so progress shows up when stdout is a file or a pipe.
  static func main() {
    lineBufferStandardOutput()
    main(nil)
  }
}
