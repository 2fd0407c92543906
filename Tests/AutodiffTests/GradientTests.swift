import Testing

@testable import Autodiff
@testable import Tensor

/// Random inputs for gradient checks.
struct Inputs {
  var rng: SeededGenerator
  init(_ seed: UInt64) { rng = SeededGenerator(seed: seed) }
  mutating func t(_ shape: [Int], _ lo: Float = -1.5, _ hi: Float = 1.5) -> Tensor {
    Tensor.uniform(shape, low: lo, high: hi, using: &rng)
  }
  /// Values on a grid of step 0.1 (offset by `shift`), so maxima and comparisons between two
  /// such tensors with different shifts never flip under a finite-difference step of 0.01.
  mutating func grid(_ shape: [Int], shift: Float = 0) -> Tensor {
    let n = Tensor.elementCount(shape)
    return Tensor((0..<n).map { _ in Float(rng.nextInt(in: -15..<16)) * 0.1 + shift }, shape: shape)
  }
  /// Distinct values 0.1 apart in random order.
  mutating func distinct(_ shape: [Int]) -> Tensor {
    var v = (0..<Tensor.elementCount(shape)).map { Float($0) * 0.1 - 2 }
    rng.shuffle(&v)
    return Tensor(v, shape: shape)
  }
  /// Values bounded away from 0 (for kinks at 0: abs, relu, sign-dependent ops).
  mutating func awayFromZero(_ shape: [Int]) -> Tensor {
    let u = t(shape, 0.2, 1.5)
    let s = sign(t(shape, -1, 1))
    return u * select(equal(s, Tensor(0)), Tensor(1), s)
  }
}

func expectGradients(
  _ name: String, _ inputs: [Tensor], epsilon: Float = 1e-2, rtol: Double = 1e-2,
  _ f: @escaping ([Variable]) -> Variable
) {
  let report = checkGradients(of: f, at: inputs, epsilon: epsilon, relativeTolerance: rtol)
  #expect(report.passed, "\(name): \(report)")
}

@Suite struct ElementwiseGradientTests {
  @Test func arithmeticWithBroadcastShapes() {
    var r = Inputs(1)
    let pairs: [([Int], [Int])] = [
      ([3, 4], [3, 4]), ([3, 4], [4]), ([3, 1], [1, 4]), ([2, 3, 4], [3, 1]), ([5], []),
      ([], [2, 2]), ([2, 1, 3], [4, 1]),
    ]
    for (sa, sb) in pairs {
      let a = r.t(sa)
      let b = r.t(sb)
      let bPos = abs(r.t(sb)) + 0.5
      expectGradients("add \(sa) \(sb)", [a, b]) { $0[0] + $0[1] }
      expectGradients("sub \(sa) \(sb)", [a, b]) { $0[0] - $0[1] }
      expectGradients("mul \(sa) \(sb)", [a, b]) { $0[0] * $0[1] }
      expectGradients("div \(sa) \(sb)", [a, bPos]) { $0[0] / $0[1] }
      let ga = r.grid(sa)
      let gb = r.grid(sb, shift: 0.05)
      expectGradients("max \(sa) \(sb)", [ga, gb]) { maximum($0[0], $0[1]) }
      expectGradients("min \(sa) \(sb)", [ga, gb]) { minimum($0[0], $0[1]) }
    }
  }

  @Test func scalarOperandsAndNegation() {
    var r = Inputs(2)
    let a = r.t([3, 5])
    let pos = abs(a) + 0.5
    expectGradients("scalar mix", [a]) { v in (v[0] * 3 + 2) / 4 - 1 - (2 - v[0]) * 0.5 }
    expectGradients("scalar div", [pos]) { v in 2 / v[0] }
    expectGradients("neg", [a]) { v in -v[0] }
    expectGradients("tensor const", [a]) { v in v[0] * Tensor([1, 2, 3, 4, 5]) + Tensor(1) }
  }

  @Test func unaryFunctions() {
    var r = Inputs(3)
    let x = r.t([4, 6], -2, 2)
    let away = r.awayFromZero([4, 6])
    let pos = r.t([4, 6], 0.3, 3)
    let cases: [(String, Tensor, (Variable) -> Variable)] = [
      ("exp", x, { exp($0) }), ("log", pos, { log($0) }), ("sqrt", pos, { sqrt($0) }),
      ("rsqrt", pos, { rsqrt($0) }), ("abs", away, { abs($0) }), ("square", x, { square($0) }),
      ("reciprocal", pos, { reciprocal($0) }), ("tanh", x, { tanh($0) }),
      ("sigmoid", x, { sigmoid($0) }), ("softplus", x, { softplus($0) }),
      ("relu", away, { relu($0) }), ("silu", x, { silu($0) }), ("gelu", x, { gelu($0) }),
      ("symlog", away, { symlog($0) }), ("symexp", x, { symexp($0) }),
      ("clamp", away * 2, { clamp($0, min: -1.1, max: 0.9) }), ("pow", pos, { pow($0, 1.7) }),
      ("sign*x", away, { sign($0) * $0 }), ("cos", x, { cos($0) }), ("sin", x, { sin($0) }),
    ]
    for (name, input, f) in cases {
      expectGradients(name, [input]) { f($0[0]) }
    }
  }

  @Test func powerSelectAndStopGradient() {
    var r = Inputs(4)
    let a = r.t([3, 4], 0.5, 2)
    let b = r.t([4], -1, 1)
    expectGradients("pow(var, var)", [a, b]) { pow($0[0], $0[1]) }
    let cond = Tensor([1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1], shape: [3, 4])
    expectGradients("select", [a, b]) { select(cond, $0[0], $0[1]) }
    let g = gradient(at: a) { v in (v * v.detached).sum() }
    #expect(g == a, "d/dx sum(x * sg(x)) = sg(x)")
  }
}

@Suite struct StructuralGradientTests {
  @Test func reductions() {
    var r = Inputs(5)
    let x = r.t([3, 4, 5])
    let d = r.distinct([3, 4, 5])
    for axes in [[], [0], [1], [2], [0, 2], [-1], [0, 1, 2]] {
      for keep in [false, true] {
        expectGradients("sum \(axes) \(keep)", [x]) { $0[0].sum(axes: axes, keepDims: keep) }
        expectGradients("mean \(axes) \(keep)", [x]) { $0[0].mean(axes: axes, keepDims: keep) }
        expectGradients("max \(axes)", [d]) { $0[0].max(axes: axes, keepDims: keep) }
        expectGradients("min \(axes)", [d]) { $0[0].min(axes: axes, keepDims: keep) }
        expectGradients("variance \(axes)", [x]) { $0[0].variance(axes: axes, keepDims: keep) }
        expectGradients("logsumexp \(axes)", [x]) { $0[0].logSumExp(axes: axes, keepDims: keep) }
      }
    }
    for axis in [0, 1, -1] {
      expectGradients("softmax \(axis)", [x]) { $0[0].softmax(axis: axis) }
      expectGradients("logsoftmax \(axis)", [x]) { $0[0].logSoftmax(axis: axis) }
    }
  }

  @Test func maxTiesShareTheGradient() {
    let x = Tensor([1, 3, 3, 2], shape: [4])
    let g = gradient(at: x) { $0.max() }
    #expect(g.scalars == [0, 0.5, 0.5, 0])
  }

  @Test func shapeOperations() {
    var r = Inputs(6)
    let x = r.t([2, 3, 4])
    let y = r.t([2, 2, 4])
    expectGradients("reshape", [x]) { $0[0].reshaped([4, -1]) * Tensor.arange(0, 6) }
    expectGradients("permute", [x]) { $0[0].permuted([2, 0, 1]) }
    expectGradients("transpose", [x]) { $0[0].transposed() }
    expectGradients("expand/squeeze", [x]) { $0[0].expandingShape(at: 1).squeezingShape(at: [1]) }
    expectGradients("strided slice", [x]) {
      $0[0].slice(starts: [0, 1, 0], ends: [2, 3, 4], strides: [1, 1, 2])
    }
    expectGradients("slice axis", [x]) { $0[0].slice(axis: 2, 1..<4, stride: 2) }
    expectGradients("slice at", [x]) { $0[0].slice(at: 1, axis: 1) }
    expectGradients("concat", [x, y]) { Variable.concat([$0[0], $0[1], $0[0]], axis: 1) }
    expectGradients("stack", [x, x * 2]) { Variable.stack([$0[0], $0[1]], axis: 1) }
    expectGradients("split", [x]) { v in
      let p = v[0].split(sizes: [1, 2], axis: 1)
      return p[0] * 2 + p[1].sum(axes: [1], keepDims: true)
    }
    expectGradients("split unused piece", [x]) { v in v[0].split(count: 2, axis: 2)[1] }
    expectGradients("gather repeats", [x]) { $0[0].gather(indices: [2, 0, 2, 2], axis: 2) }
    expectGradients("pad", [x]) { $0[0].padded([(1, 0), (0, 2), (1, 1)], value: 3) }
    expectGradients("broadcast", [r.t([3, 1])]) { $0[0].broadcast(to: [2, 3, 5]) }
  }

  @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
  func matmulAllTransposes(ta: Bool, tb: Bool) {
    var r = Inputs(7)
    let a = r.t(ta ? [4, 3] : [3, 4])
    let b = r.t(tb ? [5, 4] : [4, 5])
    expectGradients("matmul \(ta) \(tb)", [a, b]) {
      matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
    }
    // Batched on both sides.
    let ab = r.t(ta ? [2, 4, 3] : [2, 3, 4])
    let bb = r.t(tb ? [2, 5, 4] : [2, 4, 5])
    expectGradients("batched \(ta) \(tb)", [ab, bb]) {
      matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
    }
    // Shared matrix on either side.
    expectGradients("shared b \(ta) \(tb)", [ab, b]) {
      matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
    }
    expectGradients("shared a \(ta) \(tb)", [a, bb]) {
      matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
    }
  }

  @Test func leadingBatchAxesInMatmul() {
    var r = Inputs(8)
    expectGradients("[B,T,K]x[K,N]", [r.t([2, 3, 4]), r.t([4, 5])]) { matmul($0[0], $0[1]) }
  }

  @Test(arguments: [(1, ConvPadding.same), (2, .same), (2, .valid)])
  func convolutions(stride: Int, padding: ConvPadding) {
    var r = Inputs(9)
    let x = r.t([2, 6, 5, 2])
    let k = r.t([3, 2, 2, 3])
    expectGradients("conv2d s\(stride) \(padding)", [x, k]) {
      conv2d($0[0], $0[1], stride: stride, padding: padding)
    }
    let small = r.t([2, 3, 3, 3])
    let kt = r.t([4, 4, 2, 3])
    expectGradients("convT s\(stride) \(padding)", [small, kt]) {
      convTranspose2d($0[0], $0[1], stride: stride, padding: padding)
    }
  }

  @Test func fusedLayerNorm() {
    var r = Inputs(10)
    let x = r.t([5, 7], -2, 2)
    let g = r.t([7], 0.5, 1.5)
    let b = r.t([7])
    for act in [NormActivation.identity, .silu] {
      expectGradients("layernorm \(act)", [x, g, b]) {
        layerNorm($0[0], scale: $0[1], offset: $0[2], epsilon: 1e-3, activation: act)
      }
      expectGradients("layernorm no affine \(act)", [x]) {
        layerNorm($0[0], scale: nil, offset: nil, epsilon: 1e-3, activation: act)
      }
    }
    // Against the composed definition.
    let composed: (Variable) -> Variable = { v in
      let m = v.mean(axes: [-1], keepDims: true)
      let c = v - m
      return c * rsqrt(square(c).mean(axes: [-1], keepDims: true) + 1e-3)
    }
    let fused = layerNorm(Variable(x), scale: nil, offset: nil, epsilon: 1e-3).value
    #expect(fused.isClose(to: composed(Variable(x)).value, rtol: 1e-5, atol: 1e-5))
  }

  @Test func layerNormOnManyRowsIsThreadCountIndependent() {
    var r = Inputs(11)
    let x = r.t([3000, 64])
    let s = r.t([64])
    let gOut = r.t([3000, 64])
    var results: [[Tensor]] = []
    for threads in [1, 2] {
      let (_, grads) = Parallelism.withThreadCount(threads) {
        valueWithGradient(at: [x, s], seed: gOut) { v in
          layerNorm(v[0], scale: v[1], offset: nil, epsilon: 1e-3, activation: .silu)
        }
      }
      results.append(grads)
    }
    #expect(results[0][0] == results[1][0])
    #expect(results[0][1].isClose(to: results[1][1], rtol: 1e-5, atol: 1e-5))
  }
}

@Suite struct MachineryTests {
  @Test func theCheckerFailsWhenEpsilonIsTooSmallForFloat32() {
    var r = Inputs(12)
    let x = r.t([20], 0.5, 1.5)
    let f: ([Variable]) -> Variable = { v in tanh(v[0] * 3).sum() * 7 }
    #expect(checkGradients(of: f, at: [x], epsilon: 1e-2).passed)
    let tiny = checkGradients(of: f, at: [x], epsilon: 1e-7)
    #expect(!tiny.passed, "epsilon 1e-7 must fail in float32: \(tiny)")
  }

  @Test func theCheckerCatchesAWrongVJP() {
    var r = Inputs(13)
    let x = r.t([6])
    let cube: (Variable, Float) -> Variable = { v, factor in
      let xv = v.value
      return customVJP(inputs: [v], outputs: [xv * xv * xv]) { g in [g[0] * xv * xv * factor] }[0]
    }
    #expect(checkGradients(of: { cube($0[0], 3) }, at: [x]).passed)
    #expect(!checkGradients(of: { cube($0[0], 2.9) }, at: [x]).passed)
  }

  @Test func customVJPWithSeveralOutputs() {
    var r = Inputs(14)
    let a = r.t([3])
    let b = r.t([3])
    // (a + b, a * b) as one node.
    let f: ([Variable]) -> Variable = { v in
      let (av, bv) = (v[0].value, v[1].value)
      let outs = customVJP(inputs: [v[0], v[1]], outputs: [av + bv, av * bv]) { g in
        [g[0] + g[1] * bv, g[0] + g[1] * av]
      }
      return outs[0] * 2 + sin3(outs[1])
    }
    expectGradients("multi-output custom", [a, b], f)
    // Only one output used: the other's gradient arrives as zeros.
    expectGradients("multi-output, one used", [a, b]) { v in
      let (av, bv) = (v[0].value, v[1].value)
      return customVJP(inputs: [v[0], v[1]], outputs: [av + bv, av * bv]) { g in
        [g[0] + g[1] * bv, g[0] + g[1] * av]
      }[1]
    }
  }

  @Test func parametersGetGradientsOnlyWhenListed() {
    let w = Parameter(Tensor([1, 2, 3], shape: [3]))
    let c = Parameter(Tensor([4, 5, 6], shape: [3]))
    let (value, grads) = valueWithGradient(for: [w]) {
      // w read twice: gradients accumulate; c is a constant.
      (w.variable * c.variable + w.variable * 2).sum()
    }
    #expect(value.scalar == 4 + 10 + 18 + 12)
    #expect(grads.count == 1)
    #expect(grads[0].scalars == [6, 7, 8])
    // Outside a gradient computation a parameter reads as a constant.
    #expect(!w.variable.isTracked)
    let (_, unused) = valueWithGradient(for: [w, c]) { w.variable.sum() }
    #expect(unused[1] == Tensor.zeros([3]))
  }

  @Test func noTapeOrTensorMemoryLeaksAcrossCalls() {
    // Watch this test's own tapes through weak references (a process-wide count would see
    // tapes of tests running concurrently).
    final class Watch { weak var tape: Tape? }
    var r = Inputs(15)
    let x = r.t([64, 64])
    var escaped: Variable? = nil
    var watches: [Watch] = []
    for _ in 0..<5 {
      _ = valueWithGradient(at: x) { v in
        let y = tanh(matmul(v, v)).sum()
        let w = Watch()
        w.tape = y.tape
        watches.append(w)
        escaped = y
        return y
      }
    }
    // A variable that escaped its computation is a constant afterwards and keeps no nodes.
    #expect(escaped?.isTracked == false)
    do {
      let t = escaped!.tape!
      #expect(!t.isOpen && t.nodeCount == 0)
    }
    // Every tape but the one the escaped variable still holds is gone ...
    #expect(watches.dropLast().allSatisfy { $0.tape == nil })
    escaped = nil
    // ... and that one goes with the variable.
    #expect(watches.last?.tape == nil)
  }

  @Test func savedTensorsAreReleasedAfterBackward() {
    // The node closures hold forward tensors (tanh's output, silu's input); once the call
    // returns, their storage must be gone. Weak references to the storage objects say so
    // without depending on what concurrently running tests allocate.
    final class Watch { weak var storage: TensorStorage? }
    var r = Inputs(16)
    let x = r.t([77, 33])
    var watches: [Watch] = []
    let grad = valueWithGradient(at: x) { v in
      let t = tanh(v) * 2
      let w = Watch()
      w.storage = t.value.storage
      watches.append(w)
      let s = silu(t)
      let w2 = Watch()
      w2.storage = s.value.storage
      watches.append(w2)
      return s.sum()
    }.gradient
    #expect(grad.shape == x.shape)
    #expect(watches.count == 2 && watches.allSatisfy { $0.storage == nil })
  }

  @Test func mixingTwoLiveComputationsIsRefusedButClosedOnesAreConstants() {
    var r = Inputs(17)
    let x = r.t([3])
    var outer: Variable? = nil
    _ = valueWithGradient(at: x) { v in
      outer = v * 2
      return outer!.sum()
    }
    // Using the closed computation's variable in a new one: it is a constant there.
    let g = gradient(at: x) { v in (v * outer!).sum() }
    #expect(g == outer!.value)
  }
}

private func sin3(_ x: Variable) -> Variable { tanh(x) * 3 }
