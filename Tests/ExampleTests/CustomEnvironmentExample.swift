import Agent
// BEGIN ENVIRONMENT EXAMPLE
import Envs
import Foundation
import Training

/// Shows a bit, then `delay` blank steps; the next action scores +1 if it repeats the bit.
final class RecallTheBit: Env {
  let delay: Int
  var rng: SeededGenerator
  var bit = 0
  var t = 0
  init(delay: Int, seed: UInt64) { (self.delay, rng) = (delay, SeededGenerator(seed: seed)) }

  var name: String { "mine/RecallTheBit" }
  var observationSpace: Space { .box(low: [0, 0], high: [1, 1]) }  // [the bit, "this is the cue"]
  var actionSpace: Space { .discrete(2) }
  var maxEpisodeSteps: Int? { delay + 1 }
  var task: TaskFacts { TaskFacts(success: .lastRewardPositive, needsMemory: true) }

  func reset(seed: UInt64?) -> Observation {
    if let seed { rng = SeededGenerator(seed: seed) }  // same seed, same episode
    (bit, t) = (rng.nextInt(below: 2), 0)
    return .vector([Float(bit), 1])
  }

  func step(_ action: Action) throws -> StepResult {
    t += 1
    let last = t > delay
    let reward: Double = last ? (action == .discrete(bit) ? 1 : -1) : 0
    return StepResult(observation: .vector([0, 0]), reward: reward, terminated: last, truncated: false)
  }
}

/// Trains R2I on it in `folder` for a short run and returns the episodes it played.
func trainOnMyOwnEnvironment(in folder: URL) throws -> Int {
  try EnvRegistry.register(name: "mine/RecallTheBit") { seed in RecallTheBit(delay: 5, seed: seed) }
  var config = try TrainingConfig.defaults(env: "mine/RecallTheBit", backbone: .r2i, steps: 600)
  config.prefill = 300  // a short run for the example; drop this line and the next for a real one
  config.trainRatio = 8
  return try TrainingRun.start(config: config, in: folder).run().episodes
}
// END ENVIRONMENT EXAMPLE
