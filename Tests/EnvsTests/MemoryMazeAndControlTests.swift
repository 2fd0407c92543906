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
      #expect(m.rooms.count >= c.objectCount && m.objects.count == c.objectCount)
      #expect(Set(m.objectRooms).count == c.objectCount, "one object per room")
      for (o, room) in zip(m.objects, m.objectRooms) {
        let r = m.rooms[room]
        #expect(o.x > Float(r.x0) && o.x < Float(r.x1 + 1) && o.y > Float(r.y0) && o.y < Float(r.y1 + 1))
      }
      // Colours are the first n of the palette, in order.
      #expect(m.objects.map { $0.colour } == Array(0..<c.objectCount))
      // The agent starts at the centre of a room's spawn cell.
      let cell = Int(m.agentY) * s + Int(m.agentX)
      #expect(m.roomSlots.contains { $0.spawn == cell })
      #expect(m.agentX - Float(Int(m.agentX)) == 0.5 && m.agentY - Float(Int(m.agentY)) == 0.5)
    }
  }

  /// The layout table of docs/environments.md: rooms per maze and room side lengths of 500 real
  /// mazes per size. Ours must match within sampling error (3 standard errors of a difference
  /// of two proportions, each from 500 mazes).
  @Test(arguments: MemoryMaze.configurations)
  func layoutStatisticsMatchTheRealTask(_ c: MemoryMaze.Configuration) throws {
    let real: [Int: (rooms: [Int: Int], sides: [Int: Int], floor: Double, between: Double, spawn: Double)] = [
      9: ([3: 130, 4: 370], [3: 3091, 5: 649], 0.731, 7.86, 6.40),
      11: ([4: 96, 5: 172, 6: 232], [3: 4345, 5: 927], 0.719, 9.49, 7.99),
      13: ([5: 13, 6: 487], [3: 4766, 5: 1208], 0.656, 11.42, 9.81),
      15: ([9: 500], [3: 9000], 0.644, 12.90, 11.83),
    ]
    let target = real[c.size]!
    let m = MemoryMaze(configuration: c, seed: 3)
    var rooms: [Int: Int] = [:]
    var sides: [Int: Int] = [:]
    var floor = 0.0
    var between: [Double] = []
    var spawn: [Double] = []
    let s = m.gridSize
    func distances(from cell: Int) -> [Int] {
      var d = [Int](repeating: -1, count: s * s)
      d[cell] = 0
      var queue = [cell]
      var head = 0
      while head < queue.count {
        let x = queue[head]
        head += 1
        for k in [1, -1, s, -s] where !m.walls[x + k] && d[x + k] < 0 {
          d[x + k] = d[x] + 1
          queue.append(x + k)
        }
      }
      return d
    }
    for seed in 0..<500 {
      _ = m.reset(seed: UInt64(1000 + seed))
      rooms[m.rooms.count, default: 0] += 1
      for r in m.rooms {
        sides[r.x1 - r.x0 + 1, default: 0] += 1
        sides[r.y1 - r.y0 + 1, default: 0] += 1
      }
      floor += Double(m.walls.filter { !$0 }.count) / Double(c.size * c.size) / 500
      let cells = m.objects.map { Int($0.y) * s + Int($0.x) }
      for (i, a) in cells.enumerated() {
        let d = distances(from: a)
        for b in cells[(i + 1)...] { between.append(Double(d[b])) }
      }
      let d = distances(from: Int(m.agentY) * s + Int(m.agentX))
      spawn.append(Double(d[cells[m.target]]))
    }
    func close(_ ours: [Int: Int], _ theirs: [Int: Int], _ what: String) {
      let n1 = Double(ours.values.reduce(0, +))
      let n2 = Double(theirs.values.reduce(0, +))
      for k in Set(ours.keys).union(theirs.keys) {
        let p1 = Double(ours[k] ?? 0) / n1
        let p2 = Double(theirs[k] ?? 0) / n2
        let p = (p1 * n1 + p2 * n2) / (n1 + n2)
        let se = (p * (1 - p) * (1 / n1 + 1 / n2)).squareRoot()
        #expect(abs(p1 - p2) <= 3 * se + 1e-9, "\(c.size)x\(c.size) \(what) \(k): \(p1) vs real \(p2)")
      }
    }
    close(rooms, target.rooms, "rooms per maze")
    close(sides, target.sides, "room side")
    let mean = { (x: [Double]) in x.reduce(0, +) / Double(x.count) }
    // Distances decide scores: paths between targets and from the spawn within 10 %.
    #expect(abs(mean(between) / target.between - 1) < 0.1, "target-to-target path \(mean(between))")
    #expect(abs(mean(spawn) / target.spawn - 1) < 0.1, "spawn-to-target path \(mean(spawn))")
    #expect(abs(floor / target.floor - 1) < 0.1, "floor fraction \(floor)")
    print(
      "memorymaze/\(c.size)x\(c.size) layouts: rooms \(rooms.sorted { $0.key < $1.key }), sides \(sides.sorted { $0.key < $1.key }), floor \(String(format: "%.3f", floor)) (real \(target.floor)), target-to-target path \(String(format: "%.2f", mean(between))) (real \(target.between)), spawn-to-target \(String(format: "%.2f", mean(spawn))) (real \(target.spawn))"
    )
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
      let f = try #require(obs.frame)
      let c = MemoryMaze.borderColours[m.objects[m.target].colour]
      let expected = [c.0, c.1, c.2]
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

/// The walker against the real task's measurements (docs/environments.md, Memory Maze), each
/// row within 5 %. Distances in cells (1 cell = 2 m), angles in degrees.
@Suite struct MemoryMazePhysicsTests {
  /// A 15x15 maze turned into an open arena (outer walls only), the walker at rest in the
  /// middle facing `heading`, the objects parked in a far corner.
  func arena(heading: Float = 0, wallColumn: Int? = nil) throws -> MemoryMaze {
    let m = try MemoryMaze(size: 15, seed: 1)
    _ = m.reset(seed: 1)
    let s = m.gridSize
    m.walls = (0..<(s * s)).map { c in
      let (x, y) = (c % s, c / s)
      return x == 0 || y == 0 || x == s - 1 || y == s - 1 || x == wallColumn
    }
    m.objects = m.objects.enumerated().map { i, o in (Float(1.5 + Double(i)), 1.5, o.colour) }
    m.target = 0
    (m.agentX, m.agentY, m.heading) = (5.5, 8.5, heading * .pi / 180)
    (m.speed, m.drive, m.turnSpeed) = (0, 0, 0)
    return m
  }

  func within(_ value: Double, _ expected: Double, _ what: String, tolerance: Double = 0.05) {
    #expect(abs(value / expected - 1) <= tolerance, "\(what): \(value), real \(expected)")
  }

  /// Steps `actions` and returns the displacement (cells) and heading change (degrees) of each.
  func run(_ m: MemoryMaze, _ actions: [Int]) throws -> [(distance: Double, turn: Double)] {
    var out: [(Double, Double)] = []
    for a in actions {
      let (x, y, h) = (m.agentX, m.agentY, m.heading)
      _ = try m.step(.discrete(a))
      let dh = remainderf(m.heading - h, 2 * .pi) * 180 / .pi
      out.append((Double(hypotf(m.agentX - x, m.agentY - y)), Double(dh)))
    }
    return out
  }

  @Test func forwardRampAndCoast() throws {
    let m = try arena()
    let ramp = try run(m, [Int](repeating: 1, count: 8)).map(\.distance)
    for (i, real) in [0.111, 0.219, 0.243, 0.248].enumerated() { within(ramp[i], real, "forward step \(i + 1)") }
    within(ramp[7], 0.2498, "terminal speed")
    _ = try run(m, [Int](repeating: 1, count: 12))
    let coast = try run(m, [Int](repeating: 0, count: 8)).map(\.distance)
    for (i, real) in [0.138, 0.031].enumerated() { within(coast[i], real, "coast step \(i + 1)") }
    within(coast[2], 0.007, "coast step 3", tolerance: 0.08)  // 0.0137 m measured to 0.1 mm
    within(coast.reduce(0, +), 0.18, "total coast")
    #expect(coast[3] < 0.0075, "stopped within about 3 steps")
  }

  @Test func turningInPlaceAndItsCoast() throws {
    for (action, sign) in [(2, -1.0), (3, 1.0)] {
      let m = try arena(heading: 30)
      let turns = try run(m, [action, action, action, action, 0, 0, 0]).map(\.turn)
      within(sign * turns[0], 14.1, "first turn step")
      within(sign * turns[1], 18.32, "second turn step")
      within(sign * turns[3], 18.39, "steady turn")
      within(sign * turns[4], 3.0, "turn coast", tolerance: 0.07)
      #expect(abs(turns[5]) < 0.1, "turning stops one step after release")
      #expect(hypotf(m.agentX - 5.5, m.agentY - 8.5) < 0.001, "no drift while turning in place")
    }
  }

  @Test func forwardTurnRadius() throws {
    let m = try arena()
    let steps = try run(m, [Int](repeating: 5, count: 12))
    let last = steps[11]
    within(last.turn, 18.23, "heading change per step while driving and turning")
    within(last.distance, 0.248, "chord per step at full speed")
    // Radius from chord and angle: R = c / (2 sin(theta / 2)).
    let radius = last.distance / (2 * sin(last.turn * .pi / 360))
    within(radius, 0.78, "turning radius")
  }

  @Test func wallsStopTheBodyAtItsRestDistanceWithoutTunnelling() throws {
    let m = try arena(wallColumn: 8)
    _ = try run(m, [Int](repeating: 1, count: 12))
    within(Double(8 - m.agentX), 0.1025, "rest distance from the wall face")
    #expect(!m.collides(x: m.agentX, y: m.agentY))

    // Even at full speed from far away, head-on, nothing passes.
    let far = try arena(wallColumn: 12)
    _ = try run(far, [Int](repeating: 1, count: 40))
    #expect(far.agentX < 12 - 0.1 && far.agentX > 11.85)
  }

  @Test(arguments: [20.0, 45.0, 70.0] as [Float])
  func wallsDoNotLetTheBodySlide(_ angle: Float) throws {
    // The wall face is at x = 8; the approach angle is measured from the wall normal.
    let m = try arena(heading: angle, wallColumn: 8)
    m.agentX = 7.4  // 0.6 cells from the face, as in the measurements
    var contactSteps = 0
    var previousY = m.agentY
    var previousAngle = Double(angle)
    var log: [String] = []
    defer {
      print(
        "wall contact at \(angle) deg (gap, along-wall motion, heading from normal per step): \(log.joined(separator: "; "))"
      )
    }
    for _ in 0..<20 {
      _ = try m.step(.discrete(1))
      let gap = 8 - m.agentX
      let along = Double(abs(m.agentY - previousY))
      previousY = m.agentY
      guard gap < 0.11 else { continue }
      contactSteps += 1
      let toNormal = Double(abs(m.heading)) * 180 / .pi
      log.append(String(format: "%.4f %.4f %.1f", gap, along, toNormal))
      if contactSteps > 1 {
        #expect(along < 0.03, "\(angle) deg: slid \(along) cells in a step along the wall")
        #expect(toNormal < previousAngle, "\(angle) deg: the heading is not pulled toward the wall normal")
      }
      previousAngle = toNormal
    }
    #expect(contactSteps >= 5)
  }

  @Test func touchDistanceFromRestAndAtFullSpeed() throws {
    // At rest at distance d from the target's centre, one noop step: rewarded iff d < 0.387.
    for (d, rewarded) in [(0.37, true), (0.385, true), (0.39, false), (0.41, false)] as [(Float, Bool)] {
      let m = try arena()
      m.objects[0] = (m.agentX + d, m.agentY, m.objects[0].colour)
      #expect((try m.step(.discrete(0)).reward == 1) == rewarded, "distance \(d)")
    }
    // From rest 1.5 cells away at full speed: the reward comes on step 6, partway through the
    // step, and the walker carries on through the target, ending 0.18 cells from its centre.
    let m = try arena()
    m.objects[0] = (m.agentX + 1.5, m.agentY, m.objects[0].colour)
    var rewardStep = 0
    for step in 1...8 where try m.step(.discrete(1)).reward == 1 && rewardStep == 0 {
      rewardStep = step
      within(Double(7 - m.agentX), 0.18, "distance to the target's centre at the end of the rewarded step")
    }
    #expect(rewardStep == 6)
    #expect(m.agentX > 5.5 + 1.5, "targets do not block")
  }

  /// Section 2's consequence: a uniform random policy spends 80-83 % of its steps with the centre
  /// within 0.22 m (0.11 cells) of a wall face and moves 0.016-0.022 cells per step.
  @Test func aRandomPolicyHugsWallsAndBarelyMovesAsInTheRealTask() throws {
    let m = try MemoryMaze(size: 9, seed: 0)
    var rng = SeededGenerator(seed: 1)
    var near = 0
    var moved = 0.0
    var steps = 0
    for episode in 0..<4 {
      _ = m.reset(seed: UInt64(episode))
      while true {
        let (x, y) = (m.agentX, m.agentY)
        let r = try m.step(m.actionSpace.sample(using: &rng))
        moved += Double(hypotf(m.agentX - x, m.agentY - y))
        steps += 1
        if m.wallNormal(x: m.agentX, y: m.agentY, within: 0.11) != nil { near += 1 }
        if r.isLast { break }
      }
    }
    let nearFraction = Double(near) / Double(steps)
    let perStep = moved / Double(steps)
    print(
      "random policy on 9x9: \(String(format: "%.1f", 100 * nearFraction)) % of steps near a wall, \(String(format: "%.4f", perStep)) cells per step"
    )
    #expect(nearFraction > 0.75 && nearFraction < 0.9)
    #expect(perStep > 0.014 && perStep < 0.026)
  }

  @Test func spawnHeadingsAreUniformAndColoursFixedOrRandom() throws {
    let m = try MemoryMaze(size: 9, seed: 0)
    var bins = [Int](repeating: 0, count: 8)
    for seed in 0..<400 {
      _ = m.reset(seed: UInt64(seed))
      bins[min(7, Int((m.heading + .pi) / (2 * .pi) * 8))] += 1
    }
    // Chi-square with 7 degrees of freedom below its 0.1 % point (24.3).
    let chi = bins.map { Double(($0 - 50) * ($0 - 50)) / 50 }.reduce(0, +)
    #expect(chi < 24.3, "headings \(bins)")
    let six = try EnvRegistry.make("memorymaze/9x9-6CL", seed: 0) as! MemoryMaze
    var colourSets = Set<[Int]>()
    for seed in 0..<30 {
      _ = six.reset(seed: UInt64(seed))
      colourSets.insert(six.objects.map(\.colour))
      #expect(Set(six.objects.map(\.colour)).count == 3)
    }
    #expect(colourSets.count > 5 && six.name == "memorymaze/9x9-6CL")
  }

  @Test func cameraSitsLowAndPitchedDown() throws {
    // Facing a wall 2 cells ahead: the wall spans from above the horizon to the floor line,
    // and the horizon sits above the image centre (pitched down by 5.7 degrees).
    let m = try arena(wallColumn: 8)
    (m.agentX, m.heading) = (6, 0)
    let cam = m.camera(width: 64, height: 64)
    let focal = 32 / tanf(40 * .pi / 180)
    #expect(abs(cam.horizon - (32 - focal * tanf(5.7 * .pi / 180))) < 1e-3)
    let f = m.render()!
    // The wall's bottom edge: camera 0.45 up, wall 2 - 0.075 cells from the camera.
    let bottom = cam.horizon + 0.45 * focal / (2 - 0.075)
    let top = cam.horizon - (0.75 - 0.45) * focal / (2 - 0.075)
    let column = 32
    func isWall(_ y: Int) -> Bool { f[column, y][0] > 90 && f[column, y][0] >= f[column, y][2] }
    #expect(isWall(Int(bottom) - 1) && isWall(Int(top) + 1))
    #expect(!isWall(Int(top) - 2))
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
    _ = try env.reset()
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
    _ = try env.reset()
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
    _ = try cart.reset()
    cart.state = [0.01, -0.02, 0.03, 0.04]
    for a in [1, 0, 1, 1] { _ = try cart.step(.discrete(a)) }
    for (a, b) in zip(cart.state, [0.01615364, 0.36859581, 0.02261759, -0.50922532]) {
      #expect(abs(a - b) < 1e-7)
    }
    let pend = Pendulum()
    _ = try pend.reset()
    pend.state = [0.5, -0.3]
    var last = 0.0
    for u: Float in [1, -2, 0.3] { last = try pend.step(.continuous([u])).reward }
    for (a, b) in zip(pend.state, [0.55910207, 0.6964571]) { #expect(abs(a - b) < 1e-6) }
    #expect(abs(last - -0.28257713993795286) < 1e-6)
    let acro = Acrobot()
    _ = try acro.reset()
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
      let first = try env.reset(seed: 2)
      var r = try env.step(env.actionSpace.sample(using: &rng0))
      for _ in 0..<15 where !r.isLast { r = try env.step(env.actionSpace.sample(using: &rng0)) }
      let changed = first != r.observation
      #expect(changed, "\(name) frame did not change")
    }
  }
}

@Suite struct WrapperAndRegistryTests {
  @Test func registryBuildsEveryNameAndExplainsUnknownOnes() throws {
    // Built-in names only: other tests in this process register their own, whose environments
    // report the name their author gave them.
    for name in EnvRegistry.builtInNames where !name.contains("<") {
      let env = try EnvRegistry.make(name, seed: 1)
      _ = try env.reset()
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
    let v = try #require(flat.reset().vector)
    #expect(v[0] == 0 && v[1] == 1 && v[2...].filter { $0 == 1 }.count == 1)
    let prev = try PreviousActionObservation(RepeatPrevious(.easy, seed: 3))
    #expect(prev.observationSpace.flatSize == 4 + 4 + 1)
    let r0 = try #require(prev.reset().vector)
    #expect(Array(r0[4...]) == [0, 0, 0, 0, 1])
    let s = try prev.step(.discrete(2))
    let r1 = try #require(s.observation.vector)
    #expect(Array(r1[4...]) == [0, 0, 1, 0, 0])
    let ms = try PreviousActionObservation(MineSweeper(.easy, seed: 4))
    _ = try ms.reset()
    let m1 = try #require(try ms.step(.multiDiscrete([1, 3])).observation.vector)
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
