import Agent
import Foundation
import TestSupport
import Testing
import Training
import WorldModel

/// The paper's recipes (``PaperRecipe``) against the table resolved by hand from the
/// reference's configuration files (`docs/presets.md`), and the departures every run lists.
@Suite struct PaperRecipeTests {
  static var presetsPage: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("docs/presets.md")
  }

  /// The recipe table of `docs/presets.md`: for each recipe column, dotted key -> cell.
  static func checkedInTable() throws -> [String: [String: String]] {
    let lines = try String(contentsOf: presetsPage, encoding: .utf8).split(separator: "\n").map(String.init)
    let header = try #require(lines.firstIndex { $0.hasPrefix("| setting |") }, "no recipe table in docs/presets.md")
    func cells(_ line: String) -> [String] {
      line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
        .map { $0.trimmingCharacters(in: .whitespaces) }
    }
    let columns = cells(lines[header])
    var table: [String: [String: String]] = [:]
    for line in lines[(header + 2)...] {
      guard line.hasPrefix("|") else { break }
      let row = cells(line)
      let key = row[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
      for (i, column) in columns.enumerated() where i > 0 && i < columns.count - 1 {
        table[column, default: [:]][key] = row[i]
      }
    }
    return table
  }

  /// Whether a code value (JSON text) and a table cell say the same: numbers within 1e-6
  /// relative, `-` for unset, strings without their quotes.
  static func same(_ code: String, _ cell: String) -> Bool {
    if cell == "-" { return code == "null" }
    if let a = Double(code), let b = Double(cell) { return abs(a - b) <= 1e-6 * max(abs(a), abs(b)) }
    return code.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) == cell
  }

  @Test(arguments: PaperRecipe.allCases)
  func everyRecipeIsTheCheckedInTable(_ recipe: PaperRecipe) throws {
    let table = try #require(try Self.checkedInTable()[recipe.rawValue], "no column \(recipe.rawValue)")
    let code = try recipe.settings(env: recipe.standIn)
    // Every setting the recipe decides is a row of the table, and every row matches.
    let decided = Set(code.keys).filter { key in
      !Departure.bookkeepingKeys.contains(key) && !PaperRecipe.followsEnvironment(key)
        && !PaperRecipe.isTransformerSetting(key)
    }
    #expect(decided.subtracting(table.keys).sorted() == [], "\(recipe): settings without a row in docs/presets.md")
    #expect(Set(PaperRecipe.settingSources.map(\.key)) == Set(table.keys), "r2i presets and the page list other rows")
    for (key, cell) in table.sorted(by: { $0.key < $1.key }) {
      let value = try #require(code[key], "\(recipe): the code has no setting \(key)")
      #expect(Self.same(value, cell), "\(recipe) \(key): code \(value), docs/presets.md \(cell)")
    }
  }

  /// `--preset popgym` on a POPGym game is the recipe with nothing departing, for every
  /// backbone (the Transformer's: the recipe with its core), and reports name the agent plainly.
  @Test(arguments: Backbone.allCases)
  func aRecipePresetIsThePaperAgent(_ backbone: Backbone) throws {
    let c = try TrainingConfig.defaults(
      env: "popgym/RepeatPreviousEasy", backbone: backbone, preset: .worldModel(.popgym), seed: 3)
    try c.validate()
    #expect(c.batch == 4 && c.length == 1024 && c.trainRatio == 64 && c.envs == 8 && c.prefill == 32768)
    #expect(c.steps == 200_000_000 && c.evaluation == .sample && c.seed == 3)
    #expect(try c.departures() == [])
    #expect(try c.agentName() == backbone.displayName)
    // Budget, seed and logging are not departures; a changed learning rate is.
    var d = c
    d.steps = 1000
    d.seed = 9
    d.logEvery = 7
    (d.logSeconds, d.checkpointKeep, d.openLoopMinutes) = (5, 4, 0)
    #expect(try d.departures() == [])
    d.agent.actorCritic.actorOptimizer.learningRate = 1e-3
    d.evaluation = .greedy
    #expect(try d.departures().map(\.name) == ["learningRates", "greedyEvaluation"])
    #expect(try d.agentName().hasSuffix(" + learningRates + greedyEvaluation"))
    let lr = try #require(try d.departures().first?.settings.first)
    #expect(lr.key == "agent.actorCritic.actorOptimizer.learningRate" && Self.same(lr.paper, "3e-5"))
  }

  /// Without a preset, Atari and DeepMind Control names train with their paper recipe (sizes and
  /// training settings: nothing departs), everything else with the small preset.
  @Test func theOtherDomainsDefaultToTheirRecipe() throws {
    #expect(TrainingConfig.defaultPreset(env: "atari:Pong") == .worldModel(.atari100k))
    #expect(TrainingConfig.defaultPreset(env: "dmc:walker_walk") == .worldModel(.dmcProprio))
    #expect(TrainingConfig.defaultPreset(env: "dmc-vision:walker_walk") == .worldModel(.dmcVision))
    for env in ["gym:CartPole-v1", "classic/CartPole", "real-popgym:RepeatPreviousEasy", "bsuite/memory_len/10"] {
      #expect(TrainingConfig.defaultPreset(env: env) == .small, "\(env)")
    }
    let c = try TrainingConfig.defaults(env: "dmc:cartpole_balance", backbone: .dreamerv3)
    #expect(c.preset == .worldModel(.dmcProprio) && c.batch == 4 && c.length == 1024 && c.trainRatio == 512)
    #expect(c.envs == 4 && c.evaluation == .sample)
    #expect(try c.departures() == [] && c.agentName() == "DreamerV3")
  }

  /// The BSuite recipe at the small preset's sizes departs in exactly one way; the CPU
  /// defaults in every way docs/presets.md lists; the GRU core ignores the SSM's settings.
  @Test func theDeparturesOfTheMemoryBenchmarksTwoAgents() throws {
    let env = "bsuite/memory_len/10"
    let paper = try TrainingConfig.defaults(env: env, backbone: .r2i, preset: .worldModel(.bsuite))
      .withSizes(of: .small)
    #expect(try paper.departures().map(\.name) == ["smallSizes"])
    #expect(try paper.agentName() == "R2I + smallSizes")
    #expect(paper.agent.worldModel.ssm.discretization == .zeroOrderHold && paper.batch == 16 && paper.length == 256)
    let small = AgentConfig.small(
      backbone: .r2i, observation: paper.agent.worldModel.observation, actions: paper.agent.actions)
    #expect(paper.agent.worldModel.deter == small.worldModel.deter && paper.agent.units == small.units)
    #expect(paper.agent.worldModel.encoderLayers == nil)

    let cpu = try TrainingConfig.defaults(env: env, backbone: .r2i)
    #expect(
      try cpu.departures().map(\.name) == [
        "smallSizes", "batchShape", "wholeEpisodes", "trainRatio", "envs", "prefill", "replayCapacity",
        "learningRates", "imaginationStarts", "rewardByAction", "clipEigenvalues", "ssmResets", "discretization",
        "initialState",
      ])
    let gru = try TrainingConfig.defaults(env: env, backbone: .dreamerv3)
    let names = try gru.departures().map(\.name)
    #expect(!names.contains("clipEigenvalues") && !names.contains("discretization") && names.contains("initialState"))
    #expect(try gru.agentName().hasPrefix("DreamerV3 + smallSizes + "))
    // Sizes other than the small preset's are named "sizes".
    #expect(try paper.withSizes(of: .worldModel(.dreamerM)).departures().map(\.name) == ["sizes"])
  }

  /// A recipe's replay that would fill more than a quarter of the machine's memory is cut to fit and
  /// named; one that fits is kept.
  @Test func aReplayTooLargeForThisMachineIsCutAndNamed() throws {
    let maze = try TrainingConfig.recipe(.memorymaze, env: "memorymaze/9x9", backbone: .r2i)
    let quarter = Double(ProcessInfo.processInfo.physicalMemory) / 4
    #expect(Double(maze.replayCapacity) * 64 * 64 * 3 <= quarter)
    if maze.replayCapacity < 10_000_000 {
      #expect(try maze.departures().map(\.name) == ["replayCapacity"])
    } else {
      #expect(try maze.departures() == [])
    }
    let bsuite = try TrainingConfig.recipe(.bsuite, env: "bsuite/memory_len/10", backbone: .r2i)
    #expect(bsuite.replayCapacity == 5_000_000)
    #expect(try bsuite.departures() == [])
  }

  /// `config.json` lists the departures; reading it back ignores the list (it is derived), and
  /// `--set departures=...` is refused.
  @Test func configFilesListTheirDeparturesWhichAreNotSettings() throws {
    let c = try TrainingConfig.defaults(env: "bsuite/memory_len/10", backbone: .r2i, preset: .worldModel(.bsuite))
      .withSizes(of: .small)
    let data = try c.sealed()
    let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
    #expect(object["departures"] as? [String] == ["smallSizes"])
    #expect(try TrainingConfig.decode(data, source: "config.json") == c)
    #expect {
      try c.applying(["departures=[]"])
    } throws: { "\($0)".contains("departures") && "\($0)".contains("derived") }
  }
}
