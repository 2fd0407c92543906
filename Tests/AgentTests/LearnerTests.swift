import Foundation
import TestSupport
import Testing

@testable import Agent

/// A tiny world model and agent for fast tests.
func tinyAgent(
  _ backbone: Backbone, spec: ActionSpec, seed: UInt64 = 0, scaleContinuousActions: Bool = true,
  imaginationChunk: Int = 2048, rewardByAction: Bool = false
) -> ActorCriticLearner {
  var c = TinyConfigs.worldModel(
    backbone, observation: .vector(size: 4), actions: spec.size,
    discreteActions: spec.isDiscrete || !scaleContinuousActions)
  c.rewardByAction = rewardByAction
  let model = WorldModel(config: c, seed: seed)
  var rng = SeededGenerator(seed: seed &+ 1)
  let f = model.initialState(batch: 1).features(.hidden).shape[1]
  let actor = Actor(featureSize: f, units: 8, layers: 1, spec: spec, input: .hidden, rng: &rng)
  let critic = Critic(featureSize: f, units: 8, layers: 1, input: .hidden, rng: &rng)
  let slow = Critic(featureSize: f, units: 8, layers: 1, input: .hidden, rng: &rng)
  var s = ActorCriticSettings()
  s.horizon = 5
  s.imaginationChunk = imaginationChunk
  s.actorOptimizer.learningRate = 1e-2
  s.criticOptimizer.learningRate = 1e-2
  return ActorCriticLearner(worldModel: model, actor: actor, critic: critic, slowCritic: slow, settings: s)
}

func tinyBatch(_ learner: ActorCriticLearner, b: Int = 2, t: Int = 3, seed: UInt64 = 5) -> WorldModelBatch {
  var rng = SeededGenerator(seed: seed)
  let a = learner.worldModel.config.actionSize
  var first = Tensor.zeros([b, t])
  for i in 0..<b { first[i, 0] = 1 }
  return WorldModelBatch(
    observations: Tensor.normal([b, t, 4], using: &rng),
    actions: Tensor.uniform([b, t, a], low: -1, high: 1, using: &rng),
    rewards: Tensor.zeros([b, t]), isFirst: first, isTerminal: Tensor.zeros([b, t]))
}

@Suite struct LearnerTests {
  @Test(arguments: Backbone.allCases)
  func imaginedReturnsHaveTheirShapesAndTheStartsContinueFromData(_ backbone: Backbone) {
    let learner = tinyAgent(backbone, spec: .discrete(3))
    var rng = SeededGenerator(seed: 1)
    let start = withoutGradient { learner.worldModel.observe(tinyBatch(learner), rng: &rng).states.flattened() }
    let startContinue = Tensor([1, 0, 1, 1, 1, 0])
    let i = learner.imagine(start: start, startContinue: startContinue, rng: &rng)
    #expect(i.states.deter.shape[0] == 6 && i.actions.shape == [5, 6, 3] && i.horizon == 5)
    #expect(i.returns.shape == [5, 6] && i.values.shape == [6, 6] && i.weights.shape == [6, 6])
    #expect(i.weights.slice(at: 0, axis: 0) == startContinue)
    // A start that ends there has weight 0 everywhere after.
    #expect(i.weights.slice(axis: 0, 1..<6).slice(at: 1, axis: 1).scalars.allSatisfy { $0 == 0 })
  }

  /// A reward head by action: the reward of imagined state k + 1 is the distribution of the
  /// action taken at step k.
  @Test(arguments: Backbone.allCases)
  func imaginedRewardsReadTheActionTakenIntoEachState(_ backbone: Backbone) {
    let learner = tinyAgent(backbone, spec: .discrete(2), rewardByAction: true)
    let head = learner.worldModel.reward
    #expect(head.actions == 2)
    // Rows: action 0 -> bin 140, action 1 -> bin 150, no action -> bin 127 (value 0).
    let k = head.binValues.count
    var bias = [Float](repeating: -30, count: 3 * k)
    for (row, bin) in [(0, 140), (1, 150), (2, 127)] { bias[row * k + bin] = 30 }
    head.out.weight.value = Tensor.zeros(head.out.weight.shape)
    head.out.bias!.value = Tensor(bias, shape: [3 * k])
    func value(_ bin: Int) -> Float { symexp(Tensor([head.binValues[bin]])).scalar }
    var rng = SeededGenerator(seed: 1)
    let start = withoutGradient { learner.worldModel.observe(tinyBatch(learner), rng: &rng).states.flattened() }
    let i = learner.imagine(start: start, startContinue: Tensor.ones([6]), rng: &rng)
    for step in 0..<i.horizon {
      for n in 0..<6 {
        let expected = i.actions.value[step, n, 1] == 1 ? value(150) : value(140)
        #expect(abs(i.rewards[step, n] - expected) < 1e-3 * abs(expected), "step \(step) start \(n)")
      }
    }
  }

  /// Discrete actions: no world-model gradient at all (starts detached, imagination off the
  /// tape). Continuous actions: the actor's loss reaches the world model through the imagined
  /// dynamics, but still not through the start states.
  @Test(arguments: Backbone.allCases)
  func onlyContinuousImaginationCarriesWorldModelGradients(_ backbone: Backbone) {
    for spec in [ActionSpec.discrete(3), .continuous(2)] {
      let learner = tinyAgent(backbone, spec: spec)
      let model = learner.worldModel
      let batch = tinyBatch(learner)
      let (_, grads) = valueAndGradient(of: [model, learner.actor]) {
        var rng = SeededGenerator(seed: 2)
        let start = model.observe(batch, rng: &rng).states.flattened()  // on the tape
        let i = learner.imagine(start: start, startContinue: Tensor.ones([6]), rng: &rng)
        return learner.actorLoss(i).loss
      }
      var worldModelNorm: Float = 0
      var actorNorm: Float = 0
      var encoderNorm: Float = 0
      for (name, g) in zip(grads.names, grads.tensors) {
        if name.hasPrefix("0/") { worldModelNorm += Float(g.sumOfSquares()) }
        if name.hasPrefix("0/encoder") || name.hasPrefix("0/core/posterior") { encoderNorm += Float(g.sumOfSquares()) }
        if name.hasPrefix("1/") { actorNorm += Float(g.sumOfSquares()) }
      }
      #expect(actorNorm > 0, "\(backbone) \(spec): the actor gets no gradient")
      #expect(encoderNorm == 0, "\(backbone) \(spec): gradient leaked into the start states")
      if spec.isDiscrete {
        #expect(worldModelNorm == 0, "\(backbone): discrete imagination recorded world-model gradients")
      } else {
        #expect(worldModelNorm > 0, "\(backbone): continuous imagination has no world-model gradient")
      }
    }
  }

  @Test func anUpdateMovesTheActorTheCriticAndTheSlowCritic() {
    let learner = tinyAgent(.r2i, spec: .discrete(3))
    var rng = SeededGenerator(seed: 3)
    let start = withoutGradient { learner.worldModel.observe(tinyBatch(learner), rng: &rng).states.flattened() }
    let actorBefore = learner.actor.parameters.map(\.value)
    let criticBefore = learner.critic.parameters.map(\.value)
    let slowBefore = learner.slowCritic.parameters.map(\.value)
    let metrics = learner.update(start: start, startContinue: Tensor.ones([6]), rng: &rng)
    #expect(metrics.nonFinite.isEmpty, "\(metrics.nonFinite)")
    #expect(metrics.actorLoss != 0 && metrics.criticLoss > 0 && metrics.entropy > 0 && metrics.returnScale >= 1)
    #expect(metrics.actorGradientNorm > 0 && metrics.criticGradientNorm > 0 && metrics.valueError >= 0)
    #expect(zip(actorBefore, learner.actor.parameters).contains { $0 != $1.value })
    #expect(zip(criticBefore, learner.critic.parameters).contains { $0 != $1.value })
    // slow = 0.98 slow + 0.02 critic, parameter by parameter.
    for (old, (slow, critic)) in zip(slowBefore, zip(learner.slowCritic.parameters, learner.critic.parameters)) {
      #expect((old * 0.98 + critic.value * 0.02).maxAbsDifference(slow.value) < 1e-6)
    }
    #expect(learner.returnScale.updates == 1)
  }
}

/// Imagination in chunks gives the gradient of the whole batch: the weighted sum of the
/// chunks' gradients, each chunk imagined from its own generator split off the caller's.
@Suite struct ChunkedImaginationTests {
  @Test(arguments: Backbone.allCases)
  func chunkedGradientsAreTheStartWeightedSumOfThePartsAndTheScaleSeesAllReturns(_ backbone: Backbone) throws {
    for spec in [ActionSpec.discrete(3), .continuous(2)] {
      func make(chunk: Int = 2048) -> ActorCriticLearner {
        let l = tinyAgent(backbone, spec: spec, seed: 31, imaginationChunk: chunk)
        var r = SeededGenerator(seed: 32)
        // Non-zero rewards and values, so advantages and critic targets are not all zero.
        l.worldModel.reward.out.weight.value = Tensor.normal(l.worldModel.reward.out.weight.shape, std: 0.05, using: &r)
        l.critic.out.weight.value = Tensor.normal(l.critic.out.weight.shape, std: 0.05, using: &r)
        return l
      }
      let whole = make()
      var rng0 = SeededGenerator(seed: 33)
      let batch = tinyBatch(whole, b: 3, t: 4)
      let start = withoutGradient { whole.worldModel.observe(batch, rng: &rng0).states.flattened() }  // 12 starts
      let cont = Tensor((0..<12).map { $0 == 5 ? 0 : 1 })
      let base = SeededGenerator(seed: 34)

      // Chunks of 5: [0, 5), [5, 10), [10, 12).
      let chunked = make(chunk: 5)
      #expect(chunked.chunks(starts: 12) == [0..<5, 5..<10, 10..<12])
      var r = base
      let g = chunked.gradients(start: start, startContinue: cont, rng: &r)

      // The same three parts, each as a whole batch, from the generator the chunk got.
      var splitter = base
      var expectedActor: [Tensor]?
      var expectedCritic: [Tensor]?
      var returns: [Tensor] = []
      for range in [0..<5, 5..<10, 10..<12] {
        // A generator whose first split is the one this chunk got inside the chunked call.
        var own = splitter
        _ = splitter.split()
        let one = make()
        var forReturns = own
        var chunkGenerator = forReturns.split()
        returns.append(
          withoutGradient {
            one.imagine(start: start.rows(range), startContinue: cont.slice(axis: 0, range), rng: &chunkGenerator)
              .returns.value
          })
        let gp = one.gradients(start: start.rows(range), startContinue: cont.slice(axis: 0, range), rng: &own)
        let w = Float(range.count) / 12
        expectedActor = zip(expectedActor ?? gp.actor.tensors.map { $0 * 0 }, gp.actor.tensors).map { $0 + $1 * w }
        expectedCritic = zip(expectedCritic ?? gp.critic.tensors.map { $0 * 0 }, gp.critic.tensors).map { $0 + $1 * w }
      }
      let all = Tensor.concat(returns, axis: 1)
      var scale = ReturnScale()
      scale.update(all)
      #expect(scale.high - scale.low < 1, "the test needs the scale at 1 in every part")
      #expect(chunked.returnScale == scale, "\(backbone) \(spec): the scale did not see all returns once")
      for (a, b) in zip(g.actor.tensors, expectedActor!) {
        #expect(a.maxAbsDifference(b) <= 1e-5 * max(1, b.maxAbsDifference(b * 0)), "\(backbone) \(spec): actor")
      }
      for (a, b) in zip(g.critic.tensors, expectedCritic!) {
        #expect(a.maxAbsDifference(b) <= 1e-5 * max(1, b.maxAbsDifference(b * 0)), "\(backbone) \(spec): critic")
      }
    }
  }
}

@Suite struct ContinuousActorGradientTests {
  /// A learner whose continuous actor's loss is a smooth function of the actor's weights:
  /// actions enter the world model unscaled (the sg(1 / max(1, |a|)) scaling is by design not
  /// differentiated), every predicted continue is firmly 1 (no mode flips under a probe), the
  /// return scale is frozen (decay 1), and the reward head and the critic have weights (fresh
  /// ones predict 0 everywhere, which would hide the paths through the dynamics and the
  /// baseline).
  static func learner(_ backbone: Backbone) -> (ActorCriticLearner, LatentState) {
    let learner = tinyAgent(backbone, spec: .continuous(2), seed: 21, scaleContinuousActions: false)
    learner.returnScale = ReturnScale(decay: 1)
    learner.worldModel.cont.out.bias!.value = Tensor([5])
    var rng = SeededGenerator(seed: 22)
    for layer in [learner.worldModel.reward.out, learner.critic.out] {
      layer.weight.value = Tensor.normal(layer.weight.shape, std: 0.3, using: &rng)
    }
    let start = withoutGradient { learner.worldModel.observe(tinyBatch(learner), rng: &rng).states.flattened() }
    return (learner, start)
  }

  /// The actor's loss computed step by step in the test, independently of the learner's
  /// `imagine` and `actorLoss`: `-(R - v) / S - eta H(pi)`, weighted, where the actor reads the
  /// states `actorInputs` (nil: the rollout's own states, on the tape) and the baseline v is on
  /// the tape unless `detachBaseline`.
  static func handLoss(
    _ learner: ActorCriticLearner, start: LatentState, actorInputs: [LatentState]?, detachBaseline: Bool
  ) -> (loss: Variable, states: [LatentState]) {
    var rng = SeededGenerator(seed: 23)  // the same action and latent noise every time
    let h = learner.settings.horizon
    var states = [start.detached]
    var actions: [Variable] = []
    var entropies: [Variable] = []
    for t in 0..<h {
      let pi = learner.actor(actorInputs?[t] ?? states[t])
      let a = pi.sample(using: &rng)
      entropies.append(pi.entropy())
      actions.append(a)
      states.append(learner.worldModel.imagineStep(state: states[t], action: a, rng: &rng).state)
    }
    let stacked = LatentState.stacked(states)
    let actionTensor = Variable.stack(actions, axis: 0)
    let (rewards, continues) = learner.headPredictions(
      stacked, actions: actionTensor, startContinue: Tensor.ones([start.batchSize]))
    let values = learner.critic(stacked).mean  // [H + 1, N], on the tape
    let returns = Returns.lambdaReturns(
      rewards: rewards, continues: Variable(continues), values: values, discount: learner.settings.discount,
      lambda: learner.settings.lambda)
    let weights = Returns.trajectoryWeights(continues: continues, discount: learner.settings.discount)
      .slice(axis: 0, 0..<h)
    let baseline = values.slice(axis: 0, 0..<h)
    let advantage = (returns - (detachBaseline ? baseline.detached : baseline)) / learner.returnScale.scale
    let entropy = Variable.stack(entropies, axis: 0)
    let loss = -((advantage + entropy * learner.settings.entropy) * weights).mean()
    return (loss, states)
  }

  /// The continuous actor learns as DreamerV3 (2023) and R2I's reference: it reads every
  /// imagined state with its gradient stopped (while imagining and in its loss), and the
  /// baseline is the critic on the imagined states with its gradient. The learner's gradient
  /// equals the hand computation's, which finite differences confirm (with the actor's inputs
  /// held at the unperturbed rollout's states: what a stopped gradient means); and it differs
  /// from the earlier rule (the actor on the tape's states, the baseline stopped), so this test
  /// fails if either comes back.
  @Test(arguments: Backbone.allCases)
  func theContinuousActorReadsStopGradientStatesAndKeepsTheBaselineOnTheTape(_ backbone: Backbone) {
    let (learner, start) = Self.learner(backbone)
    OneHotCategorical.withRelaxedSampling {
      let inputs = withoutGradient {
        Self.handLoss(learner, start: start, actorInputs: nil, detachBaseline: false).states.map(\.detached)
      }
      let (_, learned) = valueAndGradient(of: learner.actor) {
        var rng = SeededGenerator(seed: 23)
        let imagined = learner.imagine(start: start, startContinue: Tensor.ones([start.batchSize]), rng: &rng)
        return learner.actorLoss(imagined).loss
      }
      let (_, hand) = valueAndGradient(of: learner.actor) {
        Self.handLoss(learner, start: start, actorInputs: inputs, detachBaseline: false).loss
      }
      let (_, earlier) = valueAndGradient(of: learner.actor) {
        Self.handLoss(learner, start: start, actorInputs: nil, detachBaseline: true).loss
      }
      var largest: Float = 0
      var toHand: Float = 0
      var toEarlier: Float = 0
      for k in learned.tensors.indices {
        largest = max(largest, learned.tensors[k].scalars.map(abs).max() ?? 0)
        toHand = max(toHand, learned.tensors[k].maxAbsDifference(hand.tensors[k]))
        toEarlier = max(toEarlier, learned.tensors[k].maxAbsDifference(earlier.tensors[k]))
      }
      #expect(largest > 1e-3, "\(backbone): the actor's gradient is \(largest) at most, too small to compare")
      #expect(toHand <= 1e-5 * largest, "\(backbone): \(toHand) from the hand computation (largest entry \(largest))")
      #expect(toEarlier >= 1e-2 * largest, "\(backbone): only \(toEarlier) from the earlier rule")
      let check = checkParameterGradients(of: learner.actor) {
        Self.handLoss(learner, start: start, actorInputs: inputs, detachBaseline: false).loss
      }
      #expect(check.report.passed, "\(backbone): \(check.report)")
    }
  }
}

/// ``ActorCriticSettings/imaginationStarts``: a uniform draw of starts among those that continue.
@Suite struct ImaginationStartsTests {
  @Test func theDrawKeepsEveryStartWithoutALimitOrWhenFewEnoughContinue() {
    var rng = SeededGenerator(seed: 1)
    let continues = Tensor([1, 0, 1, 1, 0, 1])
    #expect(ActorCriticLearner.chooseStarts(nil, continues: continues, rng: &rng) == nil)
    #expect(ActorCriticLearner.chooseStarts(4, continues: continues, rng: &rng) == nil)
    #expect(ActorCriticLearner.chooseStarts(9, continues: continues, rng: &rng) == nil)
    let before = rng
    _ = ActorCriticLearner.chooseStarts(4, continues: continues, rng: &rng)
    #expect(rng == before, "no draw when every start is kept")
  }

  @Test func theDrawIsUniformOverTheStartsThatContinue() {
    var rng = SeededGenerator(seed: 2)
    let values: [Float] = (0..<40).map { $0 % 4 == 3 ? 0 : 1 }  // 30 starts continue
    let continues = Tensor(values, shape: [40])
    var counts = [Int](repeating: 0, count: 40)
    let draws = 6000
    for _ in 0..<draws {
      let chosen = ActorCriticLearner.chooseStarts(6, continues: continues, rng: &rng)!
      #expect(chosen.count == 6 && Set(chosen).count == 6 && chosen == chosen.sorted())
      for i in chosen { counts[i] += 1 }
    }
    // Each of the 30 is kept with probability 6 / 30 = 0.2: 1,200 of 6,000 draws, standard
    // deviation sqrt(6000 * 0.2 * 0.8) = 31; the others never.
    for i in 0..<40 {
      if values[i] == 0 {
        #expect(counts[i] == 0, "start \(i) does not continue but was drawn \(counts[i]) times")
      } else {
        #expect(abs(counts[i] - 1200) < 5 * 31, "start \(i) drawn \(counts[i]) times, expected about 1200")
      }
    }
  }

  /// A learner step with a limit is the world-model update, the draw, then the actor-critic
  /// update on the drawn starts alone.
  @Test(arguments: Backbone.allCases)
  func aLimitedStepImaginesFromTheDrawnStartsOnly(_ backbone: Backbone) {
    var config = narrowConfig(backbone, observation: 3, actions: .discrete(2), width: 16, states: 8, layers: 1)
    config.actorCritic.horizon = 4
    config.actorCritic.imaginationStarts = 5
    let limited = AgentLearner(agent: Agent(config: config, seed: 7))
    let manual = AgentLearner(agent: Agent(config: config, seed: 7))
    var data = SeededGenerator(seed: 8)
    let (b, t) = (3, 6)
    var first = Tensor.zeros([b, t])
    for i in 0..<b { first[i, 0] = 1 }
    var terminal = Tensor.zeros([b, t])
    terminal[1, 5] = 1
    let batch = WorldModelBatch(
      observations: Tensor.normal([b, t, 3], using: &data),
      actions: Tensor.oneHot((0..<(b * t)).map { _ in data.nextInt(below: 2) }, depth: 2).reshaped([b, t, 2]),
      rewards: Tensor.normal([b, t], using: &data), isFirst: first, isTerminal: terminal,
      mask: Tensor((0..<(b * t)).map { $0 == 17 ? 0 : 1 }, shape: [b, t]))
    var r1 = SeededGenerator(seed: 9)
    var r2 = r1
    let metrics = limited.train(batch, rng: &r1)

    let update = manual.worldModelTrainer.update(batch, rng: &r2)
    let continues = (1 - batch.isTerminal).reshaped([b * t]) * batch.mask!.reshaped([b * t])
    let chosen = ActorCriticLearner.chooseStarts(5, continues: continues, rng: &r2)!
    #expect(!chosen.contains(11) && !chosen.contains(17), "a terminal or padded start was drawn: \(chosen)")
    let expected = manual.actorCritic.update(
      start: update.posterior.states.flattened().rows(chosen), startContinue: continues.gather(indices: chosen),
      rng: &r2)
    #expect(metrics.behaviour == expected)
    for (a, m) in zip(limited.agent.parameters, manual.agent.parameters) {
      #expect(a.value == m.value)
    }
    #expect(r1 == r2)
  }
}
