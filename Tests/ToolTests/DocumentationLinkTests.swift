import Foundation
import Testing

/// Every Markdown file the code and the docs point to is in the repository: a clone never points
/// outside itself.
@Suite struct DocumentationLinkTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  /// The repository's Swift and Markdown files (not build folders or benchmark output).
  static func sources() throws -> [URL] {
    let skip = [".build", ".git", "results", ".venv"]
    var out: [URL] = []
    let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isDirectoryKey])!
    for case let url as URL in enumerator {
      if skip.contains(url.lastPathComponent) && url.deletingLastPathComponent() == root {
        enumerator.skipDescendants()
        continue
      }
      if url.pathExtension == "swift" || url.pathExtension == "md" { out.append(url) }
    }
    return out
  }

  @Test func everyMarkdownReferenceResolves() throws {
    let links = try NSRegularExpression(pattern: #"\]\(([^)#\s]+\.md)(#[^)]*)?\)"#)
    let paths = try NSRegularExpression(pattern: #"((?:docs|Datasets)/[A-Za-z0-9_./-]+\.md)"#)
    var missing: [String] = []
    var checked = 0
    for file in try Self.sources() {
      let text = try String(contentsOf: file, encoding: .utf8)
      let range = NSRange(text.startIndex..., in: text)
      for m in links.matches(in: text, range: range) {
        let target = String(text[Range(m.range(at: 1), in: text)!])
        if target.hasPrefix("http") { continue }
        checked += 1
        let url = file.deletingLastPathComponent().appendingPathComponent(target).standardizedFileURL
        if !FileManager.default.fileExists(atPath: url.path) { missing.append("\(file.lastPathComponent): \(target)") }
      }
      for m in paths.matches(in: text, range: range) {
        let target = String(text[Range(m.range(at: 1), in: text)!])
        checked += 1
        if !FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(target).path) {
          missing.append("\(file.lastPathComponent): \(target)")
        }
      }
    }
    #expect(missing.isEmpty, "references to files the repository does not have: \(missing)")
    #expect(checked > 20, "only \(checked) references found; is the root \(Self.root.path) right?")
  }
}
