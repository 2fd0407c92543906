import Foundation
import TensorBoard

extension MetricsLine {
  /// The line's numbers as TensorBoard scalars, at step `env_steps`: every number of the line
  /// but `env_steps` itself, the episode's environment index, and (except on `train` lines) the
  /// `updates` and `seconds` every line carries. Tags: a namespaced name as it is (`wm/loss`,
  /// `actor/entropy`); any other under the line's kind (`train/score_recent`,
  /// `train/steps_per_second`, `episode/score`, `episode/length`, `eval/score` for
  /// `eval_score`). A `null` (non-finite) number is NaN.
  public var scalars: [SummaryValue] {
    guard let data = try? MetricsLog.encoder.encode(self),
      let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    else { return [] }
    let kind = stamp.kind
    var skipped: Set<String> = ["kind", "env_steps", "environment"]
    if kind != "train" { skipped.formUnion(["updates", "seconds"]) }
    return object.keys.sorted().compactMap { key -> SummaryValue? in
      guard !skipped.contains(key) else { return nil }
      let value: Double
      switch object[key] {
      case is NSNull: value = .nan
      case let n as NSNumber: value = n.doubleValue
      default: return nil
      }
      return .scalar(tag: Self.tensorBoardTag(key, kind: kind), value: Float(value))
    }
  }

  /// The TensorBoard tag of the number `key` of a line of `kind` (see ``scalars``).
  public static func tensorBoardTag(_ key: String, kind: String) -> String {
    if key.contains("/") { return key }
    let name = kind == "eval" && key.hasPrefix("eval_") ? String(key.dropFirst(5)) : key
    return "\(kind)/\(name)"
  }
}

extension TrainingRun {
  /// Writes `line` to `metrics.jsonl` and its ``MetricsLine/scalars`` to the event file (rank 0
  /// holds both; the other ranks write nothing).
  func write(_ line: MetricsLine) throws {
    try metrics?.write(line)
    try writeEvent(step: line.stamp.envSteps, values: line.scalars)
  }

  /// Appends one event to the event file (rank 0).
  func writeEvent(step: Int, values: [SummaryValue], wallTime: Double = EventFileWriter.now()) throws {
    guard let events, !values.isEmpty else { return }
    do {
      try events.write(step: step, values: values, wallTime: wallTime)
    } catch let e as EventFileError {
      throw TrainingError.runFolder(e.problem)
    }
  }

  /// The event file of a new run, empty but for its version record.
  static func newEventFile(_ folder: RunFolder) throws -> EventFileWriter {
    do {
      let writer = try EventFileWriter(url: folder.eventsFile)
      try writer.truncate(to: 0)
      return writer
    } catch let e as EventFileError {
      throw TrainingError.runFolder(e.problem)
    }
  }

  /// At a resume (rank 0, after `metrics.jsonl` was cut to the checkpoint): the event file as
  /// it was at the checkpoint. Cut to the length the checkpoint recorded; rebuilt from
  /// `metrics.jsonl` when the checkpoint predates event files or the file is missing or shorter
  /// (its events then carry the times the lines' `seconds` give, counted back from now).
  func restoreEvents(cutTo length: UInt64?) throws {
    let url = folder.eventsFile
    let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.uint64Value
    do {
      if let length, let size, size >= length {
        let writer = try EventFileWriter(url: url)
        try writer.truncate(to: length)
        events = writer
        return
      }
      if size != nil { try FileManager.default.removeItem(at: url) }
      events = try Self.newEventFile(folder)
    } catch let e as EventFileError {
      throw TrainingError.runFolder(e.problem)
    } catch let e as TrainingError {
      throw e
    } catch {
      throw TrainingError.runFolder("cannot replace '\(url.path)' (\(error.localizedDescription))")
    }
    let start = EventFileWriter.now() - clock.total
    for line in try MetricsLog.lines(folder.metricsFile) {
      try writeEvent(step: line.stamp.envSteps, values: line.scalars, wallTime: start + line.stamp.seconds)
    }
  }
}
