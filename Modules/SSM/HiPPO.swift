internal import COpenBLAS

/// The HiPPO-N initialisation of S5: the eigen-decomposition of the normal part of HiPPO-LegS.
///
/// HiPPO-LegS is A_nk = -sqrt(2n+1) sqrt(2k+1) for n > k, -(n+1) on the diagonal, 0 above.
/// Adding the rank-one term P P^T with P_n = sqrt(n + 1/2) gives S = -I/2 + K with K real
/// skew-symmetric. With -iK = V diag(w) V^H (a Hermitian eigenproblem, solved by LAPACK's
/// `zheev`), S = V diag(-1/2 + i w) V^H: the eigenvalues Lambda = -1/2 + i w and the unitary
/// eigenvectors V.
public enum HiPPO {
  /// Eigenvalues (real, imaginary) and eigenvectors of the normal HiPPO-LegS part of size `n`.
  /// `vectors` is row-major complex: `vectorsRe[r * n + c] + i vectorsIm[r * n + c]` is entry
  /// (r, c); column c belongs to eigenvalue c. Eigenvalues come in ascending imaginary part.
  public static func normal(size n: Int) -> (
    lambdaRe: [Double], lambdaIm: [Double], vectorsRe: [Double], vectorsIm: [Double]
  ) {
    precondition(n >= 1, "HiPPO size must be positive")
    // Column-major complex matrix M = -i K, interleaved (re, im).
    var a = [Double](repeating: 0, count: 2 * n * n)
    for col in 0..<n {
      for row in 0..<n where row != col {
        let s = 0.5 * (2 * Double(row) + 1).squareRoot() * (2 * Double(col) + 1).squareRoot()
        let k = row > col ? -s : s  // K_rc
        // -i * K_rc is purely imaginary.
        a[2 * (col * n + row) + 1] = -k
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
      "L".withCString { uplo in
        zheev_(jobz, uplo, &nn, &a, &lda, &w, &query, &lwork, &rwork, &info)
      }
    }
    lwork = Int32(max(1, Int(query[0])))
    var work = [Double](repeating: 0, count: 2 * Int(lwork))
    "V".withCString { jobz in
      "L".withCString { uplo in
        zheev_(jobz, uplo, &nn, &a, &lda, &w, &work, &lwork, &rwork, &info)
      }
    }
    precondition(info == 0, "zheev failed with info \(info) for HiPPO size \(n)")
    var vr = [Double](repeating: 0, count: n * n)
    var vi = [Double](repeating: 0, count: n * n)
    for col in 0..<n {
      for row in 0..<n {
        vr[row * n + col] = a[2 * (col * n + row)]
        vi[row * n + col] = a[2 * (col * n + row) + 1]
      }
    }
    return ([Double](repeating: -0.5, count: n), w, vr, vi)
  }
}
