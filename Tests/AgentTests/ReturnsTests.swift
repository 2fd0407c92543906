import Foundation
import Testing

@testable import Agent

@Suite struct ReturnsTests {
  /// The recursion written out with plain loops over hand-made sequences that end inside the
  /// horizon (continue 0), so bootstrapping must stop there.
  @Test func lambdaReturnsMatchANaiveLoopWithTerminationsInside() {
    let (h, n) = (6, 3)
    var rng = SeededGenerator(seed: 1)
    let rewards = Tensor.normal([h + 1, n], using: &rng)
    let values = Tensor.normal([h + 1, n], using: &rng)
    var continues = Tensor.ones([h + 1, n])
    continues[3, 0] = 0  // column 0 ends at step 3
    continues[1, 2] = 0  // column 2 ends right after the start
    let (gamma, lambda): (Float, Float) = (0.97, 0.9)
    let returns = Returns.lambdaReturns(
      rewards: Variable(rewards), continues: Variable(continues), values: Variable(values), discount: gamma,
      lambda: lambda
    ).value
    #expect(returns.shape == [h, n])
    for j in 0..<n {
      var next = values[h, j]
      for t in stride(from: h - 1, through: 0, by: -1) {
        next = rewards[t + 1, j] + gamma * continues[t + 1, j] * ((1 - lambda) * values[t + 1, j] + lambda * next)
        #expect(abs(returns[t, j] - next) < 1e-5, "R[\(t), \(j)]")
      }
    }
    // Hand-checked cases: lambda = 0 gives one-step TD targets; lambda = 1 the discounted sum.
    let r = Tensor([0, 1, 2, 3], shape: [4, 1])
    let v = Tensor([10, 20, 30, 40], shape: [4, 1])
    let c = Tensor([1, 1, 0, 1], shape: [4, 1])
    let td = Returns.lambdaReturns(
      rewards: Variable(r), continues: Variable(c), values: Variable(v), discount: 0.5, lambda: 0
    ).value
    let expectedTD: [Float] = [1 + 0.5 * 20, 2, 3 + 0.5 * 40]
    #expect(td.scalars == expectedTD)
    let mc = Returns.lambdaReturns(
      rewards: Variable(r), continues: Variable(c), values: Variable(v), discount: 0.5, lambda: 1
    ).value
    // R_2 = 3 + 0.5 * 40 = 23; R_1 = 2 + 0 (terminal at step 2); R_0 = 1 + 0.5 * R_1 = 2.
    #expect(mc.scalars == [2, 2, 23])
  }

  @Test func lambdaReturnsAreDifferentiable() {
    var rng = SeededGenerator(seed: 2)
    let inputs = (0..<3).map { _ in Tensor.normal([5, 2], using: &rng) }
    let continues = Tensor([1, 1, 1, 0, 1, 1, 0, 1, 1, 1], shape: [5, 2])
    let report = checkGradients(
      of: { v in
        Returns.lambdaReturns(rewards: v[0], continues: Variable(continues), values: v[1], discount: 0.9, lambda: 0.8)
      }, at: [inputs[0], inputs[2]], seed: 3)
    #expect(report.passed, "\(report)")
  }

  @Test func trajectoryWeightsAreTheDiscountedProductOfContinues() {
    let c = Tensor([1, 0, 1, 1, 0, 1, 1, 1], shape: [4, 2])
    let w = Returns.trajectoryWeights(continues: c, discount: 0.5)
    // Column 0: 1, 0.5, 0, 0; column 1 starts terminal: all 0.
    #expect(w.scalars == [1, 0, 0.5, 0, 0, 0, 0, 0])
  }

  @Test func theReturnScaleFollowsEMAsOfPercentilesWithAFloorOfOne() {
    #expect(ReturnScale.percentile([1, 2, 3, 4, 5], 50) == 3)
    #expect(ReturnScale.percentile([0, 10], 95) == 9.5)
    #expect(ReturnScale.percentile([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 5) == 5)
    var s = ReturnScale()
    #expect(s.scale == 1)
    let returns = Tensor((0...100).map { Float($0) })  // P5 = 5, P95 = 95
    var (low, high): (Float, Float) = (0, 0)
    for _ in 0..<300 {
      s.update(returns)
      low = 0.99 * low + 0.01 * 5
      high = 0.99 * high + 0.01 * 95
    }
    #expect(abs(s.low - low) < 1e-3 && abs(s.high - high) < 1e-3)
    #expect(abs(s.scale - (high - low)) < 1e-3 && s.scale > 1)
    // Small returns keep the floor.
    var small = ReturnScale()
    small.update(Tensor([0.1, 0.2, 0.3]))
    #expect(small.scale == 1)
  }
}
