import Agent
import ArgumentParser
import CommandLineSupport

/// `--backbones r2i,dreamerv3`: the sequence backbones to run.
public struct BackboneListOption: ParsableArguments {
  @Option(help: "Comma-separated backbones: r2i and/or dreamerv3.")
  public var backbones = "r2i,dreamerv3"

  public init() {}

  public func validate() throws { _ = try parsed() }

  public func parsed() throws -> [Backbone] {
    try OptionCheck.list(backbones, "--backbones", each: "one of r2i, dreamerv3") { Backbone(rawValue: $0) }
  }
}

/// `--backbone r2i`, `--preset bsuite` and `--head-input full` as typed options (the error lists
/// the choices).
extension Backbone: ExpressibleByArgument {}
extension WorldModelPreset: ExpressibleByArgument {}
extension FeatureView: ExpressibleByArgument {}
extension AgentPreset: ExpressibleByArgument {
  public init?(argument: String) { self.init(rawValue: argument) }
  public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
