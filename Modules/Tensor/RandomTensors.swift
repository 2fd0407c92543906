@_exported import Random

extension Tensor {
  /// Uniform samples in [low, high).
  public static func uniform(
    _ shape: [Int], low: Float = 0, high: Float = 1, using rng: inout SeededGenerator
  ) -> Tensor {
    Tensor(shape: shape) { p in
      let w = high - low
      for i in 0..<p.count { p[i] = low + w * rng.nextFloat() }
    }
  }

  /// Normal samples with the given mean and standard deviation.
  public static func normal(
    _ shape: [Int], mean: Float = 0, std: Float = 1, using rng: inout SeededGenerator
  ) -> Tensor {
    Tensor(shape: shape) { p in
      for i in 0..<p.count { p[i] = mean + std * rng.nextNormal() }
    }
  }

  /// Normal samples conditioned on lying in [mean + low*std, mean + high*std] (rejection).
  ///
  /// The default bounds are [-2, 2] standard deviations, as the DreamerV3 initialiser uses.
  public static func truncatedNormal(
    _ shape: [Int], mean: Float = 0, std: Float = 1, low: Float = -2, high: Float = 2,
    using rng: inout SeededGenerator
  ) -> Tensor {
    precondition(low < high, "truncatedNormal: low \(low) must be below high \(high)")
    return Tensor(shape: shape) { p in
      for i in 0..<p.count {
        var z = rng.nextNormal()
        while z < low || z > high { z = rng.nextNormal() }
        p[i] = mean + std * z
      }
    }
  }

  /// Bernoulli samples: 1 with probability `p`, else 0.
  public static func bernoulli(
    _ shape: [Int], probability: Float, using rng: inout SeededGenerator
  ) -> Tensor {
    Tensor(shape: shape) { out in
      for i in 0..<out.count { out[i] = rng.nextFloat() < probability ? 1 : 0 }
    }
  }

  /// Standard normal samples of `shape`, whose first axis holds batch rows: when `rng` draws
  /// for a shard of a batch (``SeededGenerator/shard``), drawn for every row of the whole batch
  /// and this shard's rows kept; else ``normal(_:mean:std:using:)``.
  public static func normalRows(_ shape: [Int], using rng: inout SeededGenerator) -> Tensor {
    guard let shard = rng.shard else { return normal(shape, using: &rng) }
    precondition(shape.first == shard.count, "normalRows: \(shape) rows for a shard of \(shard.count)")
    let whole = normal([shard.total] + shape.dropFirst(), using: &rng)
    return whole.slice(axis: 0, shard.offset..<(shard.offset + shard.count))
  }

  /// One categorical sample per row of a [..., K] tensor of probabilities (rows need not be
  /// normalised exactly); returns the chosen class index of each row. Each row takes one
  /// uniform draw, in row order. Axis `batchAxis` holds batch rows: when `rng` draws for a
  /// shard of a batch (``SeededGenerator/shard``), the draws are made for every row of the
  /// whole batch, as one process holding it would make them, and this shard's are used.
  public func sampleCategorical(using rng: inout SeededGenerator, batchAxis: Int = 0) -> [Int] {
    precondition(rank >= 1, "sampleCategorical needs rank >= 1, shape is \(shape)")
    let k = shape[rank - 1]
    let rows = count / Swift.max(k, 1)
    // Sharded: this shard's draws, taken from the whole batch's in one pass first. Else drawn
    // row by row below, with nothing allocated.
    var uniforms = [Float]()
    if let shard = rng.shard {
      uniforms.reserveCapacity(rows)
      precondition(
        batchAxis < rank - 1 && shape[batchAxis] == shard.count,
        "sampleCategorical: axis \(batchAxis) of \(shape) is not a shard of \(shard.count) rows")
      let outer = shape[..<batchAxis].reduce(1, *)
      let inner = shape[(batchAxis + 1)..<(rank - 1)].reduce(1, *)
      for _ in 0..<outer {
        for _ in 0..<(shard.offset * inner) { _ = rng.next() }  // one draw per row, as nextFloat
        for _ in 0..<(shard.count * inner) { uniforms.append(rng.nextFloat()) }
        for _ in 0..<(shard.after * inner) { _ = rng.next() }
      }
    }
    let sharded = rng.shard != nil
    var result = [Int](repeating: 0, count: rows)
    withUnsafeBufferPointer { p in
      for r in 0..<rows {
        let row = UnsafeBufferPointer(rebasing: p[(r * k)..<(r * k + k)])
        var total: Float = 0
        for v in row { total += v }
        let target = (sharded ? uniforms[r] : rng.nextFloat()) * total
        var acc: Float = 0
        var chosen = k - 1
        for j in 0..<k {
          acc += row[j]
          if target < acc {
            chosen = j
            break
          }
        }
        // Never return a zero-probability class because of rounding at the top end.
        while chosen > 0 && row[chosen] <= 0 { chosen -= 1 }
        result[r] = chosen
      }
    }
    return result
  }
}
