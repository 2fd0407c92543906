import Dispatch
import Foundation
import Synchronization

/// Ctrl-C (SIGINT) as a request to stop at the next safe point, for commands that train or
/// sweep: while one is installed, SIGINT no longer kills the process; the first one prints
/// `message` (if any) and sets ``isRequested``, which the command polls between steps (to stop
/// with a checkpoint). With `quitMessage`, a second SIGINT prints it and quits at once with
/// status 130; without it, further SIGINTs change nothing (a process whose parent forwards
/// Ctrl-C to it as well as the terminal does must not quit on the double delivery).
///
/// ```swift
/// let stop = StopRequest(message: "stopping after this step", quitMessage: "quitting now")
/// defer { stop.cancel() }
/// while !stop.isRequested { /* one step */ }
/// ```
public final class StopRequest: @unchecked Sendable {
  private let count = Atomic<Int>(0)
  private let source: DispatchSourceSignal

  /// Installs the handler (until ``cancel()``).
  public init(message: String?, quitMessage: String?) {
    signal(SIGINT, SIG_IGN)
    source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    source.setEventHandler { [self] in
      let n = self.count.add(1, ordering: .relaxed).newValue
      if n == 1, let message {
        FileHandle.standardError.write(Data(("\n" + message + "\n").utf8))
      } else if n >= 2, let quitMessage {
        FileHandle.standardError.write(Data(("\n" + quitMessage + "\n").utf8))
        // _exit, not exit: exit's handlers would tear down the runtime and BLAS under a
        // training thread, which then crashes instead of quitting.
        _exit(130)
      }
    }
    source.resume()
  }

  /// Whether Ctrl-C was pressed since the handler was installed.
  public var isRequested: Bool { count.load(ordering: .relaxed) > 0 }

  /// Removes the handler (SIGINT stays ignored: a late Ctrl-C cannot kill the process while it
  /// writes its last checkpoint).
  public func cancel() {
    source.cancel()
    source.setEventHandler(handler: nil)  // breaks the handler's hold on `self`
  }
}
