import Foundation
import Synchronization
import Tensor
import TensorBoard
import TestSupport
import Testing

@testable import Training

/// A clock a test moves by hand.
final class FakeClock: Sendable {
  let time = Mutex<Double>(0)
  func advance(_ seconds: Double) { time.withLock { $0 += seconds } }
  var now: @Sendable () -> Double { { [self] in time.withLock { $0 } } }
}

/// What a user watches while a run trains: the TensorBoard event file, log lines by time, the
/// open-loop pictures.
@Suite(.serialized) struct WatchingTests {
  /// The scalars the event file must hold for `metrics.jsonl`, by the documented rule, read
  /// with the generic reader (not the code that wrote them).
  static func expectedScalars(_ folder: URL) throws -> [(step: Int, tag: String, value: Float)] {
    try MetricsLog.read(folder.appendingPathComponent("metrics.jsonl")).flatMap {
      line -> [(step: Int, tag: String, value: Float)] in
      guard case .text(let kind)? = line["kind"], let step = line["env_steps"]?.number else { return [] }
      var skipped: Set<String> = ["kind", "env_steps", "environment"]
      if kind != "train" { skipped.formUnion(["updates", "seconds"]) }
      return line.keys.sorted().compactMap { key -> (step: Int, tag: String, value: Float)? in
        guard !skipped.contains(key), let x = line[key]?.number else { return nil }
        let name = kind == "eval" && key.hasPrefix("eval_") ? String(key.dropFirst(5)) : key
        return (Int(step), key.contains("/") ? key : "\(kind)/\(name)", Float(x))
      }
    }
  }

  static func same(_ a: [(step: Int, tag: String, value: Float)], _ b: [(step: Int, tag: String, value: Float)])
    -> Bool
  {
    a.count == b.count
      && zip(a, b).allSatisfy { x, y in
        x.step == y.step && x.tag == y.tag && (x.value == y.value || (x.value.isNaN && y.value.isNaN))
      }
  }

  static let wallClockTags: Set<String> = ["train/seconds", "train/steps_per_second", "train/update_ms"]

  @Test func theEventFileHoldsTheMetricsScalarsAndSurvivesAStopAndResume() throws {
    let config = try TinyConfigs.training()
    let whole = temporaryFolder("tb-whole")
    let split = temporaryFolder("tb-split")
    defer {
      try? FileManager.default.removeItem(at: whole)
      try? FileManager.default.removeItem(at: split)
    }
    try TrainingRun.start(config: config, in: whole).run()
    let events = RunFolder(whole).eventsFile
    let written = try EventFileReader.scalars(events)
    let expected = try Self.expectedScalars(whole)
    #expect(written.count > 100 && Self.same(written, expected))
    let tags = Set(written.map(\.tag))
    for tag in ["episode/score", "episode/length", "train/score_recent", "wm/loss", "actor/entropy", "eval/score"] {
      #expect(tags.contains(tag), "no \(tag) in \(tags.sorted())")
    }
    #expect(try EventFileReader.events(events).first?.fileVersion == "brain.Event:2")

    // Stopped and resumed: the events after the checkpoint are cut, and the file ends as the
    // uninterrupted run's (bar wall-clock values).
    let b = try TrainingRun.start(config: config, in: split)
    try b.run { event in
      if case .collected(let steps) = event, steps >= 130 { return .stop }
      return .proceed
    }
    try TrainingRun.resume(from: split).run()
    let resumed = try EventFileReader.scalars(RunFolder(split).eventsFile)
    func deterministic(_ s: [(step: Int, tag: String, value: Float)]) -> [(step: Int, tag: String, value: Float)] {
      s.filter { !Self.wallClockTags.contains($0.tag) }
    }
    #expect(Self.same(deterministic(resumed), deterministic(written)))
    #expect(Self.same(resumed, try Self.expectedScalars(split)))
  }

  @Test func aRunWithoutAnEventFileGetsOneRebuiltFromItsMetrics() throws {
    let config = try TinyConfigs.training(steps: 120)
    let folder = temporaryFolder("tb-rebuild")
    defer { try? FileManager.default.removeItem(at: folder) }
    try TrainingRun.start(config: config, in: folder).run()
    let events = RunFolder(folder).eventsFile
    try FileManager.default.removeItem(at: events)
    try TrainingRun.resume(from: folder, steps: 200).run()
    let rebuilt = try EventFileReader.scalars(events)
    #expect(rebuilt.contains { $0.step <= 120 } && rebuilt.contains { $0.step > 120 })
    #expect(Self.same(rebuilt, try Self.expectedScalars(folder)))
    // A file cut shorter than its checkpoint says is rebuilt too.
    let bytes = try Data(contentsOf: events)
    try bytes.prefix(40).write(to: events)
    try TrainingRun.resume(from: folder, steps: 220).run()
    #expect(Self.same(try EventFileReader.scalars(events), try Self.expectedScalars(folder)))
  }

  /// With lines by steps turned off, a line every 10 s of a clock that moves 1 s per step.
  @Test func logLinesComeByTimeAsWellAsBySteps() throws {
    var config = try TinyConfigs.training(steps: 240)
    config.logEvery = 1_000_000
    config.logSeconds = 10
    config.evalEvery = 0
    let folder = temporaryFolder("log-time")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    let clock = FakeClock()
    run.clock = WallClock(now: clock.now)
    var logged: [TrainLine] = []
    try run.run { event in
      if case .collected = event { clock.advance(1) }
      if case .log(let line) = event { logged.append(line) }
      return .proceed
    }
    // Step k ends at second k; the line due then is written during step k + 1 (2 envs a step).
    #expect(logged.map(\.stamp.seconds) == stride(from: 10.0, through: 110, by: 10).map { $0 })
    #expect(logged.map(\.stamp.envSteps) == stride(from: 22, through: 222, by: 20).map { $0 })
    let lines = try MetricsLog.lines(RunFolder(folder).metricsFile).filter {
      if case .train = $0 { return true } else { return false }
    }
    #expect(lines.count == logged.count)
    #expect(logged.dropFirst().allSatisfy { $0.stepsPerSecond.map { abs($0 - 2) < 1e-9 } == true })
  }

  /// Pictures every few seconds of an image task: PNG files, `openl` images in the event file,
  /// and a run that trains exactly as one without them.
  @Test func openLoopPicturesChangeNothingTheRunComputes() throws {
    var config = try TinyConfigs.training(env: "classic/CartPole-pixels", steps: 120)
    config.evalEvery = 0
    let plain = temporaryFolder("openl-plain")
    let pictured = temporaryFolder("openl-pictured")
    defer {
      try? FileManager.default.removeItem(at: plain)
      try? FileManager.default.removeItem(at: pictured)
    }
    let a = try TrainingRun.start(config: config, in: plain)
    try a.run()
    config.openLoopMinutes = 0.05  // 3 s: a picture every third step after learning starts
    let b = try TrainingRun.start(config: config, in: pictured)
    let clock = FakeClock()
    b.clock = WallClock(now: clock.now)
    try b.run { event in
      if case .collected = event { clock.advance(1) }
      return .proceed
    }
    #expect(a.updates > 2 && a.updates == b.updates)
    for (x, y) in zip(a.agent.namedParameters(), b.agent.namedParameters()) {
      #expect(x.parameter.value == y.parameter.value, "\(x.name) differs")
    }
    let files = try FileManager.default.contentsOfDirectory(atPath: RunFolder(pictured).openLoopDirectory.path)
    #expect(files.count >= 3 && files.allSatisfy { $0.hasPrefix("openl-") && $0.hasSuffix(".png") })
    let images = try EventFileReader.events(RunFolder(pictured).eventsFile).flatMap(\.values).filter {
      if case .image(let tag, _, _, _, _) = $0 { return tag == "openl" } else { return false }
    }
    #expect(images.count == files.count)
    #expect(!FileManager.default.fileExists(atPath: RunFolder(plain).openLoopDirectory.path))
  }
}

extension WatchingTests {
  /// checkpointKeep = 3: the last checkpoint and the agents of the two before it.
  @Test func earlierCheckpointsAgentsAreKeptAndLoadable() throws {
    var config = try TinyConfigs.training(steps: 240)
    config.checkpointKeep = 3
    let folder = temporaryFolder("keep")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: config, in: folder)
    var parametersAt: [Int: [Float]] = [:]
    try run.run { event in
      if case .checkpoint(let c) = event { parametersAt[c.envSteps] = run.agent.parameters.flatMap(\.value.scalars) }
      return .proceed
    }
    #expect(TrainingRun.keptCheckpoints(of: folder) == [120, 180, 240])
    for step in [120, 180, 240] {
      let loaded = try TrainingRun.loadAgent(from: folder, envSteps: step)
      #expect(loaded.envSteps == step)
      #expect(loaded.agent.parameters.flatMap(\.value.scalars) == parametersAt[step], "agent at \(step)")
    }
    #expect {
      try TrainingRun.loadAgent(from: folder, envSteps: 60)
    } throws: { "\($0)".contains("120, 180, 240") && "\($0)".contains("checkpointKeep") }
    // A resume keeps going with them.
    try TrainingRun.resume(from: folder, steps: 300).run()
    #expect(TrainingRun.keptCheckpoints(of: folder) == [180, 240, 300])
  }
}

@Suite struct OpenLoopPictureTests {
  /// Two sequences of 12 steps of flat 4 x 4 frames: real frame t of sequence s has grey level
  /// 10 s + t, the model's 100 + 10 s + t. Columns every 3rd step (0, 3, 6, 9); the red line
  /// before step 6, the first one past the context of 5.
  @Test func realAboveModelLabelledWithTheContextMarked() throws {
    let (n, t, h, w, c) = (2, 12, 4, 4, 3)
    var real = [Float](repeating: 0, count: n * t * h * w * c)
    var model = real
    for s in 0..<n {
      for step in 0..<t {
        for i in 0..<(h * w * c) {
          real[((s * t + step) * h * w * c) + i] = Float(10 * s + step)
          model[((s * t + step) * h * w * c) + i] = Float(100 + 10 * s + step) / 255
        }
      }
    }
    let picture = OpenLoopPicture.compose(
      real: Tensor(real, shape: [n, t, h, w, c]), predicted: Tensor(model, shape: [n, t, h, w, c]), context: 5)
    let (label, pad, header, line) = (38, 2, 12, 2)
    #expect(picture.width == label + 4 * (w + pad) + pad + line)
    #expect(picture.height == header + n * 2 * (h + pad) + n * pad + pad)
    func columnX(_ k: Int) -> Int { label + pad + k * (w + pad) + (k >= 2 ? line : 0) }
    for s in 0..<n {
      for (k, step) in [0, 3, 6, 9].enumerated() {
        let y = header + s * (2 * (h + pad) + pad)
        #expect(picture[columnX(k) + 1, y + 1] == [UInt8](repeating: UInt8(10 * s + step), count: 3))
        #expect(
          picture[columnX(k) + 1, y + h + pad + 1] == [UInt8](repeating: UInt8(100 + 10 * s + step), count: 3))
      }
      // Row labels: some light pixels in the label column at each row.
      for row in 0..<2 {
        let y0 = header + s * (2 * (h + pad) + pad) + row * (h + pad)
        let lit = (0..<label).contains { x in (max(0, y0 - 4)..<(y0 + h + 4)).contains { picture[x, $0][0] > 200 } }
        #expect(lit, "no label for sequence \(s) row \(row)")
      }
    }
    let redX = columnX(2) - pad / 2 - line
    #expect(picture[redX, header + 1] == [230, 40, 40] && picture[redX + 1, picture.height - 1] == [230, 40, 40])
    // Headers: light pixels above the first column ("context") and the imagined part.
    #expect((0..<10).contains { y in (columnX(0)..<columnX(0) + 4).contains { picture[$0, y][0] > 200 } })
  }
}
