import Foundation
import Testing

@testable import Tensor

@Suite struct ReductionTests {
  @Test func reductionsOverRandomAxesMatchNaiveLoops() {
    var fx = Fixture(seed: 31)
    for trial in 0..<60 {
      let rank = 1 + trial % 4
      let shape = fx.shape(rank: rank, maxExtent: 6)
      let x = fx.tensor(shape)
      var axes = (0..<rank).filter { _ in fx.rng.nextBool() }
      if trial % 7 == 0 { axes = [] }
      if trial % 5 == 0, !axes.isEmpty { axes = axes.map { $0 - rank } }  // negative axes
      let keep = fx.rng.nextBool()
      let s = x.sum(axes: axes, keepDims: keep)
      let rs = Reference.reduce(x, axes: axes, keepDims: keep, initial: 0, +)
      #expect(s.isClose(to: rs, rtol: 1e-5, atol: 1e-5), "sum \(shape) \(axes)")
      let m = x.max(axes: axes, keepDims: keep)
      #expect(m == Reference.reduce(x, axes: axes, keepDims: keep, initial: -.infinity, { max($0, $1) }))
      let n = x.min(axes: axes, keepDims: keep)
      #expect(n == Reference.reduce(x, axes: axes, keepDims: keep, initial: .infinity, { min($0, $1) }))
      let count = Float(x.reducedCount(axes))
      #expect(x.mean(axes: axes, keepDims: keep).isClose(to: rs / count, rtol: 1e-5, atol: 1e-6))
      let v = x.variance(axes: axes, keepDims: keep)
      let ex2 = Reference.reduce(x * x, axes: axes, keepDims: keep, initial: 0, +) / count
      let mu = rs / count
      #expect(v.isClose(to: ex2 - mu * mu, rtol: 1e-4, atol: 1e-5), "variance \(shape) \(axes)")
    }
  }

  @Test func largeColumnAndRowSumsAreAccurate() {
    var fx = Fixture(seed: 32)
    let x = fx.tensor([4096, 130])
    #expect(
      x.sum(axes: [0]).isClose(
        to: Reference.reduce(x, axes: [0], keepDims: false, initial: 0, +), rtol: 1e-5, atol: 1e-4))
    #expect(
      x.sum(axes: [1]).isClose(
        to: Reference.reduce(x, axes: [1], keepDims: false, initial: 0, +), rtol: 1e-5, atol: 1e-4))
    // One million ones sum exactly.
    #expect(Tensor.ones([1_000_003]).sumAll() == 1_000_003)
  }

  @Test func argmaxTakesTheFirstOfTies() {
    let x = Tensor([1, 5, 5, 2, 0, -1, 7, 7], shape: [2, 4])
    #expect(x.argmax(axis: 1).scalars == [1, 2])
    #expect(x.argmin(axis: 1).scalars == [0, 1])
    #expect(x.argmax(axis: 0).scalars == [0, 0, 1, 1])
    #expect(x.argmax(axis: 1, keepDims: true).shape == [2, 1])
  }

  @Test func softmaxFamilyMatchesDoublePrecision() {
    var fx = Fixture(seed: 33)
    for axis in [-1, 0, 1] {
      let x = fx.tensor([7, 13, 5], low: -30, high: 30)
      let p = x.softmax(axis: axis)
      let lp = x.logSoftmax(axis: axis)
      let lse = x.logSumExp(axes: [axis])
      let a = axis < 0 ? axis + 3 : axis
      let m = Reference.reduce(x, axes: [a], keepDims: true, initial: -.infinity, { max($0, $1) })
      let ex = Tensor(zip(x.scalars, (x - m).scalars).map { Float(Foundation.exp(Double($0.1))) }, shape: x.shape)
      let z = Reference.reduce(ex, axes: [a], keepDims: true, initial: 0, +)
      let refP = ex / z
      #expect(p.isClose(to: refP, rtol: 1e-5, atol: 1e-7), "softmax axis \(axis)")
      #expect(lp.isClose(to: x - m - log(z), rtol: 1e-5, atol: 1e-5), "log-softmax axis \(axis)")
      #expect(lse.isClose(to: (m + log(z)).squeezingShape(at: [a]), rtol: 1e-6, atol: 1e-5))
      #expect(p.sum(axes: [axis]).isClose(to: Tensor.ones(lse.shape), rtol: 0, atol: 1e-5))
    }
    // Extreme logits stay finite.
    let big = Tensor([1000, 0, -1000], shape: [1, 3])
    #expect(big.softmax().scalars == [1, 0, 0])
    #expect(big.logSoftmax().scalars[0] == 0)
    #expect(Tensor([-Float.infinity, 0], shape: [2]).logSumExp().scalar == 0)
  }
}

@Suite struct ShapeOpTests {
  @Test func permuteMatchesNaiveIndexing() {
    var fx = Fixture(seed: 41)
    for perm in [[1, 0], [0, 2, 1], [2, 0, 1], [1, 2, 0], [3, 1, 0, 2]] {
      let shape = fx.shape(rank: perm.count, maxExtent: 6)
      let x = fx.tensor(shape)
      let y = x.permuted(perm)
      #expect(y.shape == perm.map { shape[$0] })
      let xv = x.scalars
      let yv = y.scalars
      var ok = true
      for i in 0..<y.count {
        let idx = Reference.multiIndex(i, y.shape)
        var src = [Int](repeating: 0, count: perm.count)
        for (k, p) in perm.enumerated() { src[p] = idx[k] }
        if yv[i] != xv[Reference.flat(src, shape)] { ok = false }
      }
      #expect(ok, "permute \(perm) of \(shape)")
    }
    var fx2 = Fixture(seed: 42)
    let big = fx2.tensor([333, 517])
    #expect(big.transposed().transposed() == big)
    #expect(big.transposed()[5, 7] == big[7, 5])
  }

  @Test func stridedSlicesAndTheirAdjoint() {
    let x = Tensor.arange(0, 60).reshaped([3, 4, 5])
    let s = x.slice(starts: [1, 0, 1], ends: [3, 4, 5], strides: [1, 2, 3])
    #expect(s.shape == [2, 2, 2])
    #expect(s.scalars == [21, 24, 31, 34, 41, 44, 51, 54])
    let back = Tensor.sliceBackward(
      s, shape: x.shape, starts: [1, 0, 1], ends: [3, 4, 5], strides: [1, 2, 3])
    // <slice(x), s> == <x, sliceBackward(s)>
    #expect(Reference.dot(s, s) == Reference.dot(x, back))
    #expect(back.sumAll() == s.sumAll())
    #expect(x.slice(axis: 2, 1..<3).scalars.prefix(4) == [1, 2, 6, 7])
    #expect(x.slice(at: 2).shape == [4, 5] && x.slice(at: 2).scalars.first == 40)
    #expect(x.slice(at: 1, axis: 2).scalars.prefix(2) == [1, 6])
  }

  @Test func concatStackSplitRoundTrip() {
    var fx = Fixture(seed: 43)
    let a = fx.tensor([2, 3, 4])
    let b = fx.tensor([2, 1, 4])
    let c = fx.tensor([2, 2, 4])
    let cat = Tensor.concat([a, b, c], axis: 1)
    #expect(cat.shape == [2, 6, 4])
    let parts = cat.split(sizes: [3, 1, 2], axis: 1)
    #expect(parts[0] == a && parts[1] == b && parts[2] == c)
    #expect(cat[1, 3, 2] == b[1, 0, 2])
    let st = Tensor.stack([a, a * 2], axis: 2)
    #expect(st.shape == [2, 3, 2, 4])
    #expect(st[1, 2, 1, 3] == 2 * a[1, 2, 3])
    let halves = st.split(count: 2, axis: 2)
    #expect(halves[1].squeezingShape(at: [2]) == a * 2)
  }

  @Test func gatherOneHotAndPad() {
    let x = Tensor.arange(0, 12).reshaped([4, 3])
    let g = x.gather(indices: [3, 0, 3], axis: 0)
    #expect(g.scalars == [9, 10, 11, 0, 1, 2, 9, 10, 11])
    let gc = x.gather(indices: [2, 2], axis: 1)
    #expect(gc.scalars == [2, 2, 5, 5, 8, 8, 11, 11])
    let back = Tensor.gatherBackward(Tensor.ones([3, 3]), shape: [4, 3], indices: [3, 0, 3], axis: 0)
    #expect(back.scalars == [1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2])
    #expect(Tensor.oneHot([2, 0], depth: 3).scalars == [0, 0, 1, 1, 0, 0])
    let p = Tensor([1, 2, 3, 4], shape: [2, 2]).padded([(1, 0), (0, 2)], value: -1)
    #expect(p.shape == [3, 4])
    #expect(p.scalars == [-1, -1, -1, -1, 1, 2, -1, -1, 3, 4, -1, -1])
  }

  @Test func broadcastAndSumToShapeAreAdjoint() {
    var fx = Fixture(seed: 44)
    for _ in 0..<20 {
      let big = fx.shape(rank: 4)
      let small = fx.broadcastPartner(of: big)
      let x = fx.tensor(small)
      let y = fx.tensor(big)
      let bx = x.broadcast(to: big)
      #expect(bx == Reference.broadcast(x, Tensor.zeros(big), +))
      let back = y.sumToShape(small)
      #expect(back.shape == small)
      #expect(abs(Reference.dot(bx, y) - Reference.dot(x, back)) < 1e-3)
    }
  }
}
