import Testing

@testable import Envs

/// `maxEpisodeSteps` is a bound every episode keeps, and the exact length of fixed-length tasks.
@Suite struct EpisodeBoundTests {
  /// Every registered native task with a concrete parameter where the name has one (the Python
  /// families have their own tests).
  static let names: [String] =
    EnvRegistry.names.filter { !PythonEnvironment.handles($0) }.map {
      $0.replacingOccurrences(of: "<L>", with: "7").replacingOccurrences(of: "<mapping seed>", with: "2")
    } + ["bsuite/memory_len/30"]

  /// Tasks whose episodes always last `maxEpisodeSteps` steps, whatever the actions.
  static let fixedLength: Set<String> = Set(
    ["bsuite/memory_len/7", "bsuite/memory_len/30", "bsuite/discounting_chain/2"]
      + ["RepeatPrevious", "RepeatFirst", "Autoencode", "CountRecall", "HigherLower"].flatMap { g in
        Difficulty.allCases.map { "popgym/\(g)\($0.rawValue)" }
      })

  @Test func everyTaskStatesABound() throws {
    for name in Self.names {
      let env = try EnvRegistry.make(name)
      #expect(env.maxEpisodeSteps != nil, "\(name) has no maxEpisodeSteps")
      #expect((env.maxEpisodeSteps ?? 0) >= 1, "\(name)")
    }
  }

  @Test func lengthsByHand() throws {
    // docs/environments.md: N - 1 steps for a deck of N; Autoencode 2N - 1; memory_len L + 1.
    let expected: [String: Int] = [
      "bsuite/memory_len/30": 31, "bsuite/discounting_chain/2": 100, "popgym/RepeatPreviousEasy": 51,
      "popgym/RepeatPreviousMedium": 103, "popgym/RepeatPreviousHard": 155, "popgym/RepeatFirstHard": 831,
      "popgym/AutoencodeEasy": 103, "popgym/AutoencodeMedium": 207, "popgym/ConcentrationMedium": 208,
      "popgym/CountRecallEasy": 51, "popgym/BattleshipEasy": 64, "classic/CartPole": 500,
      "classic/Pendulum-pixels": 200, "memorymaze/9x9": 1000, "memorymaze/15x15-6CL": 4000,
    ]
    for (name, steps) in expected {
      #expect(try EnvRegistry.make(name).maxEpisodeSteps == steps, "\(name)")
    }
    let limited = try TimeLimit(try EnvRegistry.make("popgym/RepeatFirstHard"), maxSteps: 40)
    #expect(limited.maxEpisodeSteps == 40)
    #expect(try TimeLimit(try EnvRegistry.make("classic/CartPole"), maxSteps: 900).maxEpisodeSteps == 500)
  }

  /// Random episodes never outlast the bound, and fixed-length tasks reach it exactly.
  @Test func randomEpisodesKeepTheBound() throws {
    var rng = SeededGenerator(seed: 11)
    for name in Self.names where !name.hasPrefix("memorymaze/") && !name.hasSuffix("-pixels") {
      let env = try EnvRegistry.make(name, seed: 3)
      let bound = try #require(env.maxEpisodeSteps)
      for episode in 0..<3 {
        let e = try run(env, seed: UInt64(episode), maxSteps: bound + 5) { env, _ in
          env.actionSpace.sample(using: &rng)
        }
        #expect(e.terminated || e.truncated, "\(name) did not end within \(bound + 5) steps")
        #expect(e.length <= bound, "\(name): \(e.length) steps > \(bound)")
        if Self.fixedLength.contains(name) { #expect(e.length == bound, "\(name): \(e.length) != \(bound)") }
      }
    }
  }
}
