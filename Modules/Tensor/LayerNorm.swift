/// The activation fused after a layer norm.
public enum NormActivation: Sendable {
  /// No activation: plain layer norm.
  case identity
  /// SiLU after the norm, as in the Dense block (Linear -> LayerNorm -> SiLU).
  case silu
}

/// Saved statistics of a layer-norm forward pass, needed by its backward pass.
public struct LayerNormStatistics: Sendable {
  /// Per-row mean, shape [rows].
  public let mean: Tensor
  /// Per-row 1 / sqrt(variance + eps), shape [rows].
  public let rstd: Tensor
}

extension Tensor {
  /// Layer norm over the last axis, then an optional scale, offset and activation, in one pass:
  /// `act((x - mean) * rstd * scale + offset)`.
  ///
  /// Statistics are accumulated in `Double` per row; rows are split across threads.
  public static func layerNormForward(
    _ x: Tensor, scale: Tensor?, offset: Tensor?, epsilon: Float,
    activation: NormActivation = .identity
  ) -> (output: Tensor, statistics: LayerNormStatistics) {
    precondition(x.rank >= 1, "layerNorm needs rank >= 1, got \(x.shape)")
    let d = x.shape[x.rank - 1]
    if let scale { precondition(scale.shape == [d], "layerNorm: scale \(scale.shape) vs features \(d)") }
    if let offset {
      precondition(offset.shape == [d], "layerNorm: offset \(offset.shape) vs features \(d)")
    }
    let rows = x.count / Swift.max(d, 1)
    let out = Tensor(uninitializedShape: x.shape)
    let mean = Tensor(uninitializedShape: [rows])
    let rstd = Tensor(uninitializedShape: [rows])
    let xp = UnsafePointer(x.storage.base)
    let yp = out.storage.base
    let mp = mean.storage.base
    let rp = rstd.storage.base
    let gp = scale.map { UnsafePointer($0.storage.base) }
    let bp = offset.map { UnsafePointer($0.storage.base) }
    let fuseSilu = activation == .silu
    Parallelism.forEachChunk(count: rows, grain: Swift.max(1, transcendentalGrain / Swift.max(d, 1))) { range in
      for r in range {
        let row = xp + r * d
        let s = Tensor.sumDouble(row, d)
        let mu = Float(s / Double(d))
        // Second pass for the variance (numerically safer than E[x^2] - mu^2).
        var acc = Float8()
        let vmu = Float8(repeating: mu)
        var i = 0
        while i + 8 <= d {
          let c = loadFloat8(row, i) - vmu
          acc += c * c
          i += 8
        }
        var tail: Float = 0
        while i < d {
          let c = row[i] - mu
          tail += c * c
          i += 1
        }
        let variance = (Double(acc.sum()) + Double(tail)) / Double(d)
        let inv = Float(1 / (variance + Double(epsilon)).squareRoot())
        mp[r] = mu
        rp[r] = inv
        let y = yp + r * d
        let vinv = Float8(repeating: inv)
        i = 0
        while i < d {
          let n = Swift.min(8, d - i)
          var z =
            (n == 8 ? loadFloat8(row, i) : loadPartialFloat8(row, i, n)) * vinv - vmu * vinv
          if let gp { z = z * (n == 8 ? loadFloat8(gp, i) : loadPartialFloat8(gp, i, n)) }
          if let bp { z = z + (n == 8 ? loadFloat8(bp, i) : loadPartialFloat8(bp, i, n)) }
          if fuseSilu { z = z * FastMath.sigmoid(z) }
          if n == 8 { storeFloat8(z, y, i) } else { storePartialFloat8(z, y, i, n) }
          i += 8
        }
      }
    }
    return (out, LayerNormStatistics(mean: mean, rstd: rstd))
  }

  /// The backward pass of ``layerNormForward(_:scale:offset:epsilon:activation:)``.
  ///
  /// With xhat = (x - mean) * rstd and gz the gradient at the norm's output (after undoing the
  /// activation): dx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) where
  /// gxhat = gz * scale; dscale = sum over rows of gz * xhat; doffset = sum over rows of gz.
  public static func layerNormBackward(
    _ gradient: Tensor, input x: Tensor, statistics: LayerNormStatistics, scale: Tensor?,
    offset: Tensor?, activation: NormActivation = .identity, needsInput: Bool = true,
    needsScale: Bool = true, needsOffset: Bool = true
  ) -> (input: Tensor?, scale: Tensor?, offset: Tensor?) {
    let d = x.shape[x.rank - 1]
    let rows = x.count / Swift.max(d, 1)
    precondition(gradient.shape == x.shape, "layerNormBackward: \(gradient.shape) vs \(x.shape)")
    let dx: Tensor? = needsInput ? Tensor(uninitializedShape: x.shape) : nil
    let wantScale = needsScale && scale != nil
    let wantOffset = needsOffset && offset != nil
    let chunks = Parallelism.chunkCount(
      count: rows, grain: Swift.max(1, transcendentalGrain / Swift.max(d, 1)))
    // Per-chunk partial sums of dscale / doffset, added in chunk order (deterministic).
    let partial = Tensor.zeros([Swift.max(chunks, 1), 2, d])
    let xp = UnsafePointer(x.storage.base)
    let gpIn = UnsafePointer(gradient.storage.base)
    let mp = UnsafePointer(statistics.mean.storage.base)
    let rp = UnsafePointer(statistics.rstd.storage.base)
    let sp = scale.map { UnsafePointer($0.storage.base) }
    let op = offset.map { UnsafePointer($0.storage.base) }
    let dxp = dx?.storage.base
    let pp = partial.storage.base
    let fuseSilu = activation == .silu
    Parallelism.forEach(iterations: chunks) { c in
      let lo = rows * c / chunks
      let hi = rows * (c + 1) / chunks
      let dsAcc = pp + c * 2 * d
      let doAcc = dsAcc + d
      withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * Swift.max(d, 1)) { buf in
        let xhat = buf.baseAddress!
        let gz = xhat + d
        for r in lo..<hi {
          let row = xp + r * d
          let grow = gpIn + r * d
          let vmu = Float8(repeating: mp[r])
          let inv = rp[r]
          let vinv = Float8(repeating: inv)
          // Pass 1: xhat, the gradient at the norm's output (through SiLU when fused), and the
          // scale / offset gradient sums.
          var i = 0
          while i < d {
            let n = Swift.min(8, d - i)
            let xh = (load8(row, i, n) - vmu) * vinv
            store8(xh, xhat, i, n)
            var g = load8(grow, i, n)
            if fuseSilu {
              var z = xh
              if let sp { z = z * load8(sp, i, n) }
              if let op { z = z + load8(op, i, n) }
              let s = FastMath.sigmoid(z)
              g = g * s * (1 + z * (1 - s))
            }
            if wantScale { store8(load8(dsAcc, i, n) + g * xh, dsAcc, i, n) }
            if wantOffset { store8(load8(doAcc, i, n) + g, doAcc, i, n) }
            if let sp { g = g * load8(sp, i, n) }
            store8(g, gz, i, n)
            i += 8
          }
          guard let dxp else { continue }
          // Pass 2: the row means of g and g * xhat.
          var sumG = Float8()
          var sumGX = Float8()
          i = 0
          while i < d {
            let n = Swift.min(8, d - i)
            let g = load8(gz, i, n)
            sumG += g
            sumGX += g * load8(xhat, i, n)
            i += 8
          }
          let meanG = Float8(repeating: sumG.sum() / Float(d))
          let meanGX = Float8(repeating: sumGX.sum() / Float(d))
          // Pass 3: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
          let out = dxp + r * d
          i = 0
          while i < d {
            let n = Swift.min(8, d - i)
            store8(vinv * (load8(gz, i, n) - meanG - load8(xhat, i, n) * meanGX), out, i, n)
            i += 8
          }
        }
      }
    }
    var dScale: Tensor? = nil
    var dOffset: Tensor? = nil
    if wantScale || wantOffset {
      let total = partial.sum(axes: [0])  // [2, d]
      if wantScale { dScale = total.slice(at: 0) }
      if wantOffset { dOffset = total.slice(at: 1) }
    }
    return (dx, dScale, dOffset)
  }
}
