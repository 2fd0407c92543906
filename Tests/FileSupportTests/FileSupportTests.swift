import Foundation
import Testing

@testable import FileSupport

@Suite struct FileSupportTests {
  @Test func crc32MatchesTheStandardCheckValue() {
    // The CRC-32/ISO-HDLC check value of "123456789".
    #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    #expect(CRC32.checksum([UInt8]()) == 0)
    var c = CRC32()
    c.update(Array("1234".utf8))
    c.update(Array("56789".utf8))
    #expect(c.value == 0xCBF4_3926)
  }

  @Test func atomicWriteReplacesWholeFilesAndLeavesNoTemporaries() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "fs-test-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("sub/file.bin")
    try AtomicFile.write(Data([1, 2, 3]), to: url)
    try AtomicFile.write(Data([4, 5]), to: url)
    #expect(try Data(contentsOf: url) == Data([4, 5]))
    // A failing writer leaves the previous file untouched and no temporary behind.
    struct Boom: Error {}
    #expect(throws: FileError.self) {
      try AtomicFile.write(to: url) { h in
        try h.write(contentsOf: Data([9, 9, 9]))
        throw Boom()
      }
    }
    #expect(try Data(contentsOf: url) == Data([4, 5]))
    let names = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
    #expect(names == ["file.bin"])
  }

  @Test func binaryRoundTripAndTruncationErrors() throws {
    var w = BinaryWriter()
    w.write(UInt32(7))
    w.write(Float(-1.5))
    w.write(string: "héllo")
    w.write(true)
    let floats: [Float] = [1, 2, 3]
    floats.withUnsafeBufferPointer { w.write(floats: $0) }
    var r = BinaryReader(w.bytes, source: "mem")
    #expect(try r.read(UInt32.self) == 7)
    #expect(try r.readFloat() == -1.5)
    #expect(try r.readString() == "héllo")
    #expect(try r.readBool())
    #expect(try r.readFloats(3) == floats)
    #expect(r.remaining == 0)
    var short = BinaryReader(Array(w.bytes.prefix(6)), source: "short.bin")
    _ = try short.read(UInt32.self)
    do {
      _ = try short.readFloat("the scale")
      Issue.record("reading past the end must throw")
    } catch let e as FileError {
      #expect(e.description.contains("short.bin") && e.description.contains("the scale"))
    }
  }
}
