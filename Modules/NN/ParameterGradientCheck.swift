/// Compares the reverse-mode gradient of a scalar loss with respect to a module's parameters
/// against central finite differences of the same loss.
///
/// `loss` must be a deterministic function of the parameters (re-seed any sampling inside it).
/// For every parameter, `samplesPerParameter` random coordinates and one random unit direction are
/// checked with the tolerance rule of ``checkGradients(of:at:epsilon:relativeTolerance:absoluteTolerance:samplesPerInput:seed:)``.
///
/// ```swift
/// let report = checkParameterGradients(of: model) { square(model(x) - y).mean() }
/// #expect(report.passed, "\(report)")
/// ```
public func checkParameterGradients(
  of model: Module, epsilon: Float = 1e-2, relativeTolerance: Double = 1e-2,
  absoluteTolerance: Double = 1e-3, samplesPerParameter: Int = 6, seed: UInt64 = 0,
  loss: () -> Variable
) -> (report: GradientCheckReport, names: [String]) {
  var rng = SeededGenerator(seed: seed, stream: StreamTag.parameterGradientCheck)
  let named = model.namedParameters()
  let (_, grads) = valueAndGradient(of: model, loss)
  func evaluate() -> Double { Double(withoutGradient { loss() }.value.scalars[0]) }
  func score(_ a: Double, _ n: Double) -> Double {
    abs(a - n) / (absoluteTolerance + relativeTolerance * max(abs(a), abs(n)))
  }
  var entries: [GradientCheckReport.Entry] = []
  for (k, (_, p)) in named.enumerated() {
    let original = p.value
    let g = grads.tensors[k].scalars
    var coords = Array(0..<original.count)
    if coords.count > samplesPerParameter {
      rng.shuffle(&coords)
      coords = Array(coords.prefix(samplesPerParameter))
    }
    for c in coords {
      var plus = original
      plus.withUnsafeMutableBufferPointer { $0[c] += epsilon }
      var minus = original
      minus.withUnsafeMutableBufferPointer { $0[c] -= epsilon }
      let step = Double(plus.scalars[c]) - Double(minus.scalars[c])
      p.value = plus
      let lp = evaluate()
      p.value = minus
      let lm = evaluate()
      p.value = original
      let numeric = (lp - lm) / step
      entries.append(
        .init(
          input: k, coordinate: c, analytic: Double(g[c]), numeric: numeric,
          score: score(Double(g[c]), numeric)))
    }
    if original.count > 0 {
      let raw = Tensor.normal(original.shape, using: &rng)
      let d = raw / Float(max(raw.sumOfSquares().squareRoot(), 1e-12))
      p.value = original + d * epsilon
      let lp = evaluate()
      p.value = original - d * epsilon
      let lm = evaluate()
      p.value = original
      let numeric = (lp - lm) / (2 * Double(epsilon))
      let analytic = zip(g, d.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
      entries.append(
        .init(input: k, coordinate: -1, analytic: analytic, numeric: numeric, score: score(analytic, numeric)))
    }
  }
  return (GradientCheckReport(entries: entries), named.map { $0.name })
}
