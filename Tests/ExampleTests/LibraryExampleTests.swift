import Foundation
import Testing

@Suite struct LibraryExampleTests {
  @Test func theExampleRuns() throws {
    let rewards = try trainAWorldModelAndImagine()
    #expect(rewards.count == 15 && rewards.allSatisfy(\.isFinite))
  }

  /// The README shows the example exactly as it is compiled here.
  @Test func theReadmeShowsThisExampleVerbatim() throws {
    let here = URL(fileURLWithPath: #filePath)
    let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let source = try String(
      contentsOf: here.deletingLastPathComponent().appendingPathComponent("LibraryExample.swift"), encoding: .utf8)
    let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    let begin = try #require(source.range(of: "// BEGIN README\n"))
    let end = try #require(source.range(of: "// END README"))
    let example = String(source[begin.upperBound..<end.lowerBound])
    #expect(
      readme.contains("```swift\n" + example + "```\n"),
      "README.md's library example differs from Tests/ExampleTests/LibraryExample.swift")
  }
}
