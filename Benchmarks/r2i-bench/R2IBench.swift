import ArgumentParser

/// The benchmark harness: each subcommand measures one part of the system and writes a CSV.
@main
struct R2IBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "r2i-bench",
    abstract: "Benchmarks for the R2I toolkit (release build; run on a quiet machine).",
    subcommands: [SpeedBench.self, TensorBench.self, EnvsBench.self, ReplayBench.self, SSMBench.self])
}
