import Foundation
import Testing

@testable import TensorBoard

@Suite struct EventFileTests {
  func temporaryFile(_ name: String) -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tb-\(name)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(EventFileWriter.fileName)
  }

  @Test func crc32cMatchesPublishedCheckValues() {
    // The CRC-32C check value, and the iSCSI test vectors of RFC 3720 (B.4).
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    #expect(CRC32C.checksum([]) == 0)
  }

  @Test func protocolBufferFieldsAreEncodedAsTheWireFormatSays() {
    var b = ProtoBuffer()
    b.varint(2, 300)  // key 0x10, then 300 = 0xAC 0x02
    b.float(2, 1.0)  // key 0x15, then 0x3F800000 little-endian
    b.string(1, "ab")  // key 0x0A, length 2
    b.double(1, -2.0)  // key 0x09, then 0xC000000000000000 little-endian
    #expect(
      b.data == [
        0x10, 0xAC, 0x02, 0x15, 0x00, 0x00, 0x80, 0x3F, 0x0A, 0x02, 0x61, 0x62, 0x09, 0, 0, 0, 0, 0, 0, 0, 0xC0,
      ])
  }

  @Test func eventsRoundTripWithTheirFramingChecked() throws {
    let url = temporaryFile("roundtrip")
    defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
    let writer = try EventFileWriter(url: url)
    try writer.write(
      step: 10, values: [.scalar(tag: "wm/loss", value: 1.5), .scalar(tag: "x", value: .nan)], wallTime: 7.25)
    let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]
    try writer.write(step: 1 << 40, values: [.image(tag: "openl", png: png, width: 3, height: 2, channels: 3)])
    try writer.synchronize()
    let events = try EventFileReader.events(url)
    #expect(events.count == 3)
    #expect(events[0].fileVersion == "brain.Event:2" && events[0].values.isEmpty)
    #expect(events[1].step == 10 && events[1].wallTime == 7.25)
    #expect(events[1].values.first == .scalar(tag: "wm/loss", value: 1.5))
    if case .scalar(let tag, let x) = events[1].values[1] {
      #expect(tag == "x" && x.isNaN)
    } else {
      Issue.record("the second value is not a scalar")
    }
    #expect(events[2].step == 1 << 40)
    #expect(events[2].values == [.image(tag: "openl", png: png, width: 3, height: 2, channels: 3)])
    #expect(UInt64((try Data(contentsOf: url)).count) == writer.bytes)

    // Every flipped byte is caught by a checksum (or breaks the framing), never read as data.
    let bytes = [UInt8](try Data(contentsOf: url))
    for i in stride(from: 0, to: bytes.count, by: 3) {
      var damaged = bytes
      damaged[i] ^= 0x10
      try Data(damaged).write(to: url)
      #expect(throws: EventFileError.self) { try EventFileReader.events(url) }
    }
  }

  @Test func truncatingCutsLaterEventsAndAnEmptyFileGetsItsVersionBack() throws {
    let url = temporaryFile("truncate")
    defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
    let writer = try EventFileWriter(url: url)
    try writer.write(step: 1, values: [.scalar(tag: "a", value: 1)])
    let kept = writer.bytes
    try writer.write(step: 2, values: [.scalar(tag: "a", value: 2)])
    try writer.truncate(to: kept)
    try writer.write(step: 3, values: [.scalar(tag: "a", value: 3)])
    #expect(try EventFileReader.scalars(url).map(\.step) == [1, 3])
    #expect(throws: EventFileError.self) { try writer.truncate(to: writer.bytes + 1) }
    try writer.truncate(to: 0)
    let events = try EventFileReader.events(url)
    #expect(events.count == 1 && events[0].fileVersion == "brain.Event:2")
    // A second writer on the file appends after what is there.
    let again = try EventFileWriter(url: url)
    try again.write(step: 4, values: [.scalar(tag: "b", value: 4)])
    #expect(try EventFileReader.scalars(url).map(\.tag) == ["b"])
  }

  @Test func aFileCutMidRecordIsNamedAsCutShort() throws {
    let url = temporaryFile("short")
    defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
    let writer = try EventFileWriter(url: url)
    try writer.write(step: 1, values: [.scalar(tag: "a", value: 1)])
    let bytes = [UInt8](try Data(contentsOf: url))
    try Data(bytes.dropLast(3)).write(to: url)
    do {
      _ = try EventFileReader.events(url)
      Issue.record("a cut file was read")
    } catch let e as EventFileError {
      #expect(e.problem.contains("record 2") && e.problem.contains("cut short"), "\(e)")
    }
  }
}
