@_exported import Autodiff

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Multi-head causal self-attention over whole sequences, differentiable: `q`, `k`, `v`
/// [B, T, heads * headSize]; query `t` of sequence `b` sees the keys `first[b * T + t] ... t` of
/// its own sequence (a block-diagonal causal mask with a window: see
/// ``visibleFirst(isFirst:window:)``). Runs the fused kernels of ``AttentionKernel``.
public func sequenceAttention(q: Variable, k: Variable, v: Variable, first: [Int32], heads: Int) -> Variable {
  precondition(q.rank == 3 && k.shape == q.shape && v.shape == q.shape, "sequenceAttention: q, k, v must be [B, T, W]")
  let (b, t, w) = (q.shape[0], q.shape[1], q.shape[2])
  precondition(heads >= 1 && w % heads == 0, "sequenceAttention: width \(w) is not a multiple of \(heads) heads")
  precondition(first.count == b * t, "sequenceAttention: \(first.count) first indices for \(b) x \(t) queries")
  for (n, f) in first.enumerated() {
    precondition(f >= 0 && Int(f) <= n % t, "sequenceAttention: first[\(n)] = \(f) is not in 0...\(n % t)")
  }
  let shape = AttentionKernel.Shape(batch: b, length: t, heads: heads, headSize: w / heads)
  let (qv, kv, vv) = (q.value, k.value, v.value)
  var out = Tensor(uninitializedShape: [b, t, w])
  var lse = Tensor(uninitializedShape: [b, heads, t])
  first.withUnsafeBufferPointer { fp in
    qv.withUnsafeBufferPointer { qp in
      kv.withUnsafeBufferPointer { kp in
        vv.withUnsafeBufferPointer { vp in
          out.withUnsafeMutableBufferPointer { op in
            lse.withUnsafeMutableBufferPointer { lp in
              AttentionKernel.forward(
                q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, first: fp.baseAddress!,
                out: op.baseAddress!, logSumExp: lp.baseAddress!, shape: shape)
            }
          }
        }
      }
    }
  }
  let (outValue, lseValue) = (out, lse)
  return customVJP(inputs: [q, k, v], outputs: [out]) { grads in
    var gq = Tensor(uninitializedShape: [b, t, w])
    var gk = Tensor(uninitializedShape: [b, t, w])
    var gv = Tensor(uninitializedShape: [b, t, w])
    first.withUnsafeBufferPointer { fp in
      qv.withUnsafeBufferPointer { qp in
        kv.withUnsafeBufferPointer { kp in
          vv.withUnsafeBufferPointer { vp in
            outValue.withUnsafeBufferPointer { op in
              lseValue.withUnsafeBufferPointer { lp in
                grads[0].withUnsafeBufferPointer { gp in
                  gq.withUnsafeMutableBufferPointer { gqp in
                    gk.withUnsafeMutableBufferPointer { gkp in
                      gv.withUnsafeMutableBufferPointer { gvp in
                        AttentionKernel.backward(
                          q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, first: fp.baseAddress!,
                          out: op.baseAddress!, logSumExp: lp.baseAddress!, gOut: gp.baseAddress!,
                          gq: gqp.baseAddress!, gk: gkp.baseAddress!, gv: gvp.baseAddress!, shape: shape)
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    return [gq, gk, gv]
  }[0]
}

/// The first key each query of sequences [B, T] sees: the latest episode start at or before it
/// (`isFirst` [B, T] of 0 / 1; step 0 when there is none), and never more than `window - 1`
/// steps back, so a query sees at most `window` keys, itself included.
public func visibleFirst(isFirst: Tensor, window: Int) -> [Int32] {
  precondition(isFirst.rank == 2 && window >= 1, "visibleFirst: isFirst must be [B, T] and window >= 1")
  let (b, t) = (isFirst.shape[0], isFirst.shape[1])
  let flags = isFirst.scalars
  var first = [Int32](repeating: 0, count: b * t)
  for s in 0..<b {
    var start = 0
    for i in 0..<t {
      if flags[s * t + i] != 0 { start = i }
      first[s * t + i] = Int32(max(start, i - window + 1))
    }
  }
  return first
}

/// Rotary position encoding (RoPE) of rows [..., heads * headSize]: in every head, feature pair
/// (2i, 2i + 1) turns by the angle `position * base^(-2i / headSize)`, so the score of a query
/// and a key depends on their positions only through their difference. `positions` gives one
/// position per row (rows: all leading axes flattened). Differentiable (the gradient turns
/// back).
public func rotary(_ x: Variable, positions: [Int32], heads: Int, base: Float = 10_000) -> Variable {
  let w = x.shape.last!
  precondition(w % heads == 0, "rotary: width \(w) is not a multiple of \(heads) heads")
  return RotaryTable(positions: positions, headSize: w / heads, base: base)(x, heads: heads)
}

/// The cosines and sines of ``rotary(_:positions:heads:base:)`` for each row and feature pair:
/// made once for a set of positions and applied to every tensor with those rows (the queries
/// and keys of every layer of one step).
public struct RotaryTable {
  public let headSize: Int
  /// One position per row.
  public let positions: [Int32]
  var cosines: [Float]
  var sines: [Float]

  public init(positions: [Int32], headSize: Int, base: Float = 10_000) {
    precondition(headSize >= 2 && headSize % 2 == 0, "RotaryTable: head size must be even, got \(headSize)")
    self.headSize = headSize
    self.positions = positions
    let pairs = headSize / 2
    var c = [Float](repeating: 0, count: positions.count * pairs)
    var s = c
    let frequencies = (0..<pairs).map { Double(powf(base, -2 * Float($0) / Float(headSize))) }
    for (r, p) in positions.enumerated() {
      for i in 0..<pairs {
        let angle = Double(p) * frequencies[i]
        c[r * pairs + i] = Float(cos(angle))
        s[r * pairs + i] = Float(sin(angle))
      }
    }
    cosines = c
    sines = s
  }

  /// `x` [..., heads * headSize] with one row per position, rotated; the gradient turns back.
  public func callAsFunction(_ x: Variable, heads: Int) -> Variable {
    let w = x.shape.last!
    precondition(w == heads * headSize, "rotary: width \(w) is not \(heads) heads of \(headSize)")
    precondition(
      x.count / max(1, w) == positions.count, "rotary: \(positions.count) positions for \(x.count / max(1, w)) rows")
    let y = apply(x.value, heads: heads, inverse: false)
    return customVJP(inputs: [x], outputs: [y]) { g in [apply(g[0], heads: heads, inverse: true)] }[0]
  }

  func apply(_ x: Tensor, heads: Int, inverse: Bool) -> Tensor {
    let w = heads * headSize
    let rows = x.count / w
    let pairs = headSize / 2
    var y = Tensor(uninitializedShape: x.shape)
    let sign: Float = inverse ? -1 : 1
    x.withUnsafeBufferPointer { xp in
      y.withUnsafeMutableBufferPointer { yp in
        cosines.withUnsafeBufferPointer { cp in
          sines.withUnsafeBufferPointer { sp in
            for r in 0..<rows {
              for h in 0..<heads {
                let base = r * w + h * headSize
                for i in 0..<pairs {
                  let (c, s) = (cp[r * pairs + i], sign * sp[r * pairs + i])
                  let (a, b) = (xp[base + 2 * i], xp[base + 2 * i + 1])
                  yp[base + 2 * i] = a * c - b * s
                  yp[base + 2 * i + 1] = a * s + b * c
                }
              }
            }
          }
        }
      }
    }
    return y
  }
}

/// The keys and values one attention layer keeps for rows that go on step by step (acting, or
/// imagining from observed sequences): a shared prefix (the keys of sequences observed at
/// once, which every row starting in the same sequence reads without a copy) and each step's
/// own keys since ([N, width] per step, on the tape while imagining).
public struct KeyValueCache {
  /// The shared keys and values, [P, L, width] (nil: no prefix).
  public var prefixKeys: Tensor?
  public var prefixValues: Tensor?
  /// One [N, width] entry per step taken since, oldest first.
  public var ownKeys: [Variable]
  public var ownValues: [Variable]

  public init(
    prefixKeys: Tensor? = nil, prefixValues: Tensor? = nil, ownKeys: [Variable] = [], ownValues: [Variable] = []
  ) {
    self.prefixKeys = prefixKeys
    self.prefixValues = prefixValues
    self.ownKeys = ownKeys
    self.ownValues = ownValues
  }
}

/// Which keys of a ``KeyValueCache`` each row sees (the same for every layer): a range of one
/// prefix sequence, then its own steps from `ownFirst` on; and the position of its next key.
public struct CacheRows: Equatable, Sendable {
  /// Per row: the prefix sequence it continues (-1: none), and the visible range
  /// `prefixFirst ..< prefixEnd` of it.
  public var prefixRow: [Int32]
  public var prefixFirst: [Int32]
  public var prefixEnd: [Int32]
  /// Per row: the first own step it sees.
  public var ownFirst: [Int32]
  /// Per row: the position (steps since its episode began) of the next key.
  public var position: [Int32]

  public init(prefixRow: [Int32], prefixFirst: [Int32], prefixEnd: [Int32], ownFirst: [Int32], position: [Int32]) {
    self.prefixRow = prefixRow
    self.prefixFirst = prefixFirst
    self.prefixEnd = prefixEnd
    self.ownFirst = ownFirst
    self.position = position
  }

  /// `count` rows that see nothing yet, at position 0.
  public init(empty count: Int) {
    let zeros = [Int32](repeating: 0, count: count)
    self.init(
      prefixRow: [Int32](repeating: -1, count: count), prefixFirst: zeros, prefixEnd: zeros, ownFirst: zeros,
      position: zeros)
  }

  public var count: Int { prefixRow.count }

  /// How many keys row `n` sees with `ownSteps` own steps in the cache.
  public func visible(_ n: Int, ownSteps: Int) -> Int {
    (prefixRow[n] >= 0 ? Int(prefixEnd[n] - prefixFirst[n]) : 0) + ownSteps - Int(ownFirst[n])
  }

  /// Rows `indices`, in that order.
  public func rows(_ indices: [Int]) -> CacheRows {
    CacheRows(
      prefixRow: indices.map { prefixRow[$0] }, prefixFirst: indices.map { prefixFirst[$0] },
      prefixEnd: indices.map { prefixEnd[$0] }, ownFirst: indices.map { ownFirst[$0] },
      position: indices.map { position[$0] })
  }
}

/// One attention step: each row's query `q` [N, width] against the keys and values of `cache`
/// that `rows` lets it see (see ``CacheRows``), `heads` heads. Differentiable in `q` and the
/// cache's own keys and values; the prefix is constant. A row that sees no key gets zeros.
public func stepAttention(q: Variable, cache: KeyValueCache, rows: CacheRows, heads: Int) -> Variable {
  precondition(q.rank == 2, "stepAttention: q must be [N, W], got \(q.shape)")
  let (n, w) = (q.shape[0], q.shape[1])
  precondition(rows.count == n, "stepAttention: \(rows.count) cache rows for \(n) queries")
  precondition(w % heads == 0, "stepAttention: width \(w) is not a multiple of \(heads) heads")
  precondition(cache.ownKeys.count == cache.ownValues.count, "stepAttention: own keys and values differ in number")
  let prefixLength = cache.prefixKeys?.shape[1] ?? 0
  for r in 0..<n where rows.prefixRow[r] >= 0 {
    precondition(cache.prefixKeys != nil, "stepAttention: row \(r) continues a prefix the cache lacks")
    precondition(
      rows.prefixFirst[r] >= 0 && rows.prefixFirst[r] <= rows.prefixEnd[r] && Int(rows.prefixEnd[r]) <= prefixLength,
      "stepAttention: row \(r)'s prefix range is outside 0...\(prefixLength)")
  }
  let headSize = w / heads
  let ownK = cache.ownKeys.map(\.value)
  let ownV = cache.ownValues.map(\.value)
  let qv = q.value
  let pk = cache.prefixKeys ?? Tensor.zeros([1])
  let pv = cache.prefixValues ?? Tensor.zeros([1])
  let hasPrefix = cache.prefixKeys != nil
  /// Runs `body` with the kernel's sources.
  func withSources<R>(_ body: (AttentionKernel.StepSources) -> R) -> R {
    pk.withUnsafeBufferPointer { pkp in
      pv.withUnsafeBufferPointer { pvp in
        rows.prefixRow.withUnsafeBufferPointer { rp in
          rows.prefixFirst.withUnsafeBufferPointer { fp in
            rows.prefixEnd.withUnsafeBufferPointer { ep in
              rows.ownFirst.withUnsafeBufferPointer { op in
                Tensor.withUnsafeBaseAddresses(ownK) { kps in
                  Tensor.withUnsafeBaseAddresses(ownV) { vps in
                    body(
                      AttentionKernel.StepSources(
                        prefixKeys: hasPrefix ? pkp.baseAddress! : nil,
                        prefixValues: hasPrefix ? pvp.baseAddress! : nil,
                        prefixLength: prefixLength, prefixRow: rp.baseAddress!, prefixFirst: fp.baseAddress!,
                        prefixEnd: ep.baseAddress!, ownKeys: kps, ownValues: vps, ownFirst: op.baseAddress!))
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  var out = Tensor(uninitializedShape: [n, w])
  var lse = Tensor(uninitializedShape: [n, heads])
  withSources { sources in
    qv.withUnsafeBufferPointer { qp in
      out.withUnsafeMutableBufferPointer { op in
        lse.withUnsafeMutableBufferPointer { lp in
          AttentionKernel.stepForward(
            q: qp.baseAddress!, sources: sources, rows: n, heads: heads, headSize: headSize, out: op.baseAddress!,
            logSumExp: lp.baseAddress!)
        }
      }
    }
  }
  let (outValue, lseValue) = (out, lse)
  let steps = ownK.count
  return customVJP(inputs: [q] + cache.ownKeys + cache.ownValues, outputs: [out]) { grads in
    var gq = Tensor(uninitializedShape: [n, w])
    // The own steps' gradients in buffers of their own, made tensors afterwards.
    let gkps = (0..<steps).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: n * w) }
    let gvps = (0..<steps).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: n * w) }
    defer { for p in gkps + gvps { p.deallocate() } }
    withSources { sources in
      qv.withUnsafeBufferPointer { qp in
        outValue.withUnsafeBufferPointer { op in
          lseValue.withUnsafeBufferPointer { lp in
            grads[0].withUnsafeBufferPointer { gp in
              gq.withUnsafeMutableBufferPointer { gqp in
                AttentionKernel.stepBackward(
                  q: qp.baseAddress!, sources: sources, rows: n, heads: heads, headSize: headSize,
                  out: op.baseAddress!, logSumExp: lp.baseAddress!, gOut: gp.baseAddress!, gq: gqp.baseAddress!,
                  gOwnKeys: gkps, gOwnValues: gvps)
              }
            }
          }
        }
      }
    }
    func tensor(_ p: UnsafeMutablePointer<Float>) -> Tensor? {
      Tensor(Array(UnsafeBufferPointer(start: p, count: n * w)), shape: [n, w])
    }
    return [gq] + gkps.map(tensor) + gvps.map(tensor)
  }[0]
}
