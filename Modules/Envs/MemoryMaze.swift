#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A native Memory Maze (`memorymaze/9x9` ... `memorymaze/15x15`): the task structure of
/// Pasukonis et al.'s MuJoCo benchmark in a ray-cast grid world. It is a different simulator;
/// scores are not comparable with the original's, and the oracle's mean return is this
/// version's max score.
///
/// - A random room-and-corridor maze of size x size interior cells (walls around), with one
///   coloured object in each of 3 / 4 / 5 / 6 distinct rooms.
/// - Continuous position and heading; actions 0 noop, 1 forward, 2 left, 3 right,
///   4 forward+left, 5 forward+right; 4 Hz control (one step = 0.25 s).
/// - +1 for touching the current target object; a new target is then drawn among the others.
/// - Episodes of 1000 / 2000 / 3000 / 4000 steps, ended by truncation.
/// - Observation: a 64x64x3 first-person view (80 degree field of view) with a 2-pixel border
///   in the target's colour x 0.7.
public final class MemoryMaze: Env {
  /// One maze configuration.
  public struct Configuration: Sendable, Equatable {
    public let size: Int
    public let objectCount: Int
    public let episodeSteps: Int
  }

  /// The four standard configurations.
  public static let configurations: [Configuration] = [
    .init(size: 9, objectCount: 3, episodeSteps: 1000),
    .init(size: 11, objectCount: 4, episodeSteps: 2000),
    .init(size: 13, objectCount: 5, episodeSteps: 3000),
    .init(size: 15, objectCount: 6, episodeSteps: 4000),
  ]

  /// Object colours: red, green, blue, purple, yellow, salmon.
  public static let palette: [(UInt8, UInt8, UInt8)] = [
    (225, 35, 35), (35, 190, 55), (40, 90, 235), (160, 60, 215), (235, 215, 40), (250, 128, 114),
  ]

  // Motion constants (cells, radians, per step).
  public static let forwardSpeed: Float = 0.5
  public static let turnRate: Float = .pi / 6
  public static let agentRadius: Float = 0.25
  public static let touchDistance: Float = 0.55
  public static let objectRadius: Float = 0.25
  static let fieldOfView: Float = 80 * .pi / 180

  public let configuration: Configuration
  public let resolution: Int
  public var name: String { "memorymaze/\(configuration.size)x\(configuration.size)" }
  public let observationSpace: Space
  public let actionSpace = Space.discrete(6)

  var rng: SeededGenerator
  var episode = EpisodeGuard()
  var steps = 0

  /// Grid side including the outer walls.
  public let gridSize: Int
  /// Wall cells, row-major [y * gridSize + x] (hidden state for oracles, probes and maps).
  public private(set) var walls: [Bool] = []
  /// Rooms as inclusive cell rectangles (x0, y0, x1, y1).
  public private(set) var rooms: [(x0: Int, y0: Int, x1: Int, y1: Int)] = []
  /// Object centres (cell units) and palette indices.
  public private(set) var objects: [(x: Float, y: Float, colour: Int)] = []
  /// Index into ``objects`` of the current target.
  public private(set) var target = 0
  /// Agent position (cell units) and heading (radians; 0 faces +x, y grows downwards).
  public internal(set) var agentX: Float = 0
  public internal(set) var agentY: Float = 0
  public internal(set) var heading: Float = 0
  /// Targets reached this episode.
  public private(set) var score = 0

  // Per-wall-cell tint for orientation cues.
  var wallTint: [Float] = []
  var zBuffer: [Float]

  public init(configuration: Configuration, seed: UInt64 = 0, resolution: Int = 64) {
    self.configuration = configuration
    self.resolution = resolution
    gridSize = configuration.size + 2
    observationSpace = .image(height: resolution, width: resolution, channels: 3)
    rng = SeededGenerator(seed: seed)
    zBuffer = [Float](repeating: 0, count: resolution)
  }

  /// A maze of `size` (9, 11, 13 or 15).
  public convenience init(size: Int, seed: UInt64 = 0) throws {
    guard let c = MemoryMaze.configurations.first(where: { $0.size == size }) else {
      throw EnvError.invalidConfiguration(
        "memorymaze size \(size) is not one of 9, 11, 13, 15 (names memorymaze/9x9 ... memorymaze/15x15)")
    }
    self.init(configuration: c, seed: seed)
  }

  @inline(__always) func isWall(_ x: Int, _ y: Int) -> Bool {
    x < 0 || y < 0 || x >= gridSize || y >= gridSize || walls[y * gridSize + x]
  }

  // MARK: Generation

  func generate() {
    let s = gridSize
    let nodes = (configuration.size + 1) / 2  // lattice nodes per axis at odd coordinates
    while true {
      walls = [Bool](repeating: true, count: s * s)
      rooms = []
      var roomOfNode = [Int](repeating: -1, count: nodes * nodes)
      var attempts = 0
      while rooms.count < configuration.objectCount && attempts < 400 {
        attempts += 1
        let w = 2 + rng.nextInt(below: 2)  // 2 or 3 nodes: 3 or 5 cells
        let h = 2 + rng.nextInt(below: 2)
        guard w <= nodes && h <= nodes else { continue }
        let a0 = rng.nextInt(below: nodes - w + 1)
        let b0 = rng.nextInt(below: nodes - h + 1)
        var free = true
        for b in b0..<(b0 + h) {
          for a in a0..<(a0 + w) where roomOfNode[b * nodes + a] != -1 { free = false }
        }
        guard free else { continue }
        for b in b0..<(b0 + h) { for a in a0..<(a0 + w) { roomOfNode[b * nodes + a] = rooms.count } }
        let r = (x0: 2 * a0 + 1, y0: 2 * b0 + 1, x1: 2 * (a0 + w - 1) + 1, y1: 2 * (b0 + h - 1) + 1)
        rooms.append(r)
        for y in r.y0...r.y1 { for x in r.x0...r.x1 { walls[y * s + x] = false } }
      }
      guard rooms.count == configuration.objectCount else { continue }
      // Randomised depth-first spanning tree over the lattice; a room counts as one node.
      var visited = [Bool](repeating: false, count: nodes * nodes)
      var stack: [Int] = []
      func visit(_ n: Int) {
        let members =
          roomOfNode[n] == -1
          ? [n] : (0..<(nodes * nodes)).filter { roomOfNode[$0] == roomOfNode[n] }
        var order = members
        rng.shuffle(&order)
        for m in order {
          visited[m] = true
          walls[(2 * (m / nodes) + 1) * s + 2 * (m % nodes) + 1] = false
          stack.append(m)
        }
      }
      visit(rng.nextInt(below: nodes * nodes))
      while let top = stack.last {
        let (a, b) = (top % nodes, top / nodes)
        var options: [(Int, Int, Int)] = []
        for (da, db) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
          let (na, nb) = (a + da, b + db)
          if na >= 0 && na < nodes && nb >= 0 && nb < nodes && !visited[nb * nodes + na] {
            options.append((na, nb, 0))
          }
        }
        if options.isEmpty {
          stack.removeLast()
          continue
        }
        let (na, nb, _) = options[rng.nextInt(below: options.count)]
        walls[(2 * b + 1 + (nb - b)) * s + 2 * a + 1 + (na - a)] = false
        visit(nb * nodes + na)
      }
      // A few extra openings make loops, so several routes exist.
      let extra = configuration.size / 3
      var opened = 0
      var tries = 0
      while opened < extra && tries < 200 {
        tries += 1
        let x = 1 + rng.nextInt(below: configuration.size)
        let y = 1 + rng.nextInt(below: configuration.size)
        guard walls[y * s + x], (x + y) % 2 == 1 else { continue }
        let horizontal = !walls[y * s + x - 1] && !walls[y * s + x + 1]
        let vertical = !walls[(y - 1) * s + x] && !walls[(y + 1) * s + x]
        if horizontal != vertical {
          walls[y * s + x] = false
          opened += 1
        }
      }
      break
    }
    let tints: [Float] = [1.0, 0.86, 0.72, 0.93, 0.79]
    wallTint = (0..<(gridSize * gridSize)).map { _ in tints[rng.nextInt(below: tints.count)] }
  }

  // MARK: Episode

  public func reset(seed: UInt64?) -> Observation {
    if let seed { rng = SeededGenerator(seed: seed) }
    generate()
    var colours = Array(0..<MemoryMaze.palette.count)
    rng.shuffle(&colours)
    objects = rooms.enumerated().map { i, r in
      let cx = r.x0 + 2 * rng.nextInt(below: (r.x1 - r.x0) / 2 + 1)
      let cy = r.y0 + 2 * rng.nextInt(below: (r.y1 - r.y0) / 2 + 1)
      return (Float(cx) + 0.5, Float(cy) + 0.5, colours[i])
    }
    target = rng.nextInt(below: objects.count)
    // Start on a random floor cell away from every object.
    var floor: [Int] = []
    for y in 0..<gridSize {
      for x in 0..<gridSize where !walls[y * gridSize + x] {
        let far = objects.allSatisfy {
          hypotf($0.x - Float(x) - 0.5, $0.y - Float(y) - 0.5) > MemoryMaze.touchDistance + 0.5
        }
        if far { floor.append(y * gridSize + x) }
      }
    }
    let start = floor[rng.nextInt(below: floor.count)]
    agentX = Float(start % gridSize) + 0.5
    agentY = Float(start / gridSize) + 0.5
    heading = Float(rng.nextDouble() * 2 * .pi)
    steps = 0
    score = 0
    episode.begin()
    return .image(render(firstPerson: true))
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    if a == 2 || a == 4 { heading -= MemoryMaze.turnRate }
    if a == 3 || a == 5 { heading += MemoryMaze.turnRate }
    heading = remainderf(heading, 2 * .pi)
    if a == 1 || a == 4 || a == 5 { move(distance: MemoryMaze.forwardSpeed) }
    var reward = 0.0
    let t = objects[target]
    if hypotf(t.x - agentX, t.y - agentY) < MemoryMaze.touchDistance {
      reward = 1
      score += 1
      let next = rng.nextInt(below: objects.count - 1)
      target = next >= target ? next + 1 : next
    }
    steps += 1
    let truncated = steps >= configuration.episodeSteps
    episode.end(if: truncated)
    return StepResult(
      observation: .image(render(firstPerson: true)), reward: reward, terminated: false,
      truncated: truncated)
  }

  /// Whether a disc of `radius` at (x, y) overlaps a wall cell.
  public func collides(x: Float, y: Float, radius: Float = MemoryMaze.agentRadius) -> Bool {
    let x0 = Int((x - radius).rounded(.down))
    let x1 = Int((x + radius).rounded(.down))
    let y0 = Int((y - radius).rounded(.down))
    let y1 = Int((y + radius).rounded(.down))
    for cy in y0...y1 {
      for cx in x0...x1 where isWall(cx, cy) {
        let nx = min(max(x, Float(cx)), Float(cx + 1))
        let ny = min(max(y, Float(cy)), Float(cy + 1))
        if (nx - x) * (nx - x) + (ny - y) * (ny - y) < radius * radius { return true }
      }
    }
    return false
  }

  /// Moves forward in sub-steps, sliding along walls axis by axis.
  func move(distance: Float) {
    let n = 8
    let dx = cosf(heading) * distance / Float(n)
    let dy = sinf(heading) * distance / Float(n)
    for _ in 0..<n {
      if !collides(x: agentX + dx, y: agentY) { agentX += dx }
      if !collides(x: agentX, y: agentY + dy) { agentY += dy }
    }
  }

  // MARK: Rendering

  /// The current first-person view.
  public func render() -> Frame? { render(firstPerson: true) }

  func render(firstPerson: Bool) -> Frame {
    let w = resolution
    let h = resolution
    var pixels = [UInt8](repeating: 0, count: w * h * 3)
    pixels.withUnsafeMutableBufferPointer { buf in
      zBuffer.withUnsafeMutableBufferPointer { z in
        rayCast(into: buf.baseAddress!, zBuffer: z.baseAddress!, width: w, height: h)
        drawObjects(into: buf.baseAddress!, zBuffer: z.baseAddress!, width: w, height: h)
      }
      let c = MemoryMaze.palette[objects[target].colour]
      let border = (UInt8(Float(c.0) * 0.7), UInt8(Float(c.1) * 0.7), UInt8(Float(c.2) * 0.7))
      for y in 0..<h {
        for x in 0..<w where x < 2 || y < 2 || x >= w - 2 || y >= h - 2 {
          let o = (y * w + x) * 3
          buf[o] = border.0
          buf[o + 1] = border.1
          buf[o + 2] = border.2
        }
      }
    }
    return Frame(width: w, height: h, channels: 3, pixels: pixels)
  }

  /// The pinhole camera shared by the wall and object passes: half-width of the image plane at
  /// unit distance, focal length in pixels, and the viewing direction.
  func camera(width w: Int) -> (planeLength: Float, focal: Float, dirX: Float, dirY: Float) {
    let planeLength = tanf(MemoryMaze.fieldOfView / 2)
    return (planeLength, Float(w) / 2 / planeLength, cosf(heading), sinf(heading))
  }

  func rayCast(
    into p: UnsafeMutablePointer<UInt8>, zBuffer: UnsafeMutablePointer<Float>, width w: Int,
    height h: Int
  ) {
    let (planeLength, focal, dirX, dirY) = camera(width: w)
    let planeX = -dirY * planeLength
    let planeY = dirX * planeLength
    let horizon = Float(h) / 2
    let camHeight: Float = 0.5
    let s = gridSize
    walls.withUnsafeBufferPointer { wall in
      wallTint.withUnsafeBufferPointer { tint in
        for col in 0..<w {
          let camX = 2 * (Float(col) + 0.5) / Float(w) - 1
          let rayX = dirX + planeX * camX
          let rayY = dirY + planeY * camX
          var mapX = Int(agentX.rounded(.down))
          var mapY = Int(agentY.rounded(.down))
          let deltaX = rayX == 0 ? Float.greatestFiniteMagnitude : abs(1 / rayX)
          let deltaY = rayY == 0 ? Float.greatestFiniteMagnitude : abs(1 / rayY)
          let stepX = rayX < 0 ? -1 : 1
          let stepY = rayY < 0 ? -1 : 1
          var sideX = rayX < 0 ? (agentX - Float(mapX)) * deltaX : (Float(mapX + 1) - agentX) * deltaX
          var sideY = rayY < 0 ? (agentY - Float(mapY)) * deltaY : (Float(mapY + 1) - agentY) * deltaY
          var side = 0
          var guardSteps = 0
          while guardSteps < 4 * s {
            guardSteps += 1
            if sideX < sideY {
              sideX += deltaX
              mapX += stepX
              side = 0
            } else {
              sideY += deltaY
              mapY += stepY
              side = 1
            }
            if mapX < 0 || mapY < 0 || mapX >= s || mapY >= s || wall[mapY * s + mapX] { break }
          }
          let dist = max(side == 0 ? sideX - deltaX : sideY - deltaY, 1e-3)
          zBuffer[col] = dist
          let top = horizon - (1 - camHeight) * focal / dist
          let bottom = horizon + camHeight * focal / dist
          let inside = mapX >= 0 && mapY >= 0 && mapX < s && mapY < s
          let t = inside ? tint[mapY * s + mapX] : 1
          let shade = t * (side == 0 ? 1 : 0.78) / (1 + 0.09 * dist)
          let wr = UInt8(min(255, 200 * shade))
          let wg = UInt8(min(255, 190 * shade))
          let wb = UInt8(min(255, 170 * shade))
          for y in 0..<h {
            let o = (y * w + col) * 3
            let fy = Float(y) + 0.5
            if fy < top {
              // Ceiling: a soft gradient towards the horizon.
              let g = (horizon - fy) / horizon
              p[o] = UInt8(60 + 60 * g)
              p[o + 1] = UInt8(70 + 70 * g)
              p[o + 2] = UInt8(90 + 90 * g)
            } else if fy < bottom {
              p[o] = wr
              p[o + 1] = wg
              p[o + 2] = wb
            } else {
              // Floor casting: a checker of cells gives motion cues.
              let rowDist = camHeight * focal / max(fy - horizon, 1e-3)
              let fx = agentX + rowDist * rayX
              let fz = agentY + rowDist * rayY
              let checker = (Int(fx.rounded(.down)) + Int(fz.rounded(.down))) & 1
              let fade = 1 / (1 + 0.12 * rowDist)
              let base: Float = checker == 0 ? 120 : 95
              p[o] = UInt8(base * fade)
              p[o + 1] = UInt8((base - 15) * fade)
              p[o + 2] = UInt8((base - 30) * fade)
            }
          }
        }
      }
    }
  }

  func drawObjects(
    into p: UnsafeMutablePointer<UInt8>, zBuffer: UnsafeMutablePointer<Float>, width w: Int,
    height h: Int
  ) {
    let (_, focal, dirX, dirY) = camera(width: w)
    // Farthest first so nearer objects paint over farther ones.
    let order = objects.indices.sorted {
      hypotf(objects[$0].x - agentX, objects[$0].y - agentY)
        > hypotf(objects[$1].x - agentX, objects[$1].y - agentY)
    }
    for i in order {
      let o = objects[i]
      let rx = o.x - agentX
      let ry = o.y - agentY
      let depth = rx * dirX + ry * dirY
      guard depth > 0.1 else { continue }
      let lateral = -rx * dirY + ry * dirX
      let cx = Float(w) / 2 + lateral * focal / depth
      let radius = MemoryMaze.objectRadius * focal / depth
      let cy = Float(h) / 2 + (0.5 - MemoryMaze.objectRadius) * focal / depth
      let c = MemoryMaze.palette[o.colour]
      let x0 = max(0, Int((cx - radius).rounded(.down)))
      let x1 = min(w - 1, Int((cx + radius).rounded(.up)))
      let y0 = max(0, Int((cy - radius).rounded(.down)))
      let y1 = min(h - 1, Int((cy + radius).rounded(.up)))
      guard x0 <= x1 && y0 <= y1 else { continue }
      for x in x0...x1 where zBuffer[x] > depth {
        for y in y0...y1 {
          let dx = (Float(x) + 0.5 - cx) / radius
          let dy = (Float(y) + 0.5 - cy) / radius
          let r2 = dx * dx + dy * dy
          guard r2 <= 1 else { continue }
          // Simple lighting from the upper left.
          let light = (0.75 + 0.25 * (-dx - dy) / 1.5) / (1 + 0.05 * depth)
          let off = (y * w + x) * 3
          p[off] = UInt8(min(255, max(0, Float(c.0) * light)))
          p[off + 1] = UInt8(min(255, max(0, Float(c.1) * light)))
          p[off + 2] = UInt8(min(255, max(0, Float(c.2) * light)))
        }
      }
    }
  }

  /// A top-down map: walls, floor, objects (the target ringed in white), the agent and its
  /// heading. `cell` pixels per cell.
  public func renderTopDown(cell: Int = 4) -> Frame {
    let n = gridSize * cell
    var f = Frame(width: n, height: n)
    func put(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
      guard x >= 0 && y >= 0 && x < n && y < n else { return }
      let o = (y * n + x) * 3
      f.pixels[o] = c.0
      f.pixels[o + 1] = c.1
      f.pixels[o + 2] = c.2
    }
    for y in 0..<n {
      for x in 0..<n {
        put(x, y, walls[(y / cell) * gridSize + x / cell] ? (45, 45, 55) : (190, 185, 170))
      }
    }
    let scale = Float(cell)
    func disc(_ cx: Float, _ cy: Float, _ r: Float, _ c: (UInt8, UInt8, UInt8)) {
      let x0 = Int((cx - r) * scale)
      let x1 = Int((cx + r) * scale)
      let y0 = Int((cy - r) * scale)
      let y1 = Int((cy + r) * scale)
      for y in y0...y1 {
        for x in x0...x1 {
          let dx = (Float(x) + 0.5) / scale - cx
          let dy = (Float(y) + 0.5) / scale - cy
          if dx * dx + dy * dy <= r * r { put(x, y, c) }
        }
      }
    }
    for (i, o) in objects.enumerated() {
      if i == target { disc(o.x, o.y, 0.45, (255, 255, 255)) }
      disc(o.x, o.y, 0.32, MemoryMaze.palette[o.colour])
    }
    disc(agentX, agentY, 0.25, (20, 20, 20))
    for k in 0..<(2 * cell) {
      let t = Float(k) / scale
      put(Int((agentX + cosf(heading) * t) * scale), Int((agentY + sinf(heading) * t) * scale), (20, 20, 20))
    }
    return f
  }

  // MARK: Oracle

  /// The action of a policy that knows the maze and walks shortest paths to the target.
  public func oracleAction() -> Action {
    let s = gridSize
    let start = Int(agentY.rounded(.down)) * s + Int(agentX.rounded(.down))
    let t = objects[target]
    let goal = Int(t.y.rounded(.down)) * s + Int(t.x.rounded(.down))
    // Breadth-first search over floor cells.
    var previous = [Int](repeating: -1, count: s * s)
    var queue = [start]
    previous[start] = start
    var head = 0
    while head < queue.count {
      let c = queue[head]
      head += 1
      if c == goal { break }
      for d in [1, -1, s, -s] {
        let n = c + d
        if n >= 0 && n < s * s && !walls[n] && previous[n] == -1 {
          previous[n] = c
          queue.append(n)
        }
      }
    }
    var path: [Int] = []
    if previous[goal] != -1 {
      var c = goal
      while c != start {
        path.append(c)
        c = previous[c]
      }
      path.reverse()
    }
    // Aim at the farthest point along the path that is reachable in a straight line.
    var aimX = t.x
    var aimY = t.y
    if !path.isEmpty {
      let points = path.map { (Float($0 % s) + 0.5, Float($0 / s) + 0.5) } + [(t.x, t.y)]
      aimX = points[0].0
      aimY = points[0].1
      for p in points.prefix(4) where clearLine(to: p.0, p.1) {
        aimX = p.0
        aimY = p.1
      }
    }
    let desired = atan2f(aimY - agentY, aimX - agentX)
    let diff = remainderf(desired - heading, 2 * .pi)
    let step = MemoryMaze.turnRate
    if abs(diff) < step / 2 { return .discrete(1) }
    if abs(diff) < 0.9 { return .discrete(diff < 0 ? 4 : 5) }
    return .discrete(diff < 0 ? 2 : 3)
  }

  func clearLine(to x: Float, _ y: Float) -> Bool {
    let d = hypotf(x - agentX, y - agentY)
    let n = max(1, Int(d / 0.1))
    for i in 1...n {
      let f = Float(i) / Float(n)
      if collides(x: agentX + (x - agentX) * f, y: agentY + (y - agentY) * f, radius: MemoryMaze.agentRadius + 0.02) {
        return false
      }
    }
    return true
  }
}
