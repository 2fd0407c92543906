import Agent
import ArgumentParser
import CommandLineSupport

/// `--backbones r2i,dreamerv3`: the sequence backbones to run.
public struct BackboneListOption: ParsableArguments {
  @Option(help: "Comma-separated backbones of r2i, dreamerv3, transformer (default: the command's).")
  public var backbones: String?

  public init() {}

  public func validate() throws { _ = try parsed() }

  /// The backbones given, or `defaults` when none are.
  public func parsed(default defaults: [Backbone] = Backbone.allCases) throws -> [Backbone] {
    guard let backbones else { return defaults }
    return try OptionCheck.list(backbones, "--backbones", each: "one of r2i, dreamerv3, transformer") {
      Backbone(rawValue: $0)
    }
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
