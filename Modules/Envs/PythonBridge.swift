import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An environment that runs in a Python worker process: Gymnasium, DeepMind Control, Atari and
/// the real Memory Maze, POPGym and BSuite packages behind the ``Env`` interface, so that
/// everything that takes a registered name takes these too.
///
/// Names, by family: `gym:<any Gymnasium id>`, `dmc:<domain>_<task>` (proprioceptive vector,
/// action repeat 2), `dmc-vision:<domain>_<task>` (64x64 RGB), `atari:<Game>` (64x64 RGB, action
/// repeat 4 with the last two frames max-pooled, no sticky actions, up to 30 no-ops at reset, the
/// game's minimal action set), `real-memorymaze:<N>x<N>`, `real-popgym:<Game><Level>`,
/// `real-bsuite:memory_len/<L>`, `real-bsuite:discounting_chain/<mapping seed>`.
///
/// Each environment is one worker (`Python/r2i_bridge.py --worker`) in a process group of its
/// own, spoken to over its stdin and stdout in a small binary protocol (observations and actions
/// as raw little-endian arrays; the file's docstring defines it). ``BatchEnv`` sends every
/// worker its request before reading any reply, so the workers of a batch step in parallel.
///
/// Which Python: `R2I_PYTHON` when set, else the repository's `.venv/bin/python`, which
/// `./Tools/dev.sh python` creates with pinned packages (the `run` and `test` commands do it as
/// well). Which script: `R2I_BRIDGE_SCRIPT` when set, else `Python/r2i_bridge.py` found above the
/// executable's folder or the current one. A reply slower than `R2I_PYTHON_TIMEOUT` seconds
/// (default 120; five times that for building the environment) counts as a hang.
///
/// Failures: a missing package is an ``EnvError/invalidConfiguration(_:)`` naming the package
/// and the command that installs it; a worker that exits, crashes or hangs is an
/// ``EnvError/workerFailed(env:_:)`` with its last lines of output (a hung worker is killed).
/// Actions are checked against the space before they are sent. Workers exit when their
/// environment is released, when the parent process exits or is killed, and they ignore Ctrl-C
/// (the parent stops them).
public final class PythonEnvironment: Env, PipelinedEnv {
  public let name: String
  public let observationSpace: Space
  public let actionSpace: Space
  public let maxEpisodeSteps: Int?
  public let task: TaskFacts
  let worker: PythonWorker
  var episode = EpisodeGuard()

  /// The families this backend serves, each with the form of its names.
  public static let families: [(family: String, form: String)] = [
    ("gym", "gym:<Gymnasium id>"), ("dmc", "dmc:<domain>_<task>"), ("dmc-vision", "dmc-vision:<domain>_<task>"),
    ("atari", "atari:<Game>"), ("real-memorymaze", "real-memorymaze:<N>x<N>"),
    ("real-popgym", "real-popgym:<Game><Easy|Medium|Hard>"), ("real-bsuite", "real-bsuite:memory_len/<L>"),
    ("real-bsuite", "real-bsuite:discounting_chain/<mapping seed>"),
  ]

  /// The Python and the worker script a new environment would use (as described above), or an
  /// error naming what is missing and how to install it.
  public static func interpreter() throws -> (python: String, script: String) {
    try PythonWorker.locate(python: nil)
  }

  /// Whether `name` belongs to a Python family (`<family>:<rest>`).
  public static func handles(_ name: String) -> Bool {
    guard let colon = name.firstIndex(of: ":") else { return false }
    let family = String(name[..<colon])
    return family == "fault" || families.contains { $0.family == family }
  }

  /// Starts a worker and builds `name` in it, seeded with `seed`.
  public convenience init(name: String, seed: UInt64) throws {
    try self.init(name: name, seed: seed, worker: WorkerOptions())
  }

  /// How a worker starts, for tests: another Python, extra interpreter arguments, another
  /// reply time limit (nil: as ``PythonEnvironment`` describes).
  struct WorkerOptions {
    var python: String? = nil
    var arguments: [String] = []
    var timeout: Double? = nil
  }

  init(name: String, seed: UInt64, worker options: WorkerOptions) throws {
    guard Self.handles(name), !name.hasSuffix(":") else {
      throw EnvError.invalidConfiguration(
        "'\(name)' is not a Python environment name; forms: \(Self.families.map(\.form).joined(separator: ", "))")
    }
    self.name = name
    worker = try PythonWorker(label: name, options: options)
    let request = try JSONSerialization.data(withJSONObject: ["name": name, "seed": seed])
    try worker.send(.make, Array(request))
    let reply = try worker.receive(timeoutScale: 5)
    guard let description = try? JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any],
      let observation = description["observation"] as? [String: Any],
      let action = description["action"] as? [String: Any]
    else {
      throw EnvError.workerFailed(env: name, "the worker's description of its spaces is not valid JSON")
    }
    observationSpace = try Self.space(observation, env: name)
    actionSpace = try Self.space(action, env: name)
    if case .image = actionSpace {
      throw EnvError.invalidConfiguration("\(name): an image action space cannot be acted in")
    }
    maxEpisodeSteps = description["maxEpisodeSteps"] as? Int
    task = Self.nativeCounterpart(of: name).map { (try? EnvRegistry.make($0).task) ?? TaskFacts() } ?? TaskFacts()
  }

  /// The native environment a `real-` name checks, whose task facts it shares: `real-bsuite:X` is
  /// `bsuite/X`, `real-popgym:X` is `popgym/X`, `real-memorymaze:X` is `memorymaze/X`.
  public static func nativeCounterpart(of name: String) -> String? {
    for (prefix, native) in [
      ("real-bsuite:", "bsuite/"), ("real-popgym:", "popgym/"), ("real-memorymaze:", "memorymaze/"),
    ]
    where name.hasPrefix(prefix) {
      return native + name.dropFirst(prefix.count)
    }
    return nil
  }

  static func space(_ d: [String: Any], env: String) throws -> Space {
    func floats(_ key: String) throws -> [Float] {
      guard let values = d[key] as? [NSNumber] else {
        throw EnvError.workerFailed(env: env, "the worker's space has no '\(key)' list")
      }
      // The worker sends infinite bounds as +-1e30 (JSON has no infinity).
      return values.map { v in
        let x = v.doubleValue
        return abs(x) >= 1e30 ? (x > 0 ? .infinity : -.infinity) : Float(x)
      }
    }
    switch d["kind"] as? String {
    case "vector", "box":
      let (low, high) = (try floats("low"), try floats("high"))
      guard low.count == high.count, !low.isEmpty else {
        throw EnvError.workerFailed(
          env: env, "the worker's box space has bounds of \(low.count) and \(high.count) entries")
      }
      return .box(low: low, high: high)
    case "image":
      guard let h = d["height"] as? Int, let w = d["width"] as? Int, let c = d["channels"] as? Int, h > 0, w > 0,
        c > 0
      else { throw EnvError.workerFailed(env: env, "the worker's image space has no valid size") }
      return .image(height: h, width: w, channels: c)
    case "discrete":
      guard let n = d["n"] as? Int, n >= 1 else {
        throw EnvError.workerFailed(env: env, "a discrete space needs n >= 1")
      }
      return .discrete(n)
    case "multiDiscrete":
      guard let counts = d["counts"] as? [Int], !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }) else {
        throw EnvError.workerFailed(env: env, "a multi-discrete space needs counts >= 1")
      }
      return .multiDiscrete(counts)
    default:
      throw EnvError.workerFailed(env: env, "the worker sent a space of unknown kind: \(d)")
    }
  }

  public func reset(seed: UInt64?) throws -> Observation {
    try sendReset(seed: seed)
    return try receiveReset()
  }

  public func step(_ action: Action) throws -> StepResult {
    try sendStep(action)
    return try receiveStep()
  }

  func sendReset(seed: UInt64?) throws {
    var payload: [UInt8] = [seed == nil ? 0 : 1]
    Self.append(seed ?? 0, to: &payload)
    try worker.send(.reset, payload)
  }

  func receiveReset() throws -> Observation {
    let reply = try worker.receive()
    let observation = try decodeObservation(reply[...])
    episode.begin()
    return observation
  }

  func sendStep(_ action: Action) throws {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    var payload: [UInt8] = []
    switch action {
    case .discrete(let a): Self.append(UInt64(bitPattern: Int64(a)), to: &payload)
    case .multiDiscrete(let a): for v in a { Self.append(UInt64(bitPattern: Int64(v)), to: &payload) }
    case .continuous(let a): for v in a { Self.append(v.bitPattern, to: &payload) }
    }
    try worker.send(.step, payload)
  }

  func receiveStep() throws -> StepResult {
    let reply = try worker.receive()
    guard reply.count >= 10 else {
      throw EnvError.workerFailed(env: name, "a step reply of \(reply.count) bytes is too short")
    }
    let reward = Double(bitPattern: Self.read(UInt64.self, reply, at: 0))
    let observation = try decodeObservation(reply[10...])
    let result = StepResult(
      observation: observation, reward: reward, terminated: reply[8] != 0, truncated: reply[9] != 0)
    episode.end(if: result.isLast)
    return result
  }

  /// The environment's own picture, or nil when it cannot draw (or the worker fails).
  public func render() -> Frame? {
    guard (try? worker.send(.render, [])) != nil, let reply = try? worker.receive(), reply.count >= 12 else {
      return nil
    }
    let (h, w, c) = (
      Int(Self.read(UInt32.self, reply, at: 0)), Int(Self.read(UInt32.self, reply, at: 4)),
      Int(Self.read(UInt32.self, reply, at: 8))
    )
    guard h > 0, w > 0, c > 0, reply.count == 12 + h * w * c else { return nil }
    return Frame(width: w, height: h, channels: c, pixels: Array(reply[12...]))
  }

  func decodeObservation(_ bytes: ArraySlice<UInt8>) throws -> Observation {
    switch observationSpace {
    case .image(let h, let w, let c):
      guard bytes.count == h * w * c else {
        throw EnvError.workerFailed(env: name, "an image observation of \(bytes.count) bytes, expected \(h * w * c)")
      }
      return .image(Frame(width: w, height: h, channels: c, pixels: Array(bytes)))
    default:
      let n = observationSpace.flatSize
      guard bytes.count == 4 * n else {
        throw EnvError.workerFailed(env: name, "a vector observation of \(bytes.count) bytes, expected \(4 * n)")
      }
      return .vector(
        bytes.withUnsafeBytes { raw in
          (0..<n).map {
            Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
          }
        })
    }
  }

  static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
  }

  static func read<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
    var value: T = 0
    for i in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + i]) << (8 * i) }
    return value
  }
}

/// An environment whose step can be split in two, the request and the reply, so that a batch
/// sends every request before waiting for any reply.
protocol PipelinedEnv: Env {
  func sendReset(seed: UInt64?) throws
  func receiveReset() throws -> Observation
  func sendStep(_ action: Action) throws
  func receiveStep() throws -> StepResult
}

/// One Python worker process and its pipes.
final class PythonWorker {
  enum Request: UInt8 {
    case make = 0x4D  // M
    case reset = 0x52  // R
    case step = 0x53  // S
    case render = 0x47  // G
    case close = 0x43  // C
  }

  let label: String
  let pid: pid_t
  let input: Int32
  let output: Int32
  let errors: Int32
  /// The last bytes the worker wrote to stderr (tracebacks, warnings), for error messages.
  var errorTail: [UInt8] = []
  /// The pipes are closed and the process reaped (or being killed).
  var stopped = false
  /// The process has exited and was waited for.
  var reaped = false
  let timeout: Double

  /// The Python and the bridge script, found as ``PythonEnvironment`` describes.
  static func locate(python override: String?) throws -> (python: String, script: String) {
    var environment = ProcessInfo.processInfo.environment
    if let override { environment["R2I_PYTHON"] = override }
    let fm = FileManager.default
    var script = environment["R2I_BRIDGE_SCRIPT"]
    if let s = script, !fm.fileExists(atPath: s) {
      throw EnvError.invalidConfiguration("R2I_BRIDGE_SCRIPT is \(s), which does not exist")
    }
    if script == nil {
      var starts = [fm.currentDirectoryPath]
      if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        starts.insert((exe as NSString).deletingLastPathComponent, at: 0)
      }
      search: for start in starts {
        var dir = start
        for _ in 0..<8 {
          let candidate = dir + "/Python/r2i_bridge.py"
          if fm.fileExists(atPath: candidate) {
            script = candidate
            break search
          }
          let parent = (dir as NSString).deletingLastPathComponent
          if parent == dir { break }
          dir = parent
        }
      }
    }
    guard let script else {
      throw EnvError.invalidConfiguration(
        "Python environments need the repository's Python/r2i_bridge.py, found neither above this program nor above the current folder: run from the repository, or set R2I_BRIDGE_SCRIPT to the file"
      )
    }
    let root = ((script as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
    if let python = environment["R2I_PYTHON"] {
      guard fm.isExecutableFile(atPath: python) else {
        throw EnvError.invalidConfiguration("R2I_PYTHON is \(python), which is not an executable file")
      }
      return (python, script)
    }
    let venv = root + "/.venv/bin/python"
    guard fm.isExecutableFile(atPath: venv) else {
      throw EnvError.invalidConfiguration(
        "Python environments need the virtual environment \(root)/.venv with the pinned packages: run ./Tools/dev.sh python (or set R2I_PYTHON to a Python that has them)"
      )
    }
    return (venv, script)
  }

  init(label: String, options: PythonEnvironment.WorkerOptions) throws {
    self.label = label
    let (python, script) = try Self.locate(python: options.python)
    timeout = options.timeout ?? ProcessInfo.processInfo.environment["R2I_PYTHON_TIMEOUT"].flatMap(Double.init) ?? 120
    // A write to a worker that died must be an error, not SIGPIPE killing this process.
    signal(SIGPIPE, SIG_IGN)
    func pipeCloseOnExec() throws -> (read: Int32, write: Int32) {
      var fds: [Int32] = [0, 0]
      guard pipe(&fds) == 0 else {
        throw EnvError.workerFailed(env: label, "cannot create a pipe: \(String(cString: strerror(errno)))")
      }
      for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
      return (fds[0], fds[1])
    }
    let toChild = try pipeCloseOnExec()
    let fromChild = try pipeCloseOnExec()
    let errorPipe = try pipeCloseOnExec()
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, toChild.read, 0)
    posix_spawn_file_actions_adddup2(&actions, fromChild.write, 1)
    posix_spawn_file_actions_adddup2(&actions, errorPipe.write, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // Its own process group: Ctrl-C in the terminal reaches this process, which stops the
    // worker itself after its checkpoint. Default signal handling and an empty mask.
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, s) }
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setsigmask(&attributes, &mask)
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(
      &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    var environment = ProcessInfo.processInfo.environment
    environment["MUJOCO_GL"] = environment["MUJOCO_GL"] ?? "osmesa"
    environment["PYOPENGL_PLATFORM"] = environment["PYOPENGL_PLATFORM"] ?? "osmesa"
    environment["PYTHONUNBUFFERED"] = "1"
    let argv = ([python] + options.arguments + [script, "--worker"]).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in argv + envp { free(p) } }
    var pid: pid_t = 0
    let status = posix_spawn(&pid, python, &actions, &attributes, argv, envp)
    for fd in [toChild.read, fromChild.write, errorPipe.write] { Glibc.close(fd) }
    guard status == 0 else {
      for fd in [toChild.write, fromChild.read, errorPipe.read] { Glibc.close(fd) }
      throw EnvError.workerFailed(env: label, "cannot start \(python): \(String(cString: strerror(status)))")
    }
    self.pid = pid
    input = toChild.write
    output = fromChild.read
    errors = errorPipe.read
    _ = fcntl(errors, F_SETFL, fcntl(errors, F_GETFL) | O_NONBLOCK)
  }

  deinit { close() }

  /// Sends one request.
  func send(_ request: Request, _ payload: [UInt8]) throws {
    guard !stopped else { throw EnvError.workerFailed(env: label, "the worker was stopped after an earlier failure") }
    var message: [UInt8] = [request.rawValue]
    PythonEnvironment.append(UInt32(payload.count), to: &message)
    message += payload
    var sent = 0
    while sent < message.count {
      let n = message.withUnsafeBytes { write(input, $0.baseAddress! + sent, message.count - sent) }
      if n < 0 {
        if errno == EINTR { continue }
        throw failure("the worker stopped reading (\(String(cString: strerror(errno))))")
      }
      sent += n
    }
  }

  /// Reads one reply; throws the worker's own error for an error reply (an invalid action, a
  /// configuration problem such as a missing package, or the environment's exception), and a
  /// ``EnvError/workerFailed(env:_:)`` when the worker exits or does not answer in time.
  func receive(timeoutScale: Double = 1) throws -> [UInt8] {
    guard !stopped else { throw EnvError.workerFailed(env: label, "the worker was stopped after an earlier failure") }
    let limit = timeout * timeoutScale
    let deadline = Date().addingTimeInterval(limit)
    let head = try readExactly(5, deadline: deadline, limit: limit)
    let length = Int(PythonEnvironment.read(UInt32.self, head, at: 1))
    let payload = try readExactly(length, deadline: deadline, limit: limit)
    switch head[0] {
    case UInt8(ascii: "K"): return payload
    case UInt8(ascii: "E"):
      let message = String(decoding: payload.dropFirst(), as: UTF8.self)
      switch payload.first {
      case UInt8(ascii: "A"): throw EnvError.invalidAction(env: label, message)
      case UInt8(ascii: "C"): throw EnvError.invalidConfiguration("\(label): \(message)")
      default: throw EnvError.workerFailed(env: label, "the environment raised \(message)\(tailText())")
      }
    default:
      throw failure("the worker sent a reply the protocol does not have (a package printed to the protocol pipe?)")
    }
  }

  func readExactly(_ count: Int, deadline: Date, limit: Double) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
      let remaining = deadline.timeIntervalSinceNow
      if remaining <= 0 {
        kill(pid, SIGKILL)
        throw failure(
          "the worker did not answer within \(Int(limit)) s (hung; it was killed; R2I_PYTHON_TIMEOUT sets the limit)")
      }
      var fds = [
        pollfd(fd: output, events: Int16(POLLIN), revents: 0), pollfd(fd: errors, events: Int16(POLLIN), revents: 0),
      ]
      let ready = poll(&fds, 2, Int32(min(remaining, 1) * 1000) + 1)
      if ready < 0 {
        if errno == EINTR { continue }
        throw failure("poll failed: \(String(cString: strerror(errno)))")
      }
      if fds[1].revents != 0 { drainErrors() }
      guard fds[0].revents != 0 else { continue }
      let n = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress! + got, count - got) }
      if n == 0 {
        drainErrors()
        throw failure("the worker exited (\(exitStatus()))")
      }
      if n < 0 {
        if errno == EINTR || errno == EAGAIN { continue }
        throw failure("reading from the worker failed: \(String(cString: strerror(errno)))")
      }
      got += n
    }
    return buffer
  }

  /// Reads what the worker wrote to stderr so far, keeping the last 8 KB.
  func drainErrors() {
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = chunk.withUnsafeMutableBytes { read(errors, $0.baseAddress!, 4096) }
      guard n > 0 else { return }
      errorTail += chunk[0..<n]
      if errorTail.count > 8192 { errorTail.removeFirst(errorTail.count - 8192) }
    }
  }

  func tailText() -> String {
    drainErrors()
    let lines = String(decoding: errorTail, as: UTF8.self).split(separator: "\n").suffix(12)
    return lines.isEmpty ? "" : "; its last output:\n  " + lines.joined(separator: "\n  ")
  }

  /// How the worker ended, waiting briefly for it.
  func exitStatus() -> String {
    var status: Int32 = 0
    for _ in 0..<100 {
      let r = waitpid(pid, &status, WNOHANG)
      if r == pid {
        reaped = true
        let signalled = status & 0x7f
        return signalled == 0 ? "status \((status >> 8) & 0xff)" : "killed by signal \(signalled)"
      }
      if r < 0 { return "status unknown" }
      usleep(10_000)
    }
    return "still running"
  }

  /// A worker failure: stops the worker and names it with its last output.
  func failure(_ what: String) -> EnvError {
    let message = "\(what)\(tailText())"
    stop(gracefully: false)
    return .workerFailed(env: label, message)
  }

  /// Asks the worker to exit, waits up to 2 s, then kills it; closes the pipes.
  func close() { stop(gracefully: true) }

  func stop(gracefully: Bool) {
    guard !stopped else { return }
    if gracefully && !reaped {
      _ = try? send(.close, [])
    }
    stopped = true
    Glibc.close(input)
    var status: Int32 = 0
    if !reaped && gracefully {
      for _ in 0..<200 {
        if waitpid(pid, &status, WNOHANG) != 0 {
          reaped = true
          break
        }
        usleep(10_000)
      }
    }
    if !reaped {
      kill(pid, SIGKILL)
      waitpid(pid, &status, 0)
      reaped = true
    }
    Glibc.close(output)
    Glibc.close(errors)
  }
}
