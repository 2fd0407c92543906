import Agent
import Envs

/// Evaluation: episodes of an agent's policy (sampled, or its most likely actions) on fresh
/// environments, apart from the training environments and their random streams.
public enum Evaluation {
  /// `count` episodes of `agent` acting in `mode` on at most `environments` fresh copies of `env`, seeded
  /// from `seed` (stream `StreamTag.evaluation`); `onStep` sees the collector after every step
  /// (for frames). Stops early, with the episodes it has, after 10,000 steps per episode asked
  /// for.
  public static func episodes(
    agent: Agent, env: String, count: Int, environments: Int, seed: UInt64, mode: EvaluationMode,
    onStep: (Collector, [EpisodeRecord]) throws -> Void = { _, _ in }
  ) throws -> [EpisodeRecord] {
    var seeds = SeededGenerator(seed: seed, stream: StreamTag.evaluation)
    let k = min(count, environments)
    let envs = try BatchEnv(name: env, count: k, seed: seeds.next())
    let c = try Collector(agent: agent, envs: envs, seed: seeds.next())
    var done: [EpisodeRecord] = []
    var steps = 0
    while done.count < count && steps < 10_000 * count {
      let finished = try c.step(.agent(mode == .greedy ? .greedy : .sample))
      try onStep(c, finished)
      done += finished
      steps += k
    }
    return Array(done.prefix(count))
  }
}

extension TrainingRun {
  /// `count` episodes (``TrainingConfig/evaluation``'s mode) on fresh environments (seeded by the evaluation's index), with
  /// a fresh agent state; training state is untouched.
  public func evaluate(episodes count: Int, index: Int) throws -> EvaluationReport {
    let episodes = try Evaluation.episodes(
      agent: agent, env: config.env, count: count, environments: config.envs, seed: config.seed &+ UInt64(index),
      mode: config.evaluation)
    return EvaluationReport(envSteps: envSteps, episodes: episodes, mode: config.evaluation)
  }
}
