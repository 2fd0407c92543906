enum ReduceOp { case sum, max, min }

extension Tensor {
  /// The sum over `axes` (all axes when empty); reduced axes are kept with extent 1 when
  /// `keepDims` is true.
  public func sum(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    reduce(.sum, axes: axes, keepDims: keepDims)
  }

  /// The mean over `axes` (all axes when empty).
  public func mean(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    let n = reducedCount(axes)
    var s = sum(axes: axes, keepDims: keepDims)
    s *= 1 / Float(Swift.max(n, 1))
    return s
  }

  /// The maximum over `axes` (all axes when empty).
  public func max(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    reduce(.max, axes: axes, keepDims: keepDims)
  }

  /// The minimum over `axes` (all axes when empty).
  public func min(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    reduce(.min, axes: axes, keepDims: keepDims)
  }

  /// The population variance over `axes` (all axes when empty), computed in two passes.
  public func variance(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    let m = mean(axes: axes, keepDims: true)
    return square(self - m).mean(axes: axes, keepDims: keepDims)
  }

  /// log(sum(exp(x))) over `axes`, stable for large values.
  public func logSumExp(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    let m = self.max(axes: axes, keepDims: true)
    let finiteMax = m.map(FiniteOrZeroKernel())
    let s = log(exp(self - finiteMax).sum(axes: axes, keepDims: true)) + finiteMax
    return keepDims ? s : s.reshaped(reducedShape(axes, keepDims: false))
  }

  /// Sum of all elements, accumulated in eight lanes per block and in `Double` across blocks.
  public func sumAll() -> Float {
    Float(Tensor.sumDouble(storage.base, count))
  }

  /// The sum of squared elements, accumulated in eight lanes per block and `Double` across
  /// blocks (for norms of gradients and parameters).
  public func sumOfSquares() -> Double {
    let p = UnsafePointer(storage.base)
    var total = 0.0
    var start = 0
    while start < count {
      let end = Swift.min(count, start + 1024)
      var acc = Float8()
      var i = start
      while i + 8 <= end {
        let v = loadFloat8(p, i)
        acc += v * v
        i += 8
      }
      var tail: Float = 0
      while i < end {
        tail += p[i] * p[i]
        i += 1
      }
      total += Double(acc.sum()) + Double(tail)
      start = end
    }
    return total
  }

  /// The index of the largest element along `axis` (the first one on ties), as floats.
  public func argmax(axis: Int = -1, keepDims: Bool = false) -> Tensor {
    argReduce(axis: axis, keepDims: keepDims, greater: true)
  }

  /// The index of the smallest element along `axis` (the first one on ties), as floats.
  public func argmin(axis: Int = -1, keepDims: Bool = false) -> Tensor {
    argReduce(axis: axis, keepDims: keepDims, greater: false)
  }

  /// The number of elements that `axes` cover.
  public func reducedCount(_ axes: [Int]) -> Int {
    if axes.isEmpty { return count }
    return Set(axes.map { Tensor.normalizeAxis($0, rank: rank) }).reduce(1) { $0 * shape[$1] }
  }

  /// The shape after reducing `axes`.
  public func reducedShape(_ axes: [Int], keepDims: Bool) -> [Int] {
    let set: Set<Int> =
      axes.isEmpty ? Set(0..<rank) : Set(axes.map { Tensor.normalizeAxis($0, rank: rank) })
    var s: [Int] = []
    for (i, d) in shape.enumerated() {
      if set.contains(i) {
        if keepDims { s.append(1) }
      } else {
        s.append(d)
      }
    }
    return s
  }

  // MARK: Implementation

  func reduce(_ op: ReduceOp, axes: [Int], keepDims: Bool) -> Tensor {
    let set: [Int] =
      axes.isEmpty
      ? Array(0..<rank) : Array(Set(axes.map { Tensor.normalizeAxis($0, rank: rank) })).sorted()
    let outShape = reducedShape(axes, keepDims: keepDims)
    if set.isEmpty || rank == 0 { return self.reshaped(outShape) }
    if op != .sum {
      precondition(
        set.allSatisfy { shape[$0] > 0 },
        "Tensor.\(op): cannot reduce an empty axis of shape \(shape)")
    }
    // Reduce one contiguous group of axes at a time, from the innermost group outwards,
    // keeping dims so axis numbers stay valid.
    var groups: [[Int]] = []
    for a in set {
      if let last = groups.last?.last, last + 1 == a {
        groups[groups.count - 1].append(a)
      } else {
        groups.append([a])
      }
    }
    var current = self
    for g in groups.reversed() {
      let outer = current.shape[..<g[0]].reduce(1, *)
      let n = g.reduce(1) { $0 * current.shape[$1] }
      let inner = current.shape[(g.last! + 1)...].reduce(1, *)
      var newShape = current.shape
      for a in g { newShape[a] = 1 }
      current = Tensor.reduce3(current, op: op, outer: outer, n: n, inner: inner, shape: newShape)
    }
    return current.reshaped(outShape)
  }

  /// Reduces the middle axis of a [outer, n, inner] view.
  static func reduce3(
    _ x: Tensor, op: ReduceOp, outer: Int, n: Int, inner: Int, shape: [Int]
  ) -> Tensor {
    let out = Tensor(uninitializedShape: shape)
    let src = UnsafePointer(x.storage.base)
    let dst = out.storage.base
    if inner == 1 {
      // Contiguous rows.
      Parallelism.forEachChunk(count: outer, grain: Swift.max(1, elementwiseGrain / Swift.max(n, 1))) { rows in
        for o in rows {
          let row = src + o * n
          switch op {
          case .sum: dst[o] = Float(sumDouble(row, n))
          case .max: dst[o] = rowMax(row, n)
          case .min: dst[o] = rowMin(row, n)
          }
        }
      }
      return out
    }
    // Strided: accumulate rows of a column block, vectorised along inner. Work items are
    // (outer index, block of columns), so a single outer row still splits across threads.
    let block = 512
    let blocks = (inner + block - 1) / block
    let grainItems = Swift.max(1, elementwiseGrain / Swift.max(n * Swift.min(inner, block), 1))
    Parallelism.forEachChunk(count: outer * blocks, grain: grainItems) { items in
      for item in items {
        let o = item / blocks
        let c0 = (item % blocks) * block
        let width = Swift.min(block, inner - c0)
        let base = src + o * n * inner + c0
        let target = dst + o * inner + c0
        if n == 0 {
          for i in 0..<width { target[i] = 0 }
          continue
        }
        if op == .sum {
          // Blocks of 128 rows are summed into a temporary, then added to the target, so the
          // rounding error grows like n/128 + 128 rather than n.
          target.update(repeating: 0, count: width)
          withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { tmpBuf in
            let tmp = tmpBuf.baseAddress!
            var k0 = 0
            while k0 < n {
              let k1 = Swift.min(n, k0 + 128)
              tmp.update(from: base + k0 * inner, count: width)
              for k in (k0 + 1)..<k1 { addRow(tmp, base + k * inner, width) }
              addRow(target, tmp, width)
              k0 = k1
            }
          }
          continue
        }
        target.update(from: base, count: width)
        for k in 1..<n {
          let row = base + k * inner
          var i = 0
          while i + 8 <= width {
            let a = loadFloat8(target, i)
            let b = loadFloat8(row, i)
            let r: Float8
            switch op {
            case .sum: r = a + b
            case .max: r = a.replacing(with: b, where: b .> a)
            case .min: r = a.replacing(with: b, where: b .< a)
            }
            storeFloat8(r, target, i)
            i += 8
          }
          while i < width {
            switch op {
            case .sum: target[i] += row[i]
            case .max: if row[i] > target[i] { target[i] = row[i] }
            case .min: if row[i] < target[i] { target[i] = row[i] }
            }
            i += 1
          }
        }
      }
    }
    return out
  }

  @inline(__always)
  static func addRow(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n {
      storeFloat8(loadFloat8(dst, i) + loadFloat8(src, i), dst, i)
      i += 8
    }
    while i < n {
      dst[i] += src[i]
      i += 1
    }
  }

  /// Sum of `count` floats: eight float lanes within blocks of 1024, blocks added in `Double`.
  @usableFromInline
  static func sumDouble(_ p: UnsafePointer<Float>, _ count: Int) -> Double {
    var total = 0.0
    var start = 0
    while start < count {
      let end = Swift.min(count, start + 1024)
      var acc = Float8()
      var i = start
      while i + 8 <= end {
        acc += loadFloat8(p, i)
        i += 8
      }
      var tail: Float = 0
      while i < end {
        tail += p[i]
        i += 1
      }
      total += Double(acc.sum()) + Double(tail)
      start = end
    }
    return total
  }

  static func rowMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = -Float.infinity
    var sawNaN = false
    for i in 0..<n {
      if p[i] > m { m = p[i] }
      if p[i].isNaN { sawNaN = true }
    }
    return sawNaN ? .nan : m
  }

  static func rowMin(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = Float.infinity
    var sawNaN = false
    for i in 0..<n {
      if p[i] < m { m = p[i] }
      if p[i].isNaN { sawNaN = true }
    }
    return sawNaN ? .nan : m
  }

  func argReduce(axis: Int, keepDims: Bool, greater: Bool) -> Tensor {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    let n = shape[a]
    precondition(n > 0, "Tensor.argmax/argmin: axis \(axis) of \(shape) is empty")
    let outer = shape[..<a].reduce(1, *)
    let inner = shape[(a + 1)...].reduce(1, *)
    var outShape = shape
    outShape[a] = 1
    let out = Tensor(uninitializedShape: outShape)
    let src = storage.base
    let dst = out.storage.base
    for o in 0..<outer {
      for i in 0..<inner {
        var best = src[o * n * inner + i]
        var bestK = 0
        for k in 1..<n {
          let v = src[(o * n + k) * inner + i]
          if greater ? v > best : v < best {
            best = v
            bestK = k
          }
        }
        dst[o * inner + i] = Float(bestK)
      }
    }
    return keepDims ? out : out.squeezingShape(at: [a])
  }
}

struct FiniteOrZeroKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    x.replacing(with: 0, where: .!(vabs(x) .< .infinity))
  }
}

// MARK: - Softmax family

extension Tensor {
  /// Softmax along `axis`.
  public func softmax(axis: Int = -1) -> Tensor {
    softmaxFamily(axis: axis, log: false)
  }

  /// Log-softmax along `axis`: x - logsumexp(x).
  public func logSoftmax(axis: Int = -1) -> Tensor {
    softmaxFamily(axis: axis, log: true)
  }

  func softmaxFamily(axis: Int, log takeLog: Bool) -> Tensor {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    let n = shape[a]
    let inner = shape[(a + 1)...].reduce(1, *)
    if inner != 1 {
      // Move the axis last, compute, move back.
      var perm = Array(0..<rank)
      perm.remove(at: a)
      perm.append(a)
      var inverse = [Int](repeating: 0, count: rank)
      for (i, p) in perm.enumerated() { inverse[p] = i }
      return permuted(perm).softmaxFamily(axis: -1, log: takeLog).permuted(inverse)
    }
    let rows = count / Swift.max(n, 1)
    let out = Tensor(uninitializedShape: shape)
    let src = UnsafePointer(storage.base)
    let dst = out.storage.base
    Parallelism.forEachChunk(count: rows, grain: Swift.max(1, transcendentalGrain / Swift.max(n, 1))) { range in
      for r in range {
        let x = src + r * n
        let y = dst + r * n
        var m = Tensor.rowMax(x, n)
        if !m.isFinite { m = 0 }
        let vm = Float8(repeating: m)
        var acc = Float8()
        var i = 0
        while i + 8 <= n {
          let e = FastMath.exp(loadFloat8(x, i) - vm)
          if !takeLog { storeFloat8(e, y, i) }
          acc += e
          i += 8
        }
        var tail: Float = 0
        if i < n {
          let k = n - i
          let e = FastMath.exp(loadPartialFloat8(x, i, k, fill: -.infinity) - vm)
          if !takeLog { storePartialFloat8(e, y, i, k) }
          for j in 0..<k { tail += e[j] }
        }
        let total = acc.sum() + tail
        if takeLog {
          let shift = Float8(repeating: m + FastMath.log(total))
          i = 0
          while i + 8 <= n {
            storeFloat8(loadFloat8(x, i) - shift, y, i)
            i += 8
          }
          while i < n {
            y[i] = x[i] - shift[0]
            i += 1
          }
        } else {
          let inv = Float8(repeating: 1 / total)
          i = 0
          while i + 8 <= n {
            storeFloat8(loadFloat8(y, i) * inv, y, i)
            i += 8
          }
          while i < n {
            y[i] *= inv[0]
            i += 1
          }
        }
      }
    }
    return out
  }

  /// The softmax VJP along the last axis: y * (g - sum(g * y)).
  public static func softmaxBackward(output y: Tensor, gradient g: Tensor, axis: Int = -1)
    -> Tensor
  {
    let dot = (g * y).sum(axes: [axis], keepDims: true)
    return y * (g - dot)
  }

  /// The log-softmax VJP: g - softmax * sum(g).
  public static func logSoftmaxBackward(output y: Tensor, gradient g: Tensor, axis: Int = -1)
    -> Tensor
  {
    let s = g.sum(axes: [axis], keepDims: true)
    return g - exp(y) * s
  }
}
