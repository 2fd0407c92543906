/// A setting out of its range: the dotted key (as `--set` and `config.json` spell it), the
/// value, and the range it must lie in.
public struct SettingError: Error, CustomStringConvertible, Equatable, Sendable {
  public let key: String
  public let value: String
  public let range: String

  public var description: String { "\(key) must be \(range), got \(value)" }
}

/// Range checks of every number that decides an agent, so a bad value is named before any
/// model is built (models check their own sizes with preconditions, which end the process).
struct SettingCheck {
  let prefix: String

  func count(_ key: String, _ value: Int, _ range: ClosedRange<Int>) throws {
    guard range.contains(value) else {
      throw SettingError(
        key: prefix + key, value: "\(value)", range: "an integer in \(range.lowerBound)...\(range.upperBound)")
    }
  }

  /// A finite number in `low...high` (`open` excludes the low end).
  func number(_ key: String, _ value: Float, _ low: Float, _ high: Float, open: Bool = false) throws {
    let inside = value.isFinite && (open ? value > low : value >= low) && value <= high
    guard inside else {
      throw SettingError(key: prefix + key, value: "\(value)", range: "a number in \(open ? "(" : "[")\(low), \(high)]")
    }
  }

  func adam(_ key: String, _ s: AdamSettings) throws {
    try number(key + ".learningRate", s.learningRate, 0, 10, open: true)
    try number(key + ".epsilon", s.epsilon, 0, 1, open: true)
    if let clip = s.gradientClip { try number(key + ".gradientClip", clip, 0, 1e9, open: true) }
    try number(key + ".beta1", s.beta1, 0, 1)
    try number(key + ".beta2", s.beta2, 0, 1)
  }
}

extension WorldModelConfig {
  /// Throws a ``SettingError`` naming the first setting out of range; `prefix` is the settings'
  /// path in the surrounding configuration (`agent.worldModel.`).
  public func validate(prefix: String = "") throws {
    let c = SettingCheck(prefix: prefix)
    try c.count("actionSize", actionSize, 1...65_536)
    // The observation is one setting, `observation=vector:N` or `image:HxWxC`.
    func observationCheck(_ ok: Bool, _ range: String) throws {
      if !ok { throw SettingError(key: prefix + "observation", value: observation.plainText, range: range) }
    }
    switch observation {
    case .vector(let size): try observationCheck((1...1_048_576).contains(size), "vector:N with N in 1...1048576")
    case .image(let h, let w, let ch):
      let sides = (16...1024).contains(h) && (16...1024).contains(w)
      try observationCheck(sides && (1...16).contains(ch), "image:HxWxC with H, W in 16...1024 and C in 1...16")
      try observationCheck(h % 16 == 0 && w % 16 == 0, "image:HxWxC with H and W divisible by 16")
    }
    try c.count("deter", deter, 1...16_384)
    try c.count("units", units, 1...16_384)
    try c.count("mlpLayers", mlpLayers, 0...16)
    try c.count("cnnDepth", cnnDepth, 1...512)
    try c.count("latent.groups", latent.groups, 1...1024)
    try c.count("latent.classes", latent.classes, 2...1024)
    try c.number("latent.unimix", latent.unimix, 0, 1)
    if latent.unimix >= 1 {
      throw SettingError(key: prefix + "latent.unimix", value: "\(latent.unimix)", range: "a number in [0, 1)")
    }
    try c.number("dynamicScale", dynamicScale, 0, 1000)
    try c.number("representationScale", representationScale, 0, 1000)
    try c.number("freeBits", freeBits, 0, 1000)
    try c.adam("optimizer", optimizer)
    try c.count("ssm.states", ssm.states, 1...4096)
    try c.count("ssm.channels", ssm.channels, 1...16_384)
    try c.count("ssm.layers", ssm.layers, 1...64)
    try c.count("ssm.hippoBlocks", ssm.hippoBlocks, 1...ssm.states)
    if ssm.states % ssm.hippoBlocks != 0 {
      throw SettingError(
        key: prefix + "ssm.states", value: "\(ssm.states)",
        range: "a multiple of ssm.hippoBlocks (\(ssm.hippoBlocks))")
    }
    try c.number("ssm.minStep", ssm.minStep, 0, 100, open: true)
    try c.number("ssm.maxStep", ssm.maxStep, ssm.minStep, 100)
    try c.number("ssm.inputScale", ssm.inputScale, 0, 1000, open: true)
    if let t = transformer {
      try c.count("transformer.layers", t.layers, 1...64)
      try c.count("transformer.width", t.width, 2...16_384)
      try c.count("transformer.heads", t.heads, 1...t.width)
      try c.count("transformer.mlpRatio", t.mlpRatio, 1...64)
      try c.count("transformer.window", t.window, 0...16_384)
      if t.problem != nil {
        throw SettingError(
          key: prefix + "transformer.width", value: "\(t.width) with \(t.heads) heads",
          range: "a multiple of transformer.heads giving an even head size (rotary positions turn pairs)")
      }
    }
    if rewardByAction && !discreteActions {
      throw SettingError(key: prefix + "rewardByAction", value: "true", range: "false with continuous actions")
    }
  }
}

extension AgentConfig {
  /// Throws a ``SettingError`` naming the first setting out of range, as `agent.<key>`.
  public func validate() throws {
    try worldModel.validate(prefix: "agent.worldModel.")
    let c = SettingCheck(prefix: "agent.")
    switch actions {
    case .discrete(let n): try c.count("actions.discrete", n, 1...65_536)
    case .multiDiscrete(let ns):
      for n in ns { try c.count("actions.multiDiscrete", n, 1...65_536) }
    case .continuous(let n): try c.count("actions.continuous", n, 1...65_536)
    }
    if actions.size != worldModel.actionSize {
      throw SettingError(
        key: "agent.worldModel.actionSize", value: "\(worldModel.actionSize)",
        range: "the actions' width \(actions.size)")
    }
    try c.count("units", units, 1...16_384)
    try c.count("layers", layers, 0...16)
    let a = actorCritic
    try c.count("actorCritic.horizon", a.horizon, 1...1000)
    try c.number("actorCritic.discount", a.discount, 0, 1)
    try c.number("actorCritic.lambda", a.lambda, 0, 1)
    try c.number("actorCritic.entropy", a.entropy, 0, 100)
    try c.number("actorCritic.slowCriticRate", a.slowCriticRate, 0, 1, open: true)
    try c.number("actorCritic.slowCriticScale", a.slowCriticScale, 0, 1000)
    try c.adam("actorCritic.actorOptimizer", a.actorOptimizer)
    try c.adam("actorCritic.criticOptimizer", a.criticOptimizer)
    try c.count("actorCritic.imaginationChunk", a.imaginationChunk, 1...1_048_576)
    if let starts = a.imaginationStarts { try c.count("actorCritic.imaginationStarts", starts, 1...1_048_576) }
  }
}
