import Synchronization
@_exported import Tensor

/// A recording of differentiable operations for one reverse-mode pass.
///
/// You rarely touch a tape directly: ``valueWithGradient(at:of:)-(Tensor,_)`` and
/// ``valueWithGradient(for:seed:of:)`` create one, make it current while your function runs,
/// run the backward pass and close it. Closing drops every recorded node, so no state leaks
/// from one call into the next; during the backward pass each node's saved tensors are
/// released as soon as the node has been processed.
public final class Tape: @unchecked Sendable {
  /// The tape that operations record on in this task or thread, if any.
  @TaskLocal public static var current: Tape?

  struct Node {
    var inputs: [Int]
    var firstOutput: Int
    var outputCount: Int
    var backward: (([Tensor]) -> [Tensor?])?
  }

  var nodes: [Node] = []
  /// Shape of every variable recorded on this tape, by id.
  var shapes: [[Int]] = []
  /// Whether operations may still record (false after the backward pass).
  public private(set) var isOpen = true
  /// Leaf ids of the parameters being differentiated.
  var parameterIDs: [ObjectIdentifier: Int] = [:]

  static let liveTapes = Atomic<Int>(0)

  /// How many tapes exist in this process (for leak checks in tests).
  public static var liveCount: Int { liveTapes.load(ordering: .relaxed) }

  init() { Tape.liveTapes.add(1, ordering: .relaxed) }
  deinit { Tape.liveTapes.subtract(1, ordering: .relaxed) }

  /// The number of recorded operations.
  public var nodeCount: Int { nodes.count }

  /// A new leaf variable (an input being differentiated).
  func leaf(_ value: Tensor) -> Variable {
    let id = shapes.count
    shapes.append(value.shape)
    return Variable(value: value, tape: self, id: id)
  }

  /// Records an operation with one output.
  @usableFromInline
  func record(_ output: Tensor, inputs: [Variable], _ backward: @escaping (Tensor) -> [Tensor?])
    -> Variable
  {
    let id = shapes.count
    shapes.append(output.shape)
    nodes.append(
      Node(
        inputs: inputs.map { $0.isTracked(on: self) ? $0.id : -1 }, firstOutput: id,
        outputCount: 1, backward: { grads in backward(grads[0]) }))
    return Variable(value: output, tape: self, id: id)
  }

  /// Records an operation with several outputs.
  func record(
    _ outputs: [Tensor], inputs: [Variable], _ backward: @escaping ([Tensor]) -> [Tensor?]
  ) -> [Variable] {
    let first = shapes.count
    for o in outputs { shapes.append(o.shape) }
    nodes.append(
      Node(
        inputs: inputs.map { $0.isTracked(on: self) ? $0.id : -1 }, firstOutput: first,
        outputCount: outputs.count, backward: backward))
    return outputs.enumerated().map { Variable(value: $0.element, tape: self, id: first + $0.offset) }
  }

  /// Runs the backward pass from `output` (seeded with `seed`, ones by default) and returns the
  /// accumulated gradient of every leaf in `leaves` (zeros where none arrived). Closes the tape.
  func backward(from output: Variable, seed: Tensor?, leaves: [Int]) -> [Tensor] {
    precondition(isOpen, "Tape.backward: this tape was already used")
    var grads = [Tensor?](repeating: nil, count: shapes.count)
    if output.isTracked(on: self) {
      let s = seed ?? Tensor.ones(output.shape)
      precondition(
        s.shape == output.shape,
        "gradient seed shape \(s.shape) does not match the output shape \(output.shape)")
      grads[output.id] = s
      for n in stride(from: nodes.count - 1, through: 0, by: -1) {
        let node = nodes[n]
        let outRange = node.firstOutput..<(node.firstOutput + node.outputCount)
        guard outRange.contains(where: { grads[$0] != nil }), let backward = node.backward
        else {
          nodes[n].backward = nil
          continue
        }
        let upstream = outRange.map { grads[$0] ?? Tensor.zeros(shapes[$0]) }
        for o in outRange { grads[o] = nil }
        nodes[n].backward = nil  // release saved tensors as we go
        let inputGrads = backward(upstream)
        precondition(
          inputGrads.count == node.inputs.count,
          "a VJP returned \(inputGrads.count) gradients for \(node.inputs.count) inputs")
        for (id, g) in zip(node.inputs, inputGrads) where id >= 0 {
          guard let g else { continue }
          precondition(
            g.shape == shapes[id],
            "a VJP returned a gradient of shape \(g.shape) for an input of shape \(shapes[id])")
          if grads[id] == nil {
            grads[id] = g
          } else {
            grads[id]! += g
          }
        }
      }
    }
    let result = leaves.map { grads[$0] ?? Tensor.zeros(shapes[$0]) }
    close()
    return result
  }

  /// Drops every node; later operations on this tape's variables treat them as constants.
  func close() {
    isOpen = false
    nodes.removeAll()
    parameterIDs.removeAll()
  }

  /// The tape to record on for an operation over `inputs`, or nil when none is tracked.
  @usableFromInline
  static func recording(_ inputs: Variable...) -> Tape? {
    var found: Tape? = nil
    for v in inputs {
      guard let t = v.tape, t.isOpen else { continue }
      if let f = found {
        precondition(
          f === t,
          "Variables from two different gradient computations were combined; nested differentiation is not supported (use .detached on one of them)"
        )
      } else {
        found = t
      }
    }
    return found
  }

  @usableFromInline
  static func recording(_ inputs: [Variable]) -> Tape? {
    var found: Tape? = nil
    for v in inputs {
      guard let t = v.tape, t.isOpen else { continue }
      if let f = found {
        precondition(f === t, "Variables from two different gradient computations were combined")
      } else {
        found = t
      }
    }
    return found
  }
}

/// A differentiable value: a ``Tensor`` plus, while a gradient is being computed, its place on
/// the current ``Tape``.
///
/// Operations on variables compute their value immediately; when an input is tracked they
/// also record a vector-Jacobian product. Outside a gradient computation variables behave like
/// plain tensors with no recording overhead beyond a nil check.
///
/// ```swift
/// let (loss, grads) = valueWithGradient(at: [w, x]) { v in
///   (matmul(v[1], v[0]).tanh()).square().mean()
/// }
/// ```
public struct Variable: @unchecked Sendable {
  /// The value.
  public let value: Tensor
  @usableFromInline let tape: Tape?
  @usableFromInline let id: Int

  init(value: Tensor, tape: Tape?, id: Int) {
    self.value = value
    self.tape = tape
    self.id = id
  }

  /// A constant (never differentiated) variable.
  public init(_ value: Tensor) {
    self.value = value
    self.tape = nil
    self.id = -1
  }

  /// A constant scalar.
  public init(_ scalar: Float) { self.init(Tensor(scalar)) }

  /// The value's shape.
  @inlinable public var shape: [Int] { value.shape }
  /// The value's rank.
  @inlinable public var rank: Int { value.rank }
  /// The value's element count.
  @inlinable public var count: Int { value.count }

  /// Whether gradients flow into this variable (it lives on an open tape).
  public var isTracked: Bool { tape?.isOpen ?? false }

  func isTracked(on t: Tape) -> Bool { tape === t && t.isOpen }

  /// The same value with gradients stopped (stop-gradient / `sg(.)`).
  public var detached: Variable { Variable(value) }
}

extension Variable: CustomStringConvertible {
  public var description: String {
    "Variable(\(isTracked ? "tracked" : "constant"), \(value.description))"
  }
}

/// A trainable tensor with a stable identity, read by layers during a forward pass.
///
/// While ``valueWithGradient(for:seed:of:)`` runs with this parameter among its targets,
/// ``variable`` returns a tracked leaf on the current tape (the same leaf however often it is
/// read); otherwise it returns a constant. Optimisers change ``value`` in place.
public final class Parameter: @unchecked Sendable {
  /// The current value.
  public var value: Tensor { didSet { version &+= 1 } }

  /// Incremented on every write to ``value`` (layers use it to cache derived tensors).
  public private(set) var version = 0

  /// A parameter holding `value`.
  public init(_ value: Tensor) { self.value = value }

  /// Whether reads of ``variable`` are tracked right now (this parameter is being differentiated).
  public var isTracked: Bool {
    if let tape = Tape.current, tape.isOpen, tape.parameterIDs[ObjectIdentifier(self)] != nil { return true }
    return false
  }

  /// The value as a variable on the current tape (tracked when this parameter is differentiated).
  public var variable: Variable {
    if let tape = Tape.current, tape.isOpen, let id = tape.parameterIDs[ObjectIdentifier(self)] {
      return Variable(value: value, tape: tape, id: id)
    }
    return Variable(value)
  }

  /// The value's shape.
  public var shape: [Int] { value.shape }
}

// MARK: - Gradient entry points

/// The value of `f` at `inputs` and the gradient of `sum(f * seed)` (seed ones by default, so
/// for a scalar `f` the plain gradient) with respect to each input.
public func valueWithGradient(
  at inputs: [Tensor], seed: Tensor? = nil, of f: ([Variable]) throws -> Variable
) rethrows -> (value: Tensor, gradients: [Tensor]) {
  let tape = Tape()
  defer { tape.close() }
  let leaves = inputs.map { tape.leaf($0) }
  let y = try Tape.$current.withValue(tape) { try f(leaves) }
  let grads = tape.backward(from: y, seed: seed, leaves: leaves.map { $0.id })
  return (y.value, grads)
}

/// The value of `f` at `x` and its gradient (see ``valueWithGradient(at:seed:of:)-([Tensor],_,_)``).
public func valueWithGradient(
  at x: Tensor, seed: Tensor? = nil, of f: (Variable) throws -> Variable
) rethrows -> (value: Tensor, gradient: Tensor) {
  let (v, g) = try valueWithGradient(at: [x], seed: seed) { try f($0[0]) }
  return (v, g[0])
}

/// The gradient of a scalar `f` at `x`.
public func gradient(at x: Tensor, of f: (Variable) throws -> Variable) rethrows -> Tensor {
  try valueWithGradient(at: x, of: f).gradient
}

/// Runs `f` (which reads parameters through ``Parameter/variable``) and returns its value and
/// the gradient of `sum(f * seed)` with respect to each of `parameters`, in order. Parameters
/// read by `f` but not listed are constants (no gradient work is done for them).
public func valueWithGradient(
  for parameters: [Parameter], seed: Tensor? = nil, of f: () throws -> Variable
) rethrows -> (value: Tensor, gradients: [Tensor]) {
  let tape = Tape()
  defer { tape.close() }
  var ids: [Int] = []
  ids.reserveCapacity(parameters.count)
  for p in parameters {
    if let existing = tape.parameterIDs[ObjectIdentifier(p)] {
      ids.append(existing)
      continue
    }
    let leaf = tape.leaf(p.value)
    tape.parameterIDs[ObjectIdentifier(p)] = leaf.id
    ids.append(leaf.id)
  }
  let y = try Tape.$current.withValue(tape) { try f() }
  let grads = tape.backward(from: y, seed: seed, leaves: ids)
  return (y.value, grads)
}

/// Evaluates `f` with no gradient recording even inside a gradient computation.
public func withoutGradient<R>(_ f: () throws -> R) rethrows -> R {
  try Tape.$current.withValue(nil) { try f() }
}
