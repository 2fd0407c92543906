import Agent
import Envs
import Replay

/// One finished episode of one environment.
public struct EpisodeRecord: Codable, Equatable, Sendable {
  /// The environment's index in its batch.
  public var environment: Int
  /// Sum of the rewards received in the episode.
  public var score: Double
  /// Steps taken (actions), not counting the reset.
  public var length: Int
  /// Whether the episode counts as solved, for tasks that define it (``TaskFacts/success``);
  /// nil otherwise.
  public var success: Bool?

  public init(environment: Int, score: Double, length: Int, success: Bool?) {
    self.environment = environment
    self.score = score
    self.length = length
    self.success = success
  }
}

/// Steps a batch of environments with the agent's batched acting, carries each environment's
/// agent state, puts every step into a replay (stream = environment index) and tallies episodes.
///
/// ```swift
/// let collector = try Collector(agent: agent, envs: BatchEnv(name: "classic/CartPole", count: 4, seed: 0), seed: 1)
/// let finished = try collector.step(.agent(.sample), into: replay)  // the episodes that ended
/// ```
/// (Compiled and run by `CollectorExampleTests`.)
public final class Collector {
  public let agent: Agent
  public let envs: BatchEnv
  public let interface: EnvInterface
  /// The agent's state for every environment (latent and previous action).
  public var state: Agent.State
  /// The actions the environments take on the next step ([K, A], agent form).
  public var pendingActions: Tensor
  /// The observations of the last step, [K, ...] as the agent saw them.
  public private(set) var lastObservations = Tensor.zeros([0])
  /// Environment steps taken (K per call of ``step(_:into:)``, resets included).
  public var steps = 0
  /// The acting generator (policy and posterior samples, random prefill).
  public var rng: SeededGenerator
  var scores: [Double]
  var lengths: [Int]

  /// Each environment's current episode so far: its return and its steps (an episode that just
  /// ended keeps its totals until the next reset).
  public var runningScores: [Double] { scores }
  public var runningLengths: [Int] { lengths }

  public init(agent: Agent, envs: BatchEnv, seed: UInt64) throws {
    self.agent = agent
    self.envs = envs
    interface = try EnvInterface(envs)
    guard interface.actionSpec == agent.config.actions else {
      throw EnvError.invalidConfiguration(
        "the agent acts in \(agent.config.actions) but the environment's action space is \(envs.actionSpace)")
    }
    guard interface.observationKind == agent.config.worldModel.observation else {
      throw EnvError.invalidConfiguration(
        "the agent observes \(agent.config.worldModel.observation) but the environment gives \(envs.observationSpace)")
    }
    state = agent.initialState(batch: envs.count)
    pendingActions = Tensor.zeros([envs.count, interface.actionSpec.size])
    rng = SeededGenerator(seed: seed, stream: StreamTag.collector)
    scores = [Double](repeating: 0, count: envs.count)
    lengths = [Int](repeating: 0, count: envs.count)
  }

  /// How the next actions are chosen.
  public enum Policy: Sendable {
    /// The agent's policy, sampled (training) or its mode (evaluation).
    case agent(Agent.Mode)
    /// Uniformly random actions (prefill); the agent still observes, so its state is ready.
    case random
  }

  /// One step of every environment: send the pending actions, observe, choose the next ones,
  /// store the steps in `replay` (if given). Returns the episodes that ended on this step.
  @discardableResult
  public func step(_ policy: Policy, into replay: Replay? = nil) throws -> [EpisodeRecord] {
    let transitions = try envs.step(interface.environmentActions(pendingActions))
    let observations = interface.observations(transitions)
    lastObservations = observations
    let isFirst = Tensor(transitions.map { $0.isFirst ? 1 : 0 }, shape: [envs.count])
    let mode: Agent.Mode
    if case .agent(let m) = policy { mode = m } else { mode = .sample }
    var (actions, next) = agent.act(observation: observations, isFirst: isFirst, state: state, mode: mode, rng: &rng)
    if case .random = policy {
      actions = interface.randomActions(count: envs.count, rng: &rng)
      next.previousAction = actions
    }
    if let replay {
      try replay.insert(interface.replaySteps(transitions, actions: actions), streams: Array(0..<envs.count))
    }
    state = next
    pendingActions = actions
    steps += envs.count
    var finished: [EpisodeRecord] = []
    for (i, t) in transitions.enumerated() {
      if t.isFirst {
        scores[i] = 0
        lengths[i] = 0
        continue
      }
      scores[i] += t.reward
      lengths[i] += 1
      if t.isLast {
        finished.append(
          EpisodeRecord(
            environment: i, score: scores[i], length: lengths[i],
            success: envs.task.success.map { $0.isSolved(lastReward: t.reward, score: scores[i]) }))
      }
    }
    return finished
  }

  /// What ``restore(_:tensors:)`` needs, apart from the agent state's tensors
  /// (``Agent/State/tensors(prefix:)``) and the pending actions.
  public struct Snapshot: Codable, Equatable, Sendable {
    public var environments: BatchEnv.Snapshot
    public var rngState: [UInt64]
    public var steps: Int
    public var scores: [Double]
    public var lengths: [Int]
  }

  /// The collector's state: the snapshot and the tensors (agent state under `collector/`, and
  /// `collector/pendingActions`).
  public func snapshot() -> (Snapshot, [(String, Tensor)]) {
    (
      Snapshot(environments: envs.snapshot(), rngState: rng.state, steps: steps, scores: scores, lengths: lengths),
      state.tensors(prefix: "collector/") + [("collector/pendingActions", pendingActions)]
    )
  }

  /// Continues from ``snapshot()``: replays the running episodes and takes back the agent state.
  public func restore(_ snapshot: Snapshot, tensors: [String: Tensor]) throws {
    let k = envs.count
    guard snapshot.scores.count == k, snapshot.lengths.count == k else {
      throw CheckpointError(problem: "the collector state is for \(snapshot.scores.count) environments, not \(k)")
    }
    guard let generator = SeededGenerator(state: snapshot.rngState) else {
      throw CheckpointError(problem: "the collector state holds an invalid random state")
    }
    let template = Agent.State(
      latent: agent.worldModel.initialState(batch: k), previousAction: Tensor.zeros([k, interface.actionSpec.size]))
    let restored = try Agent.State(tensors: tensors, prefix: "collector/", like: template)
    guard let pending = tensors["collector/pendingActions"], pending.shape == [k, interface.actionSpec.size] else {
      throw CheckpointError(
        problem: "the checkpoint lacks 'collector/pendingActions' [\(k), \(interface.actionSpec.size)]")
    }
    try envs.restore(snapshot.environments)
    state = restored
    pendingActions = pending
    rng = generator
    steps = snapshot.steps
    scores = snapshot.scores
    lengths = snapshot.lengths
  }
}
