import Foundation
import Testing

@testable import Agent

@Suite struct ActorCriticTests {
  @Test(arguments: [ActionSpec.discrete(4), .multiDiscrete([3, 5]), .continuous(2)])
  func actionsHaveTheRightShapeAndLogProbsMatchTheirDefinition(_ spec: ActionSpec) {
    var rng = SeededGenerator(seed: 1)
    let actor = Actor(featureSize: 6, units: 8, layers: 2, spec: spec, input: .hidden, rng: &rng)
    let x = Variable(Tensor.normal([5, 6], using: &rng))
    let pi = actor(x)
    let a = pi.sample(using: &rng)
    #expect(a.shape == [5, spec.size] && pi.mode.shape == [5, spec.size])
    #expect(pi.logProb(a).shape == [5] && pi.entropy().shape == [5])
    switch pi {
    case .categorical(let parts):
      // One-hot per component; log-probabilities add up over components; unimix keeps every
      // action possible (log-probability above log(0.01 / n)).
      let sizes: [Int]
      if case .multiDiscrete(let ns) = spec { sizes = ns } else { sizes = [spec.size] }
      var offset = 0
      var sum = Tensor.zeros([5])
      for (p, n) in zip(parts, sizes) {
        let part = a.value.slice(axis: 1, offset..<(offset + n))
        #expect(part.sum(axes: [1]) == Tensor.ones([5]))
        sum = sum + p.logProb(Variable(part)).value
        #expect(p.logProbs.value.scalars.allSatisfy { $0 > log(0.01 / Float(n)) - 1e-4 })
        offset += n
      }
      #expect(pi.logProb(a).value.maxAbsDifference(sum) < 1e-5)
    case .continuous(let d):
      // The mean lies in (-1, 1), std in [0.1, 1], and log p is the normal density.
      #expect(d.mean.value.scalars.allSatisfy { abs($0) < 1 })
      #expect(d.std.value.scalars.allSatisfy { $0 >= 0.1 - 1e-6 && $0 <= 1 + 1e-6 })
      let z = (a.value - d.mean.value) / d.std.value
      let expected = (square(z) * -0.5 - log(d.std.value) - Float(0.5 * Foundation.log(2 * Double.pi))).sum(axes: [1])
      #expect(pi.logProb(a).value.maxAbsDifference(expected) < 1e-4)
    }
  }

  @Test(arguments: [ActionSpec.discrete(3), .continuous(2)])
  func policyGradientTermsHaveCorrectGradients(_ spec: ActionSpec) {
    var rng = SeededGenerator(seed: 2)
    let actor = Actor(featureSize: 4, units: 6, layers: 1, spec: spec, input: .output, rng: &rng)
    let x = Variable(Tensor.normal([3, 4], using: &rng))
    let action = actor(x).sample(using: &rng).value  // fixed actions, as REINFORCE uses them
    let advantage = Tensor.normal([3], using: &rng)
    // -log pi(a) adv - eta H(pi): the discrete actor loss (without the weights).
    let report = checkParameterGradients(of: actor) {
      let pi = actor(x)
      return (-(pi.logProb(Variable(action)) * advantage) - pi.entropy() * 3e-4).mean()
    }
    #expect(report.report.passed, "\(spec): \(report.report)")
  }

  @Test func theCriticStartsAtZeroAndItsLossHasCorrectGradients() {
    var rng = SeededGenerator(seed: 3)
    let critic = Critic(featureSize: 5, units: 7, layers: 2, input: .full, rng: &rng)
    let x = Variable(Tensor.normal([4, 5], using: &rng))
    #expect(critic(x).mean.value.scalars.allSatisfy { abs($0) < 1e-6 })
    // Make the output non-zero, then check -log p(target) by finite differences.
    critic.out.weight.value = Tensor.normal(critic.out.weight.shape, std: 0.1, using: &rng)
    let target = Tensor([0.5, -2, 10, 0])
    let report = checkParameterGradients(of: critic) { -critic(x).logProb(target).mean() }
    #expect(report.report.passed, "\(report.report)")
  }
}
