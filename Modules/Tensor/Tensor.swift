/// A dense, row-major array of `Float` values of any rank, with value semantics.
///
/// A `Tensor` is a value: assigning it shares the storage and the first mutation of a shared
/// tensor copies it (copy on write). Every operation returns a new tensor; shapes are checked
/// and a mismatch traps with both shapes in the message (a programmer error).
///
/// ```swift
/// let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
/// let b = Tensor.ones([3])
/// let c = a + b                       // broadcasting: [[2, 3, 4], [5, 6, 7]]
/// let s = c.sum(axes: [1])            // [9, 18]
/// let m = matmul(a, a, transposeB: true)   // [2, 2] through cblas_sgemm
/// ```
public struct Tensor: @unchecked Sendable {
  /// The extent of each axis; empty for a scalar.
  public private(set) var shape: [Int]
  @usableFromInline var storage: TensorStorage

  /// Wraps existing storage; `storage.count` must equal the product of `shape`.
  @usableFromInline
  init(shape: [Int], storage: TensorStorage) {
    self.shape = shape
    self.storage = storage
  }

  /// A tensor of `shape` whose elements are not initialised: write every element before reading.
  /// Meant for kernels that fill their output (for example in other modules' fused kernels).
  public init(uninitializedShape shape: [Int]) {
    let n = Tensor.elementCount(shape)
    self.init(shape: shape, storage: TensorStorage(uninitializedCount: n))
  }

  /// A tensor of `shape` filled with `value`.
  public init(shape: [Int], repeating value: Float) {
    let n = Tensor.elementCount(shape)
    self.init(shape: shape, storage: TensorStorage(repeating: value, count: n))
  }

  /// A tensor of `shape` holding `scalars` in row-major order.
  public init(_ scalars: [Float], shape: [Int]) {
    let n = Tensor.elementCount(shape)
    precondition(
      scalars.count == n,
      "Tensor: \(scalars.count) values do not fill shape \(shape) (\(n) elements)")
    let s = TensorStorage(uninitializedCount: n)
    scalars.withUnsafeBufferPointer { src in
      if n > 0 { s.base.update(from: src.baseAddress!, count: n) }
    }
    self.init(shape: shape, storage: s)
  }

  /// A rank-1 tensor holding `scalars`.
  public init(_ scalars: [Float]) {
    self.init(scalars, shape: [scalars.count])
  }

  /// A rank-0 tensor (scalar).
  public init(_ scalar: Float) {
    self.init(shape: [], repeating: scalar)
  }

  /// A tensor of `shape` filled by `body` through a buffer of `shape`'s element count.
  public init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void)
    rethrows
  {
    self.init(uninitializedShape: shape)
    try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
  }

  // MARK: Properties

  /// The number of elements.
  @inlinable public var count: Int { storage.count }

  /// The number of axes.
  @inlinable public var rank: Int { shape.count }

  /// All elements in row-major order.
  public var scalars: [Float] {
    Array(UnsafeBufferPointer(start: storage.base, count: storage.count))
  }

  /// The only element of a one-element tensor.
  public var scalar: Float {
    precondition(count == 1, "Tensor.scalar needs exactly one element, shape is \(shape)")
    return storage.base[0]
  }

  /// Reads or writes one element by its multi-index.
  public subscript(indices: Int...) -> Float {
    get { storage.base[flatIndex(indices)] }
    set {
      let i = flatIndex(indices)
      makeUnique()
      storage.base[i] = newValue
    }
  }

  func flatIndex(_ indices: [Int]) -> Int {
    precondition(indices.count == rank, "Tensor: \(indices.count) indices for shape \(shape)")
    var flat = 0
    for (i, n) in Swift.zip(indices, shape) {
      precondition(i >= 0 && i < n, "Tensor: index \(indices) out of range for shape \(shape)")
      flat = flat * n + i
    }
    return flat
  }

  // MARK: Raw access

  /// Calls `body` with the elements in row-major order.
  @inlinable
  public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows
    -> R
  {
    try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
  }

  /// Calls `body` with the first element's address of each of `tensors`, in order, valid for
  /// the call (for kernels that read a list of tensors, such as one buffer per step).
  @inlinable
  public static func withUnsafeBaseAddresses<R>(
    _ tensors: [Tensor], _ body: ([UnsafePointer<Float>]) throws -> R
  ) rethrows -> R {
    try withExtendedLifetime(tensors) { try body(tensors.map { UnsafePointer($0.storage.base) }) }
  }

  /// Calls `body` with mutable access to the elements, copying first if the storage is shared.
  @inlinable
  public mutating func withUnsafeMutableBufferPointer<R>(
    _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
  ) rethrows -> R {
    makeUnique()
    return try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
  }

  /// Ensures this tensor owns its storage.
  @inlinable
  public mutating func makeUnique() {
    if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
  }

  /// Whether this tensor is the only owner of its storage (an in-place update will not copy).
  @inlinable
  public mutating func isUniquelyOwned() -> Bool { isKnownUniquelyReferenced(&storage) }

  // MARK: Shape helpers

  /// The product of `shape` (1 for a scalar); traps on a negative extent.
  public static func elementCount(_ shape: [Int]) -> Int {
    var n = 1
    for d in shape {
      precondition(d >= 0, "Tensor: negative extent in shape \(shape)")
      n *= d
    }
    return n
  }

  /// Normalises a possibly negative axis for a tensor of `rank`.
  @inlinable
  public static func normalizeAxis(_ axis: Int, rank: Int) -> Int {
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < Swift.max(rank, 1), "Tensor: axis \(axis) out of range for rank \(rank)")
    return a
  }

  /// The same elements under a new shape; one extent may be -1 (inferred). Shares storage.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    var shape = newShape
    if let inferred = shape.firstIndex(of: -1) {
      var known = 1
      for (i, d) in shape.enumerated() where i != inferred { known *= d }
      precondition(
        known > 0 && count % known == 0,
        "Tensor.reshaped: cannot infer -1 in \(newShape) for \(count) elements")
      shape[inferred] = count / known
    }
    precondition(
      Tensor.elementCount(shape) == count,
      "Tensor.reshaped: shape \(newShape) does not hold \(count) elements (from \(self.shape))")
    return Tensor(shape: shape, storage: storage)
  }

  /// Inserts an axis of extent 1 at `axis`.
  public func expandingShape(at axis: Int) -> Tensor {
    let a = axis < 0 ? axis + rank + 1 : axis
    precondition(a >= 0 && a <= rank, "Tensor.expandingShape: axis \(axis) for rank \(rank)")
    var s = shape
    s.insert(1, at: a)
    return reshaped(s)
  }

  /// Removes axes of extent 1 (all of them when `axes` is empty).
  public func squeezingShape(at axes: [Int] = []) -> Tensor {
    if axes.isEmpty { return reshaped(shape.filter { $0 != 1 }) }
    let drop = Set(axes.map { Tensor.normalizeAxis($0, rank: rank) })
    for a in drop {
      precondition(shape[a] == 1, "Tensor.squeezingShape: axis \(a) has extent \(shape[a])")
    }
    return reshaped(shape.enumerated().filter { !drop.contains($0.offset) }.map { $0.element })
  }

  /// The tensor as a 2-D matrix [product of leading axes, last axis].
  public func flattenedToMatrix() -> Tensor {
    precondition(rank >= 1, "Tensor.flattenedToMatrix needs rank >= 1")
    return reshaped([count / Swift.max(shape[rank - 1], 1), shape[rank - 1]])
  }
}

// MARK: Creation

extension Tensor {
  /// A tensor of zeros.
  public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }

  /// A tensor of ones.
  public static func ones(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 1) }

  /// A tensor filled with `value`.
  public static func full(_ shape: [Int], _ value: Float) -> Tensor {
    Tensor(shape: shape, repeating: value)
  }

  /// Zeros with the shape of `other`.
  public static func zeros(like other: Tensor) -> Tensor { zeros(other.shape) }

  /// Ones with the shape of `other`.
  public static func ones(like other: Tensor) -> Tensor { ones(other.shape) }

  /// `[start, start + step, ...]` up to but excluding `end`.
  public static func arange(_ start: Float, _ end: Float, step: Float = 1) -> Tensor {
    precondition(step != 0, "Tensor.arange: step must not be zero")
    let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
    return Tensor(shape: [n]) { p in
      for i in 0..<n { p[i] = start + Float(i) * step }
    }
  }

  /// `count` evenly spaced values from `start` to `end` inclusive (computed in `Double`).
  public static func linspace(_ start: Float, _ end: Float, count: Int) -> Tensor {
    precondition(count >= 1, "Tensor.linspace needs count >= 1")
    return Tensor(shape: [count]) { p in
      if count == 1 {
        p[0] = start
        return
      }
      let s = Double(start)
      let d = (Double(end) - s) / Double(count - 1)
      for i in 0..<count { p[i] = Float(s + d * Double(i)) }
      p[count - 1] = end
    }
  }

  /// The n x n identity matrix.
  public static func eye(_ n: Int) -> Tensor {
    var t = zeros([n, n])
    t.withUnsafeMutableBufferPointer { p in
      for i in 0..<n { p[i * n + i] = 1 }
    }
    return t
  }
}

// MARK: Description and comparison

extension Tensor: CustomStringConvertible {
  /// A short summary: shape and up to 8 leading values.
  public var description: String {
    let shown = scalars.prefix(8).map { String(format6($0)) }.joined(separator: ", ")
    return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
  }
}

func format6(_ x: Float) -> String {
  let v = (Double(x) * 1e6).rounded() / 1e6
  return "\(v)"
}

extension Tensor: Equatable {
  /// Exact equality of shape and every element.
  public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
    guard lhs.shape == rhs.shape else { return false }
    if lhs.storage === rhs.storage { return true }
    for i in 0..<lhs.count where lhs.storage.base[i] != rhs.storage.base[i] { return false }
    return true
  }
}

extension Tensor {
  /// Whether `self` and `other` have the same shape and every pair of elements satisfies
  /// `|a - b| <= atol + rtol * |b|`.
  public func isClose(to other: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6) -> Bool {
    guard shape == other.shape else { return false }
    let a = storage.base
    let b = other.storage.base
    for i in 0..<count {
      let d = abs(a[i] - b[i])
      if !(d <= atol + rtol * abs(b[i])) { return false }
    }
    return true
  }

  /// The largest absolute elementwise difference to `other` (same shape).
  public func maxAbsDifference(_ other: Tensor) -> Float {
    precondition(shape == other.shape, "maxAbsDifference: shapes \(shape) and \(other.shape)")
    var m: Float = 0
    let a = storage.base
    let b = other.storage.base
    for i in 0..<count {
      let d = abs(a[i] - b[i])
      if d > m || d.isNaN { m = d.isNaN ? .nan : d }
      if m.isNaN { return .nan }
    }
    return m
  }
}
