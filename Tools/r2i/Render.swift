import ArgumentParser
import CommandLineSupport
import Envs
import Foundation
import Imaging

/// Writes an episode of an environment that draws itself, as PNG frames or one video file.
struct Render: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Write an episode of an environment that draws itself (image tasks, classic control, Memory Maze with its map) as PNG frames or a video, step and return on every frame."
  )

  @Option(help: "Environment name, e.g. memorymaze/9x9, classic/CartPole, dmc-vision:walker_walk (see 'r2i envs').")
  var env: String = "memorymaze/9x9"

  @Option(parsing: .unconditional, help: "Steps to record, 1...100000 (the episode may end earlier).")
  var steps: Int = 200

  @Option(help: "Policy: oracle (Memory Maze only; its default) or random (the default elsewhere).")
  var policy: String?

  @Option(parsing: .unconditional, help: "Seed for the environment and the random policy (0...2^64-1).")
  var seed: UInt64 = 0

  @Option(parsing: .unconditional, help: "Integer upscaling of the frames, 1...16 (default: about 256 pixels wide).")
  var scale: Int?

  @Option(help: "Output directory for the PNG files (earlier frames of the same environment there are replaced).")
  var output: String = "runs/render"

  @Option(help: "Write one video file instead of PNG frames: a .gif, or an .mp4 where ffmpeg is installed.")
  var video: String?

  @Option(parsing: .unconditional, help: "Frames per second of --video, 1...100.")
  var fps: Double = 20

  func validate() throws {
    try OptionCheck.range(steps, 1...100_000, "--steps")
    if let scale { try OptionCheck.range(scale, 1...16, "--scale") }
    if let policy, !["oracle", "random"].contains(policy) {
      throw ValidationError("--policy must be 'oracle' or 'random', got '\(policy)'")
    }
    if !(fps >= 1 && fps <= 100) { throw ValidationError("--fps must be in 1...100, got \(fps)") }
    if let video, !["gif", "mp4"].contains(URL(fileURLWithPath: video).pathExtension.lowercased()) {
      throw ValidationError("--video must name a .gif or .mp4 file, got '\(video)'")
    }
  }

  func run() throws {
    let environment: any Env
    do {
      environment = try EnvRegistry.make(env, seed: seed)
    } catch {
      throw ValidationError("--env: \(error)")
    }
    let maze = environment as? MemoryMaze
    let chosen = policy ?? (maze == nil ? "random" : "oracle")
    if chosen == "oracle" && maze == nil {
      throw ValidationError("--policy oracle needs a Memory Maze; use --policy random for \(env)")
    }
    var rng = SeededGenerator(seed: seed, stream: StreamTag.renderPolicy)
    var frames: [Image] = []
    _ = try environment.reset(seed: seed)
    guard let first = EpisodePictures.picture(of: environment, scale: scale) else {
      throw ValidationError(
        "--env: \(env) draws no picture (its observations are \(environment.observationSpace)); try classic/CartPole, memorymaze/9x9 or a dmc-vision: task"
      )
    }
    frames.append(EpisodePictures.captioned(first, step: 0, return: 0))
    var total = 0.0
    var taken = 0
    let start = Date()
    for _ in 0..<steps {
      let action =
        maze.map { chosen == "oracle" ? $0.oracleAction() : $0.actionSpace.sample(using: &rng) }
        ?? environment.actionSpace.sample(using: &rng)
      let r = try environment.step(action)
      total += r.reward
      taken += 1
      if let picture = EpisodePictures.picture(of: environment, scale: scale) {
        frames.append(EpisodePictures.captioned(picture, step: taken, return: total))
      }
      if r.isLast { break }
    }
    let elapsed = Date().timeIntervalSince(start)
    let pace = String(format: "%.0f", Double(taken) / max(elapsed, 1e-9))
    if let video {
      let url = URL(fileURLWithPath: video)
      do {
        try Video.write(frames, to: url, framesPerSecond: fps)
      } catch {
        throw ValidationError("--video: \(error)")
      }
      print(
        "Wrote \(frames.count) frames (\(chosen) policy, return \(total)) to \(url.path); \(pace) steps/s with pictures"
      )
    } else {
      let dir = URL(fileURLWithPath: output)
      let urls = try Image.writeFrames(frames, to: dir, prefix: env.replacingOccurrences(of: "/", with: "_"))
      print(
        "Wrote \(urls.count) frames (\(chosen) policy, return \(total)) to \(dir.path); \(pace) steps/s with pictures")
    }
  }
}
