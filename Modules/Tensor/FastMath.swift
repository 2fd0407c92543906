#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Eight-lane `Float` vector used by the elementwise kernels.
public typealias Float8 = SIMD8<Float>

/// Vectorised transcendental functions on eight lanes.
///
/// The polynomials are the classic single-precision minimax fits (Cephes `expf`, `logf`,
/// `tanhf` coefficients); accuracy is within about 2 ulp over the normal float range, which the
/// tests check against the C library. Every lane is computed independently, so a value's
/// result does not depend on its position in a buffer.
public enum FastMath {
  /// The shared core of ``exp(_:)`` and ``sigmoid(_:)`` for x already clamped to the float
  /// range: e^x = y * 2^n with y the polynomial of the reduced argument r = x - n ln 2.
  @inlinable @inline(__always)
  static func expReduced(_ x: Float8) -> (y: Float8, n: SIMD8<Int32>) {
    // n = round(x / ln 2) via the 1.5 * 2^23 trick; its bits hold n in the low mantissa.
    let magic = Float8(repeating: 12_582_912)
    let t = x * Float8(repeating: 1.442_695_04) + magic
    let n = t - magic
    let r = x - n * Float8(repeating: 0.693_359_375) - n * Float8(repeating: -2.121_944_40e-4)
    var p = Float8(repeating: 1.987_569_150_0e-4)
    p = p * r + Float8(repeating: 1.398_199_950_7e-3)
    p = p * r + Float8(repeating: 8.333_451_907_3e-3)
    p = p * r + Float8(repeating: 4.166_579_589_4e-2)
    p = p * r + Float8(repeating: 1.666_666_545_9e-1)
    p = p * r + Float8(repeating: 5.000_000_120_1e-1)
    let y = p * (r * r) + r + Float8(repeating: 1)
    return (y, unsafeBitCast(t, to: SIMD8<Int32>.self) &- SIMD8(repeating: 0x4B40_0000))
  }

  /// e^x over the whole float range: +inf above 88.72, 0 below -87.33 (results that would be
  /// subnormal are flushed to 0), NaN for NaN. Branch-free.
  @inlinable @inline(__always)
  public static func exp(_ x0: Float8) -> Float8 {
    let lo = Float8(repeating: -87.33)
    let hi = Float8(repeating: 88.72)
    let x = x0.replacing(with: lo, where: x0 .< lo).replacing(with: hi, where: x0 .> hi)
    let (y, ni) = expReduced(x)
    // 2^n as two factors 2^(n/2) * 2^(n - n/2), so n = 128 and n = -126 stay representable.
    let half = ni &>> 1
    let bias = SIMD8<Int32>(repeating: 127)
    let s1 = unsafeBitCast((half &+ bias) &<< 23, to: Float8.self)
    let s2 = unsafeBitCast((ni &- half &+ bias) &<< 23, to: Float8.self)
    var result = y * s1 * s2
    result = result.replacing(with: 0, where: x0 .< lo)
    result = result.replacing(with: .infinity, where: x0 .> hi)
    return result.replacing(with: x0, where: x0 .!= x0)
  }

  /// Natural logarithm: -inf at 0, NaN below 0, +inf at +inf.
  @inlinable @inline(__always)
  public static func log(_ x0: Float8) -> Float8 {
    // Scale subnormals into the normal range first.
    let tiny = x0 .< Float8(repeating: Float.leastNormalMagnitude)
    let x = x0.replacing(with: x0 * Float8(repeating: 8_388_608), where: tiny)
    let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
    var e =
      Float8((bits &>> SIMD8(repeating: 23)) & SIMD8(repeating: 0xFF))
      - Float8(repeating: 126)
    e = e.replacing(with: e - Float8(repeating: 23), where: tiny)
    var m = unsafeBitCast(
      (bits & SIMD8(repeating: Int32(bitPattern: 0x807F_FFFF))) | SIMD8(repeating: 0x3F00_0000),
      to: Float8.self)  // mantissa in [0.5, 1)
    let small = m .< Float8(repeating: 0.707_106_781_186_547_524)
    e = e.replacing(with: e - Float8(repeating: 1), where: small)
    m = m.replacing(with: m + m - Float8(repeating: 1), where: small)
    m = m.replacing(with: m - Float8(repeating: 1), where: .!small)
    let z = m * m
    var y = Float8(repeating: 7.037_683_629_2e-2)
    y = y * m - Float8(repeating: 1.151_461_031_0e-1)
    y = y * m + Float8(repeating: 1.167_699_874_0e-1)
    y = y * m - Float8(repeating: 1.242_014_084_6e-1)
    y = y * m + Float8(repeating: 1.424_932_278_7e-1)
    y = y * m - Float8(repeating: 1.666_805_766_5e-1)
    y = y * m + Float8(repeating: 2.000_071_476_5e-1)
    y = y * m - Float8(repeating: 2.499_999_399_3e-1)
    y = y * m + Float8(repeating: 3.333_333_117_4e-1)
    y = y * m * z
    y = y + e * Float8(repeating: -2.121_944_40e-4)
    y = y - Float8(repeating: 0.5) * z
    var result = m + y + e * Float8(repeating: 0.693_359_375)
    result = result.replacing(with: -.infinity, where: x0 .== Float8(repeating: 0))
    result = result.replacing(with: .nan, where: x0 .< Float8(repeating: 0))
    result = result.replacing(with: .infinity, where: x0 .== Float8(repeating: .infinity))
    result = result.replacing(with: .nan, where: x0 .!= x0)
    return result
  }

  /// Hyperbolic tangent; a polynomial near 0 keeps the relative error small for tiny inputs.
  @inlinable @inline(__always)
  public static func tanh(_ x: Float8) -> Float8 {
    let a = vabs(x)
    let z = x * x
    var p = Float8(repeating: -5.704_988_727_45e-3)
    p = p * z + Float8(repeating: 2.063_908_879_54e-2)
    p = p * z - Float8(repeating: 5.373_971_555_31e-2)
    p = p * z + Float8(repeating: 1.333_144_220_36e-1)
    p = p * z - Float8(repeating: 3.333_328_194_22e-1)
    let small = p * z * x + x
    let e = exp(a + a)
    var large = Float8(repeating: 1) - Float8(repeating: 2) / (e + Float8(repeating: 1))
    large = large.replacing(with: -large, where: x .< Float8(repeating: 0))
    return small.replacing(with: large, where: a .>= Float8(repeating: 0.625))
  }

  /// The logistic function 1 / (1 + e^-x).
  ///
  /// A lean form of ``exp(_:)``: the logistic saturates, so -x is clamped to [-87, 87] first;
  /// then 2^n fits one exponent field and the range fix-ups of `exp` are not needed (about a
  /// third fewer instructions; SiLU, GLU and the GRU gates all run through here). NaN stays NaN.
  @inlinable @inline(__always)
  public static func sigmoid(_ x: Float8) -> Float8 {
    let limit = Float8(repeating: 87)
    let v0 = -x
    let v = v0.replacing(with: -limit, where: v0 .< -limit).replacing(with: limit, where: v0 .> limit)
    let (y, ni) = expReduced(v)
    // |n| <= 126, so 2^n is the normal float with exponent field n + 127.
    let scale = unsafeBitCast((ni &+ SIMD8(repeating: 127)) &<< 23, to: Float8.self)
    return Float8(repeating: 1) / (Float8(repeating: 1) + y * scale)
  }

  /// Scalar forms: the vector code on one lane, so scalar and vector paths agree exactly.
  @inlinable @inline(__always)
  public static func exp(_ x: Float) -> Float { exp(Float8(repeating: x))[0] }
  @inlinable @inline(__always)
  public static func log(_ x: Float) -> Float { log(Float8(repeating: x))[0] }
  @inlinable @inline(__always)
  public static func tanh(_ x: Float) -> Float { tanh(Float8(repeating: x))[0] }
  @inlinable @inline(__always)
  public static func sigmoid(_ x: Float) -> Float { sigmoid(Float8(repeating: x))[0] }
}

/// |x| on eight lanes (clears the sign bits).
@inlinable @inline(__always)
public func vabs(_ x: Float8) -> Float8 {
  unsafeBitCast(
    unsafeBitCast(x, to: SIMD8<UInt32>.self) & SIMD8(repeating: 0x7FFF_FFFF), to: Float8.self)
}

/// Loads eight floats at `p + i` (no alignment needed).
@inlinable @inline(__always)
public func loadFloat8(_ p: UnsafePointer<Float>, _ i: Int) -> Float8 {
  UnsafeRawPointer(p + i).loadUnaligned(as: Float8.self)
}

/// Stores eight floats at `p + i` (no alignment needed).
@inlinable @inline(__always)
public func storeFloat8(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
  UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Float8.self)
}

/// Loads `n` < 8 floats at `p + i` into the low lanes (the rest are `fill`).
@inlinable @inline(__always)
public func loadPartialFloat8(_ p: UnsafePointer<Float>, _ i: Int, _ n: Int, fill: Float = 0)
  -> Float8
{
  var v = Float8(repeating: fill)
  for k in 0..<n { v[k] = p[i + k] }
  return v
}

/// Stores the low `n` < 8 lanes of `v` at `p + i`.
@inlinable @inline(__always)
public func storePartialFloat8(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) {
  for k in 0..<n { p[i + k] = v[k] }
}

/// Loads `n` <= 8 floats at `p + i`: a whole vector when `n` is 8, else the low lanes (the rest
/// zero). The one helper every kernel with a SIMD tail uses (layer norm, the scan).
@inlinable @inline(__always)
public func load8(_ p: UnsafePointer<Float>, _ i: Int, _ n: Int) -> Float8 {
  n == 8 ? loadFloat8(p, i) : loadPartialFloat8(p, i, n)
}

/// ``load8(_:_:_:)-(UnsafePointer<Float>,_,_)`` from a mutable pointer.
@inlinable @inline(__always)
public func load8(_ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) -> Float8 { load8(UnsafePointer(p), i, n) }

/// Stores the low `n` <= 8 lanes of `v` at `p + i`.
@inlinable @inline(__always)
public func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) {
  if n == 8 { storeFloat8(v, p, i) } else { storePartialFloat8(v, p, i, n) }
}
