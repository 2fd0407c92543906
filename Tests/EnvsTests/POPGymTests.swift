import Testing

@testable import Envs

@Suite struct POPGymSpaceTests {
  @Test func spacesMatchTheSpec() throws {
    func spaces(_ name: String) throws -> (Space, Space) {
      let e = try EnvRegistry.make("popgym/" + name)
      return (e.observationSpace, e.actionSpace)
    }
    for d in ["Easy", "Medium", "Hard"] {
      #expect(try spaces("RepeatPrevious" + d) == (.discrete(4), .discrete(4)))
      #expect(try spaces("RepeatFirst" + d) == (.discrete(4), .discrete(4)))
      #expect(try spaces("Autoencode" + d) == (.multiDiscrete([2, 4]), .discrete(4)))
      #expect(try spaces("HigherLower" + d) == (.discrete(13), .discrete(2)))
    }
    #expect(try spaces("ConcentrationEasy") == (.multiDiscrete([Int](repeating: 3, count: 52)), .discrete(52)))
    #expect(try spaces("ConcentrationMedium") == (.multiDiscrete([Int](repeating: 3, count: 104)), .discrete(104)))
    #expect(try spaces("ConcentrationHard") == (.multiDiscrete([Int](repeating: 14, count: 52)), .discrete(52)))
    #expect(try spaces("CountRecallEasy") == (.multiDiscrete([2, 2]), .discrete(27)))
    #expect(try spaces("CountRecallMedium") == (.multiDiscrete([4, 4]), .discrete(27)))
    #expect(try spaces("CountRecallHard") == (.multiDiscrete([13, 13]), .discrete(17)))
    #expect(try spaces("BattleshipEasy") == (.discrete(2), .multiDiscrete([8, 8])))
    #expect(try spaces("BattleshipMedium") == (.discrete(2), .multiDiscrete([10, 10])))
    #expect(try spaces("BattleshipHard") == (.discrete(2), .multiDiscrete([12, 12])))
    #expect(try spaces("MineSweeperEasy") == (.discrete(3), .multiDiscrete([4, 4])))
    #expect(try spaces("MineSweeperMedium") == (.discrete(7), .multiDiscrete([6, 6])))
    #expect(try spaces("MineSweeperHard") == (.discrete(10), .multiDiscrete([8, 8])))
  }
}

@Suite struct POPGymEpisodeTests {
  @Test(arguments: Difficulty.allCases)
  func repeatPrevious(_ d: Difficulty) throws {
    let env = RepeatPrevious(d, seed: 1)
    let n = [Difficulty.easy: 52, .medium: 104, .hard: 156][d]!
    let k = env.k
    #expect(k == [Difficulty.easy: 4, .medium: 32, .hard: 64][d]!)
    var seen: [Int] = []
    let e = try run(env) { _, obs in
      guard case .discrete(let s) = obs else { return .discrete(0) }
      seen.append(s)
      return .discrete(seen.count >= k ? seen[seen.count - k] : 0)
    }
    // popgym 1.0.7 ends the episode as terminated (no bootstrap past the last card), not truncated.
    #expect(e.length == n - 1 && e.terminated && !e.truncated)
    #expect(e.rewards.prefix(k - 1).allSatisfy { $0 == 0 })
    #expect(e.rewards.dropFirst(k - 1).allSatisfy { isClose($0, 1 / Double(n - k)) })
    #expect(isClose(e.total, 1))
    // A wrong answer costs exactly the scale.
    var rng = SeededGenerator(seed: 2)
    let r = try run(env) { e, _ in e.actionSpace.sample(using: &rng) }
    #expect(valueSet(r.rewards).isSubset(of: valueSet([0, 1 / Double(n - k), -1 / Double(n - k)])))
    #expect(r.length == n - 1 && r.terminated && !r.truncated)
  }

  @Test(arguments: Difficulty.allCases)
  func repeatFirst(_ d: Difficulty) throws {
    let env = RepeatFirst(d, seed: 1)
    let n = 52 * [Difficulty.easy: 1, .medium: 8, .hard: 16][d]!
    var first = -1
    let e = try run(env) { _, obs in
      if first < 0, case .discrete(let s) = obs { first = s }
      return .discrete(first)
    }
    #expect(e.length == n - 1 && e.terminated && !e.truncated)
    #expect(e.rewards.allSatisfy { isClose($0, 1 / Double(n - 1)) })
    #expect(isClose(e.total, 1))
  }

  @Test(arguments: Difficulty.allCases)
  func autoencode(_ d: Difficulty) throws {
    let env = Autoencode(d, seed: 1)
    let n = 52 * [Difficulty.easy: 1, .medium: 2, .hard: 3][d]!
    var suits: [Int] = []
    var modes: [Int] = []
    let e = try run(env) { _, obs in
      guard case .multiDiscrete(let v) = obs else { return .discrete(0) }
      modes.append(v[0])
      // Watch observations, and the first one in play mode, carry a card.
      if v[0] == 1 || modes.filter({ $0 == 0 }).count == 1 { suits.append(v[1]) }
      return v[0] == 0 ? .discrete(suits.removeLast()) : .discrete(0)
    }
    #expect(e.length == 2 * n - 1 && e.terminated && !e.truncated)
    #expect(e.rewards.prefix(n - 1).allSatisfy { $0 == 0 })
    #expect(e.rewards.dropFirst(n - 1).allSatisfy { isClose($0, 1 / Double(n)) })
    #expect(isClose(e.total, 1))
    #expect(modes.prefix(n).filter { $0 == 1 }.count == n - 1)
    // Play observations are (0, 0).
    #expect(e.observations.suffix(n).allSatisfy { $0 == .multiDiscrete([0, 0]) })
  }

  @Test(arguments: Difficulty.allCases)
  func concentration(_ d: Difficulty) throws {
    let env = Concentration(d, seed: 1)
    let n = env.cardCount
    #expect(env.episodeLength == [Difficulty.easy: 104, .medium: 208, .hard: 104][d]!)
    // An oracle that knows the layout flips matching pairs: +1 in N steps, terminated.
    var plan: [Int] = []
    let e = try run(env) { env, _ in
      let c = env as! Concentration
      if plan.isEmpty {
        let open = (0..<n).filter { !c.faceUp.contains($0) }
        let a = open[0]
        let b = open.dropFirst().first { c.values[$0] == c.values[a] }!
        plan = [a, b]
      }
      return .discrete(plan.removeFirst())
    }
    #expect(e.length == n && e.terminated && !e.truncated)
    #expect(isClose(e.total, 1))
    #expect(valueSet(e.rewards) == valueSet([0, 1 / Double(n / 2)]))
    // The step of the second flip shows both cards; the next step hides unmatched ones.
    _ = env.reset(seed: 5)
    let a = 0
    let b = (1..<n).first { env.values[$0] != env.values[a] }!
    _ = try env.step(.discrete(a))
    let second = try env.step(.discrete(b))
    let shown = try #require(second.observation.multiDiscrete)
    #expect(shown[a] == env.values[a] && shown[b] == env.values[b])
    #expect(isClose(second.reward, -2 / Double(env.episodeLength)))
    let third = try env.step(.discrete(b))
    let later = try #require(third.observation.multiDiscrete)
    #expect(later[a] == env.valueCount)  // a is face down again
    // Flipping a matched card costs 1/len per card in play.
    _ = env.reset(seed: 6)
    let x = 0
    let y = (1..<n).first { env.values[$0] == env.values[x] }!
    _ = try env.step(.discrete(x))
    _ = try env.step(.discrete(y))
    let again = try env.step(.discrete(x))
    #expect(isClose(again.reward, -1 / Double(env.episodeLength)))
    // A random policy is truncated at exactly len steps.
    var rng = SeededGenerator(seed: 7)
    let r = try run(env) { e, _ in e.actionSpace.sample(using: &rng) }
    #expect(r.length == env.episodeLength && r.truncated && !r.terminated)
    let len = Double(env.episodeLength)
    #expect(valueSet(r.rewards).isSubset(of: valueSet([0, 1 / Double(n / 2), -2 / len, -1 / len])))
  }

  @Test(arguments: Difficulty.allCases)
  func countRecall(_ d: Difficulty) throws {
    let env = CountRecall(d, seed: 1)
    let n = 52 * [Difficulty.easy: 1, .medium: 2, .hard: 4][d]!
    var counts = [Int](repeating: 0, count: env.classes)
    let e = try run(env) { _, obs in
      guard case .multiDiscrete(let v) = obs else { return .discrete(0) }
      counts[v[0]] += 1
      return .discrete(counts[v[1]])
    }
    #expect(e.length == n - 1 && e.terminated && !e.truncated)
    #expect(e.rewards.allSatisfy { isClose($0, 1 / Double(n - 1)) })
    #expect(isClose(e.total, 1))
    // The largest possible count (every card of a class) is a valid action.
    #expect(counts.max()! <= env.actionSpace.flatSize - 1)
  }

  @Test(arguments: Difficulty.allCases)
  func battleship(_ d: Difficulty) throws {
    let env = Battleship(d, seed: 1)
    let b = env.boardSize
    let e = try run(env) { env, _ in
      let s = env as! Battleship
      let i = s.board.indices.first { s.board[$0] && !s.guessed[$0] }!
      return .multiDiscrete([i / b, i % b])
    }
    #expect(e.length == 12 && e.terminated && !e.truncated)
    #expect(isClose(e.total, 1))
    #expect(e.observations.dropFirst().allSatisfy { $0 == .discrete(1) })
    #expect(e.observations[0] == .discrete(0))
    #expect(env.board.filter { $0 }.count == 12)
    // Shooting the same water cell forever: truncated after B^2 steps, every step penalised.
    let water = env.board.firstIndex(of: false)!
    let r = try run(env, seed: 1) { _, _ in .multiDiscrete([water / b, water % b]) }
    #expect(r.length == b * b && r.truncated && !r.terminated)
    #expect(r.rewards.allSatisfy { isClose($0, -1 / Double(b * b - 12)) })
  }

  @Test(arguments: Difficulty.allCases)
  func mineSweeper(_ d: Difficulty) throws {
    let env = MineSweeper(d, seed: 1)
    let s = env.size
    let l = env.safeCells
    let e = try run(env) { env, _ in
      let m = env as! MineSweeper
      let i = (0..<(s * s)).first { !m.mines[$0] && !m.viewed[$0] }!
      return .multiDiscrete([i / s, i % s])
    }
    #expect(e.length == l && e.terminated && !e.truncated)
    #expect(isClose(e.total, 1))
    // Observations count the mines in the 3x3 window.
    _ = env.reset(seed: 2)
    for i in 0..<(s * s) where !env.mines[i] {
      let (r, c) = (i / s, i % s)
      var expected = 0
      for dr in -1...1 {
        for dc in -1...1 where r + dr >= 0 && r + dr < s && c + dc >= 0 && c + dc < s {
          if env.mines[(r + dr) * s + c + dc] { expected += 1 }
        }
      }
      _ = env.reset(seed: 2)
      let step = try env.step(.multiDiscrete([r, c]))
      #expect(step.observation == .discrete(expected))
    }
    // Repeating a cell costs -0.5/(L-2); a mine costs -0.5 - 1/L and terminates.
    _ = env.reset(seed: 3)
    let safe = env.mines.firstIndex(of: false)!
    _ = try env.step(.multiDiscrete([safe / s, safe % s]))
    let repeatStep = try env.step(.multiDiscrete([safe / s, safe % s]))
    #expect(isClose(repeatStep.reward, -0.5 / Double(l - 2)))
    let mine = env.mines.firstIndex(of: true)!
    let boom = try env.step(.multiDiscrete([mine / s, mine % s]))
    #expect(boom.terminated && isClose(boom.reward, -0.5 - 1 / Double(l)))
    // Repeating one safe cell: truncated after L steps.
    let r = try run(env, seed: 4) { env, _ in
      let m = env as! MineSweeper
      let i = m.mines.firstIndex(of: false)!
      return .multiDiscrete([i / s, i % s])
    }
    #expect(r.length == l && r.truncated && !r.terminated)
  }

  @Test(arguments: Difficulty.allCases)
  func higherLower(_ d: Difficulty) throws {
    let env = HigherLower(d, seed: 1)
    let n = 52 * [Difficulty.easy: 1, .medium: 2, .hard: 3][d]!
    var ties = 0
    let e = try run(env) { env, obs in
      let h = env as! HigherLower
      guard case .discrete(let current) = obs, let next = h.upcoming.first else { return .discrete(0) }
      if next == current { ties += 1 }
      return .discrete(next > current ? 0 : 1)
    }
    #expect(e.length == n - 1 && e.terminated && !e.truncated)
    #expect(valueSet(e.rewards).isSubset(of: valueSet([0, 1 / Double(n)])))
    // The oracle is right on every non-tie: return = (N - 1 - ties) / N.
    #expect(isClose(e.total, Double(n - 1 - ties) / Double(n)))
    #expect(e.rewards.filter { $0 == 0 }.count == ties)
  }
}

@Suite struct POPGymStatisticsTests {
  /// Random policies: RepeatPrevious, RepeatFirst and Autoencode have mean return -0.5
  /// (each scored step is right with probability 1/4).
  @Test(arguments: ["popgym/RepeatPreviousEasy", "popgym/RepeatFirstEasy", "popgym/AutoencodeEasy"])
  func randomPolicyMeanReturn(name: String) throws {
    let env = try EnvRegistry.make(name, seed: 8)
    var rng = SeededGenerator(seed: 9)
    var returns: [Double] = []
    for _ in 0..<800 {
      returns.append(try run(env) { e, _ in e.actionSpace.sample(using: &rng) }.total)
    }
    let (m, se) = meanAndStandardError(returns)
    #expect(abs(m + 0.5) < 3 * se, "\(name): mean \(m), standard error \(se)")
  }

  @Test func sameSeedSameEpisodeDifferentSeedDifferentDeck() throws {
    for name in POPGym.games.map({ "popgym/\($0)Easy" }) {
      let env = try EnvRegistry.make(name)
      func episode(_ seed: UInt64) throws -> [Observation] {
        var rng = SeededGenerator(seed: 99)
        return try run(env, seed: seed) { e, _ in e.actionSpace.sample(using: &rng) }.observations
      }
      #expect(try episode(5) == episode(5), "\(name)")
      #expect(try episode(5) != episode(6), "\(name)")
    }
  }
}
