import Tensor

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
    // M = -i K is Hermitian and purely imaginary: M_rc = -i K_rc.
    var im = [Double](repeating: 0, count: n * n)
    for row in 0..<n {
      for col in 0..<n where row != col {
        let s = 0.5 * (2 * Double(row) + 1).squareRoot() * (2 * Double(col) + 1).squareRoot()
        im[row * n + col] = row > col ? s : -s  // -K_rc, K_rc = -s below the diagonal
      }
    }
    let (w, vr, vi) = HermitianEigen.decompose(re: [Double](repeating: 0, count: n * n), im: im, size: n)
    return ([Double](repeating: -0.5, count: n), w, vr, vi)
  }
}
