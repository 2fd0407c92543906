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

  /// One unit of work: the states `lane ..< lane + width` (one group of up to 8) of one
  /// sequence over the time chunk `start ..< end`. Items are numbered chunk-major, then by
  /// sequence, then by group; `firstChunk` shifts the chunk of item 0.
  struct Item {
    let chunk: Int
    let batch: Int
    let lane: Int
    let width: Int
    let start: Int
    let end: Int

    @inline(__always)
    init(_ index: Int, _ p: Problem, chunks: Int, firstChunk: Int = 0) {
      chunk = firstChunk + index / (p.batch * p.groups)
      batch = (index / p.groups) % p.batch
      lane = (index % p.groups) * 8
      width = min(8, p.states - lane)
      start = p.length * chunk / chunks
      end = p.length * (chunk + 1) / chunks
    }

    /// Where step `t` of this item's lanes starts in a [B, T, 2P] buffer (real parts; the
    /// imaginary parts are `states` further).
    @inline(__always)
    func offset(_ t: Int, _ p: Problem) -> Int { (batch * p.length + t) * 2 * p.states + lane }

    /// Where this item's lanes start in a [B, 2P] buffer (a carry) or, with `chunk`, in a
    /// [chunks, B, 2P] buffer.
    @inline(__always)
    func rowOffset(_ p: Problem, chunk c: Int = 0) -> Int { (c * p.batch + batch) * 2 * p.states + lane }

    /// The reset flag of step `t`.
    @inline(__always)
    func isFirst(_ flags: UnsafePointer<Float>, _ t: Int, _ p: Problem) -> Bool { flags[batch * p.length + t] != 0 }
  }

  /// The real and imaginary lanes of a complex vector at `o` (imaginary parts at `o + P`).
  @inline(__always)
  static func load(_ ptr: UnsafePointer<Float>, _ o: Int, _ item: Item, _ p: Problem) -> (Float8, Float8) {
    (load8(ptr, o, item.width), load8(ptr, o + p.states, item.width))
  }

  @inline(__always)
  static func store(
    _ re: Float8, _ im: Float8, _ ptr: UnsafeMutablePointer<Float>, _ o: Int, _ item: Item, _ p: Problem
  ) {
    store8(re, ptr, o, item.width)
    store8(im, ptr, o + p.states, item.width)
  }

  /// Forward pass: fills `x` [B, T, 2P] from `bu` [B, T, 2P].
  public static func forward(
    bu: UnsafePointer<Float>, a: UnsafePointer<Float>, xInit: UnsafePointer<Float>,
    carry: UnsafePointer<Float>?, isFirst: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>,
    problem p: Problem, chunks: Int
  ) {
    let lanes = p.batch * p.groups
    forwardLocal(bu: bu, a: a, xInit: xInit, carry: carry, isFirst: isFirst, x: x, problem: p, chunks: chunks)
    guard chunks > 1 else { return }
    // starts[c, b] = the true x at the step before chunk c (c >= 1).
    var starts = [Float](repeating: 0, count: chunks * p.batch * 2 * p.states)
    starts.withUnsafeMutableBufferPointer { sp in
      let st = sp.baseAddress!
      Parallelism.forEachChunk(count: lanes, grain: 1) { range in
        for index in range {
          forwardChunkStarts(
            Item(index, p, chunks: 1), a: a, isFirst: isFirst, x: x, starts: st, problem: p, chunks: chunks)
        }
      }
      Parallelism.forEachChunk(count: (chunks - 1) * lanes, grain: 1) { range in
        for index in range {
          forwardAddCarry(
            Item(index, p, chunks: chunks, firstChunk: 1), a: a, isFirst: isFirst, x: x, starts: st, problem: p)
        }
      }
    }
  }

  /// Phase 1: every item from its local start (the carry for chunk 0, zero for the others).
  static func forwardLocal(
    bu: UnsafePointer<Float>, a: UnsafePointer<Float>, xInit: UnsafePointer<Float>,
    carry: UnsafePointer<Float>?, isFirst: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>,
    problem p: Problem, chunks: Int
  ) {
    Parallelism.forEachChunk(count: p.batch * p.groups * chunks, grain: 1) { range in
      for index in range {
        let item = Item(index, p, chunks: chunks)
        let (ar, ai) = load(a, item.lane, item, p)
        let (ir, ii) = load(xInit, item.lane, item, p)
        var sr = Float8()
        var si = Float8()
        if item.chunk == 0, let carry { (sr, si) = load(carry, item.rowOffset(p), item, p) }
        for t in item.start..<item.end {
          let o = item.offset(t, p)
          if item.isFirst(isFirst, t, p) {
            sr = ir
            si = ii
          }
          let (br, bi) = load(bu, o, item, p)
          let nr = ar * sr - ai * si + br
          let ni = ar * si + ai * sr + bi
          sr = nr
          si = ni
          store(sr, si, x, o, item, p)
        }
      }
    }
  }

  /// Phase 2: the true state at the end of each chunk, chunk after chunk, for one (sequence,
  /// group) `item` (chunk 0 covering the whole sequence); written to `starts[c]` for c >= 1.
  @inline(__always)
  static func forwardChunkStarts(
    _ item: Item, a: UnsafePointer<Float>, isFirst: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>,
    starts st: UnsafeMutablePointer<Float>, problem p: Problem, chunks: Int
  ) {
    let (ar, ai) = load(a, item.lane, item, p)
    // The end of chunk 0 is exact after phase 1.
    var (er, ei) = load(UnsafePointer(x), item.offset(p.length / chunks - 1, p), item, p)
    for c in 1..<chunks {
      store(er, ei, st, item.rowOffset(p, chunk: c), item, p)
      if c == chunks - 1 { break }
      let t0 = p.length * c / chunks
      let t1 = p.length * (c + 1) / chunks
      // Multiplier of the incoming state over the chunk: a^len, or 0 after a reset.
      let reset = (t0..<t1).contains { item.isFirst(isFirst, $0, p) }
      let (lr, li) = load(UnsafePointer(x), item.offset(t1 - 1, p), item, p)
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

  /// Phase 3: adds the incoming state's contribution to an item of chunk >= 1, until the
  /// chunk's first reset.
  @inline(__always)
  static func forwardAddCarry(
    _ item: Item, a: UnsafePointer<Float>, isFirst: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>,
    starts st: UnsafeMutablePointer<Float>, problem p: Problem
  ) {
    let (ar, ai) = load(a, item.lane, item, p)
    let (zr, zi) = load(UnsafePointer(st), item.rowOffset(p, chunk: item.chunk), item, p)
    var mr = ar
    var mi = ai
    for t in item.start..<item.end {
      if item.isFirst(isFirst, t, p) { break }
      let o = item.offset(t, p)
      let (xr, xi) = load(UnsafePointer(x), o, item, p)
      store(xr + mr * zr - mi * zi, xi + mr * zi + mi * zr, x, o, item, p)
      let nr = mr * ar - mi * ai
      let ni = mr * ai + mi * ar
      mr = nr
      mi = ni
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
    let lanes = p.batch * p.groups
    let items = lanes * chunks
    // Phase 1: the local reverse recurrence of every item, from zero at the chunk end.
    Parallelism.forEachChunk(count: items, grain: 1) { range in
      for index in range {
        backwardLocal(Item(index, p, chunks: chunks), gx: gx, a: a, isFirst: isFirst, gbu: gbu, problem: p)
      }
    }
    if chunks > 1 {
      var incoming = [Float](repeating: 0, count: chunks * p.batch * 2 * p.states)
      incoming.withUnsafeMutableBufferPointer { ip in
        let inc = ip.baseAddress!
        Parallelism.forEachChunk(count: lanes, grain: 1) { range in
          for index in range {
            backwardChunkInputs(
              Item(index, p, chunks: 1), a: a, isFirst: isFirst, gbu: gbu, incoming: inc, problem: p, chunks: chunks)
          }
        }
        Parallelism.forEachChunk(count: (chunks - 1) * lanes, grain: 1) { range in
          for index in range {
            backwardAddIncoming(
              Item(index, p, chunks: chunks), a: a, isFirst: isFirst, gbu: gbu, incoming: inc, problem: p)
          }
        }
      }
    }
    // Phase 4: parameter gradients from the true G_t, per item partial sums.
    var partial = [Float](repeating: 0, count: items * 32)  // ga (16) + gxInit (16) per item
    let gc: UnsafeMutablePointer<Float>? = carry == nil ? nil : .allocate(capacity: p.batch * 2 * p.states)
    gc?.initialize(repeating: 0, count: p.batch * 2 * p.states)
    defer { gc?.deallocate() }
    partial.withUnsafeMutableBufferPointer { pp in
      let part = pp.baseAddress!
      Parallelism.forEachChunk(count: items, grain: 1) { range in
        for index in range {
          backwardParameters(
            Item(index, p, chunks: chunks), x: x, a: a, xInit: xInit, carry: carry, isFirst: isFirst,
            gbu: UnsafePointer(gbu), gcarry: gc, partial: part + index * 32, problem: p)
        }
      }
    }
    // Deterministic reduction in item order.
    let (pn, row) = (p.states, 2 * p.states)
    var ga = [Float](repeating: 0, count: row)
    var gxInit = [Float](repeating: 0, count: row)
    for index in 0..<items {
      let item = Item(index, p, chunks: chunks)
      for k in 0..<item.width {
        ga[item.lane + k] += partial[index * 32 + k]
        ga[pn + item.lane + k] += partial[index * 32 + 8 + k]
        gxInit[item.lane + k] += partial[index * 32 + 16 + k]
        gxInit[pn + item.lane + k] += partial[index * 32 + 24 + k]
      }
    }
    let gcarry = gc.map { Array(UnsafeBufferPointer(start: $0, count: p.batch * row)) }
    return (ga, gxInit, gcarry)
  }

  /// conj(a) for an item's lanes.
  @inline(__always)
  static func conjugate(_ a: UnsafePointer<Float>, _ item: Item, _ p: Problem) -> (Float8, Float8) {
    let (ar, ai) = load(a, item.lane, item, p)
    return (ar, -ai)
  }

  /// Backward phase 1: G_t = dL/dx_t + conj(a) G_{t+1} inside the item's chunk.
  @inline(__always)
  static func backwardLocal(
    _ item: Item, gx: UnsafePointer<Float>, a: UnsafePointer<Float>, isFirst: UnsafePointer<Float>,
    gbu: UnsafeMutablePointer<Float>, problem p: Problem
  ) {
    let (ar, ai) = conjugate(a, item, p)
    var hr = Float8()
    var hi = Float8()
    var t = item.end - 1
    while t >= item.start {
      let o = item.offset(t, p)
      var (gr, gi) = load(gx, o, item, p)
      if t + 1 < item.end && !item.isFirst(isFirst, t + 1, p) {
        gr += ar * hr - ai * hi
        gi += ar * hi + ai * hr
      }
      hr = gr
      hi = gi
      store(gr, gi, gbu, o, item, p)
      t -= 1
    }
  }

  /// Backward phase 2: the gradient flowing into each chunk from the next one, last chunk
  /// first, for one (sequence, group) `item`; written to `incoming[c]`.
  @inline(__always)
  static func backwardChunkInputs(
    _ item: Item, a: UnsafePointer<Float>, isFirst: UnsafePointer<Float>, gbu: UnsafeMutablePointer<Float>,
    incoming inc: UnsafeMutablePointer<Float>, problem p: Problem, chunks: Int
  ) {
    let (ar, ai) = conjugate(a, item, p)
    // The true gradient at the start of the last chunk is its local value.
    var c = chunks - 1
    var (sr, si) = load(UnsafePointer(gbu), item.offset(p.length * c / chunks, p), item, p)
    while c > 0 {
      let prev = c - 1
      let t0 = p.length * prev / chunks
      let t1 = p.length * c / chunks
      // Gin(prev) = conj(a) * trueStart(c), unless the next chunk starts with a reset.
      var gr = Float8()
      var gi = Float8()
      if !item.isFirst(isFirst, t1, p) {
        gr = ar * sr - ai * si
        gi = ar * si + ai * sr
      }
      store(gr, gi, inc, item.rowOffset(p, chunk: prev), item, p)
      // trueStart(prev) = localStart(prev) + M * Gin, M = conj(a)^(len-1) unless a reset lies
      // inside (t0, t1).
      let reset = ((t0 + 1)..<t1).contains { item.isFirst(isFirst, $0, p) }
      (sr, si) = load(UnsafePointer(gbu), item.offset(t0, p), item, p)
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

  /// Backward phase 3: adds M_t * Gin to an item of a chunk before the last, walking back to
  /// its first reset.
  @inline(__always)
  static func backwardAddIncoming(
    _ item: Item, a: UnsafePointer<Float>, isFirst: UnsafePointer<Float>, gbu: UnsafeMutablePointer<Float>,
    incoming inc: UnsafeMutablePointer<Float>, problem p: Problem
  ) {
    let (ar, ai) = conjugate(a, item, p)
    let (zr, zi) = load(UnsafePointer(inc), item.rowOffset(p, chunk: item.chunk), item, p)
    var mr = Float8(repeating: 1)
    var mi = Float8()
    var t = item.end - 1
    while t >= item.start {
      let o = item.offset(t, p)
      let (gr, gi) = load(UnsafePointer(gbu), o, item, p)
      store(gr + mr * zr - mi * zi, gi + mr * zi + mi * zr, gbu, o, item, p)
      if item.isFirst(isFirst, t, p) { break }
      let nr = mr * ar - mi * ai
      let ni = mr * ai + mi * ar
      mr = nr
      mi = ni
      t -= 1
    }
  }

  /// Backward phase 4 for one item: dL/da += conj(prev_t) G_t, dL/dx_init += conj(a) G_t at
  /// resets, and dL/dcarry at t = 0; the sums go to `partial` (ga re/im, gxInit re/im).
  @inline(__always)
  static func backwardParameters(
    _ item: Item, x: UnsafePointer<Float>, a: UnsafePointer<Float>, xInit: UnsafePointer<Float>,
    carry: UnsafePointer<Float>?, isFirst: UnsafePointer<Float>, gbu: UnsafePointer<Float>,
    gcarry gc: UnsafeMutablePointer<Float>?, partial base: UnsafeMutablePointer<Float>, problem p: Problem
  ) {
    let (ar, ai) = conjugate(a, item, p)
    let (ir, ii) = load(xInit, item.lane, item, p)
    var gar = Float8()
    var gai = Float8()
    var gir = Float8()
    var gii = Float8()
    for t in item.start..<item.end {
      let (gr, gi) = load(gbu, item.offset(t, p), item, p)
      var pr: Float8
      var pi: Float8
      if item.isFirst(isFirst, t, p) {
        pr = ir
        pi = ii
        // dL/dx_init += conj(a) G_t
        gir += ar * gr - ai * gi
        gii += ar * gi + ai * gr
      } else if t > 0 {
        (pr, pi) = load(x, item.offset(t - 1, p), item, p)
      } else if let carry {
        (pr, pi) = load(carry, item.rowOffset(p), item, p)
        if let gc { store(ar * gr - ai * gi, ar * gi + ai * gr, gc, item.rowOffset(p), item, p) }
      } else {
        pr = Float8()
        pi = Float8()
      }
      // dL/da += conj(prev) G_t
      gar += pr * gr + pi * gi
      gai += pr * gi - pi * gr
    }
    storeFloat8(gar, base, 0)
    storeFloat8(gai, base, 8)
    storeFloat8(gir, base, 16)
    storeFloat8(gii, base, 24)
  }
}

/// The diagonal complex linear recurrence with resets (see ``ScanKernel``) as one
/// differentiable node with a fused backward pass.
///
/// - Parameters:
///   - inputs: b_t = B_bar u_t, [B, T, 2P] (split complex layout).
///   - lambdaBar: the discrete state matrix diagonal, [2P].
///   - xInit: x_init used at every `isFirst` step, [2P].
///   - state: x before t = 0, used where `isFirst[:, 0]` is 0, [B, 2P] (zeros if nil).
///   - isFirst: reset flags, [B, T] of 0 / 1 (constant).
/// - Returns: x_t for every step, [B, T, 2P].
public func linearRecurrence(
  inputs: Variable, lambdaBar: Variable, xInit: Variable, state: Variable?, isFirst: Tensor
) -> Variable {
  precondition(
    inputs.rank == 3 && inputs.shape[2] % 2 == 0, "linearRecurrence: inputs \(inputs.shape) must be [B, T, 2P]")
  let (bn, tn, row) = (inputs.shape[0], inputs.shape[1], inputs.shape[2])
  let pn = row / 2
  precondition(lambdaBar.shape == [row], "linearRecurrence: lambdaBar \(lambdaBar.shape), expected [\(row)]")
  precondition(xInit.shape == [row], "linearRecurrence: xInit \(xInit.shape), expected [\(row)]")
  precondition(isFirst.shape == [bn, tn], "linearRecurrence: isFirst \(isFirst.shape), expected [\(bn), \(tn)]")
  if let state {
    precondition(state.shape == [bn, row], "linearRecurrence: state \(state.shape), expected [\(bn), \(row)]")
  }
  let problem = ScanKernel.Problem(batch: bn, length: tn, states: pn)
  let chunks = ScanKernel.timeChunks(
    batch: bn, groups: problem.groups, length: tn, threads: Parallelism.threadCount)
  let (uv, av, iv, cv, fv) = (inputs.value, lambdaBar.value, xInit.value, state?.value, isFirst)
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
  var inputsList = [inputs, lambdaBar, xInit]
  if let state { inputsList.append(state) }
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
