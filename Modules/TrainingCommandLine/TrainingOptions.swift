import Agent
import ArgumentParser
import CommandLineSupport
import Envs
import Training

/// The options of one training run, shared by `r2i train` and the memory sweep's runs:
/// environment, backbone, preset, budget, environments, seed and `--set` settings. Each is
/// optional: a new run takes the defaults of ``TrainingConfig/defaults(env:backbone:preset:steps:envs:seed:)``
/// for what is not given; a resumed run must not contradict its stored configuration.
public struct TrainingOptions: ParsableArguments {
  @Option(help: "Environment name (see 'r2i envs'), e.g. classic/CartPole, bsuite/memory_len/10.")
  public var env: String?

  @Option(help: "Sequence backbone: r2i, dreamerv3 or transformer (a causal Transformer, this project's third).")
  public var backbone: Backbone?

  @Option(
    help:
      "Preset: small (this project's CPU settings; the default, but for atari:, dmc: and dmc-vision: environments, whose default is their paper recipe), one of the paper's recipes whole (bsuite, popgym, memorymaze, atari100k, dmc-proprio, dmc-vision; see 'r2i presets') or other world-model sizes (dreamerv3-S ...)."
  )
  public var preset: AgentPreset?

  @Option(
    parsing: .unconditional,
    help:
      "Environment steps to train for, 1...1000000000 (default 50000, or the recipe's; with --resume, a new total)."
  )
  public var steps: Int?

  @Option(
    parsing: .unconditional,
    help:
      "Wall-clock budget in minutes, over all sessions of the run (default: none); the run stops at --steps or here, whichever comes first."
  )
  public var minutes: Double?

  @Option(parsing: .unconditional, help: "Environments stepped together, 1...1024 (default 4, or the recipe's).")
  public var envs: Int?

  @Flag(help: "Evaluate with the policy's most likely actions (default: sampled, as the paper).")
  public var greedy = false

  @Option(
    help:
      "Model sizes of this preset (e.g. small) with every other setting from --preset: --preset bsuite --sizes small is the paper's BSuite recipe at CPU sizes."
  )
  public var sizes: AgentPreset?

  @Option(parsing: .unconditional, help: "Seed of the run (0...2^64-1; default 0).")
  public var seed: UInt64?

  @Option(
    name: .customLong("set"),
    help:
      "Change one setting, key=value with a dotted key (repeatable), e.g. --set trainRatio=32 --set agent.actorCritic.entropy=0.001."
  )
  public var settings: [String] = []

  public init() {}

  public func validate() throws {
    if let steps { try OptionCheck.range(steps, 1...1_000_000_000, "--steps") }
    if let envs { try OptionCheck.range(envs, 1...1024, "--envs") }
    if let minutes, !(minutes > 0 && minutes <= 1e6) {
      throw ValidationError("--minutes must be in (0, 1000000], got \(minutes)")
    }
    if let env {
      do {
        _ = try EnvRegistry.make(env)
      } catch {
        throw ValidationError("--env: \(error)")
      }
    }
  }

  /// The configuration of a new run with these options, from `base` (a `--config` file) or the
  /// defaults; settings applied last, the result validated. Throws a `ValidationError` naming
  /// the option at fault.
  public func newRun(from base: TrainingConfig? = nil) throws -> TrainingConfig {
    var c: TrainingConfig
    do {
      if var base {
        if let contradiction = taskContradictions(of: base).first {
          throw ValidationError("\(contradiction) (from --config); give one of them")
        }
        if let envs { base.envs = envs }
        if let seed { base.seed = seed }
        c = base
      } else {
        c = try TrainingConfig.defaults(
          env: env ?? "classic/CartPole", backbone: backbone ?? .r2i, preset: preset, steps: steps,
          envs: envs, seed: seed ?? 0)
      }
      if greedy { c.evaluation = .greedy }
      if let sizes { c = c.withSizes(of: sizes) }
      if let steps { c.steps = steps }
      if let minutes { c.minutes = minutes }
      c = try c.applying(settings)
      try c.validate()
    } catch let e as TrainingError {
      throw ValidationError("\(e)")
    }
    return c
  }

  /// The configuration these options ask of an existing run whose stored configuration is
  /// `stored`: the stored one with every given option and setting applied (steps and minutes
  /// too, which a resume may change). ``TrainingRun/checkCompatible(_:with:)`` then names what
  /// differs, the one compatibility check `r2i train --resume` and the memory sweep share.
  public func resumed(_ stored: TrainingConfig) throws -> TrainingConfig {
    var c = stored
    if let env { c.env = env }
    if let backbone { c.backbone = backbone }
    if let preset { c.preset = preset }
    if let envs { c.envs = envs }
    if let seed { c.seed = seed }
    if let steps { c.steps = steps }
    if let minutes { c.minutes = minutes }
    if greedy { c.evaluation = .greedy }
    if let sizes { c = c.withSizes(of: sizes) }
    do {
      return try c.applying(settings)
    } catch {
      throw ValidationError("\(error)")
    }
  }

  /// The contradictions in what the run is: environment, backbone and preset.
  func taskContradictions(of stored: TrainingConfig) -> [String] {
    var out: [String] = []
    if let env, env != stored.env { out.append("--env \(env), the run has \(stored.env)") }
    if let backbone, backbone != stored.backbone {
      out.append("--backbone \(backbone.rawValue), the run has \(stored.backbone.rawValue)")
    }
    if let preset, preset != stored.preset { out.append("--preset \(preset), the run has \(stored.preset)") }
    return out
  }
}
