import ArgumentParser
import CommandLineSupport
import Foundation
import Tensor

/// The command-line program: information about the build and (as modules arrive) training,
/// evaluation and rendering.
@main
struct R2ICommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "r2i",
    abstract: "R2I (Recall to Imagine): model-based RL with long memory, CPU-first.",
    discussion: "Exit status: 0 on success, 64 for a mistake on the command line, 1 for a failure while running.",
    version: r2iVersion,
    subcommands: [
      Info.self, Train.self, ConfigCommand.self, Evaluate.self, Plot.self, EnvsCommand.self, Presets.self, Render.self,
    ])

  /// Line-buffered output, so progress shows up when stdout is a file or a pipe.
  static func main() {
    lineBufferStandardOutput()
    ignoreFileSizeSignal()
    unblockStopSignals()
    main(nil)
  }
}

/// Prints the build, thread and BLAS configuration.
struct Info: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Show threads, BLAS and memory settings.")

  @OptionGroup var threadOption: ThreadOption

  func run() throws {
    if let threads = threadOption.threads { Parallelism.setThreadCount(threads) }
    print("cores online:       \(Parallelism.onlineCores)")
    print("kernel threads:     \(Parallelism.threadCount)")
    print("OpenBLAS threads:   \(Parallelism.blasThreadCount)")
    print("tensor buffer cache limit: \(TensorMemory.cacheLimitBytes >> 20) MiB")
  }
}
