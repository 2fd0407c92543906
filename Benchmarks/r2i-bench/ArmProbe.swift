import Agent
import ArgumentParser
import Envs
import Foundation
import Tensor
import Training

/// One reading of ``ArmProbe``: at an env step of training, the policy's probability of each
/// first action and each first action's imagined return.
struct ArmReading: Codable, Equatable {
  var envSteps: Int
  var probabilities: [Double]
  var returns: [Double]
}

/// The per-arm diagnostic of a task whose first action picks an arm (BSuite
/// discounting_chain): at the latent state after a fresh episode's first observation, the
/// policy's probability of each action, and each action's imagined return when taken first
/// with the policy after it, `r_1 + gamma c_1 R_1`: the world model's reward and continue at the
/// state the action leads to and the lambda-return from there (15 imagined steps, the critic
/// beyond), the mean over `samples` rollouts. Nothing of the run's state or random streams is
/// touched. `r2i-bench memory --probe-arms` writes one reading per metrics line to
/// `arms.jsonl` in each run folder.
enum ArmProbe {
  /// The actor-critic learner whose imagination the probe uses (built once per run: it holds
  /// optimiser states the probe never touches).
  static func learner(for agent: Agent) -> ActorCriticLearner {
    ActorCriticLearner(
      worldModel: agent.worldModel, actor: agent.actor, critic: agent.critic, slowCritic: agent.slowCritic,
      settings: agent.config.actorCritic)
  }

  static func read(
    agent: Agent, learner: ActorCriticLearner, env: String, envSteps: Int, samples: Int = 128, seed: UInt64 = 0
  ) throws -> ArmReading {
    let e = try EnvRegistry.make(env, seed: seed)
    let interface = try EnvInterface(e)
    guard interface.actionSpec.isSingleDiscrete else {
      throw ValidationError("--probe-arms needs one discrete action per step; \(env) has \(interface.actionSpec)")
    }
    let arms = interface.actionSpec.size
    let first = Transition(
      observation: try e.reset(seed: seed), reward: 0, isFirst: true, isLast: false, isTerminal: false)
    let observation = interface.observations([first])
    var rng = SeededGenerator(seed: seed, stream: StreamTag.evaluation)
    return withoutGradient {
      let start = agent.worldModel.observeStep(
        observation: observation, previousAction: Tensor.zeros([1, arms]), isFirst: Tensor.ones([1]), state: nil,
        rng: &rng)
      guard case .categorical(let parts) = agent.actor(start) else { preconditionFailure("a discrete policy") }
      let probabilities = parts[0].probs.value.scalars.map(Double.init)
      let copies = start.rows([Int](repeating: 0, count: samples))
      var returns: [Double] = []
      for arm in 0..<arms {
        let action = Tensor.oneHot([Int](repeating: arm, count: samples), depth: arms)
        let next = agent.worldModel.imagineStep(state: copies, action: Variable(action), rng: &rng).state
        let reward = agent.worldModel.predictedReward(
          next, previousAction: agent.worldModel.config.rewardByAction ? action : nil
        ).value
        let cont = agent.worldModel.predictedContinue(next)
        let after = learner.imagine(start: next, startContinue: cont, rng: &rng).returns.value.slice(axis: 0, 0..<1)
        let q = reward + cont * after.reshaped([samples]) * agent.config.actorCritic.discount
        returns.append(Double(q.mean().scalar))
      }
      return ArmReading(envSteps: envSteps, probabilities: probabilities, returns: returns)
    }
  }

  /// Keeps the readings of `file` up to `envSteps` (those of a resumed run's earlier life after
  /// its checkpoint would repeat) and returns a handle appending after them.
  static func open(_ file: URL, keepingUpTo envSteps: Int) throws -> FileHandle {
    var kept = Data()
    if let text = try? String(contentsOf: file, encoding: .utf8) {
      for line in text.split(separator: "\n") {
        if let r = try? JSONDecoder().decode(ArmReading.self, from: Data(line.utf8)), r.envSteps <= envSteps {
          kept += Data((line + "\n").utf8)
        }
      }
    }
    try kept.write(to: file, options: .atomic)
    let handle = try FileHandle(forWritingTo: file)
    try handle.seekToEnd()
    return handle
  }

  static func append(_ reading: ArmReading, to handle: FileHandle) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    try handle.write(contentsOf: try encoder.encode(reading) + Data("\n".utf8))
  }
}
