import Agent
import ArgumentParser
import CommandLineSupport
import Foundation
import Tensor
import Training
import TrainingCommandLine
import WorldModel

/// What a run costs on this machine, per preset and observation kind: each configuration trains
/// for a few learner steps in a process of its own (so its peak memory is its own), and the
/// table gives milliseconds per learner step and per env step, the env steps per second they
/// make together at the preset's train ratio, hours per million env steps, memory and the
/// checkpoint's size.
struct ComputeBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "compute",
    abstract:
      "Cost of a run per preset and observation kind: ms per learner and env step, hours per 1M env steps, memory, checkpoint size.",
    discussion: """
      Each configuration is the one 'r2i train --env E --preset P' would run, except that its \
      replay holds at most 20,000 steps and its prefill only what a first batch needs (the \
      table adds the replay at its full capacity to the memory). Learner steps are timed after \
      warm-up ones (5, or fewer past a minute, one when a step takes half a minute; the first \
      steps fill the tensor buffer cache and take longer); acting is the time of each env step without its learner steps. \
      Python environments (atari:, dmc:) need .venv.
      """)

  static let defaultCases = [
    "small:classic/CartPole", "small:bsuite/memory_len/30", "small:memorymaze/9x9", "bsuite:bsuite/memory_len/30",
    "popgym:popgym/RepeatPreviousEasy", "memorymaze:memorymaze/9x9", "dmc-proprio:dmc:cartpole_balance",
    "dmc-vision:dmc-vision:cartpole_balance", "atari100k:atari:Pong",
  ]

  @Option(parsing: .upToNextOption, help: "Cases as preset:env (default: every preset on a task of its domain).")
  var cases: [String] = ComputeBench.defaultCases

  @Option(parsing: .upToNextOption, help: "Backbones (r2i, dreamerv3, transformer).")
  var backbones: [Backbone] = [.r2i, .dreamerv3]

  @Option(parsing: .unconditional, help: "Learner steps timed per case after the warm-up ones, 1...100.")
  var updates: Int = 5

  @Option(help: "Output folder (compute.csv, compute.md, one log per case).")
  var output: String = "results/compute"

  @OptionGroup var threadOption: ThreadOption

  func validate() throws {
    try OptionCheck.range(updates, 1...100, "--updates")
    for c in cases where !c.contains(":") { throw ValidationError("--cases: '\(c)' is not preset:env") }
  }

  func run() throws {
    let out = URL(fileURLWithPath: output)
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    print("compute on \(Machine.summary), \(threadOption.count) thread(s); \(cases.count * backbones.count) cases")
    var table = ResultTable([
      "preset", "env", "observation", "backbone", "parameters", "batch x length", "train ratio", "ms/learner step",
      "ms/env step", "env steps/s", "hours per 1M env steps", "peak memory GB", "replay at capacity GB",
      "checkpoint MB",
    ])
    for c in cases {
      for backbone in backbones {
        let colon = c.firstIndex(of: ":")!
        let (preset, env) = (String(c[..<colon]), String(c[c.index(after: colon)...]))
        let name = "\(preset)-\(env)-\(backbone.rawValue)".replacingOccurrences(of: "/", with: "-")
          .replacingOccurrences(of: ":", with: "-")
        let log = out.appendingPathComponent("\(name).log")
        let result = out.appendingPathComponent("\(name).json")
        try? FileManager.default.removeItem(at: result)
        let p = Process()
        p.executableURL = ChildProcessPool.executable()
        p.arguments = [
          "compute-one", "--preset", preset, "--env", env, "--backbone", backbone.rawValue, "--updates", "\(updates)",
          "--result", result.path, "--threads", "\(threadOption.count)",
        ]
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        let start = Date()
        try p.run()
        p.waitUntilExit()
        try? handle.close()
        guard p.terminationStatus == 0, let data = try? Data(contentsOf: result),
          let m = try? JSONDecoder().decode(ComputeMeasurement.self, from: data)
        else {
          let tail = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").suffix(3)
          print("  \(name): failed (exit \(p.terminationStatus)): \(tail.joined(separator: " | "))")
          continue
        }
        print(
          "  \(name): \(fmt(m.learnerMilliseconds, 0)) ms per learner step, \(fmt(m.hoursPerMillion, 1)) h per 1M env steps (measured in \(fmt(Date().timeIntervalSince(start), 0)) s)"
        )
        table.add([
          preset, env, m.observation, backbone.rawValue, "\(m.parameters)", m.batchShape, fmt(m.trainRatio, 0),
          fmt(m.learnerMilliseconds, 0), fmt(m.envMilliseconds, 2), fmt(m.envStepsPerSecond, 1),
          fmt(m.hoursPerMillion, 1), fmt(m.peakBytes / 1e9, 2), fmt(m.replayBytesAtCapacity / 1e9, 2),
          fmt(m.checkpointBytes / 1e6, 1),
        ])
      }
    }
    print(table.render())
    try table.writeCSV(to: out.appendingPathComponent("compute.csv"))
    print("CSV: \(out.appendingPathComponent("compute.csv").path)")
  }
}

/// One case's figures (``ComputeOneCommand`` writes them, ``ComputeBench`` reads them).
struct ComputeMeasurement: Codable {
  var observation: String
  var parameters: Int
  var batchShape: String
  var trainRatio: Double
  var learnerMilliseconds: Double
  var envMilliseconds: Double
  var peakBytes: Double
  var replayBytesAtCapacity: Double
  var checkpointBytes: Double

  /// Learner steps owed per env step: train ratio / (batch x length).
  var updatesPerEnvStep: Double
  var secondsPerEnvStep: Double { envMilliseconds / 1000 + updatesPerEnvStep * learnerMilliseconds / 1000 }
  var envStepsPerSecond: Double { 1 / secondsPerEnvStep }
  var hoursPerMillion: Double { 1e6 * secondsPerEnvStep / 3600 }
}

/// One case of the compute table, in a process of its own (started by `r2i-bench compute`).
struct ComputeOneCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "compute-one", abstract: "One case of 'r2i-bench compute'.", shouldDisplay: false)

  @Option var preset: AgentPreset
  @Option var env: String
  @Option var backbone: Backbone
  @Option var updates: Int
  @Option var result: String
  @OptionGroup var threadOption: ThreadOption

  func run() throws {
    Parallelism.setThreadCount(threadOption.count)
    var c = try TrainingConfig.defaults(env: env, backbone: backbone, preset: preset)
    let fullReplay = Double(c.replayCapacity)
    // Only what a first batch needs: whole episodes need episodes, windows need their length.
    // (Every environment's stream must hold a window of `length` steps before a batch can be drawn.)
    let firstBatch = c.envs * (c.length + 1) + c.batch
    c.replayCapacity = max(2 * firstBatch, min(c.replayCapacity, 20_000))
    c.prefill = min(c.prefill, firstBatch)
    c.logEvery = 1_000_000_000
    c.logSeconds = 0
    c.evalEvery = 0
    c.openLoopMinutes = 0
    c.checkpointEvery = 1_000_000_000
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("r2i-compute-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: c, in: folder)
    print(
      "\(env) \(preset) \(backbone.rawValue): \(run.agent.parameterCount) parameters, batch \(c.batch) x \(c.length)")
    var learner: [Double] = []
    var acting: [Double] = []
    var last = Date()
    var learningThisStep = 0.0
    // Warm-up: 5 learner steps, or fewer once a minute of them has passed (at least 2).
    var warmUp: Int?
    var warmUpSeconds = 0.0
    try run.run { event in
      switch event {
      case .update(let u):
        learningThisStep += u.seconds
        print("learner step \(u.updates): \(fmt(u.seconds * 1000, 0)) ms")
        if warmUp == nil {
          warmUpSeconds += u.seconds
          // (A step of half a minute or more is past what a warm buffer cache saves.)
          if u.updates >= 5 || (u.updates >= 2 && warmUpSeconds >= 60) || u.seconds >= 30 { warmUp = u.updates }
        } else {
          learner.append(u.seconds)
        }
      case .collected(let steps):
        // Acting: the step's time without its learner steps (a recipe may owe one every step).
        let now = Date()
        if warmUp != nil && steps > c.prefill + c.envs {
          acting.append(max(0, now.timeIntervalSince(last) - learningThisStep))
        }
        last = now
        learningThisStep = 0
        // 20 acting samples, or 3 where learner steps take over a minute (a recipe owing one or
        // more every step would otherwise learn for an hour first).
        let slow = learner.reduce(0, +) > 60
        if learner.count >= updates && acting.count >= (slow ? 3 : 20) { return .stop }
      default: break
      }
      return .proceed
    }
    guard learner.count >= updates else {
      throw ValidationError("\(env): only \(learner.count) timed learner steps happened; the run ended first")
    }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let checkpoint = try FileManager.default.contentsOfDirectory(
      at: RunFolder(folder).checkpointDirectory, includingPropertiesForKeys: [.fileSizeKey]
    ).reduce(0.0) { $0 + Double((try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
    let measured = learner
    let m = ComputeMeasurement(
      observation: c.agent.worldModel.observation.plainText, parameters: run.agent.parameterCount,
      batchShape: "\(c.batch) x \(c.length)", trainRatio: c.trainRatio,
      learnerMilliseconds: 1000 * measured.reduce(0, +) / Double(measured.count),
      envMilliseconds: 1000 * acting.reduce(0, +) / Double(max(1, acting.count)) / Double(c.envs),
      peakBytes: Double(usage.ru_maxrss) * 1024,
      replayBytesAtCapacity: fullReplay * Double(run.replay.layout.bytesPerStep),
      checkpointBytes: checkpoint, updatesPerEnvStep: c.trainRatio / Double(c.batch * c.length))
    let encoder = JSONEncoder()
    try encoder.encode(m).write(to: URL(fileURLWithPath: result))
  }
}
