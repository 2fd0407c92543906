import ArgumentParser
import CommandLineSupport
import Dispatch
import Foundation
import Replay

/// Replay insert and sampling throughput.
struct ReplayBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "replay",
    abstract: "Sampling throughput (B = 16, T = 1024) with 64x64x3 images and 64-float vectors; insert throughput.")

  @Option(parsing: .unconditional, help: "Replay capacity in steps, 2048...1000000 (12 KB per image step).")
  var capacity: Int = 100_000

  @Option(help: "Where to write the CSV of results.")
  var output: String = "results/replay.csv"

  func validate() throws { try OptionCheck.range(capacity, 2048...1_000_000, "--capacity") }

  func run() throws {
    let outputURL = try prepareOutputFile(output)
    print("Replay throughput on \(Machine.summary); one thread; capacity \(capacity) steps\n")
    var table = ResultTable(["observation", "operation", "median_ms", "rate", "unit", "memory_mb"])
    for (name, layout) in [
      ("64x64x3 image", ReplayLayout(image: (64, 64, 3), actionSize: 6)),
      ("64 floats", ReplayLayout(vectorSize: 64, actionSize: 4)),
    ] {
      let replay = try Replay(layout: layout, capacity: capacity, seed: 0)
      var rng = SeededGenerator(seed: 1)
      let image = (0..<layout.imageSize).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      let vector = (0..<layout.vectorSize).map { _ in rng.nextFloat() }
      let action = [Float](repeating: 0, count: layout.actionSize)
      // Insert throughput: 16 streams stepped together, as a batch of environments would.
      let streams = Array(0..<16)
      let steps = streams.map { _ in
        ReplayStep(
          vector: vector, image: image, action: action, reward: 0, isFirst: false, isLast: false, isTerminal: false)
      }
      let t0 = DispatchTime.now().uptimeNanoseconds
      var insertedSteps = 0
      while insertedSteps < capacity {
        try replay.insert(steps, streams: streams)
        insertedSteps += 16
      }
      let insertSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
      table.add([
        name, "insert (batches of 16 streams)", fmt(insertSeconds * 1e3, 1),
        fmt(Double(insertedSteps) / insertSeconds, 0), "steps/s", fmt(Double(replay.memoryBytes) / 1e6, 0),
      ])
      let timing = measure(warmup: 1, repeats: 7) { _ = try? replay.sample(batchSize: 16, length: 1024) }
      table.add([
        name, "sample B=16 T=1024 uniform", fmt(timing.median, 2), fmt(16 / timing.median * 1e3, 0), "sequences/s", "",
      ])
      var reused = ReplayBatch.empty(layout: layout)
      let into = measure(warmup: 1, repeats: 7) { _ = try? replay.sample(batchSize: 16, length: 1024, into: &reused) }
      table.add([
        name, "sample B=16 T=1024 uniform, reused batch", fmt(into.median, 2), fmt(16 / into.median * 1e3, 0),
        "sequences/s", "",
      ])
      let rec = measure(warmup: 1, repeats: 7) {
        _ = try? replay.sample(batchSize: 16, length: 1024, mode: .recency(halfLife: 5000), into: &reused)
      }
      table.add([
        name, "sample B=16 T=1024 recency", fmt(rec.median, 2), fmt(16 / rec.median * 1e3, 0), "sequences/s", "",
      ])
      // Persistence: a first save writes everything; a save after one more batch of 16 steps
      // writes only the chunks that changed (the last chunk of each stream).
      let folder = FileManager.default.temporaryDirectory.appendingPathComponent("r2i-bench-replay-\(UUID())")
      defer { try? FileManager.default.removeItem(at: folder) }
      let fullSave = measure(warmup: 0, repeats: 1) { try? replay.save(to: folder) }
      let mb = Double(replay.count * layout.bytesPerStep) / 1e6
      table.add([
        name, "save, first (\(fmt(mb, 0)) MB)", fmt(fullSave.median, 1), fmt(mb / fullSave.median * 1e3, 0), "MB/s", "",
      ])
      let incremental = measure(warmup: 1, repeats: 7) {
        try? replay.insert(steps, streams: streams)
        try? replay.save(to: folder)
      }
      table.add([name, "save after 16 new steps", fmt(incremental.median, 2), "", "", ""])
    }
    print(table.render())
    try table.writeCSV(to: outputURL)
    print("\nCSV written to \(output)")
  }
}
