import ArgumentParser
import Foundation
import Tensor

/// The command-line program: information about the build and (as modules arrive) training,
/// evaluation and rendering.
@main
struct R2ICommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "r2i",
    abstract: "R2I (Recall to Imagine): model-based RL with long memory, CPU-first.",
    subcommands: [Info.self, Envs.self, Presets.self, Render.self])

  /// Line-buffered output, so progress shows up when stdout is a file or a pipe.
  static func main() {
    lineBufferStandardOutput()
    main(nil)
  }
}

/// Prints the build, thread and BLAS configuration.
struct Info: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Show threads, BLAS and memory settings.")

  @Option(help: "Thread count for kernels and BLAS (default: all cores).")
  var threads: Int?

  func run() throws {
    if let threads {
      guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
      Parallelism.setThreadCount(threads)
    }
    print("cores online:       \(Parallelism.onlineCores)")
    print("kernel threads:     \(Parallelism.threadCount)")
    print("OpenBLAS threads:   \(Parallelism.blasThreadCount)")
    print("tensor buffer cache limit: \(TensorMemory.cacheLimitBytes >> 20) MiB")
  }
}
