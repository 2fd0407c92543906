import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Envs

/// The Python bridge against the real packages (the README's test command creates `.venv` with
/// them) and against workers that fail on purpose (the `fault:` family of `r2i_bridge.py`).
@Suite(.serialized) struct PythonBridgeTests {
  /// Episode lengths and returns of a uniformly random policy over `episodes` episodes of the
  /// environments (stepped as one batch).
  static func randomEpisodes(_ envs: [any Env], episodes: Int, seed: UInt64) throws -> (
    lengths: [Double], returns: [Double], lastRewards: [Double]
  ) {
    let batch = try BatchEnv(envs, seed: seed)
    var rng = SeededGenerator(seed: seed &+ 1)
    var (lengths, returns, last) = ([Double](), [Double](), [Double]())
    var running = [(length: Int, total: Double)](repeating: (0, 0), count: envs.count)
    while lengths.count < episodes {
      let actions = envs.map { $0.actionSpace.sample(using: &rng) }
      for (i, t) in try batch.step(actions).enumerated() {
        if t.isFirst {
          running[i] = (0, 0)
          continue
        }
        running[i].length += 1
        running[i].total += t.reward
        if t.isLast {
          lengths.append(Double(running[i].length))
          returns.append(running[i].total)
          last.append(t.reward)
        }
      }
    }
    return (lengths, returns, last)
  }

  /// |mean(a) - mean(b)| in standard errors of the difference.
  static func sigmas(_ a: [Double], _ b: [Double]) -> Double {
    let (ma, sa) = meanAndStandardError(a)
    let (mb, sb) = meanAndStandardError(b)
    let se = (sa * sa + sb * sb).squareRoot()
    return se == 0 ? (ma == mb ? 0 : .infinity) : abs(ma - mb) / se
  }

  @Test func gymCartPoleHasGymnasiumsSpacesAndIsSeeded() throws {
    let env = try EnvRegistry.make("gym:CartPole-v1", seed: 3)
    #expect(env.actionSpace == .discrete(2))
    guard case .box(let low, let high) = env.observationSpace else {
      Issue.record("CartPole observes \(env.observationSpace)")
      return
    }
    #expect(low.count == 4 && abs(high[0] - 4.8) < 1e-6 && abs(high[2] - 0.418_879) < 1e-5)
    #expect(low[1] == -.infinity && high[3] == .infinity, "float32-max bounds read back as infinite")
    #expect(env.maxEpisodeSteps == 500)
    func episode(_ seed: UInt64) throws -> [Observation] {
      var out = [try env.reset(seed: seed)]
      for i in 0..<8 { out.append(try env.step(.discrete(i % 2)).observation) }
      return out
    }
    let a = try episode(11)
    #expect(try episode(11) == a, "same seed and actions, same episode")
    #expect(try episode(12) != a)
    guard case .vector(let first) = a[0] else {
      Issue.record("not a vector: \(a[0])")
      return
    }
    #expect(first.allSatisfy { abs($0) <= 0.05 }, "Gymnasium starts CartPole within +-0.05: \(first)")
  }

  @Test func randomCartPoleEpisodesLastAsLongAsTheNativeOnes() throws {
    let n = 400
    let real = try Self.randomEpisodes(
      (0..<2).map { try EnvRegistry.make("gym:CartPole-v1", seed: UInt64($0)) }, episodes: n, seed: 5)
    let native = try Self.randomEpisodes(
      (0..<2).map { try EnvRegistry.make("classic/CartPole", seed: UInt64($0)) }, episodes: n, seed: 6)
    let (mean, _) = meanAndStandardError(real.lengths)
    #expect(mean > 15 && mean < 30, "random CartPole-v1 episodes last about 22 steps, got \(mean)")
    #expect(
      Self.sigmas(real.lengths, native.lengths) < 3, "real \(mean), native \(meanAndStandardError(native.lengths).0)")
    #expect(real.returns == real.lengths, "reward 1 per step")
  }

  @Test func realBSuiteMemoryLengthMatchesTheNativeOne() throws {
    let env = try EnvRegistry.make("real-bsuite:memory_len/10", seed: 1)
    #expect(env.actionSpace == .discrete(2) && env.observationSpace.flatSize == 3)
    let nativeTask = try EnvRegistry.make("bsuite/memory_len/10").task
    #expect(env.maxEpisodeSteps == 11 && env.task == nativeTask)
    let n = 600
    let real = try Self.randomEpisodes([env], episodes: n, seed: 7)
    let native = try Self.randomEpisodes([try EnvRegistry.make("bsuite/memory_len/10", seed: 1)], episodes: n, seed: 8)
    #expect(real.lengths.allSatisfy { $0 == 11 } && native.lengths.allSatisfy { $0 == 11 })
    #expect(real.lastRewards.allSatisfy { $0 == 1 || $0 == -1 })
    #expect(Self.sigmas(real.returns, native.returns) < 3)
  }

  @Test func realPOPGymRepeatPreviousMatchesTheNativeOne() throws {
    let name = "RepeatPreviousEasy"
    let env = try EnvRegistry.make("real-popgym:\(name)", seed: 1)
    #expect(env.task.needsMemory)
    let n = 300
    let real = try Self.randomEpisodes([env], episodes: n, seed: 9)
    let native = try Self.randomEpisodes([try EnvRegistry.make("popgym/\(name)", seed: 1)], episodes: n, seed: 10)
    #expect(Set(real.lengths) == Set(native.lengths), "\(Set(real.lengths)) vs \(Set(native.lengths))")
    #expect(Self.sigmas(real.returns, native.returns) < 3)
  }

  /// The real task steps at about 28 per second here (its physics, not the bridge), so this
  /// compares 4 real episodes (two workers, one per core) with 64 native ones: a check for gross
  /// differences (rewards, episode length, spaces), not a fine one.
  @Test func realMemoryMazeMatchesTheNativeOne() throws {
    let probe = try EnvRegistry.make("real-memorymaze:9x9", seed: 1)
    #expect(probe.observationSpace == .image(height: 64, width: 64, channels: 3))
    #expect(probe.actionSpace == .discrete(6) && probe.maxEpisodeSteps == 1000)
    #expect(probe.task == (try EnvRegistry.make("memorymaze/9x9").task))
    let results = Mutex<[(length: Double, total: Double)]>([])
    let failures = Mutex<[String]>([])
    DispatchQueue.concurrentPerform(iterations: 2) { worker in
      do {
        let env = try EnvRegistry.make("real-memorymaze:9x9", seed: UInt64(10 + worker))
        var rng = SeededGenerator(seed: UInt64(20 + worker))
        for episode in 0..<2 {
          let e = try run(env, seed: UInt64(100 * worker + episode)) { env, _ in env.actionSpace.sample(using: &rng) }
          results.withLock { $0.append((Double(e.length), e.total)) }
        }
      } catch {
        failures.withLock { $0.append("\(error)") }
      }
    }
    #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
    let real = results.withLock { $0 }
    let native = try Self.randomEpisodes(
      (0..<2).map { try EnvRegistry.make("memorymaze/9x9", seed: UInt64($0)) }, episodes: 64, seed: 12)
    #expect(real.count == 4 && real.allSatisfy { $0.length == 1000 })
    let realReturns = real.map(\.total)
    #expect(
      Self.sigmas(realReturns, native.returns) < 3,
      "real \(meanAndStandardError(realReturns)), native \(meanAndStandardError(native.returns))")
  }

  @Test func aWorkerThatExitsMidStepIsAnErrorWithItsLastOutput() throws {
    let env = try PythonEnvironment(name: "fault:crash/3", seed: 0)
    let pid = env.worker.pid
    _ = try env.reset(seed: 1)
    _ = try env.step(.discrete(0))
    _ = try env.step(.discrete(1))
    #expect {
      _ = try env.step(.discrete(0))
    } throws: { error in
      let text = "\(error)"
      guard case EnvError.workerFailed(let name, _) = error else { return false }
      return name == "fault:crash/3" && text.contains("exited (status 3)") && text.contains("fault: crash at step 3")
    }
    #expect(ProcessProbe.isGone(pid))
    #expect(throws: EnvError.self) { try env.reset(seed: 1) }
  }

  @Test func aHungWorkerIsKilledAfterTheTimeLimit() throws {
    let env = try PythonEnvironment(name: "fault:hang/1", seed: 0, worker: .init(timeout: 2))
    let pid = env.worker.pid
    _ = try env.reset(seed: 1)
    let start = Date()
    #expect {
      _ = try env.step(.discrete(0))
    } throws: { error in
      "\(error)".contains("did not answer within 2 s") && "\(error)".contains("fault: hang at step 1")
    }
    #expect(Date().timeIntervalSince(start) < 10)
    #expect(ProcessProbe.isGone(pid))
  }

  @Test func anEnvironmentThatRaisesReportsItsException() throws {
    let env = try PythonEnvironment(name: "fault:raise/2", seed: 0)
    _ = try env.reset(seed: 1)
    _ = try env.step(.discrete(0))
    #expect {
      _ = try env.step(.discrete(0))
    } throws: { error in
      guard case EnvError.workerFailed = error else { return false }
      return "\(error)".contains("RuntimeError: deliberate failure at step 2")
    }
  }

  @Test func printingPackagesCannotCorruptTheProtocol() throws {
    let env = try PythonEnvironment(name: "fault:print/0", seed: 4)
    var obs = try env.reset(seed: 4)
    #expect(obs == .vector([0, 4]))
    for t in 1...10 {
      let r = try env.step(.discrete(1))
      obs = r.observation
      #expect(obs == .vector([Float(t), 4]) && r.reward == 1 && r.truncated == (t == 10))
    }
  }

  @Test func actionsOutsideTheSpaceAreRefusedBeforeTheyAreSent() throws {
    let env = try PythonEnvironment(name: "fault:print/0", seed: 0)
    _ = try env.reset(seed: 0)
    #expect(throws: EnvError.self) { try env.step(.discrete(2)) }
    #expect(throws: EnvError.self) { try env.step(.continuous([0.5])) }
    #expect(try env.step(.discrete(1)).observation == .vector([1, 0]), "the worker is still in step")
    let cart = try EnvRegistry.make("dmc:cartpole_balance", seed: 0)
    _ = try cart.reset(seed: 0)
    #expect {
      _ = try cart.step(.continuous([1.5]))
    } throws: { error in
      guard case EnvError.invalidAction = error else { return false }
      return "\(error)".contains("outside [-1.0, 1.0]")
    }
  }

  @Test func misconfigurationsNameTheFix() throws {
    // No site-packages: the worker cannot import gymnasium.
    #expect {
      _ = try PythonEnvironment(name: "gym:CartPole-v1", seed: 0, worker: .init(arguments: ["-S"]))
    } throws: { error in
      guard case EnvError.invalidConfiguration(let m) = error else { return false }
      return m.contains("install it with ./Tools/dev.sh python") && m.contains("gymnasium==")
    }
    #expect {
      _ = try PythonEnvironment(name: "gym:CartPole-v1", seed: 0, worker: .init(python: "/nonexistent/python"))
    } throws: { error in "\(error)".contains("R2I_PYTHON is /nonexistent/python") }
    for bad in [
      "gym:NoSuchThing-v0", "dmc:walker_fly", "atari:NoSuchGame", "real-memorymaze:8x8", "real-bsuite:memory_len/x",
    ] {
      #expect(throws: EnvError.self, "\(bad)") { _ = try EnvRegistry.make(bad) }
    }
    #expect {
      _ = try EnvRegistry.make("dmc:walker_fly")
    } throws: { error in "\(error)".contains("walker_walk") }
  }

  @Test func aFailedStepLeavesTheBatchAsItWas() throws {
    let batch = try BatchEnv(
      [try PythonEnvironment(name: "fault:print/0", seed: 0), try PythonEnvironment(name: "fault:crash/3", seed: 0)],
      seed: 2)
    _ = try batch.step([.discrete(0), .discrete(0)])  // resets
    _ = try batch.step([.discrete(1), .discrete(0)])
    _ = try batch.step([.discrete(1), .discrete(1)])
    let before = batch.snapshot()
    #expect(throws: EnvError.self) { try batch.step([.discrete(0), .discrete(1)]) }
    #expect(batch.snapshot() == before)
    // Restored into fresh workers, the snapshot continues exactly.
    let fresh = try BatchEnv(
      [try PythonEnvironment(name: "fault:print/0", seed: 0), try PythonEnvironment(name: "fault:print/0", seed: 0)],
      seed: 2)
    try fresh.restore(before)
    let next = try fresh.step([.discrete(0), .discrete(1)])
    for t in next {
      guard case .vector(let v) = t.observation else {
        Issue.record("not a vector: \(t.observation)")
        continue
      }
      #expect(v[0] == 3 && !t.isFirst, "the third step of the restored episode: \(v)")
    }
  }

  @Test func releasingTheEnvironmentEndsItsWorker() throws {
    var env: PythonEnvironment? = try PythonEnvironment(name: "fault:print/0", seed: 0)
    let pid = try #require(env?.worker.pid)
    #expect(!ProcessProbe.isGone(pid))
    env = nil
    #expect(ProcessProbe.isGone(pid))
  }

  @Test func pythonNamesAreListedAndTheirNativeCounterpartsFound() {
    for form in ["gym:<Gymnasium id>", "dmc:<domain>_<task>", "atari:<Game>", "real-memorymaze:<N>x<N>"] {
      #expect(EnvRegistry.names.contains(form))
    }
    #expect(PythonEnvironment.nativeCounterpart(of: "real-bsuite:memory_len/30") == "bsuite/memory_len/30")
    #expect(PythonEnvironment.nativeCounterpart(of: "gym:CartPole-v1") == nil)
    #expect(!PythonEnvironment.handles("classic/CartPole") && PythonEnvironment.handles("atari:Pong"))
  }
}
