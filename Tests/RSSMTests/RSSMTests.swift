import Testing

@testable import RSSM

@Suite struct GRUGateTests {
  @Test func fusedGatesEqualTheComposedFormula() {
    var rng = SeededGenerator(seed: 1)
    let g = Tensor.normal([5, 21], std: 2, using: &rng)
    let h = Tensor.normal([5, 7], using: &rng)
    let fused = gruGates(Variable(g), previous: Variable(h)).value
    let parts = g.split(count: 3, axis: 1)
    let r = sigmoid(parts[0])
    let c = tanh(r * parts[1])
    let u = sigmoid(parts[2] - 1)
    let composed = u * c + (1 - u) * h
    #expect(fused.isClose(to: composed, rtol: 1e-5, atol: 1e-6), "\(fused.maxAbsDifference(composed))")
  }

  @Test func fusedGatesGradientsPassTheCheck() {
    var rng = SeededGenerator(seed: 2)
    let g = Tensor.normal([4, 3 * 9], using: &rng)
    let h = Tensor.normal([4, 9], using: &rng)
    let report = checkGradients(of: { gruGates($0[0], previous: $0[1]) }, at: [g, h])
    #expect(report.passed, "\(report)")
  }
}

@Suite struct RSSMSequenceTests {
  @Test func observingASequenceEqualsSteppingWithResets() {
    var rng = SeededGenerator(seed: 3)
    let rssm = RSSM(
      deter: 12, units: 10, actionSize: 3, embedSize: 7, latent: CategoricalLatent(groups: 4, classes: 5), rng: &rng)
    rssm.initial.weight!.value = Tensor.normal([12], using: &rng)
    let (b, t) = (3, 9)
    let embed = Tensor.normal([b, t, 7], using: &rng)
    var flags = Tensor.zeros([b, t])
    for (bb, tt) in [(0, 0), (1, 0), (2, 0), (0, 4), (1, 8), (2, 2), (2, 3)] { flags[bb, tt] = 1 }
    let actions = Tensor.normal([b, t, 3], using: &rng) * (1 - flags).reshaped([b, t, 1])
    let (h0, z0) = rssm.initialLatent()
    let start = (h0.broadcast(to: [b, 12]), z0.broadcast(to: [b, 20]))
    var seqRNG = SeededGenerator(seed: 4)
    let seq = rssm.observe(
      embed: Variable(embed), prevActions: Variable(actions), isFirst: flags, h: start.0, z: start.1,
      rng: &seqRNG)
    var stepRNG = SeededGenerator(seed: 4)
    var h = start.0
    var z = start.1
    for step in 0..<t {
      let r = rssm.observeStep(
        h: h, z: z, prevAction: Variable(actions.slice(axis: 1, step..<(step + 1)).reshaped([b, 3])),
        embed: Variable(embed.slice(axis: 1, step..<(step + 1)).reshaped([b, 7])),
        isFirst: flags.slice(axis: 1, step..<(step + 1)).reshaped([b]), rng: &stepRNG)
      h = r.h
      z = r.z
      let hSeq = seq.h.value.slice(axis: 1, step..<(step + 1)).reshaped([b, 12])
      #expect(h.value.maxAbsDifference(hSeq) < 1e-5, "h at step \(step)")
      #expect(z.value == seq.z.value.slice(axis: 1, step..<(step + 1)).reshaped([b, 20]), "z at step \(step)")
      let prior = rssm.priorLogits(h).value
      #expect(prior.maxAbsDifference(seq.priorLogits.value.slice(axis: 1, step..<(step + 1)).reshaped([b, 20])) < 1e-5)
    }
    // A reset replaces the carried state: at every is_first, h and the prior are those of a
    // fresh start (step 0 of the same row, which starts from the initial state too).
    #expect(seq.h.value.shape == [b, t, 12])
    for (bb, tt) in [(0, 4), (1, 8), (2, 2), (2, 3)] {
      let atReset = seq.h.value.slice(axis: 0, bb..<(bb + 1)).slice(axis: 1, tt..<(tt + 1))
      let fresh = seq.h.value.slice(axis: 0, bb..<(bb + 1)).slice(axis: 1, 0..<1)
      #expect(atReset == fresh, "row \(bb) step \(tt): h after is_first differs from a fresh start")
      let priorAtReset = seq.priorLogits.value.slice(axis: 0, bb..<(bb + 1)).slice(axis: 1, tt..<(tt + 1))
      #expect(
        priorAtReset.maxAbsDifference(seq.priorLogits.value.slice(axis: 0, bb..<(bb + 1)).slice(axis: 1, 0..<1)) < 1e-6)
    }
    // And a step that is no reset does carry state: h differs from the fresh one.
    let carried = seq.h.value.slice(axis: 0, 0..<1).slice(axis: 1, 5..<6)
    #expect(carried.maxAbsDifference(seq.h.value.slice(axis: 0, 0..<1).slice(axis: 1, 0..<1)) > 1e-4)
  }
}
