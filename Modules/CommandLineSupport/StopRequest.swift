import Dispatch
import Foundation
import Synchronization

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP (what `kill`, `timeout`, systemd, docker and a closed
/// ssh session send) as a request to stop at the next safe point, for commands that train or
/// sweep: while one is installed, these signals no longer kill the process; the first prints
/// `message` (if any) and sets ``isRequested``, which the command polls between steps (to stop
/// with a checkpoint). With `quitMessage`, a second signal prints it and quits once the stop's
/// checkpoint is written (the stretch ``protect(_:)`` marks), and a third quits at once; all
/// with status 130.
/// Without `quitMessage`, further signals change nothing (a process whose parent forwards
/// Ctrl-C to it as well as the terminal does must not quit on the double delivery).
///
/// ```swift
/// let stop = StopRequest(message: "stopping after this step", quitMessage: "quitting after the checkpoint")
/// defer { stop.cancel() }
/// while !stop.isRequested { /* one step */ }
/// stop.protect(true); /* write the checkpoint */; stop.protect(false)
/// ```
public final class StopRequest: @unchecked Sendable {
  /// The signals handled.
  public static let signals = [SIGINT, SIGTERM, SIGHUP]
  private let count = Atomic<Int>(0)
  private let critical = Atomic<Int>(0)
  private let quitPending = Atomic<Bool>(false)
  private let sources: [DispatchSourceSignal]

  /// Installs the handlers (until ``cancel()``).
  public init(message: String?, quitMessage: String?) {
    var sources: [DispatchSourceSignal] = []
    for number in Self.signals {
      signal(number, SIG_IGN)
      sources.append(DispatchSource.makeSignalSource(signal: number, queue: .global()))
    }
    self.sources = sources
    for source in sources {
      source.setEventHandler { [self] in
        let n = self.count.add(1, ordering: .relaxed).newValue
        if n == 1, let message {
          FileHandle.standardError.write(Data(("\n" + message + "\n").utf8))
        } else if n >= 2, let quitMessage {
          if n == 2 && self.critical.load(ordering: .relaxed) > 0 {
            FileHandle.standardError.write(
              Data("\n\(quitMessage) (when the checkpoint being written is complete; again to quit at once)\n".utf8))
            self.quitPending.store(true, ordering: .relaxed)
            return
          }
          FileHandle.standardError.write(Data(("\n" + quitMessage + "\n").utf8))
          // _exit, not exit: exit's handlers would tear down the runtime and BLAS under a
          // training thread, which then crashes instead of quitting.
          _exit(130)
        }
      }
      source.resume()
    }
  }

  /// Whether a stop signal arrived since the handlers were installed.
  public var isRequested: Bool { count.load(ordering: .relaxed) > 0 }

  /// Marks the start (`true`) or end (`false`) of a stretch a second signal must not cut (the
  /// checkpoint a stop writes); a deferred quit happens at the end.
  public func protect(_ on: Bool) {
    if on {
      critical.add(1, ordering: .relaxed)
    } else {
      critical.subtract(1, ordering: .relaxed)
      if quitPending.load(ordering: .relaxed) { _exit(130) }
    }
  }

  /// Removes the handlers (the signals stay ignored: a late one cannot kill the process while
  /// it writes its last checkpoint).
  public func cancel() {
    for source in sources {
      source.cancel()
      source.setEventHandler(handler: nil)  // breaks the handler's hold on `self`
    }
  }
}
