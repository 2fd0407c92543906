// Differentiable elementwise operations: each forward next to its vector-Jacobian product.

/// Records a one-input op whose VJP maps the upstream gradient to the input gradient.
func unary(_ x: Variable, _ y: Tensor, _ vjp: @escaping (Tensor) -> Tensor) -> Variable {
  guard let tape = Tape.recording(x) else { return Variable(y) }
  return tape.record(y, inputs: [x]) { g in [vjp(g)] }
}

/// Records a two-input op; the VJP gets flags saying which inputs need a gradient.
func binary(
  _ a: Variable, _ b: Variable, _ y: Tensor,
  _ vjp: @escaping (_ g: Tensor, _ needA: Bool, _ needB: Bool) -> (Tensor?, Tensor?)
) -> Variable {
  guard let tape = Tape.recording(a, b) else { return Variable(y) }
  let needA = a.isTracked(on: tape)
  let needB = b.isTracked(on: tape)
  return tape.record(y, inputs: [a, b]) { g in
    let (ga, gb) = vjp(g, needA, needB)
    return [ga, gb]
  }
}

// MARK: - Arithmetic with broadcasting

extension Variable {
  public static func + (a: Variable, b: Variable) -> Variable {
    let (sa, sb) = (a.shape, b.shape)
    return binary(a, b, a.value + b.value) { g, na, nb in
      (na ? g.sumToShape(sa) : nil, nb ? g.sumToShape(sb) : nil)
    }
  }

  public static func - (a: Variable, b: Variable) -> Variable {
    let (sa, sb) = (a.shape, b.shape)
    return binary(a, b, a.value - b.value) { g, na, nb in
      (na ? g.sumToShape(sa) : nil, nb ? (-g).sumToShape(sb) : nil)
    }
  }

  public static func * (a: Variable, b: Variable) -> Variable {
    let (av, bv) = (a.value, b.value)
    return binary(a, b, av * bv) { g, na, nb in
      (na ? (g * bv).sumToShape(av.shape) : nil, nb ? (g * av).sumToShape(bv.shape) : nil)
    }
  }

  public static func / (a: Variable, b: Variable) -> Variable {
    let (av, bv) = (a.value, b.value)
    let y = av / bv
    return binary(a, b, y) { g, na, nb in
      (
        na ? (g / bv).sumToShape(av.shape) : nil,
        nb ? (-(g * y) / bv).sumToShape(bv.shape) : nil
      )
    }
  }

  public static prefix func - (x: Variable) -> Variable { unary(x, -x.value) { -$0 } }

  public static func + (a: Variable, s: Float) -> Variable { unary(a, a.value + s) { $0 } }
  public static func - (a: Variable, s: Float) -> Variable { unary(a, a.value - s) { $0 } }
  public static func * (a: Variable, s: Float) -> Variable { unary(a, a.value * s) { $0 * s } }
  public static func / (a: Variable, s: Float) -> Variable { unary(a, a.value / s) { $0 / s } }
  public static func + (s: Float, a: Variable) -> Variable { a + s }
  public static func - (s: Float, a: Variable) -> Variable { unary(a, s - a.value) { -$0 } }
  public static func * (s: Float, a: Variable) -> Variable { a * s }
  public static func / (s: Float, a: Variable) -> Variable {
    let y = s / a.value
    let av = a.value
    return unary(a, y) { g in -(g * y) / av }
  }

  public static func + (a: Variable, b: Tensor) -> Variable { a + Variable(b) }
  public static func - (a: Variable, b: Tensor) -> Variable { a - Variable(b) }
  public static func * (a: Variable, b: Tensor) -> Variable { a * Variable(b) }
  public static func / (a: Variable, b: Tensor) -> Variable { a / Variable(b) }
  public static func + (a: Tensor, b: Variable) -> Variable { Variable(a) + b }
  public static func - (a: Tensor, b: Variable) -> Variable { Variable(a) - b }
  public static func * (a: Tensor, b: Variable) -> Variable { Variable(a) * b }
  public static func / (a: Tensor, b: Variable) -> Variable { Variable(a) / b }
}

// MARK: - Unary math

/// e^x.
public func exp(_ x: Variable) -> Variable {
  let y = exp(x.value)
  return unary(x, y) { $0 * y }
}

/// Natural logarithm.
public func log(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, log(xv)) { $0 / xv }
}

/// Square root.
public func sqrt(_ x: Variable) -> Variable {
  let y = sqrt(x.value)
  return unary(x, y) { $0 * 0.5 / y }
}

/// 1 / sqrt(x).
public func rsqrt(_ x: Variable) -> Variable {
  let y = rsqrt(x.value)
  return unary(x, y) { $0 * -0.5 * y * y * y }
}

/// |x| (subgradient 0 at 0).
public func abs(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, abs(xv)) { $0 * sign(xv) }
}

/// -1, 0 or 1; its gradient is zero.
public func sign(_ x: Variable) -> Variable { Variable(sign(x.value)) }

/// x^2.
public func square(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, square(xv)) { $0 * xv * 2 }
}

/// 1 / x.
public func reciprocal(_ x: Variable) -> Variable {
  let y = reciprocal(x.value)
  return unary(x, y) { -($0 * y * y) }
}

/// Hyperbolic tangent.
public func tanh(_ x: Variable) -> Variable {
  let y = tanh(x.value)
  return unary(x, y) { Tensor.tanhBackward(output: y, gradient: $0) }
}

/// The logistic sigmoid.
public func sigmoid(_ x: Variable) -> Variable {
  let y = sigmoid(x.value)
  return unary(x, y) { Tensor.sigmoidBackward(output: y, gradient: $0) }
}

/// log(1 + e^x).
public func softplus(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, softplus(xv)) { Tensor.softplusBackward(input: xv, gradient: $0) }
}

/// max(x, 0) (subgradient 0 at 0).
public func relu(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, relu(xv)) { Tensor.masked($0, by: greater(xv, Tensor(0))) }
}

/// x * sigmoid(x).
public func silu(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, silu(xv)) { Tensor.siluBackward(input: xv, gradient: $0) }
}

/// GELU (tanh form).
public func gelu(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, gelu(xv)) { Tensor.geluBackward(input: xv, gradient: $0) }
}

/// sign(x) log(1 + |x|).
public func symlog(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, symlog(xv)) { Tensor.symlogBackward(input: xv, gradient: $0) }
}

/// sign(x) (e^|x| - 1).
public func symexp(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, symexp(xv)) { Tensor.symexpBackward(input: xv, gradient: $0) }
}

/// Cosine.
public func cos(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, cos(xv)) { g in -(g * sin(xv)) }
}

/// Sine.
public func sin(_ x: Variable) -> Variable {
  let xv = x.value
  return unary(x, sin(xv)) { g in g * cos(xv) }
}

/// x limited to [lower, upper]; the gradient passes only where x is strictly inside.
public func clamp(_ x: Variable, min lower: Float, max upper: Float) -> Variable {
  let xv = x.value
  return unary(x, clamp(xv, min: lower, max: upper)) { g in
    Tensor.masked(g, by: greater(xv, Tensor(lower)) * less(xv, Tensor(upper)))
  }
}

/// x^p for a scalar exponent.
public func pow(_ x: Variable, _ p: Float) -> Variable {
  let xv = x.value
  return unary(x, pow(xv, p)) { g in g * pow(xv, p - 1) * p }
}

/// a^b elementwise with broadcasting (a > 0 where b's gradient is needed).
public func pow(_ a: Variable, _ b: Variable) -> Variable {
  let (av, bv) = (a.value, b.value)
  let y = pow(av, bv)
  return binary(a, b, y) { g, na, nb in
    (
      na ? (g * bv * pow(av, bv - 1)).sumToShape(av.shape) : nil,
      nb ? (g * y * log(av)).sumToShape(bv.shape) : nil
    )
  }
}

/// Elementwise maximum; the gradient goes to `a` where a >= b, else to `b`.
public func maximum(_ a: Variable, _ b: Variable) -> Variable {
  let (av, bv) = (a.value, b.value)
  return binary(a, b, maximum(av, bv)) { g, na, nb in
    let mask = greaterEqual(av, bv)
    return (
      na ? (g * mask).sumToShape(av.shape) : nil,
      nb ? (g * (1 - mask)).sumToShape(bv.shape) : nil
    )
  }
}

/// Elementwise minimum; the gradient goes to `a` where a <= b, else to `b`.
public func minimum(_ a: Variable, _ b: Variable) -> Variable {
  let (av, bv) = (a.value, b.value)
  return binary(a, b, minimum(av, bv)) { g, na, nb in
    let mask = lessEqual(av, bv)
    return (
      na ? (g * mask).sumToShape(av.shape) : nil,
      nb ? (g * (1 - mask)).sumToShape(bv.shape) : nil
    )
  }
}

/// max(x, s) for a scalar.
public func maximum(_ x: Variable, _ s: Float) -> Variable { maximum(x, Variable(Tensor(s))) }
/// min(x, s) for a scalar.
public func minimum(_ x: Variable, _ s: Float) -> Variable { minimum(x, Variable(Tensor(s))) }

/// NumPy's `where`: `a` where `condition` (a constant mask) is non-zero, else `b`.
public func select(_ condition: Tensor, _ a: Variable, _ b: Variable) -> Variable {
  let (sa, sb) = (a.shape, b.shape)
  let y = select(condition, a.value, b.value)
  let full = y.shape
  return binary(a, b, y) { g, na, nb in
    let c = notEqual(condition, Tensor(0)).broadcast(to: full)
    return (na ? (g * c).sumToShape(sa) : nil, nb ? (g * (1 - c)).sumToShape(sb) : nil)
  }
}

/// The value with gradients stopped.
public func stopGradient(_ x: Variable) -> Variable { x.detached }
