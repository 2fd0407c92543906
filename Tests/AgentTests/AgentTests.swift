import Foundation
import Testing

@testable import Agent

/// The small CPU preset narrowed to `width` (deter, units, SSM channels, actor and critic) with
/// an SSM of `states` states and `layers` layers, for fast tests (a Transformer: `layers` + 1
/// blocks of `width`, 2 heads).
func narrowConfig(
  _ backbone: Backbone, observation: Int, actions: ActionSpec, width: Int, states: Int, layers: Int
) -> AgentConfig {
  var config = AgentConfig.small(backbone: backbone, observation: .vector(size: observation), actions: actions)
  config.worldModel.deter = width
  config.worldModel.units = width
  config.worldModel.ssm = SSMSettings(states: states, channels: width, layers: layers, hippoBlocks: 2)
  if backbone == .transformer {
    config.worldModel.transformer = TransformerSettings(layers: layers + 1, width: width, heads: 2)
  }
  config.units = width
  return config
}

@Suite struct AgentTests {
  /// Acting step by step over a batch of episodes with resets inside keeps the same latent
  /// states as observing the recorded episodes as one sequence.
  @Test(arguments: Backbone.allCases)
  func actingOverEpisodesWithResetsEqualsObservingTheSequence(_ backbone: Backbone) {
    let config = narrowConfig(backbone, observation: 3, actions: .discrete(3), width: 16, states: 8, layers: 2)
    let agent = Agent(config: config, seed: 3)
    var data = SeededGenerator(seed: 4)
    let (b, t) = (2, 7)
    let observations = Tensor.normal([b, t, 3], using: &data)
    var isFirst = Tensor.zeros([b, t])
    for (i, j) in [(0, 0), (1, 0), (0, 4), (1, 2), (1, 3)] { isFirst[i, j] = 1 }
    var rngAct = SeededGenerator(seed: 5)
    var state = agent.initialState(batch: b)
    var actions: [Tensor] = []
    var latents: [LatentState] = []
    for step in 0..<t {
      let (a, next) = agent.act(
        observation: observations.slice(at: step, axis: 1), isFirst: isFirst.slice(at: step, axis: 1), state: state,
        mode: .greedy, rng: &rngAct)
      actions.append(a)
      latents.append(next.latent!)
      state = next
    }
    let batch = WorldModelBatch(
      observations: observations, actions: Tensor.stack(actions, axis: 1), rewards: Tensor.zeros([b, t]),
      isFirst: isFirst, isTerminal: Tensor.zeros([b, t]))
    var rngSeq = SeededGenerator(seed: 5)
    let seq = withoutGradient { agent.worldModel.observe(batch, rng: &rngSeq) }
    for step in 0..<t {
      let expected = seq.states.step(step)
      #expect(latents[step].stoch.value == expected.stoch.value, "\(backbone) step \(step)")
      #expect(latents[step].memory.value.maxAbsDifference(expected.memory.value) < 1e-5, "\(backbone) step \(step)")
    }
  }

  /// The whole agent on a one-step contextual bandit: the first observation shows a bit, the
  /// matching action pays +1 (the other -1) on the next, terminal step. Data comes from a random
  /// policy; after a fixed number of learner steps the greedy policy must be right on at least
  /// 95 % of held-out contexts.
  @Test(arguments: Backbone.allCases)
  func theAgentLearnsAContextualBandit(_ backbone: Backbone) {
    var config = narrowConfig(backbone, observation: 2, actions: .discrete(2), width: 64, states: 16, layers: 1)
    config.actorCritic.horizon = 3
    config.actorCritic.actorOptimizer.learningRate = 1e-3
    config.actorCritic.criticOptimizer.learningRate = 1e-3
    let agent = Agent(config: config, seed: 11)
    let learner = AgentLearner(agent: agent)
    var rng = SeededGenerator(seed: 12)
    func episodes(_ n: Int) -> (WorldModelBatch, [Int]) {
      var obs: [Float] = []
      var acts: [Float] = []
      var rewards: [Float] = []
      var bits: [Int] = []
      for _ in 0..<n {
        let bit = rng.nextInt(below: 2)
        let action = rng.nextInt(below: 2)
        bits.append(bit)
        obs += bit == 0 ? [1, 0] : [0, 1]
        obs += [0, 0]  // the terminal observation
        acts += action == 0 ? [1, 0] : [0, 1]
        acts += [0, 0]
        rewards += [0, action == bit ? 1 : -1]
      }
      let first: [Float] = (0..<n).flatMap { _ -> [Float] in [1, 0] }
      let terminal: [Float] = (0..<n).flatMap { _ -> [Float] in [0, 1] }
      return (
        WorldModelBatch(
          observations: Tensor(obs, shape: [n, 2, 2]), actions: Tensor(acts, shape: [n, 2, 2]),
          rewards: Tensor(rewards, shape: [n, 2]), isFirst: Tensor(first, shape: [n, 2]),
          isTerminal: Tensor(terminal, shape: [n, 2])), bits
      )
    }
    var metrics = LearnerMetrics()
    for _ in 0..<3000 { metrics = learner.train(episodes(16).0, rng: &rng) }
    // Greedy actions on fresh contexts.
    let (test, bits) = episodes(200)
    let (actions, _) = agent.act(
      observation: test.observations.slice(at: 0, axis: 1), isFirst: Tensor.ones([200]),
      state: agent.initialState(batch: 200), mode: .greedy, rng: &rng)
    let correct = (0..<200).filter { actions[$0, bits[$0]] == 1 }.count
    print(
      "bandit \(backbone): \(correct)/200 greedy actions right; last metrics \(metrics.named.filter { ["wm/loss", "wm/rew", "actor/loss", "actor/return", "actor/entropy"].contains($0.name) })"
    )
    #expect(correct >= 190, "\(backbone): \(correct) of 200 right")
  }
}

@Suite struct LearnerStateTests {
  func smallAgent(seed: UInt64) -> Agent {
    var config = narrowConfig(.r2i, observation: 2, actions: .discrete(2), width: 16, states: 8, layers: 1)
    config.actorCritic.horizon = 3
    return Agent(config: config, seed: seed)
  }

  func batch(_ rng: inout SeededGenerator) -> WorldModelBatch {
    var first = Tensor.zeros([4, 3])
    for i in 0..<4 { first[i, 0] = 1 }
    let actions = Tensor.oneHot((0..<12).map { _ in rng.nextInt(below: 2) }, depth: 2).reshaped([4, 3, 2])
    return WorldModelBatch(
      observations: Tensor.normal([4, 3, 2], using: &rng), actions: actions,
      rewards: Tensor.normal([4, 3], using: &rng),
      isFirst: first, isTerminal: Tensor.zeros([4, 3]))
  }

  /// Parameters + learner state saved after 4 steps and loaded into a fresh agent continue
  /// bit for bit like the agent that was never stopped.
  /// Crafted numbers in a learner's state (a file whose checksums were recomputed) are refused,
  /// naming the entry, before they reach an update.
  @Test func craftedLearnerStateIsRefused() throws {
    let a = smallAgent(seed: 1)
    let learner = AgentLearner(agent: a)
    var data = SeededGenerator(seed: 2)
    var rng = SeededGenerator(seed: 3)
    learner.train(batch(&data), rng: &rng)
    let good = Dictionary(uniqueKeysWithValues: learner.stateTensors())
    try learner.loadState(good)
    let firstV = try #require(good.keys.sorted().first { $0.hasPrefix("actor/v/") })
    let cases: [(String, Tensor, String)] = [
      ("returnScale", Tensor([0, .nan, 3]), "returnScale"),
      ("returnScale", Tensor([2, 1, 3]), "returnScale"),
      ("worldModel/step", Tensor([1e30]), "step"),
      ("critic/step", Tensor([-1]), "step"),
      (firstV, good[firstV]! * 0 - 1, firstV.dropFirst("actor/".count).description),
    ]
    for (name, value, mentions) in cases {
      var crafted = good
      crafted[name] = value
      #expect("\(name)") { try learner.loadState(crafted) } throws: { "\($0)".contains(mentions) }
    }
  }

  @Test func savedAndLoadedLearnersContinueBitForBit() throws {
    let a = smallAgent(seed: 1)
    let learnerA = AgentLearner(agent: a)
    var data = SeededGenerator(seed: 2)
    var rngA = SeededGenerator(seed: 3)
    for _ in 0..<4 { learnerA.train(batch(&data), rng: &rngA) }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    try SafeTensors.save(a, to: dir.appendingPathComponent("agent.safetensors"))
    try SafeTensors.write(learnerA.stateTensors(), to: dir.appendingPathComponent("learner.safetensors"))

    let b = smallAgent(seed: 99)
    let learnerB = AgentLearner(agent: b)
    try SafeTensors.load(into: b, from: dir.appendingPathComponent("agent.safetensors"))
    try learnerB.loadState(SafeTensors.read(from: dir.appendingPathComponent("learner.safetensors")).tensors)
    #expect(learnerB.actorCritic.returnScale == learnerA.actorCritic.returnScale)
    var rngB = rngA
    var dataB = data
    for _ in 0..<3 {
      learnerA.train(batch(&data), rng: &rngA)
      learnerB.train(batch(&dataB), rng: &rngB)
    }
    for (p, q) in zip(a.parameters, b.parameters) { #expect(p.value == q.value) }

    // A state with an entry missing is refused and changes nothing.
    var damaged = Dictionary(uniqueKeysWithValues: learnerB.stateTensors())
    let before = learnerB.stateTensors()
    damaged.removeValue(forKey: damaged.keys.first { $0.hasPrefix("critic/m/") }!)
    #expect(throws: CheckpointError.self) { try learnerB.loadState(damaged) }
    for (x, y) in zip(before, learnerB.stateTensors()) { #expect(x.0 == y.0 && x.1 == y.1) }
  }
}

/// The JSON form of an action space, as `config.json` holds it.
@Suite struct ActionSpecCodingTests {
  @Test func actionSpacesReadAsTheyAreWrittenAndOlderFilesStillRead() throws {
    let cases: [(ActionSpec, String)] = [
      (.discrete(2), #""discrete:2""#), (.multiDiscrete([3, 4]), #""multiDiscrete:3,4""#),
      (.continuous(6), #""continuous:6""#),
    ]
    for (spec, json) in cases {
      #expect(String(decoding: try JSONEncoder().encode(spec), as: UTF8.self) == json)
      #expect(try JSONDecoder().decode(ActionSpec.self, from: Data(json.utf8)) == spec)
    }
    // What builds before this one wrote: an object by kind, with or without a "_0" level.
    for (spec, json) in [
      (ActionSpec.discrete(2), #"{"discrete":2}"#), (.multiDiscrete([3, 4]), #"{"multiDiscrete":[3,4]}"#),
      (.continuous(6), #"{"continuous":6}"#),
    ] {
      #expect(try JSONDecoder().decode(ActionSpec.self, from: Data(json.utf8)) == spec)
    }
    // What builds before this one wrote.
    let older: [(String, ActionSpec)] = [
      (#"{"discrete":{"_0":2}}"#, .discrete(2)), (#"{"multiDiscrete":{"_0":[3,4]}}"#, .multiDiscrete([3, 4])),
      (#"{"continuous":{"_0":6}}"#, .continuous(6)),
    ]
    for (json, spec) in older { #expect(try JSONDecoder().decode(ActionSpec.self, from: Data(json.utf8)) == spec) }
    for bad in [
      #"{}"#, #"{"discrete":2,"continuous":1}"#, #"{"discrete":"two"}"#, #"{"boxed":2}"#, #""discrete:2,3""#,
      #""discrete""#, #""boxed:2""#, #""multiDiscrete:3,""#,
    ] {
      #expect(throws: DecodingError.self, "\(bad)") { try JSONDecoder().decode(ActionSpec.self, from: Data(bad.utf8)) }
    }
  }
}
