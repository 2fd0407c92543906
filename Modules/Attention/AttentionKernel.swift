import Tensor

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The fused kernels of multi-head attention where every query sees one contiguous range of
/// keys: causal self-attention over sequences whose episodes must not see each other, within a
/// window of at most K keys.
///
/// Layout: queries, keys and values are rows of `heads * headSize` floats, head `h` in
/// columns `h * headSize ..< (h + 1) * headSize`. Scores are `q . k / sqrt(headSize)`.
///
/// The forward pass walks the visible keys of one query in blocks with a running maximum and
/// sum (the online softmax), so no score matrix is ever stored: memory is linear in the
/// sequence length. It keeps each query's log-sum-exp, from which the backward pass recomputes
/// the probabilities block by block. Work is split over (sequence, head) pairs on the worker
/// pool; each pair owns its rows of every output and gradient, so no two threads write the
/// same float.
public enum AttentionKernel {
  /// Keys scored at once by the forward pass (one running-maximum update per block).
  static let keyBlock = 32

  /// The shape of a sequence problem: `batch` sequences of `length` steps, `heads` heads of
  /// `headSize` features.
  public struct Shape: Sendable, Equatable {
    public var batch: Int
    public var length: Int
    public var heads: Int
    public var headSize: Int

    public init(batch: Int, length: Int, heads: Int, headSize: Int) {
      self.batch = batch
      self.length = length
      self.heads = heads
      self.headSize = headSize
    }

    /// Floats per row (all heads).
    public var width: Int { heads * headSize }
    public var scale: Float { 1 / Float(headSize).squareRoot() }
  }

  // MARK: Small vector helpers (headSize floats, contiguous)

  @inline(__always)
  static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n {
      acc +=
        UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
        * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
      i += 8
    }
    var s = acc.sum()
    while i < n {
      s += a[i] * b[i]
      i += 1
    }
    return s
  }

  /// y += alpha * x.
  @inline(__always)
  static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let a = SIMD8<Float>(repeating: alpha)
    var i = 0
    while i + 8 <= n {
      let v =
        UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self) + a
        * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
      UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD8<Float>.self)
      i += 8
    }
    while i < n {
      y[i] += alpha * x[i]
      i += 1
    }
  }

  /// y *= alpha.
  @inline(__always)
  static func scale(_ y: UnsafeMutablePointer<Float>, _ alpha: Float, _ n: Int) {
    for i in 0..<n { y[i] *= alpha }
  }

  /// p[c] = exp(p[c] - shift) for c in 0 ..< count, eight at a time.
  @inline(__always)
  static func exponentiate(_ p: UnsafeMutablePointer<Float>, _ count: Int, minus shift: Float) {
    let m = Float8(repeating: shift)
    var c = 0
    while c < count {
      let lanes = min(8, count - c)
      store8(FastMath.exp(load8(p, c, lanes) - m), p, c, lanes)
      c += 8
    }
  }

  /// How many (sequence, head) pairs are worth a thread: about a million multiply-adds each.
  static func grain(pairWork: Int) -> Int { max(1, 1_000_000 / max(1, pairWork)) }

  /// ``grain(pairWork:)`` for a sequence problem whose queries see the keys from `first` on,
  /// with `perKey` vector operations of `headSize` per visible key.
  static func grain(first: UnsafePointer<Int32>, shape: Shape, perKey: Int) -> Int {
    let (bn, tn) = (shape.batch, shape.length)
    var visible = 0
    for i in 0..<(bn * tn) { visible += i % tn - Int(first[i]) + 1 }
    return grain(pairWork: visible / max(1, bn) * shape.headSize * perKey)
  }

  // MARK: Sequences

  /// Causal attention over `shape.batch` sequences: query `i` of sequence `b` sees keys
  /// `first[b * length + i] ... i` of the same sequence (`first` non-decreasing along each
  /// sequence, at most `i`). Writes `out` [B, T, width] and `logSumExp` [B, heads, T].
  public static func forward(
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, first: UnsafePointer<Int32>,
    out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>, shape: Shape
  ) {
    let (tn, hn, dn, w) = (shape.length, shape.heads, shape.headSize, shape.width)
    let scale = shape.scale
    Parallelism.forEachChunk(count: shape.batch * hn, grain: grain(first: first, shape: shape, perKey: 2)) { pairs in
      let scores = UnsafeMutablePointer<Float>.allocate(capacity: keyBlock)
      defer { scores.deallocate() }
      for pair in pairs {
        let (b, h) = (pair / hn, pair % hn)
        for i in 0..<tn {
          let row = b * tn + i
          let qi = q + row * w + h * dn
          let oi = out + row * w + h * dn
          for d in 0..<dn { oi[d] = 0 }
          var m = -Float.infinity
          var l: Float = 0
          var j0 = Int(first[row])
          while j0 <= i {
            let j1 = min(i + 1, j0 + keyBlock)
            var blockMax = -Float.infinity
            for j in j0..<j1 {
              let s = dot(qi, k + (b * tn + j) * w + h * dn, dn) * scale
              scores[j - j0] = s
              blockMax = max(blockMax, s)
            }
            let mNew = max(m, blockMax)
            if m > -Float.infinity && mNew > m {
              let c = expf(m - mNew)
              l *= c
              Self.scale(oi, c, dn)
            }
            m = mNew
            // The block's probabilities eight at a time, then their weighted values.
            exponentiate(scores, j1 - j0, minus: m)
            for j in j0..<j1 {
              let p = scores[j - j0]
              l += p
              axpy(p, v + (b * tn + j) * w + h * dn, oi, dn)
            }
            j0 = j1
          }
          Self.scale(oi, 1 / l, dn)
          logSumExp[(b * hn + h) * tn + i] = m + logf(l)
        }
      }
    }
  }

  /// The gradients of ``forward(q:k:v:first:out:logSumExp:shape:)`` for the output gradient
  /// `gOut` [B, T, width]: `gq`, `gk`, `gv` [B, T, width], overwritten.
  public static func backward(
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, first: UnsafePointer<Int32>,
    out: UnsafePointer<Float>, logSumExp: UnsafePointer<Float>, gOut: UnsafePointer<Float>,
    gq: UnsafeMutablePointer<Float>, gk: UnsafeMutablePointer<Float>, gv: UnsafeMutablePointer<Float>, shape: Shape
  ) {
    let (tn, hn, dn, w) = (shape.length, shape.heads, shape.headSize, shape.width)
    let scale = shape.scale
    Parallelism.forEachChunk(count: shape.batch * hn, grain: grain(first: first, shape: shape, perKey: 5)) { pairs in
      let delta = UnsafeMutablePointer<Float>.allocate(capacity: tn)
      let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: tn)
      defer {
        delta.deallocate()
        probabilities.deallocate()
      }
      for pair in pairs {
        let (b, h) = (pair / hn, pair % hn)
        func at(_ p: UnsafePointer<Float>, _ t: Int) -> UnsafePointer<Float> { p + (b * tn + t) * w + h * dn }
        func at(_ p: UnsafeMutablePointer<Float>, _ t: Int) -> UnsafeMutablePointer<Float> {
          p + (b * tn + t) * w + h * dn
        }
        for t in 0..<tn {
          delta[t] = dot(at(gOut, t), at(out, t), dn)
          for d in 0..<dn {
            at(gq, t)[d] = 0
            at(gk, t)[d] = 0
            at(gv, t)[d] = 0
          }
        }
        let lse = logSumExp + (b * hn + h) * tn
        for i in 0..<tn {
          let (qi, gi, gqi) = (at(q, i), at(gOut, i), at(gq, i))
          let f = Int(first[b * tn + i])
          for j in f...i { probabilities[j - f] = dot(qi, at(k, j), dn) * scale }
          exponentiate(probabilities, i - f + 1, minus: lse[i])
          for j in f...i {
            let p = probabilities[j - f]
            axpy(p, gi, at(gv, j), dn)
            let ds = p * (dot(gi, at(v, j), dn) - delta[i]) * scale
            axpy(ds, at(k, j), gqi, dn)
            axpy(ds, qi, at(gk, j), dn)
          }
        }
      }
    }
  }

  // MARK: Single steps against a cache

  /// Where the keys of one query row come from: a range of a shared sequence buffer (the
  /// prefix: keys observed earlier, shared by every row that starts from the same sequence),
  /// then the row's own recent keys (one [N, width] buffer per step, rows from `ownFirst`).
  public struct StepSources {
    /// The shared keys and values, [P, L, width] (nil: none).
    public var prefixKeys: UnsafePointer<Float>?
    public var prefixValues: UnsafePointer<Float>?
    public var prefixLength: Int
    /// Per row: the prefix sequence (or -1) and the visible range `[prefixFirst, prefixEnd)`.
    public var prefixRow: UnsafePointer<Int32>
    public var prefixFirst: UnsafePointer<Int32>
    public var prefixEnd: UnsafePointer<Int32>
    /// The own keys and values of each step, [N, width] each.
    public var ownKeys: [UnsafePointer<Float>]
    public var ownValues: [UnsafePointer<Float>]
    /// Per row: the first own step it sees (every later one too).
    public var ownFirst: UnsafePointer<Int32>
  }

  /// One query per row (`rows` rows of `width`) against the keys of ``StepSources``: writes
  /// `out` [N, width] and `logSumExp` [N, heads]. A row that sees no key gets zeros.
  public static func stepForward(
    q: UnsafePointer<Float>, sources s: StepSources, rows: Int, heads: Int, headSize: Int,
    out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>
  ) {
    let (hn, dn, w) = (heads, headSize, heads * headSize)
    let scale = 1 / Float(dn).squareRoot()
    let work = (s.prefixLength + s.ownKeys.count) * dn * 2
    let most = s.prefixLength + s.ownKeys.count
    Parallelism.forEachChunk(count: rows * hn, grain: grain(pairWork: work)) { pairs in
      // One query at a time: its scores, their maximum, the probabilities eight at a time,
      // then the weighted values.
      let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: max(1, most))
      defer { probabilities.deallocate() }
      for pair in pairs {
        let (n, h) = (pair / hn, pair % hn)
        let qi = q + n * w + h * dn
        let oi = out + n * w + h * dn
        for d in 0..<dn { oi[d] = 0 }
        var m = -Float.infinity
        var count = 0
        forEachKey(of: n, head: h, s, width: w, headSize: dn) { key, _ in
          let sc = dot(qi, key, dn) * scale
          probabilities[count] = sc
          m = max(m, sc)
          count += 1
        }
        guard count > 0 else {
          logSumExp[n * hn + h] = 0
          continue
        }
        exponentiate(probabilities, count, minus: m)
        var l: Float = 0
        var index = 0
        forEachKey(of: n, head: h, s, width: w, headSize: dn) { _, value in
          let p = probabilities[index]
          l += p
          axpy(p, value, oi, dn)
          index += 1
        }
        Self.scale(oi, 1 / l, dn)
        logSumExp[n * hn + h] = m + logf(l)
      }
    }
  }

  /// The gradients of ``stepForward(q:sources:rows:heads:headSize:out:logSumExp:)``: `gq`
  /// [N, width] and each own step's `gOwnKeys` / `gOwnValues` [N, width] (overwritten; zero
  /// for rows that do not see that step). The prefix gets none (it is constant).
  public static func stepBackward(
    q: UnsafePointer<Float>, sources s: StepSources, rows: Int, heads: Int, headSize: Int,
    out: UnsafePointer<Float>, logSumExp: UnsafePointer<Float>, gOut: UnsafePointer<Float>,
    gq: UnsafeMutablePointer<Float>, gOwnKeys: [UnsafeMutablePointer<Float>],
    gOwnValues: [UnsafeMutablePointer<Float>]
  ) {
    let (hn, dn, w) = (heads, headSize, heads * headSize)
    let scale = 1 / Float(dn).squareRoot()
    let most = s.prefixLength + s.ownKeys.count
    let work = most * dn * 5
    Parallelism.forEachChunk(count: rows * hn, grain: grain(pairWork: work)) { pairs in
      let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: max(1, most))
      defer { probabilities.deallocate() }
      for pair in pairs {
        let (n, h) = (pair / hn, pair % hn)
        let off = n * w + h * dn
        let (qi, gi, gqi) = (q + off, gOut + off, gq + off)
        for d in 0..<dn { gqi[d] = 0 }
        for step in 0..<s.ownKeys.count {
          for d in 0..<dn {
            gOwnKeys[step][off + d] = 0
            gOwnValues[step][off + d] = 0
          }
        }
        let delta = dot(gi, out + off, dn)
        let lse = logSumExp[n * hn + h]
        var count = 0
        forEachKey(of: n, head: h, s, width: w, headSize: dn) { key, _ in
          probabilities[count] = dot(qi, key, dn) * scale
          count += 1
        }
        exponentiate(probabilities, count, minus: lse)
        var index = 0
        let ownStart = s.prefixRow[n] >= 0 ? Int(s.prefixEnd[n] - s.prefixFirst[n]) : 0
        let firstOwn = Int(s.ownFirst[n])
        forEachKey(of: n, head: h, s, width: w, headSize: dn) { key, value in
          let p = probabilities[index]
          let ds = p * (dot(gi, value, dn) - delta) * scale
          axpy(ds, key, gqi, dn)
          if index >= ownStart {
            let step = firstOwn + index - ownStart
            axpy(p, gi, gOwnValues[step] + off, dn)
            axpy(ds, qi, gOwnKeys[step] + off, dn)
          }
          index += 1
        }
      }
    }
  }

  /// Calls `body` with the key and value of head `head` of every key row `n` sees, prefix first.
  @inline(__always)
  static func forEachKey(
    of n: Int, head h: Int, _ s: StepSources, width w: Int, headSize dn: Int,
    _ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> Void
  ) {
    let p = Int(s.prefixRow[n])
    if p >= 0, let pk = s.prefixKeys, let pv = s.prefixValues {
      for j in Int(s.prefixFirst[n])..<Int(s.prefixEnd[n]) {
        let o = (p * s.prefixLength + j) * w + h * dn
        body(pk + o, pv + o)
      }
    }
    var step = Int(s.ownFirst[n])
    while step < s.ownKeys.count {
      let o = n * w + h * dn
      body(s.ownKeys[step] + o, s.ownValues[step] + o)
      step += 1
    }
  }
}
