import Dispatch
import FileSupport
import Foundation
import TestSupport
import Testing

@testable import Replay

/// A step that encodes where it came from: vector = [stream, position], reward = global index.
func tagged(stream: Int, position: Int, global: Int, first: Bool = false, last: Bool = false, terminal: Bool = false)
  -> ReplayStep
{
  ReplayStep(
    vector: [Float(stream), Float(position)], action: [Float(position % 3)], reward: Float(global),
    isFirst: first, isLast: last, isTerminal: terminal)
}

let tagLayout = ReplayLayout(vectorSize: 2, actionSize: 1)

/// Fills a replay with interleaved streams of the given lengths (episodes of `episode` steps).
func filled(_ lengths: [Int], capacity: Int = 10_000, episode: Int = 5, seed: UInt64 = 1) throws -> Replay {
  let r = try Replay(layout: tagLayout, capacity: capacity, seed: seed)
  var position = [Int](repeating: 0, count: lengths.count)
  var global = 0
  var progress = true
  while progress {
    progress = false
    for s in lengths.indices where position[s] < lengths[s] {
      let p = position[s]
      try r.insert(
        tagged(
          stream: s, position: p, global: global, first: p % episode == 0, last: p % episode == episode - 1,
          terminal: p % episode == episode - 1), stream: s)
      position[s] += 1
      global += 1
      progress = true
    }
  }
  return r
}

func rows(_ b: ReplayBatch) -> [[(stream: Float, position: Float)]] {
  (0..<b.batchSize).map { row in
    (0..<b.length).map { t in
      let o = (row * b.length + t) * 2
      return (b.vectors[o], b.vectors[o + 1])
    }
  }
}

@Suite struct SamplingTests {
  @Test func windowsStayInOneStreamAndKeepTheFlags() throws {
    let r = try filled([40, 23, 61])
    for _ in 0..<50 {
      let b = try #require(try r.sample(batchSize: 8, length: 10))
      for (row, steps) in rows(b).enumerated() {
        #expect(Set(steps.map { $0.stream }).count == 1, "a window crossed streams")
        #expect(zip(steps, steps.dropFirst()).allSatisfy { $1.position == $0.position + 1 })
        #expect(Int(steps[0].stream) == b.streams[row] && Int(steps[0].position) == b.starts[row])
        for t in 0..<10 {
          let pos = Int(steps[t].position)
          let o = row * 10 + t
          #expect(b.isFirst[o] == (t == 0 || pos % 5 == 0 ? 1 : 0), "is_first forced at the window start only")
          #expect(b.isLast[o] == (pos % 5 == 4 ? 1 : 0) && b.isTerminal[o] == b.isLast[o])
          #expect(b.actions[o] == Float(pos % 3) && b.mask[o] == 1)
        }
      }
    }
    // Too short for any window: nil, not an error.
    #expect(try r.sample(batchSize: 2, length: 62) == nil)
  }

  @Test func uniformWindowFrequencies() throws {
    // Streams of 10, 7 and 15 steps with T = 4: 7 + 4 + 12 = 23 windows.
    let r = try filled([10, 7, 15])
    var counts: [String: Int] = [:]
    let draws = 23 * 1500
    for _ in 0..<(draws / 23) {
      let b = try #require(try r.sample(batchSize: 23, length: 4))
      for (s, p) in zip(b.streams, b.starts) { counts["\(s)-\(p)", default: 0] += 1 }
    }
    #expect(counts.count == 23, "every valid window is drawn")
    let expected = Double(draws) / 23
    let chi2 = counts.values.reduce(0.0) { $0 + pow(Double($1) - expected, 2) / expected }
    #expect(chi2 < 48.27, "chi-square \(chi2) with 22 degrees of freedom (99.9% quantile 48.27)")
  }

  @Test func recencyWeightsFollowTheirHalfLife() throws {
    let r = try filled([20])
    let h = 4.0
    var counts = [Int](repeating: 0, count: 17)
    let n = 40_000
    for _ in 0..<(n / 100) {
      let b = try #require(try r.sample(batchSize: 100, length: 4, mode: .recency(halfLife: h)))
      for p in b.starts { counts[p] += 1 }
    }
    let weights = (0..<17).map { pow(2.0, -Double(16 - $0) / h) }
    let total = weights.reduce(0, +)
    var chi2 = 0.0
    for i in 0..<17 {
      let e = Double(n) * weights[i] / total
      chi2 += pow(Double(counts[i]) - e, 2) / e
    }
    #expect(chi2 < 39.25, "chi-square \(chi2) with 16 degrees of freedom (99.9% quantile 39.25)")
    #expect(counts[16] > counts[12] && counts[12] > counts[8])
  }

  @Test func episodeModeReturnsWholeEpisodesWithMasks() throws {
    // Stream 0: episodes of 3, 6 and 2 steps (then an unfinished one); T = 4.
    let r = try Replay(layout: tagLayout, capacity: 100, seed: 2)
    var g = 0
    var position = 0
    for length in [3, 6, 2, 4] {
      for i in 0..<length {
        let unfinished = length == 4
        try r.insert(
          tagged(
            stream: 0, position: position, global: g, first: i == 0, last: !unfinished && i == length - 1,
            terminal: !unfinished && i == length - 1), stream: 0)
        position += 1
        g += 1
      }
    }
    var seen = Set<Int>()
    for _ in 0..<200 {
      let b = try #require(try r.sample(batchSize: 4, length: 4, mode: .episodes))
      for row in 0..<4 {
        let start = b.starts[row]
        seen.insert(start)
        let valid = Int(b.mask[(row * 4)..<(row * 4 + 4)].reduce(0, +))
        // Episode starts at 0 (3 steps), 3 (6 steps: chunks at 3 and 7), 9 (2 steps).
        let expectedValid = [0: 3, 3: 4, 7: 2, 9: 2][start]
        #expect(expectedValid == valid, "start \(start) has \(valid) real steps")
        #expect(b.isFirst[row * 4] == 1)
        if valid < 4 {
          #expect(b.isLast[row * 4 + valid - 1] == 1, "the episode's last step is kept")
          #expect(b.vectors[((row * 4 + valid) * 2)...].prefix(2) == [0, 0], "padding is zero")
        }
      }
    }
    #expect(seen == [0, 3, 7, 9], "the unfinished episode (start 11) is never drawn")
  }

  @Test func reusedBatchesMatchFreshOnesAndZeroTheirPadding() throws {
    let a = try filled([30, 30], seed: 7)
    let b = try filled([30, 30], seed: 7)
    var reused = ReplayBatch.empty(layout: tagLayout)
    for mode in [SamplingMode.uniform, .episodes, .uniform, .episodes] {
      let fresh = try #require(try a.sample(batchSize: 5, length: 8, mode: mode))
      #expect(try b.sample(batchSize: 5, length: 8, mode: mode, into: &reused))
      // Episodes are 5 steps, so episode batches are padded over stale uniform data.
      #expect(fresh == reused, "\(mode)")
    }
    #expect(reused.mask.filter { $0 == 0 }.count == 5 * 3)
    #expect(reused.rewards.enumerated().allSatisfy { reused.mask[$0.offset] == 1 || $0.element == 0 })
  }

  @Test func samplingIsDeterministicForASeed() throws {
    let a = try filled([30, 30], seed: 5)
    let b = try filled([30, 30], seed: 5)
    let c = try filled([30, 30], seed: 6)
    #expect(try a.sample(batchSize: 4, length: 8) == b.sample(batchSize: 4, length: 8))
    #expect(try a.sample(batchSize: 4, length: 8) != c.sample(batchSize: 4, length: 8))
  }

  @Test func imagesAreCopiedIntoContiguousBatches() throws {
    let layout = ReplayLayout(vectorSize: 0, image: (4, 3, 2), actionSize: 2)
    let r = try Replay(layout: layout, capacity: 20, seed: 1)
    for i in 0..<10 {
      try r.insert(
        ReplayStep(
          image: [UInt8](repeating: UInt8(i), count: 24), action: [1, 0], reward: 0, isFirst: i == 0, isLast: false,
          isTerminal: false), stream: 0)
    }
    let b = try #require(try r.sample(batchSize: 3, length: 5))
    #expect(b.images.count == 3 * 5 * 24)
    for row in 0..<3 {
      for t in 0..<5 {
        let o = (row * 5 + t) * 24
        #expect(b.images[o..<(o + 24)].allSatisfy { Int($0) == b.starts[row] + t })
      }
    }
    #expect(throws: ReplayError.self) {
      try r.insert(
        ReplayStep(image: [1, 2], action: [1, 0], reward: 0, isFirst: false, isLast: false, isTerminal: false),
        stream: 0)
    }
    #expect(r.memoryBytes == 20 * (24 + 8 + 4 + 1))
  }
}

@Suite struct EvictionAndConcurrencyTests {
  @Test func evictionKeepsExactlyTheNewestSteps() throws {
    var rng = SeededGenerator(seed: 3)
    let r = try Replay(layout: tagLayout, capacity: 50, seed: 1)
    var positions = [0, 0, 0]
    for g in 0..<137 {
      let s = rng.nextInt(below: 3)
      try r.insert(tagged(stream: s, position: positions[s], global: g), stream: s)
      positions[s] += 1
    }
    #expect(r.count == 50 && r.inserted == 137)
    let kept = r.stepsByStream().values.flatMap { $0 }.map { Int($0.reward) }
    #expect(Set(kept) == Set(87..<137))
    for (stream, steps) in r.stepsByStream() {
      #expect(steps.allSatisfy { Int($0.vector[0]) == stream })
      #expect(zip(steps, steps.dropFirst()).allSatisfy { $1.vector[1] == $0.vector[1] + 1 }, "order kept")
    }
  }

  @Test func concurrentInsertAndSampleLoseNothing() throws {
    let r = try Replay(layout: tagLayout, capacity: 5_000, seed: 1)
    let total = 20_000
    let group = DispatchGroup()
    nonisolated(unsafe) var badWindows = 0
    nonisolated(unsafe) var samples = 0
    let done = ManagedAtomicFlag()
    DispatchQueue.global().async(group: group) {
      var positions = [0, 0, 0, 0]
      for g in 0..<total {
        let s = g % 4
        try? r.insert(tagged(stream: s, position: positions[s], global: g), stream: s)
        positions[s] += 1
      }
      done.set()
    }
    DispatchQueue.global().async(group: group) {
      while !done.isSet || samples < 200 {
        if let b = try? r.sample(batchSize: 4, length: 16) {
          samples += 1
          for steps in rows(b)
          where Set(steps.map { $0.stream }).count != 1
            || !zip(steps, steps.dropFirst()).allSatisfy({ $1.position == $0.position + 1 })
          {
            badWindows += 1
          }
        }
      }
    }
    group.wait()
    #expect(r.inserted == total && r.count == 5_000)
    #expect(badWindows == 0 && samples >= 200)
    let kept = r.stepsByStream().values.flatMap { $0 }.map { Int($0.reward) }
    #expect(Set(kept) == Set((total - 5_000)..<total))
  }
}

final class ManagedAtomicFlag: @unchecked Sendable {
  private let lock = NSLock()
  private var value = false
  func set() { lock.withLock { value = true } }
  var isSet: Bool { lock.withLock { value } }
}

@Suite struct PersistenceTests {
  func tempDir() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString)")
  }

  @Test func saveLoadRoundTripIsBitIdenticalAndResumesExactly() throws {
    var rng = SeededGenerator(seed: 4)
    let r = try Replay(layout: tagLayout, capacity: 300, seed: 9)
    var positions = [0, 0, 0]
    var g = 0
    func insertSome(_ n: Int, into replays: [Replay]) throws {
      for _ in 0..<n {
        let s = rng.nextInt(below: 3)
        for x in replays {
          try x.insert(tagged(stream: s, position: positions[s], global: g, first: positions[s] % 7 == 0), stream: s)
        }
        positions[s] += 1
        g += 1
      }
    }
    try insertSome(450, into: [r])  // evicts 150
    _ = try r.sample(batchSize: 3, length: 5)  // advance the sampler
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    try r.save(to: dir, chunkSize: 16)
    let (loaded, report) = try Replay.load(from: dir)
    #expect(report.skipped.isEmpty && report.loadedSteps == 300)
    #expect(loaded.stepsByStream() == r.stepsByStream())
    #expect(loaded.inserted == r.inserted && loaded.counts() == r.counts())
    // Resume: the same inserts and samples give the same batches, including after eviction.
    for _ in 0..<5 {
      #expect(try loaded.sample(batchSize: 4, length: 6) == r.sample(batchSize: 4, length: 6))
      #expect(
        try loaded.sample(batchSize: 2, length: 3, mode: .episodes)
          == r.sample(batchSize: 2, length: 3, mode: .episodes))
      try insertSome(40, into: [r, loaded])
    }
    #expect(loaded.stepsByStream() == r.stepsByStream())
    // Saving again reuses unchanged chunk files and removes stale ones.
    try r.save(to: dir, chunkSize: 16)
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("chunk-") }
    let expectedChunks = try Replay.load(from: dir).report.loadedChunks
    #expect(files.count == expectedChunks)
  }

  @Test func corruptTruncatedAndMissingChunksAreReported() throws {
    let r = try filled([40, 40], capacity: 1000)
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    try r.save(to: dir, chunkSize: 10)
    let chunks = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("chunk-") }
      .sorted()
    #expect(chunks.count == 8)
    // Flip one byte in the middle of a chunk.
    let victim = dir.appendingPathComponent(chunks[2])
    var bytes = try Data(contentsOf: victim)
    bytes[bytes.count / 2] ^= 0x10
    try bytes.write(to: victim)
    do {
      _ = try Replay.load(from: dir)
      Issue.record("a flipped byte was not detected")
    } catch let e as ReplayError {
      #expect(e.description.contains(chunks[2]) && e.description.contains("checksum"))
    }
    let (skipping, report) = try Replay.load(from: dir, onCorruptChunk: .skip)
    #expect(report.skipped.map { $0.file } == [chunks[2]])
    #expect(skipping.count == 70)
    // Windows never span the hole left by the skipped chunk.
    for _ in 0..<100 {
      let b = try #require(try skipping.sample(batchSize: 4, length: 12))
      for steps in rows(b) { #expect(zip(steps, steps.dropFirst()).allSatisfy { $1.position == $0.position + 1 }) }
    }
    // Truncation.
    try Data(bytes.prefix(bytes.count - 7)).write(to: victim)
    #expect(throws: ReplayError.self) { try Replay.load(from: dir) }
    // A missing chunk.
    try FileManager.default.removeItem(at: victim)
    do {
      _ = try Replay.load(from: dir)
      Issue.record("a missing chunk was not detected")
    } catch let e as ReplayError {
      #expect(e.description.contains(chunks[2]))
    }
    // An altered manifest is always rejected.
    let manifest = dir.appendingPathComponent("manifest.json")
    var m = try String(contentsOf: manifest, encoding: .utf8)
    m = m.replacingOccurrences(of: "\"inserted\" : 80", with: "\"inserted\" : 81")
    try m.write(to: manifest, atomically: true, encoding: .utf8)
    #expect(throws: ReplayError.self) { try Replay.load(from: dir, onCorruptChunk: .skip) }
    #expect(throws: ReplayError.self) { try Replay.load(from: dir.appendingPathComponent("nope")) }
  }

  func chunkFiles(_ dir: URL) throws -> Set<String> {
    Set(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("chunk-") })
  }

  @Test func aFreshReplaySavedOverAnOldFolderLoads() throws {
    // Two replays with the same stream positions but different steps: the chunk names of the
    // first save must not be mistaken for the second's.
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    var rngA = SeededGenerator(seed: 1)
    var rngB = SeededGenerator(seed: 2)
    let a = try Replay(layout: ReplayFixture.layout, capacity: 500, seed: 0)
    let b = try Replay(layout: ReplayFixture.layout, capacity: 500, seed: 0)
    try ReplayFixture.insertRandomSteps(300, streams: 1, into: a, rng: &rngA)
    try ReplayFixture.insertRandomSteps(300, streams: 1, into: b, rng: &rngB)
    try a.save(to: dir, chunkSize: 32)
    try b.save(to: dir, chunkSize: 32)
    let loaded = try Replay.load(from: dir).replay
    #expect(ReplayFixture.fingerprint(loaded) == ReplayFixture.fingerprint(b))
    #expect(ReplayFixture.fingerprint(loaded) != ReplayFixture.fingerprint(a))
    // Only b's chunks remain.
    #expect(try chunkFiles(dir).count == 10)
    // And a stale instance saving again afterwards still writes its own data, not b's files.
    try a.save(to: dir, chunkSize: 32)
    #expect(ReplayFixture.fingerprint(try Replay.load(from: dir).replay) == ReplayFixture.fingerprint(a))
  }

  @Test func savesWriteOnlyTheChunksThatChanged() throws {
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    var rng = SeededGenerator(seed: 3)
    let r = try Replay(layout: ReplayFixture.layout, capacity: 10_000, seed: 0)
    try ReplayFixture.insertRandomSteps(1000, streams: 2, into: r, rng: &rng)
    try r.save(to: dir, chunkSize: 64)
    let first = try chunkFiles(dir)
    // Appending to one stream changes its last chunk (and may complete it and start another).
    let before = r.counts()[0]!
    for _ in 0..<10 {
      try r.insert(
        ReplayStep(
          vector: [0, 0, 0, 0, 0], image: [UInt8](repeating: 1, count: 48), action: [0, 0, 1],
          reward: 0, isFirst: false, isLast: false, isTerminal: false), stream: 0)
    }
    try r.save(to: dir, chunkSize: 64)
    let second = try chunkFiles(dir)
    let crossed = (before / 64) != ((before + 10) / 64)
    #expect(second.subtracting(first).count == (crossed ? 2 : 1))
    #expect(first.subtracting(second).count == 1)
    // A loaded replay knows its files too: saving it back unchanged writes nothing.
    let loaded = try Replay.load(from: dir).replay
    try loaded.save(to: dir, chunkSize: 64)
    #expect(try chunkFiles(dir) == second)
    #expect(ReplayFixture.fingerprint(try Replay.load(from: dir).replay) == ReplayFixture.fingerprint(r))
  }

  @Test func chunksWhoseOldestStepsWereEvictedAreKeptNotRewritten() throws {
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    var rng = SeededGenerator(seed: 8)
    let r = try Replay(layout: ReplayFixture.layout, capacity: 320, seed: 0)
    try ReplayFixture.insertRandomSteps(320, streams: 1, into: r, rng: &rng)  // full: 5 chunks of 64
    try r.save(to: dir, chunkSize: 64)
    let first = try chunkFiles(dir)
    #expect(first.count == 5)
    try ReplayFixture.insertRandomSteps(10, streams: 1, into: r, rng: &rng)  // evicts 10 from the front
    try r.save(to: dir, chunkSize: 64)
    let second = try chunkFiles(dir)
    // The front file is kept (its first 10 steps skipped); only the new tail chunk is written.
    #expect(second.subtracting(first).count == 1 && first.isSubset(of: second))
    let manifest = try JSONDecoder().decode(
      ReplayFormat.Manifest.self, from: Data(contentsOf: dir.appendingPathComponent("manifest.json")))
    #expect(manifest.segments[0].chunks[0].skip == 10 && manifest.segments[0].chunks[0].count == 54)
    let loaded = try Replay.load(from: dir).replay
    #expect(loaded.stepsByStream() == r.stepsByStream())
    // Once a whole chunk is evicted its file goes; the loaded replay keeps skipping correctly.
    try ReplayFixture.insertRandomSteps(60, streams: 1, into: loaded, rng: &rng)
    try loaded.save(to: dir, chunkSize: 64)
    #expect(try chunkFiles(dir).count == 6 && !(try chunkFiles(dir)).contains(first.sorted().first!))
    #expect(ReplayFixture.fingerprint(try Replay.load(from: dir).replay) == ReplayFixture.fingerprint(loaded))
  }

  @Test func strayFilesOfAKilledSaveAreRemovedOnLoad() throws {
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let r = try filled([30, 30])
    try r.save(to: dir, chunkSize: 16)
    let files = try chunkFiles(dir)
    let junk = ["chunk-s0-i0-n16-00000000000000ff.bin", ".chunk-s0-i16-n14-1.bin.tmp-1-2", ".manifest.json.tmp-3-4"]
    for name in junk { try Data([1, 2, 3]).write(to: dir.appendingPathComponent(name)) }
    _ = try Replay.load(from: dir)
    let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
    #expect(left == files.union(["manifest.json", ".lock"]))
  }

  /// A chunk whose 64-bit fields were set out of range and every checksum recomputed (file and
  /// manifest) is refused with a message, not a trap.
  @Test func craftedChunkFieldsAreRefused() throws {
    for offset in [12, 20] {  // the stream, then the position (after the magic and the version)
      let dir = tempDir()
      defer { try? FileManager.default.removeItem(at: dir) }
      try filled([20]).save(to: dir, chunkSize: 32)
      let url = dir.appendingPathComponent("manifest.json")
      var manifest = try JSONDecoder().decode(ReplayFormat.Manifest.self, from: Data(contentsOf: url))
      let file = manifest.segments[0].chunks[0].file
      var bytes = [UInt8](try Data(contentsOf: dir.appendingPathComponent(file)))
      for i in 0..<8 { bytes[offset + i] = i == 7 ? 0x80 : 0 }  // 2^63, little-endian
      let body = bytes.dropLast(4)
      let crc = CRC32.checksum(body)
      bytes = Array(body) + withUnsafeBytes(of: crc.littleEndian) { Array($0) }
      try Data(bytes).write(to: dir.appendingPathComponent(file))
      manifest.segments[0].chunks[0].crc32 = crc
      manifest.crc32 = try manifest.checksum()
      try JSONEncoder().encode(manifest).write(to: url)
      #expect { try Replay.load(from: dir) } throws: { "\($0)".contains("out of range") }
    }
  }

  @Test func manifestsWithAValidChecksumButImpossibleValuesAreRejected() throws {
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    try filled([20, 20]).save(to: dir, chunkSize: 8)
    let url = dir.appendingPathComponent("manifest.json")
    let original = try JSONDecoder().decode(ReplayFormat.Manifest.self, from: Data(contentsOf: url))
    let edits: [(String, (inout ReplayFormat.Manifest) -> Void)] = [
      ("duplicate stream in nextIndex", { $0.nextIndex.append($0.nextIndex[0]) }),
      ("short nextIndex entry", { $0.nextIndex[0] = [0] }),
      ("active segment out of range", { $0.active[0][1] = 99 }),
      ("negative count", { $0.segments[0].count = -5 }),
      ("huge chunk count", { $0.segments[0].chunks[0].count = Int.max / 2 }),
      ("chunk outside the folder", { $0.segments[0].chunks[0].file = "../x.bin" }),
      (
        "huge layout",
        {
          $0.layout.imageHeight = Int(UInt32.max)
          $0.layout.imageWidth = Int(UInt32.max)
        }
      ),
      ("capacity zero", { $0.capacity = 0 }),
    ]
    for (what, edit) in edits {
      var m = original
      edit(&m)
      m.crc32 = try m.checksum()
      try JSONEncoder().encode(m).write(to: url)
      #expect(throws: ReplayError.self, "\(what)") { try Replay.load(from: dir, onCorruptChunk: .skip) }
    }
  }

  /// The kill loop of the issue: a child process resumes the folder, inserts steps of its own
  /// seed (so the same stream positions get different data each round) and saves, again and
  /// again, until SIGKILL. After every kill the folder must load with nothing damaged and hold
  /// exactly the last completed save (or the one in flight, if its manifest was committed).
  @Test func savesSurviveSIGKILLAtRandomMoments() throws {
    let writer = try BuiltProducts.executable("replay-crash-writer")
    let dir = tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    var rng = SeededGenerator(seed: 2024)
    var folderState: UInt64? = nil  // fingerprint of what the folder holds
    var killedMidSave = 0
    var commits = 0
    for round in 0..<40 {
      let p = Process()
      p.executableURL = writer
      p.arguments = [dir.path, "\(round + 1)", "2500", "64", "\(50 + rng.nextInt(below: 300))"]
      let out = Pipe()
      p.standardOutput = out
      try p.run()
      usleep(UInt32(5_000 + rng.nextInt(below: 120_000)))
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
      let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        .split(separator: "\n").map(String.init)
      var committed: UInt64? = nil
      var inFlight: UInt64? = nil
      for line in lines {
        if line.hasPrefix("pending ") {
          inFlight = UInt64(line.dropFirst(8))
        } else if line == "committed" {
          committed = inFlight
          inFlight = nil
          commits += 1
        } else if line.hasPrefix("loaded "), folderState != nil {
          #expect(UInt64(line.dropFirst(7)) == folderState, "round \(round): the writer resumed something else")
        }
      }
      var acceptable = Set<UInt64>()
      if let c = committed ?? folderState { acceptable.insert(c) }
      if let f = inFlight {
        acceptable.insert(f)
        killedMidSave += 1
      }
      if acceptable.isEmpty { continue }  // killed before its first save
      let hasManifest = FileManager.default.fileExists(atPath: dir.appendingPathComponent("manifest.json").path)
      if committed == nil && folderState == nil && !hasManifest {
        continue  // killed during the very first save, before its manifest: nothing was promised yet
      }
      let loaded = try Replay.load(from: dir)
      #expect(loaded.report.skipped.isEmpty)
      let state = ReplayFixture.fingerprint(loaded.replay)
      #expect(
        acceptable.contains(state),
        "round \(round): the folder holds neither the last completed save nor the one in flight")
      folderState = state
    }
    // The load after the last kill removed every file the manifest does not name.
    let manifest = try JSONDecoder().decode(
      ReplayFormat.Manifest.self, from: Data(contentsOf: dir.appendingPathComponent("manifest.json")))
    let named = Set(manifest.segments.flatMap { $0.chunks.map(\.file) })
    let present = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
    #expect(present == named.union(["manifest.json", ".lock"]))
    print("kill loop: 40 kills, \(commits) saves completed, \(killedMidSave) kills landed during a save")
    #expect(commits >= 20, "too few saves completed to exercise resuming (\(commits))")
    #expect(killedMidSave >= 3, "too few kills landed during a save (\(killedMidSave) of 40)")
  }
}

/// Chunk and manifest readers must turn any damage into a thrown error (or, with `.skip`, a
/// report), never a trap; what loads must be exactly what was saved.
@Suite struct ReplayFuzzTests {
  @Test func truncationsAndBitFlipsThrowOrLoadCorrectly() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("replay-fuzz-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    var rng = SeededGenerator(seed: 5)
    let r = try Replay(layout: ReplayFixture.layout, capacity: 400, seed: 0)
    try ReplayFixture.insertRandomSteps(300, streams: 2, into: r, rng: &rng)
    try r.save(to: dir, chunkSize: 50)
    let expected = ReplayFixture.fingerprint(r)
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != ".lock" }.sorted()
    var thrown = 0
    for trial in 0..<600 {
      let name = files[rng.nextInt(below: files.count)]
      let url = dir.appendingPathComponent(name)
      let original = try Data(contentsOf: url)
      var bytes = [UInt8](original)
      if trial % 2 == 0 {
        bytes = Array(bytes.prefix(rng.nextInt(below: bytes.count)))
      } else {
        for _ in 0...rng.nextInt(below: 3) {
          bytes[rng.nextInt(below: bytes.count)] ^= UInt8(1) << UInt8(rng.nextInt(below: 8))
        }
      }
      try Data(bytes).write(to: url)
      do {
        let loaded = try Replay.load(from: dir).replay
        #expect(ReplayFixture.fingerprint(loaded) == expected, "trial \(trial): damage to \(name) went unnoticed")
      } catch is ReplayError {
        thrown += 1
      }
      // With .skip, only a damaged manifest may still throw.
      do {
        _ = try Replay.load(from: dir, onCorruptChunk: .skip)
      } catch is ReplayError {
        #expect(name == "manifest.json", "trial \(trial): .skip threw for a damaged chunk")
      }
      try original.write(to: url)
    }
    #expect(thrown > 500)
  }
}
