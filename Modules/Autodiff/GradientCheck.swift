/// The outcome of ``checkGradients(of:at:epsilon:relativeTolerance:absoluteTolerance:samplesPerInput:seed:)``.
public struct GradientCheckReport: CustomStringConvertible, Sendable {
  /// One compared derivative.
  public struct Entry: Sendable {
    /// Which input; `coordinate` is a flat index, or -1 for the random-direction check.
    public let input: Int
    public let coordinate: Int
    public let analytic: Double
    public let numeric: Double
    /// |analytic - numeric| / (atol + rtol * max(|analytic|, |numeric|)); <= 1 passes.
    public let score: Double

    public init(input: Int, coordinate: Int, analytic: Double, numeric: Double, score: Double) {
      self.input = input
      self.coordinate = coordinate
      self.analytic = analytic
      self.numeric = numeric
      self.score = score
    }
  }

  /// Every comparison made.
  public let entries: [Entry]

  public init(entries: [Entry]) { self.entries = entries }

  /// Whether every comparison is within tolerance.
  public var passed: Bool { entries.allSatisfy { $0.score <= 1 } }

  /// The comparison with the largest score.
  public var worst: Entry? { entries.max { $0.score < $1.score } }

  public var description: String {
    guard let w = worst else { return "GradientCheck: no comparisons" }
    let which = w.coordinate < 0 ? "random direction" : "coordinate \(w.coordinate)"
    return
      "GradientCheck \(passed ? "passed" : "FAILED"): \(entries.count) comparisons; worst at input \(w.input) \(which): analytic \(w.analytic), numeric \(w.numeric) (score \(w.score))"
  }
}

/// Compares reverse-mode gradients of `f` with central finite differences.
///
/// The output is projected on a fixed random direction r (so `f` may return any shape) and
/// L(x) = sum(f(x) * r) is accumulated in `Double`. For each input, `samplesPerInput` random
/// coordinates (all of them when fewer) and one random unit direction are checked:
/// `|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)`.
///
/// Float32 limits the accuracy: epsilon around 1e-2 to 1e-3 on inputs of order 1 works; far
/// smaller values drown in rounding error (and the check fails, as it should).
///
/// ```swift
/// let report = checkGradients(of: { v in tanh(v[0] * v[1]) }, at: [a, b])
/// #expect(report.passed, "\(report)")
/// ```
public func checkGradients(
  of f: ([Variable]) -> Variable, at inputs: [Tensor], epsilon: Float = 1e-2,
  relativeTolerance: Double = 1e-2, absoluteTolerance: Double = 1e-3,
  samplesPerInput: Int = 24, seed: UInt64 = 0
) -> GradientCheckReport {
  var rng = SeededGenerator(seed: seed, stream: StreamTag.gradientCheck)
  let y0 = withoutGradient { f(inputs.map { Variable($0) }).value }
  let r = Tensor.normal(y0.shape, using: &rng)
  let rv = r.scalars

  func loss(_ xs: [Tensor]) -> Double {
    let y = withoutGradient { f(xs.map { Variable($0) }).value }
    precondition(y.shape == y0.shape, "checkGradients: f changed its output shape")
    var s = 0.0
    y.withUnsafeBufferPointer { p in
      for i in 0..<p.count { s += Double(p[i]) * Double(rv[i]) }
    }
    return s
  }

  let (_, grads) = valueWithGradient(at: inputs, seed: r) { f($0) }
  var entries: [GradientCheckReport.Entry] = []
  func score(_ a: Double, _ n: Double) -> Double {
    abs(a - n) / (absoluteTolerance + relativeTolerance * max(abs(a), abs(n)))
  }
  let h = Double(epsilon)
  for (k, x) in inputs.enumerated() {
    let g = grads[k].scalars
    var coords = Array(0..<x.count)
    if coords.count > samplesPerInput {
      rng.shuffle(&coords)
      coords = Array(coords.prefix(samplesPerInput))
    }
    for c in coords {
      var plus = inputs
      var minus = inputs
      plus[k].withUnsafeMutableBufferPointer { $0[c] += epsilon }
      minus[k].withUnsafeMutableBufferPointer { $0[c] -= epsilon }
      // Use the step actually taken after rounding to float.
      let step = Double(plus[k].scalars[c]) - Double(minus[k].scalars[c])
      let numeric = step == 0 ? 0 : (loss(plus) - loss(minus)) / step
      entries.append(
        .init(input: k, coordinate: c, analytic: Double(g[c]), numeric: numeric, score: score(Double(g[c]), numeric)))
    }
    // Random unit direction: checks every coordinate at once with a step of size epsilon.
    if x.count > 0 {
      let raw = Tensor.normal(x.shape, using: &rng)
      let d = raw / Float(max(raw.sumOfSquares().squareRoot(), 1e-12))
      var plus = inputs
      var minus = inputs
      plus[k] = x + d * epsilon
      minus[k] = x - d * epsilon
      let numeric = (loss(plus) - loss(minus)) / (2 * h)
      let analytic = zip(g, d.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
      entries.append(
        .init(input: k, coordinate: -1, analytic: analytic, numeric: numeric, score: score(analytic, numeric)))
    }
  }
  return GradientCheckReport(entries: entries)
}
