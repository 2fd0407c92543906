/// An elementwise function of one input, evaluated eight lanes at a time.
///
/// Conform a small struct (it may carry parameters) and pass it to ``Tensor/map(_:grain:)``.
/// Kernels are generic parameters, not closures, so the loop is specialised and vectorised
/// even when called from another module (a closure through the thread pool is about 4x slower
/// here).
///
/// ```swift
/// struct AddOne: UnaryKernel {
///   func callAsFunction(_ x: Float8) -> Float8 { x + 1 }
/// }
/// let y = x.map(AddOne())
/// ```
public protocol UnaryKernel {
  func callAsFunction(_ x: Float8) -> Float8
}

/// An elementwise function of two inputs, eight lanes at a time.
public protocol BinaryKernel {
  func callAsFunction(_ x: Float8, _ y: Float8) -> Float8
}

/// An elementwise function of three inputs, eight lanes at a time.
public protocol TernaryKernel {
  func callAsFunction(_ x: Float8, _ y: Float8, _ z: Float8) -> Float8
}

extension UnaryKernel {
  /// The kernel on one value (lane 0 of a splat), identical to the vector result.
  @inlinable @inline(__always)
  public func scalar(_ x: Float) -> Float { self(Float8(repeating: x))[0] }
}

extension BinaryKernel {
  @inlinable @inline(__always)
  public func scalar(_ x: Float, _ y: Float) -> Float {
    self(Float8(repeating: x), Float8(repeating: y))[0]
  }
}

/// Default minimum chunk (in elements) worth a thread for cheap elementwise loops.
public let elementwiseGrain = 1 << 16

/// Minimum chunk for loops that call exp, log or tanh per element.
public let transcendentalGrain = 1 << 13

extension Tensor {
  /// Applies `kernel` to every element.
  @inlinable
  public func map<K: UnaryKernel>(_ kernel: K, grain: Int = elementwiseGrain) -> Tensor {
    let out = Tensor(uninitializedShape: shape)
    let src = UnsafePointer(storage.base)
    let dst = out.storage.base
    Parallelism.forEachChunk(count: count, grain: grain) { r in
      var i = r.lowerBound
      let end = r.upperBound
      while i + 8 <= end {
        storeFloat8(kernel(loadFloat8(src, i)), dst, i)
        i += 8
      }
      if i < end {
        storePartialFloat8(kernel(loadPartialFloat8(src, i, end - i)), dst, i, end - i)
      }
    }
    return out
  }

  /// Applies `kernel` to every element in place (copying first if the storage is shared).
  @inlinable
  public mutating func apply<K: UnaryKernel>(_ kernel: K, grain: Int = elementwiseGrain) {
    makeUnique()
    let p = storage.base
    Parallelism.forEachChunk(count: count, grain: grain) { r in
      var i = r.lowerBound
      let end = r.upperBound
      while i + 8 <= end {
        storeFloat8(kernel(loadFloat8(p, i)), p, i)
        i += 8
      }
      if i < end {
        storePartialFloat8(kernel(loadPartialFloat8(p, i, end - i)), p, i, end - i)
      }
    }
  }

  /// Applies `kernel` elementwise to two tensors of the same shape (no broadcasting).
  @inlinable
  public static func zip<K: BinaryKernel>(
    _ a: Tensor, _ b: Tensor, _ kernel: K, grain: Int = elementwiseGrain
  ) -> Tensor {
    precondition(a.shape == b.shape, "Tensor.zip: shapes \(a.shape) and \(b.shape) differ")
    let out = Tensor(uninitializedShape: a.shape)
    let pa = UnsafePointer(a.storage.base)
    let pb = UnsafePointer(b.storage.base)
    let dst = out.storage.base
    Parallelism.forEachChunk(count: a.count, grain: grain) { r in
      var i = r.lowerBound
      let end = r.upperBound
      while i + 8 <= end {
        storeFloat8(kernel(loadFloat8(pa, i), loadFloat8(pb, i)), dst, i)
        i += 8
      }
      if i < end {
        let n = end - i
        storePartialFloat8(
          kernel(loadPartialFloat8(pa, i, n), loadPartialFloat8(pb, i, n)), dst, i, n)
      }
    }
    return out
  }

  /// Applies `kernel` elementwise to three tensors of the same shape (no broadcasting).
  @inlinable
  public static func zip<K: TernaryKernel>(
    _ a: Tensor, _ b: Tensor, _ c: Tensor, _ kernel: K, grain: Int = elementwiseGrain
  ) -> Tensor {
    precondition(
      a.shape == b.shape && a.shape == c.shape,
      "Tensor.zip: shapes \(a.shape), \(b.shape) and \(c.shape) differ")
    let out = Tensor(uninitializedShape: a.shape)
    let pa = UnsafePointer(a.storage.base)
    let pb = UnsafePointer(b.storage.base)
    let pc = UnsafePointer(c.storage.base)
    let dst = out.storage.base
    Parallelism.forEachChunk(count: a.count, grain: grain) { r in
      var i = r.lowerBound
      let end = r.upperBound
      while i + 8 <= end {
        storeFloat8(kernel(loadFloat8(pa, i), loadFloat8(pb, i), loadFloat8(pc, i)), dst, i)
        i += 8
      }
      if i < end {
        let n = end - i
        storePartialFloat8(
          kernel(
            loadPartialFloat8(pa, i, n), loadPartialFloat8(pb, i, n), loadPartialFloat8(pc, i, n)),
          dst, i, n)
      }
    }
    return out
  }

  /// Updates `self` elementwise with `kernel(self, other)` (same shape), in place.
  @inlinable
  public mutating func update<K: BinaryKernel>(
    with other: Tensor, _ kernel: K, grain: Int = elementwiseGrain
  ) {
    precondition(shape == other.shape, "Tensor.update: shapes \(shape) and \(other.shape) differ")
    makeUnique()
    let p = storage.base
    let q = UnsafePointer(other.storage.base)
    Parallelism.forEachChunk(count: count, grain: grain) { r in
      var i = r.lowerBound
      let end = r.upperBound
      while i + 8 <= end {
        storeFloat8(kernel(loadFloat8(p, i), loadFloat8(q, i)), p, i)
        i += 8
      }
      if i < end {
        let n = end - i
        storePartialFloat8(kernel(loadPartialFloat8(p, i, n), loadPartialFloat8(q, i, n)), p, i, n)
      }
    }
  }

  /// Applies a binary kernel with NumPy broadcasting of the two shapes.
  @inlinable
  public static func broadcastZip<K: BinaryKernel>(
    _ a: Tensor, _ b: Tensor, _ kernel: K, grain: Int = elementwiseGrain
  ) -> Tensor {
    if a.shape == b.shape { return zip(a, b, kernel, grain: grain) }
    let plan = BroadcastPlan(a.shape, b.shape)
    let out = Tensor(uninitializedShape: plan.outShape)
    let pa = UnsafePointer(a.storage.base)
    let pb = UnsafePointer(b.storage.base)
    let dst = out.storage.base
    let n = plan.inner
    let rows = plan.rows
    let rowGrain = Swift.max(1, grain / Swift.max(n, 1))
    Parallelism.forEachChunk(count: rows, grain: rowGrain) { rowRange in
      var cursor = plan.cursor(atRow: rowRange.lowerBound)
      for row in rowRange {
        let oa = cursor.offsetA
        let ob = cursor.offsetB
        let o = row * n
        switch (plan.innerStrideA, plan.innerStrideB) {
        case (1, 1):
          var i = 0
          while i + 8 <= n {
            storeFloat8(kernel(loadFloat8(pa, oa + i), loadFloat8(pb, ob + i)), dst, o + i)
            i += 8
          }
          if i < n {
            let m = n - i
            storePartialFloat8(
              kernel(loadPartialFloat8(pa, oa + i, m), loadPartialFloat8(pb, ob + i, m)),
              dst, o + i, m)
          }
        case (1, 0):
          let vb = Float8(repeating: pb[ob])
          var i = 0
          while i + 8 <= n {
            storeFloat8(kernel(loadFloat8(pa, oa + i), vb), dst, o + i)
            i += 8
          }
          if i < n {
            let m = n - i
            storePartialFloat8(kernel(loadPartialFloat8(pa, oa + i, m), vb), dst, o + i, m)
          }
        default:  // (0, 1)
          let va = Float8(repeating: pa[oa])
          var i = 0
          while i + 8 <= n {
            storeFloat8(kernel(va, loadFloat8(pb, ob + i)), dst, o + i)
            i += 8
          }
          if i < n {
            let m = n - i
            storePartialFloat8(kernel(va, loadPartialFloat8(pb, ob + i, m)), dst, o + i, m)
          }
        }
        cursor.advance()
      }
    }
    return out
  }
}

/// The NumPy broadcast of two shapes, with adjacent compatible axes merged so the innermost
/// loop is contiguous in the output and contiguous or constant in each input.
public struct BroadcastPlan: Sendable {
  /// The broadcast result shape.
  public let outShape: [Int]
  /// Outer (merged) extents, strides of A and B per outer axis.
  @usableFromInline let outer: [Int]
  @usableFromInline let stridesA: [Int]
  @usableFromInline let stridesB: [Int]
  /// Innermost extent and strides (each 0 or 1; never both 0).
  public let inner: Int
  @usableFromInline let innerStrideA: Int
  @usableFromInline let innerStrideB: Int
  /// The number of rows (product of outer extents).
  public let rows: Int

  /// The broadcast shape of `a` and `b`; traps naming both shapes when they are incompatible.
  public static func shape(_ a: [Int], _ b: [Int]) -> [Int] {
    let r = max(a.count, b.count)
    let pa = [Int](repeating: 1, count: r - a.count) + a
    let pb = [Int](repeating: 1, count: r - b.count) + b
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
      if pa[i] == pb[i] || pb[i] == 1 {
        out[i] = pa[i]
      } else if pa[i] == 1 {
        out[i] = pb[i]
      } else {
        preconditionFailure("Tensor: shapes \(a) and \(b) cannot be broadcast together")
      }
    }
    return out
  }

  public init(_ a: [Int], _ b: [Int]) {
    let out = BroadcastPlan.shape(a, b)
    outShape = out
    let r = out.count
    let pa = [Int](repeating: 1, count: r - a.count) + a
    let pb = [Int](repeating: 1, count: r - b.count) + b
    func strides(_ s: [Int]) -> [Int] {
      var st = [Int](repeating: 0, count: r)
      var acc = 1
      for i in stride(from: r - 1, through: 0, by: -1) {
        st[i] = (s[i] == 1 && out[i] != 1) ? 0 : acc
        acc *= s[i]
      }
      return st
    }
    let sa = strides(pa)
    let sb = strides(pb)
    // Merge axes from the innermost outwards; drop extent-1 axes.
    var dims: [(n: Int, a: Int, b: Int)] = []
    for i in stride(from: r - 1, through: 0, by: -1) where out[i] != 1 {
      if let last = dims.last, sa[i] == last.a * last.n, sb[i] == last.b * last.n {
        dims[dims.count - 1] = (last.n * out[i], last.a, last.b)
      } else {
        dims.append((out[i], sa[i], sb[i]))
      }
    }
    if dims.isEmpty { dims = [(1, 1, 1)] }
    inner = dims[0].n
    innerStrideA = dims[0].a
    innerStrideB = dims[0].b
    let rest = dims.dropFirst().reversed()
    outer = rest.map { $0.n }
    stridesA = rest.map { $0.a }
    stridesB = rest.map { $0.b }
    rows = outer.reduce(1, *)
    precondition(
      (innerStrideA == 1 || innerStrideA == 0) && (innerStrideB == 1 || innerStrideB == 0)
        && innerStrideA + innerStrideB >= 1,
      "BroadcastPlan: internal stride error for \(a) and \(b)")
  }

  /// Row-by-row offsets into A and B.
  public struct Cursor {
    @usableFromInline var index: [Int]
    public var offsetA: Int
    public var offsetB: Int
    @usableFromInline let plan: BroadcastPlan

    @inlinable
    init(index: [Int], offsetA: Int, offsetB: Int, plan: BroadcastPlan) {
      self.index = index
      self.offsetA = offsetA
      self.offsetB = offsetB
      self.plan = plan
    }

    @inlinable
    public mutating func advance() {
      var d = index.count - 1
      while d >= 0 {
        index[d] += 1
        offsetA += plan.stridesA[d]
        offsetB += plan.stridesB[d]
        if index[d] < plan.outer[d] { return }
        offsetA -= plan.stridesA[d] * plan.outer[d]
        offsetB -= plan.stridesB[d] * plan.outer[d]
        index[d] = 0
        d -= 1
      }
    }
  }

  /// A cursor positioned at outer row `row`.
  @inlinable
  public func cursor(atRow row: Int) -> Cursor {
    var idx = [Int](repeating: 0, count: outer.count)
    var rem = row
    var oa = 0
    var ob = 0
    for d in stride(from: outer.count - 1, through: 0, by: -1) {
      idx[d] = rem % outer[d]
      rem /= outer[d]
      oa += idx[d] * stridesA[d]
      ob += idx[d] * stridesB[d]
    }
    return Cursor(index: idx, offsetA: oa, offsetB: ob, plan: self)
  }
}
