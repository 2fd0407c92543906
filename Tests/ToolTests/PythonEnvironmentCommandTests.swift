import Foundation
import TestSupport
import Testing
import Training

/// `r2i train` on environments in Python worker processes: runs, checkpoints and resumes, stops
/// with a checkpoint when a worker dies, and leaves no worker behind.
@Suite(.serialized) struct PythonEnvironmentCommandTests {
  static let tiny = [
    "--envs", "2", "--set", "batch=4", "--set", "length=8", "--set", "prefill=40", "--set", "logEvery=40",
    "--set", "evalEvery=100000", "--set", "checkpointEvery=60", "--threads", "1",
  ]

  @Test(arguments: ["gym:CartPole-v1", "dmc:cartpole_balance"])
  func trainsCheckpointsAndResumes(env: String) throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("python-train")
    defer { try? FileManager.default.removeItem(at: root) }
    let run = root.appendingPathComponent("run")
    // dmc: defaults to the paper's DMC recipe; the small preset keeps this test short.
    let first = try runProcess(
      r2i, ["train", "--env", env, "--preset", "small", "--steps", "120", "--run", run.path] + Self.tiny)
    #expect(first.status == 0, "\(first.standardError.suffix(600))")
    #expect(try #require(TrainingRun.progress(of: run)).envSteps == 120)
    let resumed = try runProcess(r2i, ["train", "--run", run.path, "--resume", "--steps", "180", "--threads", "1"])
    #expect(resumed.status == 0, "\(resumed.standardError.suffix(600))")
    #expect(try #require(TrainingRun.progress(of: run)).envSteps == 180)
  }

  @Test func aWorkerThatDiesStopsTheRunWithACheckpoint() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("python-crash")
    defer { try? FileManager.default.removeItem(at: root) }
    let run = root.appendingPathComponent("run")
    // Each worker of the batch exits on its 90th step: after the checkpoint at 60 env steps
    // (2 environments), before the run's 400.
    let result = try runProcess(
      r2i, ["train", "--env", "fault:crash/90", "--steps", "400", "--run", run.path] + Self.tiny)
    #expect(result.status != 0 && !result.signalled)
    let message = result.standardError
    #expect(message.contains("fault:crash/90") && message.contains("exited (status 3)"), "\(message.suffix(800))")
    #expect(message.contains("fault: crash at step 90"), "the worker's last output: \(message.suffix(800))")
    let stopped = try #require(message.range(of: "stopped with a checkpoint at env step "), "\(message.suffix(800))")
    let steps = Int(message[stopped.upperBound...].prefix { $0.isNumber })
    let progress = try #require(TrainingRun.progress(of: run))
    #expect(steps == progress.envSteps && progress.envSteps > 60, "\(String(describing: steps)) \(progress.envSteps)")
  }

  @Test func killingTheParentOrCtrlCLeavesNoWorker() throws {
    let r2i = try BuiltProducts.executable("r2i")
    let root = temporaryFolder("python-kill")
    defer { try? FileManager.default.removeItem(at: root) }
    for signal in [SIGKILL, SIGINT] {
      let run = root.appendingPathComponent("run-\(signal)")
      let p = Process()
      p.executableURL = r2i
      p.arguments = ["train", "--env", "gym:CartPole-v1", "--steps", "1000000", "--run", run.path] + Self.tiny
      p.standardOutput = FileHandle.nullDevice
      p.standardError = FileHandle.nullDevice
      try p.run()
      defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
      var workers: [pid_t] = []
      #expect(
        ProcessProbe.waitUntil(60) {
          workers = ProcessProbe.children(of: p.processIdentifier)
          // The first metrics line: past the set-up, training (and handling Ctrl-C) has begun.
          let metrics = try? FileManager.default.attributesOfItem(
            atPath: run.appendingPathComponent("metrics.jsonl").path)
          return workers.count >= 2 && (metrics?[.size] as? Int ?? 0) > 0
        }, "the run's two workers start")
      kill(p.processIdentifier, signal)
      p.waitUntilExit()
      if signal == SIGINT { #expect(p.terminationStatus == 130) }
      #expect(
        ProcessProbe.waitUntil(5) { workers.allSatisfy(ProcessProbe.isGone) },
        "workers \(workers) after signal \(signal)")
    }
  }
}
