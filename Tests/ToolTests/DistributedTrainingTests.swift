import Foundation
import TestSupport
import Testing
import Training

/// `mpirun -np 2 r2i train` as a user runs it: one run of two processes in one folder.
@Suite(.serialized) struct DistributedTrainingTests {
  static func tinyConfig(in root: URL, checkpointEvery: Int = 40) throws -> URL {
    var config = try TinyConfigs.training(steps: 400)
    config.checkpointEvery = checkpointEvery
    let file = root.appendingPathComponent("tiny.json")
    try config.encoded().write(to: file)
    return file
  }

  /// Episode lines and the last env step of a metrics file.
  static func tally(_ run: URL) throws -> (episodes: Int, environments: Set<Int>, lastSteps: Int) {
    let lines = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(
      separator: "\n"
    ).map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    let episodes = lines.filter { $0["kind"] as? String == "episode" }
    return (
      episodes.count, Set(episodes.compactMap { $0["environment"] as? Int }),
      lines.compactMap { $0["env_steps"] as? Int }.max() ?? 0
    )
  }

  /// Two processes of 2 environments each take the run's 400 env steps between them (200
  /// each): every episode of both (memory_len/3 ends every 5 steps: 80) is in the metrics, from
  /// environments 0 ... 3, and the checkpoint holds each rank's part.
  @Test func twoProcessesTrainOneRunAndCountEachOthersSteps() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("mpi-run")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    let run = root.appendingPathComponent("run")
    let trained = try runMPI(
      ranks: 2, r2i, ["train", "--config", try Self.tinyConfig(in: root).path, "--run", run.path, "--threads", "1"])
    #expect(trained.status == 0, "\(trained.standardOutput)\(trained.standardError)")
    #expect(trained.standardOutput.contains("on 2 processes"), "\(trained.standardOutput)")
    #expect(trained.standardOutput.contains("done at env step 400"))
    let t = try Self.tally(run)
    #expect(t.episodes == 80 && t.environments == [0, 1, 2, 3] && t.lastSteps == 400, "\(t)")
    #expect(TrainingRun.processes(of: run) == 2 && TrainingRun.progress(of: run)?.envSteps == 400)
    for path in ["checkpoint/rank-1", "replay/rank-1/manifest.json"] {
      #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent(path).path), "\(path)")
    }
    // A resume needs as many processes as trained the run, and says how to launch them.
    let alone = try runProcess(r2i, ["train", "--run", run.path, "--resume", "--steps", "480"])
    #expect(alone.status == 64 && alone.standardError.contains("mpirun -np 2"), "\(alone.standardError)")

    // A rank that cannot read its part stops the job, naming itself and the file; nothing
    // of the folder changes.
    let collector = try damageFile(startingWith: "collector-", in: run.appendingPathComponent("checkpoint/rank-1"))
    let before = try folderContents(run)
    let damaged = try runMPI(ranks: 2, r2i, ["train", "--run", run.path, "--resume", "--steps", "480"])
    #expect(damaged.status != 0 && damaged.standardError.contains("rank 1 of 2"), "\(damaged.standardError)")
    #expect(damaged.standardError.contains(collector), "\(damaged.standardError)")
    #expect(try folderContents(run) == before, "a failed resume changed the folder")
  }

  /// SIGKILL to one rank mid-run ends the job (mpirun stops the other); the folder resumes under
  /// two processes from its last complete checkpoint and finishes with every episode counted
  /// once.
  @Test func aKilledRankLeavesARunThatResumesAndFinishes() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("mpi-kill")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    let run = root.appendingPathComponent("run")
    let config = try Self.tinyConfig(in: root, checkpointEvery: 8)
    let mpirun = Process()
    mpirun.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
    mpirun.arguments =
      ["--oversubscribe", "--allow-run-as-root", "-np", "2", r2i.path, "train", "--config", config.path]
      + ["--run", run.path, "--threads", "1", "--steps", "100000"]
    mpirun.standardOutput = FileHandle.nullDevice
    mpirun.standardError = FileHandle.nullDevice
    try mpirun.run()
    defer { if mpirun.isRunning { mpirun.terminate() } }
    let deadline = Date().addingTimeInterval(60)
    while (TrainingRun.progress(of: run)?.envSteps ?? 0) < 100 && Date() < deadline { usleep(50_000) }
    // One of the two ranks: the newest r2i process of this job.
    let ranks = try runProcess(URL(fileURLWithPath: "/usr/bin/pgrep"), ["-f", "-n", "^\(r2i.path) train --config"])
    let victim = try #require(Int32(ranks.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)))
    kill(victim, SIGKILL)
    mpirun.waitUntilExit()
    #expect(mpirun.terminationStatus != 0)
    let killedAt = try #require(TrainingRun.progress(of: run)).envSteps
    #expect(killedAt >= 100 && killedAt < 100_000)

    let finished = try runMPI(ranks: 2, r2i, ["train", "--run", run.path, "--resume", "--steps", "\(killedAt + 200)"])
    #expect(finished.status == 0, "\(finished.standardOutput)\(finished.standardError)")
    #expect(finished.standardOutput.contains("resuming") && finished.standardOutput.contains("done at env step"))
    // Four environments in step, an episode every 5 steps of each: 4 per 20 env steps of the job.
    let t = try Self.tally(run)
    let end = killedAt + 200
    #expect(TrainingRun.progress(of: run)?.envSteps == end)
    #expect(t.episodes == 4 * (end / 20) && t.lastSteps <= end && t.lastSteps > end - 20, "\(t), killed at \(killedAt)")
  }
}

/// `r2i-bench memory --mpi 2`: each run of the sweep trains as a job of two processes under
/// mpirun, and a later sweep with another process count refuses to resume it.
@Suite struct DistributedSweepTests {
  @Test func aSweepTrainsEachRunUnderMpirun() throws {
    let bench = try BuiltProducts.executable("r2i-bench")
    let out = temporaryFolder("mpi-sweep")
    defer { try? FileManager.default.removeItem(at: out) }
    let common = [
      "memory", "--tasks", "bsuite/memory_len/3", "--backbones", "r2i", "--jobs", "1", "--envs", "2",
      "--minutes", "30", "--output", out.path, "--set", "batch=4", "--set", "length=8", "--set", "prefill=20",
      "--set", "trainRatio=8",
    ]
    let swept = try runProcess(bench, common + ["--steps", "1000", "--mpi", "2"])
    #expect(swept.status == 0, "\(swept.standardError)\n\(swept.standardOutput)")
    #expect(swept.standardOutput.contains("2 processes x 1 thread(s)"), "\(swept.standardOutput)")
    let run = out.appendingPathComponent("runs/bsuite-memory_len-3-r2i-s0")
    #expect(TrainingRun.processes(of: run) == 2 && TrainingRun.progress(of: run)?.envSteps == 1000)
    #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("memory.md").path))
    let other = try runProcess(bench, common + ["--steps", "2000"])
    #expect(other.status == 64 && other.standardError.contains("--mpi 2"), "\(other.standardError)")
  }
}
