/// One block of columns of a product's left operand: a variable, and whether its entries may
/// be all 0 or 1 (a sampled one-hot latent, a discrete action), so the product may add weight
/// rows instead of multiplying.
public struct InputBlock {
  public var value: Variable
  /// Checked, not trusted: a block marked binary whose entries are not all 0 or 1 (relaxed
  /// samples, continuous actions) is multiplied as a dense one.
  public var mayBeBinary: Bool

  public init(_ value: Variable, mayBeBinary: Bool = false) {
    self.value = value
    self.mayBeBinary = mayBeBinary
  }
}

/// `matmul(concat(blocks, axis: -1), weight)` without the concatenation, differentiable in
/// the blocks and the weight (see ``Tensor/partsProduct(_:patterns:weight:)``). Blocks that are
/// binary (checked on their values) cost one addition of a weight row per one, forward and for
/// the weight's gradient; the same numbers as the dense product up to the order of additions.
public func matmul(blocks: [InputBlock], _ weight: Variable) -> Variable {
  let parts = blocks.map(\.value.value)
  let patterns = blocks.map { $0.mayBeBinary ? BinaryRows($0.value.value) : nil }
  let y = Tensor.partsProduct(parts, patterns: patterns, weight: weight.value)
  let inputs = blocks.map(\.value) + [weight]
  guard let tape = Tape.recording(inputs) else { return Variable(y) }
  let need = inputs.map { $0.isTracked(on: tape) }
  let w = weight.value
  // The backward pass keeps a binary block's values only when their gradient is wanted: the
  // weight's gradient reads its pattern. (Imagination's one-hot latents are then not held
  // twice, per step here and stacked for the heads.)
  let kept = parts.indices.map { i in patterns[i] != nil && !need[i] ? Tensor.zeros([0]) : parts[i] }
  let shapes = parts.map(\.shape)
  return customVJP(inputs: inputs, outputs: [y]) { g in
    let r = Tensor.partsProductBackward(
      gradient: g[0], parts: kept, shapes: shapes, patterns: patterns, weight: w, needParts: Array(need.dropLast()),
      needWeight: need.last!)
    return r.parts + [r.weight]
  }[0]
}
