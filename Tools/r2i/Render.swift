import ArgumentParser
import CommandLineSupport
import Envs
import Foundation
import Imaging

/// Writes an episode of an image environment as numbered PNG frames.
struct Render: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write an episode of an image task as PNG frames (Memory Maze: first-person and top-down side by side).")

  @Option(help: "Environment name, e.g. memorymaze/9x9 or classic/CartPole-pixels (see 'r2i envs').")
  var env: String = "memorymaze/9x9"

  @Option(parsing: .unconditional, help: "Steps to record, 1...100000 (the episode may end earlier).")
  var steps: Int = 200

  @Option(help: "Policy: oracle (Memory Maze only) or random.")
  var policy: String = "oracle"

  @Option(parsing: .unconditional, help: "Seed for the environment and the random policy (0...2^64-1).")
  var seed: UInt64 = 0

  @Option(parsing: .unconditional, help: "Integer upscaling of the saved frames, 1...16.")
  var scale: Int = 4

  @Option(help: "Output directory for the PNG files (earlier frames of the same environment there are replaced).")
  var output: String = "runs/render"

  func validate() throws {
    try OptionCheck.range(steps, 1...100_000, "--steps")
    try OptionCheck.range(scale, 1...16, "--scale")
    guard ["oracle", "random"].contains(policy) else {
      throw ValidationError("--policy must be 'oracle' or 'random', got '\(policy)'")
    }
  }

  func run() throws {
    let environment: any Env
    do {
      environment = try EnvRegistry.make(env, seed: seed)
    } catch {
      throw ValidationError("--env: \(error)")
    }
    guard case .image = environment.observationSpace else {
      throw ValidationError(
        "--env: \(env) has \(environment.observationSpace) observations, not images; try memorymaze/9x9 or classic/CartPole-pixels"
      )
    }
    let maze = environment as? MemoryMaze
    if policy == "oracle" && maze == nil {
      throw ValidationError("--policy oracle needs a Memory Maze; use --policy random for \(env)")
    }
    var rng = SeededGenerator(seed: seed, stream: StreamTag.renderPolicy)
    var frames: [Image] = []
    func picture(_ obs: Observation) -> Image {
      guard case .image(let f) = obs else { preconditionFailure() }
      let view = Image(width: f.width, height: f.height, channels: f.channels, pixels: f.pixels).scaled(by: scale)
      guard let maze else { return view }
      let map = maze.renderTopDown(cell: max(1, (view.height) / maze.gridSize))
      let mapImage = Image(width: map.width, height: map.height, channels: 3, pixels: map.pixels)
      return Image.row([view, mapImage], padding: 4)
    }
    var obs = try environment.reset(seed: seed)
    frames.append(picture(obs))
    var total = 0.0
    let start = Date()
    for _ in 0..<steps {
      let action =
        maze.map { policy == "oracle" ? $0.oracleAction() : $0.actionSpace.sample(using: &rng) }
        ?? environment.actionSpace.sample(using: &rng)
      let r = try environment.step(action)
      total += r.reward
      obs = r.observation
      frames.append(picture(obs))
      if r.isLast { break }
    }
    let elapsed = Date().timeIntervalSince(start)
    let dir = URL(fileURLWithPath: output)
    let urls = try Image.writeFrames(frames, to: dir, prefix: env.replacingOccurrences(of: "/", with: "_"))
    print(
      "Wrote \(urls.count) frames to \(dir.path) (return \(total), \(String(format: "%.0f", Double(frames.count - 1) / max(elapsed, 1e-9))) steps/s including picture assembly)"
    )
  }
}
