// A writer for the replay kill test: resumes the replay in a folder (or starts one), then
// forever inserts steps from its own seed and saves, printing "pending <fingerprint>" before each
// save and "committed" after it. The test kills it with SIGKILL at random moments.
//
//   replay-crash-writer FOLDER SEED CAPACITY CHUNK STEPS-PER-SAVE
import Foundation
import Replay
import TestSupport

let args = CommandLine.arguments
guard args.count == 6, let seed = UInt64(args[2]), let capacity = Int(args[3]), let chunk = Int(args[4]),
  let steps = Int(args[5])
else {
  FileHandle.standardError.write(Data("usage: replay-crash-writer FOLDER SEED CAPACITY CHUNK STEPS-PER-SAVE\n".utf8))
  exit(64)
}
let folder = URL(fileURLWithPath: args[1])

func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

do {
  let replay: Replay
  if FileManager.default.fileExists(atPath: folder.appendingPathComponent("manifest.json").path) {
    replay = try Replay.load(from: folder).replay
  } else {
    replay = try Replay(layout: ReplayFixture.layout, capacity: capacity, seed: seed)
  }
  say("loaded \(ReplayFixture.fingerprint(replay))")
  var rng = SeededGenerator(seed: seed, stream: 7)
  while true {
    try ReplayFixture.insertRandomSteps(steps, streams: 3, into: replay, rng: &rng)
    say("pending \(ReplayFixture.fingerprint(replay))")
    try replay.save(to: folder, chunkSize: chunk)
    say("committed")
  }
} catch {
  FileHandle.standardError.write(Data("replay-crash-writer: \(error)\n".utf8))
  exit(1)
}
