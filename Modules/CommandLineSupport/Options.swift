import ArgumentParser
import Foundation

/// The version both executables print for `--version`.
public let r2iVersion = "0.5.0"

/// Exit codes shared by `r2i` and `r2i-bench`: a mistake on the command line (an unknown flag, a
/// value out of range, an unknown environment or backbone, an output path that cannot be used)
/// exits with ``usage`` (64, EX_USAGE, what swift-argument-parser uses for its own errors and for
/// every `ValidationError`); any other error, i.e. a failure while running (a damaged file, a full
/// disk), exits with 1, swift-argument-parser's default.
public enum ExitStatus {
  public static let usage: Int32 = 64
}

/// Checks of command-line values that name the option, the accepted range and the fix. Every
/// error is a `ValidationError`, so it prints with the usage line and exits with
/// ``ExitStatus/usage``.
///
/// ```swift
/// func validate() throws {
///   try OptionCheck.range(batch, 1...1024, "--batch")
///   let lengths = try OptionCheck.integers(lengthsText, 2...16_384, "--lengths")
/// }
/// ```
public enum OptionCheck {
  /// Throws unless `value` lies in `range`.
  public static func range<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ option: String) throws {
    guard range.contains(value) else {
      throw ValidationError("\(option) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
    }
  }

  /// Throws unless `value` is finite and lies in `range`.
  public static func range(_ value: Float, _ range: ClosedRange<Float>, _ option: String) throws {
    guard value.isFinite, range.contains(value) else {
      throw ValidationError("\(option) must be a number in \(range.lowerBound)...\(range.upperBound), got \(value)")
    }
  }

  /// Parses a non-empty comma-separated list of integers, each in `range`, without repeats.
  public static func integers(_ text: String, _ range: ClosedRange<Int>, _ option: String) throws -> [Int] {
    try list(text, option, each: "an integer in \(range.lowerBound)...\(range.upperBound)") { item in
      guard let v = Int(item), range.contains(v) else { return nil }
      return v
    }
  }

  /// Parses a non-empty comma-separated list, each item turned into a value by `parse` (nil:
  /// not accepted); `each` says what an item must be, for the message ("one of r2i, dreamerv3").
  public static func list<T: Equatable>(
    _ text: String, _ option: String, each choices: String, _ parse: (String) -> T?
  ) throws -> [T] {
    let items = text.split(separator: ",", omittingEmptySubsequences: false).map {
      $0.trimmingCharacters(in: .whitespaces)
    }
    guard !items.isEmpty, !items.contains(where: \.isEmpty) else {
      throw ValidationError("\(option) needs a comma-separated list, each \(choices); got '\(text)'")
    }
    var out: [T] = []
    for item in items {
      guard let v = parse(item) else {
        throw ValidationError("\(option): '\(item)' is not \(choices)")
      }
      guard !out.contains(v) else { throw ValidationError("\(option) lists '\(item)' twice") }
      out.append(v)
    }
    return out
  }

  /// Throws when `a * b` exceeds `limit` (or overflows), naming what the product means.
  public static func product(_ a: Int, _ b: Int, atMost limit: Int, _ what: String) throws {
    let (p, overflow) = a.multipliedReportingOverflow(by: b)
    guard !overflow, p <= limit else {
      throw ValidationError("\(what) (\(a) x \(b)) must be at most \(limit); lower one of them")
    }
  }
}
