// Differentiable reductions, shape operations, products, convolutions, the fused layer norm
// and the public custom-VJP hook.

// MARK: - Reductions

extension Variable {
  /// Sum over `axes` (all when empty).
  public func sum(axes: [Int] = [], keepDims: Bool = false) -> Variable {
    let xs = shape
    let kept = value.reducedShape(axes, keepDims: true)
    return unary(self, value.sum(axes: axes, keepDims: keepDims)) { g in
      g.reshaped(kept).broadcast(to: xs)
    }
  }

  /// Mean over `axes` (all when empty).
  public func mean(axes: [Int] = [], keepDims: Bool = false) -> Variable {
    let n = Float(Swift.max(value.reducedCount(axes), 1))
    return sum(axes: axes, keepDims: keepDims) * (1 / n)
  }

  /// Maximum over `axes`; ties share the gradient equally.
  public func max(axes: [Int] = [], keepDims: Bool = false) -> Variable {
    extremum(axes: axes, keepDims: keepDims, max: true)
  }

  /// Minimum over `axes`; ties share the gradient equally.
  public func min(axes: [Int] = [], keepDims: Bool = false) -> Variable {
    extremum(axes: axes, keepDims: keepDims, max: false)
  }

  func extremum(axes: [Int], keepDims: Bool, max: Bool) -> Variable {
    let xv = value
    let kept = max ? xv.max(axes: axes, keepDims: true) : xv.min(axes: axes, keepDims: true)
    let y = keepDims ? kept : kept.reshaped(xv.reducedShape(axes, keepDims: false))
    return unary(self, y) { g in
      let mask = equal(xv, kept)
      let ties = mask.sum(axes: axes, keepDims: true)
      return mask * (g.reshaped(kept.shape) / ties)
    }
  }

  /// Population variance over `axes`.
  public func variance(axes: [Int] = [], keepDims: Bool = false) -> Variable {
    let m = mean(axes: axes, keepDims: true)
    return square(self - m).mean(axes: axes, keepDims: keepDims)
  }

  /// log(sum(exp(x))) over `axes`.
  public func logSumExp(axes: [Int] = [], keepDims: Bool = false) -> Variable {
    let xv = value
    let kept = xv.logSumExp(axes: axes, keepDims: true)
    let y = keepDims ? kept : kept.reshaped(xv.reducedShape(axes, keepDims: false))
    return unary(self, y) { g in exp(xv - kept) * g.reshaped(kept.shape) }
  }

  /// Softmax along `axis`.
  public func softmax(axis: Int = -1) -> Variable {
    let y = value.softmax(axis: axis)
    return unary(self, y) { g in Tensor.softmaxBackward(output: y, gradient: g, axis: axis) }
  }

  /// Log-softmax along `axis`.
  public func logSoftmax(axis: Int = -1) -> Variable {
    let y = value.logSoftmax(axis: axis)
    return unary(self, y) { g in Tensor.logSoftmaxBackward(output: y, gradient: g, axis: axis) }
  }
}

// MARK: - Shape

extension Variable {
  /// The same elements under a new shape (one extent may be -1).
  public func reshaped(_ newShape: [Int]) -> Variable {
    let xs = shape
    return unary(self, value.reshaped(newShape)) { $0.reshaped(xs) }
  }

  /// Axes reordered: result axis i is input axis `axes[i]`.
  public func permuted(_ axes: [Int]) -> Variable {
    var inverse = [Int](repeating: 0, count: axes.count)
    for (i, p) in axes.enumerated() { inverse[p] = i }
    return unary(self, value.permuted(axes)) { $0.permuted(inverse) }
  }

  /// Swaps the last two axes.
  public func transposed() -> Variable {
    var p = Array(0..<rank)
    p.swapAt(rank - 1, rank - 2)
    return permuted(p)
  }

  /// Inserts an axis of extent 1.
  public func expandingShape(at axis: Int) -> Variable {
    reshaped(value.expandingShape(at: axis).shape)
  }

  /// Removes axes of extent 1.
  public func squeezingShape(at axes: [Int] = []) -> Variable {
    reshaped(value.squeezingShape(at: axes).shape)
  }

  /// A strided slice (see ``Tensor/slice(starts:ends:strides:)``).
  public func slice(starts: [Int], ends: [Int], strides: [Int]? = nil) -> Variable {
    let xs = shape
    return unary(self, value.slice(starts: starts, ends: ends, strides: strides)) { g in
      Tensor.sliceBackward(g, shape: xs, starts: starts, ends: ends, strides: strides)
    }
  }

  /// Elements `range` (with `stride`) along `axis`.
  public func slice(axis: Int, _ range: Range<Int>, stride: Int = 1) -> Variable {
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
  public func slice(at index: Int, axis: Int = 0) -> Variable {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    return slice(axis: a, index..<(index + 1)).squeezingShape(at: [a])
  }

  /// Joins variables along an existing axis.
  public static func concat(_ parts: [Variable], axis: Int) -> Variable {
    let y = Tensor.concat(parts.map { $0.value }, axis: axis)
    guard let tape = Tape.recording(parts) else { return Variable(y) }
    let a = Tensor.normalizeAxis(axis, rank: y.rank)
    let sizes = parts.map { $0.shape[a] }
    let needs = parts.map { $0.isTracked(on: tape) }
    return tape.record(y, inputs: parts) { g in
      let pieces = g.split(sizes: sizes, axis: a)
      return zip(pieces, needs).map { $1 ? $0 : nil }
    }
  }

  /// Joins variables of equal shape along a new axis.
  public static func stack(_ parts: [Variable], axis: Int = 0) -> Variable {
    let r = parts[0].rank
    let a = axis < 0 ? axis + r + 1 : axis
    return concat(parts.map { $0.expandingShape(at: a) }, axis: a)
  }

  /// Splits along `axis` into pieces of `sizes` (one node, one backward concatenation).
  public func split(sizes: [Int], axis: Int) -> [Variable] {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    let pieces = value.split(sizes: sizes, axis: a)
    guard let tape = Tape.recording(self) else { return pieces.map { Variable($0) } }
    return tape.record(pieces, inputs: [self]) { grads in
      [Tensor.concat(grads, axis: a)]
    }
  }

  /// Splits along `axis` into `count` equal pieces.
  public func split(count: Int, axis: Int) -> [Variable] {
    let a = Tensor.normalizeAxis(axis, rank: rank)
    precondition(shape[a] % count == 0, "split: \(shape[a]) is not divisible by \(count)")
    return split(sizes: [Int](repeating: shape[a] / count, count: count), axis: a)
  }

  /// Entries `indices` along `axis` (index-select).
  public func gather(indices: [Int], axis: Int = 0) -> Variable {
    let xs = shape
    let a = Tensor.normalizeAxis(axis, rank: rank)
    return unary(self, value.gather(indices: indices, axis: a)) { g in
      Tensor.gatherBackward(g, shape: xs, indices: indices, axis: a)
    }
  }

  /// Pads each axis with constant `value`.
  public func padded(_ paddings: [(before: Int, after: Int)], value fill: Float = 0) -> Variable {
    let xs = shape
    let starts = paddings.map { $0.before }
    let ends = zip(paddings, xs).map { $0.0.before + $0.1 }
    return unary(self, value.padded(paddings, value: fill)) { g in
      g.slice(starts: starts, ends: ends)
    }
  }

  /// Repeats along broadcast axes to `target`.
  public func broadcast(to target: [Int]) -> Variable {
    let xs = shape
    return unary(self, value.broadcast(to: target)) { $0.sumToShape(xs) }
  }
}

// MARK: - Products and convolutions

/// Matrix product (see ``Tensor``'s `matmul` for the accepted shapes).
public func matmul(
  _ a: Variable, _ b: Variable, transposeA: Bool = false, transposeB: Bool = false
) -> Variable {
  let (av, bv) = (a.value, b.value)
  let y = matmul(av, bv, transposeA: transposeA, transposeB: transposeB)
  return binary(a, b, y) { g, na, nb in
    var ga: Tensor? = nil
    var gb: Tensor? = nil
    let batchedB = bv.rank > 2
    let sharedA = av.rank == 2 && batchedB
    if na {
      switch (transposeA, transposeB) {
      case (false, false): ga = matmul(g, bv, transposeB: true)
      case (false, true): ga = matmul(g, bv)
      case (true, false): ga = matmul(bv, g, transposeB: true)
      case (true, true): ga = matmul(bv, g, transposeA: true, transposeB: true)
      }
      if sharedA { ga = ga!.reshaped([-1] + av.shape).sum(axes: [0]) }
    }
    if nb {
      if !batchedB && !(av.rank > 2 && transposeA) {
        // b is a shared matrix: flatten the batch rows of a and g into one product.
        let a2 = transposeA ? av : av.flattenedToMatrix()
        let g2 = g.flattenedToMatrix()
        switch (transposeA, transposeB) {
        case (false, false): gb = matmul(a2, g2, transposeA: true)
        case (false, true): gb = matmul(g2, a2, transposeA: true)
        case (true, false): gb = matmul(a2, g2)
        case (true, true): gb = matmul(g2, a2, transposeA: true, transposeB: true)
        }
      } else {
        switch (transposeA, transposeB) {
        case (false, false): gb = matmul(av, g, transposeA: true)
        case (false, true): gb = matmul(g, av, transposeA: true)
        case (true, false): gb = matmul(av, g)
        case (true, true): gb = matmul(g, av, transposeA: true, transposeB: true)
        }
        if !batchedB { gb = gb!.reshaped([-1] + bv.shape).sum(axes: [0]) }
      }
    }
    return (ga, gb)
  }
}

/// 2-D convolution, NHWC input and [KH, KW, Cin, Cout] kernel.
public func conv2d(
  _ x: Variable, _ kernel: Variable, stride: Int = 1, padding: ConvPadding = .same
) -> Variable {
  let (xv, kv) = (x.value, kernel.value)
  return binary(x, kernel, conv2d(xv, kv, stride: stride, padding: padding)) { g, nx, nk in
    (
      nx
        ? conv2dBackwardInput(
          g, kernel: kv, inputShape: xv.shape, stride: stride, padding: padding) : nil,
      nk
        ? conv2dBackwardKernel(
          g, input: xv, kernelShape: kv.shape, stride: stride, padding: padding) : nil
    )
  }
}

/// Transposed 2-D convolution, NHWC input and [KH, KW, Cout, Cin] kernel.
public func convTranspose2d(
  _ x: Variable, _ kernel: Variable, stride: Int = 1, padding: ConvPadding = .same
) -> Variable {
  let (xv, kv) = (x.value, kernel.value)
  return binary(x, kernel, convTranspose2d(xv, kv, stride: stride, padding: padding)) {
    g, nx, nk in
    (
      nx ? conv2d(g, kv, stride: stride, padding: padding) : nil,
      nk
        ? conv2dBackwardKernel(
          xv, input: g, kernelShape: kv.shape, stride: stride, padding: padding) : nil
    )
  }
}

// MARK: - Fused layer norm

/// Layer norm over the last axis with optional scale and offset and an optional fused
/// activation, as one node with a hand-written VJP.
public func layerNorm(
  _ x: Variable, scale: Variable?, offset: Variable?, epsilon: Float,
  activation: NormActivation = .identity
) -> Variable {
  let (y, stats) = Tensor.layerNormForward(
    x.value, scale: scale?.value, offset: offset?.value, epsilon: epsilon, activation: activation)
  var inputs = [x]
  if let scale { inputs.append(scale) }
  if let offset { inputs.append(offset) }
  guard let tape = Tape.recording(inputs) else { return Variable(y) }
  let xv = x.value
  let sv = scale?.value
  let ov = offset?.value
  let needX = x.isTracked(on: tape)
  let needS = scale?.isTracked(on: tape) ?? false
  let needO = offset?.isTracked(on: tape) ?? false
  let hasScale = scale != nil
  let hasOffset = offset != nil
  return tape.record(y, inputs: inputs) { g in
    let (dx, ds, dof) = Tensor.layerNormBackward(
      g, input: xv, statistics: stats, scale: sv, offset: ov, activation: activation,
      needsInput: needX, needsScale: needS, needsOffset: needO)
    var out: [Tensor?] = [dx]
    if hasScale { out.append(ds) }
    if hasOffset { out.append(dof) }
    return out
  }
}

// MARK: - Custom VJPs

/// Registers a fused kernel as one differentiable node.
///
/// Compute `outputs` from the inputs' values yourself, then call this with a `backward` that
/// maps the gradients of all outputs (zeros for outputs that received none) to one gradient per
/// input (nil for inputs that need none; same shapes as the inputs). The SSM scan uses this.
///
/// ```swift
/// let y = fusedForward(x.value, w.value)
/// let out = customVJP(inputs: [x, w], outputs: [y]) { grads in
///   let (dx, dw) = fusedBackward(grads[0], x.value, w.value)
///   return [dx, dw]
/// }
/// ```
public func customVJP(
  inputs: [Variable], outputs: [Tensor], backward: @escaping ([Tensor]) -> [Tensor?]
) -> [Variable] {
  guard let tape = Tape.recording(inputs) else { return outputs.map { Variable($0) } }
  return tape.record(outputs, inputs: inputs, backward)
}

/// Whether each of `inputs` will receive a gradient in the current computation; lets a custom
/// kernel skip work.
public func needsGradient(_ inputs: [Variable]) -> [Bool] {
  guard let tape = Tape.recording(inputs) else { return inputs.map { _ in false } }
  return inputs.map { $0.isTracked(on: tape) }
}
