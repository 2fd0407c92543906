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
/// named `chunk-s<stream>-i<first stream position>-n<count>-<token>.bin`, where the token is
/// random and new for every file written, so a save never overwrites a file that an earlier
/// save may still reference. A chunk is little-endian:
///
/// ```
/// magic "R2IRPLY1" (8 bytes) | u32 version | u64 stream | u64 first position | u32 count
/// u32 vectorSize | u32 imageHeight | u32 imageWidth | u32 imageChannels | u32 actionSize
/// u64[count] global sequence numbers | f32[count*vectorSize] vectors
/// u8[count*imageSize] images | f32[count*actionSize] actions | f32[count] rewards
/// u8[count] flags (bit 0 first, bit 1 last, bit 2 terminal) | u32 CRC-32 of all bytes before
/// ```
///
/// The manifest (JSON with its own CRC-32) names exactly the chunk files of the save, with their
/// checksums, in sampling order, plus the insertion counters and the sampler's random state, so a
/// loaded replay samples exactly what the saved one would have.
///
/// A save commits in this order: new chunk files (each written to a temporary name, flushed,
/// renamed), the folder flushed, the manifest (same pattern), the folder flushed again; only
/// then are files that the new manifest does not name removed. A save killed at any moment
/// therefore leaves the previous manifest and every file it names intact. Temporary files and
/// chunks of killed saves are removed by the next save or load. A `.lock` file (`flock`) keeps a
/// save from running while another process saves to or loads from the same folder.
public enum ReplayFormat {
  static let magic = Array("R2IRPLY1".utf8)
  static let version: UInt32 = 1
  /// The manifest's default file name.
  public static let manifestName = "manifest.json"

  /// One chunk file in a manifest: the steps `firstIndex ..< firstIndex + count` of its stream.
  /// The file may hold `skip` more steps before them, stored before the oldest of them were
  /// evicted; later saves keep such a file instead of rewriting it.
  struct ChunkRef: Codable, Equatable {
    var file: String
    var firstIndex: Int
    var count: Int
    /// CRC-32 of the whole file (before its own trailing checksum).
    var crc32: UInt32
    var skip: Int? = nil

    /// Steps in the file, and the stream position of its first one.
    var fileCount: Int { count + (skip ?? 0) }
    var fileFirst: Int { firstIndex - (skip ?? 0) }
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

    /// Every chunk, keyed by its stream and the position after its last step.
    var chunksByEnd: [ChunkEnd: ChunkRef] {
      var out: [ChunkEnd: ChunkRef] = [:]
      for r in segments {
        for c in r.chunks { out[ChunkEnd(stream: r.stream, end: c.firstIndex + c.count)] = c }
      }
      return out
    }

    /// The checksum of every file the manifest names.
    var fileChecksums: [String: UInt32] {
      var out: [String: UInt32] = [:]
      for r in segments { for c in r.chunks { out[c.file] = c.crc32 } }
      return out
    }
  }

  /// Where a chunk ends in its stream. Chunks end at multiples of the chunk size (or at the
  /// newest step), and eviction only removes steps from the front, so a stored chunk stays
  /// usable for every later save whose chunk ends at the same place. Within one replay, steps
  /// never change once stored; another replay may hold different steps at the same positions.
  struct ChunkEnd: Hashable {
    var stream: Int
    var end: Int
  }

  /// The chunk files a replay knows hold its own steps, in one folder.
  struct PersistedChunks {
    var directory: String
    var chunks: [ChunkEnd: ChunkRef]
  }

  /// Steps per chunk when the caller does not choose: about 2 MiB per file, 16 ... 4096 steps,
  /// so a save after a few new steps rewrites little (64x64x3 images: 170 steps per chunk).
  static func defaultChunkSize(_ l: ReplayLayout) -> Int {
    min(4096, max(16, (2 << 20) / max(1, l.bytesPerStep)))
  }

  static func chunkName(stream: Int, first: Int, count: Int, token: UInt64) -> String {
    let hex = String(token, radix: 16)
    return "chunk-s\(stream)-i\(first)-n\(count)-\(String(repeating: "0", count: 16 - hex.count))\(hex).bin"
  }

  /// Bytes of a chunk of `count` steps, or nil when that does not fit in an `Int`.
  static func chunkSize(_ l: ReplayLayout, count: Int) -> Int? {
    let perStep = 8 + l.vectorSize * 4 + l.imageSize + l.actionSize * 4 + 4 + 1
    let (body, overflow) = count.multipliedReportingOverflow(by: perStep)
    guard !overflow, count >= 0 else { return nil }
    return body + 8 + 4 + 8 + 8 + 4 + 5 * 4 + 4
  }

  static func directoryKey(_ url: URL) -> String { url.standardizedFileURL.resolvingSymlinksInPath().path }

  /// The committed manifest of `directory`, or nil when there is none or it is damaged.
  static func readManifest(in directory: URL, name: String = manifestName) -> Manifest? {
    guard let data = try? Data(contentsOf: directory.appendingPathComponent(name)),
      let m = try? JSONDecoder().decode(Manifest.self, from: data), (try? m.checksum()) == m.crc32
    else { return nil }
    return m
  }

  /// Removes temporary files and chunk files that no intact manifest in `directory` names (what
  /// a save killed midway, or a manifest retired since, leaves behind). Best effort.
  public static func removeUnreferencedFiles(in directory: URL) {
    guard let manifest = readManifest(in: directory) else { return }
    removeStrayFiles(in: directory, keeping: manifest)
  }

  /// Removes temporary files and chunk files that neither `manifest` nor any other intact
  /// manifest in the folder (`manifest*.json`: a save named for a checkpoint that has not yet
  /// replaced the previous one) names. Best effort: a file that cannot be removed is left for
  /// the next save.
  static func removeStrayFiles(in directory: URL, keeping manifest: Manifest) {
    let fm = FileManager.default
    var keep = Set(manifest.segments.flatMap { $0.chunks.map(\.file) })
    for name in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
    where name.hasPrefix("manifest") && name.hasSuffix(".json") {
      if let other = readManifest(in: directory, name: name) {
        keep.formUnion(other.segments.flatMap { $0.chunks.map(\.file) })
      }
    }
    for name in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
    where (name.hasPrefix("chunk-") && name.hasSuffix(".bin") && !keep.contains(name))
      || FileSystem.isTemporaryFile(name)
    {
      try? fm.removeItem(at: directory.appendingPathComponent(name))
    }
  }
}

extension Replay {
  /// Saves every stored step and the sampling state to `directory` (created if needed).
  ///
  /// Only chunks that changed since this replay last saved to (or loaded from) the folder are
  /// encoded and written; the rest of the new manifest points at the files already there, after
  /// checking that the folder's manifest still names them with the same checksums. Steps are
  /// copied under the replay's lock; files are written and flushed after it is released, so
  /// inserts and samples on other threads wait only for the copy of the changed chunks.
  /// A save killed at any moment leaves the previous save loadable and complete.
  ///
  /// - Parameter chunkSize: steps per chunk file (default: about 2 MiB of steps); chunk
  ///   boundaries sit at multiples of it in each stream, so later saves reuse the files of full
  ///   chunks, and files whose oldest steps were evicted since are kept as they are.
  /// - Parameter manifestName: the manifest's file name (default `manifest.json`). A save under
  ///   another name leaves the folder's other manifests, and every chunk they name, in place: a
  ///   training checkpoint saves under a name of its own and points at it, so a kill before the
  ///   checkpoint completes leaves the previous one's replay whole.
  public func save(to directory: URL, chunkSize: Int? = nil, manifestName: String = ReplayFormat.manifestName) throws {
    let chunkSize = chunkSize ?? ReplayFormat.defaultChunkSize(layout)
    guard chunkSize >= 1 else { throw ReplayError("chunk size must be positive, got \(chunkSize)") }
    let fm = FileManager.default
    do {
      try fm.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw ReplayError(
        "cannot create '\(directory.path)' (\(error.localizedDescription)); check the path and permissions")
    }
    let folderLock: DirectoryLock
    do {
      folderLock = try DirectoryLock(directory, exclusive: true)
    } catch let e as FileError {
      throw ReplayError("cannot save to '\(directory.path)': \(e.problem)")
    }
    defer { folderLock.unlock() }
    let key = ReplayFormat.directoryKey(directory)
    let committed = ReplayFormat.readManifest(in: directory)?.fileChecksums ?? [:]
    var tokens = SystemRandomNumberGenerator()

    // Under the lock: the manifest's contents, and the bytes of every chunk not already on disk.
    var pending: [(name: String, bytes: [UInt8])] = []
    var manifest: ReplayFormat.Manifest = lock.withLock {
      let known = persisted?.directory == key ? persisted!.chunks : [:]
      var records: [ReplayFormat.SegmentRecord] = []
      for seg in segments {
        var record = ReplayFormat.SegmentRecord(
          stream: seg.stream, firstIndex: seg.firstIndex, count: seg.count, chunks: [])
        var i = 0
        while i < seg.count {
          let position = seg.firstIndex + i
          let end = min(seg.count, i + (chunkSize - position % chunkSize))
          let chunkEnd = ReplayFormat.ChunkEnd(stream: seg.stream, end: seg.firstIndex + end)
          if let ref = known[chunkEnd], ref.fileFirst <= position, committed[ref.file] == ref.crc32 {
            // The file holds these steps (and perhaps evicted ones before them): keep it.
            let skip = position - ref.fileFirst
            record.chunks.append(
              .init(file: ref.file, firstIndex: position, count: end - i, crc32: ref.crc32, skip: skip > 0 ? skip : nil)
            )
          } else {
            let bytes = encodeChunkLocked(seg, from: i, to: end)
            let crc = bytes.suffix(4).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            var name: String
            repeat {
              name = ReplayFormat.chunkName(
                stream: seg.stream, first: position, count: end - i, token: tokens.next())
            } while fm.fileExists(atPath: directory.appendingPathComponent(name).path)
            pending.append((name, bytes))
            record.chunks.append(.init(file: name, firstIndex: position, count: end - i, crc32: crc))
          }
          i = end
        }
        records.append(record)
      }
      return ReplayFormat.Manifest(
        layout: layout, capacity: capacity, inserted: insertedCount,
        nextIndex: nextIndex.sorted { $0.key < $1.key }.map { [$0.key, $0.value] },
        active: active.sorted { $0.key < $1.key }.map { [$0.key, $0.value] }, rngState: rng.state,
        segments: records)
    }

    // Outside the lock: write, flush, commit, clean up.
    do {
      for (name, bytes) in pending {
        try AtomicFile.write(Data(bytes), to: directory.appendingPathComponent(name))
      }
      try FileSystem.synchronizeDirectory(directory)
      manifest.crc32 = try manifest.checksum()
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
      try AtomicFile.write(try encoder.encode(manifest), to: directory.appendingPathComponent(manifestName))
      try FileSystem.synchronizeDirectory(directory)
    } catch let e as FileError {
      // The previous manifest is untouched; files written so far are removed by the next save.
      throw ReplayError("saving to '\(directory.path)' failed: \(e.description); the previous save is unchanged")
    }
    ReplayFormat.removeStrayFiles(in: directory, keeping: manifest)
    let saved = ReplayFormat.PersistedChunks(directory: key, chunks: manifest.chunksByEnd)
    lock.withLock { persisted = saved }
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
  /// manifest always throws (without it nothing can be trusted). Files left by a killed save
  /// (temporary files, chunks the manifest does not name) are removed when the folder is
  /// writable and no other process is using it.
  public static func load(
    from directory: URL, manifestName: String = ReplayFormat.manifestName, onCorruptChunk: CorruptChunkPolicy = .reject
  ) throws -> (
    replay: Replay, report: ReplayLoadReport
  ) {
    let manifestURL = directory.appendingPathComponent(manifestName)
    // A shared lock keeps a concurrent save from removing files while they are read; a
    // read-only folder is read without one.
    let folderLock = try? DirectoryLock(directory, exclusive: false)
    defer { folderLock?.unlock() }
    guard let data = try? Data(contentsOf: manifestURL) else {
      throw ReplayError("no replay at '\(directory.path)': cannot read \(manifestName)")
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
    try validate(manifest, path: manifestURL.path)
    let replay = try Replay(layout: manifest.layout, capacity: manifest.capacity)
    guard let rng = SeededGenerator(state: manifest.rngState) else {
      throw ReplayError("'\(manifestURL.path)' holds an invalid random state")
    }
    var skipped: [(String, String)] = []
    var loadedChunks = 0
    var loadedRefs: [ReplayFormat.ChunkEnd: ReplayFormat.ChunkRef] = [:]
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
          loadedRefs[ReplayFormat.ChunkEnd(stream: record.stream, end: chunk.firstIndex + chunk.count)] = chunk
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
    guard zip(all, all.dropFirst()).allSatisfy({ $0.sequence < $1.sequence }),
      all.last.map({ $0.sequence < manifest.inserted }) ?? true
    else {
      throw ReplayError(
        "'\(directory.path)' holds steps with repeated or impossible sequence numbers; the files are damaged")
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
      replay.persisted = ReplayFormat.PersistedChunks(
        directory: ReplayFormat.directoryKey(directory), chunks: loadedRefs)
    }
    // Clean up after a killed save, unless another process holds the folder.
    folderLock?.unlock()
    if let cleanup = try? DirectoryLock(directory, exclusive: true, wait: false) {
      ReplayFormat.removeStrayFiles(in: directory, keeping: manifest)
      cleanup.unlock()
    }
    return (replay, ReplayLoadReport(loadedChunks: loadedChunks, loadedSteps: all.count, skipped: skipped))
  }

  /// Checks the manifest's structure so that no value in it can make loading trap (its checksum
  /// only proves it was written whole, not that it was written by this library).
  static func validate(_ m: ReplayFormat.Manifest, path: String) throws {
    func fail(_ what: String) -> ReplayError {
      ReplayError(
        "'\(path)' is not a consistent replay manifest (\(what)); the file is damaged or was not written by r2i")
    }
    let l = m.layout
    let dims = [l.vectorSize, l.imageHeight, l.imageWidth, l.imageChannels, l.actionSize]
    guard dims.allSatisfy({ (0...Int(UInt32.max)).contains($0) }) else { throw fail("layout \(dims)") }
    guard m.capacity >= 1, m.inserted >= 0 else { throw fail("capacity \(m.capacity), inserted \(m.inserted)") }
    let (imageSize, o1) = l.imageHeight.multipliedReportingOverflow(by: l.imageWidth)
    let (imageSize2, o2) = imageSize.multipliedReportingOverflow(by: l.imageChannels)
    guard !o1, !o2,
      Double(m.capacity) * Double(l.vectorSize * 4 + imageSize2 + l.actionSize * 4 + 13) < 1e12
    else { throw fail("a step of this layout or the capacity is too large") }
    guard m.nextIndex.allSatisfy({ $0.count == 2 && $0[0] >= 0 && $0[1] >= 0 }),
      Set(m.nextIndex.map { $0[0] }).count == m.nextIndex.count
    else { throw fail("nextIndex") }
    let next = Dictionary(uniqueKeysWithValues: m.nextIndex.map { ($0[0], $0[1]) })
    guard m.active.allSatisfy({ $0.count == 2 && (0..<m.segments.count).contains($0[1]) }),
      Set(m.active.map { $0[0] }).count == m.active.count,
      m.active.allSatisfy({ m.segments[$0[1]].stream == $0[0] })
    else { throw fail("active") }
    var total = 0
    for r in m.segments {
      guard r.stream >= 0, r.firstIndex >= 0, r.count >= 0, r.count <= m.capacity,
        let n = next[r.stream], r.firstIndex + r.count <= n
      else { throw fail("segment of stream \(r.stream)") }
      total += r.count
      guard total <= m.capacity else { throw fail("more steps than the capacity") }
      var position = r.firstIndex
      for c in r.chunks {
        guard c.count >= 1, c.firstIndex == position, (0...Int(Int32.max)).contains(c.skip ?? 0),
          c.fileFirst >= 0, !c.file.contains("/"), c.file != ".."
        else { throw fail("chunk entry '\(c.file)'") }
        position += c.count
      }
      guard position == r.firstIndex + r.count else { throw fail("chunks of stream \(r.stream) do not add up") }
    }
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
    guard let expected = ReplayFormat.chunkSize(l, count: ref.fileCount), bytes.count == expected else {
      throw ReplayError(
        "chunk '\(name)' has \(bytes.count) bytes, expected \(ReplayFormat.chunkSize(l, count: ref.fileCount) ?? -1) (truncated or altered)"
      )
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
      // 64-bit fields become Ints only when they fit (a crafted file must not trap the process).
      func index(_ v: UInt64, _ what: String) throws -> Int {
        guard v <= UInt64(Int.max >> 1) else {
          throw ReplayError("chunk '\(name)' holds \(what) \(v), out of range (the file was altered)")
        }
        return Int(v)
      }
      let s = try index(try r.read(UInt64.self), "stream")
      let first = try index(try r.read(UInt64.self), "position")
      let count = Int(try r.read(UInt32.self))
      var dims: [Int] = []
      for _ in 0..<5 { dims.append(Int(try r.read(UInt32.self))) }
      guard s == stream, first == ref.fileFirst, count == ref.fileCount,
        dims == [l.vectorSize, l.imageHeight, l.imageWidth, l.imageChannels, l.actionSize]
      else {
        throw ReplayError("chunk '\(name)' does not match its manifest entry (stream, position, count or layout)")
      }
      var seqs: [Int] = []
      for _ in 0..<count { seqs.append(try index(try r.read(UInt64.self), "sequence number")) }
      let vec = try r.readFloats(count * l.vectorSize)
      let img = Array(try r.readBytes(count * l.imageSize))
      let act = try r.readFloats(count * l.actionSize)
      let rew = try r.readFloats(count)
      let fl = Array(try r.readBytes(count))
      // Steps evicted before a later save reused this file are left out.
      return ((ref.skip ?? 0)..<count).map { i in
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
