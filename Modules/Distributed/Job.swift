import Foundation

/// The job this process belongs to.
public enum Job {
  /// True when a launcher started this process as one rank of several (`mpirun`, `srun`): the
  /// variables Open MPI, PMIx and MPICH-style launchers set.
  public static var launchedByMPI: Bool {
    let env = ProcessInfo.processInfo.environment
    return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"].contains { env[$0] != nil }
  }

  /// The job's communicator: MPI's world when launched by `mpirun` (MPI is initialised on first
  /// use, which must be on the thread that runs the collectives), else ``SingleProcess``.
  public static let world: any Communicator = launchedByMPI ? MPICommunicator() : SingleProcess()
}
