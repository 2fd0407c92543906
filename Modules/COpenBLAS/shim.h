#ifndef R2I_COPENBLAS_SHIM_H
#define R2I_COPENBLAS_SHIM_H
// CBLAS and OpenBLAS thread control from the Debian openblas-pthread build
// (pkg-config "openblas" puts its include directory on the path).
#include <cblas.h>

// LAPACK: Hermitian eigen-decomposition (complex double), exported by OpenBLAS.
// Used by the SSM's HiPPO-N initialisation.
void zheev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
            double *w, double *work, const int *lwork, double *rwork, int *info);
#endif
