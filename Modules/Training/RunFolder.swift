import FileSupport
import Foundation
import TensorBoard

/// Where the files of a run live, and the one reader of each file outside the checkpoint parts:
///
/// ```
/// <run>/config.json          the TrainingConfig (versioned JSON)
/// <run>/metrics.jsonl        one MetricsLine per line
/// <run>/events.out.tfevents.r2i   the same numbers (and open-loop images) for TensorBoard
/// <run>/openl/openl-<env step>.png  open-loop prediction pictures (image observations)
/// <run>/replay/              the replay (its own manifest and chunks)
/// <run>/checkpoint/state.json     the manifest, written last: progress and each part's file
/// <run>/checkpoint/<part>-<token>.<ext>   agent, learner, collector, loop
/// <run>/checkpoint/kept/agent-<env step>.safetensors   earlier agents (checkpointKeep > 1)
/// ```
///
/// A run trained by N processes (`mpirun -np N`) keeps rank 0's files there and each other
/// rank's collector and replay shard in `checkpoint/rank-<R>/` and `replay/rank-<R>/`.
public struct RunFolder: Sendable {
  public let url: URL

  public init(_ url: URL) { self.url = url }

  public var configFile: URL { url.appendingPathComponent("config.json") }
  public var metricsFile: URL { url.appendingPathComponent("metrics.jsonl") }
  /// The TensorBoard event file: `tensorboard --logdir <folder of runs>` shows every run.
  public var eventsFile: URL { url.appendingPathComponent(EventFileWriter.fileName) }
  /// The open-loop prediction pictures (``OpenLoopPicture``), one per ``TrainingConfig/openLoopMinutes``.
  public var openLoopDirectory: URL { url.appendingPathComponent("openl") }
  public var replayDirectory: URL { url.appendingPathComponent("replay") }
  public var checkpointDirectory: URL { url.appendingPathComponent("checkpoint") }
  /// `checkpoint/state.json`.
  public var manifestFile: URL { checkpointDirectory.appendingPathComponent("state.json") }

  /// The folder of rank `rank`'s own checkpoint parts: `checkpoint/` for rank 0, else
  /// `checkpoint/rank-<rank>/`.
  public func checkpointDirectory(rank: Int) -> URL {
    rank == 0 ? checkpointDirectory : checkpointDirectory.appendingPathComponent("\(Self.rankPrefix)\(rank)")
  }

  /// The folder of rank `rank`'s replay shard: `replay/` for rank 0, else `replay/rank-<rank>/`.
  public func replayDirectory(rank: Int) -> URL {
    rank == 0 ? replayDirectory : replayDirectory.appendingPathComponent("\(Self.rankPrefix)\(rank)")
  }

  /// The name prefix of the other ranks' folders inside rank 0's.
  static let rankPrefix = "rank-"

  /// The folder of earlier checkpoints' agents in `checkpoint/`.
  static let keptName = "kept"

  /// `checkpoint/kept/`: the agents of earlier checkpoints (``TrainingConfig/checkpointKeep``).
  public var keptDirectory: URL { checkpointDirectory.appendingPathComponent(Self.keptName) }

  /// The env steps of the kept earlier agents, oldest first.
  public func keptAgentSteps() -> [Int] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: keptDirectory.path)) ?? []
    return names.compactMap { name -> Int? in
      guard name.hasPrefix("agent-"), name.hasSuffix(".safetensors") else { return nil }
      return Int(name.dropFirst("agent-".count).dropLast(".safetensors".count))
    }.sorted()
  }

  /// Whether the folder holds a run: its `config.json`, which a new run writes last, after its
  /// first checkpoint, so a folder either holds a run that resumes or none.
  public var holdsRun: Bool { FileManager.default.fileExists(atPath: configFile.path) }

  /// Takes the folder's exclusive lock (`.lock`, held for the life of the writer); throws,
  /// naming the holder's process id, when another process holds it for a second.
  func lock() throws -> DirectoryLock {
    do {
      return try DirectoryLock(url, exclusive: true, wait: false, patience: 1)
    } catch let e as FileError {
      throw TrainingError.runFolder("'\(url.path)': \(e.problem)")
    }
  }

  /// Removes what a start killed before its `config.json` left behind (its checkpoint, replay
  /// and metrics), so the folder starts fresh. Only in a folder a run start had locked.
  func removeUnfinishedStart() throws {
    let fm = FileManager.default
    guard !holdsRun, fm.fileExists(atPath: url.appendingPathComponent(".lock").path) else { return }
    for leftover in [checkpointDirectory, replayDirectory, metricsFile, eventsFile, openLoopDirectory]
    where fm.fileExists(atPath: leftover.path) {
      do {
        try fm.removeItem(at: leftover)
      } catch {
        throw TrainingError.runFolder(
          "cannot remove '\(leftover.path)' of an unfinished start (\(error.localizedDescription))")
      }
    }
  }

  /// Creates the folder (and its parents) for a new run.
  func create() throws {
    do {
      try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    } catch {
      throw TrainingError.runFolder("cannot create '\(url.path)' (\(error.localizedDescription))")
    }
  }

  /// The run's configuration (`config.json`, migrated if older).
  public func readConfig() throws -> TrainingConfig {
    guard let data = try? Data(contentsOf: configFile) else {
      throw TrainingError.runFolder(
        "'\(url.path)' holds no run (no config.json); start one with r2i train --run \(url.path)")
    }
    do {
      let config = try TrainingConfig.decode(data, source: configFile.path)
      try config.validate()
      return config
    } catch let e as TrainingError {
      throw TrainingError.runFolder("'\(configFile.path)': \(e)")
    }
  }

  func writeConfig(_ config: TrainingConfig) throws {
    try AtomicFile.write(try config.sealed(), to: configFile)
  }

  /// The last checkpoint's manifest (`checkpoint/state.json`).
  func readManifest() throws -> CheckpointManifest {
    guard let data = try? Data(contentsOf: manifestFile) else {
      throw TrainingError.runFolder("'\(url.path)' has no checkpoint (\(manifestFile.path) is missing)")
    }
    switch JSONSeal.check(data) {
    case .intact: break
    case .unsealed where (try? JSONDecoder().decode(CheckpointManifest.Header.self, from: data))?.version == 1:
      break  // version 1 had no checksum; refused below, by its version
    case .unsealed, .damaged:
      throw TrainingError.runFolder(
        "'\(manifestFile.path)' is damaged (its checksum does not match); the run cannot resume from it")
    }
    let manifest: CheckpointManifest
    do {
      manifest = try JSONDecoder().decode(CheckpointManifest.self, from: data)
    } catch {
      if let old = try? JSONDecoder().decode(CheckpointManifest.Header.self, from: data), old.version == 1 {
        throw TrainingError.runFolder(
          "'\(manifestFile.path)' is a version-1 checkpoint (written before r2i 0.6); this build reads version \(CheckpointManifest.currentVersion): finish the run with the build that started it, or start a new run"
        )
      }
      throw TrainingError.runFolder("'\(manifestFile.path)' is damaged (\(TrainingConfig.describe(error)))")
    }
    if let ranks = manifest.ranks, !(1...4096).contains(ranks) {
      throw TrainingError.runFolder("'\(manifestFile.path)' names \(ranks) processes, not 1...4096; it is damaged")
    }
    guard manifest.format == CheckpointManifest.formatName, manifest.version == CheckpointManifest.currentVersion
    else {
      throw TrainingError.runFolder(
        "'\(manifestFile.path)' is format \(manifest.format) v\(manifest.version); this build reads \(CheckpointManifest.formatName) v\(CheckpointManifest.currentVersion)"
      )
    }
    return manifest
  }

  /// Where the run stands at its last checkpoint, or nil when it has none (or an unreadable one).
  public func progress() -> TrainingRun.Progress? { try? readManifest().progress }
}

/// `checkpoint/state.json`: where the run stood and which file holds each part. Written last, by
/// an atomic rename, so the files it names are complete.
struct CheckpointManifest: Codable {
  static let formatName = "r2i-run"
  static let currentVersion = 2

  /// The fields every version has.
  struct Header: Codable {
    var format: String
    var version: Int
  }

  var format = formatName
  var version = currentVersion
  var progress: TrainingRun.Progress
  /// The file of each part in `checkpoint/`, by part name.
  var files: [String: String]
  /// The replay's manifest in `replay/` that this checkpoint saved.
  var replayManifest: String
  /// Steps the replay had taken in when the checkpoint was written (a later replay save means a
  /// kill between the replay's save and this file).
  var replayInserted: Int
  /// The length of `metrics.jsonl` at the checkpoint (a resume cuts lines written after it).
  var metricsBytes: UInt64
  /// The length of the TensorBoard event file at the checkpoint (absent: written before runs
  /// had one; a resume then rebuilds it from `metrics.jsonl`).
  var eventsBytes: UInt64?
  /// The processes that trained the run (absent: one). Each rank other than 0 kept its
  /// collector and replay under the same file names in its own folders
  /// (``RunFolder/checkpointDirectory(rank:)``, ``RunFolder/replayDirectory(rank:)``).
  var ranks: Int?
}
