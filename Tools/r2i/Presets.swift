import ArgumentParser
import CommandLineSupport
import Foundation
import Training
import WorldModel

/// Prints the paper's recipes setting by setting, with where each comes from in the reference,
/// or (`--sizes`) the world-model presets with their sizes and parameter counts.
struct Presets: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Print the paper's recipes (every setting of every preset side by side, with its source in the reference), or with --sizes the world-model sizes and parameter counts for the three backbones."
  )

  @Flag(help: "Print the world-model presets' sizes and parameter counts instead of the recipes.")
  var sizes = false

  @Option(help: "Observation: 'default' (the preset's own), 'vector:N' or 'image' (64x64x3).")
  var observation: String = "default"

  @Option(parsing: .unconditional, help: "Number of discrete actions, 1...65536.")
  var actions: Int = 4

  @Flag(help: "Also count the built modules (slower: allocates every preset) and check they match.")
  var verify = false

  func validate() throws {
    try OptionCheck.range(actions, 1...65536, "--actions")
    _ = try parsedObservation()
  }

  func parsedObservation() throws -> ObservationKind? {
    if observation == "default" { return nil }
    if observation == "image" { return .image(height: 64, width: 64, channels: 3) }
    if observation.hasPrefix("vector:"), let n = Int(observation.dropFirst(7)), (1...1_048_576).contains(n) {
      return .vector(size: n)
    }
    throw ValidationError(
      "--observation must be 'default', 'image' or 'vector:N' with N in 1...1048576, got '\(observation)'")
  }

  func run() throws {
    if sizes { try printSizes() } else { try printRecipes() }
  }

  func printRecipes() throws {
    let recipes = PaperRecipe.allCases
    let values = try recipes.map { try $0.settings(env: $0.standIn) }
    let header = ["setting"] + recipes.map(\.rawValue) + ["reference"]
    var rows = PaperRecipe.settingSources.map { row in
      [row.key] + values.map { $0[row.key] ?? "-" } + [row.source]
    }
    rows.append(["(source)"] + recipes.map(\.source) + [""])
    printTable(header: header, rows: rows)
    print(
      """

      'r2i train --preset NAME' trains with a recipe whole; the DreamerV3 baseline (--backbone dreamerv3) takes \
      the same with the GRU core. The reference is chandar-lab/Recall2Imagine (configs.yaml; BSuite from \
      configs_backup.yaml); docs/presets.md has this table and what is not reproduced. A run's config.json lists \
      what departs from its environment's recipe ("departures"); the default preset, small, is this project's \
      CPU settings and departs in several ways.
      """)
  }

  func printTable(header: [String], rows: [[String]]) {
    let widths = header.indices.map { i in max(header[i].count, rows.map { $0[i].count }.max() ?? 0) }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    print(line(header))
    print(line(widths.map { String(repeating: "-", count: $0) }))
    for r in rows { print(line(r)) }
  }

  func printSizes() throws {
    let obs = try parsedObservation()
    let header = [
      "preset", "observation", "deter", "units", "mlp", "cnn", "SSM P/H/layers", "Transformer layers/width/heads",
      "r2i params", "dreamerv3 params", "transformer params",
    ]
    var rows: [[String]] = []
    for p in WorldModelPreset.allCases {
      let configs = Backbone.allCases.map {
        WorldModelConfig.preset(p, backbone: $0, observation: obs, actionSize: actions)
      }
      let r = configs[0]
      var counts = configs.map(\.parameterCount)
      if verify {
        for (i, c) in configs.enumerated() {
          let built = WorldModel(config: c, seed: 0).parameterCount
          guard built == counts[i] else {
            throw ValidationError("\(p.rawValue)/\(c.backbone): formula \(counts[i]) but the built model has \(built)")
          }
          counts[i] = built
        }
      }
      let o: String
      switch r.observation {
      case .vector(let n): o = "vector \(n)"
      case .image(let h, let w, let c): o = "image \(h)x\(w)x\(c)"
      }
      let t = r.transformerSettings
      rows.append(
        [
          p.rawValue, o, "\(r.deter)", "\(r.units)", "\(r.mlpLayers)", "\(r.cnnDepth)",
          "\(r.ssm.states)/\(r.ssm.channels)/\(r.ssm.layers)", "\(t.layers)/\(t.width)/\(t.heads)",
        ] + counts.map(millions))
    }
    printTable(header: header, rows: rows)
    print(
      "\n\(actions) discrete actions; counts are the whole world model (encoder, backbone, decoder, reward and continue heads)\(verify ? ", checked against the built modules" : "")."
    )
  }

  func millions(_ n: Int) -> String { String(format: "%.2fM (%d)", Double(n) / 1e6, n) }
}
