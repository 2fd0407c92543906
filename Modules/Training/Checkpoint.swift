import Agent
import FileSupport
import Foundation
import Replay

/// A piece of a training run that a checkpoint holds in a file of its own, named after it
/// (`<name>-<token>.<fileExtension>` in `checkpoint/`). Each part saves and restores itself; a
/// checkpoint is the list of parts plus the manifest naming their files.
struct CheckpointPart {
  /// The part's name: the stem of its file and its key in `state.json`.
  let name: String
  let fileExtension: String
  let save: (URL) throws -> Void
  let restore: (URL) throws -> Void

  /// A part kept as safetensors: named tensors and string metadata.
  static func tensors(
    _ name: String, save: @escaping () throws -> (tensors: [(String, Tensor)], metadata: [String: String]),
    restore: @escaping (_ tensors: [String: Tensor], _ metadata: [String: String]) throws -> Void
  ) -> CheckpointPart {
    CheckpointPart(
      name: name, fileExtension: "safetensors",
      save: { url in
        let (tensors, metadata) = try save()
        try SafeTensors.write(tensors, metadata: metadata, to: url)
      },
      restore: { url in
        let file = try SafeTensors.read(from: url)
        try restore(file.tensors, file.metadata)
      })
  }

  /// A part kept as JSON.
  static func json<Value: Codable>(
    _ name: String, save: @escaping () -> Value, restore: @escaping (Value) throws -> Void
  ) -> CheckpointPart {
    CheckpointPart(
      name: name, fileExtension: "json",
      save: { url in
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(JSONSeal.sealed(try encoder.encode(save())), to: url)
      },
      restore: { url in
        let data = try Data(contentsOf: url)
        guard JSONSeal.check(data) == .intact else {
          throw CheckpointError(problem: "'\(url.lastPathComponent)' is damaged (its checksum does not match)")
        }
        do {
          try restore(try JSONDecoder().decode(Value.self, from: data))
        } catch let e as DecodingError {
          throw CheckpointError(problem: "'\(url.lastPathComponent)' is damaged (\(TrainingConfig.describe(e)))")
        }
      })
  }
}

extension TrainingRun {
  /// The parts of this run's checkpoint: the agent's parameters, the learner's state (three
  /// Adam states and the return scale), the collector (environments, agent states, acting
  /// generator, running tallies) and the loop's own state (counters, train-ratio carry, learner
  /// generator, pending log means, recent episodes). The replay and `metrics.jsonl` keep their
  /// own files; the manifest records how far each had got.
  var checkpointParts: [CheckpointPart] {
    [
      CheckpointPart(
        name: "agent", fileExtension: "safetensors",
        save: { [self] url in
          try SafeTensors.save(
            agent, to: url,
            metadata: [
              "env_steps": "\(collector.steps)", "updates": "\(loop.updates)", "env": config.env,
              "backbone": config.backbone.rawValue,
            ])
        },
        restore: { [self] url in try SafeTensors.load(into: agent, from: url) }),
      .tensors(
        "learner", save: { [self] in (learner.stateTensors(), [:]) },
        restore: { [self] tensors, _ in try learner.loadState(tensors) }),
      .tensors(
        "collector",
        save: { [self] in
          let (snapshot, tensors) = collector.snapshot()
          // Sorted keys: the same state gives the same bytes in every process.
          let encoder = JSONEncoder()
          encoder.outputFormatting = [.sortedKeys]
          let json = String(decoding: try encoder.encode(snapshot), as: UTF8.self)
          return (tensors, ["snapshot": json])
        },
        restore: { [self] tensors, metadata in
          guard let text = metadata["snapshot"],
            var snapshot = try? JSONDecoder().decode(Collector.Snapshot.self, from: Data(text.utf8))
          else { throw CheckpointError(problem: "the collector's file lacks a readable 'snapshot'") }
          if restartEpisodes { snapshot = snapshot.restartingEpisodes() }
          try collector.restore(snapshot, tensors: tensors)
        }),
      .json(
        "loop", save: { [self] in loop.saved(learnerRNG: learnerRNG, seconds: clock.total) },
        restore: { [self] in try restoreLoop($0) }),
    ]
  }

  /// Writes a checkpoint: flushes the metrics, saves the replay, writes every part to a new
  /// file, then `state.json` naming them, then removes the files of the previous checkpoint.
  /// A write that fails (a full disk, a file-size limit) throws ``TrainingError/writeFailed(_:)``
  /// naming the cause and the checkpoint the folder still holds.
  @discardableResult
  public func checkpoint() throws -> CheckpointReport {
    do {
      return try writeCheckpoint()
    } catch {
      let kept =
        folder.progress().map {
          "the folder still holds the checkpoint at env step \($0.envSteps), which --resume continues from"
        } ?? "the folder holds no checkpoint yet, so the next start begins afresh"
      throw TrainingError.writeFailed(
        "the checkpoint at env step \(collector.steps) could not be written (\(error)); \(kept)")
    }
  }

  private func writeCheckpoint() throws -> CheckpointReport {
    try holdLock()
    let start = Date()
    try metrics.synchronize()
    let token = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    // The replay under a manifest of this checkpoint's own: until state.json names it, the
    // previous checkpoint's manifest and chunks stay whole, so a kill in between resumes that
    // checkpoint exactly.
    let replayManifest = "manifest-\(token).json"
    try replay.save(to: folder.replayDirectory, manifestName: replayManifest)
    let directory = folder.checkpointDirectory
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    var files: [String: String] = [:]
    for part in checkpointParts {
      let name = "\(part.name)-\(token).\(part.fileExtension)"
      try part.save(directory.appendingPathComponent(name))
      files[part.name] = name
    }
    try FileSystem.synchronizeDirectory(directory)
    let manifest = CheckpointManifest(
      progress: progress, files: files, replayManifest: replayManifest, replayInserted: replay.inserted,
      metricsBytes: metrics.bytes)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    try AtomicFile.write(JSONSeal.sealed(try encoder.encode(manifest)), to: folder.manifestFile)
    try FileSystem.synchronizeDirectory(directory)
    try removeFilesOfOtherCheckpoints(than: manifest)
    return CheckpointReport(
      envSteps: collector.steps, updates: loop.updates, directory: directory, seconds: Date().timeIntervalSince(start))
  }

  /// Once state.json names `manifest`'s files: removes every other file of `checkpoint/`
  /// (an earlier checkpoint's, or one a kill left unfinished) and retires the replay's other
  /// manifests and the chunks only they named.
  func removeFilesOfOtherCheckpoints(than manifest: CheckpointManifest) throws {
    let directory = folder.checkpointDirectory
    let keep = Set(manifest.files.values).union([folder.manifestFile.lastPathComponent])
    for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where !keep.contains(name)
    {
      try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
    }
    try retireOlderReplayManifests(keeping: manifest.replayManifest)
  }

  /// Once state.json names `current`: `replay/manifest.json` becomes a copy of it (what
  /// `Replay.load(from:)` reads by default), and the manifests of earlier checkpoints go (their
  /// chunks with them).
  func retireOlderReplayManifests(keeping current: String) throws {
    let dir = folder.replayDirectory
    let fm = FileManager.default
    let copy = try Data(contentsOf: dir.appendingPathComponent(current))
    try AtomicFile.write(copy, to: dir.appendingPathComponent(ReplayFormat.manifestName))
    for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
    where name.hasPrefix("manifest-") && name.hasSuffix(".json") && name != current {
      try? fm.removeItem(at: dir.appendingPathComponent(name))
    }
    ReplayFormat.removeUnreferencedFiles(in: dir)
  }

  /// Restores every part from the files `manifest` names.
  func restoreParts(_ manifest: CheckpointManifest) throws {
    for part in checkpointParts {
      guard let file = manifest.files[part.name] else {
        throw CheckpointError(problem: "state.json names no file for the \(part.name)")
      }
      do {
        try part.restore(folder.checkpointDirectory.appendingPathComponent(file))
      } catch {
        throw CheckpointError(problem: "the \(part.name)'s file '\(file)': \(error)")
      }
    }
  }
}
