import Agent
import Envs
import Foundation
import Replay
import TestSupport
import Testing
import Training

@Suite struct MetricsLineTests {
  /// Every kind of line survives the file: written, read back typed equal, and read generically
  /// under the names a script sees (namespaced learner metrics, null for non-finite numbers).
  @Test func linesRoundTripAndCarryNamespacedNames() throws {
    let folder = temporaryFolder("lines")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = folder.appendingPathComponent("metrics.jsonl")
    let log = try MetricsLog(url: url, truncatingTo: 0)
    var rng = SeededGenerator(seed: 1)
    var metrics = LearnerMetrics(values: LearnerMetrics.fields.map { _ in rng.nextNormal() })
    metrics.behaviour.valueError = .nan
    var train = TrainLine(stamp: LineStamp(kind: "train", envSteps: 100, updates: 7, seconds: 12.5), learnerSteps: 3)
    train.metrics = metrics
    train.stepsPerSecond = 41.5
    train.recentScore = -0.25
    train.recentSuccess = 0.5
    let lines: [MetricsLine] = [
      .episode(
        EpisodeLine(
          stamp: LineStamp(kind: "episode", envSteps: 4, updates: 0, seconds: 0.5),
          episode: EpisodeRecord(environment: 1, score: 1, length: 3, success: true))),
      .train(train),
      .evaluation(
        EvaluationLine(
          stamp: LineStamp(kind: "eval", envSteps: 100, updates: 7, seconds: 13), score: 0.75, length: 4,
          episodes: 8, success: nil)),
    ]
    for line in lines { try log.write(line) }
    try log.synchronize()
    let back = try MetricsLog.lines(url)
    #expect(back.count == 3 && back[0] == lines[0] && back[2] == lines[2])
    guard case .train(let read) = back[1] else {
      Issue.record("the second line is not a train line: \(back[1])")
      return
    }
    #expect(read.stamp == train.stamp && read.stepsPerSecond == 41.5 && read.recentSuccess == 0.5)
    let m = try #require(read.metrics)
    #expect(m.worldModel == metrics.worldModel && m.behaviour.actorLoss == metrics.behaviour.actorLoss)
    #expect(m.behaviour.valueError.isNaN)
    let rows = try MetricsLog.read(url)
    #expect(rows[1]["wm/loss"]?.number == Double(metrics.worldModel.loss))
    #expect(rows[1]["actor/entropy"]?.number == Double(metrics.behaviour.entropy))
    #expect(rows[1]["critic/value_error"]?.number?.isNaN == true)
    #expect(rows[0]["success"]?.number == 1 && rows[0]["kind"] == .text("episode"))
    #expect(rows[2]["eval_success"] == nil && rows[2]["eval_score"]?.number == 0.75)
    // Every learner metric has a distinct, namespaced name.
    let names = LearnerMetrics.fields.map(\.name)
    #expect(Set(names).count == names.count)
    #expect(names.allSatisfy { $0.hasPrefix("wm/") || $0.hasPrefix("actor/") || $0.hasPrefix("critic/") })
    // A line that is not one is named.
    try Data("{\"kind\": \"train\"}\n".utf8).write(to: url)
    #expect { try MetricsLog.lines(url) } throws: { "\($0)".contains("line 1") }
  }

  /// The collector's documented example, as written in its doc comment.
  @Test func collectorExample() throws {
    let envs = try BatchEnv(name: "classic/CartPole", count: 4, seed: 0)
    let interface = try EnvInterface(envs)
    let agent = Agent(
      config: .small(backbone: .r2i, observation: interface.observationKind, actions: interface.actionSpec), seed: 0)
    let replay = try Replay(layout: interface.replayLayout, capacity: 1000, seed: 0)
    let collector = try Collector(agent: agent, envs: BatchEnv(name: "classic/CartPole", count: 4, seed: 0), seed: 1)
    var finished: [EpisodeRecord] = []
    for _ in 0..<30 { finished += try collector.step(.agent(.sample), into: replay) }  // the episodes that ended
    #expect(replay.inserted == 120 && collector.steps == 120)
    #expect(finished.allSatisfy { $0.length >= 1 && $0.success == nil })
  }
}
