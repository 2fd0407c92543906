import Foundation
import Replay

/// Replay data and a content fingerprint shared by `ReplayTests` and the `replay-crash-writer`
/// helper, so a test can tell exactly which save a folder holds after a killed writer.
public enum ReplayFixture {
  /// Vectors, a small image and a one-hot-sized action: every field of the chunk format is used.
  public static let layout = ReplayLayout(vectorSize: 5, image: (height: 4, width: 4, channels: 3), actionSize: 3)

  /// Inserts `count` random steps into random streams among `streams`; episodes end with
  /// probability 1/20 per step (terminal half of the time).
  public static func insertRandomSteps(
    _ count: Int, streams: Int, into replay: Replay, rng: inout SeededGenerator
  ) throws {
    for _ in 0..<count {
      let stream = rng.nextInt(below: streams)
      let isLast = rng.nextBool(probability: 0.05)
      let step = ReplayStep(
        vector: (0..<layout.vectorSize).map { _ in rng.nextNormal() },
        image: (0..<layout.imageSize).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
        action: (0..<layout.actionSize).map { _ in rng.nextFloat() }, reward: rng.nextNormal(),
        isFirst: rng.nextBool(probability: 0.05), isLast: isLast, isTerminal: isLast && rng.nextBool())
      try replay.insert(step, stream: stream)
    }
  }

  /// A 64-bit FNV-1a hash of every stored step (streams in order, steps in stream order) and of
  /// the insertion counter.
  public static func fingerprint(_ replay: Replay) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ v: UInt64) {
      for i in 0..<8 {
        h ^= (v >> (8 * UInt64(i))) & 0xFF
        h = h &* 0x100_0000_01b3
      }
    }
    mix(UInt64(replay.inserted))
    for (stream, steps) in replay.stepsByStream().sorted(by: { $0.key < $1.key }) {
      mix(UInt64(stream))
      mix(UInt64(steps.count))
      for s in steps {
        for v in s.vector { mix(UInt64(v.bitPattern)) }
        for b in s.image { mix(UInt64(b)) }
        for v in s.action { mix(UInt64(v.bitPattern)) }
        mix(UInt64(s.reward.bitPattern))
        mix((s.isFirst ? 1 : 0) | (s.isLast ? 2 : 0) | (s.isTerminal ? 4 : 0))
      }
    }
    return h
  }
}

/// Executables built beside the test bundle (`swift test` builds every product of the package).
public enum BuiltProducts {
  /// The folder holding the test bundle and the package's executables.
  public static var directory: URL {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
  }

  /// The path of the executable `name`, or an error saying how to build it.
  public static func executable(_ name: String) throws -> URL {
    let url = directory.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: url.path) else {
      throw TestSupportError(
        "\(name) is not built in \(directory.path); run the tests with 'swift test -c release' (it builds every product)"
      )
    }
    return url
  }
}

/// A failure of the test harness itself.
public struct TestSupportError: Error, CustomStringConvertible {
  public let description: String
  public init(_ d: String) { description = d }
}

/// What a child process printed and how it ended.
public struct ProcessResult {
  public var status: Int32
  public var standardOutput: String
  public var standardError: String
  /// True when the process was ended by a signal (a trap is SIGILL or SIGTRAP).
  public var signalled: Bool
}

/// Runs `executable` with `arguments` to the end and collects its output.
public func runProcess(_ executable: URL, _ arguments: [String], in directory: URL? = nil) throws -> ProcessResult {
  let p = Process()
  p.executableURL = executable
  p.arguments = arguments
  if let directory { p.currentDirectoryURL = directory }
  let out = Pipe()
  let err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  // Read standard error on another thread while standard output is read here, so a full pipe
  // never blocks the child.
  final class Box: @unchecked Sendable { var data = Data() }
  let errBox = Box()
  let group = DispatchGroup()
  let errHandle = err.fileHandleForReading
  DispatchQueue.global().async(group: group) { errBox.data = errHandle.readDataToEndOfFile() }
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  group.wait()
  let errData = errBox.data
  p.waitUntilExit()
  return ProcessResult(
    status: p.terminationStatus, standardOutput: String(decoding: outData, as: UTF8.self),
    standardError: String(decoding: errData, as: UTF8.self), signalled: p.terminationReason == .uncaughtSignal)
}

/// Runs `executable` as `ranks` MPI ranks (`mpirun --oversubscribe`, allowed as root, as CI
/// runs), or throws naming the package to install when Open MPI is missing. A job still running
/// after `timeout` seconds is ended (status 124, ``mpiTimedOut``), so a hang fails a test
/// instead of stalling the run.
public func runMPI(ranks: Int, _ executable: URL, _ arguments: [String], timeout: Int = 300) throws -> ProcessResult {
  let mpirun = URL(fileURLWithPath: "/usr/bin/mpirun")
  guard FileManager.default.isExecutableFile(atPath: mpirun.path) else {
    throw TestSupportError("mpirun is missing: install Open MPI (./Tools/dev.sh deps installs openmpi-bin)")
  }
  return try runProcess(
    URL(fileURLWithPath: "/usr/bin/timeout"),
    ["\(timeout)", mpirun.path, "--oversubscribe", "--allow-run-as-root", "-np", "\(ranks)", executable.path]
      + arguments)
}

/// The status `runMPI` gives a job that did not end within its time.
public let mpiTimedOut: Int32 = 124

/// Flips one bit near the end of the file in `folder` whose name starts with `prefix` (a
/// checkpoint part, say) and returns its name.
@discardableResult
public func damageFile(startingWith prefix: String, in folder: URL) throws -> String {
  guard
    let name = try FileManager.default.contentsOfDirectory(atPath: folder.path).first(where: { $0.hasPrefix(prefix) })
  else { throw TestSupportError("no file starting with '\(prefix)' in \(folder.path)") }
  var bytes = try Data(contentsOf: folder.appendingPathComponent(name))
  bytes[bytes.count - 3] ^= 0x10
  try bytes.write(to: folder.appendingPathComponent(name))
  return name
}
