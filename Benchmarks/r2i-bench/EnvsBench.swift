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

  func validate() throws {
    try OptionCheck.range(steps, 100...100_000_000, "--steps")
    try OptionCheck.range(mazeScoreEpisodes, 0...10_000, "--maze-score-episodes")
  }

  func run() throws {
    let outputURL = try prepareOutputFile(output)
    print("Environment throughput on \(Machine.summary); one thread; \(steps) steps each\n")
    var table = ResultTable(["environment", "policy", "steps_per_s", "us_per_step", "episodes"])
    func bench(_ name: String, policy: String, _ pick: (any Env, inout SeededGenerator) -> Action) throws {
      let env = try EnvRegistry.make(name, seed: 1)
      var rng = SeededGenerator(seed: 2)
      _ = try env.reset(seed: 1)
      var episodes = 0
      // Warm-up.
      for _ in 0..<200 {
        if try env.step(pick(env, &rng)).isLast { _ = try env.reset(seed: nil) }
      }
      let t0 = DispatchTime.now().uptimeNanoseconds
      for _ in 0..<steps {
        if try env.step(pick(env, &rng)).isLast {
          episodes += 1
          _ = try env.reset(seed: nil)
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
    if mazeScoreEpisodes > 0 { try mazeScores(episodes: mazeScoreEpisodes) }
  }

  @Option(
    parsing: .unconditional,
    help: "Memory Maze episodes per size and policy for the score table (0: skip; 15x15 episodes are 4000 steps).")
  var mazeScoreEpisodes: Int = 10

  /// Mean return per episode of the uniform random policy and of the oracle on every maze size,
  /// beside the real task's published human and "mean max" scores (`docs/environments.md`).
  func mazeScores(episodes: Int) throws {
    print("\nMemory Maze scores: mean return per episode over \(episodes) episodes (seeds 0...\(episodes - 1))\n")
    var table = ResultTable(["maze", "random", "random_se", "oracle", "oracle_se", "real_human", "real_mean_max"])
    let human = [9: "26.4", 11: "44.3", 13: "55.5", 15: "67.7"]
    let meanMax = [9: "34.8", 11: "58.0", 13: "74.5", 15: "87.7"]
    for size in [9, 11, 13, 15] {
      var results: [[Double]] = []
      for oracle in [false, true] {
        let maze = try MemoryMaze(size: size, seed: 0)
        var rng = SeededGenerator(seed: 99)
        var returns: [Double] = []
        for e in 0..<episodes {
          _ = maze.reset(seed: UInt64(e))
          var total = 0.0
          while true {
            let r = try maze.step(oracle ? maze.oracleAction() : maze.actionSpace.sample(using: &rng))
            total += r.reward
            if r.isLast { break }
          }
          returns.append(total)
        }
        results.append(returns)
      }
      func meanSE(_ x: [Double]) -> (Double, Double) {
        let m = x.reduce(0, +) / Double(x.count)
        let v = x.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(max(1, x.count - 1))
        return (m, (v / Double(x.count)).squareRoot())
      }
      let (rm, rs) = meanSE(results[0])
      let (om, os) = meanSE(results[1])
      table.add(["\(size)x\(size)", fmt(rm, 1), fmt(rs, 1), fmt(om, 1), fmt(os, 1), human[size]!, meanMax[size]!])
      print("memorymaze/\(size)x\(size): random \(fmt(rm, 1)), oracle \(fmt(om, 1))")
    }
    print("\n" + table.render())
    let url = URL(fileURLWithPath: output).deletingPathExtension().appendingPathExtension("maze_scores.csv")
    try table.writeCSV(to: url)
    print("CSV written to \(url.path)")
  }
}
