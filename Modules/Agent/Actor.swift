/// The action space an actor acts in, and the width of its action vectors.
public enum ActionSpec: Sendable, Codable, Equatable {
  /// One of `n` actions, as a one-hot vector [n].
  case discrete(Int)
  /// One choice per component (POPGym's Battleship and MineSweeper), as concatenated one-hots.
  case multiDiscrete([Int])
  /// `n` numbers in [-1, 1].
  case continuous(Int)

  /// Width of an action vector.
  public var size: Int {
    switch self {
    case .discrete(let n): return n
    case .multiDiscrete(let ns): return ns.reduce(0, +)
    case .continuous(let n): return n
    }
  }

  public var isDiscrete: Bool { if case .continuous = self { return false } else { return true } }

  /// One choice among `n` per step (``discrete(_:)``): a one-hot action vector.
  public var isSingleDiscrete: Bool { if case .discrete = self { return true } else { return false } }

  private enum CodingKeys: String, CodingKey { case discrete, multiDiscrete, continuous }
  private enum OlderPayload: String, CodingKey { case _0 }

  /// The plain form `config.json` holds and `--set` takes: `discrete:2`, `multiDiscrete:3,3`,
  /// `continuous:6`.
  public var plainText: String {
    switch self {
    case .discrete(let n): return "discrete:\(n)"
    case .multiDiscrete(let ns): return "multiDiscrete:" + ns.map(String.init).joined(separator: ",")
    case .continuous(let n): return "continuous:\(n)"
    }
  }

  /// Reads ``plainText``; nil when `text` is not one.
  public init?(plainText text: String) {
    let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
    guard parts.count == 2 else { return nil }
    let numbers = parts[1].split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
    guard !numbers.isEmpty, numbers.allSatisfy({ $0 != nil }) else { return nil }
    let ns = numbers.map { $0! }
    switch parts[0] {
    case "discrete" where ns.count == 1: self = .discrete(ns[0])
    case "continuous" where ns.count == 1: self = .continuous(ns[0])
    case "multiDiscrete": self = .multiDiscrete(ns)
    default: return nil
    }
  }

  /// The JSON form is ``plainText`` (`"discrete:2"`). The forms older builds wrote
  /// (`{"discrete": 2}`, `{"discrete": {"_0": 2}}`) are read too.
  public init(from decoder: Decoder) throws {
    if let text = try? decoder.singleValueContainer().decode(String.self) {
      guard let spec = ActionSpec(plainText: text) else {
        throw DecodingError.dataCorrupted(
          .init(
            codingPath: decoder.codingPath,
            debugDescription: "'\(text)' is not an action space (discrete:N, multiDiscrete:N,N,..., continuous:N)"))
      }
      self = spec
      return
    }
    let c = try decoder.container(keyedBy: CodingKeys.self)
    guard c.allKeys.count == 1, let key = c.allKeys.first else {
      throw DecodingError.dataCorrupted(
        .init(
          codingPath: c.codingPath, debugDescription: "an action space is one of discrete, multiDiscrete, continuous"))
    }
    func value<T: Decodable>(_ type: T.Type) throws -> T {
      if let v = try? c.decode(T.self, forKey: key) { return v }
      return try c.nestedContainer(keyedBy: OlderPayload.self, forKey: key).decode(T.self, forKey: ._0)
    }
    switch key {
    case .discrete: self = .discrete(try value(Int.self))
    case .multiDiscrete: self = .multiDiscrete(try value([Int].self))
    case .continuous: self = .continuous(try value(Int.self))
    }
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.singleValueContainer()
    try c.encode(plainText)
  }
}

/// pi(a | features) for a batch: categorical components with unimix, or a bounded normal.
public enum ActionDistribution {
  /// One categorical per component ([N, n_k] each); actions are their one-hots concatenated.
  case categorical([OneHotCategorical])
  case continuous(BoundedNormal)

  /// A sample [N, size]: straight-through one-hots, or a reparameterised normal sample.
  public func sample(using rng: inout SeededGenerator) -> Variable {
    switch self {
    case .categorical(let parts): return Variable.concat(parts.map { $0.sample(using: &rng) }, axis: -1)
    case .continuous(let d): return d.sample(using: &rng)
    }
  }

  /// The most likely action [N, size] (greedy evaluation).
  public var mode: Variable {
    switch self {
    case .categorical(let parts): return Variable.concat(parts.map(\.mode), axis: -1)
    case .continuous(let d): return d.mode
    }
  }

  /// log pi(a) [N] of actions [N, size], summed over components.
  public func logProb(_ action: Variable) -> Variable {
    switch self {
    case .categorical(let parts):
      var offset = 0
      var total: Variable? = nil
      for p in parts {
        let n = p.classes
        let lp = p.logProb(action.slice(axis: -1, offset..<(offset + n)))
        total = total.map { $0 + lp } ?? lp
        offset += n
      }
      return total!
    case .continuous(let d): return d.logProb(action)
    }
  }

  /// Entropy [N], summed over components.
  public func entropy() -> Variable {
    switch self {
    case .categorical(let parts): return parts.dropFirst().reduce(parts[0].entropy()) { $0 + $1.entropy() }
    case .continuous(let d): return d.entropy()
    }
  }
}

/// The policy: an MLP of Dense blocks on the chosen feature view, then the action head
/// (logits with 1 % unimix per categorical component, or a tanh-mean normal with std in
/// [0.1, 1]).
public final class Actor: Module {
  public let mlp: MLP
  public let out: Linear
  public let spec: ActionSpec
  /// Which latent features the policy reads (`hidden`, [z, x], is R2I's choice for memory tasks).
  public let input: FeatureView
  public let unimix: Float

  public init(
    featureSize: Int, units: Int, layers: Int, spec: ActionSpec, input: FeatureView, unimix: Float = 0.01,
    rng: inout SeededGenerator
  ) {
    self.spec = spec
    self.input = input
    self.unimix = unimix
    mlp = MLP(featureSize, units: units, depth: layers, rng: &rng)
    let width: Int
    if case .continuous(let n) = spec { width = 2 * n } else { width = spec.size }
    out = Linear(mlp.outFeatures(input: featureSize), width, rng: &rng)
  }

  /// pi(. | features [N, F]).
  public func callAsFunction(_ features: Variable) -> ActionDistribution { distribution(raw: rawOutput(features)) }

  /// The output layer's values at `features` [..., F]: [..., A] logits for categorical actions,
  /// [..., 2A] raw mean and std for continuous ones (see ``distribution(raw:)``).
  public func rawOutput(_ features: Variable) -> Variable { out(mlp(features)) }

  /// The policy of raw outputs [..., width] (``rawOutput(_:)``), any leading axes. The learner
  /// keeps the raw outputs of imagination and builds the loss's policy from them, so the
  /// network runs once per imagined state.
  public func distribution(raw: Variable) -> ActionDistribution {
    switch spec {
    case .discrete:
      return .categorical([OneHotCategorical(logits: raw, unimix: unimix)])
    case .multiDiscrete(let ns):
      var offset = 0
      var parts: [OneHotCategorical] = []
      for n in ns {
        parts.append(OneHotCategorical(logits: raw.slice(axis: -1, offset..<(offset + n)), unimix: unimix))
        offset += n
      }
      return .categorical(parts)
    case .continuous(let n):
      return .continuous(
        BoundedNormal(rawMean: raw.slice(axis: -1, 0..<n), rawStd: raw.slice(axis: -1, n..<(2 * n))))
    }
  }

  /// pi(. | state), reading the actor's feature view.
  public func callAsFunction(_ state: LatentState) -> ActionDistribution { distribution(raw: rawOutput(state)) }

  /// ``rawOutput(_:)-(Variable)`` at `state`'s features, read as blocks (the one-hot latent
  /// adds weight rows instead of multiplying; the same numbers up to the order of additions).
  public func rawOutput(_ state: LatentState) -> Variable { out(mlp(blocks: state.featureBlocks(input))) }
}
