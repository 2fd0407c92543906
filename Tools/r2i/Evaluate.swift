import Agent
import ArgumentParser
import CommandLineSupport
import Envs
import Foundation
import Imaging
import Tensor
import Training

/// Evaluation episodes of a trained agent (sampled from its policy, or greedy), with optional PNG
/// frames.
struct Evaluate: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval",
    abstract:
      "Run episodes of a run's agent (last checkpoint; acting as the run evaluates, or --greedy / --sample): mean score, success rate, optional frames."
  )

  @Option(name: .customLong("run"), help: "The run folder (made by 'r2i train').")
  var runFolder: String

  @Option(parsing: .unconditional, help: "Episodes, 1...10000.")
  var episodes: Int = 10

  @Option(parsing: .unconditional, help: "Seed of the evaluation environments (0...2^64-1).")
  var seed: UInt64 = 12345

  @Option(
    help:
      "Write PNG frames of the first episode here (image tasks: the observation, Memory Maze beside its top-down map; tasks that draw themselves: their picture)."
  )
  var frames: String?

  @Flag(help: "Take the policy's most likely actions (default: as the run's 'evaluation' setting says).")
  var greedy = false

  @Flag(help: "Sample actions from the policy (default: as the run's 'evaluation' setting says).")
  var sample = false

  @OptionGroup var threadOption: ThreadOption

  func validate() throws {
    try OptionCheck.range(episodes, 1...10_000, "--episodes")
    if greedy && sample { throw ValidationError("--greedy and --sample exclude each other; give one") }
  }

  func run() throws {
    Parallelism.setThreadCount(threadOption.count)
    let loaded: (config: TrainingConfig, agent: Agent, envSteps: Int)
    // A folder that holds no run, or a configuration out of range, is a mistake on the command
    // line (status 64); a damaged checkpoint is a failure (status 1), as for 'r2i train --resume'.
    do {
      _ = try TrainingRun.configuration(of: URL(fileURLWithPath: runFolder))
    } catch {
      throw ValidationError("--run: \(error)")
    }
    loaded = try TrainingRun.loadAgent(from: URL(fileURLWithPath: runFolder))
    let c = loaded.config
    var pictures: [Image] = []
    var recording = frames != nil
    // Environment 0's first episode as the world model saw it (for the open-loop grid).
    var seenObservations: [Tensor] = []
    var seenActions: [Tensor] = []
    let mode: EvaluationMode = greedy ? .greedy : sample ? .sample : c.evaluation
    print(
      "evaluating \(try c.agentName()) on \(c.env) (checkpoint at env step \(loaded.envSteps)): \(episodes) \(mode == .greedy ? "greedy" : "sampled") episodes"
    )
    let done = try Evaluation.episodes(
      agent: loaded.agent, env: c.env, count: episodes, environments: c.envs, seed: seed, mode: mode
    ) { collector, finished in
      guard recording else { return }
      if let picture = Self.picture(of: collector.envs.envs[0]) { pictures.append(picture) }
      if case .image = collector.envs.observationSpace, seenObservations.count < Self.openLoopLength {
        seenObservations.append(collector.lastObservations.slice(at: 0, axis: 0))
        seenActions.append(collector.pendingActions.slice(at: 0, axis: 0))
      }
      if finished.contains(where: { $0.environment == 0 }) { recording = false }
    }
    let report = EvaluationReport(envSteps: loaded.envSteps, episodes: done, mode: mode)
    let scores = done.map(\.score)
    let mean = report.meanScore
    let std =
      scores.isEmpty ? 0 : (scores.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(scores.count)).squareRoot()
    print(
      String(
        format: "mean score %.3f (std %.3f) over %d episodes, mean length %.1f", mean, std, done.count,
        report.meanLength))
    if let s = report.successRate { print(String(format: "success rate %.1f%%", 100 * s)) }
    if done.count < episodes { print("only \(done.count) episodes ended within \(10_000 * episodes) steps") }
    if let frames {
      if pictures.isEmpty {
        print("no frames: \(c.env) has vector observations and draws no picture")
      } else {
        let urls = try Image.writeFrames(
          pictures, to: URL(fileURLWithPath: frames), prefix: c.env.replacingOccurrences(of: "/", with: "_"))
        print("\(urls.count) frames in \(frames)")
      }
      if seenObservations.count > Self.openLoopContext {
        let grid = Self.openLoopGrid(
          agent: loaded.agent, observations: seenObservations, actions: seenActions, seed: seed)
        let url = URL(fileURLWithPath: frames).appendingPathComponent("openl.png")
        try grid.writePNG(to: url)
        print(
          "open-loop grid in \(url.path): real frames (top), then the model's (reconstructions for the first \(Self.openLoopContext), imagination from the episode's actions after)"
        )
      }
    }
  }

  static let openLoopLength = 45
  static let openLoopContext = 5

  /// DreamerV3's "openl" picture: every third of up to 45 steps, real frames above the model's
  /// (reconstructed for the first 5 steps, imagined open-loop from the real actions after).
  static func openLoopGrid(agent: Agent, observations: [Tensor], actions: [Tensor], seed: UInt64) -> Image {
    let t = observations.count
    let batch = WorldModelBatch(
      observations: Tensor.stack(observations, axis: 0).reshaped([1, t] + observations[0].shape),
      actions: Tensor.stack(actions, axis: 0).reshaped([1, t, actions[0].count]), rewards: Tensor.zeros([1, t]),
      isFirst: Tensor((0..<t).map { $0 == 0 ? 1 : 0 }, shape: [1, t]), isTerminal: Tensor.zeros([1, t]))
    var rng = SeededGenerator(seed: seed, stream: StreamTag.evaluation)
    let predicted = agent.worldModel.openLoopPrediction(batch, context: openLoopContext, rng: &rng)  // [1, T, H, W, C]
    func image(_ x: Tensor, scale: Float) -> Image {
      let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2])
      return Image(
        width: w, height: h, channels: c, pixels: x.scalars.map { UInt8(max(0, min(255, ($0 * scale).rounded()))) }
      ).scaled(by: 2)
    }
    let picked = Array(stride(from: 0, to: t, by: 3))
    let real = picked.map { image(observations[$0], scale: 1) }
    let model = picked.map { image(predicted.slice(at: 0, axis: 0).slice(at: $0, axis: 0), scale: 255) }
    return Image.grid(real + model, columns: picked.count)
  }

  /// What environment `env` looks like now: its image observation (Memory Maze with the top-down
  /// map beside it), or its own drawing.
  static func picture(of env: any Env) -> Image? {
    guard let f = env.render() else { return nil }
    let view = Image(width: f.width, height: f.height, channels: f.channels, pixels: f.pixels).scaled(
      by: max(1, 256 / max(1, f.width)))
    guard let maze = env as? MemoryMaze else { return view }
    let map = maze.renderTopDown(cell: max(1, view.height / maze.gridSize))
    return Image.row([view, Image(width: map.width, height: map.height, channels: 3, pixels: map.pixels)], padding: 4)
  }
}
