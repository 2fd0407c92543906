#ifndef R2I_COPENMPI_SHIM_H
#define R2I_COPENMPI_SHIM_H
// Open MPI from Debian (libopenmpi-dev; pkg-config "mpi" puts its include directories on the
// path). Open MPI spells its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE) as
// macros over the addresses of global objects, which Swift cannot import: these functions
// return them.
#include <mpi.h>

static inline MPI_Comm r2i_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype r2i_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype r2i_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype r2i_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype r2i_mpi_int(void) { return MPI_INT; }
static inline MPI_Op r2i_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op r2i_mpi_max(void) { return MPI_MAX; }
static inline void *r2i_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int r2i_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
#endif
