internal import COpenBLAS
import Synchronization

/// Matrix product through `cblas_sgemm`, with optional transposes of either operand.
///
/// - `a` of rank >= 2 with `b` of rank 2: the leading axes of `a` are batch rows
///   ([..., M, K] x [K, N] -> [..., M, N]), one sgemm call (with `transposeA`, `a` must be 2-D).
/// - both of rank >= 3: a batched product over equal leading axes; or `a` 2-D shared across a
///   batched `b`.
///
/// ```swift
/// let y = matmul(x, w)                       // [B, T, in] x [in, out] -> [B, T, out]
/// let gW = matmul(x2d, g2d, transposeA: true) // x^T g
/// ```
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false)
  -> Tensor
{
  precondition(
    a.rank >= 2 && b.rank >= 2,
    "matmul needs rank >= 2 operands, got \(a.shape) and \(b.shape)")
  if b.rank == 2 && (a.rank == 2 || !transposeA) {
    let k = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
    let m = transposeA ? a.shape[a.rank - 1] : a.count / Swift.max(k, 1)
    let kb = transposeB ? b.shape[1] : b.shape[0]
    let n = transposeB ? b.shape[0] : b.shape[1]
    precondition(
      k == kb,
      "matmul: inner extents differ: \(a.shape)\(transposeA ? "^T" : "") x \(b.shape)\(transposeB ? "^T" : "")"
    )
    var outShape = transposeA ? [m] : Array(a.shape.dropLast())
    outShape.append(n)
    let out = Tensor(uninitializedShape: outShape)
    sgemm(
      transposeA, transposeB, m, n, k, 1, a.storage.base, b.storage.base, 0, out.storage.base)
    return out
  }
  // Batched.
  let aBatch = Array(a.shape.dropLast(2))
  let bBatch = Array(b.shape.dropLast(2))
  let batchShape: [Int]
  if a.rank == 2 {
    batchShape = bBatch
  } else {
    precondition(
      b.rank == 2 || aBatch == bBatch,
      "matmul: batch axes differ: \(a.shape) and \(b.shape)")
    batchShape = aBatch
  }
  let batch = batchShape.reduce(1, *)
  let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
  let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
  let m = transposeA ? ac : ar
  let k = transposeA ? ar : ac
  let kb = transposeB ? bc : br
  let n = transposeB ? br : bc
  precondition(k == kb, "matmul: inner extents differ: \(a.shape) x \(b.shape)")
  let out = Tensor(uninitializedShape: batchShape + [m, n])
  let aStep = a.rank == 2 ? 0 : ar * ac
  let bStep = b.rank == 2 ? 0 : br * bc
  for i in 0..<batch {
    sgemm(
      transposeA, transposeB, m, n, k, 1, a.storage.base + i * aStep, b.storage.base + i * bStep,
      0, out.storage.base + i * m * n)
  }
  return out
}

/// `c = alpha * op(a) op(b) + beta * c` on row-major buffers: the raw sgemm, for fused kernels.
/// `a` is stored [m, k] (or [k, m] when transposed), `b` [k, n] (or [n, k]), `c` [m, n].
@inlinable
public func sgemm(
  _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
  _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ beta: Float,
  _ c: UnsafeMutablePointer<Float>
) {
  sgemmStrided(
    transposeA, transposeB, m, n, k, alpha, a, transposeA ? m : k, b, transposeB ? k : n, beta, c,
    n)
}

/// Counts the floating-point operations of every matrix product (2 m n k each), including the
/// products inside convolutions. Benchmarks and tests read it; counting is one relaxed atomic add
/// per product.
///
/// Products with a binary block (``Tensor/partsProduct(_:patterns:weight:)``) add weight rows
/// instead of multiplying; the FLOPs a dense product would have spent on those blocks are
/// counted apart, as ``measureWithReplaced(_:)``'s `replaced`, so executed + replaced is the
/// model's dense count.
public enum MatmulCounter {
  static let flops = Atomic<Int>(0)
  /// FLOPs since the process started or the last ``reset()`` (all threads).
  public static var count: Int { flops.load(ordering: .relaxed) }
  public static func reset() { flops.store(0, ordering: .relaxed) }

  final class Scope: @unchecked Sendable {
    var flops = 0
    var replaced = 0
  }
  @TaskLocal static var scope: Scope?

  /// Runs `body` and returns the matrix-product FLOPs issued by this task while it ran (products
  /// are always issued from the calling thread, so concurrent work elsewhere does not count).
  public static func measure<R>(_ body: () throws -> R) rethrows -> (result: R, flops: Int) {
    let (r, executed, _) = try measureWithReplaced(body)
    return (r, executed)
  }

  /// Like ``measure(_:)``, with the dense-product FLOPs that sums of weight rows replaced.
  public static func measureWithReplaced<R>(_ body: () throws -> R) rethrows -> (
    result: R, executed: Int, replaced: Int
  ) {
    let s = Scope()
    let r = try $scope.withValue(s) { try body() }
    return (r, s.flops, s.replaced)
  }

  /// Records `n` dense-product FLOPs replaced by sums of weight rows.
  static func addReplaced(_ n: Int) { if let scope { scope.replaced += n } }
}

/// The raw sgemm with explicit leading dimensions (row-major).
public func sgemmStrided(
  _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
  _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float,
  _ c: UnsafeMutablePointer<Float>, _ ldc: Int
) {
  if m == 0 || n == 0 { return }
  Parallelism.configureBLASOnce()
  MatmulCounter.flops.add(2 * m * n * k, ordering: .relaxed)
  if let scope = MatmulCounter.scope { scope.flops += 2 * m * n * k }
  if k == 0 {
    for i in 0..<m {
      for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] }
    }
    return
  }
  let ta = transposeA ? CblasTrans : CblasNoTrans
  let tb = transposeB ? CblasTrans : CblasNoTrans
  let threads = Parallelism.threadCount
  let chunks =
    Parallelism.gemmThreading == .split && 2 * m * n * k >= 1 << 22
    ? min(threads, max(m, n) / 32) : 1
  guard chunks > 1 else {
    cblas_sgemm(
      CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b,
      blasint(ldb), beta, c, blasint(ldc))
    return
  }
  // Split the larger side of the output across this project's threads; each part is a
  // single-threaded sgemm on its own rows or columns of C.
  nonisolated(unsafe) let (pa, pb, pc) = (a, b, c)
  Parallelism.forEach(iterations: chunks) { i in
    if m >= n {
      let r0 = m * i / chunks
      let r1 = m * (i + 1) / chunks
      cblas_sgemm(
        CblasRowMajor, ta, tb, blasint(r1 - r0), blasint(n), blasint(k), alpha,
        pa + (transposeA ? r0 : r0 * lda), blasint(lda), pb, blasint(ldb), beta, pc + r0 * ldc,
        blasint(ldc))
    } else {
      let c0 = n * i / chunks
      let c1 = n * (i + 1) / chunks
      cblas_sgemm(
        CblasRowMajor, ta, tb, blasint(m), blasint(c1 - c0), blasint(k), alpha, pa, blasint(lda),
        pb + (transposeB ? c0 * ldb : c0), blasint(ldb), beta, pc + c0, blasint(ldc))
    }
  }
}

extension Tensor {
  /// `self += alpha * op(a) op(b)` in place (shapes as in ``matmul(_:_:transposeA:transposeB:)``
  /// for 2-D operands): accumulates a product without a temporary.
  public mutating func addMatmul(
    _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
    alpha: Float = 1
  ) {
    let k = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
    let m = transposeA ? a.shape[a.rank - 1] : a.count / Swift.max(k, 1)
    let n = transposeB ? b.shape[0] : b.shape[1]
    precondition(
      b.rank == 2 && (a.rank == 2 || !transposeA) && count == m * n
        && (transposeB ? b.shape[1] : b.shape[0]) == k,
      "addMatmul: \(shape) += \(a.shape) x \(b.shape) does not fit")
    makeUnique()
    sgemm(transposeA, transposeB, m, n, k, alpha, a.storage.base, b.storage.base, 1, storage.base)
  }
}

/// The eigen-decomposition of a Hermitian matrix (LAPACK's `zheev`, in double precision).
public enum HermitianEigen {
  /// Eigenvalues (ascending) and unit eigenvectors of the n x n Hermitian matrix whose entry
  /// (r, c) is `re[r * n + c] + i im[r * n + c]` (row-major; only the lower triangle is read).
  /// Column c of the returned row-major `vectorsRe + i vectorsIm` belongs to eigenvalue c.
  /// Traps when LAPACK reports a failure (it does not for finite Hermitian input).
  public static func decompose(re: [Double], im: [Double], size n: Int) -> (
    values: [Double], vectorsRe: [Double], vectorsIm: [Double]
  ) {
    precondition(n >= 1 && re.count == n * n && im.count == n * n, "HermitianEigen: need \(n)x\(n) parts")
    // Column-major, interleaved (re, im).
    var a = [Double](repeating: 0, count: 2 * n * n)
    for col in 0..<n {
      for row in 0..<n {
        a[2 * (col * n + row)] = re[row * n + col]
        a[2 * (col * n + row) + 1] = im[row * n + col]
      }
    }
    var w = [Double](repeating: 0, count: n)
    var rwork = [Double](repeating: 0, count: max(1, 3 * n - 2))
    var info: Int32 = 0
    var nn = Int32(n)
    var lda = Int32(n)
    // Workspace query, then the decomposition.
    var lwork: Int32 = -1
    var query = [Double](repeating: 0, count: 2)
    "V".withCString { jobz in
      "L".withCString { uplo in zheev_(jobz, uplo, &nn, &a, &lda, &w, &query, &lwork, &rwork, &info) }
    }
    lwork = Int32(max(1, Int(query[0])))
    var work = [Double](repeating: 0, count: 2 * Int(lwork))
    "V".withCString { jobz in
      "L".withCString { uplo in zheev_(jobz, uplo, &nn, &a, &lda, &w, &work, &lwork, &rwork, &info) }
    }
    precondition(info == 0, "zheev failed with info \(info) for size \(n)")
    var vr = [Double](repeating: 0, count: n * n)
    var vi = [Double](repeating: 0, count: n * n)
    for col in 0..<n {
      for row in 0..<n {
        vr[row * n + col] = a[2 * (col * n + row)]
        vi[row * n + col] = a[2 * (col * n + row) + 1]
      }
    }
    return (w, vr, vi)
  }
}
