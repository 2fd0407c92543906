import Agent
import ArgumentParser
import CommandLineSupport
import Envs
import Foundation
import Tensor
import Training

/// Trains an agent on one environment in a run folder.
struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train an agent (R2I or DreamerV3) on an environment; resumable, Ctrl-C saves and stops.",
    discussion: """
      The run folder gets config.json (the whole configuration), metrics.jsonl (one JSON object \
      per line), checkpoint/ and replay/. Ctrl-C stops after the current step and writes a \
      checkpoint; --resume continues exactly where it stopped. Plot with 'r2i plot DIR', \
      evaluate with 'r2i eval --run DIR'.
      """)

  @Option(help: "Environment name (see 'r2i envs'), e.g. classic/CartPole, bsuite/memory_len/10.")
  var env: String?

  @Option(help: "Sequence backbone: r2i or dreamerv3.")
  var backbone: Backbone?

  @Option(
    help:
      "Agent preset: small (default; learns the vector tasks on a CPU) or a world-model preset (bsuite, popgym, memorymaze, dmc, dreamerv3-S ...)."
  )
  var preset: String?

  @Option(
    parsing: .unconditional,
    help: "Environment steps to train for, 1...1000000000 (default 50000; with --resume, a new total).")
  var steps: Int?

  @Option(
    parsing: .unconditional,
    help:
      "Wall-clock budget in minutes, over all sessions of the run (default: none); the run stops at --steps or here, whichever comes first."
  )
  var minutes: Double?

  @Option(parsing: .unconditional, help: "Environments stepped together, 1...1024 (default 4).")
  var envs: Int?

  @Option(parsing: .unconditional, help: "Seed of the run (0...2^64-1; default 0).")
  var seed: UInt64?

  @Option(name: .customLong("run"), help: "Run folder (default runs/<env>-<backbone>-s<seed>).")
  var runFolder: String?

  @Flag(help: "Continue the run in --run from its last checkpoint.")
  var resume = false

  @Option(help: "A TrainingConfig JSON file (e.g. a run's config.json) to start from.")
  var config: String?

  @Option(
    name: .customLong("set"),
    help:
      "Change one setting, key=value with a dotted key (repeatable), e.g. --set trainRatio=32 --set agent.actorCritic.entropy=0.001."
  )
  var settings: [String] = []

  @OptionGroup var threadOption: ThreadOption

  func validate() throws {
    if let steps { try OptionCheck.range(steps, 1...1_000_000_000, "--steps") }
    if let envs { try OptionCheck.range(envs, 1...1024, "--envs") }
    if let minutes, !(minutes > 0 && minutes <= 1e6) {
      throw ValidationError("--minutes must be in (0, 1000000], got \(minutes)")
    }
    if let preset, !TrainingConfig.presets.contains(preset) {
      throw ValidationError(
        "--preset: unknown preset '\(preset)'; available: \(TrainingConfig.presets.joined(separator: ", "))")
    }
    if let env {
      do {
        _ = try EnvRegistry.make(env)
      } catch {
        throw ValidationError("--env: \(error)")
      }
    }
    if resume && runFolder == nil { throw ValidationError("--resume needs --run DIR (the run folder to continue)") }
  }

  func folder() -> URL {
    if let runFolder { return URL(fileURLWithPath: runFolder) }
    let slug = (env ?? "classic/CartPole").replacingOccurrences(of: "/", with: "-")
    return URL(fileURLWithPath: "runs/\(slug)-\((backbone ?? .r2i).rawValue)-s\(seed ?? 0)")
  }

  /// The configuration these flags ask for (a new run).
  func requestedConfig() throws -> TrainingConfig {
    var c: TrainingConfig
    if let config {
      let url = URL(fileURLWithPath: config)
      guard let data = try? Data(contentsOf: url) else {
        throw ValidationError("--config: cannot read '\(config)'; give the path of a TrainingConfig JSON file")
      }
      do {
        c = try JSONDecoder().decode(TrainingConfig.self, from: data)
      } catch {
        throw ValidationError("--config: '\(config)' is not a TrainingConfig (\(TrainingConfig.describe(error)))")
      }
      if let env, env != c.env { throw ValidationError("--env \(env) contradicts --config (env \(c.env)); give one") }
      if let backbone, backbone != c.backbone {
        throw ValidationError("--backbone \(backbone.rawValue) contradicts --config (\(c.backbone.rawValue)); give one")
      }
      if let preset, preset != c.preset {
        throw ValidationError("--preset \(preset) contradicts --config (\(c.preset)); give one")
      }
      if let steps { c.steps = steps }
      if let minutes { c.minutes = minutes }
      if let seed { c.seed = seed }
      if let envs { c.envs = envs }
    } else {
      do {
        c = try TrainingConfig.defaults(
          env: env ?? "classic/CartPole", backbone: backbone ?? .r2i, preset: preset ?? "small", steps: steps ?? 50_000,
          envs: envs ?? 4, seed: seed ?? 0)
        c.minutes = minutes
      } catch {
        throw ValidationError("\(error)")
      }
    }
    do {
      c = try c.applying(settings)
      try c.validate()
    } catch let e as TrainingError {
      throw ValidationError("\(e)")
    }
    return c
  }

  func run() throws {
    Parallelism.setThreadCount(threadOption.count)
    let dir = folder()
    let training: TrainingRun
    if resume {
      let stored: TrainingConfig
      do {
        stored = try TrainingRun.configuration(of: dir)
      } catch {
        throw ValidationError("--run: \(error)")
      }
      var differences: [String] = []
      if let env, env != stored.env { differences.append("env \(stored.env), not \(env)") }
      if let backbone, backbone != stored.backbone {
        differences.append("backbone \(stored.backbone.rawValue), not \(backbone.rawValue)")
      }
      if let preset, preset != stored.preset { differences.append("preset \(stored.preset), not \(preset)") }
      if let envs, envs != stored.envs { differences.append("\(stored.envs) envs, not \(envs)") }
      if let seed, seed != stored.seed { differences.append("seed \(stored.seed), not \(seed)") }
      if config != nil || !settings.isEmpty { differences.append("--config/--set cannot change a run that exists") }
      if !differences.isEmpty {
        throw ValidationError(
          "--run \(dir.path) belongs to another configuration (\(differences.joined(separator: "; "))); drop those flags to resume it, or choose another --run"
        )
      }
      training = try TrainingRun.resume(from: dir, steps: steps, minutes: minutes)
      print("resuming \(dir.path) at env step \(training.collector.steps), learner step \(training.updates)")
      for w in training.warnings { print("warning: \(w)") }
    } else {
      let c = try requestedConfig()
      do {
        training = try TrainingRun.start(config: c, in: dir)
      } catch let e as TrainingError {
        throw ValidationError("--run: \(e)")
      }
      print(
        "training \(c.backbone.rawValue) (\(c.preset), \(training.agent.parameterCount) parameters) on \(c.env): \(c.steps) env steps, \(c.envs) envs, batch \(c.batch) x \(c.length), train ratio \(c.trainRatio), seed \(c.seed)"
      )
      print("run folder: \(dir.path)")
    }
    try execute(training)
  }

  func execute(_ training: TrainingRun) throws {
    let stop = StopRequest(
      message: "stopping after this step and writing a checkpoint (Ctrl-C again to quit at once)",
      quitMessage: "second Ctrl-C: quitting now (the last checkpoint is kept)")
    defer { stop.cancel() }

    let terminal = isatty(STDOUT_FILENO) != 0
    let total = training.config.steps
    var lastDraw = Date.distantPast
    var lastScore = Double.nan
    var lastLosses = ""
    var lastRate = Double.nan
    let startSteps = training.collector.steps
    let start = Date()
    func fmt(_ x: Double, _ d: Int = 1) -> String { x.isFinite ? String(format: "%.\(d)f", x) : "-" }
    let summary = try training.run { event in
      switch event {
      case .episode(let e, _):
        lastScore = e.score
      case .update(let u):
        let m = u.metrics
        lastLosses =
          "wm \(fmt(Double(m["loss"] ?? .nan), 3)) actor \(fmt(Double(m["actor_loss"] ?? .nan), 3)) critic \(fmt(Double(m["critic_loss"] ?? .nan), 3))"
      case .log(let line):
        lastRate = line["steps_per_second"]?.number ?? .nan
        if !terminal {
          let steps = line["env_steps"]?.number ?? 0
          let recent = line["score_recent"]?.number ?? .nan
          let success = line["success_recent"]?.number.map { " success \(fmt(100 * $0, 0))%" } ?? ""
          print(
            "step \(Int(steps)) updates \(training.updates) | \(fmt(lastRate, 0)) steps/s | score (last 100) \(fmt(recent, 2))\(success) | \(lastLosses)"
          )
        }
      case .evaluation(let e):
        let success = e.successRate.map { ", success \(fmt(100 * $0, 0))%" } ?? ""
        let text =
          "eval at step \(e.envSteps): greedy score \(fmt(e.meanScore, 2)) over \(e.episodes.count) episodes (length \(fmt(e.meanLength, 0))\(success))"
        print(terminal ? "\r\u{1B}[K" + text : text)
      case .checkpoint(let c):
        if !terminal { print("checkpoint at step \(c.envSteps) (\(fmt(c.seconds, 2)) s)") }
      case .collected(let steps):
        if terminal && Date().timeIntervalSince(lastDraw) > 0.5 {
          lastDraw = Date()
          let rate = Double(steps - startSteps) / max(1e-9, Date().timeIntervalSince(start))
          let eta = rate > 0 ? Double(total - steps) / rate : .nan
          let line =
            "\r\u{1B}[K\(steps)/\(total) steps | \(fmt(rate, 0)) steps/s | \(training.updates) updates | last score \(fmt(lastScore, 2)) | \(lastLosses) | ETA \(fmt(eta / 60, 1)) min"
          FileHandle.standardOutput.write(Data(line.utf8))
        }
      }
      return stop.isRequested ? .stop : .proceed
    }
    if terminal { print("") }
    let success = summary.recentSuccess.map { ", success \(fmt(100 * $0, 0))%" } ?? ""
    print(
      "\(summary.budgetReached ? "wall-clock budget reached" : summary.stoppedEarly ? "stopped" : "done") at env step \(summary.envSteps): \(summary.updates) learner steps, \(summary.episodes) episodes, \(fmt(summary.seconds / 60, 1)) min in all"
    )
    print("score of the last \(min(100, summary.episodes)) episodes: \(fmt(summary.recentScore, 2))\(success)")
    if let e = summary.lastEvaluation {
      print(
        "last evaluation (greedy): \(fmt(e.meanScore, 2))\(e.successRate.map { ", success \(fmt(100 * $0, 0))%" } ?? "")"
      )
    }
    print("checkpoint and metrics in \(training.directory.path); plot with: r2i plot \(training.directory.path)")
    if summary.budgetReached {
      print("train longer with: r2i train --run \(training.directory.path) --resume --minutes M")
    } else if summary.stoppedEarly {
      print("resume with: r2i train --run \(training.directory.path) --resume")
    }
  }
}
