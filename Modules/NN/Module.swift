@_exported import Autodiff

/// A node of the parameter tree: a layer or a model made of layers.
///
/// Subclasses store their ``Parameter``s and child modules in properties; the tree is found by
/// reflection, so names come from property names and array indices, for example
/// `encoder/layers/0/linear/weight`. Names are stable (they depend on the model's structure,
/// not on run order), which makes them good keys for checkpoints and optimiser state.
///
/// ```swift
/// final class TwoLayer: Module {
///   let first: Dense
///   let head: Linear
///   init(rng: inout SeededGenerator) {
///     first = Dense(8, 32, rng: &rng)
///     head = Linear(32, 1, rng: &rng)
///   }
///   func callAsFunction(_ x: Variable) -> Variable { head(first(x)) }
/// }
/// let model = TwoLayer(rng: &rng)
/// print(model.parameterCount, model.namedParameters().map(\.name))
/// ```
///
/// Supported property types: `Parameter`, `Module`, their optionals, and arrays of either.
/// Other properties (configuration values) are ignored.
open class Module {
  public init() {}

  /// Every parameter with its hierarchical name, in declaration order; a parameter reachable
  /// twice appears once, under its first name.
  public func namedParameters() -> [(name: String, parameter: Parameter)] {
    var out: [(String, Parameter)] = []
    var seen = Set<ObjectIdentifier>()
    collect(prefix: "", into: &out, seen: &seen)
    return out
  }

  /// Every parameter in declaration order.
  public var parameters: [Parameter] { namedParameters().map { $0.parameter } }

  /// The total number of scalar parameters.
  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

  /// Direct child modules with their property names.
  public func namedChildren() -> [(name: String, module: Module)] {
    var out: [(String, Module)] = []
    forEachChild { name, value in
      if let m = value as? Module {
        out.append((name, m))
      } else if let ms = value as? [Module] {
        for (i, m) in ms.enumerated() { out.append(("\(name)/\(i)", m)) }
      }
    }
    return out
  }

  /// A map from name to parameter.
  public func parameterDictionary() -> [String: Parameter] {
    Dictionary(uniqueKeysWithValues: namedParameters().map { ($0.name, $0.parameter) })
  }

  func collect(
    prefix: String, into out: inout [(String, Parameter)], seen: inout Set<ObjectIdentifier>
  ) {
    forEachChild { name, value in
      let path = prefix.isEmpty ? name : "\(prefix)/\(name)"
      if let p = value as? Parameter {
        if seen.insert(ObjectIdentifier(p)).inserted { out.append((path, p)) }
      } else if let m = value as? Module {
        m.collect(prefix: path, into: &out, seen: &seen)
      } else if let ps = value as? [Parameter] {
        for (i, p) in ps.enumerated() where seen.insert(ObjectIdentifier(p)).inserted {
          out.append(("\(path)/\(i)", p))
        }
      } else if let ms = value as? [Module] {
        for (i, m) in ms.enumerated() { m.collect(prefix: "\(path)/\(i)", into: &out, seen: &seen) }
      }
    }
  }

  func forEachChild(_ body: (String, Any) -> Void) {
    var mirrors: [Mirror] = []
    var m: Mirror? = Mirror(reflecting: self)
    while let current = m {
      mirrors.append(current)
      m = current.superclassMirror
    }
    // Base-class properties first, so names do not depend on subclassing depth.
    for mirror in mirrors.reversed() {
      for child in mirror.children {
        guard let label = child.label else { continue }
        body(label, child.value)
      }
    }
  }

  /// Copies every parameter value from `other`, which must have the same structure.
  public func copyParameters(from other: Module) {
    let mine = namedParameters()
    let theirs = other.namedParameters()
    precondition(
      mine.map { $0.name } == theirs.map { $0.name },
      "copyParameters: the two modules have different parameter trees")
    for (a, b) in zip(mine, theirs) {
      precondition(a.parameter.shape == b.parameter.shape, "copyParameters: \(a.name) shape differs")
      a.parameter.value = b.parameter.value
    }
  }
}

/// Gradients of a loss with respect to a model's parameters, aligned with ``names``.
public struct Gradients: @unchecked Sendable {
  /// Parameter names, in the model's order.
  public let names: [String]
  /// The parameters the gradients belong to.
  public let parameters: [Parameter]
  /// One gradient per parameter, same shape.
  public var tensors: [Tensor]

  public init(names: [String], parameters: [Parameter], tensors: [Tensor]) {
    precondition(names.count == parameters.count && parameters.count == tensors.count)
    self.names = names
    self.parameters = parameters
    self.tensors = tensors
  }

  /// The gradient of the parameter called `name`.
  public subscript(name: String) -> Tensor? {
    names.firstIndex(of: name).map { tensors[$0] }
  }

  /// Adds `other`'s gradients (of the same parameters) to these: the gradient of a sum of
  /// losses computed in parts.
  public mutating func accumulate(_ other: Gradients) {
    precondition(names == other.names, "Gradients.accumulate: the two belong to different parameters")
    for i in tensors.indices { tensors[i] += other.tensors[i] }
  }

  /// sqrt of the sum of all squared gradient entries (accumulated in Double).
  public var globalNorm: Float {
    Float(tensors.reduce(0.0) { $0 + $1.sumOfSquares() }.squareRoot())
  }

  /// Scales every gradient so the global norm is at most `maxNorm`; returns the norm before.
  @discardableResult
  public mutating func clipByGlobalNorm(_ maxNorm: Float) -> Float {
    let norm = globalNorm
    if norm > maxNorm && norm > 0 {
      let scale = maxNorm / norm
      for i in tensors.indices { tensors[i] *= scale }
    }
    return norm
  }
}

/// Runs `loss` (which calls `model`) and returns its value and the gradient with respect to
/// every parameter of `model`, keyed by name.
///
/// ```swift
/// let (loss, grads) = valueAndGradient(of: model) {
///   square(model(x) - y).mean()
/// }
/// optimizer.update(grads)
/// ```
public func valueAndGradient(of model: Module, _ loss: () throws -> Variable) rethrows -> (
  value: Float, gradients: Gradients
) {
  try valueAndGradient(of: [model], loss)
}

/// Like ``valueAndGradient(of:_:)-(Module,_)`` over the parameters of several modules.
public func valueAndGradient(of models: [Module], _ loss: () throws -> Variable) rethrows -> (
  value: Float, gradients: Gradients
) {
  var named: [(String, Parameter)] = []
  for (i, m) in models.enumerated() {
    let prefix = models.count == 1 ? "" : "\(i)/"
    named += m.namedParameters().map { (prefix + $0.name, $0.parameter) }
  }
  let params = named.map { $0.1 }
  let (v, g) = try valueWithGradient(for: params) {
    let l = try loss()
    precondition(l.count == 1, "valueAndGradient: the loss must be a scalar, got shape \(l.shape)")
    return l
  }
  return (v.scalars[0], Gradients(names: named.map { $0.0 }, parameters: params, tensors: g))
}
