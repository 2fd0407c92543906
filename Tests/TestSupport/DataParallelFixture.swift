import Agent
import Distributed
import Foundation
import Random
import Tensor
import WorldModel

/// The fixed learner steps the data-parallel tests run twice: in one process on the whole batch,
/// and on two MPI ranks with half of it each (`distributed-probe learner`), which must agree.
public enum DataParallelFixture {
  /// One configuration: backbone, discrete or continuous actions, and the imagination chunk
  /// (12 of the 32 starts: chunks that straddle the two ranks' halves; 64: one chunk, the
  /// one-pass update on each rank).
  public struct Case: Sendable, CustomStringConvertible {
    public let backbone: Backbone
    public let discrete: Bool
    public let chunk: Int
    public var description: String { "\(backbone.rawValue)-\(discrete ? "discrete" : "continuous")-chunk\(chunk)" }
  }

  public static let cases: [Case] = [
    Case(backbone: .r2i, discrete: true, chunk: 12), Case(backbone: .r2i, discrete: true, chunk: 64),
    Case(backbone: .dreamerv3, discrete: true, chunk: 12), Case(backbone: .dreamerv3, discrete: true, chunk: 64),
    Case(backbone: .r2i, discrete: false, chunk: 12),
  ]

  /// The whole batch: 4 sequences of 8 steps (an episode boundary and a terminal step inside,
  /// no padding, so every rank's half weighs the same).
  public static let batchSize = 4
  public static let length = 8

  static func config(_ c: Case) -> AgentConfig {
    let actions: ActionSpec = c.discrete ? .discrete(3) : .continuous(2)
    let wm = TinyConfigs.worldModel(c.backbone, actions: actions.size, discreteActions: c.discrete)
    var ac = ActorCriticSettings()
    ac.horizon = 4
    ac.imaginationChunk = c.chunk
    return AgentConfig(worldModel: wm, actions: actions, policyInput: .hidden, units: 16, layers: 1, actorCritic: ac)
  }

  static func batch(_ c: Case, rows: Range<Int>) -> WorldModelBatch {
    var rng = SeededGenerator(seed: 21)
    let (b, t) = (batchSize, length)
    let actions: Tensor
    if c.discrete {
      actions = Tensor.oneHot((0..<(b * t)).map { _ in rng.nextInt(below: 3) }, depth: 3).reshaped([b, t, 3])
    } else {
      actions = Tensor.uniform([b, t, 2], low: -1, high: 1, using: &rng)
    }
    var isFirst = Tensor.zeros([b, t])
    var isTerminal = Tensor.zeros([b, t])
    for i in 0..<b { isFirst[i, 0] = 1 }
    isFirst[1, 5] = 1
    isTerminal[2, 3] = 1
    isFirst[2, 4] = 1
    let whole = WorldModelBatch(
      observations: Tensor.normal([b, t, 5], using: &rng), actions: actions,
      rewards: Tensor.uniform([b, t], low: -1, high: 1, using: &rng), isFirst: isFirst, isTerminal: isTerminal)
    return WorldModelBatch(
      observations: whole.observations.slice(axis: 0, rows), actions: whole.actions.slice(axis: 0, rows),
      rewards: whole.rewards.slice(axis: 0, rows), isFirst: whole.isFirst.slice(axis: 0, rows),
      isTerminal: whole.isTerminal.slice(axis: 0, rows))
  }

  /// Two learner steps of a fresh agent on rows `rows` of the batch, sharing them with
  /// `communicator`: every parameter afterwards (flat, in the agent's order), the metrics of
  /// the second step and the return scale's low and high.
  public static func train(_ c: Case, rows: Range<Int>, communicator: any Communicator) -> (
    parameters: [Float], metrics: [Float], returnScale: [Float]
  ) {
    let agent = Agent(config: config(c), seed: 5)
    let learner = AgentLearner(agent: agent)
    learner.share(with: communicator)
    let batch = batch(c, rows: rows)
    var rng = SeededGenerator(seed: 8)
    learner.train(batch, rng: &rng)
    let metrics = learner.train(batch, rng: &rng)
    let scale = learner.actorCritic.returnScale
    return (agent.parameters.flatMap(\.value.scalars), metrics.values, [scale.low, scale.high])
  }
}
