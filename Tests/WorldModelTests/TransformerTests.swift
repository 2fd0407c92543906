import Foundation
import TestSupport
import Testing

@testable import WorldModel

/// The Transformer backbone's own rules: the window, imagination from shared prefixes, a
/// bounded cache. (The rules every backbone keeps, such as observing equals stepping, run for
/// it in `ObserveEqualsSteppingTests` through `Backbone.allCases`.)
@Suite struct TransformerTests {
  func config(window: Int) -> WorldModelConfig {
    var c = tinyConfig(.transformer)
    c.transformer?.window = window
    return c
  }

  /// With a window of K shorter than the episodes, observing a batch equals stepping through it
  /// with the cache (which then drops the oldest key at every step), resets inside included.
  @Test(arguments: [1, 3, 5]) func observeEqualsSteppingWithAWindow(window: Int) {
    let c = config(window: window)
    let model = modelWithVisibleResets(c, seed: 41)
    let (b, t) = (3, 12)
    let batch = randomBatch(c, b: b, t: t, seed: 42, resets: [(0, 4), (2, 9)])
    var seqRNG = SeededGenerator(seed: 43)
    let seq = model.observe(batch, rng: &seqRNG)
    var stepRNG = SeededGenerator(seed: 43)
    var state: LatentState? = nil
    var previous = Tensor.zeros([b, c.actionSize])
    var worst: Float = 0
    for step in 0..<t {
      state = model.observeStep(
        observation: batch.observations.slice(at: step, axis: 1), previousAction: previous,
        isFirst: batch.isFirst.slice(at: step, axis: 1), state: state, rng: &stepRNG)
      worst = max(worst, state!.deter.value.maxAbsDifference(seq.states.step(step).deter.value))
      #expect(state!.stoch.value == seq.states.step(step).stoch.value, "z at step \(step)")
      previous = batch.actions.slice(at: step, axis: 1)
      // Never more than the window's keys, and no own step kept that no entry sees.
      let context = state!.context!
      #expect(context.ownSteps <= window, "step \(step): \(context.ownSteps) steps kept")
      for n in 0..<b { #expect(context.rows.visible(n, ownSteps: context.ownSteps) <= window) }
    }
    #expect(worst < 1e-5, "window \(window): sequence vs step difference \(worst)")
    // A longer window sees more: the outputs differ once episodes outgrow the shorter one.
    if window == 1 {
      var rng = SeededGenerator(seed: 43)
      let wide = WorldModel(config: config(window: 0), seed: 41)
      for (p, q) in zip(wide.parameters, model.parameters) { p.value = q.value }
      let other = wide.observe(batch, rng: &rng)
      #expect(other.states.deter.value.maxAbsDifference(seq.states.deter.value) > 1e-3)
    }
  }

  /// Imagining from the flattened B x T starts of an observed batch (each reading its own
  /// sequence's keys in place) equals stepping through that sequence up to the start and then
  /// imagining the same actions from the stepped state.
  @Test(arguments: [0, 4]) func imaginationFromSharedPrefixesEqualsSteppingThere(window: Int) {
    let c = config(window: window)
    let model = modelWithVisibleResets(c, seed: 51)
    let (b, t, horizon) = (2, 7, 5)
    let batch = randomBatch(c, b: b, t: t, seed: 52, resets: [(1, 3)])
    var rng = SeededGenerator(seed: 53)
    let starts = model.observe(batch, rng: &rng).states.flattened()
    let actions = (0..<horizon).map { k in Variable(Tensor.oneHot([k % 3], depth: 3)) }
    for (row, step) in [(0, 0), (0, 6), (1, 2), (1, 3), (1, 6)] {
      var fromFlat = starts.rows([row * t + step])
      // The same sequence stepped up to `step`, then the start's z put in place (the batch
      // sampled its own).
      var stepped: LatentState? = nil
      var stepRNG = SeededGenerator(seed: 54)
      var previous = Tensor.zeros([1, c.actionSize])
      for s in 0...step {
        stepped = model.observeStep(
          observation: batch.observations.slice(at: s, axis: 1).slice(axis: 0, row..<(row + 1)),
          previousAction: previous, isFirst: batch.isFirst.slice(at: s, axis: 1).slice(axis: 0, row..<(row + 1)),
          state: s == 0
            ? nil
            : stepped.map { st in
              var fixed = st
              fixed.stoch = starts.rows([row * t + s - 1]).stoch
              return fixed
            }, rng: &stepRNG)
        previous = batch.actions.slice(at: s, axis: 1).slice(axis: 0, row..<(row + 1))
      }
      var fromSteps = stepped!
      fromSteps.stoch = fromFlat.stoch
      #expect(fromSteps.deter.value.maxAbsDifference(fromFlat.deter.value) < 1e-5, "row \(row) step \(step): start")
      var rngA = SeededGenerator(seed: 55)
      var rngB = SeededGenerator(seed: 55)
      for (k, a) in actions.enumerated() {
        fromFlat = model.imagineStep(state: fromFlat, action: a, rng: &rngA).state
        fromSteps = model.imagineStep(state: fromSteps, action: a, rng: &rngB).state
        #expect(
          fromFlat.deter.value.maxAbsDifference(fromSteps.deter.value) < 1e-5,
          "row \(row) step \(step), imagined step \(k)")
      }
    }
  }

  /// The keys of observed sequences are shared by the starts, not copied per start.
  @Test func flattenedStartsShareTheObservedKeys() {
    let c = config(window: 0)
    let model = WorldModel(config: c, seed: 61)
    var rng = SeededGenerator(seed: 62)
    let starts = model.observe(randomBatch(c, b: 3, t: 6, seed: 63), rng: &rng).states.flattened()
    let context = starts.context!
    #expect(context.rows.count == 18 && context.ownSteps == 0)
    for layer in context.layers { #expect(layer.prefixKeys?.shape == [3, 6, 8]) }
    #expect(context.rows.prefixRow == (0..<18).map { Int32($0 / 6) })
    #expect(context.rows.prefixEnd == (0..<18).map { Int32($0 % 6 + 1) })
  }
}

/// The recall probe's memory target at L = 10, world model only: episodes of 12 steps whose
/// first observation shows a cue (+1 or -1) and whose last reward is that cue; in between only
/// a clock and random actions. The Transformer must predict the final reward's sign on held-out
/// episodes, which it can only do by attending back to the first step.
@Suite struct TransformerRecallTests {
  static func episodes(_ n: Int, rng: inout SeededGenerator) -> (WorldModelBatch, [Float]) {
    let t = 12
    var obs = [Float](repeating: 0, count: n * t * 3)
    var rewards = [Float](repeating: 0, count: n * t)
    var isFirst = [Float](repeating: 0, count: n * t)
    var terminal = [Float](repeating: 0, count: n * t)
    var cues: [Float] = []
    var actions: [Int] = []
    for e in 0..<n {
      let cue: Float = rng.nextInt(below: 2) == 0 ? -1 : 1
      cues.append(cue)
      for s in 0..<t {
        let o = (e * t + s) * 3
        obs[o] = s == 0 ? 1 : 0
        obs[o + 1] = Float(s) / Float(t)
        obs[o + 2] = s == 0 ? cue : 0
        actions.append(rng.nextInt(below: 2))
      }
      isFirst[e * t] = 1
      rewards[e * t + t - 1] = cue
      terminal[e * t + t - 1] = 1
    }
    let batch = WorldModelBatch(
      observations: Tensor(obs, shape: [n, t, 3]), actions: Tensor.oneHot(actions, depth: 2).reshaped([n, t, 2]),
      rewards: Tensor(rewards, shape: [n, t]), isFirst: Tensor(isFirst, shape: [n, t]),
      isTerminal: Tensor(terminal, shape: [n, t]))
    return (batch, cues)
  }

  @Test func theTransformerWorldModelRecallsACueTenStepsBack() {
    var c = WorldModelConfig(
      backbone: .transformer, observation: .vector(size: 3), actionSize: 2, deter: 32, units: 32, mlpLayers: 1,
      ssm: SSMSettings(states: 8, channels: 32, layers: 2, hippoBlocks: 2))
    c.transformer = TransformerSettings(layers: 2, width: 32, heads: 2)
    c.groups = 8
    c.classes = 8
    c.optimizer.learningRate = 1e-3
    let model = WorldModel(config: c, seed: 71)
    let trainer = WorldModelTrainer(model: model)
    var rng = SeededGenerator(seed: 72)
    func accuracy() -> Double {
      var test = SeededGenerator(seed: 73)
      let (batch, cues) = Self.episodes(128, rng: &test)
      return withoutGradient {
        let out = model.observe(batch, rng: &test)
        let last = out.states.step(11)
        let predicted = model.predictedReward(last).value.scalars
        return Double(zip(predicted, cues).filter { ($0 > 0) == ($1 > 0) }.count) / Double(cues.count)
      }
    }
    let before = accuracy()
    var after = 0.0
    for u in 1...1500 {
      _ = trainer.update(Self.episodes(16, rng: &rng).0, rng: &rng)
      if u % 250 == 0 {
        after = accuracy()
        if after >= 0.95 { break }
      }
    }
    #expect(before < 0.75, "an untrained model is at chance: \(before)")
    #expect(after >= 0.95, "held-out sign accuracy \(after)")
  }
}
