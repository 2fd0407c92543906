/// POPGym difficulty levels.
public enum Difficulty: String, CaseIterable, Sendable {
  case easy = "Easy"
  case medium = "Medium"
  case hard = "Hard"

  func pick<T>(_ easy: T, _ medium: T, _ hard: T) -> T {
    switch self {
    case .easy: return easy
    case .medium: return medium
    case .hard: return hard
    }
  }
}

/// Shuffled decks of 52 cards; card i has suit i % 4, rank (i / 4) % 13 (ace = 0) and
/// colour i % 2.
struct CardDeck {
  let count: Int
  private(set) var order: [Int]
  private(set) var dealt = 0

  init(decks: Int) {
    count = 52 * decks
    order = Array(0..<count)
  }

  static func suit(_ card: Int) -> Int { card % 4 }
  static func rank(_ card: Int) -> Int { (card / 4) % 13 }
  static func colour(_ card: Int) -> Int { card % 2 }

  mutating func shuffle(using rng: inout SeededGenerator) {
    order = Array(0..<count)
    rng.shuffle(&order)
    dealt = 0
  }

  var remaining: Int { count - dealt }

  mutating func deal() -> Int {
    precondition(dealt < count, "CardDeck: no cards left")
    defer { dealt += 1 }
    return order[dealt]
  }
}

/// Shared plumbing: name, seeding, the episode guard.
public class POPGymEnv {
  public let difficulty: Difficulty
  let game: String
  var rng: SeededGenerator
  var episode = EpisodeGuard()

  init(game: String, difficulty: Difficulty, seed: UInt64) {
    self.game = game
    self.difficulty = difficulty
    rng = SeededGenerator(seed: seed)
  }

  public var name: String { "popgym/\(game)\(difficulty.rawValue)" }
  /// Every POPGym game is a memory task.
  public var task: TaskFacts { TaskFacts(needsMemory: true) }

  func reseed(_ seed: UInt64?) {
    if let seed { rng = SeededGenerator(seed: seed) }
    episode.begin()
  }
}

/// Repeat the suit seen k steps back (the newest observation counts as one back).
/// Decks 1/2/3, k = 4/32/64; N - 1 steps; reward 0 for the first k - 1 steps, then
/// ±1/(N - k); the last step terminates the episode (popgym 1.0.7: `terminated = len(deck) == 1`;
/// 1.0.0 truncated it instead, so a learner must not bootstrap past it).
public final class RepeatPrevious: POPGymEnv, Env {
  public let k: Int
  var deck: CardDeck
  /// Suits dealt so far, oldest first (hidden state for oracles and probes).
  public private(set) var history: [Int] = []
  public let observationSpace = Space.discrete(4)
  public let actionSpace = Space.discrete(4)
  public var maxEpisodeSteps: Int? { deck.count - 1 }

  public init(_ difficulty: Difficulty, seed: UInt64 = 0) {
    deck = CardDeck(decks: difficulty.pick(1, 2, 3))
    k = difficulty.pick(4, 32, 64)
    super.init(game: "RepeatPrevious", difficulty: difficulty, seed: seed)
  }

  public func reset(seed: UInt64?) -> Observation {
    reseed(seed)
    deck.shuffle(using: &rng)
    history = [CardDeck.suit(deck.deal())]
    return .discrete(history[0])
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    let scale = 1 / Double(deck.count - k)
    var reward = 0.0
    let terminated = deck.remaining == 1
    if history.count >= k { reward = a == history[history.count - k] ? scale : -scale }
    let suit = CardDeck.suit(deck.deal())
    history.append(suit)
    episode.end(if: terminated)
    return StepResult(observation: .discrete(suit), reward: reward, terminated: terminated, truncated: false)
  }
}

/// Repeat the suit of the first card. Decks 1/8/16; N - 1 steps of ±1/(N - 1); the last step
/// terminates the episode (popgym 1.0.7).
public final class RepeatFirst: POPGymEnv, Env {
  var deck: CardDeck
  /// The first suit of the episode (hidden state for oracles).
  public private(set) var firstSuit = 0
  public let observationSpace = Space.discrete(4)
  public let actionSpace = Space.discrete(4)
  public var maxEpisodeSteps: Int? { deck.count - 1 }

  public init(_ difficulty: Difficulty, seed: UInt64 = 0) {
    deck = CardDeck(decks: difficulty.pick(1, 8, 16))
    super.init(game: "RepeatFirst", difficulty: difficulty, seed: seed)
  }

  public func reset(seed: UInt64?) -> Observation {
    reseed(seed)
    deck.shuffle(using: &rng)
    firstSuit = CardDeck.suit(deck.deal())
    return .discrete(firstSuit)
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    let scale = 1 / Double(deck.count - 1)
    let reward = a == firstSuit ? scale : -scale
    let terminated = deck.remaining == 1
    let suit = CardDeck.suit(deck.deal())
    episode.end(if: terminated)
    return StepResult(observation: .discrete(suit), reward: reward, terminated: terminated, truncated: false)
  }
}

/// Watch N cards, then recite their suits in reverse order. Observation (mode, suit) with
/// watch = 1, play = 0; the reset shows card 1, N - 1 watch steps (reward 0) show the rest (the
/// N-th arrives with mode = play), then N play steps pay ±1/N and show (0, 0). 2N - 1 steps,
/// terminated at the end. Decks 1/2/3.
public final class Autoencode: POPGymEnv, Env {
  var deck: CardDeck
  /// Suits still to recite, oldest first (hidden state for oracles).
  public private(set) var stack: [Int] = []
  /// Whether the agent is reciting.
  public private(set) var playing = false
  public let observationSpace = Space.multiDiscrete([2, 4])
  public let actionSpace = Space.discrete(4)
  public var maxEpisodeSteps: Int? { 2 * deck.count - 1 }

  public init(_ difficulty: Difficulty, seed: UInt64 = 0) {
    deck = CardDeck(decks: difficulty.pick(1, 2, 3))
    super.init(game: "Autoencode", difficulty: difficulty, seed: seed)
  }

  public func reset(seed: UInt64?) -> Observation {
    reseed(seed)
    deck.shuffle(using: &rng)
    stack = [CardDeck.suit(deck.deal())]
    playing = false
    return .multiDiscrete([1, stack[0]])
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    if !playing {
      let suit = CardDeck.suit(deck.deal())
      stack.append(suit)
      if deck.remaining == 0 { playing = true }
      return StepResult(
        observation: .multiDiscrete([playing ? 0 : 1, suit]), reward: 0, terminated: false,
        truncated: false)
    }
    let terminated = stack.count == 1
    let correct = stack.removeLast()
    let scale = 1 / Double(deck.count)
    episode.end(if: terminated)
    return StepResult(
      observation: .multiDiscrete([0, 0]), reward: a == correct ? scale : -scale,
      terminated: terminated, truncated: false)
  }
}

/// The card-matching game. Easy: 1 deck matched by colour; Medium: 2 decks by colour; Hard:
/// 1 deck by rank. The observation shows every position's face value, F (= number of values)
/// for face-down cards; the step of a second flip shows both flipped cards, later steps turn
/// unmatched ones back. First flip 0; a match +1/(N/2); a mismatch (or the same position
/// twice) -2/len; flipping an already matched card -1/len per card in play. Terminated when
/// all cards are matched; truncated after len = ceil(2N - N/(2N - 1)) steps (104/208/104).
public final class Concentration: POPGymEnv, Env {
  public let cardCount: Int
  public let valueCount: Int
  public let episodeLength: Int
  let byRank: Bool
  var deck: CardDeck
  /// Face value at each position (hidden state for oracles and probes).
  public private(set) var values: [Int] = []
  public private(set) var faceUp: Set<Int> = []
  var inPlay: [Int] = []
  var stepCount = 0
  public let observationSpace: Space
  public let actionSpace: Space
  public var maxEpisodeSteps: Int? { episodeLength }

  public init(_ difficulty: Difficulty, seed: UInt64 = 0) {
    let decks = difficulty.pick(1, 2, 1)
    byRank = difficulty == .hard
    deck = CardDeck(decks: decks)
    cardCount = 52 * decks
    valueCount = byRank ? 13 : 2
    let n = Double(cardCount)
    episodeLength = Int((2 * n - n / (2 * n - 1)).rounded(.up))
    observationSpace = .multiDiscrete([Int](repeating: valueCount + 1, count: cardCount))
    actionSpace = .discrete(cardCount)
    super.init(game: "Concentration", difficulty: difficulty, seed: seed)
  }

  func observation() -> Observation {
    var obs = [Int](repeating: valueCount, count: cardCount)
    for p in faceUp { obs[p] = values[p] }
    for p in inPlay { obs[p] = values[p] }
    return .multiDiscrete(obs)
  }

  public func reset(seed: UInt64?) -> Observation {
    reseed(seed)
    deck.shuffle(using: &rng)
    values = deck.order.map { byRank ? CardDeck.rank($0) : CardDeck.colour($0) }
    faceUp = []
    inPlay = []
    stepCount = 0
    return observation()
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let p) = action else { preconditionFailure() }
    let success = 1 / Double(cardCount / 2)
    let failure = -1 / Double(episodeLength)
    var truncated = stepCount >= episodeLength - 1
    var terminated = false
    var reward = 0.0
    inPlay.append(p)
    let obs = observation()
    if inPlay.contains(where: { faceUp.contains($0) }) {
      reward = failure * Double(inPlay.count)
      inPlay = []
    } else if inPlay.count == 2 {
      if inPlay[0] != inPlay[1] && values[inPlay[0]] == values[inPlay[1]] {
        reward = success
        faceUp.formUnion(inPlay)
        terminated = faceUp.count == cardCount
      } else {
        reward = 2 * failure
      }
      inPlay = []
    }
    stepCount += 1
    if terminated { truncated = false }
    episode.end(if: terminated || truncated)
    return StepResult(observation: obs, reward: reward, terminated: terminated, truncated: truncated)
  }
}

/// Count the cards of the queried class seen so far. Each step shows (value class, query
/// class) from two independent decks; the next action must be the number of value cards of the
/// last query's class seen so far, including the newest. Easy: colours, 1 deck; Medium: suits,
/// 2 decks; Hard: ranks, 4 decks. Actions 0...N/classes (27/27/17); N - 1 steps of
/// ±1/(N - 1); terminated when the decks run out.
public final class CountRecall: POPGymEnv, Env {
  public let classes: Int
  var valueDeck: CardDeck
  var queryDeck: CardDeck
  /// Value cards seen per class (hidden state for oracles).
  public private(set) var counts: [Int] = []
  /// The class the next answer is about.
  public private(set) var query = 0
  public let observationSpace: Space
  public let actionSpace: Space
  public var maxEpisodeSteps: Int? { valueDeck.count - 1 }

  public init(_ difficulty: Difficulty, seed: UInt64 = 0) {
    let decks = difficulty.pick(1, 2, 4)
    classes = difficulty.pick(2, 4, 13)
    valueDeck = CardDeck(decks: decks)
    queryDeck = CardDeck(decks: decks)
    observationSpace = .multiDiscrete([classes, classes])
    actionSpace = .discrete(52 * decks / classes + 1)
    super.init(game: "CountRecall", difficulty: difficulty, seed: seed)
  }

  func classify(_ card: Int) -> Int {
    switch classes {
    case 2: return CardDeck.colour(card)
    case 4: return CardDeck.suit(card)
    default: return CardDeck.rank(card)
    }
  }

  func deal() -> [Int] {
    let v = classify(valueDeck.deal())
    query = classify(queryDeck.deal())
    counts[v] += 1
    return [v, query]
  }

  public func reset(seed: UInt64?) -> Observation {
    reseed(seed)
    valueDeck.shuffle(using: &rng)
    queryDeck.shuffle(using: &rng)
    counts = [Int](repeating: 0, count: classes)
    return .multiDiscrete(deal())
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    let answer = counts[query]
    let obs = deal()
    let scale = 1 / Double(valueDeck.count - 1)
    let terminated = valueDeck.remaining == 0
    episode.end(if: terminated)
    return StepResult(
      observation: .multiDiscrete(obs), reward: a == answer ? scale : -scale, terminated: terminated,
      truncated: false)
  }
}

/// Battleship on a hidden 8x8 / 10x10 / 12x12 board with ships of 2, 3, 3 and 4 cells. The
/// observation is only whether the last shot was a new hit (0 at reset). A new hit pays 1/12,
/// anything else -1/(B^2 - 12). Terminated when all 12 ship cells are hit; truncated after B^2
/// steps.
public final class Battleship: POPGymEnv, Env {
  public static let shipSizes = [2, 3, 3, 4]
  public let boardSize: Int
  /// Ship cells, row-major (hidden state for oracles).
  public private(set) var board: [Bool] = []
  var guessed: [Bool] = []
  var hits = 0
  var steps = 0
  public let observationSpace = Space.discrete(2)
  public let actionSpace: Space
  public var maxEpisodeSteps: Int? { boardSize * boardSize }

  public var neededHits: Int { Battleship.shipSizes.reduce(0, +) }

  public init(_ difficulty: Difficulty, seed: UInt64 = 0) {
    boardSize = difficulty.pick(8, 10, 12)
    actionSpace = .multiDiscrete([boardSize, boardSize])
    super.init(game: "Battleship", difficulty: difficulty, seed: seed)
  }

  public func reset(seed: UInt64?) -> Observation {
    reseed(seed)
    let b = boardSize
    board = [Bool](repeating: false, count: b * b)
    for size in Battleship.shipSizes {
      while true {
        let r = rng.nextInt(below: b)
        let c = rng.nextInt(below: b)
        let vertical = rng.nextBool()
        let sign = rng.nextBool() ? 1 : -1
        let r2 = vertical ? r + sign * (size - 1) : r
        let c2 = vertical ? c : c + sign * (size - 1)
        guard r2 >= 0 && r2 < b && c2 >= 0 && c2 < b else { continue }
        let cells = (min(r, r2)...max(r, r2)).flatMap { rr in (min(c, c2)...max(c, c2)).map { rr * b + $0 } }
        guard cells.allSatisfy({ !board[$0] }) else { continue }
        for i in cells { board[i] = true }
        break
      }
    }
    guessed = [Bool](repeating: false, count: b * b)
    hits = 0
    steps = 0
    return .discrete(0)
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .multiDiscrete(let rc) = action else { preconditionFailure() }
    let i = rc[0] * boardSize + rc[1]
    let hit = board[i] && !guessed[i]
    guessed[i] = true
    if hit { hits += 1 }
    steps += 1
    let terminated = hits == neededHits
    let truncated = !terminated && steps >= boardSize * boardSize
    let reward = hit ? 1 / Double(neededHits) : -1 / Double(boardSize * boardSize - neededHits)
    episode.end(if: terminated || truncated)
    return StepResult(observation: .discrete(hit ? 1 : 0), reward: reward, terminated: terminated, truncated: truncated)
  }
}

/// MineSweeper on a hidden 4x4 / 6x6 / 8x8 board with 2 / 6 / 10 mines. Each step reveals one
/// cell; the observation is the number of mines in the 3x3 window around it (the cell
/// included); 0 at reset. With L = cells - mines: a new clear cell pays 1/L, a repeat
/// -0.5/(L - 2), a mine -0.5 - 1/L and terminates; clearing every safe cell terminates; the
/// episode is truncated after L steps.
public final class MineSweeper: POPGymEnv, Env {
  public let size: Int
  public let mineCount: Int
  /// Mine cells, row-major (hidden state for oracles).
  public private(set) var mines: [Bool] = []
  var neighbours: [Int] = []
  var viewed: [Bool] = []
  var steps = 0
  public let observationSpace: Space
  public let actionSpace: Space
  public var maxEpisodeSteps: Int? { safeCells }

  public var safeCells: Int { size * size - mineCount }

  public init(_ difficulty: Difficulty, seed: UInt64 = 0) {
    size = difficulty.pick(4, 6, 8)
    mineCount = difficulty.pick(2, 6, 10)
    observationSpace = .discrete(min(mineCount + 1, 10))
    actionSpace = .multiDiscrete([size, size])
    super.init(game: "MineSweeper", difficulty: difficulty, seed: seed)
  }

  public func reset(seed: UInt64?) -> Observation {
    reseed(seed)
    var cells = Array(0..<(size * size))
    rng.shuffle(&cells)
    mines = [Bool](repeating: false, count: size * size)
    for c in cells.prefix(mineCount) { mines[c] = true }
    neighbours = (0..<(size * size)).map { i in
      let (r, c) = (i / size, i % size)
      var n = 0
      for dr in -1...1 {
        for dc in -1...1 {
          let (rr, cc) = (r + dr, c + dc)
          if rr >= 0 && rr < size && cc >= 0 && cc < size && mines[rr * size + cc] { n += 1 }
        }
      }
      return n
    }
    viewed = [Bool](repeating: false, count: size * size)
    steps = 0
    return .discrete(0)
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .multiDiscrete(let rc) = action else { preconditionFailure() }
    let i = rc[0] * size + rc[1]
    let l = Double(safeCells)
    var terminated = false
    let reward: Double
    if mines[i] {
      terminated = true
      reward = -0.5 - 1 / l
    } else if viewed[i] {
      reward = -0.5 / (l - 2)
    } else {
      viewed[i] = true
      reward = 1 / l
    }
    if !terminated { terminated = (0..<(size * size)).allSatisfy { mines[$0] || viewed[$0] } }
    steps += 1
    let truncated = !terminated && steps >= safeCells
    episode.end(if: terminated || truncated)
    return StepResult(
      observation: .discrete(neighbours[i]), reward: reward, terminated: terminated, truncated: truncated)
  }
}

/// Guess whether the next card is higher (action 0) or lower (action 1) than the current one.
/// Decks 1/2/3; observation the rank (13); ±1/N, 0 on a tie; N - 1 steps, terminated.
public final class HigherLower: POPGymEnv, Env {
  var deck: CardDeck
  /// The upcoming card order (hidden state for oracles).
  public var upcoming: [Int] { Array(deck.order[deck.dealt...]).map(CardDeck.rank) }
  var current = 0
  public let observationSpace = Space.discrete(13)
  public let actionSpace = Space.discrete(2)
  public var maxEpisodeSteps: Int? { deck.count - 1 }

  public init(_ difficulty: Difficulty, seed: UInt64 = 0) {
    deck = CardDeck(decks: difficulty.pick(1, 2, 3))
    super.init(game: "HigherLower", difficulty: difficulty, seed: seed)
  }

  public func reset(seed: UInt64?) -> Observation {
    reseed(seed)
    deck.shuffle(using: &rng)
    current = CardDeck.rank(deck.deal())
    return .discrete(current)
  }

  public func step(_ action: Action) throws -> StepResult {
    try episode.check(name)
    try actionSpace.validate(action, env: name)
    guard case .discrete(let a) = action else { preconditionFailure() }
    let terminated = deck.remaining <= 1
    let next = CardDeck.rank(deck.deal())
    let scale = 1 / Double(deck.count)
    let reward: Double
    if next == current {
      reward = 0
    } else {
      reward = (next > current) == (a == 0) ? scale : -scale
    }
    current = next
    episode.end(if: terminated)
    return StepResult(observation: .discrete(next), reward: reward, terminated: terminated, truncated: false)
  }
}

/// Every POPGym game by name.
public enum POPGym {
  public static let games = [
    "RepeatPrevious", "RepeatFirst", "Autoencode", "Concentration", "CountRecall", "Battleship",
    "MineSweeper", "HigherLower",
  ]

  /// Builds a game at a difficulty.
  public static func make(game: String, difficulty: Difficulty, seed: UInt64) -> (any Env)? {
    switch game {
    case "RepeatPrevious": return RepeatPrevious(difficulty, seed: seed)
    case "RepeatFirst": return RepeatFirst(difficulty, seed: seed)
    case "Autoencode": return Autoencode(difficulty, seed: seed)
    case "Concentration": return Concentration(difficulty, seed: seed)
    case "CountRecall": return CountRecall(difficulty, seed: seed)
    case "Battleship": return Battleship(difficulty, seed: seed)
    case "MineSweeper": return MineSweeper(difficulty, seed: seed)
    case "HigherLower": return HigherLower(difficulty, seed: seed)
    default: return nil
    }
  }
}
