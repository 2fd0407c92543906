import Foundation

/// A CRC-32 inside a JSON object's own text, so a file stays plain JSON (any reader ignores the
/// extra member) and a flipped bit anywhere in it is caught: the member `"crc32": "<8 hex>"` is
/// added before the closing brace, and the checksum covers every byte of the file except those
/// 8 hex digits.
///
/// ```swift
/// try AtomicFile.write(JSONSeal.sealed(try encoder.encode(state)), to: url)
/// switch JSONSeal.check(try Data(contentsOf: url)) { case .intact: ...; case .unsealed: ...; case .damaged: ... }
/// ```
public enum JSONSeal {
  /// The member's name.
  public static let key = "crc32"

  /// What ``check(_:)`` found.
  public enum Status: Equatable, Sendable {
    /// The checksum matches.
    case intact
    /// The text has no checksum member (written before seals existed, or the member was deleted
    /// on purpose to accept a hand edit).
    case unsealed
    /// The checksum does not match the text.
    case damaged
  }

  /// `json`, the text of one JSON object, with the checksum member added before its final `}`.
  public static func sealed(_ json: Data) -> Data {
    var bytes = [UInt8](json)
    while let last = bytes.last, last == 0x0A || last == 0x20 || last == 0x0D || last == 0x09 { bytes.removeLast() }
    precondition(bytes.last == UInt8(ascii: "}"), "JSONSeal.sealed needs the text of a JSON object")
    bytes.removeLast()
    while let last = bytes.last, last == 0x0A || last == 0x20 || last == 0x0D || last == 0x09 { bytes.removeLast() }
    let empty = bytes.last == UInt8(ascii: "{")
    let head = Array((empty ? "" : ",").utf8) + Array("\n  \"\(key)\" : \"".utf8)
    let tail = Array("\"\n}\n".utf8)
    var crc = CRC32()
    crc.update(bytes + head)
    crc.update(tail)
    let hex = String(crc.value, radix: 16)
    let digits = Array((String(repeating: "0", count: 8 - hex.count) + hex).utf8)
    return Data(bytes + head + digits + tail)
  }

  /// Whether the checksum member of `data` (the last one, if several) matches the text.
  public static func check(_ data: Data) -> Status {
    let bytes = [UInt8](data)
    let pattern = Array("\"\(key)\"".utf8)
    guard let keyStart = lastIndex(of: pattern, in: bytes) else { return .unsealed }
    // After the key: spaces, a colon, spaces, a quote, 8 lowercase hex digits, a quote.
    var i = keyStart + pattern.count
    func skipSpaces() { while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x09 { i += 1 } }
    skipSpaces()
    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return .damaged }
    i += 1
    skipSpaces()
    guard i + 9 < bytes.count, bytes[i] == UInt8(ascii: "\""), bytes[i + 9] == UInt8(ascii: "\"") else {
      return .damaged
    }
    let digits = bytes[(i + 1)...(i + 8)]
    guard let stored = UInt32(String(decoding: digits, as: UTF8.self), radix: 16),
      digits.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
    else { return .damaged }
    var crc = CRC32()
    crc.update(bytes[..<(i + 1)])
    crc.update(bytes[(i + 9)...])
    return crc.value == stored ? .intact : .damaged
  }

  static func lastIndex(of pattern: [UInt8], in bytes: [UInt8]) -> Int? {
    guard bytes.count >= pattern.count else { return nil }
    var i = bytes.count - pattern.count
    while i >= 0 {
      if bytes[i..<(i + pattern.count)].elementsEqual(pattern) { return i }
      i -= 1
    }
    return nil
  }
}
