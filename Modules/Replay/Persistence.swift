import FileSupport
import Foundation

/// What to do with a chunk file that is missing, truncated or fails its checksum.
public enum CorruptChunkPolicy: String, Sendable, Codable {
  /// Stop loading and throw an error naming the file.
  case reject
  /// Leave the chunk out (its stream continues as a new segment after the gap) and report it.
  case skip
}

/// What ``Replay/load(from:onCorruptChunk:)`` found.
public struct ReplayLoadReport: Sendable {
  public let loadedChunks: Int
  public let loadedSteps: Int
  /// Files left out under ``CorruptChunkPolicy/skip``, with the reason.
  public let skipped: [(file: String, reason: String)]
}

/// On-disk replay format (version 1).
///
/// A directory holds `manifest.json` and one file per chunk of consecutive steps of one stream,
/// named `chunk-s<stream>-i<first stream position>-n<count>.bin`. A chunk is little-endian:
///
/// ```
/// magic "R2IRPLY1" (8 bytes) | u32 version | u64 stream | u64 first position | u32 count
/// u32 vectorSize | u32 imageHeight | u32 imageWidth | u32 imageChannels | u32 actionSize
/// u64[count] global sequence numbers | f32[count*vectorSize] vectors
/// u8[count*imageSize] images | f32[count*actionSize] actions | f32[count] rewards
/// u8[count] flags (bit 0 first, bit 1 last, bit 2 terminal) | u32 CRC-32 of all bytes before
/// ```
///
/// The manifest (JSON with its own CRC-32) lists the segments in sampling order with their
/// chunks and checksums, the insertion counters and the sampler's random state, so a loaded
/// replay samples exactly what the saved one would have. Every file is written to a temporary
/// name and renamed; the manifest goes last, so an interrupted save leaves the previous one
/// loadable. Chunk files already present with the right size are kept (steps never change once
/// stored); files no longer referenced are removed after the new manifest is in place.
enum ReplayFormat {
  static let magic = Array("R2IRPLY1".utf8)
  static let version: UInt32 = 1
  static let manifestName = "manifest.json"

  struct ChunkRef: Codable, Equatable {
    var file: String
    var firstIndex: Int
    var count: Int
    var crc32: UInt32
  }
  struct SegmentRecord: Codable, Equatable {
    var stream: Int
    var firstIndex: Int
    var count: Int
    var chunks: [ChunkRef]
  }
  struct Manifest: Codable, Equatable {
    var format = "r2i-replay"
    var version = 1
    var layout: ReplayLayout
    var capacity: Int
    var inserted: Int
    var nextIndex: [[Int]]  // [stream, next position]
    var active: [[Int]]  // [stream, segment]
    var rngState: [UInt64]
    var segments: [SegmentRecord]
    var crc32: UInt32 = 0

    func checksum() throws -> UInt32 {
      var copy = self
      copy.crc32 = 0
      let e = JSONEncoder()
      e.outputFormatting = [.sortedKeys]
      return CRC32.checksum(Array(try e.encode(copy)))
    }
  }

  static func chunkName(stream: Int, first: Int, count: Int) -> String {
    "chunk-s\(stream)-i\(first)-n\(count).bin"
  }

  static func chunkSize(_ l: ReplayLayout, count: Int) -> Int {
    8 + 4 + 8 + 8 + 4 + 5 * 4 + count * (8 + l.vectorSize * 4 + l.imageSize + l.actionSize * 4 + 4 + 1) + 4
  }
}

extension Replay {
  /// Saves every stored step and the sampling state to `directory` (created if needed).
  ///
  /// - Parameter chunkSize: steps per chunk file; chunk boundaries sit at multiples of it in
  ///   each stream, so later saves reuse the files of full chunks.
  public func save(to directory: URL, chunkSize: Int = 1024) throws {
    guard chunkSize >= 1 else { throw ReplayError("chunk size must be positive, got \(chunkSize)") }
    let fm = FileManager.default
    do {
      try fm.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw ReplayError(
        "cannot create '\(directory.path)' (\(error.localizedDescription)); check the path and permissions")
    }
    try lock.withLock {
      var records: [ReplayFormat.SegmentRecord] = []
      var keep: Set<String> = [ReplayFormat.manifestName]
      for seg in segments {
        var record = ReplayFormat.SegmentRecord(
          stream: seg.stream, firstIndex: seg.firstIndex, count: seg.count, chunks: [])
        var i = 0
        while i < seg.count {
          let position = seg.firstIndex + i
          let end = min(seg.count, i + (chunkSize - position % chunkSize))
          let name = ReplayFormat.chunkName(stream: seg.stream, first: position, count: end - i)
          let url = directory.appendingPathComponent(name)
          let expected = ReplayFormat.chunkSize(layout, count: end - i)
          let bytes = encodeChunkLocked(seg, from: i, to: end)
          let crc = CRC32.checksum(bytes.dropLast(4))
          let existing = (try? fm.attributesOfItem(atPath: url.path)[.size] as? Int) ?? nil
          if existing != expected { try AtomicFile.write(Data(bytes), to: url) }
          record.chunks.append(.init(file: name, firstIndex: position, count: end - i, crc32: crc))
          keep.insert(name)
          i = end
        }
        records.append(record)
      }
      var manifest = ReplayFormat.Manifest(
        layout: layout, capacity: capacity, inserted: insertedCount,
        nextIndex: nextIndex.sorted { $0.key < $1.key }.map { [$0.key, $0.value] },
        active: active.sorted { $0.key < $1.key }.map { [$0.key, $0.value] }, rngState: rng.state,
        segments: records)
      manifest.crc32 = try manifest.checksum()
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
      try AtomicFile.write(
        try encoder.encode(manifest), to: directory.appendingPathComponent(ReplayFormat.manifestName))
      // Remove chunk files the new manifest no longer references.
      for name in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
      where name.hasPrefix("chunk-") && !keep.contains(name) {
        try? fm.removeItem(at: directory.appendingPathComponent(name))
      }
    }
  }

  func encodeChunkLocked(_ seg: Segment, from: Int, to: Int) -> [UInt8] {
    let l = layout
    var w = BinaryWriter()
    w.write(bytes: ReplayFormat.magic)
    w.write(ReplayFormat.version)
    w.write(UInt64(seg.stream))
    w.write(UInt64(seg.firstIndex + from))
    w.write(UInt32(to - from))
    for v in [l.vectorSize, l.imageHeight, l.imageWidth, l.imageChannels, l.actionSize] { w.write(UInt32(v)) }
    let slots = (from..<to).map { seg.slot($0) }
    for s in slots { w.write(UInt64(slotSequence[s])) }
    vectors.withUnsafeBufferPointer { p in
      for s in slots {
        w.write(floats: UnsafeBufferPointer(rebasing: p[(s * l.vectorSize)..<((s + 1) * l.vectorSize)]))
      }
    }
    for s in slots { w.write(bytes: images[(s * l.imageSize)..<((s + 1) * l.imageSize)]) }
    actions.withUnsafeBufferPointer { p in
      for s in slots {
        w.write(floats: UnsafeBufferPointer(rebasing: p[(s * l.actionSize)..<((s + 1) * l.actionSize)]))
      }
    }
    for s in slots { w.write(rewards[s]) }
    for s in slots { w.write(flags[s]) }
    let crc = CRC32.checksum(w.bytes)
    w.write(crc)
    return w.bytes
  }

  /// Loads a replay saved by ``save(to:chunkSize:)``.
  ///
  /// With `.reject` (the default) any missing, truncated or altered chunk throws an error naming
  /// the file; with `.skip` such chunks are left out and listed in the report. A damaged
  /// manifest always throws (without it nothing can be trusted).
  public static func load(from directory: URL, onCorruptChunk: CorruptChunkPolicy = .reject) throws -> (
    replay: Replay, report: ReplayLoadReport
  ) {
    let manifestURL = directory.appendingPathComponent(ReplayFormat.manifestName)
    guard let data = try? Data(contentsOf: manifestURL) else {
      throw ReplayError("no replay at '\(directory.path)': cannot read \(ReplayFormat.manifestName)")
    }
    let manifest: ReplayFormat.Manifest
    do {
      manifest = try JSONDecoder().decode(ReplayFormat.Manifest.self, from: data)
    } catch {
      throw ReplayError("'\(manifestURL.path)' is not a valid replay manifest (\(error)); the file is damaged")
    }
    guard manifest.format == "r2i-replay", manifest.version == 1 else {
      throw ReplayError(
        "'\(manifestURL.path)' has format \(manifest.format) version \(manifest.version); this build reads r2i-replay version 1"
      )
    }
    guard try manifest.checksum() == manifest.crc32 else {
      throw ReplayError("'\(manifestURL.path)' fails its checksum: the manifest was altered or damaged")
    }
    let replay = try Replay(layout: manifest.layout, capacity: manifest.capacity)
    guard let rng = SeededGenerator(state: manifest.rngState) else {
      throw ReplayError("'\(manifestURL.path)' holds an invalid random state")
    }
    var skipped: [(String, String)] = []
    var loadedChunks = 0
    // Decode every chunk, then place steps in global insertion order.
    struct Loaded {
      var segment: Int
      var sequence: Int
      var step: ReplayStep
    }
    var all: [Loaded] = []
    var segmentStreams: [Int] = []
    var segmentFirst: [Int] = []
    for record in manifest.segments {
      var current = -1
      var expectedNext = -1
      for chunk in record.chunks {
        let url = directory.appendingPathComponent(chunk.file)
        do {
          let steps = try decodeChunk(url, layout: manifest.layout, ref: chunk, stream: record.stream)
          if current < 0 || expectedNext != chunk.firstIndex {
            // A new segment: the first one of this record, or the continuation after a gap.
            segmentStreams.append(record.stream)
            segmentFirst.append(chunk.firstIndex)
            current = segmentStreams.count - 1
          }
          for (seq, step) in steps { all.append(Loaded(segment: current, sequence: seq, step: step)) }
          expectedNext = chunk.firstIndex + chunk.count
          loadedChunks += 1
        } catch let e as ReplayError {
          if onCorruptChunk == .reject { throw e }
          skipped.append((chunk.file, e.problem))
        }
      }
      if current < 0 {
        // Keep an (empty) segment so segment numbering stays aligned with the manifest.
        segmentStreams.append(record.stream)
        segmentFirst.append(record.firstIndex + record.count)
      }
    }
    all.sort { $0.sequence < $1.sequence }
    guard all.count <= manifest.capacity else {
      throw ReplayError("'\(manifestURL.path)' lists \(all.count) steps for capacity \(manifest.capacity)")
    }
    replay.lock.withLock {
      replay.segments = zip(segmentStreams, segmentFirst).map {
        Segment(stream: $0.0, firstIndex: $0.1, slots: [], head: 0)
      }
      for item in all {
        let slot = replay.filled
        replay.filled += 1
        replay.writeLocked(item.step, slot: slot)
        replay.segments[item.segment].slots.append(Int32(slot))
        replay.slotSegment[slot] = Int32(item.segment)
        replay.slotSequence[slot] = item.sequence
      }
      replay.insertedCount = manifest.inserted
      replay.nextIndex = Dictionary(uniqueKeysWithValues: manifest.nextIndex.map { ($0[0], $0[1]) })
      if skipped.isEmpty {
        replay.active = Dictionary(uniqueKeysWithValues: manifest.active.map { ($0[0], $0[1]) })
      } else {
        // After a gap, new steps of a stream continue its last segment only if nothing of it
        // was lost at the end; otherwise they start a new segment.
        var last: [Int: Int] = [:]
        for (i, s) in replay.segments.enumerated() { last[s.stream] = i }
        replay.active = [:]
        for (stream, seg) in last
        where replay.segments[seg].firstIndex + replay.segments[seg].count == replay.nextIndex[stream] {
          replay.active[stream] = seg
        }
      }
      replay.rng = rng
    }
    return (replay, ReplayLoadReport(loadedChunks: loadedChunks, loadedSteps: all.count, skipped: skipped))
  }

  func writeLocked(_ step: ReplayStep, slot: Int) {
    let l = layout
    for i in 0..<l.vectorSize { vectors[slot * l.vectorSize + i] = step.vector[i] }
    if l.imageSize > 0 { images.replaceSubrange((slot * l.imageSize)..<((slot + 1) * l.imageSize), with: step.image) }
    for i in 0..<l.actionSize { actions[slot * l.actionSize + i] = step.action[i] }
    rewards[slot] = step.reward
    flags[slot] = (step.isFirst ? 1 : 0) | (step.isLast ? 2 : 0) | (step.isTerminal ? 4 : 0)
  }

  static func decodeChunk(
    _ url: URL, layout l: ReplayLayout, ref: ReplayFormat.ChunkRef, stream: Int
  ) throws -> [(Int, ReplayStep)] {
    let name = url.lastPathComponent
    guard let data = try? Data(contentsOf: url) else {
      throw ReplayError("chunk '\(name)' is missing or unreadable")
    }
    let bytes = [UInt8](data)
    let expected = ReplayFormat.chunkSize(l, count: ref.count)
    guard bytes.count == expected else {
      throw ReplayError("chunk '\(name)' has \(bytes.count) bytes, expected \(expected) (truncated or altered)")
    }
    let stored = bytes.suffix(4).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    let crc = CRC32.checksum(bytes.dropLast(4))
    guard crc == stored, crc == ref.crc32 else {
      throw ReplayError("chunk '\(name)' fails its checksum (the data was altered or corrupted)")
    }
    var r = BinaryReader(bytes, source: name)
    do {
      guard Array(try r.readBytes(8, "magic")) == ReplayFormat.magic else {
        throw ReplayError("chunk '\(name)' is not a replay chunk (bad magic)")
      }
      let version = try r.read(UInt32.self, "version")
      guard version == ReplayFormat.version else {
        throw ReplayError("chunk '\(name)' has version \(version); this build reads \(ReplayFormat.version)")
      }
      let s = Int(try r.read(UInt64.self))
      let first = Int(try r.read(UInt64.self))
      let count = Int(try r.read(UInt32.self))
      var dims: [Int] = []
      for _ in 0..<5 { dims.append(Int(try r.read(UInt32.self))) }
      guard s == stream, first == ref.firstIndex, count == ref.count,
        dims == [l.vectorSize, l.imageHeight, l.imageWidth, l.imageChannels, l.actionSize]
      else {
        throw ReplayError("chunk '\(name)' does not match its manifest entry (stream, position, count or layout)")
      }
      var seqs: [Int] = []
      for _ in 0..<count { seqs.append(Int(try r.read(UInt64.self))) }
      let vec = try r.readFloats(count * l.vectorSize)
      let img = Array(try r.readBytes(count * l.imageSize))
      let act = try r.readFloats(count * l.actionSize)
      let rew = try r.readFloats(count)
      let fl = Array(try r.readBytes(count))
      return (0..<count).map { i in
        (
          seqs[i],
          ReplayStep(
            vector: Array(vec[(i * l.vectorSize)..<((i + 1) * l.vectorSize)]),
            image: Array(img[(i * l.imageSize)..<((i + 1) * l.imageSize)]),
            action: Array(act[(i * l.actionSize)..<((i + 1) * l.actionSize)]), reward: rew[i],
            isFirst: fl[i] & 1 != 0, isLast: fl[i] & 2 != 0, isTerminal: fl[i] & 4 != 0)
        )
      }
    } catch let e as FileError {
      throw ReplayError("chunk '\(name)': \(e.problem)")
    }
  }
}
