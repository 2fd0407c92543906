import Agent
import Foundation
import Training

/// The small configurations tests build models from, written once: a world model of a few
/// units per layer (deter 10 and units 9, different on purpose, so a swapped axis fails to run),
/// and a training run of it on a short task.
public enum TinyConfigs {
  /// A tiny world model: deter 10, units 9, one MLP layer, CNN depth 2, 4 x 3 latents, an SSM
  /// of 2 layers of 4 states over 6 channels (a Transformer: 2 layers of width 8, 2 heads, no
  /// window).
  public static func worldModel(
    _ backbone: Backbone, observation: ObservationKind = .vector(size: 5), actions: Int = 3,
    discreteActions: Bool = true
  ) -> WorldModelConfig {
    var c = WorldModelConfig(
      backbone: backbone, observation: observation, actionSize: actions, discreteActions: discreteActions, deter: 10,
      units: 9, mlpLayers: 1, cnnDepth: 2, ssm: SSMSettings(states: 4, channels: 6, layers: 2, hippoBlocks: 2))
    c.groups = 4
    c.classes = 3
    if backbone == .transformer { c.transformer = TransformerSettings(layers: 2, width: 8, heads: 2) }
    return c
  }

  /// A training run small enough for tests: the tiny world model (with the preset's optimiser
  /// and the task's reward head) and actor and critic of 16
  /// units, 2 environments, batch 4 x 8, a learner step every 16 environment steps after 48
  /// prefill steps, horizon 4 in chunks of 16 starts (several per learner step), a log line
  /// every 40 steps (none by time, so identical runs write identical lines), evaluation (2
  /// episodes) every 100, a checkpoint every 60, no open-loop images.
  public static func training(env: String = "bsuite/memory_len/3", backbone: Backbone = .r2i, steps: Int = 240) throws
    -> TrainingConfig
  {
    var c = try TrainingConfig.defaults(env: env, backbone: backbone, steps: steps, envs: 2, seed: 7)
    var wm = worldModel(backbone, observation: c.agent.worldModel.observation, actions: c.agent.worldModel.actionSize)
    wm.rewardByAction = c.agent.worldModel.rewardByAction
    wm.optimizer = c.agent.worldModel.optimizer
    var ac = c.agent.actorCritic
    ac.horizon = 4
    ac.imaginationChunk = 16
    c.agent = AgentConfig(
      worldModel: wm, actions: c.agent.actions, policyInput: .hidden, units: 16, layers: 1, actorCritic: ac)
    c.batch = 4
    c.length = 8
    c.trainRatio = 2  // 32 replayed steps per learner step: one per 16 env steps
    c.prefill = 48
    c.replayCapacity = 10_000
    c.logEvery = 40
    c.logSeconds = 0
    c.openLoopMinutes = 0
    c.evalEvery = 100
    c.evalEpisodes = 2
    c.checkpointEvery = 60
    return c
  }
}

/// A fresh path under the temporary directory (not created), named after `name`.
public func temporaryFolder(_ name: String) -> URL {
  FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
}

/// Every file under `folder` with its bytes, for "the command left the folder as it was" checks.
public func folderContents(_ folder: URL) throws -> [String: Data] {
  var out: [String: Data] = [:]
  for case let path as String in FileManager.default.enumerator(atPath: folder.path)! {
    var isDirectory: ObjCBool = false
    let url = folder.appendingPathComponent(path)
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
      out[path] = try Data(contentsOf: url)
    }
  }
  return out
}
