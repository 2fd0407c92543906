/// The ones of a matrix whose entries are all 0 or 1, row by row (compressed sparse rows).
///
/// A world model's sampled latent is one-hot in every group (32 ones among 1,024 entries at the
/// DreamerV3 sizes), and so are discrete actions. A product of such a matrix with a weight
/// matrix is a sum of weight rows: ``addRows(of:into:width:)`` does it in
/// `ones x width` additions instead of `rows x columns x width` multiply-adds.
public struct BinaryRows: Sendable {
  /// Rows and columns of the matrix.
  public let rows: Int
  public let columns: Int
  /// The ones of row r are `indices[offsets[r]..<offsets[r + 1]]`, increasing.
  public let offsets: [Int32]
  public let indices: [Int32]

  /// The ones of `x` read as a [rows, columns] matrix (the last axis is the columns), or nil when
  /// some entry is neither 0 nor 1, or when more than `maxDensity` of the entries are ones (a
  /// dense product is then as fast).
  public init?(_ x: Tensor, maxDensity: Double = 0.25) {
    precondition(x.rank >= 1, "BinaryRows needs rank >= 1, got \(x.shape)")
    let n = x.shape[x.rank - 1]
    let m = n == 0 ? 0 : x.count / n
    let limit = Int(maxDensity * Double(x.count))
    var offsets = [Int32](repeating: 0, count: m + 1)
    var indices: [Int32] = []
    indices.reserveCapacity(Swift.min(limit, 1 << 20))
    let p = UnsafePointer(x.storage.base)
    let zero = Float8()
    for r in 0..<m {
      let row = p + r * n
      var c = 0
      // Eight at a time: most groups of eight in a one-hot row are all zero.
      while c + 8 <= n {
        let v = loadFloat8(row, c)
        if v != zero {
          for k in 0..<8 where v[k] != 0 {
            guard v[k] == 1, indices.count < limit else { return nil }
            indices.append(Int32(c + k))
          }
        }
        c += 8
      }
      while c < n {
        let v = row[c]
        if v != 0 {
          guard v == 1, indices.count < limit else { return nil }
          indices.append(Int32(c))
        }
        c += 1
      }
      offsets[r + 1] = Int32(indices.count)
    }
    rows = m
    columns = n
    self.offsets = offsets
    self.indices = indices
  }

  /// `y[r, :] += sum over the ones (r, c) of w[c, :]` for a row-major `w` [columns, width] and
  /// `y` [rows, width]. Rows are split across threads; each row's sum runs in column order, so
  /// the result does not depend on the thread count. The width is walked in stripes of 32
  /// columns, summed in registers over a row's ones and stored once, so the stripe of `w` the
  /// rows read stays in cache (a 1,024 x 512 weight is 2 MB, a stripe 128 kB).
  public func addRows(of w: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, width: Int) {
    offsets.withUnsafeBufferPointer { op in
      indices.withUnsafeBufferPointer { ip in
        let (o, ix) = (op.baseAddress!, ip.baseAddress)
        Parallelism.forEachChunk(count: rows, grain: Swift.max(1, 16_384 / Swift.max(width, 1))) { range in
          var lo = 0
          while lo < width {
            let n = Swift.min(32, width - lo)
            for r in range {
              let out = y + r * width + lo
              let ones = Int(o[r])..<Int(o[r + 1])
              if n == 32 {
                // 32 columns summed in registers over the row's ones, then stored once.
                var a0 = loadFloat8(UnsafePointer(out), 0)
                var a1 = loadFloat8(UnsafePointer(out), 8)
                var a2 = loadFloat8(UnsafePointer(out), 16)
                var a3 = loadFloat8(UnsafePointer(out), 24)
                for k in ones {
                  let src = w + Int(ix![k]) * width + lo
                  a0 += loadFloat8(src, 0)
                  a1 += loadFloat8(src, 8)
                  a2 += loadFloat8(src, 16)
                  a3 += loadFloat8(src, 24)
                }
                storeFloat8(a0, out, 0)
                storeFloat8(a1, out, 8)
                storeFloat8(a2, out, 16)
                storeFloat8(a3, out, 24)
              } else {
                for k in ones { Self.add(w + Int(ix![k]) * width + lo, into: out, n) }
              }
            }
            lo += 32
          }
        }
      }
    }
  }

  /// `dw[c, :] += sum over the ones (r, c) of g[r, :]`, the weight gradient of ``addRows(of:into:width:)``
  /// for `g` [rows, width] and `dw` [columns, width]. Columns of the width are split across
  /// threads; every entry sums its rows in increasing order whatever the thread count.
  public func scatterRows(of g: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>, width: Int) {
    offsets.withUnsafeBufferPointer { op in
      indices.withUnsafeBufferPointer { ip in
        let (o, ix) = (op.baseAddress!, ip.baseAddress)
        let stripes = (width + 63) / 64
        Parallelism.forEachChunk(count: stripes, grain: 1) { range in
          let lo = range.lowerBound * 64
          let hi = Swift.min(width, range.upperBound * 64)
          for r in 0..<rows {
            let src = g + r * width + lo
            for k in Int(o[r])..<Int(o[r + 1]) {
              Self.add(src, into: dw + Int(ix![k]) * width + lo, hi - lo)
            }
          }
        }
      }
    }
  }

  /// `y[0..<n] += x[0..<n]`, eight lanes at a time.
  @inline(__always)
  static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n {
      storeFloat8(loadFloat8(UnsafePointer(y), i) + loadFloat8(x, i), y, i)
      i += 8
    }
    while i < n {
      y[i] += x[i]
      i += 1
    }
  }
}

extension Tensor {
  /// `concat(parts, axis: -1) x weight` without forming the concatenation: each part [..., f_i]
  /// multiplies its block of rows of `weight` [sum f_i, out]; a part with a `patterns` entry
  /// (its ``BinaryRows``) is a sum of weight rows, the others one sgemm each. Returns
  /// [..., out].
  public static func partsProduct(_ parts: [Tensor], patterns: [BinaryRows?], weight: Tensor) -> Tensor {
    precondition(!parts.isEmpty && parts.count == patterns.count, "partsProduct: \(parts.count) parts")
    precondition(weight.rank == 2, "partsProduct: weight \(weight.shape) must be a matrix")
    let lead = Array(parts[0].shape.dropLast())
    let widths = parts.map { $0.shape.last ?? 0 }
    for p in parts {
      precondition(
        Array(p.shape.dropLast()) == lead, "partsProduct: parts \(parts.map(\.shape)) differ in leading axes")
    }
    precondition(
      widths.reduce(0, +) == weight.shape[0],
      "partsProduct: parts of \(widths) features for a weight \(weight.shape)")
    let out = weight.shape[1]
    let m = lead.reduce(1, *)
    let y = Tensor(uninitializedShape: lead + [out])
    let w = UnsafePointer(weight.storage.base)
    var written = false
    var offset = 0
    for (i, p) in parts.enumerated() {
      if patterns[i] == nil {
        sgemmStrided(
          false, false, m, out, widths[i], 1, p.storage.base, widths[i], w + offset * out, out, written ? 1 : 0,
          y.storage.base, out)
        written = true
      }
      offset += widths[i]
    }
    if !written { y.storage.base.update(repeating: 0, count: m * out) }
    offset = 0
    for (i, pattern) in patterns.enumerated() {
      if let pattern {
        pattern.addRows(of: w + offset * out, into: y.storage.base, width: out)
        MatmulCounter.addReplaced(2 * m * out * widths[i])
      }
      offset += widths[i]
    }
    return y
  }

  /// The gradients of ``partsProduct(_:patterns:weight:)`` for the output gradient `g`
  /// [..., out]: each part's [..., f_i] where `needParts` asks (an sgemm with the weight's block),
  /// and the weight's (an sgemm per dense part, a scatter of rows of `g` per binary one). The
  /// parts have `shapes`; a binary part whose gradient is not needed may be passed empty (its
  /// pattern is all the weight's gradient reads).
  public static func partsProductBackward(
    gradient g: Tensor, parts: [Tensor], shapes: [[Int]], patterns: [BinaryRows?], weight: Tensor,
    needParts: [Bool], needWeight: Bool
  ) -> (parts: [Tensor?], weight: Tensor?) {
    let out = weight.shape[1]
    let m = g.count / Swift.max(out, 1)
    let w = UnsafePointer(weight.storage.base)
    let gp = UnsafePointer(g.storage.base)
    var grads: [Tensor?] = []
    var offset = 0
    for (i, shape) in shapes.enumerated() {
      let f = shape.last ?? 0
      if needParts[i] {
        let d = Tensor(uninitializedShape: shape)
        sgemmStrided(false, true, m, f, out, 1, gp, out, w + offset * out, out, 0, d.storage.base, f)
        grads.append(d)
      } else {
        grads.append(nil)
      }
      offset += f
    }
    guard needWeight else { return (grads, nil) }
    let dw = Tensor(uninitializedShape: weight.shape)
    offset = 0
    for (i, shape) in shapes.enumerated() {
      let f = shape.last ?? 0
      let block = dw.storage.base + offset * out
      if let pattern = patterns[i] {
        block.update(repeating: 0, count: f * out)
        pattern.scatterRows(of: gp, into: block, width: out)
        MatmulCounter.addReplaced(2 * m * out * f)
      } else {
        precondition(parts[i].shape == shape, "partsProductBackward: dense part \(i) was not kept")
        sgemmStrided(true, false, f, out, m, 1, parts[i].storage.base, f, gp, out, 0, block, out)
      }
      offset += f
    }
    return (grads, dw)
  }
}
