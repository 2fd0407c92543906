import Attention
import Foundation
import Testing

/// Attention written the plain way with the tape's own operations (a full score matrix, a
/// mask of -1e9, softmax): the independent reference for the fused kernels. `visible(b, i, j)`
/// says whether query i of sequence b sees key j.
func naiveAttention(
  q: Variable, k: Variable, v: Variable, heads: Int, visible: (Int, Int, Int) -> Bool
) -> Variable {
  let (b, tq, w) = (q.shape[0], q.shape[1], q.shape[2])
  let tk = k.shape[1]
  let d = w / heads
  var mask = [Float](repeating: 0, count: b * tq * tk)
  for s in 0..<b {
    for i in 0..<tq {
      for j in 0..<tk where !visible(s, i, j) { mask[(s * tq + i) * tk + j] = -1e9 }
    }
  }
  let m = Variable(Tensor(mask, shape: [b, 1, tq, tk]))
  func split(_ x: Variable, _ t: Int) -> Variable { x.reshaped([b, t, heads, d]).permuted([0, 2, 1, 3]) }
  let (qh, kh, vh) = (split(q, tq), split(k, tk), split(v, tk))
  let scores = matmul(qh, kh.permuted([0, 1, 3, 2])) * Variable(1 / Float(d).squareRoot()) + m
  let p = scores.softmax(axis: -1)
  return matmul(p, vh).permuted([0, 2, 1, 3]).reshaped([b, tq, w])
}

/// The largest absolute difference of two tensors of one shape.
func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
  precondition(a.shape == b.shape, "shapes \(a.shape) and \(b.shape) differ")
  return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
}

/// Random [B, T] episode starts: step 0 always, and a few inside.
func randomStarts(b: Int, t: Int, rng: inout SeededGenerator) -> Tensor {
  var flags = [Float](repeating: 0, count: b * t)
  for s in 0..<b {
    flags[s * t] = 1
    for _ in 0..<(t / 8) { flags[s * t + rng.nextInt(below: t)] = 1 }
  }
  return Tensor(flags, shape: [b, t])
}

/// Whether query i sees key j under `first` (the kernels' rule, stated by hand).
func sees(_ first: [Int32], t: Int) -> (Int, Int, Int) -> Bool {
  { b, i, j in j <= i && j >= Int(first[b * t + i]) }
}

@Suite struct AttentionTests {
  /// The fused forward pass equals the plain computation, with episode starts inside the
  /// sequences and windows shorter and longer than them, on 1 and 2 threads.
  @Test(arguments: [1, 2]) func sequenceAttentionMatchesThePlainComputation(threads: Int) {
    var rng = SeededGenerator(seed: 3)
    for (b, t, heads, d, window) in [(2, 9, 2, 4, 100), (3, 70, 4, 8, 100), (2, 70, 2, 16, 13), (1, 5, 1, 3, 1)] {
      let w = heads * d
      let q = Tensor.normal([b, t, w], using: &rng)
      let k = Tensor.normal([b, t, w], using: &rng)
      let v = Tensor.normal([b, t, w], using: &rng)
      let isFirst = randomStarts(b: b, t: t, rng: &rng)
      let first = visibleFirst(isFirst: isFirst, window: window)
      let fused = Parallelism.withThreadCount(threads) {
        sequenceAttention(q: Variable(q), k: Variable(k), v: Variable(v), first: first, heads: heads).value
      }
      let plain = naiveAttention(
        q: Variable(q), k: Variable(k), v: Variable(v), heads: heads, visible: sees(first, t: t)
      ).value
      #expect(maxDifference(fused, plain) < 1e-5, "B=\(b) T=\(t) window \(window)")
    }
  }

  /// `visibleFirst` by hand: episode starts and a window.
  @Test func theVisibleRangeStopsAtEpisodeStartsAndTheWindow() {
    let isFirst = Tensor([1, 0, 0, 1, 0, 0, 0, 0, 1, 0], shape: [1, 10])
    #expect(visibleFirst(isFirst: isFirst, window: 100) == [0, 0, 0, 3, 3, 3, 3, 3, 8, 8])
    #expect(visibleFirst(isFirst: isFirst, window: 3) == [0, 0, 0, 3, 3, 3, 4, 5, 8, 8])
    // A sequence that does not start an episode at t = 0 sees from 0 on.
    #expect(visibleFirst(isFirst: Tensor([0, 0, 1, 0], shape: [1, 4]), window: 8) == [0, 0, 2, 2])
  }

  /// A window of K gives every query what it gets from the input truncated to its last K steps.
  @Test func aWindowEqualsTruncatingTheInput() {
    var rng = SeededGenerator(seed: 5)
    let (t, heads, d, window) = (40, 2, 8, 7)
    let w = heads * d
    let (q, k, v) = (
      Tensor.normal([1, t, w], using: &rng), Tensor.normal([1, t, w], using: &rng),
      Tensor.normal([1, t, w], using: &rng)
    )
    let first = visibleFirst(isFirst: Tensor.zeros([1, t]), window: window)
    let windowed = sequenceAttention(q: Variable(q), k: Variable(k), v: Variable(v), first: first, heads: heads).value
    for i in [0, 3, 6, 7, 20, 39] {
      let lo = max(0, i - window + 1)
      func cut(_ x: Tensor) -> Variable { Variable(x.slice(axis: 1, lo..<(i + 1))) }
      let n = i + 1 - lo
      let truncated = sequenceAttention(
        q: cut(q), k: cut(k), v: cut(v), first: [Int32](repeating: 0, count: n), heads: heads
      ).value
      let last = truncated.slice(axis: 1, (n - 1)..<n)
      #expect(maxDifference(last, windowed.slice(axis: 1, i..<(i + 1))) < 1e-6, "query \(i)")
    }
  }

  /// The backward pass against finite differences and against the plain computation's
  /// gradients, with starts inside and a window.
  @Test(arguments: [1, 2]) func sequenceAttentionGradients(threads: Int) {
    var rng = SeededGenerator(seed: 7)
    let (b, t, heads, d) = (2, 12, 2, 4)
    let w = heads * d
    let inputs = (0..<3).map { _ in Tensor.normal([b, t, w], using: &rng) }
    let first = visibleFirst(isFirst: randomStarts(b: b, t: t, rng: &rng), window: 5)
    let report = Parallelism.withThreadCount(threads) {
      checkGradients(
        of: { v in sequenceAttention(q: v[0], k: v[1], v: v[2], first: first, heads: heads) }, at: inputs,
        epsilon: 1e-2, relativeTolerance: 1e-2, samplesPerInput: 24)
    }
    #expect(report.passed, "\(report)")
    let seed = Tensor.normal([b, t, w], using: &rng)
    let (_, fused) = Parallelism.withThreadCount(threads) {
      valueWithGradient(at: inputs, seed: seed) { v in
        sequenceAttention(q: v[0], k: v[1], v: v[2], first: first, heads: heads)
      }
    }
    let (_, plain) = valueWithGradient(at: inputs, seed: seed) { v in
      naiveAttention(q: v[0], k: v[1], v: v[2], heads: heads, visible: sees(first, t: t))
    }
    for i in 0..<3 { #expect(maxDifference(fused[i], plain[i]) < 1e-4, "input \(i)") }
  }

  /// Stepping with a cache (a prefix and own steps) gives what the plain computation gives over
  /// the same keys; its gradients in the query and the own keys and values match it too.
  @Test func stepAttentionMatchesThePlainComputation() {
    var rng = SeededGenerator(seed: 11)
    let (p, l, heads, d, n, steps) = (2, 6, 2, 4, 5, 3)
    let w = heads * d
    let prefixKeys = Tensor.normal([p, l, w], using: &rng)
    let prefixValues = Tensor.normal([p, l, w], using: &rng)
    let ownK = (0..<steps).map { _ in Tensor.normal([n, w], using: &rng) }
    let ownV = (0..<steps).map { _ in Tensor.normal([n, w], using: &rng) }
    let q = Tensor.normal([n, w], using: &rng)
    // Rows: prefix 0, 1, none, 1 (an empty range), 0 (one key); own steps from 0, 1, 0, 3 (none), 3.
    let rows = CacheRows(
      prefixRow: [0, 1, -1, 1, 0], prefixFirst: [0, 2, 0, 6, 3], prefixEnd: [4, 6, 0, 6, 4], ownFirst: [0, 1, 0, 3, 3],
      position: [0, 0, 0, 0, 0])
    func run(_ v: [Variable]) -> Variable {
      let cache = KeyValueCache(
        prefixKeys: prefixKeys, prefixValues: prefixValues, ownKeys: Array(v[1...steps]),
        ownValues: Array(v[(steps + 1)...]))
      return stepAttention(q: v[0], cache: cache, rows: rows, heads: heads)
    }
    // The plain computation per row, over the keys it sees laid out as a sequence.
    func plain(_ v: [Variable]) -> Variable {
      var outs: [Variable] = []
      for r in 0..<n {
        var keys: [Variable] = []
        var values: [Variable] = []
        if rows.prefixRow[r] >= 0 {
          for j in Int(rows.prefixFirst[r])..<Int(rows.prefixEnd[r]) {
            keys.append(Variable(prefixKeys.slice(at: Int(rows.prefixRow[r]), axis: 0).slice(at: j, axis: 0)))
            values.append(Variable(prefixValues.slice(at: Int(rows.prefixRow[r]), axis: 0).slice(at: j, axis: 0)))
          }
        }
        for s in Int(rows.ownFirst[r])..<steps {
          keys.append(v[1 + s].slice(at: r, axis: 0))
          values.append(v[1 + steps + s].slice(at: r, axis: 0))
        }
        if keys.isEmpty {
          outs.append(Variable(Tensor.zeros([1, 1, w])))
          continue
        }
        let kq = Variable.stack(keys, axis: 0).reshaped([1, keys.count, w])
        let vq = Variable.stack(values, axis: 0).reshaped([1, keys.count, w])
        outs.append(
          naiveAttention(
            q: v[0].slice(axis: 0, r..<(r + 1)).reshaped([1, 1, w]), k: kq, v: vq, heads: heads,
            visible: { _, _, _ in true }))
      }
      return Variable.concat(outs, axis: 0).reshaped([n, w])
    }
    let inputs = [q] + ownK + ownV
    let fused = withoutGradient { run(inputs.map { Variable($0) }) }.value
    let reference = withoutGradient { plain(inputs.map { Variable($0) }) }.value
    #expect(maxDifference(fused, reference) < 1e-5)
    #expect(fused.slice(at: 3, axis: 0).scalars.allSatisfy { $0 == 0 }, "a row that sees nothing gets zeros")
    let seed = Tensor.normal([n, w], using: &rng)
    let (_, gFused) = valueWithGradient(at: inputs, seed: seed, of: run)
    let (_, gPlain) = valueWithGradient(at: inputs, seed: seed, of: plain)
    for i in 0..<inputs.count { #expect(maxDifference(gFused[i], gPlain[i]) < 1e-4, "input \(i)") }
    let report = checkGradients(of: run, at: inputs, epsilon: 1e-2, relativeTolerance: 1e-2, samplesPerInput: 12)
    #expect(report.passed, "\(report)")
  }

  /// RoPE: a query and a key score the same whatever positions they share an offset by, and the
  /// gradient turns back (finite differences).
  @Test func rotaryScoresDependOnlyOnTheOffset() {
    var rng = SeededGenerator(seed: 13)
    let (heads, d) = (2, 8)
    let q = Tensor.normal([1, heads * d], using: &rng)
    let k = Tensor.normal([1, heads * d], using: &rng)
    func score(_ pq: Int32, _ pk: Int32) -> [Float] {
      let a = rotary(Variable(q), positions: [pq], heads: heads).value.scalars
      let b = rotary(Variable(k), positions: [pk], heads: heads).value.scalars
      return (0..<heads).map { h in (0..<d).reduce(Float(0)) { $0 + a[h * d + $1] * b[h * d + $1] } }
    }
    let base = score(7, 3)
    for shift: Int32 in [1, 50, 400] {
      let shifted = score(7 + shift, 3 + shift)
      #expect(zip(base, shifted).allSatisfy { abs($0 - $1) < 1e-4 }, "shift \(shift)")
    }
    #expect(zip(base, score(8, 3)).contains { abs($0 - $1) > 1e-3 }, "another offset scores otherwise")
    // Position 0 leaves a row as it is.
    #expect(rotary(Variable(q), positions: [0], heads: heads).value == q)
    let report = checkGradients(
      of: { v in rotary(v[0], positions: [0, 5, 99], heads: heads) },
      at: [Tensor.normal([3, heads * d], using: &rng)])
    #expect(report.passed, "\(report)")
  }
}
