#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Independent one-hot categoricals over the last axis ("classes"), with every axis before it a
/// batch or group axis, and a uniform mixture ("unimix") in the probabilities.
///
/// The DreamerV3 latent is 32 groups of 32 classes: pass logits of shape [..., 32, 32] and use
/// `eventAxes: 2` so log-probabilities, entropies and KLs sum over both groups and classes.
///
/// ```swift
/// let post = OneHotCategorical(logits: logits.reshaped([b, t, 32, 32]), eventAxes: 2)
/// let z = post.sample(using: &rng)          // straight-through one-hot, [b, t, 32, 32]
/// let kl = OneHotCategorical.kl(post, prior) // [b, t]
/// ```
public struct OneHotCategorical {
  /// When true (in this task), ``sample(using:)``, ``sampleTimeMajor(using:)`` and ``mode`` return
  /// the probabilities themselves instead of one-hot vectors. The gradient path is the same as the
  /// straight-through estimator's (identity into ``probs``), but the value is smooth, so a loss
  /// built on samples becomes differentiable and finite differences can check its gradient.
  /// For gradient checking only; no random numbers are drawn.
  @TaskLocal public static var relaxedSampling = false

  /// Runs `body` with ``relaxedSampling`` on.
  public static func withRelaxedSampling<R>(_ body: () throws -> R) rethrows -> R {
    try $relaxedSampling.withValue(true) { try body() }
  }

  /// The raw logits.
  public let logits: Variable
  /// Probabilities after mixing in `unimix` of the uniform distribution.
  public let probs: Variable
  /// The uniform weight mixed in.
  public let unimix: Float
  /// How many trailing axes form one event (1 = classes only, 2 = groups and classes).
  public let eventAxes: Int
  final class Cache { var logProbs: Variable? }
  let cache = Cache()

  public init(logits: Variable, unimix: Float = 0.01, eventAxes: Int = 1) {
    precondition(logits.rank >= eventAxes && eventAxes >= 1, "OneHotCategorical: logits \(logits.shape)")
    precondition(unimix >= 0 && unimix < 1, "OneHotCategorical: unimix \(unimix) must be in [0, 1)")
    self.logits = logits
    self.unimix = unimix
    self.eventAxes = eventAxes
    let k = Float(logits.shape[logits.rank - 1])
    probs = unimix > 0 ? logits.softmax(axis: -1) * (1 - unimix) + unimix / k : logits.softmax(axis: -1)
  }

  init(logits: Variable, probs: Variable, logProbs: Variable?, unimix: Float, eventAxes: Int) {
    self.logits = logits
    self.probs = probs
    self.unimix = unimix
    self.eventAxes = eventAxes
    cache.logProbs = logProbs
  }

  /// log of ``probs``, computed on first use.
  public var logProbs: Variable {
    if let v = cache.logProbs { return v }
    let v = unimix > 0 ? log(probs) : logits.logSoftmax(axis: -1)
    cache.logProbs = v
    return v
  }

  /// The number of classes.
  public var classes: Int { logits.shape[logits.rank - 1] }

  var eventReduceAxes: [Int] { Array((logits.rank - eventAxes)..<logits.rank) }

  /// A one-hot sample per categorical; gradients pass straight through to ``probs``
  /// (sample = onehot + probs - sg(probs), with the forward value exactly one-hot).
  public func sample(using rng: inout SeededGenerator) -> Variable {
    if OneHotCategorical.relaxedSampling { return probs }
    let idx = probs.value.sampleCategorical(using: &rng)
    let onehot = Tensor.oneHot(idx, depth: classes).reshaped(probs.shape)
    return straightThrough(onehot)
  }

  /// The most likely class of each categorical, one-hot, with straight-through gradients.
  public var mode: Variable {
    if OneHotCategorical.relaxedSampling { return probs }
    let idx = probs.value.argmax(axis: -1).scalars.map { Int($0) }
    return straightThrough(Tensor.oneHot(idx, depth: classes).reshaped(probs.shape))
  }

  /// `onehot` (same shape as ``probs``) as a variable whose gradient passes straight through to
  /// the probabilities: the forward value is exactly `onehot`.
  public func straightThrough(_ onehot: Tensor) -> Variable {
    precondition(onehot.shape == probs.shape, "straightThrough: \(onehot.shape) vs \(probs.shape)")
    return customVJP(inputs: [probs], outputs: [onehot]) { g in [g[0]] }[0]
  }

  /// A sample drawn in time-major order from logits shaped [B, T, ...event]: rows are visited
  /// t = 0 for every b, then t = 1, ..., so a sequence sampled at once consumes the random
  /// stream exactly as T single-step samples would.
  public func sampleTimeMajor(using rng: inout SeededGenerator) -> Variable {
    precondition(probs.rank >= 3, "sampleTimeMajor needs [B, T, ...] probabilities, got \(probs.shape)")
    if OneHotCategorical.relaxedSampling { return probs }
    var perm = Array(0..<probs.rank)
    perm.swapAt(0, 1)
    let tm = probs.value.permuted(perm)
    let idx = tm.sampleCategorical(using: &rng, batchAxis: 1)
    let onehot = Tensor.oneHot(idx, depth: classes).reshaped(tm.shape).permuted(perm)
    return straightThrough(onehot)
  }

  /// log p(value) for one-hot `value`, summed over the event axes.
  public func logProb(_ value: Variable) -> Variable {
    (value * logProbs).sum(axes: eventReduceAxes)
  }

  /// Entropy, summed over the event axes.
  public func entropy() -> Variable {
    -(probs * logProbs).sum(axes: eventReduceAxes)
  }

  /// KL(p || q), summed over the event axes.
  public static func kl(_ p: OneHotCategorical, _ q: OneHotCategorical) -> Variable {
    precondition(p.logits.shape == q.logits.shape, "kl: shapes \(p.logits.shape) and \(q.logits.shape)")
    return (p.probs * (p.logProbs - q.logProbs)).sum(axes: p.eventReduceAxes)
  }

  /// The same distribution with gradients stopped (reuses the computed values).
  public var detached: OneHotCategorical {
    OneHotCategorical(
      logits: logits.detached, probs: probs.detached, logProbs: logProbs.detached, unimix: unimix,
      eventAxes: eventAxes)
  }
}

/// A categorical over fixed bins in symlog space, trained on two-hot targets: the DreamerV3
/// reward and value head.
///
/// Bins are `linspace(low, high, count)` (default -20...20, 255 bins) in symlog space. The
/// prediction is `symexp(sum(softmax(logits) * bins))`; the log-probability of a target y is
/// `sum(twohot(symlog(y)) * log_softmax(logits))`.
public struct TwoHotSymlog {
  public let logits: Variable
  public let bins: Tensor

  /// DreamerV3's bin count and range.
  public static let defaultBinCount = 255
  public static let defaultRange: ClosedRange<Float> = -20...20

  /// `count` bins evenly over ``defaultRange``.
  public static func bins(count: Int) -> Tensor {
    Tensor.linspace(defaultRange.lowerBound, defaultRange.upperBound, count: count)
  }

  /// The DreamerV3 bins: 255 points from -20 to 20.
  public static let defaultBins = bins(count: defaultBinCount)

  public init(logits: Variable, bins: Tensor = TwoHotSymlog.defaultBins) {
    precondition(
      logits.shape.last == bins.count,
      "TwoHotSymlog: logits \(logits.shape) need \(bins.count) entries on the last axis")
    self.logits = logits
    self.bins = bins
  }

  /// The expected value in symlog space, [...].
  public var symlogMean: Variable { (logits.softmax(axis: -1) * bins).sum(axes: [-1]) }

  /// The prediction symexp(E[bin]), [...].
  public var mean: Variable { symexp(symlogMean) }

  /// ``mean``'s value, recording nothing (the same numbers).
  public var meanValue: Tensor { symexp((logits.value.softmax(axis: -1) * bins).sum(axes: [-1])) }

  /// log p(target) under the two-hot encoding of symlog(target), [...].
  public func logProb(_ target: Tensor) -> Variable { logProb([(target, 1)]) }

  /// `sum_i scale_i log p(target_i)` over several targets (the critic's loss reads the return and
  /// the slow critic's mean), [...], as one operation: each target touches the two bins around
  /// it, so the forward pass keeps per row only those bins and their weights (the log-softmax
  /// it reads is not kept), and the backward pass recomputes the softmax:
  /// d/dlogits = g (w - softmax sum(w)), with w the scaled two-hot weights.
  public func logProb(_ targets: [(target: Tensor, scale: Float)]) -> Variable {
    precondition(!targets.isEmpty, "TwoHotSymlog.logProb needs at least one target")
    let k = bins.count
    let x = logits.value
    let rows = x.count / k
    let lead = Array(x.shape.dropLast())
    let per = 2 * targets.count
    var index = [Int32](repeating: 0, count: rows * per)
    var weight = [Float](repeating: 0, count: rows * per)
    for (t, (target, scale)) in targets.enumerated() {
      precondition(target.count == rows, "TwoHotSymlog.logProb: target \(target.shape) for logits \(x.shape)")
      TwoHotSymlog.encodeSparse(symlog(target), bins: bins) { r, lo, wLo, hi, wHi in
        index[r * per + 2 * t] = Int32(lo)
        weight[r * per + 2 * t] = wLo * scale
        index[r * per + 2 * t + 1] = Int32(hi)
        weight[r * per + 2 * t + 1] = wHi * scale
      }
    }
    let lp = x.logSoftmax(axis: -1)
    var value = Tensor.zeros(lead)
    lp.withUnsafeBufferPointer { l in
      value.withUnsafeMutableBufferPointer { v in
        for r in 0..<rows {
          var acc: Float = 0
          for j in 0..<per { acc += weight[r * per + j] * l[r * k + Int(index[r * per + j])] }
          v[r] = acc
        }
      }
    }
    let (binIndex, binWeight) = (index, weight)
    return customVJP(inputs: [logits], outputs: [value]) { g in
      let p = x.softmax(axis: -1)
      var dx = Tensor(uninitializedShape: x.shape)
      g[0].withUnsafeBufferPointer { gp in
        p.withUnsafeBufferPointer { pp in
          dx.withUnsafeMutableBufferPointer { d in
            binIndex.withUnsafeBufferPointer { ib in
              binWeight.withUnsafeBufferPointer { wb in
                let (g, p, d, ib, wb) = (
                  gp.baseAddress!, pp.baseAddress!, d.baseAddress!, ib.baseAddress!, wb.baseAddress!
                )
                Parallelism.forEachChunk(count: rows, grain: 64) { range in
                  for r in range {
                    var total: Float = 0
                    for j in 0..<per { total += wb[r * per + j] }
                    let a = -g[r] * total
                    for c in 0..<k { d[r * k + c] = p[r * k + c] * a }
                    for j in 0..<per { d[r * k + Int(ib[r * per + j])] += g[r] * wb[r * per + j] }
                  }
                }
              }
            }
          }
        }
      }
      return [dx]
    }[0]
  }

  /// The two bins around each of `values` (already in bin space) and their weights, as
  /// ``encode(_:bins:)`` puts them (`body(row, lo, wLo, hi, wHi)`; a value outside the range
  /// gives its end bin weight 1 and 0 to the other).
  static func encodeSparse(_ values: Tensor, bins: Tensor, _ body: (Int, Int, Float, Int, Float) -> Void) {
    let k = bins.count
    let b = bins.scalars
    for (i, x) in values.scalars.enumerated() {
      if !(x > b[0]) {
        body(i, 0, 1, 0, 0)
        continue
      }
      if !(x < b[k - 1]) {
        body(i, k - 1, 1, k - 1, 0)
        continue
      }
      var lo = 0
      var hi = k - 1
      while hi - lo > 1 {
        let mid = (lo + hi) / 2
        if b[mid] <= x { lo = mid } else { hi = mid }
      }
      let wHi = (x - b[lo]) / (b[hi] - b[lo])
      body(i, lo, 1 - wHi, hi, wHi)
    }
  }

  /// Two-hot weights of `values` (already in bin space) over sorted `bins`: each value splits
  /// its mass between the two neighbouring bins in proportion to closeness; values outside the
  /// range go wholly to the end bin. Output shape: values.shape + [bins.count].
  public static func encode(_ values: Tensor, bins: Tensor) -> Tensor {
    let k = bins.count
    var out = Tensor.zeros(values.shape + [k])
    out.withUnsafeMutableBufferPointer { p in
      encodeSparse(values, bins: bins) { i, lo, wLo, hi, wHi in
        p[i * k + lo] = wLo
        p[i * k + hi] += wHi
      }
    }
    return out
  }
}

/// A Bernoulli distribution from logits (the continue head).
public struct Bernoulli {
  public let logits: Variable
  public init(logits: Variable) { self.logits = logits }

  /// P(x = 1).
  public var mean: Variable { sigmoid(logits) }
  /// 1 where P(x = 1) > 0.5.
  public var mode: Tensor { greater(logits.value, Tensor(0)) }

  /// log p(x) for x in {0, 1} (or soft targets in [0, 1]).
  public func logProb(_ x: Tensor) -> Variable {
    -(softplus(-logits) * x + softplus(logits) * (1 - x))
  }

  /// Entropy in nats.
  public func entropy() -> Variable {
    let p = sigmoid(logits)
    return softplus(-logits) * p + softplus(logits) * (1 - p)
  }

  /// A 0/1 sample.
  public func sample(using rng: inout SeededGenerator) -> Tensor {
    let p = sigmoid(logits.value).scalars
    return Tensor(p.map { rng.nextFloat() < $0 ? 1 : 0 }, shape: logits.shape)
  }
}

/// A "distribution" whose log-probability is minus the squared error summed over the last
/// `eventAxes` axes (the vector decoder's loss).
public struct MSEDistribution {
  public let prediction: Variable
  public let eventAxes: Int
  public init(prediction: Variable, eventAxes: Int = 1) {
    self.prediction = prediction
    self.eventAxes = eventAxes
  }
  public var mode: Variable { prediction }
  public func logProb(_ target: Tensor) -> Variable {
    let axes = Array((prediction.rank - eventAxes)..<prediction.rank)
    return -square(prediction - target).sum(axes: axes)
  }
}

/// Squared error in symlog space: the prediction lives in symlog space, `mode` maps it back.
public struct SymlogDistribution {
  public let prediction: Variable
  public let eventAxes: Int
  public init(prediction: Variable, eventAxes: Int = 1) {
    self.prediction = prediction
    self.eventAxes = eventAxes
  }
  public var mode: Variable { symexp(prediction) }
  public func logProb(_ target: Tensor) -> Variable {
    let axes = Array((prediction.rank - eventAxes)..<prediction.rank)
    return -square(prediction - symlog(target)).sum(axes: axes)
  }
}

/// A diagonal normal with tanh-squashed mean and std bounded to [minStd, maxStd]:
/// mean = tanh(m), std = (maxStd - minStd) * sigmoid(s + 2) + minStd (the continuous policy).
public struct BoundedNormal {
  public let mean: Variable
  public let std: Variable

  /// From raw outputs `m` and `s` of equal shape [..., actions].
  public init(rawMean m: Variable, rawStd s: Variable, minStd: Float = 0.1, maxStd: Float = 1) {
    precondition(m.shape == s.shape, "BoundedNormal: \(m.shape) vs \(s.shape)")
    precondition(0 < minStd && minStd <= maxStd, "BoundedNormal: need 0 < minStd <= maxStd")
    mean = tanh(m)
    std = sigmoid(s + 2) * (maxStd - minStd) + minStd
  }

  public var mode: Variable { mean }

  /// A reparameterised sample mean + std * eps.
  public func sample(using rng: inout SeededGenerator) -> Variable {
    mean + std * Tensor.normalRows(mean.shape, using: &rng)
  }

  /// log density summed over the last axis.
  public func logProb(_ x: Variable) -> Variable {
    let z = (x - mean) / std
    let halfLog2Pi = Float(0.5 * logDouble(2 * Double.pi))
    return (square(z) * -0.5 - log(std) - halfLog2Pi).sum(axes: [-1])
  }

  /// Entropy summed over the last axis.
  public func entropy() -> Variable {
    let c = Float(0.5 * logDouble(2 * Double.pi * M_E))
    return (log(std) + c).sum(axes: [-1])
  }
}

@inline(__always) func logDouble(_ x: Double) -> Double { log(x) }
