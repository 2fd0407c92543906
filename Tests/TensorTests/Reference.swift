import Foundation

@testable import Tensor

/// Naive reference implementations: plain loops over multi-indices, computed in Double where
/// it matters. The optimised kernels are checked against these.
enum Reference {
  static func multiIndex(_ flat: Int, _ shape: [Int]) -> [Int] {
    var idx = [Int](repeating: 0, count: shape.count)
    var rem = flat
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
      idx[d] = rem % shape[d]
      rem /= shape[d]
    }
    return idx
  }

  static func flat(_ idx: [Int], _ shape: [Int]) -> Int {
    var f = 0
    for (i, n) in zip(idx, shape) { f = f * n + i }
    return f
  }

  static func broadcast(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
    let r = max(a.rank, b.rank)
    let sa = [Int](repeating: 1, count: r - a.rank) + a.shape
    let sb = [Int](repeating: 1, count: r - b.rank) + b.shape
    let out = (0..<r).map { max(sa[$0], sb[$0]) }
    let av = a.scalars
    let bv = b.scalars
    var result = [Float](repeating: 0, count: out.reduce(1, *))
    for i in 0..<result.count {
      let idx = multiIndex(i, out)
      let ia = flat(zip(idx, sa).map { $1 == 1 ? 0 : $0 }, sa)
      let ib = flat(zip(idx, sb).map { $1 == 1 ? 0 : $0 }, sb)
      result[i] = f(av[ia], bv[ib])
    }
    return Tensor(result, shape: out)
  }

  static func reduce(
    _ x: Tensor, axes: [Int], keepDims: Bool, initial: Double, _ f: (Double, Double) -> Double
  ) -> Tensor {
    let set = Set(axes.isEmpty ? Array(0..<x.rank) : axes.map { $0 < 0 ? $0 + x.rank : $0 })
    let outKeep = x.shape.enumerated().map { set.contains($0.offset) ? 1 : $0.element }
    var acc = [Double](repeating: initial, count: outKeep.reduce(1, *))
    let v = x.scalars
    for i in 0..<x.count {
      var idx = multiIndex(i, x.shape)
      for a in set { idx[a] = 0 }
      let o = flat(idx, outKeep)
      acc[o] = f(acc[o], Double(v[i]))
    }
    let shape =
      keepDims ? outKeep : x.shape.enumerated().filter { !set.contains($0.offset) }.map { $0.element }
    return Tensor(acc.map { Float($0) }, shape: shape)
  }

  static func matmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ta: Bool, tb: Bool)
    -> [Float]
  {
    var c = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
      for j in 0..<n {
        var s = 0.0
        for p in 0..<k {
          let av = ta ? a[p * m + i] : a[i * k + p]
          let bv = tb ? b[j * k + p] : b[p * n + j]
          s += Double(av) * Double(bv)
        }
        c[i * n + j] = Float(s)
      }
    }
    return c
  }

  /// Direct convolution NHWC with explicit top/left padding.
  static func conv2d(_ x: Tensor, _ k: Tensor, stride: Int, padding: ConvPadding) -> Tensor {
    let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (kh, kw, cout) = (k.shape[0], k.shape[1], k.shape[3])
    let oh: Int
    let ow: Int
    let pt: Int
    let pl: Int
    switch padding {
    case .same:
      oh = (h + stride - 1) / stride
      ow = (w + stride - 1) / stride
      pt = max((oh - 1) * stride + kh - h, 0) / 2
      pl = max((ow - 1) * stride + kw - w, 0) / 2
    case .valid:
      oh = (h - kh) / stride + 1
      ow = (w - kw) / stride + 1
      pt = 0
      pl = 0
    }
    let xv = x.scalars
    let kv = k.scalars
    var out = [Float](repeating: 0, count: n * oh * ow * cout)
    for b in 0..<n {
      for oy in 0..<oh {
        for ox in 0..<ow {
          for co in 0..<cout {
            var s = 0.0
            for ky in 0..<kh {
              for kx in 0..<kw {
                let iy = oy * stride - pt + ky
                let ix = ox * stride - pl + kx
                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                for ci in 0..<cin {
                  s +=
                    Double(xv[((b * h + iy) * w + ix) * cin + ci])
                    * Double(kv[((ky * kw + kx) * cin + ci) * cout + co])
                }
              }
            }
            out[((b * oh + oy) * ow + ox) * cout + co] = Float(s)
          }
        }
      }
    }
    return Tensor(out, shape: [n, oh, ow, cout])
  }

  static func dot(_ a: Tensor, _ b: Tensor) -> Double {
    zip(a.scalars, b.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
  }
}

/// Random shapes and tensors for property tests.
struct Fixture {
  var rng: SeededGenerator
  init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

  mutating func tensor(_ shape: [Int], low: Float = -2, high: Float = 2) -> Tensor {
    Tensor.uniform(shape, low: low, high: high, using: &rng)
  }

  mutating func shape(rank: Int, maxExtent: Int = 5) -> [Int] {
    (0..<rank).map { _ in 1 + rng.nextInt(below: maxExtent) }
  }

  /// A shape broadcast-compatible with `shape`: some axes set to 1, some leading axes dropped.
  mutating func broadcastPartner(of shape: [Int]) -> [Int] {
    var s = shape.map { rng.nextBool(probability: 0.4) ? 1 : $0 }
    let drop = rng.nextInt(below: shape.count + 1)
    s.removeFirst(min(drop, s.count))
    return s
  }
}
