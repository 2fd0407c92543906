#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Contiguous (row-major) strides of `shape`, in elements.
public func contiguousStrides(_ shape: [Int]) -> [Int] {
  var st = [Int](repeating: 1, count: shape.count)
  var acc = 1
  for i in stride(from: shape.count - 1, through: 0, by: -1) {
    st[i] = acc
    acc *= shape[i]
  }
  return st
}

/// A strided view description: element (i0, i1, ...) lives at offset + sum(i_k * strides_k).
struct StridedLayout {
  var shape: [Int]
  var strides: [Int]
  var offset: Int

  /// Merges adjacent axes that are contiguous with each other and drops extent-1 axes.
  func collapsed() -> StridedLayout {
    var dims: [(n: Int, s: Int)] = []
    for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
      if let last = dims.last, strides[i] == last.s * last.n {
        dims[dims.count - 1] = (last.n * shape[i], last.s)
      } else {
        dims.append((shape[i], strides[i]))
      }
    }
    if dims.isEmpty { dims = [(1, 1)] }
    dims.reverse()
    return StridedLayout(shape: dims.map { $0.n }, strides: dims.map { $0.s }, offset: offset)
  }
}

extension Tensor {
  /// Copies a strided view of `src` into a new contiguous tensor of `layout.shape`.
  static func gatherStrided(_ src: Tensor, _ layout: StridedLayout) -> Tensor {
    let out = Tensor(uninitializedShape: layout.shape)
    if out.count == 0 { return out }
    let l = layout.collapsed()
    let n = l.shape.last!
    let s = l.strides.last!
    let outerShape = Array(l.shape.dropLast())
    let outerStrides = Array(l.strides.dropLast())
    let rows = outerShape.reduce(1, *)
    let sp = UnsafePointer(src.storage.base)
    let dp = out.storage.base
    Parallelism.forEachChunk(count: rows, grain: Swift.max(1, elementwiseGrain / n)) { range in
      var idx = unflatten(range.lowerBound, outerShape)
      var off = l.offset + Swift.zip(idx, outerStrides).reduce(0) { $0 + $1.0 * $1.1 }
      for r in range {
        let d = dp + r * n
        let p = sp + off
        if s == 1 {
          d.update(from: p, count: n)
        } else if s == 0 {
          d.update(repeating: p[0], count: n)
        } else {
          for i in 0..<n { d[i] = p[i * s] }
        }
        advance(&idx, &off, outerShape, outerStrides)
      }
    }
    return out
  }

  /// Writes contiguous `src` into the strided view `layout` of `self` (no accumulation).
  mutating func scatterStrided(_ src: Tensor, _ layout: StridedLayout) {
    precondition(Tensor.elementCount(layout.shape) == src.count)
    if src.count == 0 { return }
    makeUnique()
    let l = layout.collapsed()
    let n = l.shape.last!
    let s = l.strides.last!
    let outerShape = Array(l.shape.dropLast())
    let outerStrides = Array(l.strides.dropLast())
    let rows = outerShape.reduce(1, *)
    let sp = UnsafePointer(src.storage.base)
    let dp = storage.base
    Parallelism.forEachChunk(count: rows, grain: Swift.max(1, elementwiseGrain / n)) { range in
      var idx = unflatten(range.lowerBound, outerShape)
      var off = l.offset + Swift.zip(idx, outerStrides).reduce(0) { $0 + $1.0 * $1.1 }
      for r in range {
        let p = sp + r * n
        let d = dp + off
        if s == 1 {
          d.update(from: p, count: n)
        } else {
          for i in 0..<n { d[i * s] = p[i] }
        }
        advance(&idx, &off, outerShape, outerStrides)
      }
    }
  }
}

@inline(__always)
func unflatten(_ flat: Int, _ shape: [Int]) -> [Int] {
  var idx = [Int](repeating: 0, count: shape.count)
  var rem = flat
  for d in stride(from: shape.count - 1, through: 0, by: -1) {
    idx[d] = rem % shape[d]
    rem /= shape[d]
  }
  return idx
}

@inline(__always)
func advance(_ idx: inout [Int], _ off: inout Int, _ shape: [Int], _ strides: [Int]) {
  var d = shape.count - 1
  while d >= 0 {
    idx[d] += 1
    off += strides[d]
    if idx[d] < shape[d] { return }
    off -= strides[d] * shape[d]
    idx[d] = 0
    d -= 1
  }
}

// MARK: - Permutation

extension Tensor {
  /// The tensor with its axes reordered: result axis i is input axis `axes[i]`.
  public func permuted(_ axes: [Int]) -> Tensor {
    precondition(
      axes.count == rank && Set(axes) == Set(0..<rank),
      "Tensor.permuted: \(axes) is not a permutation of the \(rank) axes of \(shape)")
    if axes == Array(0..<rank) { return self }
    let st = contiguousStrides(shape)
    let layout = StridedLayout(
      shape: axes.map { shape[$0] }, strides: axes.map { st[$0] }, offset: 0)
    let l = layout.collapsed()
    if l.shape.count == 2 && l.strides[0] == 1 && l.strides[1] == l.shape[0] {
      // A plain matrix transpose: use the cache-blocked kernel.
      return Tensor.transpose2D(self, rows: l.shape[1], cols: l.shape[0]).reshaped(layout.shape)
    }
    return Tensor.gatherStrided(self, layout)
  }

  /// Swaps the last two axes.
  public func transposed() -> Tensor {
    precondition(rank >= 2, "Tensor.transposed needs rank >= 2, shape is \(shape)")
    var p = Array(0..<rank)
    p.swapAt(rank - 1, rank - 2)
    return permuted(p)
  }

  /// Cache-blocked transpose of a contiguous [rows, cols] matrix to [cols, rows].
  static func transpose2D(_ x: Tensor, rows: Int, cols: Int) -> Tensor {
    let out = Tensor(uninitializedShape: [cols, rows])
    let sp = UnsafePointer(x.storage.base)
    let dp = out.storage.base
    let b = 32
    let rowBlocks = (rows + b - 1) / b
    Parallelism.forEachChunk(count: rowBlocks, grain: Swift.max(1, elementwiseGrain / (b * Swift.max(cols, 1)))) {
      blocks in
      for rb in blocks {
        let r0 = rb * b
        let r1 = Swift.min(rows, r0 + b)
        var c0 = 0
        while c0 < cols {
          let c1 = Swift.min(cols, c0 + b)
          for r in r0..<r1 {
            for c in c0..<c1 { dp[c * rows + r] = sp[r * cols + c] }
          }
          c0 = c1
        }
      }
    }
    return out
  }
}

// MARK: - Slicing

extension Tensor {
  /// Elements from `starts` up to (excluding) `ends` with positive `strides` per axis.
  public func slice(starts: [Int], ends: [Int], strides: [Int]? = nil) -> Tensor {
    let layout = sliceLayout(starts: starts, ends: ends, strides: strides)
    return Tensor.gatherStrided(self, layout)
  }

  /// Elements `range` (with `stride`) along one axis.
  public func slice(axis: Int, _ range: Range<Int>, stride: Int = 1) -> Tensor {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    var starts = [Int](repeating: 0, count: rank)
    var ends = shape
    var st = [Int](repeating: 1, count: rank)
    starts[a] = range.lowerBound
    ends[a] = range.upperBound
    st[a] = stride
    return slice(starts: starts, ends: ends, strides: st)
  }

  /// The sub-tensor at `index` along `axis`, with that axis removed.
  public func slice(at index: Int, axis: Int = 0) -> Tensor {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    precondition(index >= 0 && index < shape[a], "Tensor.slice(at: \(index)) out of range for \(shape)")
    return slice(axis: a, index..<(index + 1)).squeezingShape(at: [a])
  }

  /// The shape and strides a slice selects; traps with the bounds when they are invalid.
  func sliceLayout(starts: [Int], ends: [Int], strides: [Int]?) -> StridedLayout {
    precondition(
      starts.count == rank && ends.count == rank,
      "Tensor.slice: starts \(starts) and ends \(ends) need \(rank) entries for \(shape)")
    let st = strides ?? [Int](repeating: 1, count: rank)
    let base = contiguousStrides(shape)
    var outShape: [Int] = []
    var outStrides: [Int] = []
    var offset = 0
    for i in 0..<rank {
      precondition(st[i] >= 1, "Tensor.slice: stride \(st[i]) on axis \(i) must be positive")
      precondition(
        starts[i] >= 0 && starts[i] <= ends[i] && ends[i] <= shape[i],
        "Tensor.slice: range \(starts[i])..<\(ends[i]) on axis \(i) is outside 0..<\(shape[i])")
      outShape.append((ends[i] - starts[i] + st[i] - 1) / st[i])
      outStrides.append(base[i] * st[i])
      offset += starts[i] * base[i]
    }
    return StridedLayout(shape: outShape, strides: outStrides, offset: offset)
  }

  /// The adjoint of ``slice(starts:ends:strides:)``: `values` placed into zeros of `shape`.
  public static func sliceBackward(
    _ values: Tensor, shape: [Int], starts: [Int], ends: [Int], strides: [Int]? = nil
  ) -> Tensor {
    var out = Tensor.zeros(shape)
    let layout = out.sliceLayout(starts: starts, ends: ends, strides: strides)
    precondition(layout.shape == values.shape, "sliceBackward: \(values.shape) vs \(layout.shape)")
    out.scatterStrided(values, layout)
    return out
  }

  /// Writes `values` into the region `starts..<ends` (step `strides`) of this tensor.
  public mutating func assignSlice(
    _ values: Tensor, starts: [Int], ends: [Int], strides: [Int]? = nil
  ) {
    let layout = sliceLayout(starts: starts, ends: ends, strides: strides)
    precondition(
      layout.shape == values.shape,
      "Tensor.assignSlice: values \(values.shape) do not fit region \(layout.shape)")
    scatterStrided(values, layout)
  }
}

// MARK: - Concatenation, stacking, splitting

extension Tensor {
  /// Joins tensors along an existing axis; all other extents must agree.
  public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "Tensor.concat needs at least one tensor")
    let r = tensors[0].rank
    let a = normalizeAxis(axis, rank: r)
    var outShape = tensors[0].shape
    outShape[a] = 0
    for t in tensors {
      precondition(t.rank == r, "Tensor.concat: ranks differ (\(tensors.map { $0.shape }))")
      for i in 0..<r where i != a {
        precondition(
          t.shape[i] == tensors[0].shape[i],
          "Tensor.concat: shapes \(tensors.map { $0.shape }) differ off axis \(a)")
      }
      outShape[a] += t.shape[a]
    }
    let outer = outShape[..<a].reduce(1, *)
    let inner = outShape[(a + 1)...].reduce(1, *)
    let out = Tensor(uninitializedShape: outShape)
    let dp = out.storage.base
    let rowLength = outShape[a] * inner
    var offset = 0
    for t in tensors {
      let chunk = t.shape[a] * inner
      let sp = UnsafePointer(t.storage.base)
      let off = offset
      Parallelism.forEachChunk(count: outer, grain: Swift.max(1, elementwiseGrain / Swift.max(chunk, 1))) { rows in
        for o in rows {
          (dp + o * rowLength + off).update(from: sp + o * chunk, count: chunk)
        }
      }
      offset += chunk
    }
    return out
  }

  /// Joins tensors of equal shape along a new axis.
  public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
    precondition(!tensors.isEmpty, "Tensor.stack needs at least one tensor")
    let r = tensors[0].rank
    let a = axis < 0 ? axis + r + 1 : axis
    for t in tensors {
      precondition(
        t.shape == tensors[0].shape, "Tensor.stack: shapes \(tensors.map { $0.shape }) differ")
    }
    return concat(tensors.map { $0.expandingShape(at: a) }, axis: a)
  }

  /// Splits along `axis` into pieces of the given `sizes` (which must add up to the extent).
  public func split(sizes: [Int], axis: Int) -> [Tensor] {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    precondition(
      sizes.reduce(0, +) == shape[a],
      "Tensor.split: sizes \(sizes) do not add up to extent \(shape[a]) of axis \(a) in \(shape)")
    var pieces: [Tensor] = []
    var start = 0
    for s in sizes {
      pieces.append(slice(axis: a, start..<(start + s)))
      start += s
    }
    return pieces
  }

  /// Splits along `axis` into `count` equal pieces.
  public func split(count: Int, axis: Int) -> [Tensor] {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    precondition(
      count > 0 && shape[a] % count == 0,
      "Tensor.split: extent \(shape[a]) of axis \(a) is not divisible into \(count) pieces")
    return split(sizes: [Int](repeating: shape[a] / count, count: count), axis: a)
  }
}

// MARK: - Gather, one-hot, padding, broadcasting

extension Tensor {
  /// Selects entries `indices` along `axis` (index-select); indices may repeat.
  public func gather(indices: [Int], axis: Int = 0) -> Tensor {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    let n = shape[a]
    for i in indices {
      precondition(i >= 0 && i < n, "Tensor.gather: index \(i) out of range 0..<\(n) on axis \(a)")
    }
    let outer = shape[..<a].reduce(1, *)
    let inner = shape[(a + 1)...].reduce(1, *)
    var outShape = shape
    outShape[a] = indices.count
    let out = Tensor(uninitializedShape: outShape)
    let sp = UnsafePointer(storage.base)
    let dp = out.storage.base
    let k = indices.count
    indices.withUnsafeBufferPointer { ip in
      for o in 0..<outer {
        for (j, i) in ip.enumerated() {
          (dp + (o * k + j) * inner).update(from: sp + (o * n + i) * inner, count: inner)
        }
      }
    }
    return out
  }

  /// The adjoint of ``gather(indices:axis:)``: rows of `values` added into zeros of `shape`.
  public static func gatherBackward(_ values: Tensor, shape: [Int], indices: [Int], axis: Int)
    -> Tensor
  {
    let out = Tensor.zeros(shape)
    let a = normalizeAxis(axis, rank: shape.count)
    let n = shape[a]
    let outer = shape[..<a].reduce(1, *)
    let inner = shape[(a + 1)...].reduce(1, *)
    let k = indices.count
    let sp = UnsafePointer(values.storage.base)
    let dp = out.storage.base
    for o in 0..<outer {
      for (j, i) in indices.enumerated() {
        let d = dp + (o * n + i) * inner
        let s = sp + (o * k + j) * inner
        for e in 0..<inner { d[e] += s[e] }
      }
    }
    return out
  }

  /// Rows of one-hot vectors: shape [indices.count, depth].
  public static func oneHot(_ indices: [Int], depth: Int) -> Tensor {
    var out = Tensor.zeros([indices.count, depth])
    out.withUnsafeMutableBufferPointer { p in
      for (r, i) in indices.enumerated() {
        precondition(i >= 0 && i < depth, "Tensor.oneHot: index \(i) out of range 0..<\(depth)")
        p[r * depth + i] = 1
      }
    }
    return out
  }

  /// Pads each axis with `paddings[axis] = (before, after)` elements of `value`.
  public func padded(_ paddings: [(before: Int, after: Int)], value: Float = 0) -> Tensor {
    precondition(paddings.count == rank, "Tensor.padded needs \(rank) (before, after) pairs")
    var outShape = shape
    for (i, p) in paddings.enumerated() {
      precondition(p.before >= 0 && p.after >= 0, "Tensor.padded: negative padding \(p)")
      outShape[i] += p.before + p.after
    }
    var out = Tensor(shape: outShape, repeating: value)
    out.assignSlice(
      self, starts: paddings.map { $0.before },
      ends: Swift.zip(paddings, shape).map { $0.0.before + $0.1 })
    return out
  }

  /// The tensor repeated along broadcast axes to `target` (materialised).
  public func broadcast(to target: [Int]) -> Tensor {
    if shape == target { return self }
    precondition(
      BroadcastPlan.shape(shape, target) == target,
      "Tensor.broadcast: shape \(shape) cannot broadcast to \(target)")
    let r = target.count
    let padded = [Int](repeating: 1, count: r - rank) + shape
    let base = contiguousStrides(padded)
    let st = (0..<r).map { padded[$0] == 1 && target[$0] != 1 ? 0 : base[$0] }
    return Tensor.gatherStrided(self, StridedLayout(shape: target, strides: st, offset: 0))
  }

  /// Sums over broadcast axes so the result has `target` shape: the adjoint of broadcasting.
  public func sumToShape(_ target: [Int]) -> Tensor {
    if shape == target { return self }
    precondition(
      BroadcastPlan.shape(target, shape) == shape,
      "Tensor.sumToShape: \(shape) is not a broadcast of \(target)")
    let lead = rank - target.count
    var axes = Array(0..<lead)
    for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
    if axes.isEmpty { return reshaped(target) }
    return sum(axes: axes, keepDims: true).reshaped(target)
  }
}
