#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A native Memory Maze (`memorymaze/9x9` ... `memorymaze/15x15`) that plays like Pasukonis et
/// al.'s MuJoCo task: the walker, walls, touch rule, camera and layouts follow the measurements
/// of the real memory-maze 1.0.3 (`docs/environments.md`), so scores are comparable
/// with the published ones. Rendering is a ray caster, not MuJoCo's renderer.
///
/// - A random room-and-corridor maze of size x size interior cells (walls around), with rooms
///   of 3 or 5 cells a side whose count per size follows labmaze's statistics; one coloured
///   object in each of 3 / 4 / 5 / 6 distinct rooms (red, green, blue, purple, yellow, salmon,
///   in that order; `-6CL` variants draw the colours at random from the six).
/// - The walker (``Walker``): forward speed and turn rate with the measured lags, a 0.1-cell
///   body that walls stop without letting it slide, 50 physics substeps per 0.25 s step.
///   Actions 0 noop, 1 forward, 2 left, 3 right, 4 forward+left, 5 forward+right.
/// - +1 when the centre comes within 0.387 cells of the current target's centre at any
///   substep (targets are passable); the next target is drawn uniformly among the others.
/// - Start at the centre of a room's spawn cell with a uniform heading.
/// - Episodes of 1000 / 2000 / 3000 / 4000 steps, ended by truncation.
/// - Observation: a 64x64x3 first-person view (80 degree field of view, camera 0.45 cells up,
///   pitched 5.7 degrees down) with a 2-pixel border in the target's colour as the real task
///   draws it (``borderColours``).
public final class MemoryMaze: Env {
  /// One maze configuration.
  public struct Configuration: Sendable, Equatable {
    public let size: Int
    public let objectCount: Int
    public let episodeSteps: Int
    /// Object colours drawn at random from the six (the `-6CL` variants) instead of the first n.
    public var randomColours = false

    /// The environment name, `memorymaze/9x9` or `memorymaze/9x9-6CL`.
    public var name: String { "memorymaze/\(size)x\(size)\(randomColours ? "-6CL" : "")" }

    /// Room placement that reproduces labmaze's room statistics for this size (section 7 of
    /// `docs/environments.md`): placement attempts, the room cap, and the chance that a
    /// room side is 5 cells rather than 3. Fitted by simulation against the 500 real mazes.
    var roomPlacement: (attempts: Int, maxRooms: Int, fiveCellSide: Double) {
      switch size {
      case 9: return (150, 6, 0.28)
      case 11: return (200, 6, 0.26)
      case 13: return (300, 6, 0.26)
      default: return (300, 9, 0)
      }
    }
  }

  /// Chance that a wall between two corridor or room cells is opened to make a loop, fitted so
  /// that, with dead ends filled, the mean shortest paths between targets and the floor
  /// fraction come close to the real layouts' (`docs/environments.md`; checked by
  /// `MemoryMazeTests.layoutStatisticsMatchTheRealTask`).
  static let extraConnection = 0.45

  /// The four standard configurations.
  public static let configurations: [Configuration] = [
    .init(size: 9, objectCount: 3, episodeSteps: 1000),
    .init(size: 11, objectCount: 4, episodeSteps: 2000),
    .init(size: 13, objectCount: 5, episodeSteps: 3000),
    .init(size: 15, objectCount: 6, episodeSteps: 4000),
  ]

  /// Object colours as rendered: red, green, blue, purple, yellow, salmon.
  public static let palette: [(UInt8, UInt8, UInt8)] = [
    (196, 43, 34), (114, 196, 101), (44, 161, 251), (107, 121, 230), (254, 223, 67), (254, 147, 123),
  ]
  /// The 2-pixel border for each colour, as the real task draws it at 64x64.
  public static let borderColours: [(UInt8, UInt8, UInt8)] = [
    (137, 30, 24), (80, 137, 71), (31, 113, 176), (75, 85, 161), (178, 156, 47), (178, 103, 86),
  ]

  /// The walker's physics, in cells (1 cell = 2 m) and seconds, fitted to the real task's
  /// measurements (`docs/environments.md`, Memory Maze).
  public enum Walker {
    /// One control step and its physics substeps (the real task: 50 substeps of 5 ms).
    public static let controlPeriod: Float = 0.25
    public static let substeps = 50
    /// Terminal forward speed: 0.4995 m per step.
    public static let topSpeed: Float = 0.999
    /// Forward motion is a two-stage lag: the drive follows the command with the short time
    /// constant, the speed follows the drive with the long one. From rest this gives 0.111,
    /// 0.219, 0.243, 0.248 cells per step; released at full speed it coasts 0.138, 0.031, 0.007.
    public static let driveTimeConstant: Float = 0.017
    public static let speedTimeConstant: Float = 0.166
    /// Turning in place or while moving: 18.39 degrees per step at steady state, reached with
    /// `turnUpTimeConstant` (14.1 degrees on the first step) and lost with
    /// `turnDownTimeConstant` (3 degrees of coast after the key is released). Radius at full
    /// speed: topSpeed / turnRate = 0.78 cells.
    public static let turnRate: Float = 18.39 * .pi / 180 / 0.25
    public static let turnUpTimeConstant: Float = 0.062
    public static let turnDownTimeConstant: Float = 0.044
    /// Distance from a wall face at which the body rests when pushed against it (0.205 m; the
    /// shell sphere has radius 0.1 cells).
    public static let bodyRadius: Float = 0.1025
    /// While pressed against a wall, friction holds the body: it moves along the wall at this
    /// fraction of the drive's tangential speed (real: 1-11 % of full speed along the wall).
    public static let wallSlide: Float = 0.05
    /// While pressed against a wall, the heading turns toward the wall normal at this rate
    /// times sin^2 of the angle between heading and normal (real: about 1, 2 and 5 degrees
    /// per step at 20, 45 and 70 degrees).
    public static let wallTorque: Float = 0.349
    /// Reward when the centre comes within this horizontal distance of the target's centre:
    /// sqrt(0.8^2 - 0.2^2) m, the shell overlapping the ground-level target sphere.
    public static let touchDistance: Float = 0.3873

    /// The substep length and the per-substep factors of the lags, 1 - exp(-dt / tau), computed once.
    enum Gains {
      static let dt = controlPeriod / Float(substeps)
      static let drive = 1 - expf(-dt / driveTimeConstant)
      static let speed = 1 - expf(-dt / speedTimeConstant)
      static let turnUp = 1 - expf(-dt / turnUpTimeConstant)
      static let turnDown = 1 - expf(-dt / turnDownTimeConstant)
    }
  }

  /// Camera and scene geometry (cells), from the real task's MJCF.
  enum Scene {
    static let fieldOfView: Float = 80 * .pi / 180
    static let cameraHeight: Float = 0.45
    static let cameraForward: Float = 0.075
    static let cameraPitch: Float = 5.7 * .pi / 180
    static let wallHeight: Float = 0.75
    /// Target spheres of radius 0.3 cells centred on the floor: domes 0.3 cells high.
    static let targetRadius: Float = 0.3
  }

  public let configuration: Configuration
  public let resolution: Int
  public var name: String { configuration.name }
  public let observationSpace: Space
  public let actionSpace = Space.discrete(6)
  public var maxEpisodeSteps: Int? { configuration.episodeSteps }

  var rng: SeededGenerator
  var episode = EpisodeGuard()
  var steps = 0

  /// Grid side including the outer walls.
  public let gridSize: Int
  /// Wall cells, row-major [y * gridSize + x] (hidden state for oracles, probes and maps).
  public internal(set) var walls: [Bool] = []
  /// Rooms as inclusive cell rectangles (x0, y0, x1, y1); some may hold no object.
  public private(set) var rooms: [(x0: Int, y0: Int, x1: Int, y1: Int)] = []
  /// Each room's spawn cell and object cell (distinct), row-major indices.
  public private(set) var roomSlots: [(spawn: Int, object: Int)] = []
  /// Object centres (cell units), palette indices, and the room each stands in.
  public internal(set) var objects: [(x: Float, y: Float, colour: Int)] = []
  public private(set) var objectRooms: [Int] = []
  /// Index into ``objects`` of the current target.
  public internal(set) var target = 0
  /// Agent position (cell units) and heading (radians; 0 faces +x, y grows downwards).
  public internal(set) var agentX: Float = 0
  public internal(set) var agentY: Float = 0
  public internal(set) var heading: Float = 0
  /// The walker's dynamic state: forward speed and drive (cells/s), turn rate (rad/s).
  public internal(set) var speed: Float = 0
  public internal(set) var drive: Float = 0
  public internal(set) var turnSpeed: Float = 0
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

  /// A maze of `size` (9, 11, 13 or 15); `randomColours` gives the `-6CL` variant.
  public convenience init(size: Int, randomColours: Bool = false, seed: UInt64 = 0) throws {
    guard var c = MemoryMaze.configurations.first(where: { $0.size == size }) else {
      throw EnvError.invalidConfiguration(
        "memorymaze size \(size) is not one of 9, 11, 13, 15 (names memorymaze/9x9 ... memorymaze/15x15)")
    }
    c.randomColours = randomColours
    self.init(configuration: c, seed: seed)
  }

  @inline(__always) func isWall(_ x: Int, _ y: Int) -> Bool {
    x < 0 || y < 0 || x >= gridSize || y >= gridSize || walls[y * gridSize + x]
  }

  // MARK: Generation

  /// Places rooms of 3 or 5 cells a side at odd coordinates (labmaze's lattice), then joins
  /// every room and corridor cell with a randomised spanning tree plus a few loops. Mazes with
  /// fewer rooms than objects are drawn again.
  func generate() {
    let s = gridSize
    let nodes = (configuration.size + 1) / 2  // lattice nodes per axis at odd coordinates
    let placement = configuration.roomPlacement
    while true {
      walls = [Bool](repeating: true, count: s * s)
      rooms = []
      var roomOfNode = [Int](repeating: -1, count: nodes * nodes)
      for _ in 0..<placement.attempts where rooms.count < placement.maxRooms {
        let w = rng.nextDouble() < placement.fiveCellSide ? 3 : 2  // nodes: 3 or 5 cells
        let h = rng.nextDouble() < placement.fiveCellSide ? 3 : 2
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
      guard rooms.count >= configuration.objectCount else { continue }
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
        var options: [(Int, Int)] = []
        for (da, db) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
          let (na, nb) = (a + da, b + db)
          if na >= 0 && na < nodes && nb >= 0 && nb < nodes && !visited[nb * nodes + na] {
            options.append((na, nb))
          }
        }
        if options.isEmpty {
          stack.removeLast()
          continue
        }
        let (na, nb) = options[rng.nextInt(below: options.count)]
        walls[(2 * b + 1 + (nb - b)) * s + 2 * a + 1 + (na - a)] = false
        visit(nb * nodes + na)
      }
      // Extra openings make loops, so several routes exist; then dead-end corridors are
      // filled in (labmaze simplifies its mazes the same way), leaving rooms joined by loops.
      for y in 1...configuration.size {
        for x in 1...configuration.size where walls[y * s + x] && (x + y) % 2 == 1 {
          let horizontal = !walls[y * s + x - 1] && !walls[y * s + x + 1]
          let vertical = !walls[(y - 1) * s + x] && !walls[(y + 1) * s + x]
          if horizontal != vertical && rng.nextDouble() < MemoryMaze.extraConnection { walls[y * s + x] = false }
        }
      }
      do {
        var inRoom = [Bool](repeating: false, count: s * s)
        for r in rooms { for y in r.y0...r.y1 { for x in r.x0...r.x1 { inRoom[y * s + x] = true } } }
        var changed = true
        while changed {
          changed = false
          for c in 0..<(s * s) where !walls[c] && !inRoom[c] {
            let open = [1, -1, s, -s].filter { !walls[c + $0] }.count
            if open <= 1 {
              walls[c] = true
              changed = true
            }
          }
        }
      }
      break
    }
    // One spawn cell and one object cell per room, distinct.
    roomSlots = rooms.map { r in
      let w = r.x1 - r.x0 + 1
      let cells = w * (r.y1 - r.y0 + 1)
      let a = rng.nextInt(below: cells)
      var b = rng.nextInt(below: cells - 1)
      if b >= a { b += 1 }
      func index(_ k: Int) -> Int { (r.y0 + k / w) * s + r.x0 + k % w }
      return (index(a), index(b))
    }
    let tints: [Float] = [1.0, 0.86, 0.72, 0.93, 0.79]
    wallTint = (0..<(gridSize * gridSize)).map { _ in tints[rng.nextInt(below: tints.count)] }
  }

  // MARK: Episode

  public func reset(seed: UInt64?) -> Observation {
    if let seed { rng = SeededGenerator(seed: seed) }
    generate()
    let n = configuration.objectCount
    var roomOrder = Array(rooms.indices)
    rng.shuffle(&roomOrder)
    objectRooms = Array(roomOrder.prefix(n))
    var colours = Array(0..<n)
    if configuration.randomColours {
      var all = Array(MemoryMaze.palette.indices)
      rng.shuffle(&all)
      colours = Array(all.prefix(n))
    }
    let s = gridSize
    objects = objectRooms.enumerated().map { i, room in
      let cell = roomSlots[room].object
      return (Float(cell % s) + 0.5, Float(cell / s) + 0.5, colours[i])
    }
    target = rng.nextInt(below: n)
    let spawn = roomSlots[rng.nextInt(below: rooms.count)].spawn
    agentX = Float(spawn % s) + 0.5
    agentY = Float(spawn / s) + 0.5
    heading = Float((rng.nextDouble() * 2 - 1) * .pi)
    speed = 0
    drive = 0
    turnSpeed = 0
    steps = 0
    score = 0
    episode.begin()
    return .image(render(firstPerson: true))
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    let forward = a == 1 || a == 4 || a == 5
    let turn: Float = (a == 2 || a == 4) ? -1 : (a == 3 || a == 5) ? 1 : 0
    var reward = 0.0
    for _ in 0..<Walker.substeps {
      advance(forward: forward, turn: turn)
      // The touch is checked every substep, so a fast pass through a target counts.
      let t = objects[target]
      if hypotf(t.x - agentX, t.y - agentY) < Walker.touchDistance {
        reward += 1
        score += 1
        let next = rng.nextInt(below: objects.count - 1)
        target = next >= target ? next + 1 : next
      }
    }
    heading = remainderf(heading, 2 * .pi)
    steps += 1
    let truncated = steps >= configuration.episodeSteps
    episode.end(if: truncated)
    return StepResult(
      observation: .image(render(firstPerson: true)), reward: reward, terminated: false,
      truncated: truncated)
  }

  /// One physics substep of the walker (``Walker``).
  func advance(forward: Bool, turn: Float) {
    let dt = Walker.Gains.dt
    drive += ((forward ? Walker.topSpeed : 0) - drive) * Walker.Gains.drive
    speed += (drive - speed) * Walker.Gains.speed
    let wanted = turn * Walker.turnRate
    let turning = abs(wanted) > abs(turnSpeed) || wanted * turnSpeed < 0
    turnSpeed += (wanted - turnSpeed) * (turning ? Walker.Gains.turnUp : Walker.Gains.turnDown)
    heading += turnSpeed * dt
    let ux = cosf(heading)
    let uy = sinf(heading)
    var dx = speed * dt * ux
    var dy = speed * dt * uy
    let contact = wallNormal(x: agentX + dx, y: agentY + dy, within: Walker.bodyRadius + 0.002)
    let pressing = contact.map { (drive * ux * $0.x + drive * uy * $0.y) < -1e-3 } ?? false
    if let n = contact, pressing {
      // Pressed against the wall: friction holds the body; it creeps along the wall at a small
      // fraction of the drive, and the heading turns toward the wall normal.
      let ix = drive * dt * ux
      let iy = drive * dt * uy
      let into = ix * n.x + iy * n.y
      dx = (ix - into * n.x) * Walker.wallSlide
      dy = (iy - into * n.y) * Walker.wallSlide
      let sine = ux * (-n.y) - uy * (-n.x)  // signed sin of the angle from heading to -normal
      heading += Walker.wallTorque * sine * abs(sine) * dt
    }
    let (x0, y0) = (agentX, agentY)
    agentX += dx
    agentY += dy
    resolvePenetration()
    if contact != nil {
      // The speed is what the body actually does along its heading.
      speed = max(0, ((agentX - x0) * ux + (agentY - y0) * uy) / dt)
    }
  }

  /// Calls `body` with the point of each wall cell nearest to (x, y) and its distance, for
  /// every wall cell closer than `radius` (the walker's collision queries share this).
  @inline(__always)
  func forEachWallPoint(near x: Float, _ y: Float, within radius: Float, _ body: (Float, Float, Float) -> Void) {
    for cy in Int((y - radius).rounded(.down))...Int((y + radius).rounded(.down)) {
      for cx in Int((x - radius).rounded(.down))...Int((x + radius).rounded(.down)) where isWall(cx, cy) {
        let px = min(max(x, Float(cx)), Float(cx + 1))
        let py = min(max(y, Float(cy)), Float(cy + 1))
        let d = hypotf(x - px, y - py)
        if d < radius { body(px, py, d) }
      }
    }
  }

  /// The unit normal (pointing out of the walls) of the wall cells within `radius` of (x, y),
  /// summed over every such cell, or nil when there is none.
  func wallNormal(x: Float, y: Float, within radius: Float) -> (x: Float, y: Float)? {
    var nx: Float = 0
    var ny: Float = 0
    forEachWallPoint(near: x, y, within: radius) { px, py, d in
      guard d > 0 else { return }
      nx += (x - px) / d
      ny += (y - py) / d
    }
    let l = hypotf(nx, ny)
    return l > 0 ? (nx / l, ny / l) : nil
  }

  /// Pushes the body out of every wall cell it overlaps, to ``Walker/bodyRadius`` from the face.
  func resolvePenetration() {
    let r = Walker.bodyRadius
    for _ in 0..<2 {
      forEachWallPoint(near: agentX, agentY, within: r) { px, py, d in
        guard d > 1e-6 else { return }
        agentX = px + (agentX - px) / d * r
        agentY = py + (agentY - py) / d * r
      }
    }
  }

  /// Whether a disc of `radius` at (x, y) overlaps a wall cell (by more than 1e-4 cells).
  public func collides(x: Float, y: Float, radius: Float = MemoryMaze.Walker.bodyRadius) -> Bool {
    var hit = false
    forEachWallPoint(near: x, y, within: radius - 1e-4) { _, _, _ in hit = true }
    return hit
  }

  // MARK: Rendering

  /// The current first-person view.
  public func render() -> Frame? { render(firstPerson: true) }

  func render(firstPerson: Bool) -> Frame {
    let w = resolution
    let h = resolution
    var pixels = [UInt8](repeating: 0, count: w * h * 3)
    let cam = camera(width: w, height: h)
    pixels.withUnsafeMutableBufferPointer { buf in
      zBuffer.withUnsafeMutableBufferPointer { z in
        rayCast(into: buf.baseAddress!, zBuffer: z.baseAddress!, width: w, height: h, camera: cam)
        drawObjects(into: buf.baseAddress!, zBuffer: z.baseAddress!, width: w, height: h, camera: cam)
      }
      let border = MemoryMaze.borderColours[objects[target].colour]
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

  /// The pinhole camera shared by the wall and object passes: its position (``Scene`` offsets
  /// ahead of the body centre), viewing direction, half-width of the image plane at unit
  /// distance, focal length in pixels, and the horizon row (above the centre: the camera is
  /// pitched down).
  struct Camera {
    var x: Float
    var y: Float
    var dirX: Float
    var dirY: Float
    var planeLength: Float
    var focal: Float
    var horizon: Float
  }

  func camera(width w: Int, height h: Int) -> Camera {
    let planeLength = tanf(Scene.fieldOfView / 2)
    let focal = Float(w) / 2 / planeLength
    let (dx, dy) = (cosf(heading), sinf(heading))
    return Camera(
      x: agentX + Scene.cameraForward * dx, y: agentY + Scene.cameraForward * dy, dirX: dx, dirY: dy,
      planeLength: planeLength, focal: focal, horizon: Float(h) / 2 - focal * tanf(Scene.cameraPitch))
  }

  func rayCast(
    into p: UnsafeMutablePointer<UInt8>, zBuffer: UnsafeMutablePointer<Float>, width w: Int,
    height h: Int, camera cam: Camera
  ) {
    let planeX = -cam.dirY * cam.planeLength
    let planeY = cam.dirX * cam.planeLength
    let (focal, horizon) = (cam.focal, cam.horizon)
    let camHeight = Scene.cameraHeight
    let s = gridSize
    walls.withUnsafeBufferPointer { wall in
      wallTint.withUnsafeBufferPointer { tint in
        for col in 0..<w {
          let camX = 2 * (Float(col) + 0.5) / Float(w) - 1
          let rayX = cam.dirX + planeX * camX
          let rayY = cam.dirY + planeY * camX
          var mapX = Int(cam.x.rounded(.down))
          var mapY = Int(cam.y.rounded(.down))
          let deltaX = rayX == 0 ? Float.greatestFiniteMagnitude : abs(1 / rayX)
          let deltaY = rayY == 0 ? Float.greatestFiniteMagnitude : abs(1 / rayY)
          let stepX = rayX < 0 ? -1 : 1
          let stepY = rayY < 0 ? -1 : 1
          var sideX = rayX < 0 ? (cam.x - Float(mapX)) * deltaX : (Float(mapX + 1) - cam.x) * deltaX
          var sideY = rayY < 0 ? (cam.y - Float(mapY)) * deltaY : (Float(mapY + 1) - cam.y) * deltaY
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
          let top = horizon - (Scene.wallHeight - camHeight) * focal / dist
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
              // Sky: a soft gradient towards the horizon.
              let g = max(0, min(1, (horizon - fy) / horizon))
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
              let fx = cam.x + rowDist * rayX
              let fz = cam.y + rowDist * rayY
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

  /// Targets: spheres centred on the floor, so a dome shows (the lower half is under the floor).
  func drawObjects(
    into p: UnsafeMutablePointer<UInt8>, zBuffer: UnsafeMutablePointer<Float>, width w: Int,
    height h: Int, camera cam: Camera
  ) {
    // Farthest first so nearer objects paint over farther ones.
    let order = objects.indices.sorted {
      hypotf(objects[$0].x - cam.x, objects[$0].y - cam.y) > hypotf(objects[$1].x - cam.x, objects[$1].y - cam.y)
    }
    for i in order {
      let o = objects[i]
      let rx = o.x - cam.x
      let ry = o.y - cam.y
      let depth = rx * cam.dirX + ry * cam.dirY
      guard depth > 0.05 else { continue }
      let lateral = -rx * cam.dirY + ry * cam.dirX
      let cx = Float(w) / 2 + lateral * cam.focal / depth
      let radius = Scene.targetRadius * cam.focal / depth
      let cy = cam.horizon + Scene.cameraHeight * cam.focal / depth  // the floor under the centre
      let c = MemoryMaze.palette[o.colour]
      let x0 = max(0, Int((cx - radius).rounded(.down)))
      let x1 = min(w - 1, Int((cx + radius).rounded(.up)))
      let y0 = max(0, Int((cy - radius).rounded(.down)))
      let y1 = min(h - 1, Int(cy.rounded(.up)))
      guard x0 <= x1 && y0 <= y1 else { continue }
      for x in x0...x1 where zBuffer[x] > depth {
        for y in y0...y1 {
          let dx = (Float(x) + 0.5 - cx) / radius
          let dy = (Float(y) + 0.5 - cy) / radius
          guard dy <= 0, dx * dx + dy * dy <= 1 else { continue }
          // Simple lighting from the upper left.
          let light = (0.8 + 0.2 * (-dx - dy) / 1.5) / (1 + 0.05 * depth)
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

  /// Oracle steering, tuned by a sweep on 6 episodes of 9x9 and 15x15 (turn-in-place threshold
  /// 0.5 ... 4 rad, wall margin 0 ... 0.15 cells, lookahead 4 ... 12 path cells): heading errors
  /// below `oracleStraight` drive straight, above `oracleTurnInPlace` turn in place, between
  /// them turn while driving; path points count as visible when a body `oracleMargin` wider
  /// passes; the aim is the farthest visible of the next `oracleLookahead` path points.
  static let oracleStraight: Float = 0.12
  static let oracleTurnInPlace: Float = 1.2
  static let oracleMargin: Float = 0.03
  static let oracleLookahead = 8

  /// The action of a policy that knows the maze: it plans a shortest path on the grid to the
  /// target and steers along it with the walker's real turn rates and lags, so its score is a
  /// fair upper reference for this physics.
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
    // Aim at the farthest of the next few path points that is reachable in a straight line.
    var aimX = t.x
    var aimY = t.y
    if !path.isEmpty {
      let points = path.dropLast().map { (Float($0 % s) + 0.5, Float($0 / s) + 0.5) } + [(t.x, t.y)]
      aimX = points[0].0
      aimY = points[0].1
      for p in points.prefix(MemoryMaze.oracleLookahead) where clearLine(to: p.0, p.1) {
        aimX = p.0
        aimY = p.1
      }
    }
    let desired = atan2f(aimY - agentY, aimX - agentX)
    // Where the heading will settle if the turn key is released now (the turn coasts).
    let settled = heading + turnSpeed * Walker.turnDownTimeConstant
    let diff = remainderf(desired - settled, 2 * .pi)
    if abs(diff) < MemoryMaze.oracleStraight { return .discrete(1) }
    if abs(diff) < MemoryMaze.oracleTurnInPlace { return .discrete(diff < 0 ? 4 : 5) }
    return .discrete(diff < 0 ? 2 : 3)
  }

  func clearLine(to x: Float, _ y: Float) -> Bool {
    let d = hypotf(x - agentX, y - agentY)
    let n = max(1, Int(d / 0.05))
    for i in 1...n {
      let f = Float(i) / Float(n)
      if collides(
        x: agentX + (x - agentX) * f, y: agentY + (y - agentY) * f, radius: Walker.bodyRadius + MemoryMaze.oracleMargin)
      {
        return false
      }
    }
    return true
  }
}
