import ArgumentParser
import Foundation
import Testing

@testable import CommandLineSupport

@Suite struct OptionCheckTests {
  @Test func rangesNameTheOptionAndTheLimits() throws {
    try OptionCheck.range(5, 1...10, "--batch")
    do {
      try OptionCheck.range(0, 1...10, "--batch")
      Issue.record("0 was accepted for 1...10")
    } catch let e as ValidationError {
      #expect(e.message == "--batch must be in 1...10, got 0")
    }
    #expect(throws: ValidationError.self) { try OptionCheck.range(Float.nan, 0...1, "--learning-rate") }
    #expect(throws: ValidationError.self) { try OptionCheck.range(Float.infinity, 0...1, "--learning-rate") }
  }

  @Test func listsRejectEmptyItemsRepeatsAndOutOfRangeValues() throws {
    #expect(try OptionCheck.integers("64, 256,1024", 2...4096, "--lengths") == [64, 256, 1024])
    for bad in ["", ",", "64,", "64,,128", "1", "9223372036854775807", "99999999999999999999", "x", "64,64", "-3"] {
      #expect(throws: ValidationError.self, "'\(bad)'") { try OptionCheck.integers(bad, 2...4096, "--lengths") }
    }
    #expect(
      try OptionCheck.list("a,b", "--names", each: "a or b") { ["a", "b"].contains($0) ? $0 : nil } == ["a", "b"])
    do {
      _ = try OptionCheck.list("a,c", "--names", each: "a or b") { $0 == "a" ? $0 : nil }
      Issue.record("'c' was accepted")
    } catch let e as ValidationError {
      #expect(e.message == "--names: 'c' is not a or b")
    }
  }

  @Test func productsCatchOverflow() throws {
    try OptionCheck.product(16, 2048, atMost: 1 << 20, "steps")
    #expect(throws: ValidationError.self) { try OptionCheck.product(1024, 2048, atMost: 1 << 20, "steps") }
    #expect(throws: ValidationError.self) { try OptionCheck.product(Int.max, 2, atMost: Int.max, "steps") }
  }
}
