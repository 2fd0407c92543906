// swift-tools-version: 6.0
// R2I: model-based reinforcement learning with long memory (Recall to Imagine), CPU-first.
// Layout and dependency direction: see CONTRIBUTING.md.
import PackageDescription

let package = Package(
  name: "R2I",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "Random", targets: ["Random"]),
    .library(name: "FileSupport", targets: ["FileSupport"]),
    .library(name: "TensorBoard", targets: ["TensorBoard"]),
    .library(name: "Tensor", targets: ["Tensor"]),
    .library(name: "Autodiff", targets: ["Autodiff"]),
    .library(name: "NN", targets: ["NN"]),
    .library(name: "Imaging", targets: ["Imaging"]),
    .library(name: "SSM", targets: ["SSM"]),
    .library(name: "RSSM", targets: ["RSSM"]),
    .library(name: "Attention", targets: ["Attention"]),
    .library(name: "WorldModel", targets: ["WorldModel"]),
    .library(name: "Envs", targets: ["Envs"]),
    .library(name: "Replay", targets: ["Replay"]),
    .library(name: "CommandLineSupport", targets: ["CommandLineSupport"]),
    .library(name: "Agent", targets: ["Agent"]),
    .library(name: "Distributed", targets: ["Distributed"]),
    .library(name: "Training", targets: ["Training"]),
    .library(name: "TrainingCommandLine", targets: ["TrainingCommandLine"]),
    .executable(name: "r2i", targets: ["r2i"]),
    .executable(name: "r2i-bench", targets: ["r2i-bench"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    // System libraries, found by pkg-config.
    .systemLibrary(
      name: "COpenBLAS", path: "Modules/COpenBLAS", pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(
      name: "COpenMPI", path: "Modules/COpenMPI", pkgConfig: "mpi",
      providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
    .systemLibrary(
      name: "CPNG", path: "Modules/CPNG", pkgConfig: "libpng",
      providers: [.apt(["libpng-dev", "zlib1g-dev"])]),

    // Plain-Swift building blocks with no tensor code.
    .target(name: "Random", path: "Modules/Random"),
    .target(name: "FileSupport", path: "Modules/FileSupport"),
    .target(name: "TensorBoard", path: "Modules/TensorBoard"),
    .target(name: "Envs", dependencies: ["Random"], path: "Modules/Envs"),
    .target(name: "Replay", dependencies: ["Random", "FileSupport"], path: "Modules/Replay"),

    // Numerical core.
    .target(name: "Tensor", dependencies: ["COpenBLAS", "Random"], path: "Modules/Tensor"),
    .target(name: "Autodiff", dependencies: ["Tensor"], path: "Modules/Autodiff"),
    .target(
      name: "NN", dependencies: ["Autodiff", "Tensor", "Random", "FileSupport"], path: "Modules/NN"),
    .target(name: "Imaging", dependencies: ["CPNG", "FileSupport"], path: "Modules/Imaging"),
    .target(name: "SSM", dependencies: ["NN", "Autodiff", "Tensor"], path: "Modules/SSM"),
    .target(name: "RSSM", dependencies: ["NN", "Autodiff", "Tensor"], path: "Modules/RSSM"),
    .target(name: "Attention", dependencies: ["NN", "Autodiff", "Tensor"], path: "Modules/Attention"),
    .target(
      name: "WorldModel", dependencies: ["NN", "SSM", "RSSM", "Attention", "Autodiff", "Tensor"],
      path: "Modules/WorldModel"),

    // The ranks of a data-parallel job (MPI under mpirun, else one process) and their collectives.
    .target(name: "Distributed", dependencies: ["COpenMPI", "Tensor"], path: "Modules/Distributed"),

    // Actor-critic learning in imagination, and the agent that acts.
    .target(name: "Agent", dependencies: ["WorldModel", "NN", "Distributed"], path: "Modules/Agent"),

    // The room that joins Envs, Replay and the agent: conversions, the collector, the training
    // loop and its run folder.
    .target(
      name: "Training",
      dependencies: ["Agent", "Replay", "Envs", "FileSupport", "Distributed", "TensorBoard", "Imaging"],
      path: "Modules/Training"),

    // Command-line helpers shared by both executables (option checks, exit codes, output).
    .target(
      name: "CommandLineSupport",
      dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
      path: "Modules/CommandLineSupport"),
    // The training options and progress printing that `r2i train` and the memory sweep share.
    .target(
      name: "TrainingCommandLine",
      dependencies: [
        "CommandLineSupport", "Training", "Distributed",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Modules/TrainingCommandLine"),

    // Executables.
    .executableTarget(
      name: "r2i",
      dependencies: [
        "Tensor", "Autodiff", "NN", "Imaging", "Envs", "WorldModel", "CommandLineSupport", "Agent", "Training",
        "TrainingCommandLine", "Distributed", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Tools/r2i"),
    .executableTarget(
      name: "r2i-bench",
      dependencies: [
        "Tensor", "Autodiff", "NN", "COpenBLAS", "Envs", "Replay", "SSM", "RSSM", "WorldModel", "Imaging",
        "CommandLineSupport", "Training", "Agent", "TrainingCommandLine", "Distributed",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Benchmarks/r2i-bench"),

    // Tests: one target per module.
    .testTarget(name: "RandomTests", dependencies: ["Random"], path: "Tests/RandomTests"),
    .testTarget(
      name: "FileSupportTests", dependencies: ["FileSupport"], path: "Tests/FileSupportTests"),
    .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard"], path: "Tests/TensorBoardTests"),
    .testTarget(
      name: "TensorTests", dependencies: ["Tensor", "COpenBLAS"], path: "Tests/TensorTests"),
    .testTarget(
      name: "AutodiffTests", dependencies: ["Autodiff", "Tensor"], path: "Tests/AutodiffTests"),
    .testTarget(
      name: "NNTests", dependencies: ["NN", "Autodiff", "Tensor", "FileSupport"],
      path: "Tests/NNTests"),
    .testTarget(name: "ImagingTests", dependencies: ["Imaging"], path: "Tests/ImagingTests"),
    .testTarget(name: "SSMTests", dependencies: ["SSM", "NN", "Autodiff", "Tensor"], path: "Tests/SSMTests"),
    .testTarget(name: "RSSMTests", dependencies: ["RSSM", "NN", "Autodiff", "Tensor"], path: "Tests/RSSMTests"),
    .testTarget(
      name: "AttentionTests", dependencies: ["Attention", "Autodiff", "Tensor"], path: "Tests/AttentionTests"),
    .testTarget(
      name: "WorldModelTests", dependencies: ["WorldModel", "SSM", "RSSM", "NN", "Envs", "Replay", "TestSupport"],
      path: "Tests/WorldModelTests"),
    .testTarget(name: "EnvsTests", dependencies: ["Envs", "TestSupport"], path: "Tests/EnvsTests"),
    .testTarget(
      name: "AgentTests", dependencies: ["Agent", "TestSupport"], path: "Tests/AgentTests", exclude: ["Fixtures"]),
    .testTarget(
      name: "TrainingTests",
      dependencies: ["Training", "WorldModel", "Replay", "Agent", "Envs", "TestSupport", "TensorBoard", "Tensor"],
      path: "Tests/TrainingTests"),
    .testTarget(
      name: "CommandLineSupportTests", dependencies: ["CommandLineSupport"], path: "Tests/CommandLineSupportTests"),
    .testTarget(
      name: "TrainingCommandLineTests",
      dependencies: [
        "TrainingCommandLine", "Training", "TestSupport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Tests/TrainingCommandLineTests"),
    // The README's library example, compiled and run as a user's package would.
    .testTarget(
      name: "ExampleTests", dependencies: ["Agent", "Envs", "Replay", "Training", "WorldModel"],
      path: "Tests/ExampleTests"),
    // The executables as a user runs them (built by `swift test`), and their shared options.
    .testTarget(
      name: "ToolTests",
      dependencies: [
        "Training", "CommandLineSupport", "TestSupport", "TensorBoard", "Envs",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Tests/ToolTests"),
    .testTarget(
      name: "DistributedTests", dependencies: ["Distributed", "Tensor", "TestSupport"], path: "Tests/DistributedTests"),
    .testTarget(
      name: "ReplayTests", dependencies: ["Replay", "FileSupport", "TestSupport"], path: "Tests/ReplayTests"),

    // Test helpers: shared fixtures, and a replay writer that the kill test runs as a child process.
    .target(
      name: "TestSupport", dependencies: ["Replay", "Agent", "Training", "Distributed"], path: "Tests/TestSupport"),
    .executableTarget(
      name: "distributed-probe", dependencies: ["Distributed", "Tensor", "TestSupport"],
      path: "Tests/DistributedProbe"),
    .executableTarget(
      name: "replay-crash-writer", dependencies: ["Replay", "TestSupport"], path: "Tests/ReplayCrashWriter"),
  ]
)

// Opt-in: `R2I_TARGET_CPU=haswell swift build -c release ...` compiles every Swift target for that
// CPU (haswell: AVX2 and FMA; any name `swiftc -target-cpu` accepts). The elementwise kernels
// (layer norm, softmax, activations) then run on 8-wide vectors; see
// docs/results/train-step-speed.md for the measured gain. Unset (the default), builds are
// portable x86-64 and carry no unsafe flags, so the package stays usable as a dependency. A
// binary built for a CPU stops with an illegal instruction on a CPU without its features.
if let cpu = Context.environment["R2I_TARGET_CPU"], !cpu.isEmpty {
  for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-target-cpu", cpu])]
  }
}
