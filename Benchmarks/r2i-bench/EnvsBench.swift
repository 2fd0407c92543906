import ArgumentParser
import CommandLineSupport
import Dispatch
import Envs
import Foundation

/// Environment step throughput on one core: Memory Maze (render included) and the vector tasks.
struct EnvsBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "envs", abstract: "Steps per second per core of Memory Maze (64x64 rendering) and the vector tasks.")

  @Option(parsing: .unconditional, help: "Steps per measurement, 100...10^8.")
  var steps: Int = 20_000

  @Option(help: "Where to write the CSV of results.")
  var output: String = "results/envs.csv"

  func validate() throws { try OptionCheck.range(steps, 100...100_000_000, "--steps") }

  func run() throws {
    let outputURL = try prepareOutputFile(output)
    print("Environment throughput on \(Machine.summary); one thread; \(steps) steps each\n")
    var table = ResultTable(["environment", "policy", "steps_per_s", "us_per_step", "episodes"])
    func bench(_ name: String, policy: String, _ pick: (any Env, inout SeededGenerator) -> Action) throws {
      let env = try EnvRegistry.make(name, seed: 1)
      var rng = SeededGenerator(seed: 2)
      _ = env.reset(seed: 1)
      var episodes = 0
      // Warm-up.
      for _ in 0..<200 {
        if try env.step(pick(env, &rng)).isLast { _ = env.reset(seed: nil) }
      }
      let t0 = DispatchTime.now().uptimeNanoseconds
      for _ in 0..<steps {
        if try env.step(pick(env, &rng)).isLast {
          episodes += 1
          _ = env.reset(seed: nil)
        }
      }
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
      table.add([name, policy, fmt(Double(steps) / seconds, 0), fmt(seconds / Double(steps) * 1e6, 2), "\(episodes)"])
    }
    let random: (any Env, inout SeededGenerator) -> Action = { e, r in e.actionSpace.sample(using: &r) }
    for size in [9, 11, 13, 15] {
      try bench("memorymaze/\(size)x\(size)", policy: "random", random)
      try bench("memorymaze/\(size)x\(size)", policy: "oracle") { e, _ in (e as! MemoryMaze).oracleAction() }
    }
    for name in [
      "bsuite/memory_len/100", "popgym/RepeatPreviousHard", "popgym/ConcentrationMedium", "classic/CartPole",
      "classic/CartPole-pixels",
    ] {
      try bench(name, policy: "random", random)
    }
    print(table.render())
    try table.writeCSV(to: outputURL)
    print("\nCSV written to \(output)")
  }
}
