import Foundation
import Testing

@testable import SSM

@Suite struct HiPPOAndDiscretizationTests {
  @Test(arguments: [4, 8, 16])
  func hippoEigenvectorsAreUnitaryAndReconstructTheNormalPart(n: Int) {
    let h = HiPPO.normal(size: n)
    // V^H V = I
    for i in 0..<n {
      for j in 0..<n {
        var re = 0.0
        var im = 0.0
        for k in 0..<n {
          // conj(V[k, i]) * V[k, j]
          let (ar, ai) = (h.vectorsRe[k * n + i], -h.vectorsIm[k * n + i])
          let (br, bi) = (h.vectorsRe[k * n + j], h.vectorsIm[k * n + j])
          re += ar * br - ai * bi
          im += ar * bi + ai * br
        }
        #expect(abs(re - (i == j ? 1 : 0)) < 1e-9 && abs(im) < 1e-9)
      }
    }
    // V diag(Lambda) V^H = S = -I/2 + K, K_rc = -/+ 0.5 sqrt(2r+1) sqrt(2c+1) below/above.
    for r in 0..<n {
      for c in 0..<n {
        var re = 0.0
        var im = 0.0
        for k in 0..<n {
          let (lr, li) = (h.lambdaRe[k], h.lambdaIm[k])
          let (vr, vi) = (h.vectorsRe[r * n + k], h.vectorsIm[r * n + k])
          let (wr, wi) = (h.vectorsRe[c * n + k], -h.vectorsIm[c * n + k])  // conj(V[c, k])
          let (pr, pi) = (vr * lr - vi * li, vr * li + vi * lr)
          re += pr * wr - pi * wi
          im += pr * wi + pi * wr
        }
        let s = 0.5 * (2 * Double(r) + 1).squareRoot() * (2 * Double(c) + 1).squareRoot()
        let expected = r == c ? -0.5 : (r > c ? -s : s)
        #expect(abs(re - expected) < 1e-9 && abs(im) < 1e-9, "S[\(r),\(c)]")
      }
    }
    #expect(h.lambdaIm == h.lambdaIm.sorted())
    #expect(h.lambdaRe.allSatisfy { $0 == -0.5 })
  }

  @Test(arguments: Discretization.allCases)
  func discretizationMatchesItsClosedForm(_ method: Discretization) {
    var rng = SeededGenerator(seed: 1)
    let layer = SSMLayer(states: 16, channels: 5, hippoBlocks: 4, discretization: method, rng: &rng)
    let (lbar, wb) = layer.discretize()
    let lr = layer.lambdaRe.value.scalars
    let li = layer.lambdaIm.value.scalars
    let ls = layer.logStep.value.scalars
    let bre = layer.bRe.value.scalars
    let bim = layer.bIm.value.scalars
    for k in 0..<16 {
      let lam = (Double(lr[k]), Double(li[k]))
      let dt = exp(Double(ls[k]))
      var bar: (Double, Double)
      var coef: (Double, Double)
      func div(_ a: (Double, Double), _ b: (Double, Double)) -> (Double, Double) {
        let d = b.0 * b.0 + b.1 * b.1
        return ((a.0 * b.0 + a.1 * b.1) / d, (a.1 * b.0 - a.0 * b.1) / d)
      }
      switch method {
      case .bilinear:
        let num = (1 + dt * lam.0 / 2, dt * lam.1 / 2)
        let den = (1 - dt * lam.0 / 2, -dt * lam.1 / 2)
        bar = div(num, den)
        coef = div((dt, 0), den)
      case .zeroOrderHold:
        let e = exp(dt * lam.0)
        bar = (e * cos(dt * lam.1), e * sin(dt * lam.1))
        coef = div((bar.0 - 1, bar.1), lam)
      }
      #expect(abs(Double(lbar.value[k]) - bar.0) < 1e-5 && abs(Double(lbar.value[16 + k]) - bar.1) < 1e-5)
      #expect((bar.0 * bar.0 + bar.1 * bar.1).squareRoot() < 1, "|Lambda_bar| < 1 at init")
      for h in 0..<5 {
        let b = (Double(bre[k * 5 + h]), Double(bim[k * 5 + h]))
        let expected = (coef.0 * b.0 - coef.1 * b.1, coef.0 * b.1 + coef.1 * b.0)
        #expect(abs(Double(wb.value[k, h]) - expected.0) < 1e-5 && abs(Double(wb.value[16 + k, h]) - expected.1) < 1e-5)
      }
    }
    let steps = ls.map { exp($0) }
    #expect(steps.allSatisfy { $0 >= 0.001 * 0.9999 && $0 <= 0.1 * 1.0001 })
  }
}

@Suite struct SequenceAndStepModeTests {
  @Test(arguments: Discretization.allCases)
  func sequenceModeEqualsStepModeAcrossEpisodeBoundaries(_ method: Discretization) {
    var rng = SeededGenerator(seed: 2)
    let stack = SSMStack(layers: 3, states: 16, channels: 12, hippoBlocks: 4, discretization: method, rng: &rng)
    // Make the learned initial states non-zero so resets matter.
    for b in stack.blocks { b.ssm.xInit!.value = Tensor.normal([32], using: &rng) }
    let (bn, tn) = (3, 40)
    let u = Tensor.normal([bn, tn, 12], using: &rng)
    var flags = Tensor.zeros([bn, tn])
    for (b, t) in [(0, 0), (0, 17), (1, 0), (1, 5), (1, 6), (1, 39), (2, 0), (2, 30)] { flags[b, t] = 1 }
    let (seqOut, states, final) = stack(Variable(u), isFirst: flags, state: nil)
    let hidden = Variable.concat(states, axis: -1)
    var state: SSMStackState? = nil
    var worst: Float = 0
    for t in 0..<tn {
      let ut = u.slice(axis: 1, t..<(t + 1)).reshaped([bn, 12])
      let ft = flags.slice(axis: 1, t..<(t + 1)).reshaped([bn])
      let (out, next) = stack.step(Variable(ut), isFirst: ft, state: state)
      state = next
      let expected = seqOut.value.slice(axis: 1, t..<(t + 1)).reshaped([bn, 12])
      worst = max(worst, out.value.maxAbsDifference(expected))
      let hExpected = hidden.value.slice(axis: 1, t..<(t + 1)).reshaped([bn, stack.featureSize])
      worst = max(worst, next.features.value.maxAbsDifference(hExpected))
    }
    #expect(worst < 1e-5, "sequence vs one-step difference \(worst)")
    for (a, b) in zip(final.layers, state!.layers) { #expect(a.value.maxAbsDifference(b.value) < 1e-5) }
    // Continuing from a carried state equals running the concatenated sequence.
    let u2 = Tensor.normal([bn, 10, 12], using: &rng)
    let (cont, _, _) = stack(Variable(u2), isFirst: Tensor.zeros([bn, 10]), state: final)
    let (whole, _, _) = stack(
      Variable(Tensor.concat([u, u2], axis: 1)), isFirst: Tensor.concat([flags, Tensor.zeros([bn, 10])], axis: 1),
      state: nil)
    #expect(cont.value.maxAbsDifference(whole.value.slice(axis: 1, 40..<50)) < 1e-5)
  }
}

@Suite struct SSMGradientTests {
  @Test(arguments: [1, 2])
  func scanKernelGradientsForEveryInput(threads: Int) {
    // Includes a time-chunked case (B = 1, 8 states, 256 steps with 2 threads).
    // The long case sums 4096 float32 outputs, so its difference quotients carry round-off of a
    // few percent of the smallest directional derivatives; Lambda_bar^t curvature rules out a
    // large epsilon. A wrong VJP is off by O(1), far outside either tolerance.
    for (b, t, p, resets, eps, rtol) in [
      (2, 12, 3, [(0, 0), (0, 4), (1, 7), (1, 8)], 1e-3, 1e-2),
      (1, 256, 8, [(0, 70), (0, 200)], 2e-3, 3e-2),
    ] as [(Int, Int, Int, [(Int, Int)], Float, Double)] {
      let c = ScanCase(b: b, t: t, p: p, resets: resets, seed: 20)
      let report = Parallelism.withThreadCount(threads) {
        checkGradients(
          of: { v in
            linearRecurrence(inputs: v[0], lambdaBar: v[1], xInit: v[2], state: v[3], isFirst: c.isFirst)
          }, at: [c.bu, c.a * 0.97, c.xInit, c.carry!], epsilon: eps, relativeTolerance: rtol,
          samplesPerInput: 16)
      }
      #expect(report.passed, "B=\(b) T=\(t) P=\(p) threads \(threads): \(report)")
      // Without a carry.
      let r2 = Parallelism.withThreadCount(threads) {
        checkGradients(
          of: { v in
            linearRecurrence(inputs: v[0], lambdaBar: v[1], xInit: v[2], state: nil, isFirst: c.isFirst)
          }, at: [c.bu, c.a * 0.97, c.xInit], epsilon: eps, relativeTolerance: rtol,
          samplesPerInput: 16)
      }
      #expect(r2.passed, "no carry: \(r2)")
    }
  }

  @Test(arguments: Discretization.allCases)
  func wholeBlockGradients(_ method: Discretization) {
    var rng = SeededGenerator(seed: 21)
    let block = SSMBlock(states: 8, channels: 6, hippoBlocks: 2, discretization: method, rng: &rng)
    block.ssm.xInit!.value = Tensor.normal([16], std: 0.5, using: &rng)
    let u = Variable(Tensor.normal([2, 9, 6], using: &rng))
    var flags = Tensor.zeros([2, 9])
    flags[0, 0] = 1
    flags[0, 5] = 1
    flags[1, 3] = 1
    let carry = Variable(Tensor.normal([2, 16], using: &rng))
    let w = Tensor.normal([2, 9, 6], using: &rng)
    // epsilon 1e-2: at 1e-3 the float32 round-off of a loss of order 10 (about 5e-3 per
    // difference quotient) exceeds the tolerance for the smallest derivatives; the estimates
    // converge onto the analytic values as epsilon grows (measured 3e-3 -> 1e-2 -> 3e-2).
    let check = checkParameterGradients(of: block, epsilon: 1e-2, samplesPerParameter: 6) {
      let (out, xs) = block(u, isFirst: flags, state: carry)
      return (out * w).sum() + xs.mean() * 3
    }
    let worst = check.report.worst.map { check.names[$0.input] } ?? ""
    #expect(check.report.passed, "\(method): \(check.report) [\(worst)]")
    #expect(check.names.contains("ssm/logStep") && check.names.contains("ssm/lambdaIm"))
  }
}

@Suite struct InferenceCacheTests {
  /// The discretised matrices are cached for gradient-free calls; every way of changing a
  /// parameter (optimiser step, assignment, in-place edit) must invalidate the cache.
  @Test func cachedMatricesFollowEveryParameterChange() {
    var rng = SeededGenerator(seed: 31)
    let layer = SSMLayer(states: 8, channels: 5, hippoBlocks: 2, rng: &rng)
    let u = Tensor.normal([3, 7, 5], using: &rng)
    let flags = Tensor.zeros([3, 7])
    // Reference: the same computation while differentiating (never uses the cache).
    func tracked() -> Tensor {
      var out = Tensor(0)
      _ = valueAndGradient(of: layer) {
        let y = layer(Variable(u), isFirst: flags, state: nil).output
        out = y.value
        return y.sum()
      }
      return out
    }
    func cached() -> Tensor { layer(Variable(u), isFirst: flags, state: nil).output.value }
    #expect(cached().maxAbsDifference(tracked()) < 1e-6)
    let first = cached()

    // Optimiser step.
    let adam = Adam(for: layer, learningRate: 0.05)
    let (_, grads) = valueAndGradient(of: layer) {
      (layer(Variable(u), isFirst: flags, state: nil).output * layer(Variable(u), isFirst: flags, state: nil).output)
        .sum()
    }
    adam.update(grads)
    let afterAdam = cached()
    #expect(afterAdam.maxAbsDifference(first) > 1e-3, "the update must change the output")
    #expect(afterAdam.maxAbsDifference(tracked()) < 1e-6)

    // Assignment and in-place edits of each discretisation parameter.
    for p in layer.discretizationParameters {
      let before = cached()
      p.value = p.value * 1.1
      let assigned = cached()
      #expect(assigned.maxAbsDifference(before) > 1e-5)
      #expect(assigned.maxAbsDifference(tracked()) < 1e-6)
      p.value.withUnsafeMutableBufferPointer { $0[0] += 0.25 }
      #expect(cached().maxAbsDifference(tracked()) < 1e-6)
    }
  }
}

/// The doc comment examples of the SSM module, compiled and run (keep them in step).
@Suite struct DocumentationExampleTests {
  @Test func ssmLayerExample() {
    var rng = SeededGenerator(seed: 0)
    let layer = SSMLayer(states: 128, channels: 512, rng: &rng)
    let u = Variable(Tensor.normal([4, 64, 512], using: &rng))  // [B, T, H]
    var flags = Tensor.zeros([4, 64])  // is_first, [B, T]
    for b in 0..<4 { flags[b, 0] = 1 }
    let (y, xs) = layer(u, isFirst: flags, state: nil)  // [B, T, H], [B, T, 2P]
    let last = xs.slice(at: 63, axis: 1)  // [B, 2P]
    let ut = Variable(Tensor.normal([4, 512], using: &rng))
    let (yt, x) = layer.step(ut, isFirst: Tensor.zeros([4]), state: last)  // [B, H], [B, 2P]
    #expect(y.shape == [4, 64, 512] && xs.shape == [4, 64, 256])
    #expect(yt.shape == [4, 512] && x.shape == [4, 256])
  }

  /// The "SSM layer on its own" example of docs/modules.md, with its inputs defined.
  @Test func readmeStackExample() {
    var rng = SeededGenerator(seed: 0)
    let u = Tensor.normal([2, 16, 512], using: &rng)
    let flags = Tensor.zeros([2, 16])
    let ut = Tensor.normal([2, 512], using: &rng)
    let flagsT = Tensor.zeros([2])
    let stack = SSMStack(layers: 3, states: 128, channels: 512, rng: &rng)
    let (y, states, final) = stack(Variable(u), isFirst: flags, state: nil)  // u: [B, T, 512]
    let (yt, next) = stack.step(Variable(ut), isFirst: flagsT, state: final)  // ut: [B, 512]
    #expect(y.shape == [2, 16, 512] && yt.shape == [2, 512])
    _ = (states, next)
  }
}

/// S5's clip of Re(Lambda): a real part pushed above zero by training must not make long
/// sequences explode.
@Suite struct EigenvalueClipTests {
  func layer(clip: Bool) -> SSMLayer {
    var rng = SeededGenerator(seed: 21)
    let l = SSMLayer(states: 8, channels: 4, hippoBlocks: 2, clipEigenvalues: clip, rng: &rng)
    var re = l.lambdaRe.value
    re[0] = 0.05  // as if a large learning rate had pushed it across
    re[3] = 0.2
    l.lambdaRe.value = re
    return l
  }

  @Test func positiveRealPartsAreClippedInTheForwardPass() {
    let u = Tensor.ones([1, 3000, 4])
    let flags = Tensor.zeros([1, 3000])
    let clipped = layer(clip: true)
    let (lambdaBar, _) = clipped.discretize()
    for i in 0..<8 {
      let (r, m) = (lambdaBar.value[i], lambdaBar.value[8 + i])
      #expect(r * r + m * m < 1, "state \(i): |lambda_bar| >= 1 with the clip")
    }
    let (y, xs) = clipped(Variable(u), isFirst: flags, state: nil)
    #expect(y.value.scalars.allSatisfy { $0.isFinite } && xs.value.scalars.allSatisfy { abs($0) < 1e5 })
    // Without the clip the same layer explodes over the same sequence.
    let (y2, _) = layer(clip: false)(Variable(u), isFirst: flags, state: nil)
    #expect(y2.value.scalars.contains { !$0.isFinite || abs($0) > 1e6 })
    // The parameter is untouched, and its gradient is zero where the clip is active.
    #expect(clipped.lambdaRe.value[0] == 0.05)
    let (_, grads) = valueAndGradient(of: clipped) {
      clipped(Variable(Tensor.ones([1, 16, 4])), isFirst: Tensor.zeros([1, 16]), state: nil).output.sum()
    }
    let g = grads.tensors[grads.parameters.firstIndex { $0 === clipped.lambdaRe }!]
    #expect(g[0] == 0 && g[3] == 0 && g[1] != 0)
  }
}
