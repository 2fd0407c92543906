import Autodiff

/// The diagonal complex linear recurrence with episode resets, as fused kernels.
///
/// Complex sequences use the "split" layout [B, T, 2P]: real parts in the first P entries of each
/// row, imaginary parts in the last P. With a = Lambda_bar (per state) and b_t = B_bar u_t:
///
///     x_t = a * prev_t + b_t,   prev_t = x_init        if isFirst[b, t]
///                                      = x_{t-1}        if t > 0
///                                      = carry[b]       at t = 0 (zeros when no carry)
///
/// which is the affine map (A_t, b'_t) with A_t = 0 and b'_t = a x_init + b_t at a reset, so the
/// composition (A2, b2) o (A1, b1) = (A2 A1, A2 b1 + b2) is associative for any x_init and the
/// time-chunked evaluation equals the sequential one. The backward pass is the reverse
/// recurrence G_t = dL/dx_t + conj(a) G_{t+1} (cut where isFirst[t+1]).
///
/// Work is split over (batch, groups of 8 states) and, when that gives too few items for the
/// threads, over time chunks joined by a carry pass.
public enum ScanKernel {
  /// Buffers of one call (all row-major, split complex layout).
  public struct Problem {
    public let batch: Int
    public let length: Int
    public let states: Int
    public var groups: Int { (states + 7) / 8 }
  }

  /// How many time chunks to use: 1 when batch x groups already feeds every thread.
  public static func timeChunks(batch: Int, groups: Int, length: Int, threads: Int) -> Int {
    if threads <= 1 { return 1 }
    let items = batch * groups
    if items >= 4 * threads { return 1 }
    let wanted = (4 * threads + items - 1) / items
    return max(1, min(wanted, length / 64))
  }

  @inline(__always)
  static func load(_ p: UnsafePointer<Float>, _ i: Int, _ n: Int) -> Float8 {
    n == 8 ? loadFloat8(p, i) : loadPartialFloat8(p, i, n)
  }

  @inline(__always)
  static func store(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) {
    if n == 8 { storeFloat8(v, p, i) } else { storePartialFloat8(v, p, i, n) }
  }

  /// Forward pass: fills `x` [B, T, 2P] from `bu` [B, T, 2P].
  public static func forward(
    bu: UnsafePointer<Float>, a: UnsafePointer<Float>, xInit: UnsafePointer<Float>,
    carry: UnsafePointer<Float>?, isFirst: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>,
    problem p: Problem, chunks: Int
  ) {
    let (bn, tn, pn, gn) = (p.batch, p.length, p.states, p.groups)
    let row = 2 * pn
    let items = bn * gn * chunks
    // Phase 1: every (chunk, batch, group) from its local start (the carry for chunk 0).
    Parallelism.forEachChunk(count: items, grain: 1) { range in
      for item in range {
        let c = item / (bn * gn)
        let b = (item / gn) % bn
        let g = item % gn
        let lane = g * 8
        let n = min(8, pn - lane)
        let t0 = tn * c / chunks
        let t1 = tn * (c + 1) / chunks
        let ar = load(a, lane, n)
        let ai = load(a, pn + lane, n)
        let ir = load(xInit, lane, n)
        let ii = load(xInit, pn + lane, n)
        var sr = Float8()
        var si = Float8()
        if c == 0, let carry {
          sr = load(carry, b * row + lane, n)
          si = load(carry, b * row + pn + lane, n)
        }
        for t in t0..<t1 {
          let o = (b * tn + t) * row + lane
          if isFirst[b * tn + t] != 0 {
            sr = ir
            si = ii
          }
          let br = load(bu, o, n)
          let bi = load(bu, o + pn, n)
          let nr = ar * sr - ai * si + br
          let ni = ar * si + ai * sr + bi
          sr = nr
          si = ni
          store(sr, x, o, n)
          store(si, x, o + pn, n)
        }
      }
    }
    guard chunks > 1 else { return }
    // Phase 2: the true state at the end of each chunk, sequentially over chunks.
    // starts[(c * B + b) * 2P ...] = true x at t0(c) - 1 for c >= 1.
    var starts = [Float](repeating: 0, count: chunks * bn * row)
    starts.withUnsafeMutableBufferPointer { sp in
      let st = sp.baseAddress!
      Parallelism.forEachChunk(count: bn * gn, grain: 1) { range in
        for item in range {
          let b = item / gn
          let g = item % gn
          let lane = g * 8
          let n = min(8, pn - lane)
          let ar = load(a, lane, n)
          let ai = load(a, pn + lane, n)
          // The end of chunk 0 is exact after phase 1.
          let end0 = (b * tn + tn / chunks - 1) * row + lane
          var er = load(UnsafePointer(x), end0, n)
          var ei = load(UnsafePointer(x), end0 + pn, n)
          for c in 1..<chunks {
            store(er, st, (c * bn + b) * row + lane, n)
            store(ei, st, (c * bn + b) * row + pn + lane, n)
            if c == chunks - 1 { break }
            let t0 = tn * c / chunks
            let t1 = tn * (c + 1) / chunks
            // Multiplier of the incoming state over the chunk: a^len, or 0 after a reset.
            var reset = false
            for t in t0..<t1 where isFirst[b * tn + t] != 0 {
              reset = true
              break
            }
            let le = (b * tn + t1 - 1) * row + lane
            let lr = load(UnsafePointer(x), le, n)
            let li = load(UnsafePointer(x), le + pn, n)
            if reset {
              er = lr
              ei = li
            } else {
              let (mr, mi) = power(ar, ai, t1 - t0)
              let nr = mr * er - mi * ei + lr
              let ni = mr * ei + mi * er + li
              er = nr
              ei = ni
            }
          }
        }
      }
      // Phase 3: add the incoming state's contribution until the first reset of the chunk.
      let fixItems = (chunks - 1) * bn * gn
      Parallelism.forEachChunk(count: fixItems, grain: 1) { range in
        for item in range {
          let c = 1 + item / (bn * gn)
          let b = (item / gn) % bn
          let g = item % gn
          let lane = g * 8
          let n = min(8, pn - lane)
          let t0 = tn * c / chunks
          let t1 = tn * (c + 1) / chunks
          let ar = load(a, lane, n)
          let ai = load(a, pn + lane, n)
          let zr = load(UnsafePointer(st), (c * bn + b) * row + lane, n)
          let zi = load(UnsafePointer(st), (c * bn + b) * row + pn + lane, n)
          var mr = ar
          var mi = ai
          for t in t0..<t1 {
            if isFirst[b * tn + t] != 0 { break }
            let o = (b * tn + t) * row + lane
            store(load(UnsafePointer(x), o, n) + mr * zr - mi * zi, x, o, n)
            store(load(UnsafePointer(x), o + pn, n) + mr * zi + mi * zr, x, o + pn, n)
            let nr = mr * ar - mi * ai
            let ni = mr * ai + mi * ar
            mr = nr
            mi = ni
          }
        }
      }
    }
  }

  /// (ar + i ai)^k by repeated squaring.
  @inline(__always)
  static func power(_ ar: Float8, _ ai: Float8, _ k: Int) -> (Float8, Float8) {
    var rr = Float8(repeating: 1)
    var ri = Float8()
    var br = ar
    var bi = ai
    var e = k
    while e > 0 {
      if e & 1 == 1 {
        let nr = rr * br - ri * bi
        let ni = rr * bi + ri * br
        rr = nr
        ri = ni
      }
      let sr = br * br - bi * bi
      let si = 2 * br * bi
      br = sr
      bi = si
      e >>= 1
    }
    return (rr, ri)
  }

  /// Backward pass. Given dL/dx in `gx`, writes dL/d(bu) into `gbu` and returns the gradients of
  /// a [2P], x_init [2P] and (when a carry was given) the carry [B, 2P].
  public static func backward(
    gx: UnsafePointer<Float>, x: UnsafePointer<Float>, a: UnsafePointer<Float>,
    xInit: UnsafePointer<Float>, carry: UnsafePointer<Float>?, isFirst: UnsafePointer<Float>,
    gbu: UnsafeMutablePointer<Float>, problem p: Problem, chunks: Int
  ) -> (ga: [Float], gxInit: [Float], gcarry: [Float]?) {
    let (bn, tn, pn, gn) = (p.batch, p.length, p.states, p.groups)
    let row = 2 * pn
    // Phase 1: local reverse recurrence per (chunk, batch, group), from zero at the chunk end.
    let items = bn * gn * chunks
    Parallelism.forEachChunk(count: items, grain: 1) { range in
      for item in range {
        let c = item / (bn * gn)
        let b = (item / gn) % bn
        let g = item % gn
        let lane = g * 8
        let n = min(8, pn - lane)
        let t0 = tn * c / chunks
        let t1 = tn * (c + 1) / chunks
        // conj(a)
        let ar = load(a, lane, n)
        let ai = -load(a, pn + lane, n)
        var hr = Float8()
        var hi = Float8()
        var t = t1 - 1
        while t >= t0 {
          let o = (b * tn + t) * row + lane
          var gr = load(gx, o, n)
          var gi = load(gx, o + pn, n)
          if t + 1 < t1 && isFirst[b * tn + t + 1] == 0 {
            gr += ar * hr - ai * hi
            gi += ar * hi + ai * hr
          }
          hr = gr
          hi = gi
          store(gr, gbu, o, n)
          store(gi, gbu, o + pn, n)
          t -= 1
        }
      }
    }
    if chunks > 1 {
      var incoming = [Float](repeating: 0, count: chunks * bn * row)
      incoming.withUnsafeMutableBufferPointer { ip in
        let inc = ip.baseAddress!
        // Phase 2: the gradient flowing into each chunk from the next one, last chunk first.
        Parallelism.forEachChunk(count: bn * gn, grain: 1) { range in
          for item in range {
            let b = item / gn
            let g = item % gn
            let lane = g * 8
            let n = min(8, pn - lane)
            let ar = load(a, lane, n)
            let ai = -load(a, pn + lane, n)
            // True gradient at the start of the last chunk is its local value.
            var c = chunks - 1
            var sOff = (b * tn + tn * c / chunks) * row + lane
            var sr = load(UnsafePointer(gbu), sOff, n)
            var si = load(UnsafePointer(gbu), sOff + pn, n)
            while c > 0 {
              let prev = c - 1
              let t0 = tn * prev / chunks
              let t1 = tn * c / chunks
              // Gin(prev) = conj(a) * trueStart(c), unless the next chunk starts with a reset.
              var gr = Float8()
              var gi = Float8()
              if isFirst[b * tn + t1] == 0 {
                gr = ar * sr - ai * si
                gi = ar * si + ai * sr
              }
              store(gr, inc, (prev * bn + b) * row + lane, n)
              store(gi, inc, (prev * bn + b) * row + pn + lane, n)
              // trueStart(prev) = localStart(prev) + M * Gin, M = conj(a)^(len-1) unless a
              // reset lies inside (t0, t1).
              var reset = false
              for t in (t0 + 1)..<t1 where isFirst[b * tn + t] != 0 {
                reset = true
                break
              }
              sOff = (b * tn + t0) * row + lane
              sr = load(UnsafePointer(gbu), sOff, n)
              si = load(UnsafePointer(gbu), sOff + pn, n)
              if !reset {
                let (mr, mi) = power(ar, ai, t1 - t0 - 1)
                let nr = sr + mr * gr - mi * gi
                let ni = si + mr * gi + mi * gr
                sr = nr
                si = ni
              }
              c = prev
            }
          }
        }
        // Phase 3: add M_t * Gin inside each chunk but the last, walking back to the first reset.
        Parallelism.forEachChunk(count: (chunks - 1) * bn * gn, grain: 1) { range in
          for item in range {
            let c = item / (bn * gn)
            let b = (item / gn) % bn
            let g = item % gn
            let lane = g * 8
            let n = min(8, pn - lane)
            let t0 = tn * c / chunks
            let t1 = tn * (c + 1) / chunks
            let ar = load(a, lane, n)
            let ai = -load(a, pn + lane, n)
            let zr = load(UnsafePointer(inc), (c * bn + b) * row + lane, n)
            let zi = load(UnsafePointer(inc), (c * bn + b) * row + pn + lane, n)
            var mr = Float8(repeating: 1)
            var mi = Float8()
            var t = t1 - 1
            while t >= t0 {
              let o = (b * tn + t) * row + lane
              store(load(UnsafePointer(gbu), o, n) + mr * zr - mi * zi, gbu, o, n)
              store(load(UnsafePointer(gbu), o + pn, n) + mr * zi + mi * zr, gbu, o + pn, n)
              if isFirst[b * tn + t] != 0 { break }
              let nr = mr * ar - mi * ai
              let ni = mr * ai + mi * ar
              mr = nr
              mi = ni
              t -= 1
            }
          }
        }
      }
    }
    // Phase 4: parameter gradients from the true G_t, per (chunk, batch, group) partial sums.
    var partial = [Float](repeating: 0, count: items * 32)  // ga (16) + gxInit (16) per item
    let gc: UnsafeMutablePointer<Float>? = carry == nil ? nil : .allocate(capacity: bn * row)
    gc?.initialize(repeating: 0, count: bn * row)
    defer { gc?.deallocate() }
    partial.withUnsafeMutableBufferPointer { pp in
      let part = pp.baseAddress!
      Parallelism.forEachChunk(count: items, grain: 1) { range in
        for item in range {
          let c = item / (bn * gn)
          let b = (item / gn) % bn
          let g = item % gn
          let lane = g * 8
          let n = min(8, pn - lane)
          let t0 = tn * c / chunks
          let t1 = tn * (c + 1) / chunks
          let ar = load(a, lane, n)
          let ai = -load(a, pn + lane, n)
          let ir = load(xInit, lane, n)
          let ii = load(xInit, pn + lane, n)
          var gar = Float8()
          var gai = Float8()
          var gir = Float8()
          var gii = Float8()
          for t in t0..<t1 {
            let o = (b * tn + t) * row + lane
            let gr = load(UnsafePointer(gbu), o, n)
            let gi = load(UnsafePointer(gbu), o + pn, n)
            var pr: Float8
            var pi: Float8
            if isFirst[b * tn + t] != 0 {
              pr = ir
              pi = ii
              // dL/dx_init += conj(a) G_t
              gir += ar * gr - ai * gi
              gii += ar * gi + ai * gr
            } else if t > 0 {
              let q = (b * tn + t - 1) * row + lane
              pr = load(x, q, n)
              pi = load(x, q + pn, n)
            } else if let carry {
              pr = load(carry, b * row + lane, n)
              pi = load(carry, b * row + pn + lane, n)
              if let gc {
                store(ar * gr - ai * gi, gc, b * row + lane, n)
                store(ar * gi + ai * gr, gc, b * row + pn + lane, n)
              }
            } else {
              pr = Float8()
              pi = Float8()
            }
            // dL/da += conj(prev) G_t
            gar += pr * gr + pi * gi
            gai += pr * gi - pi * gr
          }
          let base = part + item * 32
          storeFloat8(gar, base, 0)
          storeFloat8(gai, base, 8)
          storeFloat8(gir, base, 16)
          storeFloat8(gii, base, 24)
        }
      }
    }
    // Deterministic reduction in item order.
    var ga = [Float](repeating: 0, count: row)
    var gxInit = [Float](repeating: 0, count: row)
    for item in 0..<items {
      let g = item % gn
      let lane = g * 8
      let n = min(8, pn - lane)
      for k in 0..<n {
        ga[lane + k] += partial[item * 32 + k]
        ga[pn + lane + k] += partial[item * 32 + 8 + k]
        gxInit[lane + k] += partial[item * 32 + 16 + k]
        gxInit[pn + lane + k] += partial[item * 32 + 24 + k]
      }
    }
    let gcarry = gc.map { Array(UnsafeBufferPointer(start: $0, count: bn * row)) }
    return (ga, gxInit, gcarry)
  }
}

/// The diagonal complex linear recurrence with resets (see ``ScanKernel``) as one
/// differentiable node with a fused backward pass.
///
/// - Parameters:
///   - inputs: b_t = B_bar u_t, [B, T, 2P] (split complex layout).
///   - lambdaBar: the discrete state matrix diagonal, [2P].
///   - initialState: x_init used at every `isFirst` step, [2P].
///   - carry: the state before t = 0 when `isFirst[:, 0]` is 0, [B, 2P] (zeros if nil).
///   - isFirst: reset flags, [B, T] of 0 / 1 (constant).
/// - Returns: x_t for every step, [B, T, 2P].
public func linearRecurrence(
  inputs: Variable, lambdaBar: Variable, initialState: Variable, carry: Variable?, isFirst: Tensor
) -> Variable {
  precondition(
    inputs.rank == 3 && inputs.shape[2] % 2 == 0, "linearRecurrence: inputs \(inputs.shape) must be [B, T, 2P]")
  let (bn, tn, row) = (inputs.shape[0], inputs.shape[1], inputs.shape[2])
  let pn = row / 2
  precondition(lambdaBar.shape == [row], "linearRecurrence: lambdaBar \(lambdaBar.shape), expected [\(row)]")
  precondition(initialState.shape == [row], "linearRecurrence: initialState \(initialState.shape), expected [\(row)]")
  precondition(isFirst.shape == [bn, tn], "linearRecurrence: isFirst \(isFirst.shape), expected [\(bn), \(tn)]")
  if let carry {
    precondition(carry.shape == [bn, row], "linearRecurrence: carry \(carry.shape), expected [\(bn), \(row)]")
  }
  let problem = ScanKernel.Problem(batch: bn, length: tn, states: pn)
  let chunks = ScanKernel.timeChunks(
    batch: bn, groups: problem.groups, length: tn, threads: Parallelism.threadCount)
  let (uv, av, iv, cv, fv) = (inputs.value, lambdaBar.value, initialState.value, carry?.value, isFirst)
  var x = Tensor(uninitializedShape: [bn, tn, row])
  x.withUnsafeMutableBufferPointer { xp in
    uv.withUnsafeBufferPointer { up in
      av.withUnsafeBufferPointer { ap in
        iv.withUnsafeBufferPointer { ip in
          fv.withUnsafeBufferPointer { fp in
            let run: (UnsafePointer<Float>?) -> Void = { cp in
              ScanKernel.forward(
                bu: up.baseAddress!, a: ap.baseAddress!, xInit: ip.baseAddress!, carry: cp,
                isFirst: fp.baseAddress!, x: xp.baseAddress!, problem: problem, chunks: chunks)
            }
            if let cv { cv.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
          }
        }
      }
    }
  }
  var inputsList = [inputs, lambdaBar, initialState]
  if let carry { inputsList.append(carry) }
  let needs = needsGradient(inputsList)
  let xOut = x
  return customVJP(inputs: inputsList, outputs: [x]) { grads in
    var gbu = Tensor(uninitializedShape: [bn, tn, row])
    var result: (ga: [Float], gxInit: [Float], gcarry: [Float]?) = ([], [], nil)
    gbu.withUnsafeMutableBufferPointer { gp in
      grads[0].withUnsafeBufferPointer { gxp in
        xOut.withUnsafeBufferPointer { xp in
          av.withUnsafeBufferPointer { ap in
            iv.withUnsafeBufferPointer { ip in
              fv.withUnsafeBufferPointer { fp in
                let run: (UnsafePointer<Float>?) -> Void = { cp in
                  result = ScanKernel.backward(
                    gx: gxp.baseAddress!, x: xp.baseAddress!, a: ap.baseAddress!,
                    xInit: ip.baseAddress!, carry: cp, isFirst: fp.baseAddress!,
                    gbu: gp.baseAddress!, problem: problem, chunks: chunks)
                }
                if let cv { cv.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
              }
            }
          }
        }
      }
    }
    var out: [Tensor?] = [
      needs[0] ? gbu : nil, needs[1] ? Tensor(result.ga) : nil,
      needs[2] ? Tensor(result.gxInit) : nil,
    ]
    if cv != nil { out.append(needs[3] ? Tensor(result.gcarry!, shape: [bn, row]) : nil) }
    return out
  }[0]
}
