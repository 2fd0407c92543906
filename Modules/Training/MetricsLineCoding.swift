import Foundation

/// A JSON key of a metrics line.
struct LineKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(_ s: String) { stringValue = s }
  init?(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

extension KeyedEncodingContainer where Key == LineKey {
  /// A number, or null when it is not finite (JSON has no NaN).
  mutating func number(_ x: Double?, _ key: String) throws {
    guard let x else { return }
    if x.isFinite { try encode(x, forKey: LineKey(key)) } else { try encodeNil(forKey: LineKey(key)) }
  }
}

extension KeyedDecodingContainer where Key == LineKey {
  /// A number; null reads as NaN, an absent key as nil.
  func number(_ key: String) throws -> Double? {
    guard contains(LineKey(key)) else { return nil }
    return try decodeNil(forKey: LineKey(key)) ? .nan : decode(Double.self, forKey: LineKey(key))
  }

  /// A count: a whole number from 0 to 2^53 (a NaN, a fraction or a huge value is refused).
  func count(_ key: String) throws -> Int? {
    guard let x = try number(key) else { return nil }
    guard x.isFinite, x >= 0, x <= 9_007_199_254_740_992, x.rounded() == x else {
      throw DecodingError.dataCorrupted(
        .init(codingPath: codingPath + [LineKey(key)], debugDescription: "\(key) must be a count, got \(x)"))
    }
    return Int(x)
  }

  func required(_ key: String) throws -> Double {
    guard let x = try number(key) else {
      throw DecodingError.keyNotFound(LineKey(key), .init(codingPath: codingPath, debugDescription: "missing \(key)"))
    }
    return x
  }
}
