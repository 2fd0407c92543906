import Envs
import Foundation
import Synchronization
import Testing
import Training

/// Your own environment, registered and trained without forking (docs/environments.md shows
/// the example verbatim).
@Suite struct CustomEnvironmentTests {
  @Test func anEnvironmentOfYourOwnRegistersAndTrains() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("own-env-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    // 600 steps of 4 environments, an episode every 7 steps of each (the cue, 5 blanks, the answer).
    #expect(try trainOnMyOwnEnvironment(in: folder) == 4 * (600 / 4 / 7))
    #expect(EnvRegistry.names.contains("mine/RecallTheBit"))
    let run = try TrainingRun.resume(from: folder, steps: 700)  // a resume finds it by name too
    #expect(try run.run().envSteps == 700)
    // Clashes and names of the built-in families are refused, naming why.
    let factory: EnvRegistry.Factory = { seed in RecallTheBit(delay: 1, seed: seed) }
    for (name, why) in [
      ("mine/RecallTheBit", "registered already"), ("classic/Mine", "built-in family"), ("nofamily", "<family>/<name>"),
      ("mine/", "<family>/<name>"), ("mine/a b", "<family>/<name>"),
    ] {
      #expect {
        try EnvRegistry.register(name: name, factory: factory)
      } throws: { "\($0)".contains(why) }
    }
  }

  /// `TrainingRun` takes a factory as well as a name: it registers it under the config's name,
  /// and a resume with the factory continues the run.
  @Test func aRunStartsAndResumesFromAnEnvironmentFactory() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("factory-env-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    try EnvRegistry.register(name: "factory/Probe", replacing: true) { seed in RecallTheBit(delay: 3, seed: seed) }
    var config = try TrainingConfig.defaults(env: "factory/Probe", backbone: .dreamerv3, steps: 200)
    config.env = "factory/RecallTheBit"
    (config.prefill, config.trainRatio) = (100, 4)
    let made = Mutex(0)
    let factory: EnvRegistry.Factory = { seed in
      made.withLock { $0 += 1 }
      return RecallTheBit(delay: 3, seed: seed)
    }
    #expect(try TrainingRun.start(config: config, in: folder, environment: factory).run().envSteps == 200)
    #expect(made.withLock { $0 } >= config.envs)
    let resumed = try TrainingRun.resume(from: folder, environment: factory, steps: 240)
    #expect(try resumed.run().envSteps == 240)
    config.env = "no-family"
    #expect(throws: EnvError.self) {
      _ = try TrainingRun.start(config: config, in: folder.appendingPathComponent("b"), environment: factory)
    }
  }

  /// docs/environments.md shows the example exactly as it is compiled here.
  @Test func theDocumentationShowsThisExampleVerbatim() throws {
    let here = URL(fileURLWithPath: #filePath)
    let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let source = try String(
      contentsOf: here.deletingLastPathComponent().appendingPathComponent("CustomEnvironmentExample.swift"),
      encoding: .utf8)
    let page = try String(contentsOf: root.appendingPathComponent("docs/environments.md"), encoding: .utf8)
    let begin = try #require(source.range(of: "// BEGIN ENVIRONMENT EXAMPLE\n"))
    let end = try #require(source.range(of: "// END ENVIRONMENT EXAMPLE"))
    let example = String(source[begin.upperBound..<end.lowerBound])
    #expect(
      page.contains("```swift\n" + example + "```\n"),
      "docs/environments.md's example differs from Tests/ExampleTests/CustomEnvironmentExample.swift")
  }
}
