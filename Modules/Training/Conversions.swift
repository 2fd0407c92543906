import Agent
import Envs
import Replay

/// Conversions between the replay's plain buffers and the world model's tensors. This room is
/// the only one that sees both conventions (Replay and Envs use no tensor code).
extension WorldModelBatch {
  /// A batch sampled from a replay, [B, T, ...] (vector observations; images as 0...255 floats).
  /// The replay's padding mask becomes the batch's mask.
  public init(_ r: ReplayBatch) {
    let (b, t) = (r.batchSize, r.length)
    let l = r.layout
    let observations: Tensor
    if l.imageSize > 0 {
      observations = Tensor(r.images.map { Float($0) }, shape: [b, t, l.imageHeight, l.imageWidth, l.imageChannels])
    } else {
      observations = Tensor(r.vectors, shape: [b, t, l.vectorSize])
    }
    self.init(
      observations: observations, actions: Tensor(r.actions, shape: [b, t, l.actionSize]),
      rewards: Tensor(r.rewards, shape: [b, t]), isFirst: Tensor(r.isFirst, shape: [b, t]),
      isTerminal: Tensor(r.isTerminal, shape: [b, t]), mask: Tensor(r.mask, shape: [b, t]))
  }

  /// Rows of equal length from stored steps (vector observations), [B, T, ...], no padding.
  public init(rows: [[ReplayStep]], layout: ReplayLayout) {
    precondition(
      !rows.isEmpty && rows.allSatisfy { $0.count == rows[0].count }, "rows must be non-empty and of equal length")
    let (b, t) = (rows.count, rows[0].count)
    self.init(
      observations: Tensor(rows.flatMap { $0.flatMap { $0.vector } }, shape: [b, t, layout.vectorSize]),
      actions: Tensor(rows.flatMap { $0.flatMap { $0.action } }, shape: [b, t, layout.actionSize]),
      rewards: Tensor(rows.flatMap { $0.map { $0.reward } }, shape: [b, t]),
      isFirst: Tensor(rows.flatMap { $0.map { $0.isFirst ? 1 : 0 } }, shape: [b, t]),
      isTerminal: Tensor(rows.flatMap { $0.map { $0.isTerminal ? 1 : 0 } }, shape: [b, t]))
  }
}

/// How one environment's spaces meet the agent and the replay: the action spec and
/// observation kind the agent is built for, the replay's layout, and the conversions of
/// observations and actions between the three.
///
/// Observations: discrete and multi-discrete ones become one-hot vectors, boxes their values,
/// images stay 8-bit in the replay and reach the world model as 0...255 floats (the encoder
/// scales them). Actions: discrete spaces are one-hot vectors, multi-discrete ones concatenated
/// one-hots, boxes the actor's [-1, 1] numbers mapped affinely onto [low, high] (unbounded
/// entries pass through).
public struct EnvInterface: Sendable, Equatable {
  public let observationSpace: Space
  public let actionSpace: Space

  /// Throws for spaces the agent cannot act in (an image action space).
  public init(observationSpace: Space, actionSpace: Space) throws {
    if case .image = actionSpace {
      throw EnvError.invalidConfiguration("an image action space cannot be acted in")
    }
    self.observationSpace = observationSpace
    self.actionSpace = actionSpace
  }

  /// The interface of `envs`' spaces.
  public init(_ envs: BatchEnv) throws {
    try self.init(observationSpace: envs.observationSpace, actionSpace: envs.actionSpace)
  }

  /// The interface of one environment's spaces.
  public init(_ env: any Env) throws {
    try self.init(observationSpace: env.observationSpace, actionSpace: env.actionSpace)
  }

  /// The action spec the actor is built for.
  public var actionSpec: ActionSpec {
    switch actionSpace {
    case .discrete(let n): return .discrete(n)
    case .multiDiscrete(let ns): return .multiDiscrete(ns)
    case .box(let low, _): return .continuous(low.count)
    case .image: preconditionFailure("rejected in init")
    }
  }

  /// The observation kind the world model is built for.
  public var observationKind: ObservationKind {
    if case .image(let h, let w, let c) = observationSpace { return .image(height: h, width: w, channels: c) }
    return .vector(size: observationSpace.flatSize)
  }

  /// The replay's layout for these spaces.
  public var replayLayout: ReplayLayout {
    if case .image(let h, let w, let c) = observationSpace {
      return ReplayLayout(image: (h, w, c), actionSize: actionSpec.size)
    }
    return ReplayLayout(vectorSize: observationSpace.flatSize, actionSize: actionSpec.size)
  }

  /// The observations of `transitions` as one tensor [K, ...] for acting.
  public func observations(_ transitions: [Transition]) -> Tensor {
    let k = transitions.count
    if case .image(let h, let w, let c) = observationSpace {
      var values: [Float] = []
      values.reserveCapacity(k * h * w * c)
      for t in transitions {
        guard case .image(let f) = t.observation else { preconditionFailure("expected an image observation") }
        values += f.pixels.map { Float($0) }
      }
      return Tensor(values, shape: [k, h, w, c])
    }
    let n = observationSpace.flatSize
    return Tensor(transitions.flatMap { $0.observation.flattened(in: observationSpace) }, shape: [k, n])
  }

  /// Replay steps of `transitions` with the actions [K, A] the agent chose at them.
  public func replaySteps(_ transitions: [Transition], actions: Tensor) -> [ReplayStep] {
    let a = actions.shape[1]
    let values = actions.scalars
    return transitions.enumerated().map { i, t in
      var vector: [Float] = []
      var image: [UInt8] = []
      if case .image(let f) = t.observation {
        image = f.pixels
      } else {
        vector = t.observation.flattened(in: observationSpace)
      }
      return ReplayStep(
        vector: vector, image: image, action: Array(values[(i * a)..<((i + 1) * a)]), reward: Float(t.reward),
        isFirst: t.isFirst, isLast: t.isLast, isTerminal: t.isTerminal)
    }
  }

  /// The environment actions of agent actions [K, A].
  public func environmentActions(_ actions: Tensor) -> [Action] {
    let k = actions.shape[0]
    let a = actions.shape[1]
    let values = actions.scalars
    func argmax(_ row: ArraySlice<Float>) -> Int {
      var best = row.startIndex
      for j in row.indices where row[j] > row[best] { best = j }
      return best - row.startIndex
    }
    return (0..<k).map { i in
      let row = values[(i * a)..<((i + 1) * a)]
      switch actionSpace {
      case .discrete: return .discrete(argmax(row))
      case .multiDiscrete(let ns):
        var out: [Int] = []
        var offset = row.startIndex
        for n in ns {
          out.append(argmax(row[offset..<(offset + n)]))
          offset += n
        }
        return .multiDiscrete(out)
      case .box(let low, let high):
        return .continuous(
          zip(row, zip(low, high)).map { v, bounds in
            let (l, h) = bounds
            let clipped = min(max(v, -1), 1)
            guard l.isFinite && h.isFinite else { return clipped }
            return min(max(l + (clipped + 1) / 2 * (h - l), l), h)
          })
      case .image: preconditionFailure("rejected in init")
      }
    }
  }

  /// Uniformly random agent actions [K, A] (prefill): one-hots of uniform choices, or uniform
  /// numbers in [-1, 1].
  public func randomActions(count k: Int, rng: inout SeededGenerator) -> Tensor {
    let spec = actionSpec
    var out = [Float](repeating: 0, count: k * spec.size)
    for i in 0..<k {
      let base = i * spec.size
      switch spec {
      case .discrete(let n): out[base + rng.nextInt(below: n)] = 1
      case .multiDiscrete(let ns):
        var offset = base
        for n in ns {
          out[offset + rng.nextInt(below: n)] = 1
          offset += n
        }
      case .continuous(let n): for j in 0..<n { out[base + j] = 2 * rng.nextFloat() - 1 }
      }
    }
    return Tensor(out, shape: [k, spec.size])
  }
}
