import Foundation
import TestSupport
import Testing
import Training

/// What a run folder withstands: bad settings, damaged files, unfinished starts, failed resumes.
@Suite(.serialized) struct RunFolderSafetyTests {
  /// Every setting at a value out of its range is refused by the one validation, naming its key.
  @Test func everySettingOutOfRangeIsNamed() throws {
    let c = try tinyTrainingConfig()
    let table: [(key: String, value: String)] = [
      ("steps", "0"), ("envs", "0"), ("envs", "2000"), ("batch", "0"), ("length", "0"), ("trainRatio", "0"),
      ("trainRatio", "-1"), ("prefill", "-1"), ("replayCapacity", "1"), ("logEvery", "0"), ("evalEvery", "-1"),
      ("evalEpisodes", "0"), ("checkpointEvery", "0"), ("minutes", "-1"), ("minutes", "0"), ("version", "7"),
      ("agent.units", "0"), ("agent.layers", "-1"), ("agent.actorCritic.horizon", "0"),
      ("agent.actorCritic.discount", "2"), ("agent.actorCritic.lambda", "-1"), ("agent.actorCritic.entropy", "-1"),
      ("agent.actorCritic.slowCriticRate", "0"), ("agent.actorCritic.slowCriticRate", "2"),
      ("agent.actorCritic.slowCriticScale", "-1"), ("agent.actorCritic.imaginationChunk", "0"),
      ("agent.actorCritic.imaginationStarts", "0"), ("agent.actorCritic.actorOptimizer.learningRate", "-1"),
      ("agent.actorCritic.actorOptimizer.epsilon", "0"), ("agent.actorCritic.criticOptimizer.gradientClip", "-1"),
      ("agent.actorCritic.criticOptimizer.beta1", "2"), ("agent.worldModel.deter", "-1"),
      ("agent.worldModel.units", "0"), ("agent.worldModel.mlpLayers", "-1"), ("agent.worldModel.cnnDepth", "0"),
      ("agent.worldModel.latent.groups", "0"), ("agent.worldModel.latent.classes", "1"),
      ("agent.worldModel.latent.unimix", "2"), ("agent.worldModel.latent.unimix", "1"),
      ("agent.worldModel.freeBits", "-1"), ("agent.worldModel.dynamicScale", "-1"),
      ("agent.worldModel.representationScale", "-1"), ("agent.worldModel.optimizer.learningRate", "-1"),
      ("agent.worldModel.optimizer.learningRate", "1e30"), ("agent.worldModel.ssm.states", "33"),
      ("agent.worldModel.ssm.states", "0"), ("agent.worldModel.ssm.channels", "0"),
      ("agent.worldModel.ssm.layers", "0"), ("agent.worldModel.ssm.hippoBlocks", "0"),
      ("agent.worldModel.ssm.minStep", "0"), ("agent.worldModel.ssm.maxStep", "1000"),
      ("agent.worldModel.ssm.inputScale", "0"), ("agent.worldModel.actionSize", "5"), ("preset", "foo"),
      ("sampling", "shuffled"), ("agent.worldModel.headInput", "everything"),
    ]
    for (key, value) in table {
      #expect("\(key)=\(value)") {
        try c.applying(["\(key)=\(value)"]).validate()
      } throws: { error in
        "\(error)".contains(key.split(separator: ".").last!)
      }
    }
    // Values JSON cannot hold as numbers are refused as the wrong type, naming the key.
    #expect { try c.applying(["agent.actorCritic.discount=1e39"]) } throws: { "\($0)".contains("discount") }
    #expect { try c.applying(["trainRatio=nan"]) } throws: { "\($0)".contains("trainRatio") }
  }

  /// A hand-edited config.json (its checksum line deleted, as the message says) is validated like
  /// `--set`: the resume is refused naming the key, and the folder is left as it was.
  @Test func anEditedConfigurationIsValidatedOnEveryRead() throws {
    let folder = temporaryFolder("edited")
    defer { try? FileManager.default.removeItem(at: folder) }
    try TrainingRun.start(config: try tinyTrainingConfig(steps: 8), in: folder).run()
    let url = folder.appendingPathComponent("config.json")
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    #expect(object["crc32"] is String)
    object["crc32"] = nil
    var agent = object["agent"] as! [String: Any]
    var model = agent["worldModel"] as! [String: Any]
    model["deter"] = -1
    agent["worldModel"] = model
    object["agent"] = agent
    try JSONSerialization.data(withJSONObject: object).write(to: url)
    let before = try folderContents(folder)
    #expect { try TrainingRun.resume(from: folder) } throws: { "\($0)".contains("agent.worldModel.deter") }
    #expect { try TrainingRun.loadAgent(from: folder) } throws: { "\($0)".contains("agent.worldModel.deter") }
    #expect(try folderContents(folder) == before)
  }

  /// Every single-bit flip of config.json and checkpoint/state.json is caught.
  @Test func everySingleBitFlipIsDetected() throws {
    let folder = temporaryFolder("flips")
    defer { try? FileManager.default.removeItem(at: folder) }
    try TrainingRun.start(config: try tinyTrainingConfig(steps: 8), in: folder).run()
    let config = folder.appendingPathComponent("config.json")
    let state = folder.appendingPathComponent("checkpoint/state.json")
    #expect(TrainingRun.progress(of: folder) != nil)
    for (url, read) in [
      (config, { () -> Bool in (try? TrainingRun.configuration(of: folder)) != nil }),
      (state, { () -> Bool in TrainingRun.progress(of: folder) != nil }),
    ] {
      let original = try Data(contentsOf: url)
      var undetected: [Int] = []
      for i in 0..<original.count {
        var flipped = original
        flipped[i] ^= UInt8(1 << (i % 8))
        try flipped.write(to: url)
        if read() { undetected.append(i) }
      }
      try original.write(to: url)
      #expect(read())
      #expect(undetected.isEmpty, "\(url.lastPathComponent): flips at bytes \(undetected) went unnoticed")
      #expect(original.count > 100)
    }
  }

  /// A start killed before its config.json leaves a folder that is no run: resume says so, and a
  /// new start clears what the killed one left and begins afresh.
  @Test func aStartKilledBeforeItsConfigurationStartsAfresh() throws {
    let folder = temporaryFolder("unfinished")
    defer { try? FileManager.default.removeItem(at: folder) }
    try TrainingRun.start(config: try tinyTrainingConfig(steps: 8), in: folder).run()
    try FileManager.default.removeItem(at: folder.appendingPathComponent("config.json"))
    #expect { try TrainingRun.resume(from: folder) } throws: { "\($0)".contains("holds no run") }
    let run = try TrainingRun.start(config: try tinyTrainingConfig(steps: 8), in: folder)
    #expect(run.collector.steps == 0 && run.replay.inserted == 0)
    #expect(try MetricsLog.lines(folder.appendingPathComponent("metrics.jsonl")).isEmpty)
    try run.run()
    #expect(try TrainingRun.resume(from: folder).collector.steps == 8)
  }

  /// A resume that fails on a damaged part (here the agent's parameters) writes nothing.
  @Test func aFailedResumeLeavesTheFolderAsItWas() throws {
    let folder = temporaryFolder("failed-resume")
    defer { try? FileManager.default.removeItem(at: folder) }
    let run = try TrainingRun.start(config: try tinyTrainingConfig(steps: 60), in: folder)
    try run.run { event in
      if case .collected(let steps) = event, steps >= 50 { return .stop }
      return .proceed
    }
    // Lines after the checkpoint, which a successful resume would cut.
    let log = try MetricsLog(url: folder.appendingPathComponent("metrics.jsonl"), create: false)
    try log.write(
      .train(TrainLine(stamp: LineStamp(kind: "train", envSteps: 99, updates: 0, seconds: 0), learnerSteps: 0)))
    try damageFile(startingWith: "agent-", in: folder.appendingPathComponent("checkpoint"))
    let before = try folderContents(folder)
    #expect { try TrainingRun.resume(from: folder) } throws: { "\($0)".contains("agent") }
    #expect(try folderContents(folder) == before, "the failed resume changed the folder")
  }

}
