import Testing

@testable import Envs

@Suite struct MemoryLengthTests {
  @Test(arguments: [1, 2, 10, 30, 100])
  func episodeStructureAndPerfectPolicy(length: Int) throws {
    let env = try MemoryLength(memoryLength: length, seed: 3)
    #expect(env.observationSpace == .box(count: 3, low: -1, high: 1))
    #expect(env.actionSpace == .discrete(2))
    for episode in 0..<20 {
      var remembered = 0
      let e = try run(env) { _, obs in
        if case .vector(let v) = obs, v[2] != 0 { remembered = v[2] > 0 ? 1 : 0 }
        return .discrete(remembered)
      }
      #expect(e.length == length + 1, "episode \(episode)")
      #expect(e.rewards.dropLast().allSatisfy { $0 == 0 })
      #expect(e.rewards.last == 1, "the memory policy is always right")
      #expect(e.terminated && !e.truncated)
      // The first step repeats the reset observation (the bsuite quirk), context included.
      #expect(e.observations[0] == e.observations[1])
      let first = try #require(e.observations[0].vector)
      let second = try #require(e.observations[2].vector)
      #expect(first[0] == 1 && first[1] == 0 && abs(first[2]) == 1)
      #expect(second[2] == 0 && abs(second[0] - (1 - 1 / Float(length))) < 1e-6)
    }
  }

  @Test func randomPolicyMeanReturnIsZero() throws {
    let env = try MemoryLength(memoryLength: 5, seed: 4)
    var rng = SeededGenerator(seed: 5)
    var returns: [Double] = []
    for _ in 0..<4000 {
      returns.append(try run(env) { e, _ in e.actionSpace.sample(using: &rng) }.total)
    }
    let (m, se) = meanAndStandardError(returns)
    #expect(abs(m) < 3 * se, "mean \(m), standard error \(se)")
    #expect(valueSet(returns) == [1, -1])
  }

  @Test func sweepAndScore() {
    #expect(BSuite.memoryLengths.count == 23)
    #expect(BSuite.memoryLengths.first == 1 && BSuite.memoryLengths.last == 100)
    #expect(BSuite.memoryLengthSolved(wrongFraction: 0.3))
    #expect(!BSuite.memoryLengthSolved(wrongFraction: 0.4))
    // A random agent is wrong half the time everywhere: score 0.
    #expect(BSuite.memoryLengthScore(wrongFractions: [Double](repeating: 0.5, count: 23)) == 0)
    #expect(BSuite.memoryLengthScore(wrongFractions: [0, 0.1, 0.5, 0.9]) == 0.5)
  }

  @Test func invalidUseThrowsHelpfulErrors() throws {
    #expect(throws: EnvError.self) { try MemoryLength(memoryLength: 0) }
    let env = try MemoryLength(memoryLength: 2)
    #expect(throws: EnvError.episodeOver(env: "bsuite/memory_len/2")) { try env.step(.discrete(0)) }
    _ = try env.reset()
    do {
      _ = try env.step(.discrete(2))
      Issue.record("action 2 accepted")
    } catch let e as EnvError {
      #expect(e.description.contains("0...1"))
    }
  }
}

@Suite struct DiscountingChainTests {
  @Test func everyArmPaysOnceAtItsStep() throws {
    for seed in [0, 3, 17] {
      let env = try DiscountingChain(mappingSeed: seed)
      #expect(env.actionSpace == .discrete(5))
      for arm in 0..<5 {
        let e = try run(env) { _, _ in .discrete(arm) }
        #expect(e.length == 100 && e.terminated && !e.truncated)
        let paid = e.rewards.enumerated().filter { $0.element != 0 }
        #expect(paid.count == 1)
        #expect(paid[0].offset + 1 == DiscountingChain.rewardSteps[arm])
        #expect(paid[0].element == (arm == seed % 5 ? 1.1 : 1.0))
        // Observation: [context, t/100]; context is -1 at reset, then the first action.
        let r = try #require(e.observations[0].vector)
        let o = try #require(e.observations[1].vector)
        #expect(r == [-1, 0])
        #expect(o == [Float(arm), 0.01])
      }
      // Only the first action matters.
      var t = 0
      let e = try run(env) { _, _ in
        t += 1
        return .discrete(t == 1 ? seed % 5 : (seed + 1) % 5)
      }
      #expect(isClose(e.total, 1.1))
    }
  }

  @Test func randomPolicyMeanReturnIs1_02() throws {
    let env = try DiscountingChain(mappingSeed: 2)
    var rng = SeededGenerator(seed: 6)
    var returns: [Double] = []
    for _ in 0..<3000 {
      returns.append(try run(env) { e, _ in e.actionSpace.sample(using: &rng) }.total)
    }
    let (m, se) = meanAndStandardError(returns)
    #expect(abs(m - 1.02) < 3 * se, "mean \(m), standard error \(se)")
    #expect(isClose(BSuite.discountingChainScore(meanReturn: 1.02), 0.2))
    #expect(BSuite.discountingChainScore(meanReturn: 1.1) == 1)
    #expect(BSuite.discountingChainScore(meanReturn: 0.5) == 0)
  }
}
