import Agent
import ArgumentParser
import COpenBLAS
import CommandLineSupport
import Foundation
import Imaging
import TrainingCommandLine
import WorldModel

/// World-model update time against sequence length for each backbone (`docs/benchmarks.md`, `speed`).
struct SpeedBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "speed",
    abstract:
      "World-model update and acting time vs sequence length, R2I vs DreamerV3 vs Transformer (CSV, charts, ratios, GFLOP/s, memory)."
  )

  @Option(
    help:
      "Preset: vector (64 floats, 4 actions), image (64x64x3), or small (the CPU agent preset on 64 floats; --phase train only)."
  )
  var preset: String = "vector"

  @Option(help: "Comma-separated sequence lengths in 2...16384 (default: 64,256,1024 quick; see --full).")
  var lengths: String?

  @Flag(help: "The full sweep: 64...2048 for vector, 64...512 for image.")
  var full = false

  @Option(parsing: .unconditional, help: "Batch size, 1...1024.")
  var batch: Int = 16

  @OptionGroup var threadOption: ThreadOption

  @Option(
    parsing: .unconditional,
    help: "Timed repetitions per measurement, 1...1000 (after two warm-ups; at least 5 for lengths <= 256).")
  var repeats: Int = 3

  @OptionGroup var backboneOption: BackboneListOption

  @Option(
    help:
      "What to time: 'wm' (the world-model update, phase (a)) or 'train' (the whole train step: world model, imagination of 15 steps from all B x T starts, actor, critic; phase (b))."
  )
  var phase: String = "wm"

  @Option(
    parsing: .unconditional,
    help:
      "Phase 'train': imagine from at most this many starts at a time, 1...1000000 (memory against speed; default: the preset's, 1024)."
  )
  var imaginationChunk: Int?

  @Option(
    parsing: .unconditional,
    help:
      "Phase 'train': imagine from this many random starts of the B x T per step, 1...1000000 (default: all of them, as DreamerV3)."
  )
  var imaginationStarts: Int?

  @Option(help: "Output directory for the CSV and the chart.")
  var output: String = "results/speed"

  func validate() throws {
    guard ["vector", "image", "small"].contains(preset) else {
      throw ValidationError("--preset must be 'vector', 'image' or 'small', got '\(preset)'")
    }
    if preset == "small" && phase != "train" {
      throw ValidationError("--preset small is an agent preset: use it with --phase train")
    }
    guard ["wm", "train"].contains(phase) else {
      throw ValidationError("--phase must be 'wm' or 'train', got '\(phase)'")
    }
    try OptionCheck.range(batch, Limits.batch, "--batch")
    try OptionCheck.range(repeats, Limits.repeats, "--repeats")
    if let imaginationChunk { try OptionCheck.range(imaginationChunk, 1...1_000_000, "--imagination-chunk") }
    if let imaginationStarts { try OptionCheck.range(imaginationStarts, 1...1_000_000, "--imagination-starts") }
    if imaginationStarts != nil && phase != "train" {
      throw ValidationError("--imagination-starts applies to --phase train only")
    }
    let ls = try sequenceLengths()
    try OptionCheck.product(
      batch, ls.max()!, atMost: Limits.stepsPerBatch, "steps per update (--batch x longest --lengths)")
  }

  func sequenceLengths() throws -> [Int] {
    let isImage = preset == "image"
    if let lengths { return try OptionCheck.integers(lengths, 2...16_384, "--lengths") }
    if full { return isImage ? [64, 128, 256, 512] : [64, 128, 256, 512, 1024, 2048] }
    return isImage ? [64, 128] : [64, 256, 1024]
  }

  func parsedBackbones() throws -> [Backbone] { try backboneOption.parsed() }
  var threads: Int { threadOption.count }

  func run() throws {
    let isImage = preset == "image"
    let ls = try sequenceLengths()
    let bbs = try parsedBackbones()
    let dir = try prepareOutputDirectory(output)
    Parallelism.setThreadCount(threads)
    let peak = measureSgemmPeak()
    print("Speed benchmark on \(Machine.summary); preset \(preset), batch \(batch), \(threads) threads")
    print("sgemm peak (1024^3, this run): \(fmt(peak, 1)) GFLOP/s\n")
    var table = ResultTable([
      "backbone", "preset", "batch", "length", "phase", "median_ms", "min_ms", "max_ms", "peak_rss_mb",
      "peak_tensor_mb", "threads", "gflops", "pct_of_sgemm_peak", "model_gflops",
    ])
    if phase == "train" {
      try runTrainPhase(lengths: ls, backbones: bbs, peak: peak, directory: dir)
      return
    }
    var updateTimes: [Backbone: [Int: Double]] = [:]
    var actingTimes: [Backbone: [Int: Double]] = [:]
    for bb in bbs {
      let config = WorldModelConfig.preset(isImage ? .benchmarkImage : .benchmarkVector, backbone: bb)
      let model = WorldModel(config: config, seed: 0)
      let trainer = WorldModelTrainer(model: model)
      print("\(bb): \(model.parameterCount) parameters")
      for l in ls {
        let data = randomBatch(config, b: batch, t: l)
        var rng = SeededGenerator(seed: 1)
        TensorMemory.releaseCache()
        TensorMemory.resetPeak()
        ProcessMemory.resetPeak()
        // Short updates get more samples: the first updates after (re)filling the buffer cache
        // are slower, and this machine's second core is noisy.
        let n = l <= 256 ? max(repeats, 5) : repeats
        let timing = measure(warmup: 2, repeats: n, budget: 600) { trainer.update(data, rng: &rng) }
        let rss = ProcessMemory.peakResidentMB
        let tensorPeak = Double(TensorMemory.peakBytes) / 1e6
        // Executed sgemm FLOPs (instrumented, one update) for the share of peak; the model's
        // dense count (analytic) for model GFLOP/s: sums of one-hot weight rows replace part of it.
        let (_, executed) = MatmulCounter.measure { trainer.update(data, rng: &rng) }
        let gflops = Double(executed) / timing.median / 1e6
        let modelFLOPs =
          config.updateMatmulFLOPs(batch: batch, length: l) + config.updateAttentionFLOPs(batch: batch, length: l)
        let modelGflops = Double(modelFLOPs) / timing.median / 1e6
        updateTimes[bb, default: [:]][l] = timing.median
        table.add([
          bb.rawValue, preset, "\(batch)", "\(l)", "wm_update", fmt(timing.median, 1), fmt(timing.min, 1),
          fmt(timing.max, 1), fmt(rss, 0), fmt(tensorPeak, 0), "\(threads)", fmt(gflops, 1),
          fmt(100 * gflops / peak, 1), fmt(modelGflops, 1),
        ])
        print(
          "  length \(l): update \(fmt(timing.median, 1)) ms (\(fmt(gflops, 1)) GFLOP/s executed, \(fmt(100 * gflops / peak, 0))% of sgemm peak; \(fmt(modelGflops, 1)) GFLOP/s of the dense model), peak RSS \(fmt(rss, 0)) MB"
        )
      }
      // Acting: one observation step for a batch of environments after `l` steps of context
      // (the Transformer attends to all of them; the recurrent cores carry a fixed state).
      for l in ls {
        let acting = actingStep(model: model, config: config, context: l)
        actingTimes[bb, default: [:]][l] = acting.median
        table.add([
          bb.rawValue, preset, "\(batch)", "\(l)", "act_step", fmt(acting.median, 3), fmt(acting.min, 3),
          fmt(acting.max, 3), "", "", "\(threads)", "", "", "",
        ])
        print("  acting step after \(l) steps (encode + observe, batch \(batch)): \(fmt(acting.median, 2)) ms")
      }
    }
    print("\n" + table.render())
    if let r = updateTimes[.r2i], bbs.count > 1 {
      let others = bbs.filter { $0 != .r2i }
      var ratios = ResultTable(
        ["length", "r2i_ms"] + others.flatMap { ["\($0.rawValue)_ms", "\($0.rawValue)/r2i"] })
      for l in ls {
        guard let a = r[l] else { continue }
        ratios.add(
          ["\(l)", fmt(a, 1)]
            + others.flatMap { bb -> [String] in
              guard let b = updateTimes[bb]?[l] else { return ["", ""] }
              return [fmt(b, 1), fmt(b / a, 2) + "x"]
            })
      }
      print("\nWorld-model update, ratio per length:\n" + ratios.render())
    }
    let chart = timeChart(
      "World-model update time (\(preset), batch \(batch), \(threads) threads)", yLabel: "ms per update",
      times: updateTimes, lengths: ls, backbones: bbs)
    try writeResults(table, chart: chart, to: dir, name: "speed_\(preset)")
    let acting = timeChart(
      "Acting step after L steps of context (\(preset), batch \(batch), \(threads) threads)",
      yLabel: "ms per acting step", times: actingTimes, lengths: ls, backbones: bbs, xLabel: "steps of context")
    if !acting.isEmpty {
      try acting.writePNG(to: dir.appendingPathComponent("speed_act_\(preset).png"))
      try acting.writeSVG(to: dir.appendingPathComponent("speed_act_\(preset).svg"))
    }
  }

  /// Milliseconds against sequence length, one line per backbone, both axes logarithmic.
  func timeChart(
    _ title: String, yLabel: String, times: [Backbone: [Int: Double]], lengths ls: [Int], backbones bbs: [Backbone],
    xLabel: String = "sequence length"
  ) -> LineChart {
    var chart = LineChart(title: title, xLabel: xLabel, yLabel: yLabel, logX: true, logY: true)
    for bb in bbs {
      chart.add(series: bb.rawValue, points: ls.compactMap { l in times[bb]?[l].map { (Double(l), $0) } })
    }
    return chart
  }

  /// Phase (b) of `docs/benchmarks.md` (`speed --phase train`): the whole train step against sequence length, the share of it
  /// spent in imagination and the actor-critic update, GFLOP/s (matmul FLOPs counted by the
  /// instrumented GEMM over one step) against the in-run sgemm peak, and peak memory.
  func runTrainPhase(lengths ls: [Int], backbones bbs: [Backbone], peak: Double, directory dir: URL) throws {
    let isImage = preset == "image"
    var table = ResultTable([
      "backbone", "preset", "batch", "length", "phase", "median_ms", "min_ms", "max_ms", "behaviour_ms",
      "behaviour_share", "peak_rss_mb", "threads", "gflops", "pct_of_sgemm_peak", "model_gflops",
    ])
    var times: [Backbone: [Int: Double]] = [:]
    for bb in bbs {
      var config =
        preset == "small"
        ? AgentConfig.small(backbone: bb, observation: .vector(size: 64), actions: .discrete(4))
        : AgentConfig.preset(isImage ? .benchmarkImage : .benchmarkVector, backbone: bb, actions: .discrete(4))
      if let imaginationChunk { config.actorCritic.imaginationChunk = imaginationChunk }
      config.actorCritic.imaginationStarts = imaginationStarts
      let agent = Agent(config: config, seed: 0)
      let learner = AgentLearner(agent: agent)
      print(
        "\(bb): \(agent.parameterCount) parameters: world model \(agent.worldModel.parameterCount), actor \(agent.actor.parameterCount), critic \(agent.critic.parameterCount), slow critic \(agent.slowCritic.parameterCount) (actor and critic read '\(config.policyInput.rawValue)', \(agent.actor.mlp.layers.first?.linear.inFeatures ?? 0) features); imagination in chunks of \(config.actorCritic.imaginationChunk) starts\(imaginationStarts.map { ", from \($0) random starts per step" } ?? "")"
      )
      for l in ls {
        let data = randomBatch(config.worldModel, b: batch, t: l)
        var rng = SeededGenerator(seed: 1)
        TensorMemory.releaseCache()
        ProcessMemory.resetPeak()
        let n = l <= 256 ? max(repeats, 5) : repeats
        let step = measure(warmup: 2, repeats: n, budget: 900) { learner.train(data, rng: &rng) }
        let rss = ProcessMemory.peakResidentMB
        let (_, flops, replaced) = MatmulCounter.measureWithReplaced { learner.train(data, rng: &rng) }
        // The behaviour half alone, from the posterior of one world-model update.
        let posterior = learner.worldModelTrainer.update(data, rng: &rng).posterior.states.flattened()
        let continues = Tensor.ones([batch * l])
        let behaviour = measure(warmup: 1, repeats: n, budget: 600) {
          learner.actorCritic.update(start: posterior, startContinue: continues, rng: &rng)
        }
        let gflops = Double(flops) / step.median / 1e6
        let modelGflops = Double(flops + replaced) / step.median / 1e6
        times[bb, default: [:]][l] = step.median
        table.add([
          bb.rawValue, preset, "\(batch)", "\(l)", "train_step", fmt(step.median, 1), fmt(step.min, 1),
          fmt(step.max, 1),
          fmt(behaviour.median, 1), fmt(100 * behaviour.median / step.median, 1) + "%", fmt(rss, 0), "\(threads)",
          fmt(gflops, 1), fmt(100 * gflops / peak, 1), fmt(modelGflops, 1),
        ])
        print(
          "  length \(l): train step \(fmt(step.median, 1)) ms (imagination + actor + critic \(fmt(behaviour.median, 1)) ms, \(fmt(100 * behaviour.median / step.median, 0))%), \(fmt(gflops, 1)) GFLOP/s executed (\(fmt(100 * gflops / peak, 0))% of sgemm peak; \(fmt(modelGflops, 1)) GFLOP/s of the dense model), peak RSS \(fmt(rss, 0)) MB"
        )
      }
    }
    print("\n" + table.render())
    let chart = timeChart(
      "Whole train step (\(preset), batch \(batch), \(threads) threads)", yLabel: "ms per train step", times: times,
      lengths: ls, backbones: bbs)
    try writeResults(table, chart: chart, to: dir, name: "speed_train_\(preset)")
  }

  func randomBatch(_ c: WorldModelConfig, b: Int, t: Int) -> WorldModelBatch {
    var rng = SeededGenerator(seed: 7)
    let obs: Tensor
    switch c.observation {
    case .vector(let n): obs = Tensor.normal([b, t, n], using: &rng)
    case .image(let h, let w, let ch): obs = Tensor.uniform([b, t, h, w, ch], low: 0, high: 255, using: &rng)
    }
    let actions = Tensor.oneHot((0..<(b * t)).map { _ in rng.nextInt(below: c.actionSize) }, depth: c.actionSize)
      .reshaped([b, t, c.actionSize])
    var first = Tensor.zeros([b, t])
    for i in 0..<b { first[i, 0] = 1 }
    return WorldModelBatch(
      observations: obs, actions: actions, rewards: Tensor.normal([b, t], using: &rng), isFirst: first,
      isTerminal: Tensor.zeros([b, t]))
  }

  /// One acting step's time after `context` steps observed since the episode began (stepped
  /// through first for the Transformer, whose step attends to them all; the recurrent cores
  /// carry a state of fixed size, so theirs is timed as it is).
  func actingStep(model: WorldModel, config c: WorldModelConfig, context: Int) -> Timing {
    var rng = SeededGenerator(seed: 3)
    var state = model.initialState(batch: batch)
    let obs: Tensor
    switch c.observation {
    case .vector(let n): obs = Tensor.normal([batch, n], using: &rng)
    case .image(let h, let w, let ch): obs = Tensor.uniform([batch, h, w, ch], low: 0, high: 255, using: &rng)
    }
    let action = Tensor.oneHot([Int](repeating: 0, count: batch), depth: c.actionSize)
    let isFirst = Tensor.zeros([batch])
    for _ in 0..<(c.backbone == .transformer ? max(0, context - 3) : 0) {
      withoutGradient {
        state = model.observeStep(observation: obs, previousAction: action, isFirst: isFirst, state: state, rng: &rng)
      }
    }
    return measure(warmup: 3, repeats: 21) {
      withoutGradient {
        state = model.observeStep(
          observation: obs, previousAction: action, isFirst: isFirst, state: state, rng: &rng)
      }
    }
  }
}

/// sgemm GFLOP/s at 1024^3 with the current thread count (median of 7).
func measureSgemmPeak() -> Double {
  let n = 1024
  var rng = SeededGenerator(seed: 0)
  let a = Tensor.normal([n, n], using: &rng)
  let b = Tensor.normal([n, n], using: &rng)
  let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
  defer { c.deallocate() }
  let t = measure(warmup: 2, repeats: 7) {
    a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in
        sgemm(false, false, n, n, n, 1, ap.baseAddress!, bp.baseAddress!, 0, c)
      }
    }
  }
  return 2 * Double(n * n * n) / t.median / 1e6
}
