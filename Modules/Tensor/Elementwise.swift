#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// MARK: - Kernels

@usableFromInline struct AddKernel: BinaryKernel {
  @inlinable init() {}
  @inlinable func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 { x + y }
}
@usableFromInline struct SubKernel: BinaryKernel {
  @inlinable init() {}
  @inlinable func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 { x - y }
}
@usableFromInline struct MulKernel: BinaryKernel {
  @inlinable init() {}
  @inlinable func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 { x * y }
}
@usableFromInline struct DivKernel: BinaryKernel {
  @inlinable init() {}
  @inlinable func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 { x / y }
}
struct MinKernel: BinaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 { x.replacing(with: y, where: y .< x) }
}
struct MaxKernel: BinaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 { x.replacing(with: y, where: y .> x) }
}
struct PowKernel: BinaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 {
    var r = Float8()
    for i in 0..<8 { r[i] = powf(x[i], y[i]) }
    return r
  }
}
enum Comparison { case greater, greaterEqual, less, lessEqual, equal, notEqual }
struct CompareKernel: BinaryKernel {
  let op: Comparison
  @inline(__always) func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 {
    let mask: SIMDMask<SIMD8<Int32>>
    switch op {
    case .greater: mask = x .> y
    case .greaterEqual: mask = x .>= y
    case .less: mask = x .< y
    case .lessEqual: mask = x .<= y
    case .equal: mask = x .== y
    case .notEqual: mask = x .!= y
    }
    return Float8(repeating: 0).replacing(with: 1, where: mask)
  }
}

struct ScaleShiftKernel: UnaryKernel {
  let scale: Float
  let shift: Float
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { x * scale + shift }
}
struct RightScalarKernel<K: BinaryKernel>: UnaryKernel {
  let k: K
  let s: Float8
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { k(x, s) }
}
struct LeftScalarKernel<K: BinaryKernel>: UnaryKernel {
  let k: K
  let s: Float8
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { k(s, x) }
}
struct NegKernel: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { -x } }
struct ExpKernel: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { FastMath.exp(x) } }
struct LogKernel: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { FastMath.log(x) } }
struct SqrtKernel: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { x.squareRoot() } }
struct RsqrtKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { 1 / x.squareRoot() }
}
struct AbsKernel: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { vabs(x) } }
struct SignKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    Float8(repeating: 0).replacing(with: 1, where: x .> 0).replacing(with: -1, where: x .< 0)
  }
}
struct SquareKernel: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { x * x } }
struct ReciprocalKernel: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { 1 / x } }
struct TanhKernel: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { FastMath.tanh(x) } }
struct SigmoidKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { FastMath.sigmoid(x) }
}
struct SoftplusKernel: UnaryKernel {
  // log(1 + e^x) = max(x, 0) + log(1 + e^-|x|); the log argument is in [1, 2], no cancellation.
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    let pos = x.replacing(with: 0, where: x .< 0)
    return pos + FastMath.log(1 + FastMath.exp(-vabs(x)))
  }
}
struct ReluKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { x.replacing(with: 0, where: x .< 0) }
}
struct SiluKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 { x * FastMath.sigmoid(x) }
}
/// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
struct GeluKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    let inner = 0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)
    return 0.5 * x * (1 + FastMath.tanh(inner))
  }
}
struct SymlogKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    let m = FastMath.log(1 + vabs(x))
    return m.replacing(with: -m, where: x .< 0)
  }
}
struct SymexpKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    let m = FastMath.exp(vabs(x)) - 1
    return m.replacing(with: -m, where: x .< 0)
  }
}
struct ClampKernel: UnaryKernel {
  let lo: Float
  let hi: Float
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    x.replacing(with: Float8(repeating: lo), where: x .< lo)
      .replacing(with: Float8(repeating: hi), where: x .> hi)
  }
}
struct PowScalarKernel: UnaryKernel {
  let p: Float
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    var r = Float8()
    for i in 0..<8 { r[i] = powf(x[i], p) }
    return r
  }
}
struct CosKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    var r = Float8()
    for i in 0..<8 { r[i] = cosf(x[i]) }
    return r
  }
}
struct SinKernel: UnaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8) -> Float8 {
    var r = Float8()
    for i in 0..<8 { r[i] = sinf(x[i]) }
    return r
  }
}
struct SelectKernel: TernaryKernel {
  @inline(__always) func callAsFunction(_ c: Float8, _ a: Float8, _ b: Float8) -> Float8 {
    b.replacing(with: a, where: c .!= 0)
  }
}

// Derivative kernels: (x or y, upstream gradient g) -> g * f'(.)
struct TanhGradKernel: BinaryKernel {  // from the output y
  @inline(__always) func callAsFunction(_ y: Float8, _ g: Float8) -> Float8 { g * (1 - y * y) }
}
struct SigmoidGradKernel: BinaryKernel {  // from the output y
  @inline(__always) func callAsFunction(_ y: Float8, _ g: Float8) -> Float8 { g * y * (1 - y) }
}
struct SiluGradKernel: BinaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8, _ g: Float8) -> Float8 {
    let s = FastMath.sigmoid(x)
    return g * s * (1 + x * (1 - s))
  }
}
struct GeluGradKernel: BinaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8, _ g: Float8) -> Float8 {
    let c: Float = 0.797_884_560_802_865_4
    let x2 = x * x
    let t = FastMath.tanh(c * (x + 0.044_715 * x2 * x))
    let dInner = c * (1 + 3 * 0.044_715 * x2)
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dInner)
  }
}
struct SoftplusGradKernel: BinaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8, _ g: Float8) -> Float8 { g * FastMath.sigmoid(x) }
}
struct SymlogGradKernel: BinaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8, _ g: Float8) -> Float8 { g / (1 + vabs(x)) }
}
struct SymexpGradKernel: BinaryKernel {
  @inline(__always) func callAsFunction(_ x: Float8, _ g: Float8) -> Float8 { g * FastMath.exp(vabs(x)) }
}
struct MaskGradKernel: BinaryKernel {  // g where mask != 0
  @inline(__always) func callAsFunction(_ m: Float8, _ g: Float8) -> Float8 {
    Float8(repeating: 0).replacing(with: g, where: m .!= 0)
  }
}

// MARK: - Arithmetic operators (NumPy broadcasting)

extension Tensor {
  public static func + (a: Tensor, b: Tensor) -> Tensor { binary(a, b, AddKernel()) }
  public static func - (a: Tensor, b: Tensor) -> Tensor { binary(a, b, SubKernel()) }
  public static func * (a: Tensor, b: Tensor) -> Tensor { binary(a, b, MulKernel()) }
  public static func / (a: Tensor, b: Tensor) -> Tensor { binary(a, b, DivKernel()) }

  public static func + (a: Tensor, s: Float) -> Tensor { a.map(ScaleShiftKernel(scale: 1, shift: s)) }
  public static func - (a: Tensor, s: Float) -> Tensor { a.map(ScaleShiftKernel(scale: 1, shift: -s)) }
  public static func * (a: Tensor, s: Float) -> Tensor { a.map(ScaleShiftKernel(scale: s, shift: 0)) }
  public static func / (a: Tensor, s: Float) -> Tensor {
    a.map(RightScalarKernel(k: DivKernel(), s: Float8(repeating: s)))
  }
  public static func + (s: Float, a: Tensor) -> Tensor { a + s }
  public static func - (s: Float, a: Tensor) -> Tensor { a.map(ScaleShiftKernel(scale: -1, shift: s)) }
  public static func * (s: Float, a: Tensor) -> Tensor { a * s }
  public static func / (s: Float, a: Tensor) -> Tensor {
    a.map(LeftScalarKernel(k: DivKernel(), s: Float8(repeating: s)))
  }
  public static prefix func - (a: Tensor) -> Tensor { a.map(NegKernel()) }

  /// In place when `lhs` owns its storage and the shapes match; otherwise a broadcast add.
  public static func += (lhs: inout Tensor, rhs: Tensor) {
    if lhs.shape == rhs.shape { lhs.update(with: rhs, AddKernel()) } else { lhs = lhs + rhs }
  }
  public static func -= (lhs: inout Tensor, rhs: Tensor) {
    if lhs.shape == rhs.shape { lhs.update(with: rhs, SubKernel()) } else { lhs = lhs - rhs }
  }
  public static func *= (lhs: inout Tensor, rhs: Tensor) {
    if lhs.shape == rhs.shape { lhs.update(with: rhs, MulKernel()) } else { lhs = lhs * rhs }
  }
  public static func /= (lhs: inout Tensor, rhs: Tensor) {
    if lhs.shape == rhs.shape { lhs.update(with: rhs, DivKernel()) } else { lhs = lhs / rhs }
  }
  public static func *= (lhs: inout Tensor, s: Float) {
    lhs.apply(ScaleShiftKernel(scale: s, shift: 0))
  }
  public static func += (lhs: inout Tensor, s: Float) {
    lhs.apply(ScaleShiftKernel(scale: 1, shift: s))
  }

  /// `self + alpha * other` in place (same shape), the optimiser's axpy.
  public mutating func addScaled(_ other: Tensor, _ alpha: Float) {
    struct Axpy: BinaryKernel {
      let alpha: Float
      @inline(__always) func callAsFunction(_ x: Float8, _ y: Float8) -> Float8 { x + alpha * y }
    }
    update(with: other, Axpy(alpha: alpha))
  }

  static func binary<K: BinaryKernel>(_ a: Tensor, _ b: Tensor, _ k: K) -> Tensor {
    if a.shape == b.shape { return zip(a, b, k) }
    if b.count == 1 && b.rank <= a.rank {
      return a.map(RightScalarKernel(k: k, s: Float8(repeating: b.storage.base[0])))
        .reshaped(BroadcastPlan.shape(a.shape, b.shape))
    }
    if a.count == 1 && a.rank <= b.rank {
      return b.map(LeftScalarKernel(k: k, s: Float8(repeating: a.storage.base[0])))
        .reshaped(BroadcastPlan.shape(a.shape, b.shape))
    }
    return broadcastZip(a, b, k)
  }
}

// MARK: - Unary functions

/// e^x elementwise.
public func exp(_ x: Tensor) -> Tensor { x.map(ExpKernel(), grain: transcendentalGrain) }
/// Natural logarithm elementwise.
public func log(_ x: Tensor) -> Tensor { x.map(LogKernel(), grain: transcendentalGrain) }
/// Square root elementwise.
public func sqrt(_ x: Tensor) -> Tensor { x.map(SqrtKernel()) }
/// 1 / sqrt(x) elementwise.
public func rsqrt(_ x: Tensor) -> Tensor { x.map(RsqrtKernel()) }
/// |x| elementwise.
public func abs(_ x: Tensor) -> Tensor { x.map(AbsKernel()) }
/// -1, 0 or 1 elementwise.
public func sign(_ x: Tensor) -> Tensor { x.map(SignKernel()) }
/// x^2 elementwise.
public func square(_ x: Tensor) -> Tensor { x.map(SquareKernel()) }
/// 1 / x elementwise.
public func reciprocal(_ x: Tensor) -> Tensor { x.map(ReciprocalKernel()) }
/// Hyperbolic tangent elementwise.
public func tanh(_ x: Tensor) -> Tensor { x.map(TanhKernel(), grain: transcendentalGrain) }
/// The logistic sigmoid 1 / (1 + e^-x) elementwise.
public func sigmoid(_ x: Tensor) -> Tensor { x.map(SigmoidKernel(), grain: transcendentalGrain) }
/// log(1 + e^x) elementwise, stable for large |x|.
public func softplus(_ x: Tensor) -> Tensor { x.map(SoftplusKernel(), grain: transcendentalGrain) }
/// max(x, 0) elementwise.
public func relu(_ x: Tensor) -> Tensor { x.map(ReluKernel()) }
/// x * sigmoid(x) (swish) elementwise.
public func silu(_ x: Tensor) -> Tensor { x.map(SiluKernel(), grain: transcendentalGrain) }
/// GELU in its tanh form, elementwise.
public func gelu(_ x: Tensor) -> Tensor { x.map(GeluKernel(), grain: transcendentalGrain) }
/// sign(x) log(1 + |x|) elementwise.
public func symlog(_ x: Tensor) -> Tensor { x.map(SymlogKernel(), grain: transcendentalGrain) }
/// sign(x) (e^|x| - 1) elementwise, the inverse of ``symlog(_:)``.
public func symexp(_ x: Tensor) -> Tensor { x.map(SymexpKernel(), grain: transcendentalGrain) }
/// Cosine elementwise (libm, per element).
public func cos(_ x: Tensor) -> Tensor { x.map(CosKernel(), grain: transcendentalGrain) }
/// Sine elementwise (libm, per element).
public func sin(_ x: Tensor) -> Tensor { x.map(SinKernel(), grain: transcendentalGrain) }
/// x limited to [lower, upper] elementwise.
public func clamp(_ x: Tensor, min lower: Float, max upper: Float) -> Tensor {
  precondition(lower <= upper, "clamp: min \(lower) is above max \(upper)")
  return x.map(ClampKernel(lo: lower, hi: upper))
}
/// x^p elementwise for a scalar exponent.
public func pow(_ x: Tensor, _ p: Float) -> Tensor {
  if p == 2 { return square(x) }
  if p == 1 { return x }
  if p == 0.5 { return sqrt(x) }
  return x.map(PowScalarKernel(p: p), grain: transcendentalGrain)
}
/// a^b elementwise with broadcasting.
public func pow(_ a: Tensor, _ b: Tensor) -> Tensor { Tensor.binary(a, b, PowKernel()) }
/// Elementwise minimum with broadcasting.
public func minimum(_ a: Tensor, _ b: Tensor) -> Tensor { Tensor.binary(a, b, MinKernel()) }
/// Elementwise maximum with broadcasting.
public func maximum(_ a: Tensor, _ b: Tensor) -> Tensor { Tensor.binary(a, b, MaxKernel()) }
/// Elementwise maximum with a scalar.
public func maximum(_ a: Tensor, _ s: Float) -> Tensor {
  a.map(RightScalarKernel(k: MaxKernel(), s: Float8(repeating: s)))
}
/// Elementwise minimum with a scalar.
public func minimum(_ a: Tensor, _ s: Float) -> Tensor {
  a.map(RightScalarKernel(k: MinKernel(), s: Float8(repeating: s)))
}

// MARK: - Comparisons and selection (1 = true, 0 = false)

/// 1 where a > b, else 0 (broadcasting).
public func greater(_ a: Tensor, _ b: Tensor) -> Tensor {
  Tensor.binary(a, b, CompareKernel(op: .greater))
}
/// 1 where a >= b, else 0 (broadcasting).
public func greaterEqual(_ a: Tensor, _ b: Tensor) -> Tensor {
  Tensor.binary(a, b, CompareKernel(op: .greaterEqual))
}
/// 1 where a < b, else 0 (broadcasting).
public func less(_ a: Tensor, _ b: Tensor) -> Tensor { Tensor.binary(a, b, CompareKernel(op: .less)) }
/// 1 where a <= b, else 0 (broadcasting).
public func lessEqual(_ a: Tensor, _ b: Tensor) -> Tensor {
  Tensor.binary(a, b, CompareKernel(op: .lessEqual))
}
/// 1 where a == b, else 0 (broadcasting).
public func equal(_ a: Tensor, _ b: Tensor) -> Tensor { Tensor.binary(a, b, CompareKernel(op: .equal)) }
/// 1 where a != b, else 0 (broadcasting).
public func notEqual(_ a: Tensor, _ b: Tensor) -> Tensor {
  Tensor.binary(a, b, CompareKernel(op: .notEqual))
}

/// NumPy's `where`: `a` where `condition` is non-zero, else `b`; all three broadcast together.
public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
  let shape = BroadcastPlan.shape(BroadcastPlan.shape(condition.shape, a.shape), b.shape)
  return Tensor.zip(
    condition.broadcast(to: shape), a.broadcast(to: shape), b.broadcast(to: shape), SelectKernel())
}

// MARK: - Derivative helpers (used by the Autodiff VJPs)

extension Tensor {
  /// g * (1 - y^2) for y = tanh(x).
  public static func tanhBackward(output y: Tensor, gradient g: Tensor) -> Tensor {
    zip(y, g, TanhGradKernel())
  }
  /// g * y (1 - y) for y = sigmoid(x).
  public static func sigmoidBackward(output y: Tensor, gradient g: Tensor) -> Tensor {
    zip(y, g, SigmoidGradKernel())
  }
  /// g * silu'(x).
  public static func siluBackward(input x: Tensor, gradient g: Tensor) -> Tensor {
    zip(x, g, SiluGradKernel(), grain: transcendentalGrain)
  }
  /// g * gelu'(x) (tanh form).
  public static func geluBackward(input x: Tensor, gradient g: Tensor) -> Tensor {
    zip(x, g, GeluGradKernel(), grain: transcendentalGrain)
  }
  /// g * sigmoid(x), the softplus derivative.
  public static func softplusBackward(input x: Tensor, gradient g: Tensor) -> Tensor {
    zip(x, g, SoftplusGradKernel(), grain: transcendentalGrain)
  }
  /// g / (1 + |x|), the symlog derivative.
  public static func symlogBackward(input x: Tensor, gradient g: Tensor) -> Tensor {
    zip(x, g, SymlogGradKernel())
  }
  /// g * e^|x|, the symexp derivative.
  public static func symexpBackward(input x: Tensor, gradient g: Tensor) -> Tensor {
    zip(x, g, SymexpGradKernel(), grain: transcendentalGrain)
  }
  /// g where mask != 0, else 0 (same shapes).
  public static func masked(_ g: Tensor, by mask: Tensor) -> Tensor { zip(mask, g, MaskGradKernel()) }
}
