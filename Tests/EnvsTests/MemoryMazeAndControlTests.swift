import Foundation
import Testing

@testable import Envs

@Suite struct MemoryMazeTests {
  func floodFill(_ m: MemoryMaze) -> Set<Int> {
    let s = m.gridSize
    let start = m.walls.firstIndex(of: false)!
    var seen: Set<Int> = [start]
    var queue = [start]
    while let c = queue.popLast() {
      for d in [1, -1, s, -s] where !m.walls[c + d] && seen.insert(c + d).inserted { queue.append(c + d) }
    }
    return seen
  }

  @Test(arguments: MemoryMaze.configurations)
  func mazesAreConnectedWalledAndHaveOneObjectPerRoom(_ c: MemoryMaze.Configuration) throws {
    let m = MemoryMaze(configuration: c, seed: 1)
    for seed in 0..<5 {
      _ = m.reset(seed: UInt64(seed))
      let s = m.gridSize
      #expect(s == c.size + 2)
      for i in 0..<s {
        #expect(m.walls[i] && m.walls[(s - 1) * s + i] && m.walls[i * s] && m.walls[i * s + s - 1])
      }
      let floor = m.walls.indices.filter { !m.walls[$0] }
      #expect(floodFill(m).count == floor.count, "every floor cell is reachable")
      #expect(m.rooms.count == c.objectCount && m.objects.count == c.objectCount)
      for (o, r) in zip(m.objects, m.rooms) {
        #expect(o.x > Float(r.x0) && o.x < Float(r.x1 + 1) && o.y > Float(r.y0) && o.y < Float(r.y1 + 1))
      }
      #expect(Set(m.objects.map { $0.colour }).count == c.objectCount, "distinct colours")
    }
  }

  @Test func episodeLengthRewardsAndSeeds() throws {
    let m = try MemoryMaze(size: 9, seed: 2)
    #expect(m.observationSpace == .image(height: 64, width: 64, channels: 3))
    #expect(m.actionSpace == .discrete(6))
    var rng = SeededGenerator(seed: 3)
    let e = try run(m) { env, _ in env.actionSpace.sample(using: &rng) }
    #expect(e.length == 1000 && e.truncated && !e.terminated)
    #expect(valueSet(e.rewards).isSubset(of: [0, 1]))
    let first = m.reset(seed: 11)
    let walls = m.walls
    #expect(m.reset(seed: 11) == first && m.walls == walls)
    _ = m.reset(seed: 12)
    #expect(m.walls != walls)
  }

  @Test func wallsAreNeverCrossedAndTheOracleReachesTargets() throws {
    let m = try MemoryMaze(size: 11, seed: 4)
    var rng = SeededGenerator(seed: 5)
    var insideWall = 0
    var collisions = 0
    func check(_ env: any Env) {
      let maze = env as! MemoryMaze
      if maze.walls[Int(maze.agentY) * maze.gridSize + Int(maze.agentX)] { insideWall += 1 }
      if maze.collides(x: maze.agentX, y: maze.agentY) { collisions += 1 }
    }
    // Random walk: mostly forward so it presses against walls often.
    _ = try run(m, seed: 6) { env, _ in
      check(env)
      return .discrete([1, 1, 1, 4, 5, 2, 3][rng.nextInt(below: 7)])
    }
    // Oracle: walks shortest paths; each target is worth +1.
    let oracle = try run(m, seed: 7) { env, _ in
      check(env)
      return (env as! MemoryMaze).oracleAction()
    }
    #expect(insideWall == 0 && collisions == 0)
    #expect(oracle.total >= 30, "oracle collected \(oracle.total) targets in 2000 steps")
    #expect(Int(oracle.total) == m.score)
  }

  @Test func borderShowsTheTargetColourAndChangesWithTheTarget() throws {
    let m = try MemoryMaze(size: 9, seed: 8)
    var obs = m.reset(seed: 9)
    var lastTarget = m.target
    var changes = 0
    for _ in 0..<600 {
      guard case .image(let f) = obs else { return }
      let c = MemoryMaze.palette[m.objects[m.target].colour]
      let expected = [UInt8(Float(c.0) * 0.7), UInt8(Float(c.1) * 0.7), UInt8(Float(c.2) * 0.7)]
      for (x, y) in [(0, 0), (1, 30), (63, 63), (40, 62), (62, 5)] { #expect(f[x, y] == expected) }
      #expect(f[32, 32] != expected || f[31, 20] != expected)  // the inside is the view
      let r = try m.step(m.oracleAction())
      obs = r.observation
      if m.target != lastTarget {
        changes += 1
        #expect(r.reward == 1)
        lastTarget = m.target
      }
    }
    #expect(changes > 3)
  }

  @Test func anObjectInViewAppearsInItsColour() throws {
    let m = try MemoryMaze(size: 9, seed: 10)
    var found = 0
    for seed in 0..<20 {
      _ = m.reset(seed: UInt64(seed))
      for o in m.objects {
        // Stand one cell from the object on an open side and face it.
        for (dx, dy) in [(1, 0), (-1, 0), (0, 1), (0, -1)] as [(Float, Float)] {
          let x = o.x + dx * 1.5
          let y = o.y + dy * 1.5
          guard !m.collides(x: x, y: y), !m.collides(x: (x + o.x) / 2, y: (y + o.y) / 2) else { continue }
          m.agentX = x
          m.agentY = y
          m.heading = atan2f(o.y - y, o.x - x)
          let f = m.render()!
          let c = MemoryMaze.palette[o.colour]
          var hits = 0
          for yy in 20..<60 {
            for xx in 24..<40 {
              let p = f[xx, yy]
              let bright = max(Int(c.0), Int(c.1), Int(c.2))
              let pb = max(Int(p[0]), Int(p[1]), Int(p[2]))
              // Same hue: the channel ratios match the object's colour.
              if pb > 40 && abs(Int(p[0]) * bright - Int(c.0) * pb) < 40 * bright
                && abs(Int(p[1]) * bright - Int(c.1) * pb) < 40 * bright
                && abs(Int(p[2]) * bright - Int(c.2) * pb) < 40 * bright
              {
                hits += 1
              }
            }
          }
          #expect(hits > 20, "object colour \(o.colour) barely visible (\(hits) pixels)")
          found += 1
          break
        }
      }
    }
    #expect(found > 10)
  }

  @Test func topDownMapDrawsWallsObjectsAndAgent() throws {
    let m = try MemoryMaze(size: 9, seed: 11)
    _ = m.reset(seed: 1)
    let f = m.renderTopDown(cell: 4)
    #expect(f.width == 44 && f.height == 44)
    #expect(f[0, 0] == [45, 45, 55])  // outer wall
    let o = m.objects[0]
    let c = MemoryMaze.palette[o.colour]
    #expect(f[Int(o.x * 4), Int(o.y * 4)] == [c.0, c.1, c.2])
  }
}

@Suite struct ClassicControlTests {
  @Test func cartPoleBalancedByAControllerIsTruncatedAt500() throws {
    let env = CartPole(seed: 1)
    let e = try run(env) { _, obs in
      guard case .vector(let s) = obs else { return .discrete(0) }
      return .discrete(s[2] + 0.5 * s[3] + 0.01 * s[0] + 0.1 * s[1] > 0 ? 1 : 0)
    }
    #expect(e.length == 500 && e.truncated && !e.terminated && e.total == 500)
    // Random play falls over quickly and terminates.
    var rng = SeededGenerator(seed: 2)
    var lengths: [Double] = []
    for _ in 0..<200 {
      let r = try run(env) { e, _ in e.actionSpace.sample(using: &rng) }
      #expect(r.terminated && r.rewards.allSatisfy { $0 == 1 })
      lengths.append(Double(r.length))
    }
    let (mean, _) = meanAndStandardError(lengths)
    #expect(mean > 15 && mean < 30, "mean random CartPole episode \(mean) steps (about 22 expected)")
  }

  @Test func cartPoleFirstStepMatchesTheEquations() throws {
    let env = CartPole(seed: 3)
    _ = env.reset()
    let s0 = env.state
    _ = try env.step(.discrete(1))
    // Hand evaluation of Gymnasium's update for the first step.
    let (x, xd, th, thd) = (s0[0], s0[1], s0[2], s0[3])
    let temp = (10 + 0.05 * thd * thd * sin(th)) / 1.1
    let thacc = (9.8 * sin(th) - cos(th) * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos(th) * cos(th) / 1.1))
    let xacc = temp - 0.05 * thacc * cos(th) / 1.1
    let expected = [x + 0.02 * xd, xd + 0.02 * xacc, th + 0.02 * thd, thd + 0.02 * thacc]
    for (a, b) in zip(env.state, expected) { #expect(abs(a - b) < 1e-12) }
  }

  @Test func pendulumIsTruncatedAt200WithBoundedRewards() throws {
    let env = Pendulum(seed: 4)
    var rng = SeededGenerator(seed: 5)
    let e = try run(env) { e, _ in e.actionSpace.sample(using: &rng) }
    #expect(e.length == 200 && e.truncated && !e.terminated)
    let worst = -(Double.pi * Double.pi + 0.1 * 64 + 0.001 * 4)
    #expect(e.rewards.allSatisfy { $0 <= 0 && $0 >= worst - 1e-9 })
    #expect(throws: EnvError.self) { try env.step(.continuous([3])) }
    _ = env.reset()
    #expect(throws: EnvError.self) { try env.step(.continuous([3])) }
    let clipped = ClipAction(env)
    _ = try clipped.step(.continuous([3]))  // clipped to 2
  }

  @Test func acrobotPumpingEnergyReachesTheGoal() throws {
    let env = Acrobot(seed: 6)
    let e = try run(env) { _, obs in
      guard case .vector(let s) = obs else { return .discrete(1) }
      return .discrete(s[5] > 0 ? 2 : 0)  // torque along the second joint's velocity
    }
    #expect(e.terminated && !e.truncated && e.length < 500)
    #expect(e.rewards.last == 0 && e.rewards.dropLast().allSatisfy { $0 == -1 })
    let idle = try run(env) { _, _ in .discrete(1) }
    #expect(idle.length == 500 && idle.truncated && isClose(idle.total, -500))
  }

  /// Trajectories computed with Gymnasium (1.x) from the same start states: the physics match.
  @Test func trajectoriesMatchGymnasium() throws {
    let cart = CartPole()
    _ = cart.reset()
    cart.state = [0.01, -0.02, 0.03, 0.04]
    for a in [1, 0, 1, 1] { _ = try cart.step(.discrete(a)) }
    for (a, b) in zip(cart.state, [0.01615364, 0.36859581, 0.02261759, -0.50922532]) {
      #expect(abs(a - b) < 1e-7)
    }
    let pend = Pendulum()
    _ = pend.reset()
    pend.state = [0.5, -0.3]
    var last = 0.0
    for u: Float in [1, -2, 0.3] { last = try pend.step(.continuous([u])).reward }
    for (a, b) in zip(pend.state, [0.55910207, 0.6964571]) { #expect(abs(a - b) < 1e-6) }
    #expect(abs(last - -0.28257713993795286) < 1e-6)
    let acro = Acrobot()
    _ = acro.reset()
    acro.state = [0.05, -0.03, 0.02, 0.01]
    for a in [2, 0, 1, 2, 2] { _ = try acro.step(.discrete(a)) }
    for (a, b) in zip(acro.state, [-0.06141626, 0.15685541, -0.22333529, 0.43282608]) {
      #expect(abs(a - b) < 1e-7)
    }
  }

  @Test func pixelVariantsRenderChangingFrames() throws {
    var rng0 = SeededGenerator(seed: 3)
    for name in ["classic/CartPole-pixels", "classic/Pendulum-pixels", "classic/Acrobot-pixels"] {
      let env = try EnvRegistry.make(name, seed: 1)
      #expect(env.observationSpace == .image(height: 64, width: 64, channels: 3), "\(name)")
      let first = env.reset(seed: 2)
      var r = try env.step(env.actionSpace.sample(using: &rng0))
      for _ in 0..<15 where !r.isLast { r = try env.step(env.actionSpace.sample(using: &rng0)) }
      let changed = first != r.observation
      #expect(changed, "\(name) frame did not change")
    }
  }
}

@Suite struct WrapperAndRegistryTests {
  @Test func registryBuildsEveryNameAndExplainsUnknownOnes() throws {
    for name in EnvRegistry.names where !name.contains("<") {
      let env = try EnvRegistry.make(name, seed: 1)
      _ = env.reset()
      #expect(env.name == name, "\(name) reports \(env.name)")
    }
    #expect(try EnvRegistry.make("bsuite/memory_len/30").name == "bsuite/memory_len/30")
    #expect(try EnvRegistry.make("bsuite/discounting_chain/7").name == "bsuite/discounting_chain/7")
    for bad in ["popgym/RepeatPreviousExtreme", "nope", "memorymaze/10x10", "bsuite/memory_len/x"] {
      do {
        _ = try EnvRegistry.make(bad)
        Issue.record("\(bad) accepted")
      } catch let e as EnvError {
        if case .invalidConfiguration = e { continue }
        #expect(e.description.contains("popgym/RepeatPreviousEasy"), "\(e)")
      }
    }
  }

  @Test func timeLimitFlattenAndPreviousAction() throws {
    let base = RepeatFirst(.easy, seed: 1)
    let limited = try TimeLimit(base, maxSteps: 10)
    let e = try run(limited) { _, _ in .discrete(0) }
    #expect(e.length == 10 && e.truncated)
    let flat = try FlattenObservation(Autoencode(.easy, seed: 2))
    #expect(flat.observationSpace.flatSize == 6)
    guard case .vector(let v) = flat.reset() else { return }
    #expect(v[0] == 0 && v[1] == 1 && v[2...].filter { $0 == 1 }.count == 1)
    let prev = try PreviousActionObservation(RepeatPrevious(.easy, seed: 3))
    #expect(prev.observationSpace.flatSize == 4 + 4 + 1)
    guard case .vector(let r0) = prev.reset() else { return }
    #expect(Array(r0[4...]) == [0, 0, 0, 0, 1])
    let s = try prev.step(.discrete(2))
    guard case .vector(let r1) = s.observation else { return }
    #expect(Array(r1[4...]) == [0, 0, 1, 0, 0])
    let ms = try PreviousActionObservation(MineSweeper(.easy, seed: 4))
    _ = ms.reset()
    guard case .vector(let m1) = try ms.step(.multiDiscrete([1, 3])).observation else { return }
    #expect(Array(m1[3...]) == [0, 1, 0, 0, 0, 0, 0, 1, 0])
  }

  @Test func batchEnvResetsAutomatically() throws {
    let batch = try BatchEnv(name: "bsuite/memory_len/3", count: 3, seed: 5)
    var firsts = 0
    var lasts = 0
    for t in 0..<20 {
      let out = try batch.step([Action](repeating: .discrete(0), count: 3))
      if t == 0 { #expect(out.allSatisfy { $0.isFirst && $0.reward == 0 }) }
      firsts += out.filter { $0.isFirst }.count
      lasts += out.filter { $0.isLast }.count
      for tr in out where tr.isLast { #expect(tr.isTerminal && abs(tr.reward) == 1) }
    }
    // Episodes are 4 steps plus one reset step: 20 calls make 4 full cycles per environment.
    #expect(firsts == 12 && lasts == 12)
    #expect(throws: EnvError.self) { try batch.step([.discrete(0)]) }
  }
}
