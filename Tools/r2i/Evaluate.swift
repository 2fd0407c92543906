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

  @Option(
    name: .customLong("at-step"), parsing: .unconditional,
    help: "Evaluate the kept checkpoint of this env step instead of the last (runs with checkpointKeep above 1).")
  var atStep: Int?

  @Option(help: "Write the first episode as one video file: a .gif, or an .mp4 where ffmpeg is installed.")
  var video: String?

  @Option(parsing: .unconditional, help: "Frames per second of --video, 1...100.")
  var fps: Double = 20

  @Flag(help: "Take the policy's most likely actions (default: as the run's 'evaluation' setting says).")
  var greedy = false

  @Flag(help: "Sample actions from the policy (default: as the run's 'evaluation' setting says).")
  var sample = false

  @OptionGroup var threadOption: ThreadOption

  func validate() throws {
    try OptionCheck.range(episodes, 1...10_000, "--episodes")
    if greedy && sample { throw ValidationError("--greedy and --sample exclude each other; give one") }
    if !(fps >= 1 && fps <= 100) { throw ValidationError("--fps must be in 1...100, got \(fps)") }
    if let video, !["gif", "mp4"].contains(URL(fileURLWithPath: video).pathExtension.lowercased()) {
      throw ValidationError("--video must name a .gif or .mp4 file, got '\(video)'")
    }
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
    if let atStep, !TrainingRun.keptCheckpoints(of: URL(fileURLWithPath: runFolder)).contains(atStep) {
      let kept = TrainingRun.keptCheckpoints(of: URL(fileURLWithPath: runFolder)).map(String.init)
      throw ValidationError(
        "--at-step: the run keeps no checkpoint at env step \(atStep); it has \(kept.joined(separator: ", ")) (keep more with --set checkpointKeep=N)"
      )
    }
    loaded = try TrainingRun.loadAgent(from: URL(fileURLWithPath: runFolder), envSteps: atStep)
    let c = loaded.config
    var pictures: [Image] = []
    var recording = frames != nil || video != nil
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
      if let picture = EpisodePictures.picture(of: collector.envs.envs[0]) {
        pictures.append(
          EpisodePictures.captioned(
            picture, step: collector.runningLengths[0], return: collector.runningScores[0]))
      }
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
    if let video {
      if pictures.isEmpty {
        print("no video: \(c.env) has vector observations and draws no picture")
      } else {
        try Video.write(pictures, to: URL(fileURLWithPath: video), framesPerSecond: fps)
        print("video of the first episode (\(pictures.count) frames) in \(video)")
      }
    }
    if let frames {
      if pictures.isEmpty {
        print("no frames: \(c.env) has vector observations and draws no picture")
      } else {
        let urls = try Image.writeFrames(
          pictures, to: URL(fileURLWithPath: frames), prefix: c.env.replacingOccurrences(of: "/", with: "_"))
        print("\(urls.count) frames in \(frames)")
      }
      if seenObservations.count > Self.openLoopContext,
        let grid = Self.openLoopGrid(
          agent: loaded.agent, observations: seenObservations, actions: seenActions, seed: seed)
      {
        let url = URL(fileURLWithPath: frames).appendingPathComponent("openl.png")
        try grid.writePNG(to: url)
        print(
          "open-loop picture in \(url.path): real frames above the model's, every \(OpenLoopPicture.every)rd step; left of the red line the model saw the frames (\(Self.openLoopContext) steps), right of it it imagines them from the episode's actions"
        )
      }
    }
  }

  static let openLoopLength = OpenLoopPicture.span
  static let openLoopContext = OpenLoopPicture.context

  /// The open-loop picture (``OpenLoopPicture``) of the first evaluation episode's first steps.
  static func openLoopGrid(agent: Agent, observations: [Tensor], actions: [Tensor], seed: UInt64) -> Image? {
    let t = observations.count
    let batch = WorldModelBatch(
      observations: Tensor.stack(observations, axis: 0).reshaped([1, t] + observations[0].shape),
      actions: Tensor.stack(actions, axis: 0).reshaped([1, t, actions[0].count]), rewards: Tensor.zeros([1, t]),
      isFirst: Tensor((0..<t).map { $0 == 0 ? 1 : 0 }, shape: [1, t]), isTerminal: Tensor.zeros([1, t]))
    var rng = SeededGenerator(seed: seed, stream: StreamTag.evaluation)
    return OpenLoopPicture.render(agent: agent, batch: batch, sequences: 1, scale: 2, rng: &rng)
  }
}
