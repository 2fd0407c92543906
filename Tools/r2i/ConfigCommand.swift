import ArgumentParser
import Foundation
import Training
import TrainingCommandLine

/// Prints the configuration a run would have, without starting it.
struct ConfigCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "config",
    abstract:
      "Print the resolved configuration of a run (the config.json 'r2i train' would write) without starting it.",
    discussion: """
      Takes the options of 'r2i train'. The JSON printed is what the run folder's config.json \
      would hold, so 'r2i config ... > c.json' then 'r2i train --config c.json' starts exactly \
      that run (edit the file first and delete its "crc32" line to accept the edit). --keys \
      prints every setting as a dotted key=value line instead, each accepted by --set; --run \
      prints the configuration of an existing run.
      """)

  @OptionGroup var options: TrainingOptions

  @Option(help: "A TrainingConfig JSON file to start from (as 'r2i train --config').")
  var config: String?

  @Option(name: .customLong("run"), help: "Print the configuration of the run in this folder instead.")
  var runFolder: String?

  @Flag(help: "Print dotted key=value lines (one per setting, as --set takes them) instead of JSON.")
  var keys = false

  func validate() throws {
    if runFolder != nil && config != nil { throw ValidationError("--run and --config exclude each other; give one") }
  }

  func run() throws {
    let resolved: TrainingConfig
    if let runFolder {
      do {
        resolved = try options.resumed(try TrainingRun.configuration(of: URL(fileURLWithPath: runFolder)))
      } catch {
        throw ValidationError("--run: \(error)")
      }
    } else {
      var base: TrainingConfig?
      if let config {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: config)) else {
          throw ValidationError("--config: cannot read '\(config)'; give the path of a TrainingConfig JSON file")
        }
        do {
          base = try TrainingConfig.decode(data, source: config)
        } catch {
          throw ValidationError("--config: \(error)")
        }
      }
      resolved = try options.newRun(from: base)
    }
    if keys {
      for (key, value) in try resolved.settingsByKey().sorted(by: { $0.key < $1.key }) { print("\(key)=\(value)") }
    } else {
      FileHandle.standardOutput.write(try resolved.sealed())
    }
  }
}
