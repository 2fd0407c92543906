import Agent
import Distributed
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
              "env_steps": "\(envSteps)", "updates": "\(loop.updates)", "env": config.env,
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
            let snapshot = try? JSONDecoder().decode(Collector.Snapshot.self, from: Data(text.utf8))
          else { throw CheckpointError(problem: "the collector's file lacks a readable 'snapshot'") }
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
        "the checkpoint at env step \(envSteps) could not be written (\(error)); \(kept)")
    }
  }

  private func writeCheckpoint() throws -> CheckpointReport {
    let start = Date()
    let rank = communicator.rank
    // One token, rank 0's, names every rank's files of this checkpoint.
    var token = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    if communicator.size > 1 {
      token = String(decoding: communicator.broadcast(Data(token.utf8), from: 0), as: UTF8.self)
    }
    // The replay under a manifest of this checkpoint's own: until state.json names it, the
    // previous checkpoint's manifest and chunks stay whole, so a kill in between resumes that
    // checkpoint exactly.
    let replayManifest = "manifest-\(token).json"
    let files = Dictionary(
      uniqueKeysWithValues: checkpointParts.map { ($0.name, "\($0.name)-\(token).\($0.fileExtension)") })
    try communicator.everyRankSucceeds("write its part of the checkpoint") {
      try holdLock()
      try metrics?.synchronize()
      try events?.synchronize()
      try replay.save(to: folder.replayDirectory(rank: rank), manifestName: replayManifest)
      let directory = folder.checkpointDirectory(rank: rank)
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      for part in checkpointParts(ofRank: rank) { try part.save(directory.appendingPathComponent(files[part.name]!)) }
      try FileSystem.synchronizeDirectory(directory)
    }
    // The checkpoint this one replaces: its agent is kept when the run keeps several.
    let previous = rank == 0 && config.checkpointKeep > 1 ? try? folder.readManifest() : nil
    let manifest = CheckpointManifest(
      progress: progress, files: files, replayManifest: replayManifest, replayInserted: replay.inserted,
      metricsBytes: metrics?.bytes ?? 0, eventsBytes: events?.bytes,
      ranks: communicator.size > 1 ? communicator.size : nil)
    // Every rank's files are complete: rank 0 names them all, and only then do the old ones go.
    try communicator.everyRankSucceeds("write state.json") {
      guard rank == 0 else { return }
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      try AtomicFile.write(JSONSeal.sealed(try encoder.encode(manifest)), to: folder.manifestFile)
      try FileSystem.synchronizeDirectory(folder.checkpointDirectory)
    }
    if let previous, previous.progress.envSteps != envSteps { keepAgent(of: previous) }
    try removeFilesOfOtherCheckpoints(than: manifest)
    return CheckpointReport(
      envSteps: envSteps, updates: loop.updates, directory: folder.checkpointDirectory,
      seconds: Date().timeIntervalSince(start))
  }

  /// Moves the agent of the checkpoint `previous` (just replaced) to
  /// `checkpoint/kept/agent-<env step>.safetensors` and removes the oldest kept agents beyond
  /// `checkpointKeep - 1`. Best effort: a checkpoint never fails over an older one.
  func keepAgent(of previous: CheckpointManifest) {
    guard let file = previous.files["agent"] else { return }
    let fm = FileManager.default
    let kept = folder.keptDirectory
    try? fm.createDirectory(at: kept, withIntermediateDirectories: true)
    try? fm.moveItem(
      at: folder.checkpointDirectory.appendingPathComponent(file),
      to: kept.appendingPathComponent("agent-\(previous.progress.envSteps).safetensors"))
    let steps = folder.keptAgentSteps()
    for old in steps.dropLast(max(0, config.checkpointKeep - 1)) {
      try? fm.removeItem(at: kept.appendingPathComponent("agent-\(old).safetensors"))
    }
  }

  /// The parts rank `rank` keeps in its own folder: every part on rank 0; on the others only the
  /// collector (the agent, the learner and the loop are the same on every rank: rank 0's).
  func checkpointParts(ofRank rank: Int) -> [CheckpointPart] {
    rank == 0 ? checkpointParts : checkpointParts.filter { $0.name == "collector" }
  }

  /// Once state.json names `manifest`'s files: removes every other file of this rank's
  /// checkpoint folder (an earlier checkpoint's, or one a kill left unfinished; never the other
  /// ranks' folders) and retires the replay's other manifests and the chunks only they named.
  func removeFilesOfOtherCheckpoints(than manifest: CheckpointManifest) throws {
    let rank = communicator.rank
    let directory = folder.checkpointDirectory(rank: rank)
    let keep = Set(checkpointParts(ofRank: rank).compactMap { manifest.files[$0.name] }).union(
      rank == 0 ? [folder.manifestFile.lastPathComponent] : [])
    for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    where !keep.contains(name) && !name.hasPrefix(RunFolder.rankPrefix) && name != RunFolder.keptName {
      try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
    }
    try retireOlderReplayManifests(keeping: manifest.replayManifest)
  }

  /// Once state.json names `current`: `replay/manifest.json` becomes a copy of it (what
  /// `Replay.load(from:)` reads by default), and the manifests of earlier checkpoints go (their
  /// chunks with them).
  func retireOlderReplayManifests(keeping current: String) throws {
    let dir = folder.replayDirectory(rank: communicator.rank)
    let fm = FileManager.default
    let copy = try Data(contentsOf: dir.appendingPathComponent(current))
    try AtomicFile.write(copy, to: dir.appendingPathComponent(ReplayFormat.manifestName))
    for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
    where name.hasPrefix("manifest-") && name.hasSuffix(".json") && name != current {
      try? fm.removeItem(at: dir.appendingPathComponent(name))
    }
    ReplayFormat.removeUnreferencedFiles(in: dir)
  }

  /// Restores every part from the files `manifest` names (rank 0's, and this rank's own
  /// collector).
  func restoreParts(_ manifest: CheckpointManifest) throws {
    let own = Set(checkpointParts(ofRank: communicator.rank).map(\.name))
    for part in checkpointParts {
      guard let file = manifest.files[part.name] else {
        throw CheckpointError(problem: "state.json names no file for the \(part.name)")
      }
      let directory = folder.checkpointDirectory(rank: own.contains(part.name) ? communicator.rank : 0)
      do {
        try part.restore(directory.appendingPathComponent(file))
      } catch {
        throw CheckpointError(problem: "the \(part.name)'s file '\(file)': \(error)")
      }
    }
  }
}

extension Communicator {
  /// Runs `body` on every rank; throws on every rank when it threw on any (this rank's error,
  /// or one naming the ranks that failed to `what`). One collective, whatever happens, so no
  /// rank is left waiting for another that gave up.
  func everyRankSucceeds(_ what: String, _ body: () throws -> Void) throws {
    var failure: Error?
    do { try body() } catch { failure = error }
    guard size > 1 else {
      if let failure { throw failure }
      return
    }
    let failed = allGather([failure == nil ? 0 : 1] as [Int32]).enumerated().filter { $0.element[0] != 0 }
    guard failed.isEmpty else {
      if let failure { throw failure }
      throw TrainingError.runFolder(
        "rank \(failed.map { "\($0.offset)" }.joined(separator: ", ")) could not \(what) (see its message)")
    }
  }
}
