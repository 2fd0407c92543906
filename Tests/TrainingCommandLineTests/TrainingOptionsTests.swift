import ArgumentParser
import Foundation
import TestSupport
import Testing
import Training
import TrainingCommandLine

@Suite struct TrainingOptionsTests {
  /// The options build the defaults with what was given; a preset is a typed choice.
  @Test func optionsBuildTheConfigurationOfANewRun() throws {
    let o = try TrainingOptions.parse([
      "--env", "bsuite/memory_len/5", "--backbone", "dreamerv3", "--preset", "bsuite", "--steps", "1234", "--seed",
      "9", "--set", "trainRatio=16",
    ])
    let c = try o.newRun()
    var expected = try TrainingConfig.defaults(
      env: "bsuite/memory_len/5", backbone: .dreamerv3, preset: .worldModel(.bsuite), steps: 1234, seed: 9)
    expected.trainRatio = 16
    #expect(c == expected)
    #expect(try TrainingOptions.parse([]).newRun() == TrainingConfig.defaults(env: "classic/CartPole", backbone: .r2i))
    #expect(throws: (any Error).self) { try TrainingOptions.parse(["--preset", "huge"]) }
    #expect(throws: (any Error).self) { try TrainingOptions.parse(["--env", "nowhere/Nothing"]) }
    #expect(throws: (any Error).self) { try TrainingOptions.parse(["--set", "trainRatoi=3"]).newRun() }
  }

  /// A recipe preset without --steps or --envs takes the recipe's; --greedy evaluates greedily;
  /// --sizes takes another preset's model sizes and keeps everything else.
  @Test func recipePresetsGreedyAndSizes() throws {
    let recipe = try TrainingOptions.parse(["--env", "popgym/RepeatPreviousEasy", "--preset", "popgym"]).newRun()
    #expect(recipe.steps == 200_000_000 && recipe.envs == 8 && recipe.evaluation == .sample)
    #expect(try recipe.departures() == [])
    let greedy = try TrainingOptions.parse([
      "--env", "popgym/RepeatPreviousEasy", "--preset", "popgym", "--greedy", "--steps", "100", "--envs", "2",
    ]).newRun()
    #expect(greedy.steps == 100 && greedy.envs == 2 && greedy.evaluation == .greedy)
    #expect(try greedy.departures().map(\.name) == ["envs", "greedyEvaluation"])
    let sized = try TrainingOptions.parse(["--env", "bsuite/memory_len/5", "--preset", "bsuite", "--sizes", "small"])
      .newRun()
    #expect(try sized.agentName() == "R2I + smallSizes")
    #expect(sized.trainRatio == 1024 && sized.agent.worldModel.deter == 128)
    #expect(throws: (any Error).self) { try TrainingOptions.parse(["--sizes", "tiny"]) }
  }

  /// Options given to resume a run are checked against it by the run's own compatibility check:
  /// steps and minutes may change, anything else that differs is named.
  @Test func resumingOptionsAreCheckedAgainstTheStoredRun() throws {
    let stored = try TinyConfigs.training()
    func difference(_ arguments: [String]) throws -> String? {
      stored.difference(from: try TrainingOptions.parse(arguments).resumed(stored))
    }
    #expect(try difference(["--steps", "5", "--minutes", "2"]) == nil)
    #expect(try difference(["--env", stored.env, "--seed", "\(stored.seed)", "--set", "batch=\(stored.batch)"]) == nil)
    #expect(try difference(["--env", "classic/CartPole"]) == "env \(stored.env), not classic/CartPole")
    #expect(try difference(["--envs", "3"]) == "\(stored.envs) envs, not 3")
    #expect(
      try difference(["--set", "batch=8"]) == "batch \(stored.batch) x \(stored.length), not 8 x \(stored.length)")
    #expect(try difference(["--preset", "bsuite"]) == "preset small, not bsuite")
    // A --config base may not be contradicted by --env, --backbone or --preset.
    #expect(throws: ValidationError.self) {
      try TrainingOptions.parse(["--backbone", "dreamerv3"]).newRun(from: stored)
    }
    let based = try TrainingOptions.parse(["--seed", "11", "--steps", "30"]).newRun(from: stored)
    #expect(based.seed == 11 && based.steps == 30 && based.env == stored.env)
  }
}
