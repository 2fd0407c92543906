import Foundation
import Testing

@testable import Tensor

@Suite struct CreationAndValueSemanticsTests {
  @Test func copyOnWriteKeepsValueSemantics() {
    var a = Tensor([1, 2, 3, 4], shape: [2, 2])
    let b = a
    a[0, 1] = 10
    #expect(a.scalars == [1, 10, 3, 4])
    #expect(b.scalars == [1, 2, 3, 4])
    let r = b.reshaped([4])
    var r2 = r
    r2[3] = -1
    #expect(b.scalars == [1, 2, 3, 4])
    #expect(r2.scalars == [1, 2, 3, -1])
  }

  @Test func creationHelpers() {
    #expect(Tensor.arange(0, 5).scalars == [0, 1, 2, 3, 4])
    #expect(Tensor.arange(1, 2, step: 0.25).scalars == [1, 1.25, 1.5, 1.75])
    let l = Tensor.linspace(-20, 20, count: 255)
    #expect(l.count == 255 && l.scalars.first == -20 && l.scalars.last == 20)
    #expect(abs(l.scalars[127]) < 1e-6)
    #expect(Tensor.eye(3).scalars == [1, 0, 0, 0, 1, 0, 0, 0, 1])
    #expect(Tensor.full([2], 3).scalars == [3, 3])
    #expect(Tensor.zeros([0, 3]).count == 0)
    #expect(Tensor(5).rank == 0 && Tensor(5).scalar == 5)
    #expect(Tensor.ones([2, 3]).reshaped([3, -1]).shape == [3, 2])
  }

  @Test func seededRandomTensorsAreReproducible() {
    var g1 = SeededGenerator(seed: 11)
    var g2 = SeededGenerator(seed: 11)
    #expect(Tensor.normal([100], using: &g1) == Tensor.normal([100], using: &g2))
    var g3 = SeededGenerator(seed: 12)
    let t = Tensor.truncatedNormal([20_000], std: 3, using: &g3)
    #expect(t.scalars.allSatisfy { abs($0) <= 6 })
    // Std of a standard normal truncated to [-2, 2] is 0.87962.
    let sd = sqrt(t.variance().scalar) / 3
    #expect(abs(sd - 0.8796) < 0.01)
  }

  @Test func categoricalSamplingMatchesProbabilities() {
    var g = SeededGenerator(seed: 13)
    let p = Tensor([0.1, 0.0, 0.6, 0.3], shape: [1, 4]).broadcast(to: [20_000, 4])
    let s = p.sampleCategorical(using: &g)
    var counts = [0, 0, 0, 0]
    for i in s { counts[i] += 1 }
    #expect(counts[1] == 0)
    #expect(abs(Double(counts[2]) / 20_000 - 0.6) < 0.015)
    #expect(abs(Double(counts[0]) / 20_000 - 0.1) < 0.01)
  }
}

@Suite struct FastMathTests {
  /// Relative error in units of float epsilon against the C library in Double.
  func maxRelError(_ f: (Float8) -> Float8, _ ref: (Double) -> Double, over xs: [Float]) -> Double {
    var worst = 0.0
    var i = 0
    while i + 8 <= xs.count {
      var v = Float8()
      for k in 0..<8 { v[k] = xs[i + k] }
      let y = f(v)
      for k in 0..<8 {
        let r = ref(Double(xs[i + k]))
        let e = abs(Double(y[k]) - r) / max(abs(r), 1e-30)
        worst = max(worst, e)
      }
      i += 8
    }
    return worst / Double(Float.ulpOfOne)
  }

  func grid(_ lo: Float, _ hi: Float, _ n: Int) -> [Float] {
    (0..<n).map { lo + (hi - lo) * Float($0) / Float(n - 1) }
  }

  @Test func expIsAccurate() {
    #expect(maxRelError(FastMath.exp, Foundation.exp, over: grid(-87, 88, 80_000)) < 3)
    let y = FastMath.exp(Float8(repeating: 0))
    #expect(y[0] == 1)
  }

  @Test func logIsAccurateIncludingSubnormalsAndSpecials() {
    var xs = grid(1e-6, 100, 40_000)
    xs += (0..<8000).map { Float(pow(10.0, -37.0 + Double($0) / 200.0)) }
    #expect(maxRelError(FastMath.log, Foundation.log, over: xs.filter { abs($0 - 1) > 1e-3 }) < 4)
    // Near 1 the result is tiny, so check absolute error there.
    for x in grid(0.999, 1.001, 101) {
      #expect(abs(Double(FastMath.log(x)) - Foundation.log(Double(x))) < 2e-7)
    }
    #expect(FastMath.log(Float(0)) == -.infinity)
    #expect(FastMath.log(Float(-1)).isNaN)
    #expect(FastMath.log(Float.infinity) == .infinity)
    let sub = Float.leastNonzeroMagnitude * 1000
    #expect(abs(Double(FastMath.log(sub)) - Foundation.log(Double(sub))) < 1e-4)
  }

  @Test func tanhIsAccurateNearZeroAndSaturates() {
    let xs = grid(-9, 9, 40_001).filter { $0 != 0 }
    #expect(maxRelError(FastMath.tanh, Foundation.tanh, over: xs) < 4)
    #expect(maxRelError(FastMath.tanh, Foundation.tanh, over: grid(1e-6, 1e-3, 800)) < 2)
    #expect(FastMath.tanh(Float(50)) == 1)
    #expect(FastMath.tanh(Float(-50)) == -1)
  }

  @Test func sigmoidIsAccurate() {
    let ref: (Double) -> Double = { 1 / (1 + Foundation.exp(-$0)) }
    #expect(maxRelError(FastMath.sigmoid, ref, over: grid(-80, 30, 40_000)) < 6)
    // Saturation and special values (the clamp at |x| = 87 must not produce inf or NaN).
    #expect(FastMath.sigmoid(Float(1000)) == 1)
    #expect(FastMath.sigmoid(Float.infinity) == 1)
    #expect(FastMath.sigmoid(-Float.infinity) >= 0 && FastMath.sigmoid(-Float.infinity) < 1e-37)
    #expect(FastMath.sigmoid(Float(-1000)) >= 0 && FastMath.sigmoid(Float(-1000)) < 1e-37)
    #expect(FastMath.sigmoid(Float.nan).isNaN)
    #expect(FastMath.sigmoid(Float(0)) == 0.5)
  }
}

@Suite struct ElementwiseTests {
  @Test func unaryOpsMatchScalarDefinitions() {
    var fx = Fixture(seed: 21)
    let x = fx.tensor([37, 11], low: -6, high: 6)
    let xv = x.scalars.map { Double($0) }
    func check(_ y: Tensor, _ f: (Double) -> Double, tol: Double = 2e-6, _ name: String) {
      let yv = y.scalars
      var worst = 0.0
      for (a, b) in zip(yv, xv.map(f)) { worst = max(worst, abs(Double(a) - b) / max(1, abs(b))) }
      #expect(worst < tol, "\(name): worst relative error \(worst)")
    }
    check(exp(x), Foundation.exp, "exp")
    check(tanh(x), Foundation.tanh, "tanh")
    check(sigmoid(x), { 1 / (1 + Foundation.exp(-$0)) }, "sigmoid")
    check(softplus(x), { Foundation.log1p(Foundation.exp($0)) }, "softplus")
    check(relu(x), { max($0, 0) }, "relu")
    check(silu(x), { $0 / (1 + Foundation.exp(-$0)) }, "silu")
    check(
      gelu(x),
      { 0.5 * $0 * (1 + Foundation.tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) },
      "gelu")
    check(symlog(x), { ($0 < 0 ? -1 : 1) * Foundation.log1p(abs($0)) }, "symlog")
    check(symexp(x), { ($0 < 0 ? -1 : 1) * Foundation.expm1(abs($0)) }, tol: 4e-6, "symexp")
    check(abs(x), { abs($0) }, "abs")
    check(sign(x), { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }, "sign")
    check(square(x), { $0 * $0 }, "square")
    check(clamp(x, min: -1, max: 2), { min(max($0, -1), 2) }, "clamp")
    check(-x, { -$0 }, "neg")
    check(cos(x), Foundation.cos, "cos")
    check(sin(x), Foundation.sin, "sin")
    let pos = abs(x) + 0.1
    let pv = pos.scalars.map { Double($0) }
    for (y, f, name) in [
      (log(pos), Foundation.log, "log"), (sqrt(pos), Foundation.sqrt, "sqrt"),
      (rsqrt(pos), { 1 / Foundation.sqrt($0) }, "rsqrt"), (reciprocal(pos), { 1 / $0 }, "recip"),
      (pow(pos, 1.7), { Foundation.pow($0, 1.7) }, "pow"),
    ] as [(Tensor, (Double) -> Double, String)] {
      var worst = 0.0
      for (a, b) in zip(y.scalars, pv.map(f)) {
        worst = max(worst, abs(Double(a) - b) / max(1, abs(b)))
      }
      #expect(worst < 3e-6, "\(name): \(worst)")
    }
  }

  @Test func symlogAndSymexpAreInverses() {
    var fx = Fixture(seed: 22)
    let x = fx.tensor([1000], low: -50, high: 50)
    let back = symexp(symlog(x))
    #expect(back.isClose(to: x, rtol: 1e-5, atol: 1e-5), "\(back.maxAbsDifference(x))")
  }

  @Test func broadcastingBinaryOpsMatchNaiveLoops() {
    var fx = Fixture(seed: 23)
    for trial in 0..<60 {
      let rank = 1 + trial % 4
      let sa = fx.shape(rank: rank)
      let sb = fx.broadcastPartner(of: sa)
      let (a, b) =
        trial % 2 == 0 ? (fx.tensor(sa), fx.tensor(sb)) : (fx.tensor(sb), fx.tensor(sa))
      let bPos = abs(b) + 0.5
      #expect((a + b) == Reference.broadcast(a, b, +), "add \(a.shape) \(b.shape)")
      #expect((a - b) == Reference.broadcast(a, b, -), "sub \(a.shape) \(b.shape)")
      #expect((a * b) == Reference.broadcast(a, b, *), "mul \(a.shape) \(b.shape)")
      #expect((a / bPos) == Reference.broadcast(a, bPos, /), "div \(a.shape) \(b.shape)")
      #expect(maximum(a, b) == Reference.broadcast(a, b, { max($0, $1) }))
      #expect(minimum(a, b) == Reference.broadcast(a, b, { min($0, $1) }))
      #expect(greater(a, b) == Reference.broadcast(a, b, { $0 > $1 ? 1 : 0 }))
      #expect(lessEqual(a, b) == Reference.broadcast(a, b, { $0 <= $1 ? 1 : 0 }))
    }
  }

  @Test func largeBroadcastRowsAndColumnsThreaded() {
    var fx = Fixture(seed: 24)
    let a = fx.tensor([300, 257])
    let row = fx.tensor([257])
    let col = fx.tensor([300, 1])
    #expect((a + row) == Reference.broadcast(a, row, +))
    #expect((a * col) == Reference.broadcast(a, col, *))
    #expect((col - row) == Reference.broadcast(col, row, -))
  }

  @Test func scalarOperandsAndCompoundAssignment() {
    let a = Tensor([1, 2, 3], shape: [3])
    #expect((a + 1).scalars == [2, 3, 4])
    #expect((2 * a).scalars == [2, 4, 6])
    #expect((1 - a).scalars == [0, -1, -2])
    #expect((6 / a).scalars == [6, 3, 2])
    #expect((a / 2).scalars == [0.5, 1, 1.5])
    var b = a
    b += a
    b *= 2
    #expect(b.scalars == [4, 8, 12])
    #expect(a.scalars == [1, 2, 3])  // b was a copy
    var c = Tensor.zeros([3])
    c.addScaled(a, 0.5)
    #expect(c.scalars == [0.5, 1, 1.5])
    #expect((a + Tensor(1)).shape == [3])
    #expect((Tensor([1], shape: [1, 1]) + a).shape == [1, 3])
  }

  @Test func selectFollowsNumPyWhere() {
    let c = Tensor([1, 0, 1, 0], shape: [2, 2])
    let a = Tensor([10, 20], shape: [2])
    let b = Tensor(-1)
    #expect(select(c, a, b).scalars == [10, -1, 10, -1])
  }

  @Test func resultsDoNotDependOnThreadCount() {
    var fx = Fixture(seed: 25)
    let x = fx.tensor([1 << 18 + 13], low: -5, high: 5)
    let one = Parallelism.withThreadCount(1) { [silu(x), tanh(x), exp(x), x.softmax(), x.sum()] }
    let two = Parallelism.withThreadCount(2) { [silu(x), tanh(x), exp(x), x.softmax(), x.sum()] }
    #expect(Parallelism.withThreadCount(3) { Parallelism.threadCount } == 3)
    for (p, q) in zip(one, two) { #expect(p == q) }
  }

  @Test func derivativeKernelsMatchFiniteDifferencesOfTheForward() {
    var fx = Fixture(seed: 26)
    let x = fx.tensor([500], low: -4, high: 4)
    let g = fx.tensor([500])
    let h: Float = 1e-2
    func numeric(_ f: (Tensor) -> Tensor) -> Tensor {
      (f(x + h) - f(x - h)) / (2 * h) * g
    }
    let pairs: [(Tensor, Tensor, String)] = [
      (Tensor.siluBackward(input: x, gradient: g), numeric(silu), "silu"),
      (Tensor.geluBackward(input: x, gradient: g), numeric(gelu), "gelu"),
      (Tensor.tanhBackward(output: tanh(x), gradient: g), numeric(tanh), "tanh"),
      (Tensor.sigmoidBackward(output: sigmoid(x), gradient: g), numeric(sigmoid), "sigmoid"),
      (Tensor.softplusBackward(input: x, gradient: g), numeric(softplus), "softplus"),
      (Tensor.symlogBackward(input: x, gradient: g), numeric(symlog), "symlog"),
    ]
    for (analytic, num, name) in pairs {
      #expect(analytic.isClose(to: num, rtol: 2e-3, atol: 2e-3), "\(name): \(analytic.maxAbsDifference(num))")
    }
  }
}
