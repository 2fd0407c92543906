import ArgumentParser
import CommandLineSupport
import Foundation

/// The benchmark harness: each subcommand measures one part of the system and writes a CSV.
@main
struct R2IBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "r2i-bench",
    abstract: "Benchmarks for the R2I toolkit (release build; run on a quiet machine).",
    discussion: "Exit status: 0 on success, 64 for a mistake on the command line, 1 for a failure while running.",
    version: r2iVersion,
    subcommands: [
      SpeedBench.self, RecallBench.self, TensorBench.self, EnvsBench.self, PythonEnvsBench.self, ReplayBench.self,
      SSMBench.self,
      MemoryBench.self,
      MemoryRunCommand.self,
      ComputeBench.self,
      ComputeOneCommand.self,
    ])

  /// Line-buffered output, so progress shows up when stdout is a file or a pipe.
  static func main() {
    lineBufferStandardOutput()
    ignoreFileSizeSignal()
    unblockStopSignals()
    main(nil)
  }
}
