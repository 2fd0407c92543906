import ArgumentParser
import CommandLineSupport
import Envs
import Foundation

/// Environment steps per second through the Python bridge, beside the same environment stepped
/// in Python alone, and a batch of workers stepping in parallel.
struct PythonEnvsBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "python-envs",
    abstract: "Steps per second of Python environments through the bridge and in Python alone.")

  @Option(
    parsing: .upToNextOption,
    help: "Environments (Python names, e.g. gym:CartPole-v1 dmc:cartpole_balance atari:Pong real-memorymaze:9x9).")
  var envs: [String] = [
    "gym:CartPole-v1", "real-bsuite:memory_len/30", "dmc:cartpole_balance", "dmc-vision:cartpole_balance", "atari:Pong",
    "real-memorymaze:9x9",
  ]

  @Option(help: "Seconds per measurement, 1...600.")
  var seconds: Double = 10

  @Option(help: "Workers in the batch measurement, 1...64.")
  var batch: Int = 2

  @Option(help: "Where to write the CSV of results.")
  var output: String = "results/python-envs.csv"

  func validate() throws {
    try OptionCheck.range(seconds, 1...600, "--seconds")
    try OptionCheck.range(batch, 1...64, "--batch")
    for name in envs where !PythonEnvironment.handles(name) {
      throw ValidationError(
        "--envs: \(name) is not a Python environment name (gym:, dmc:, dmc-vision:, atari:, real-...)")
    }
  }

  /// Steps per second of `name` stepped by the worker script alone (`--bench`).
  func alone(_ name: String) throws -> Double {
    let (python, script) = try PythonEnvironment.interpreter()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = [script, "--bench", name, "\(seconds)"]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard let line = String(data: data, encoding: .utf8)?.split(separator: "\n").last,
      let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
      let rate = json["steps_per_second"] as? Double
    else {
      throw ValidationError("\(name): the worker's --bench printed no result (status \(p.terminationStatus))")
    }
    return rate
  }

  /// Steps per second of `count` environments stepped as one batch with random actions (every
  /// environment's step counts, resets included).
  func throughBridge(_ name: String, count: Int) throws -> Double {
    let batch = try BatchEnv((0..<count).map { try PythonEnvironment(name: name, seed: UInt64($0)) }, seed: 1)
    var rng = SeededGenerator(seed: 2)
    let space = batch.actionSpace
    _ = try batch.step((0..<count).map { _ in space.sample(using: &rng) })
    var steps = 0
    let start = Date()
    while Date().timeIntervalSince(start) < seconds {
      _ = try batch.step((0..<count).map { _ in space.sample(using: &rng) })
      steps += count
    }
    return Double(steps) / Date().timeIntervalSince(start)
  }

  func run() throws {
    let outputURL = try prepareOutputFile(output)
    print("Python environments on \(Machine.summary); \(seconds) s per measurement\n")
    var table = ResultTable([
      "environment", "python_alone_steps_per_s", "bridge_steps_per_s", "overhead_us_per_step",
      "batch\(batch)_steps_per_s",
    ])
    for name in envs {
      let a = try alone(name)
      let one = try throughBridge(name, count: 1)
      let many = try throughBridge(name, count: batch)
      let overhead = (1 / one - 1 / a) * 1e6
      table.add([name, fmt(a, 0), fmt(one, 0), fmt(overhead, 1), fmt(many, 0)])
      print("\(name): alone \(fmt(a, 0))/s, bridge \(fmt(one, 0))/s, \(batch) workers \(fmt(many, 0))/s")
    }
    print("\n" + table.render())
    try table.writeCSV(to: outputURL)
    print("\nCSV written to \(output)")
  }
}
