import Foundation

/// CRC-32C (Castagnoli polynomial, reflected 0x82F63B78), the checksum of TensorBoard's record
/// framing, and its "masked" form that records store.
public enum CRC32C {
  static let table: [UInt32] = (0..<256).map { i in
    var c = UInt32(i)
    for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    return c
  }

  /// The CRC-32C of `bytes` (of "123456789": 0xE3069283).
  public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    table.withUnsafeBufferPointer { t in
      for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    }
    return c ^ 0xFFFF_FFFF
  }

  /// The checksum rotated right by 15 bits plus 0xA282EAD8, as records store it.
  public static func masked(_ crc: UInt32) -> UInt32 {
    ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
  }
}

/// One value of a summary: a scalar, or an encoded image.
public enum SummaryValue: Equatable, Sendable {
  /// A number under `tag` (TensorBoard's scalars dashboard).
  case scalar(tag: String, value: Float)
  /// A PNG under `tag` (the images dashboard); `channels` 1 (grey), 3 (RGB) or 4 (RGBA).
  case image(tag: String, png: [UInt8], width: Int, height: Int, channels: Int)

  public var tag: String {
    switch self {
    case .scalar(let tag, _), .image(let tag, _, _, _, _): return tag
    }
  }
}

/// An error reading or writing an event file, naming the file and the problem.
public struct EventFileError: Error, CustomStringConvertible, Sendable {
  public let problem: String
  public var description: String { problem }
}

/// Appends TensorBoard events to one file: the `tfevents` format that `tensorboard --logdir`
/// reads while it grows (records of a little-endian length, its masked CRC-32C, an `Event`
/// protocol buffer, and the buffer's masked CRC-32C). The first record of a new file is the
/// `brain.Event:2` version event. No TensorFlow is involved: the few protocol-buffer fields are
/// encoded here (`Event`: wall_time 1, step 2, file_version 3, summary 5; `Summary.Value`: tag 1,
/// simple_value 2, image 4; `Summary.Image`: height 1, width 2, colorspace 3, encoded 4).
///
/// A file name must contain `tfevents` for TensorBoard to read it (``fileName``). Like a log,
/// the writer records its length (``bytes``) so a resumed program can cut what it wrote after
/// its last checkpoint (``truncate(to:)``).
public final class EventFileWriter {
  /// The name a run's event file has: TensorBoard reads files whose name contains `tfevents`.
  public static let fileName = "events.out.tfevents.r2i"

  public let url: URL
  let handle: FileHandle
  /// The file's length in bytes.
  public private(set) var bytes: UInt64

  /// Opens `url` for appending, creating it (with its version record) when it does not exist.
  public init(url: URL) throws {
    self.url = url
    let fd = open(url.path, O_WRONLY | O_APPEND | O_CLOEXEC | O_CREAT, 0o644)
    guard fd >= 0 else {
      throw EventFileError(
        problem: "cannot open '\(url.path)' for writing (errno \(errno)); check that its folder is writable")
    }
    handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    do {
      bytes = try handle.seekToEnd()
    } catch {
      throw EventFileError(problem: "cannot read the length of '\(url.path)' (\(error.localizedDescription))")
    }
    if bytes == 0 { try writeVersion() }
  }

  deinit { try? handle.close() }

  /// Wall-clock seconds since 1970, the time events carry unless given one.
  public static func now() -> Double { Date().timeIntervalSince1970 }

  /// Appends one event of `values` at `step`.
  public func write(step: Int, values: [SummaryValue], wallTime: Double = EventFileWriter.now()) throws {
    var summary = ProtoBuffer()
    for v in values {
      var value = ProtoBuffer()
      value.string(1, v.tag)
      switch v {
      case .scalar(_, let x): value.float(2, x)
      case .image(_, let png, let width, let height, let channels):
        var image = ProtoBuffer()
        image.varint(1, UInt64(height))
        image.varint(2, UInt64(width))
        image.varint(3, UInt64(channels))
        image.bytes(4, png)
        value.message(4, image)
      }
      summary.message(1, value)
    }
    var event = ProtoBuffer()
    event.double(1, wallTime)
    event.varint(2, UInt64(bitPattern: Int64(step)))
    event.message(5, summary)
    try append(record: event.data)
  }

  /// Cuts the file to `length` bytes (the events written after a checkpoint); throws when it is
  /// shorter than that.
  public func truncate(to length: UInt64) throws {
    guard length <= bytes else {
      throw EventFileError(
        problem:
          "'\(url.path)' is shorter (\(bytes) bytes) than its checkpoint says (\(length)); the run folder was altered")
    }
    do {
      try handle.truncate(atOffset: length)
      bytes = length
    } catch {
      throw EventFileError(problem: "cannot cut '\(url.path)' (\(error.localizedDescription))")
    }
    if bytes == 0 { try writeVersion() }
  }

  /// Flushes the appended events to disk.
  public func synchronize() throws {
    do {
      try handle.synchronize()
    } catch {
      throw EventFileError(problem: "cannot flush '\(url.path)' (\(error.localizedDescription))")
    }
  }

  func writeVersion() throws {
    var event = ProtoBuffer()
    event.double(1, Self.now())
    event.string(3, "brain.Event:2")
    try append(record: event.data)
  }

  func append(record: [UInt8]) throws {
    var out: [UInt8] = []
    out.reserveCapacity(record.count + 16)
    let length = UInt64(record.count)
    let header = (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) }
    out += header
    out += Self.littleEndian(CRC32C.masked(CRC32C.checksum(header)))
    out += record
    out += Self.littleEndian(CRC32C.masked(CRC32C.checksum(record)))
    do {
      try handle.write(contentsOf: out)
    } catch {
      throw EventFileError(problem: "cannot write to '\(url.path)' (\(error.localizedDescription))")
    }
    bytes += UInt64(out.count)
  }

  static func littleEndian(_ x: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: x >> (8 * $0)) } }
}

/// One event read back from an event file (``EventFileReader``).
public struct Event: Equatable, Sendable {
  public var wallTime: Double
  public var step: Int
  /// `brain.Event:2` on a file's first event, else nil.
  public var fileVersion: String?
  public var values: [SummaryValue]
}

/// Reads an event file, checking every record's checksums: the reader `r2i`'s own tests use,
/// and a way for a program to read its scalars back without TensorBoard.
public enum EventFileReader {
  /// Every event of the file at `url`; throws naming the first record that is cut short or
  /// fails its checksum.
  public static func events(_ url: URL) throws -> [Event] {
    guard let data = FileManager.default.contents(atPath: url.path) else {
      throw EventFileError(problem: "cannot read '\(url.path)'")
    }
    let bytes = [UInt8](data)
    var events: [Event] = []
    var at = 0
    while at < bytes.count {
      func fail(_ what: String) -> EventFileError {
        EventFileError(problem: "'\(url.path)': record \(events.count + 1) at byte \(at) \(what)")
      }
      guard at + 12 <= bytes.count else { throw fail("is cut short") }
      let header = Array(bytes[at..<at + 8])
      let length = header.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
      guard readUInt32(bytes, at + 8) == CRC32C.masked(CRC32C.checksum(header)) else {
        throw fail("has a damaged length")
      }
      let start = at + 12
      guard length <= UInt64(bytes.count - start - 4) else { throw fail("is cut short") }
      let record = Array(bytes[start..<start + Int(length)])
      guard readUInt32(bytes, start + Int(length)) == CRC32C.masked(CRC32C.checksum(record)) else {
        throw fail("fails its checksum")
      }
      do {
        events.append(try decodeEvent(record))
      } catch let e as EventFileError {
        throw fail("is not an event (\(e.problem))")
      }
      at = start + Int(length) + 4
    }
    return events
  }

  /// Every scalar of the file as (step, tag, value), in file order.
  public static func scalars(_ url: URL) throws -> [(step: Int, tag: String, value: Float)] {
    try events(url).flatMap { e in
      e.values.compactMap { v -> (step: Int, tag: String, value: Float)? in
        if case .scalar(let tag, let x) = v { return (e.step, tag, x) }
        return nil
      }
    }
  }

  static func readUInt32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
  }

  static func decodeEvent(_ record: [UInt8]) throws -> Event {
    var event = Event(wallTime: 0, step: 0, fileVersion: nil, values: [])
    var reader = ProtoReader(record)
    while let (field, payload) = try reader.next() {
      switch (field, payload) {
      case (1, .fixed64(let x)): event.wallTime = Double(bitPattern: x)
      case (2, .varint(let x)): event.step = Int(Int64(bitPattern: x))
      case (3, .bytes(let b)): event.fileVersion = String(decoding: b, as: UTF8.self)
      case (5, .bytes(let b)):
        var summary = ProtoReader(b)
        while let (f, p) = try summary.next() {
          if f == 1, case .bytes(let v) = p { event.values.append(try decodeValue(v)) }
        }
      default: continue
      }
    }
    return event
  }

  static func decodeValue(_ bytes: [UInt8]) throws -> SummaryValue {
    var tag = ""
    var scalar: Float?
    var image: (png: [UInt8], width: Int, height: Int, channels: Int)?
    var reader = ProtoReader(bytes)
    while let (field, payload) = try reader.next() {
      switch (field, payload) {
      case (1, .bytes(let b)): tag = String(decoding: b, as: UTF8.self)
      case (2, .fixed32(let x)): scalar = Float(bitPattern: x)
      case (4, .bytes(let b)):
        var i = (png: [UInt8](), width: 0, height: 0, channels: 0)
        var r = ProtoReader(b)
        while let (f, p) = try r.next() {
          switch (f, p) {
          case (1, .varint(let x)): i.height = Int(x)
          case (2, .varint(let x)): i.width = Int(x)
          case (3, .varint(let x)): i.channels = Int(x)
          case (4, .bytes(let png)): i.png = png
          default: continue
          }
        }
        image = i
      default: continue
      }
    }
    if let image {
      return .image(tag: tag, png: image.png, width: image.width, height: image.height, channels: image.channels)
    }
    return .scalar(tag: tag, value: scalar ?? 0)
  }
}

/// Protocol-buffer wire encoding of the fields an event needs.
struct ProtoBuffer {
  var data: [UInt8] = []

  mutating func rawVarint(_ x: UInt64) {
    var x = x
    while x >= 0x80 {
      data.append(UInt8(x & 0x7F) | 0x80)
      x >>= 7
    }
    data.append(UInt8(x))
  }

  mutating func key(_ field: Int, _ wire: UInt64) { rawVarint(UInt64(field) << 3 | wire) }

  mutating func varint(_ field: Int, _ x: UInt64) {
    key(field, 0)
    rawVarint(x)
  }

  mutating func double(_ field: Int, _ x: Double) {
    key(field, 1)
    data += (0..<8).map { UInt8(truncatingIfNeeded: x.bitPattern >> (8 * $0)) }
  }

  mutating func float(_ field: Int, _ x: Float) {
    key(field, 5)
    data += (0..<4).map { UInt8(truncatingIfNeeded: x.bitPattern >> (8 * $0)) }
  }

  mutating func bytes(_ field: Int, _ b: [UInt8]) {
    key(field, 2)
    rawVarint(UInt64(b.count))
    data += b
  }

  mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }

  mutating func message(_ field: Int, _ m: ProtoBuffer) { bytes(field, m.data) }
}

/// Reads protocol-buffer fields one at a time.
struct ProtoReader {
  enum Payload {
    case varint(UInt64)
    case fixed64(UInt64)
    case fixed32(UInt32)
    case bytes([UInt8])
  }

  let b: [UInt8]
  var at = 0

  init(_ bytes: [UInt8]) { b = bytes }

  mutating func rawVarint() throws -> UInt64 {
    var x: UInt64 = 0
    var shift: UInt64 = 0
    while true {
      guard at < b.count, shift < 64 else { throw EventFileError(problem: "a varint runs past the end") }
      let byte = b[at]
      at += 1
      x |= UInt64(byte & 0x7F) << shift
      if byte < 0x80 { return x }
      shift += 7
    }
  }

  mutating func fixed(_ n: Int) throws -> UInt64 {
    guard at + n <= b.count else { throw EventFileError(problem: "a fixed-size field runs past the end") }
    var x: UInt64 = 0
    for i in 0..<n { x |= UInt64(b[at + i]) << (8 * UInt64(i)) }
    at += n
    return x
  }

  /// The next field and its payload, or nil at the end.
  mutating func next() throws -> (Int, Payload)? {
    guard at < b.count else { return nil }
    let key = try rawVarint()
    let field = Int(key >> 3)
    switch key & 7 {
    case 0: return (field, .varint(try rawVarint()))
    case 1: return (field, .fixed64(try fixed(8)))
    case 5: return (field, .fixed32(UInt32(try fixed(4))))
    case 2:
      let n = try rawVarint()
      guard n <= UInt64(b.count - at) else { throw EventFileError(problem: "a field runs past the end") }
      defer { at += Int(n) }
      return (field, .bytes(Array(b[at..<at + Int(n)])))
    default: throw EventFileError(problem: "wire type \(key & 7) is not one an event uses")
    }
  }
}
