import Foundation
import Testing

@testable import Tensor

@Suite struct MatmulTests {
  @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
  func matmulMatchesNaiveLoopsOnOddSizes(ta: Bool, tb: Bool) {
    var fx = Fixture(seed: 51)
    for (m, n, k) in [(1, 1, 1), (7, 13, 5), (33, 17, 65), (64, 3, 129)] {
      let a = fx.tensor(ta ? [k, m] : [m, k])
      let b = fx.tensor(tb ? [n, k] : [k, n])
      let c = matmul(a, b, transposeA: ta, transposeB: tb)
      let ref = Reference.matmul(a.scalars, b.scalars, m: m, n: n, k: k, ta: ta, tb: tb)
      #expect(c.shape == [m, n])
      #expect(c.isClose(to: Tensor(ref, shape: [m, n]), rtol: 1e-5, atol: 1e-4), "\(m)x\(n)x\(k)")
    }
  }

  @Test func leadingAxesAreBatchRowsAndBatchedProductsLoop() {
    var fx = Fixture(seed: 52)
    let x = fx.tensor([3, 5, 7])
    let w = fx.tensor([7, 4])
    let y = matmul(x, w)
    #expect(y.shape == [3, 5, 4])
    let flat = matmul(x.reshaped([15, 7]), w)
    #expect(y.reshaped([15, 4]) == flat)
    let b = fx.tensor([3, 4, 7])
    let z = matmul(x, b, transposeB: true)
    #expect(z.shape == [3, 5, 4])
    for i in 0..<3 {
      let ref = matmul(x.slice(at: i), b.slice(at: i), transposeB: true)
      #expect(z.slice(at: i).isClose(to: ref, rtol: 1e-6, atol: 1e-6))
    }
    let shared = fx.tensor([2, 5])
    let s = matmul(shared, x)
    #expect(s.shape == [3, 2, 7])
    #expect(s.slice(at: 1).isClose(to: matmul(shared, x.slice(at: 1)), rtol: 1e-6, atol: 1e-6))
  }

  @Test func addMatmulAccumulates() {
    var fx = Fixture(seed: 53)
    let a = fx.tensor([6, 4])
    let b = fx.tensor([6, 3])
    var acc = fx.tensor([4, 3])
    let start = acc
    acc.addMatmul(a, b, transposeA: true, alpha: 0.5)
    #expect(acc.isClose(to: start + 0.5 * matmul(a, b, transposeA: true), rtol: 1e-5, atol: 1e-5))
  }
}

@Suite struct ConvolutionTests {
  @Test(arguments: [
    (1, ConvPadding.same), (2, .same), (3, .same), (1, .valid), (2, .valid),
  ])
  func conv2dMatchesDirectLoops(stride: Int, padding: ConvPadding) {
    var fx = Fixture(seed: 61)
    for (h, w, kh, kw, cin, cout) in [(9, 7, 3, 3, 2, 3), (8, 8, 4, 4, 3, 5), (5, 11, 1, 2, 1, 2)] {
      let x = fx.tensor([2, h, w, cin])
      let k = fx.tensor([kh, kw, cin, cout])
      let y = conv2d(x, k, stride: stride, padding: padding)
      let ref = Reference.conv2d(x, k, stride: stride, padding: padding)
      #expect(y.shape == ref.shape)
      #expect(y.isClose(to: ref, rtol: 1e-5, atol: 1e-4), "\(h)x\(w) k\(kh)x\(kw) s\(stride) \(padding)")
    }
  }

  @Test(arguments: [(1, ConvPadding.same), (2, .same), (2, .valid), (3, .valid)])
  func backwardPassesAreAdjoints(stride: Int, padding: ConvPadding) {
    var fx = Fixture(seed: 62)
    let x = fx.tensor([3, 10, 9, 2])
    let k = fx.tensor([4, 3, 2, 4])
    let y = conv2d(x, k, stride: stride, padding: padding)
    let g = fx.tensor(y.shape)
    let dx = conv2dBackwardInput(g, kernel: k, inputShape: x.shape, stride: stride, padding: padding)
    let dk = conv2dBackwardKernel(g, input: x, kernelShape: k.shape, stride: stride, padding: padding)
    let lhs = Reference.dot(y, g)
    // <conv(x, k), g> == <x, dX(g)> == <k, dK(g)>: both follow from linearity.
    #expect(abs(lhs - Reference.dot(x, dx)) < 1e-3 * max(1, abs(lhs)))
    #expect(abs(lhs - Reference.dot(k, dk)) < 1e-3 * max(1, abs(lhs)))
  }

  @Test(arguments: [(2, ConvPadding.same), (1, .same), (2, .valid)])
  func convTransposeIsTheAdjointOfConv(stride: Int, padding: ConvPadding) {
    var fx = Fixture(seed: 63)
    let k = fx.tensor([4, 4, 3, 5])  // conv: 3 -> 5 channels; transpose: 5 -> 3
    let small = fx.tensor([2, 4, 5, 5])
    let up = convTranspose2d(small, k, stride: stride, padding: padding)
    let oh = convTransposeOutputSize(input: 4, kernel: 4, stride: stride, padding: padding)
    #expect(up.shape == [2, oh, convTransposeOutputSize(input: 5, kernel: 4, stride: stride, padding: padding), 3])
    let big = fx.tensor(up.shape)
    let down = conv2d(big, k, stride: stride, padding: padding)
    #expect(down.shape == small.shape)
    let lhs = Reference.dot(down, small)
    let rhs = Reference.dot(big, up)
    #expect(abs(lhs - rhs) < 1e-3 * max(1, abs(lhs)), "<conv(y), x> \(lhs) vs <y, convT(x)> \(rhs)")
  }

  @Test func chunkedLargeBatchEqualsPerImage() {
    // 300 images of 16x16x3 exceed the im2col budget per chunk only when the budget is small;
    // compare the batched result with single-image calls either way.
    var fx = Fixture(seed: 64)
    let x = fx.tensor([300, 16, 16, 3])
    let k = fx.tensor([4, 4, 3, 8])
    let y = conv2d(x, k, stride: 2)
    for i in [0, 137, 299] {
      let yi = conv2d(x.slice(axis: 0, i..<(i + 1)), k, stride: 2)
      #expect(y.slice(axis: 0, i..<(i + 1)).isClose(to: yi, rtol: 1e-5, atol: 1e-5))
    }
  }
}

@Suite(.serialized) struct MemoryTests {
  @Test func largeBuffersAreReusedAndZeroedOnRequest() {
    // An odd size class no other test uses, so concurrently running tests do not interfere.
    let n = 1_234_567
    var first: UInt = 0
    do {
      let t = Tensor.ones([n])
      t.withUnsafeBufferPointer { first = UInt(bitPattern: $0.baseAddress) }
      #expect(TensorMemory.liveBytes >= 4 * n)
      #expect(TensorMemory.peakBytes >= TensorMemory.liveBytes)
    }
    let u = Tensor.zeros([n + 3])  // same size class
    var second: UInt = 0
    u.withUnsafeBufferPointer { second = UInt(bitPattern: $0.baseAddress) }
    #expect(first == second)
    #expect(u.sumAll() == 0)  // zeros really are zero after reuse
    #expect(BufferCache.sizeClass(100_000) >= 100_000)
    #expect(BufferCache.sizeClass(100_000) < 112_500)
    #expect(BufferCache.sizeClass(1000) == 1000)
  }
}

@Suite struct HermitianEigenTests {
  @Test func decompositionReconstructsTheMatrixWithUnitaryVectors() {
    var rng = SeededGenerator(seed: 5)
    let n = 5
    var re = [Double](repeating: 0, count: n * n)
    var im = [Double](repeating: 0, count: n * n)
    for r in 0..<n {
      for c in 0...r {
        let (x, y) = (rng.nextNormalDouble(), r == c ? 0 : rng.nextNormalDouble())
        (re[r * n + c], im[r * n + c]) = (x, y)
        (re[c * n + r], im[c * n + r]) = (x, -y)
      }
    }
    let (w, vr, vi) = HermitianEigen.decompose(re: re, im: im, size: n)
    #expect(zip(w, w.dropFirst()).allSatisfy { $0 <= $1 }, "ascending eigenvalues")
    for r in 0..<n {
      for c in 0..<n {
        // (V diag(w) V^H)_rc and (V^H V)_rc
        var mr = 0.0
        var mi = 0.0
        var ur = 0.0
        var ui = 0.0
        for k in 0..<n {
          let (ar, ai) = (vr[r * n + k], vi[r * n + k])
          let (br, bi) = (vr[c * n + k], -vi[c * n + k])
          mr += w[k] * (ar * br - ai * bi)
          mi += w[k] * (ar * bi + ai * br)
          let (pr, pi) = (vr[k * n + r], -vi[k * n + r])
          let (qr, qi) = (vr[k * n + c], vi[k * n + c])
          ur += pr * qr - pi * qi
          ui += pr * qi + pi * qr
        }
        #expect(abs(mr - re[r * n + c]) < 1e-10 && abs(mi - im[r * n + c]) < 1e-10)
        #expect(abs(ur - (r == c ? 1 : 0)) < 1e-10 && abs(ui) < 1e-10)
      }
    }
  }
}
