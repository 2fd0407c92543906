import CommandLineSupport
import Foundation

/// A job run as a child process of this executable (or of `launcher`, e.g. mpirun starting
/// ranks of it): its arguments and the log file that gets its output (appended to, so a resumed
/// job's log keeps the earlier sessions).
struct ChildJob {
  let name: String
  let arguments: [String]
  let log: URL
  var launcher: URL? = nil
}

/// Starting ranks of this executable under Open MPI's mpirun.
enum MPILauncher {
  /// mpirun on the PATH, or nil.
  static var mpirun: URL? {
    let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    return paths.map { URL(fileURLWithPath: String($0)).appendingPathComponent("mpirun") }.first {
      FileManager.default.isExecutableFile(atPath: $0.path)
    }
  }

  /// mpirun's options for `ranks` processes: more ranks than cores allowed (a sweep runs several
  /// jobs at once), and as root when this process is root (mpirun refuses root otherwise).
  static func arguments(ranks: Int) -> [String] {
    ["--oversubscribe"] + (geteuid() == 0 ? ["--allow-run-as-root"] : []) + ["-np", "\(ranks)"]
  }
}

/// Runs child processes of this executable, `limit` at a time, and reports as they start and
/// finish: a sweep's runs in parallel, each in a process of its own (so one crash loses one run,
/// and each run's threads are its own). Ctrl-C, SIGTERM or SIGHUP asks every running child to
/// stop (SIGINT, which the runs answer with a checkpoint), starts no more and waits for them, so
/// no child outlives the sweep.
struct ChildProcessPool {
  let limit: Int
  /// A status line for a running or finished job (e.g. read from its run folder).
  let status: (ChildJob) -> String

  /// This executable, to start children of.
  static func executable() -> URL {
    if let url = Bundle.main.executableURL { return url.resolvingSymlinksInPath() }
    return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
  }

  /// Runs `jobs`; returns the names of those that failed (exit status not 0) and whether Ctrl-C
  /// stopped the pool.
  func run(_ jobs: [ChildJob]) throws -> (failed: [String], stopped: Bool) {
    let stop = StopRequest(
      message: "stopping: every run writes a checkpoint; run the same command to resume", quitMessage: nil)
    defer { stop.cancel() }
    var running: [(ChildJob, Process)] = []
    var failed: [String] = []
    var lastStatus = Date()
    var queue = jobs[...]
    while !queue.isEmpty || !running.isEmpty {
      let stopping = stop.isRequested
      while !stopping && running.count < limit, let job = queue.popFirst() {
        running.append((job, try start(job)))
        print("[\(Self.timestamp())] started \(job.name)")
      }
      if stopping { queue.removeAll() }
      Thread.sleep(forTimeInterval: 2)
      if stopping { for (_, p) in running where p.isRunning { p.interrupt() } }
      for (job, p) in running where !p.isRunning {
        if p.terminationStatus == 0 {
          print("[\(Self.timestamp())] finished \(job.name): \(status(job))")
        } else if stop.isRequested && (p.terminationStatus == 130 || (job.launcher != nil && p.terminationStatus == 1))
        {
          // (mpirun interrupted itself exits 1 once its ranks stopped with their checkpoint.)
          print("[\(Self.timestamp())] stopped \(job.name) with a checkpoint: \(status(job))")
        } else {
          failed.append(job.name)
          print("[\(Self.timestamp())] FAILED \(job.name) (exit \(p.terminationStatus)); see \(job.log.path):")
          if let text = try? String(contentsOf: job.log, encoding: .utf8) {
            for line in text.split(separator: "\n").suffix(5) { print("    \(line)") }
          }
        }
      }
      running.removeAll { !$0.1.isRunning }
      if Date().timeIntervalSince(lastStatus) > 300 && !running.isEmpty {
        lastStatus = Date()
        for (job, _) in running { print("[\(Self.timestamp())]   \(job.name): \(status(job))") }
      }
    }
    return (failed, stop.isRequested)
  }

  /// Starts `job` with its output appended to its log.
  func start(_ job: ChildJob) throws -> Process {
    let p = Process()
    p.executableURL = job.launcher ?? Self.executable()
    p.arguments = job.arguments
    let fm = FileManager.default
    try fm.createDirectory(at: job.log.deletingLastPathComponent(), withIntermediateDirectories: true)
    if !fm.fileExists(atPath: job.log.path) { _ = fm.createFile(atPath: job.log.path, contents: nil) }
    let handle = try FileHandle(forWritingTo: job.log)
    try handle.seekToEnd()
    p.standardOutput = handle
    p.standardError = handle
    try p.run()
    return p
  }

  static func timestamp() -> String {
    let f = DateFormatter()
    f.dateFormat = "HH:mm:ss"
    return f.string(from: Date())
  }
}
