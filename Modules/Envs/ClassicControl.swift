#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// CartPole-v1 with Gymnasium's constants (`classic/CartPole`): Euler integration with
/// tau 0.02, force ±10, terminated when |x| > 2.4 or |theta| > 12 degrees, reward 1 per step,
/// truncated after 500 steps. Observation [x, x_dot, theta, theta_dot].
public final class CartPole: Env {
  public static let gravity = 9.8
  public static let massCart = 1.0
  public static let massPole = 0.1
  public static let halfLength = 0.5
  public static let forceMagnitude = 10.0
  public static let tau = 0.02
  public static let thetaThreshold = 12 * 2 * Double.pi / 360
  public static let xThreshold = 2.4
  public static let maxSteps = 500

  public var name: String { "classic/CartPole" }
  public var maxEpisodeSteps: Int? { CartPole.maxSteps }
  public let observationSpace = Space.box(
    low: [-4.8, -.infinity, -0.418_879, -.infinity], high: [4.8, .infinity, 0.418_879, .infinity])
  public let actionSpace = Space.discrete(2)
  /// The physical state [x, x_dot, theta, theta_dot].
  public internal(set) var state: [Double] = [0, 0, 0, 0]
  var rng: SeededGenerator
  var episode = EpisodeGuard()
  var steps = 0

  public init(seed: UInt64 = 0) { rng = SeededGenerator(seed: seed) }

  public func reset(seed: UInt64?) -> Observation {
    if let seed { rng = SeededGenerator(seed: seed) }
    state = (0..<4).map { _ in -0.05 + 0.1 * rng.nextDouble() }
    steps = 0
    episode.begin()
    return .vector(state.map { Float($0) })
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    var (x, xDot, theta, thetaDot) = (state[0], state[1], state[2], state[3])
    let force = a == 1 ? CartPole.forceMagnitude : -CartPole.forceMagnitude
    let totalMass = CartPole.massCart + CartPole.massPole
    let poleMassLength = CartPole.massPole * CartPole.halfLength
    let c = cos(theta)
    let s = sin(theta)
    let temp = (force + poleMassLength * thetaDot * thetaDot * s) / totalMass
    let thetaAcc =
      (CartPole.gravity * s - c * temp)
      / (CartPole.halfLength * (4.0 / 3.0 - CartPole.massPole * c * c / totalMass))
    let xAcc = temp - poleMassLength * thetaAcc * c / totalMass
    x += CartPole.tau * xDot
    xDot += CartPole.tau * xAcc
    theta += CartPole.tau * thetaDot
    thetaDot += CartPole.tau * thetaAcc
    state = [x, xDot, theta, thetaDot]
    steps += 1
    let terminated =
      x < -CartPole.xThreshold || x > CartPole.xThreshold || theta < -CartPole.thetaThreshold
      || theta > CartPole.thetaThreshold
    let truncated = !terminated && steps >= CartPole.maxSteps
    episode.end(if: terminated || truncated)
    return StepResult(
      observation: .vector(state.map { Float($0) }), reward: 1, terminated: terminated, truncated: truncated)
  }

  public func render() -> Frame? {
    var canvas = Canvas(width: 64, height: 64, background: (250, 250, 250))
    let scale = 64.0 / (2 * CartPole.xThreshold * 1.2)
    let cx = 32 + state[0] * scale
    let cy = 44.0
    canvas.line(0, cy + 4, 63, cy + 4, (0, 0, 0))
    canvas.rect(cx - 6, cy - 3, cx + 6, cy + 3, (40, 40, 40))
    let poleLen = 2 * CartPole.halfLength * scale * 1.6
    canvas.thickLine(cx, cy, cx + sin(state[2]) * poleLen, cy - cos(state[2]) * poleLen, 1.5, (202, 152, 101))
    canvas.disc(cx, cy, 1.5, (129, 132, 203))
    return canvas.frame
  }
}

/// Pendulum-v1 with Gymnasium's constants (`classic/Pendulum`): dt 0.05, g 10, m 1, l 1,
/// torque in [-2, 2], speed clipped to ±8, reward -(angle^2 + 0.1 speed^2 + 0.001 torque^2),
/// never terminates, truncated after 200 steps. Observation [cos, sin, angular velocity].
public final class Pendulum: Env {
  public static let maxSpeed = 8.0
  public static let maxTorque: Float = 2
  public static let dt = 0.05
  public static let g = 10.0
  public static let m = 1.0
  public static let l = 1.0
  public static let maxSteps = 200

  public var name: String { "classic/Pendulum" }
  public var maxEpisodeSteps: Int? { Pendulum.maxSteps }
  public let observationSpace = Space.box(low: [-1, -1, -8], high: [1, 1, 8])
  public let actionSpace = Space.box(count: 1, low: -Pendulum.maxTorque, high: Pendulum.maxTorque)
  /// [theta, theta_dot].
  public internal(set) var state: [Double] = [0, 0]
  var rng: SeededGenerator
  var episode = EpisodeGuard()
  var steps = 0

  public init(seed: UInt64 = 0) { rng = SeededGenerator(seed: seed) }

  func observation() -> Observation {
    .vector([Float(cos(state[0])), Float(sin(state[0])), Float(state[1])])
  }

  public func reset(seed: UInt64?) -> Observation {
    if let seed { rng = SeededGenerator(seed: seed) }
    state = [-Double.pi + 2 * Double.pi * rng.nextDouble(), -1 + 2 * rng.nextDouble()]
    steps = 0
    episode.begin()
    return observation()
  }

  /// Angle wrapped to [-pi, pi).
  public static func normalize(_ x: Double) -> Double {
    let y = (x + .pi).truncatingRemainder(dividingBy: 2 * .pi)
    return (y < 0 ? y + 2 * .pi : y) - .pi
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .continuous(let a) = action else { preconditionFailure() }
    let u = Double(a[0])
    let (th, thDot) = (state[0], state[1])
    let cost = pow(Pendulum.normalize(th), 2) + 0.1 * thDot * thDot + 0.001 * u * u
    var newThDot =
      thDot + (3 * Pendulum.g / (2 * Pendulum.l) * sin(th) + 3 / (Pendulum.m * Pendulum.l * Pendulum.l) * u)
      * Pendulum.dt
    newThDot = min(max(newThDot, -Pendulum.maxSpeed), Pendulum.maxSpeed)
    state = [th + newThDot * Pendulum.dt, newThDot]
    steps += 1
    let truncated = steps >= Pendulum.maxSteps
    episode.end(if: truncated)
    return StepResult(observation: observation(), reward: -cost, terminated: false, truncated: truncated)
  }

  public func render() -> Frame? {
    var canvas = Canvas(width: 64, height: 64, background: (250, 250, 250))
    let len = 24.0
    let x = 32 + sin(state[0]) * len
    let y = 32 - cos(state[0]) * len
    canvas.thickLine(32, 32, x, y, 2.5, (204, 77, 77))
    canvas.disc(32, 32, 2, (0, 0, 0))
    return canvas.frame
  }
}

/// Acrobot-v1 with Gymnasium's constants (`classic/Acrobot`): two unit links of unit mass,
/// dt 0.2 with one RK4 step, torques {-1, 0, +1}, "book" dynamics, velocities clipped to 4 pi
/// and 9 pi, terminated when -cos(t1) - cos(t1 + t2) > 1, reward -1 per step (0 on the
/// terminal step), truncated after 500 steps. Observation [cos t1, sin t1, cos t2, sin t2,
/// dt1, dt2].
public final class Acrobot: Env {
  public static let dt = 0.2
  public static let maxVel1 = 4 * Double.pi
  public static let maxVel2 = 9 * Double.pi
  public static let maxSteps = 500

  public var name: String { "classic/Acrobot" }
  public var maxEpisodeSteps: Int? { Acrobot.maxSteps }
  public let observationSpace = Space.box(
    low: [-1, -1, -1, -1, -4 * .pi, -9 * .pi], high: [1, 1, 1, 1, 4 * .pi, 9 * .pi])
  public let actionSpace = Space.discrete(3)
  /// [theta1, theta2, dtheta1, dtheta2].
  public internal(set) var state: [Double] = [0, 0, 0, 0]
  var rng: SeededGenerator
  var episode = EpisodeGuard()
  var steps = 0

  public init(seed: UInt64 = 0) { rng = SeededGenerator(seed: seed) }

  func observation() -> Observation {
    .vector([
      Float(cos(state[0])), Float(sin(state[0])), Float(cos(state[1])), Float(sin(state[1])),
      Float(state[2]), Float(state[3]),
    ])
  }

  public func reset(seed: UInt64?) -> Observation {
    if let seed { rng = SeededGenerator(seed: seed) }
    state = (0..<4).map { _ in -0.1 + 0.2 * rng.nextDouble() }
    steps = 0
    episode.begin()
    return observation()
  }

  static func derivatives(_ s: [Double], torque a: Double) -> [Double] {
    let (m1, m2, l1, lc1, lc2, i1, i2, g) = (1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 9.8)
    let (t1, t2, dt1, dt2) = (s[0], s[1], s[2], s[3])
    let d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2 * l1 * lc2 * cos(t2)) + i1 + i2
    let d2 = m2 * (lc2 * lc2 + l1 * lc2 * cos(t2)) + i2
    let phi2 = m2 * lc2 * g * cos(t1 + t2 - .pi / 2)
    let phi1 =
      -m2 * l1 * lc2 * dt2 * dt2 * sin(t2) - 2 * m2 * l1 * lc2 * dt2 * dt1 * sin(t2)
      + (m1 * lc1 + m2 * l1) * g * cos(t1 - .pi / 2) + phi2
    let ddt2 =
      (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dt1 * dt1 * sin(t2) - phi2)
      / (m2 * lc2 * lc2 + i2 - d2 * d2 / d1)
    let ddt1 = -(d2 * ddt2 + phi1) / d1
    return [dt1, dt2, ddt1, ddt2]
  }

  static func wrap(_ x: Double) -> Double {
    var y = x
    while y > .pi { y -= 2 * .pi }
    while y < -.pi { y += 2 * .pi }
    return y
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    let torque = Double(a - 1)
    let h = Acrobot.dt
    let s0 = state
    let k1 = Acrobot.derivatives(s0, torque: torque)
    let k2 = Acrobot.derivatives(zip(s0, k1).map { $0 + h / 2 * $1 }, torque: torque)
    let k3 = Acrobot.derivatives(zip(s0, k2).map { $0 + h / 2 * $1 }, torque: torque)
    let k4 = Acrobot.derivatives(zip(s0, k3).map { $0 + h * $1 }, torque: torque)
    var ns = (0..<4).map { s0[$0] + h / 6 * (k1[$0] + 2 * k2[$0] + 2 * k3[$0] + k4[$0]) }
    ns[0] = Acrobot.wrap(ns[0])
    ns[1] = Acrobot.wrap(ns[1])
    ns[2] = min(max(ns[2], -Acrobot.maxVel1), Acrobot.maxVel1)
    ns[3] = min(max(ns[3], -Acrobot.maxVel2), Acrobot.maxVel2)
    state = ns
    steps += 1
    let terminated = -cos(ns[0]) - cos(ns[1] + ns[0]) > 1
    let truncated = !terminated && steps >= Acrobot.maxSteps
    episode.end(if: terminated || truncated)
    return StepResult(
      observation: observation(), reward: terminated ? 0 : -1, terminated: terminated, truncated: truncated)
  }

  public func render() -> Frame? {
    var canvas = Canvas(width: 64, height: 64, background: (250, 250, 250))
    let scale = 13.0
    let (t1, t2) = (state[0], state[1])
    let p1 = (32 + sin(t1) * scale, 32 + cos(t1) * scale)
    let p2 = (p1.0 + sin(t1 + t2) * scale, p1.1 + cos(t1 + t2) * scale)
    canvas.line(4, 32 - scale, 60, 32 - scale, (0, 0, 0))
    canvas.thickLine(32, 32, p1.0, p1.1, 2, (0, 204, 204))
    canvas.thickLine(p1.0, p1.1, p2.0, p2.1, 2, (0, 204, 204))
    canvas.disc(32, 32, 1.5, (204, 204, 0))
    canvas.disc(p1.0, p1.1, 1.5, (204, 204, 0))
    return canvas.frame
  }
}

/// A tiny RGB rasteriser for the classic-control pictures.
struct Canvas {
  var frame: Frame

  init(width: Int, height: Int, background: (UInt8, UInt8, UInt8)) {
    var px = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) {
      px[3 * i] = background.0
      px[3 * i + 1] = background.1
      px[3 * i + 2] = background.2
    }
    frame = Frame(width: width, height: height, channels: 3, pixels: px)
  }

  mutating func put(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
    guard x >= 0 && y >= 0 && x < frame.width && y < frame.height else { return }
    let o = (y * frame.width + x) * 3
    frame.pixels[o] = c.0
    frame.pixels[o + 1] = c.1
    frame.pixels[o + 2] = c.2
  }

  mutating func rect(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: (UInt8, UInt8, UInt8)) {
    for y in Int(y0.rounded())...Int(y1.rounded()) {
      for x in Int(x0.rounded())...Int(x1.rounded()) { put(x, y, c) }
    }
  }

  mutating func disc(_ cx: Double, _ cy: Double, _ r: Double, _ c: (UInt8, UInt8, UInt8)) {
    for y in Int((cy - r).rounded(.down))...Int((cy + r).rounded(.up)) {
      for x in Int((cx - r).rounded(.down))...Int((cx + r).rounded(.up)) {
        let dx = Double(x) + 0.5 - cx
        let dy = Double(y) + 0.5 - cy
        if dx * dx + dy * dy <= r * r { put(x, y, c) }
      }
    }
  }

  mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: (UInt8, UInt8, UInt8)) {
    thickLine(x0, y0, x1, y1, 0.5, c)
  }

  mutating func thickLine(
    _ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ r: Double, _ c: (UInt8, UInt8, UInt8)
  ) {
    let n = max(1, Int(hypot(x1 - x0, y1 - y0) * 2))
    for i in 0...n {
      let t = Double(i) / Double(n)
      disc(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, r, c)
    }
  }
}
