import Foundation
import Testing

@testable import Imaging

/// A GIF reader written for these tests from the GIF89a layout: it walks the blocks and
/// decodes each frame's LZW the way a viewer does (the decoder adds its table entry one code
/// after the encoder, widens codes when its table reaches a power of two, stops at the end
/// code), so an encoder that gets the code widths wrong is caught here.
enum TestGIFReader {
  struct Failure: Error { let what: String }

  static func frames(_ data: Data) throws -> (frames: [Image], delays: [Int], loops: Bool) {
    let b = [UInt8](data)
    guard b.count > 13, String(decoding: b[0..<6], as: UTF8.self) == "GIF89a" else { throw Failure(what: "header") }
    let w = Int(b[6]) | Int(b[7]) << 8
    let h = Int(b[8]) | Int(b[9]) << 8
    var at = 13
    if b[10] & 0x80 != 0 { at += 3 << (Int(b[10] & 7) + 1) }
    var frames: [Image] = []
    var delays: [Int] = []
    var loops = false
    var delay = 0
    func subBlocks() -> [UInt8] {
      var out: [UInt8] = []
      while b[at] != 0 {
        let n = Int(b[at])
        out += b[(at + 1)...(at + n)]
        at += n + 1
      }
      at += 1
      return out
    }
    while at < b.count {
      switch b[at] {
      case 0x3B: return (frames, delays, loops)
      case 0x21:
        let label = b[at + 1]
        at += 2
        let body = subBlocks()
        if label == 0xF9 { delay = Int(body[1]) | Int(body[2]) << 8 }
        if label == 0xFF, String(decoding: body.prefix(11), as: UTF8.self) == "NETSCAPE2.0" { loops = true }
      case 0x2C:
        let fw = Int(b[at + 5]) | Int(b[at + 6]) << 8
        let fh = Int(b[at + 7]) | Int(b[at + 8]) << 8
        guard fw == w, fh == h, b[at + 9] & 0x80 != 0 else { throw Failure(what: "frame descriptor") }
        let entries = 1 << (Int(b[at + 9] & 7) + 1)
        at += 10
        let palette = Array(b[at..<(at + 3 * entries)])
        at += 3 * entries
        let minimum = Int(b[at])
        at += 1
        let indices = try decode(subBlocks(), minimumCodeSize: minimum, count: w * h)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for (i, k) in indices.enumerated() {
          for c in 0..<3 { pixels[i * 3 + c] = palette[Int(k) * 3 + c] }
        }
        frames.append(Image(width: w, height: h, channels: 3, pixels: pixels))
        delays.append(delay)
      default: throw Failure(what: "block 0x\(String(b[at], radix: 16)) at \(at)")
      }
    }
    throw Failure(what: "no trailer")
  }

  static func decode(_ data: [UInt8], minimumCodeSize: Int, count: Int) throws -> [UInt8] {
    let clear = 1 << minimumCodeSize
    let end = clear + 1
    var size = minimumCodeSize + 1
    var table: [[UInt8]] = []
    func reset() {
      table = (0..<clear).map { [UInt8($0)] } + [[], []]
      size = minimumCodeSize + 1
    }
    reset()
    var bit = 0
    func read() -> Int? {
      guard bit + size <= data.count * 8 else { return nil }
      var code = 0
      for i in 0..<size where data[(bit + i) / 8] & (1 << ((bit + i) % 8)) != 0 { code |= 1 << i }
      bit += size
      return code
    }
    var out: [UInt8] = []
    var previous: [UInt8]?
    while let code = read() {
      if code == clear {
        reset()
        previous = nil
        continue
      }
      if code == end { break }
      var entry: [UInt8]
      if code < table.count {
        entry = table[code]
      } else if code == table.count, let p = previous {
        entry = p + [p[0]]
      } else {
        throw Failure(what: "code \(code) beyond the table (\(table.count))")
      }
      if let p = previous, table.count < 4096 { table.append(p + [entry[0]]) }
      if table.count == 1 << size && size < 12 { size += 1 }
      out += entry
      previous = entry
    }
    guard out.count == count else { throw Failure(what: "\(out.count) pixels, not \(count)") }
    return out
  }
}

@Suite struct GIFTests {
  /// Random frames: few colours (exact palettes), many colours (the fixed palette), noise that
  /// fills the LZW table several times over, and a one-pixel frame.
  @Test func framesDecodeToWhatWasWritten() throws {
    var state: UInt64 = 0x1234_5678
    func next() -> UInt8 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return UInt8(truncatingIfNeeded: state >> 33)
    }
    var frames: [Image] = []
    for kind in 0..<4 {
      var im = Image(width: 97, height: 61, channels: 3)
      let colours = [2, 5, 256, 100_000][kind]
      let set = (0..<min(colours, 1000)).map { _ in [next(), next(), next()] }
      for i in 0..<(97 * 61) {
        let c = colours > 1000 ? [next(), next(), next()] : set[Int(next()) % set.count]
        for k in 0..<3 { im.pixels[i * 3 + k] = c[k] }
      }
      frames.append(im)
    }
    let data = try GIF.encode(frames, secondsPerFrame: 0.1)
    let read = try TestGIFReader.frames(data)
    #expect(read.loops && read.delays == [10, 10, 10, 10])
    #expect(read.frames.count == 4)
    for (i, (a, b)) in zip(read.frames, frames).enumerated() {
      #expect(a == GIF.quantized(b), "frame \(i)")
    }
    // Up to 256 colours the frames are exact; beyond, each channel is within half a level.
    #expect(read.frames[0] == frames[0] && read.frames[1] == frames[1] && read.frames[2] == frames[2])
    let error = zip(read.frames[3].pixels, frames[3].pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
    #expect(error <= 255 / 5 / 2 + 1)

    let tiny = Image(width: 1, height: 1, channels: 1, pixels: [200])
    let one = try TestGIFReader.frames(try GIF.encode([tiny]))
    #expect(one.frames == [Image(width: 1, height: 1, channels: 3, pixels: [200, 200, 200])])
  }

  @Test func badFrameListsAreRefused() {
    #expect(throws: ImageError.self) { try GIF.encode([]) }
    #expect(throws: ImageError.self) {
      try GIF.encode([Image(width: 2, height: 2), Image(width: 3, height: 2)])
    }
  }
}
