import ArgumentParser
import CommandLineSupport
import Distributed
import Foundation

extension Job {
  /// Runs `body` as this process's part of the job (``Job/world``): under mpirun every rank
  /// runs the same command. In a job of several, a failure on this rank may leave the others
  /// waiting for it, so it prints `<command>, rank R of N: <what>` and ends every rank (status
  /// 64 for a command-line mistake, else 1); a stop by signal (status 130) is thrown as it is,
  /// since every rank stopped at the same step. In a job of one, errors are thrown as they are.
  public static func runAsRank(_ command: String, _ body: (any Communicator) throws -> Void) throws {
    do {
      try body(world)
    } catch let exit as ExitCode where exit.rawValue == 130 {
      throw exit
    } catch {
      guard world.size > 1 else { throw error }
      let status = error is ValidationError ? ExitStatus.usage : 1
      FileHandle.standardError.write(Data("\(command), rank \(world.rank) of \(world.size): \(error)\n".utf8))
      world.abort(status: status)
    }
  }
}
