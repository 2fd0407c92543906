import Foundation
import Testing

@testable import SSM

/// Complex numbers in Double for the reference computations.
struct C: Equatable {
  var re: Double
  var im: Double
  static func + (a: C, b: C) -> C { C(re: a.re + b.re, im: a.im + b.im) }
  static func * (a: C, b: C) -> C { C(re: a.re * b.re - a.im * b.im, im: a.re * b.im + a.im * b.re) }
  static let zero = C(re: 0, im: 0)
  var magnitude: Double { (re * re + im * im).squareRoot() }
}

/// A random scan problem in the split layout.
struct ScanCase {
  let b: Int, t: Int, p: Int
  var bu: Tensor  // [B, T, 2P]
  var a: Tensor  // [2P]
  var xInit: Tensor  // [2P]
  var carry: Tensor?  // [B, 2P]
  var isFirst: Tensor  // [B, T]

  init(b: Int, t: Int, p: Int, resets: [(Int, Int)], seed: UInt64, carry: Bool = true, zeroInit: Bool = false) {
    self.b = b
    self.t = t
    self.p = p
    var rng = SeededGenerator(seed: seed)
    bu = Tensor.normal([b, t, 2 * p], using: &rng)
    // |a| in [0.5, 0.999]: long memory, stable.
    let mag = Tensor.uniform([p], low: 0.5, high: 0.999, using: &rng).scalars
    let ang = Tensor.uniform([p], low: -3, high: 3, using: &rng).scalars
    a = Tensor(zip(mag, ang).map { $0 * cosf($1) } + zip(mag, ang).map { $0 * sinf($1) })
    xInit = zeroInit ? Tensor.zeros([2 * p]) : Tensor.normal([2 * p], std: 2, using: &rng)
    self.carry = carry ? Tensor.normal([b, 2 * p], using: &rng) : nil
    var f = Tensor.zeros([b, t])
    for (bb, tt) in resets { f[bb, tt] = 1 }
    isFirst = f
  }

  func element(_ v: [Float], _ row: Int, _ k: Int) -> C {
    C(re: Double(v[row * 2 * p + k]), im: Double(v[row * 2 * p + p + k]))
  }

  /// The plain step-by-step recurrence, in Double.
  func naive(flags: [Float]? = nil) -> [C] {
    let u = bu.scalars
    let av = a.scalars
    let iv = xInit.scalars
    let cv = carry?.scalars
    let fl = flags ?? isFirst.scalars
    var out = [C](repeating: .zero, count: b * t * p)
    for bb in 0..<b {
      for k in 0..<p {
        let ak = C(re: Double(av[k]), im: Double(av[p + k]))
        let ik = C(re: Double(iv[k]), im: Double(iv[p + k]))
        var x = cv.map { element($0, bb, k) } ?? .zero
        for tt in 0..<t {
          if fl[bb * t + tt] != 0 { x = ik }
          x = ak * x + element(u, bb * t + tt, k)
          out[(bb * t + tt) * p + k] = x
        }
      }
    }
    return out
  }

  func run() -> Tensor {
    linearRecurrence(
      inputs: Variable(bu), lambdaBar: Variable(a), xInit: Variable(xInit),
      state: carry.map { Variable($0) }, isFirst: isFirst
    ).value
  }

  /// max |ours - reference| / max |reference|.
  func relativeError(_ x: Tensor, _ ref: [C]) -> Double {
    let v = x.scalars
    var worst = 0.0
    var scale = 1e-12
    for i in 0..<(b * t) {
      for k in 0..<p {
        let r = ref[i * p + k]
        scale = max(scale, r.magnitude)
        worst = max(worst, abs(Double(v[i * 2 * p + k]) - r.re), abs(Double(v[i * 2 * p + p + k]) - r.im))
      }
    }
    return worst / scale
  }
}

@Suite struct ScanEqualsRecurrenceTests {
  static let scenarios: [(String, [(Int, Int)])] = [
    ("no resets", []),
    ("several resets", [(0, 5), (0, 37), (1, 0), (1, 90), (2, 64), (2, 65)]),
    ("reset at t = 0 everywhere", [(0, 0), (1, 0), (2, 0)]),
    ("reset at the last step", [(0, 149), (1, 149), (2, 10)]),
    ("two resets in a row", [(0, 20), (0, 21), (1, 99), (1, 100), (2, 3), (2, 4), (2, 5)]),
  ]

  @Test(arguments: [1, 2])
  func matchesTheRecurrenceInEveryScenario(threads: Int) {
    for (name, resets) in Self.scenarios {
      for withCarry in [true, false] {
        let c = ScanCase(b: 3, t: 150, p: 12, resets: resets, seed: 7, carry: withCarry)
        let x = Parallelism.withThreadCount(threads) { c.run() }
        let err = c.relativeError(x, c.naive())
        #expect(err < 1e-5, "\(name), carry \(withCarry), threads \(threads): relative error \(err)")
      }
    }
  }

  @Test func timeChunkedScanMatchesTooWhenBatchTimesStatesIsSmall() {
    // One sequence, 8 states: too few items for two threads, so time chunks are used.
    #expect(ScanKernel.timeChunks(batch: 1, groups: 1, length: 2048, threads: 2) > 1)
    let resets = [(0, 0), (0, 300), (0, 301), (0, 1023), (0, 2047), (0, 1500)]
    let c = ScanCase(b: 1, t: 2048, p: 8, resets: resets, seed: 8)
    let x = Parallelism.withThreadCount(2) { c.run() }
    #expect(c.relativeError(x, c.naive()) < 1e-5)
    let noReset = ScanCase(b: 1, t: 1024, p: 5, resets: [], seed: 9)
    let y = Parallelism.withThreadCount(2) { noReset.run() }
    #expect(noReset.relativeError(y, noReset.naive()) < 1e-5)
  }

  /// The public reference inserts the padding flag before the last element instead of at the
  /// front, so step t sees flag t + 1: the reset lands one step early. Our scan uses the flags as
  /// given.
  @Test func flagsAreNotShiftedByOneStep() {
    let c = ScanCase(b: 1, t: 40, p: 4, resets: [(0, 10), (0, 25)], seed: 10)
    let flags = c.isFirst.scalars
    // dones = insert(dones, -1, 0) on the L + 1 elements whose element 0 is the initial state:
    // element k >= 1 (step k - 1) gets flag k, except the last steps.
    var shifted = flags
    for t in 0..<(c.t - 2) { shifted[t] = flags[t + 1] }
    shifted[c.t - 2] = 0
    shifted[c.t - 1] = flags[c.t - 1]
    let right = c.naive()
    let early = c.naive(flags: shifted)
    let ours = c.run()
    #expect(c.relativeError(ours, right) < 1e-5)
    #expect(c.relativeError(ours, early) > 1e-2, "the shifted flags give a different (wrong) result")
    // In particular the state at t = 9 (just before the reset) still carries the history.
    #expect(ours[0, 9, 0] != early.map { Float($0.re) }[9 * 4 + 0])
  }

  /// Element of the reference's done-flag operator: (A, b, z, d).
  struct ReferenceElement {
    var a: C, b: C, z: C, d: Double
  }

  /// The public reference's operator: on a reset in the right element it keeps A_j and adds
  /// A_j z, which is only right when the right element is a single step.
  static func referenceCombine(_ i: ReferenceElement, _ j: ReferenceElement) -> ReferenceElement {
    let keep = 1 - j.d
    let a = C(re: (j.a * i.a).re * keep + j.a.re * j.d, im: (j.a * i.a).im * keep + j.a.im * j.d)
    let inner = C(re: keep * i.b.re + j.d * j.z.re, im: keep * i.b.im + j.d * j.z.im)
    return ReferenceElement(a: a, b: j.a * inner + j.b, z: j.z, d: min(1, i.d + j.d))
  }

  /// Our element: the affine map (A, b) with the reset folded in (A = 0, b = a x_init + b).
  struct Affine { var a: C, b: C }
  static func combine(_ i: Affine, _ j: Affine) -> Affine { Affine(a: j.a * i.a, b: j.a * i.b + j.b) }

  /// An inclusive tree scan (recursive pairwise combination, as a parallel scan evaluates it).
  static func treeScan<E>(_ xs: [E], _ op: (E, E) -> E) -> [E] {
    if xs.count <= 1 { return xs }
    var pairs: [E] = []
    var i = 0
    while i + 1 < xs.count {
      pairs.append(op(xs[i], xs[i + 1]))
      i += 2
    }
    let scannedPairs = treeScan(pairs, op)
    var out: [E] = []
    for k in 0..<xs.count {
      if k == 0 {
        out.append(xs[0])
      } else if k % 2 == 1 {
        out.append(scannedPairs[k / 2])
      } else {
        out.append(op(scannedPairs[k / 2 - 1], xs[k]))
      }
    }
    return out
  }

  @Test func resetsWithANonZeroInitialStateAreExactUnderAnyEvaluationOrder() {
    let c = ScanCase(b: 1, t: 16, p: 1, resets: [(0, 3), (0, 6), (0, 7), (0, 12)], seed: 11, carry: false)
    let truth = c.naive()
    let a = C(re: Double(c.a.scalars[0]), im: Double(c.a.scalars[1]))
    let z = C(re: Double(c.xInit.scalars[0]), im: Double(c.xInit.scalars[1]))
    let u = c.bu.scalars
    let flags = c.isFirst.scalars
    let bs = (0..<16).map { C(re: Double(u[$0 * 2]), im: Double(u[$0 * 2 + 1])) }
    // Ours: a tree scan over folded affine maps reproduces the recurrence exactly.
    let ours = Self.treeScan(
      (0..<16).map { t in flags[t] != 0 ? Affine(a: .zero, b: a * z + bs[t]) : Affine(a: a, b: bs[t]) },
      Self.combine)
    for t in 0..<16 {
      #expect((ours[t].b.re - truth[t].re).magnitude < 1e-9 && (ours[t].b.im - truth[t].im).magnitude < 1e-9)
    }
    // The reference operator: a sequential fold is right, a tree scan is not (two or more resets,
    // z != 0), because the operator is not associative.
    let elements = (0..<16).map { ReferenceElement(a: a, b: bs[$0], z: z, d: Double(flags[$0])) }
    var sequential: [ReferenceElement] = [elements[0]]
    for t in 1..<16 { sequential.append(Self.referenceCombine(sequential[t - 1], elements[t])) }
    let tree = Self.treeScan(elements, Self.referenceCombine)
    let seqError = (0..<16).map { (sequential[$0].b.re - truth[$0].re).magnitude }.max()!
    let treeError = (0..<16).map { (tree[$0].b.re - truth[$0].re).magnitude }.max()!
    #expect(seqError < 1e-9)
    #expect(treeError > 1e-3, "the reference operator under a tree scan: error \(treeError)")
    // Our fused kernel agrees with the truth.
    #expect(c.relativeError(c.run(), truth) < 1e-5)
  }

  @Test func theCombineOperatorIsAssociative() {
    var rng = SeededGenerator(seed: 12)
    func randomC() -> C { C(re: rng.nextNormalDouble(), im: rng.nextNormalDouble()) }
    let z = randomC()
    for _ in 0..<200 {
      let elems = (0..<3).map { _ -> Affine in
        let a = randomC()
        let b = randomC()
        return rng.nextBool() ? Affine(a: .zero, b: a * z + b) : Affine(a: a, b: b)
      }
      let left = Self.combine(Self.combine(elems[0], elems[1]), elems[2])
      let right = Self.combine(elems[0], Self.combine(elems[1], elems[2]))
      #expect((left.a.re - right.a.re).magnitude < 1e-12 && (left.b.re - right.b.re).magnitude < 1e-12)
      #expect((left.a.im - right.a.im).magnitude < 1e-12 && (left.b.im - right.b.im).magnitude < 1e-12)
    }
  }

  @Test func threadedAndSingleThreadedScansAgree() {
    let resets = (0..<30).map { ($0 % 4, ($0 * 37) % 600) }
    let c = ScanCase(b: 4, t: 600, p: 128, resets: resets, seed: 13)
    let gx = Tensor.normal([4, 600, 256], using: &SSMRNG.shared)
    func both() -> (Tensor, [Tensor]) {
      let (x, g) = valueWithGradient(at: [c.bu, c.a, c.xInit, c.carry!], seed: gx) { v in
        linearRecurrence(inputs: v[0], lambdaBar: v[1], xInit: v[2], state: v[3], isFirst: c.isFirst)
      }
      return (x, g)
    }
    let (x1, g1) = Parallelism.withThreadCount(1) { both() }
    let (x2, g2) = Parallelism.withThreadCount(2) { both() }
    #expect(x1 == x2, "forward is bit-identical (same items, same arithmetic)")
    for (p, q) in zip(g1, g2) {
      #expect(p.isClose(to: q, rtol: 1e-6, atol: 1e-6), "\(p.maxAbsDifference(q))")
    }
    // The time-chunked path against the single-chunk path.
    let small = ScanCase(b: 1, t: 1024, p: 8, resets: [(0, 100), (0, 700)], seed: 14)
    let g = Tensor.normal([1, 1024, 16], using: &SSMRNG.shared)
    func grads() -> [Tensor] {
      valueWithGradient(at: [small.bu, small.a, small.xInit, small.carry!], seed: g) { v in
        linearRecurrence(inputs: v[0], lambdaBar: v[1], xInit: v[2], state: v[3], isFirst: small.isFirst)
      }.gradients
    }
    let one = Parallelism.withThreadCount(1) { grads() }
    let two = Parallelism.withThreadCount(2) { grads() }
    for (p, q) in zip(one, two) {
      let scale = max(1, p.scalars.map { abs($0) }.max()!)
      #expect(p.maxAbsDifference(q) / scale < 1e-5, "chunked vs sequential gradient: \(p.maxAbsDifference(q))")
    }
  }
}

enum SSMRNG {
  nonisolated(unsafe) static var shared = SeededGenerator(seed: 99)
}
