import Foundation

/// Animated GIF (GIF89a) encoding: a sequence of frames as one file that loops, for episode
/// videos. Each frame gets a palette of its own: exact when it has at most 256 colours,
/// otherwise the frame is first reduced to a fixed palette of 6 x 7 x 6 levels of red, green
/// and blue (``quantized(_:)`` gives the frame as it will be shown). Frames are compressed with
/// GIF's LZW (codes of up to 12 bits, the table cleared when full).
///
/// ```swift
/// let data = try GIF.encode(frames, secondsPerFrame: 0.05)
/// try data.write(to: URL(fileURLWithPath: "episode.gif"))
/// ```
public enum GIF {
  /// The frames `frames` (equal sizes; 1, 3 or 4 channels, alpha ignored) as an animated GIF
  /// showing each for `secondsPerFrame` (rounded to hundredths, at least 0.02), looping
  /// forever. Throws for no frames, frames of different sizes or a side over 65,535.
  public static func encode(_ frames: [Image], secondsPerFrame: Double = 0.05) throws -> Data {
    guard let first = frames.first else { throw ImageError(problem: "a GIF needs at least one frame") }
    let (w, h) = (first.width, first.height)
    guard w > 0, h > 0, w <= 65_535, h <= 65_535 else {
      throw ImageError(problem: "a GIF frame is 1...65535 pixels a side, got \(w) x \(h)")
    }
    if let odd = frames.first(where: { $0.width != w || $0.height != h }) {
      throw ImageError(problem: "GIF frames must share one size: \(w) x \(h), then \(odd.width) x \(odd.height)")
    }
    var out: [UInt8] = Array("GIF89a".utf8)
    out += le16(w) + le16(h) + [0x70, 0, 0]  // no global table; 8 bits per primary
    // Loop forever (the NETSCAPE2.0 application extension).
    out += [0x21, 0xFF, 0x0B] + Array("NETSCAPE2.0".utf8) + [0x03, 0x01, 0x00, 0x00, 0x00]
    let delay = max(2, Int((secondsPerFrame * 100).rounded()))
    for frame in frames {
      let (palette, indices) = indexed(frame)
      // Graphic control: "do not dispose", the delay, no transparency.
      out += [0x21, 0xF9, 0x04, 0x04] + le16(min(delay, 65_535)) + [0x00, 0x00]
      var bits = 1
      while (1 << bits) < palette.count / 3 { bits += 1 }
      out += [0x2C] + le16(0) + le16(0) + le16(w) + le16(h) + [0x80 | UInt8(bits - 1)]
      out += palette + [UInt8](repeating: 0, count: 3 * (1 << bits) - palette.count)
      let minimum = max(2, bits)
      out.append(UInt8(minimum))
      let codes = lzw(indices, minimumCodeSize: minimum)
      var at = 0
      while at < codes.count {
        let n = min(255, codes.count - at)
        out.append(UInt8(n))
        out += codes[at..<at + n]
        at += n
      }
      out.append(0)
    }
    out.append(0x3B)
    return Data(out)
  }

  /// Writes ``encode(_:secondsPerFrame:)`` to `url` (replacing the file).
  public static func write(_ frames: [Image], to url: URL, secondsPerFrame: Double = 0.05) throws {
    let data = try encode(frames, secondsPerFrame: secondsPerFrame)
    do {
      try data.write(to: url, options: .atomic)
    } catch {
      throw ImageError(problem: "cannot write '\(url.path)' (\(error.localizedDescription))")
    }
  }

  /// The frame as the GIF shows it: RGB, and reduced to the 6 x 7 x 6 palette when it has more
  /// than 256 colours.
  public static func quantized(_ frame: Image) -> Image {
    let (palette, indices) = indexed(frame)
    var pixels = [UInt8](repeating: 0, count: indices.count * 3)
    for (i, k) in indices.enumerated() {
      for c in 0..<3 { pixels[i * 3 + c] = palette[Int(k) * 3 + c] }
    }
    return Image(width: frame.width, height: frame.height, channels: 3, pixels: pixels)
  }

  /// The levels of the fixed palette per primary (red, green, blue).
  static let levels = (red: 6, green: 7, blue: 6)

  /// The frame's palette (RGB triples, at most 256) and each pixel's index into it.
  static func indexed(_ frame: Image) -> (palette: [UInt8], indices: [UInt8]) {
    let n = frame.width * frame.height
    let c = frame.channels
    func rgb(_ i: Int) -> (UInt8, UInt8, UInt8) {
      c >= 3
        ? (frame.pixels[i * c], frame.pixels[i * c + 1], frame.pixels[i * c + 2])
        : (frame.pixels[i * c], frame.pixels[i * c], frame.pixels[i * c])
    }
    var table: [UInt32: UInt8] = [:]
    var palette: [UInt8] = []
    var indices = [UInt8](repeating: 0, count: n)
    var exact = true
    for i in 0..<n {
      let (r, g, b) = rgb(i)
      let key = UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)
      if let k = table[key] {
        indices[i] = k
        continue
      }
      guard table.count < 256 else {
        exact = false
        break
      }
      table[key] = UInt8(table.count)
      indices[i] = UInt8(table.count - 1)
      palette += [r, g, b]
    }
    if exact { return (palette.isEmpty ? [0, 0, 0] : palette, indices) }
    // The fixed palette: level k of L is round(255 k / (L - 1)).
    let (lr, lg, lb) = levels
    func level(_ v: UInt8, _ l: Int) -> Int { (Int(v) * (l - 1) + 127) / 255 }
    func value(_ k: Int, _ l: Int) -> UInt8 { UInt8((255 * k + (l - 1) / 2) / (l - 1)) }
    palette = []
    for r in 0..<lr {
      for g in 0..<lg {
        for b in 0..<lb { palette += [value(r, lr), value(g, lg), value(b, lb)] }
      }
    }
    for i in 0..<n {
      let (r, g, b) = rgb(i)
      indices[i] = UInt8((level(r, lr) * lg + level(g, lg)) * lb + level(b, lb))
    }
    return (palette, indices)
  }

  /// GIF's variable-width LZW of `indices`, codes packed least significant bit first.
  static func lzw(_ indices: [UInt8], minimumCodeSize: Int) -> [UInt8] {
    let clear = 1 << minimumCodeSize
    let end = clear + 1
    var out: [UInt8] = []
    out.reserveCapacity(indices.count / 2)
    var buffer: UInt32 = 0
    var filled = 0
    var size = minimumCodeSize + 1
    func emit(_ code: Int) {
      buffer |= UInt32(code) << UInt32(filled)
      filled += size
      while filled >= 8 {
        out.append(UInt8(truncatingIfNeeded: buffer))
        buffer >>= 8
        filled -= 8
      }
    }
    var table: [Int: Int] = [:]
    table.reserveCapacity(4096)
    var next = end + 1
    emit(clear)
    guard var prefix = indices.first.map(Int.init) else {
      emit(end)
      if filled > 0 { out.append(UInt8(truncatingIfNeeded: buffer)) }
      return out
    }
    for k in indices.dropFirst() {
      let key = prefix << 8 | Int(k)
      if let code = table[key] {
        prefix = code
        continue
      }
      emit(prefix)
      if next < 4096 {
        table[key] = next
        next += 1
        // The decoder adds this entry one code later: widen once it would need the wider code.
        if next > (1 << size) && size < 12 { size += 1 }
      } else {
        emit(clear)
        table.removeAll(keepingCapacity: true)
        size = minimumCodeSize + 1
        next = end + 1
      }
      prefix = Int(k)
    }
    emit(prefix)
    // Reading that last code, the decoder adds its entry (this side adds none after it): the
    // end code is read as wide as the decoder's table then is.
    if next == (1 << size) && size < 12 { size += 1 }
    emit(end)
    if filled > 0 { out.append(UInt8(truncatingIfNeeded: buffer)) }
    return out
  }

  static func le16(_ x: Int) -> [UInt8] { [UInt8(x & 0xFF), UInt8((x >> 8) & 0xFF)] }
}
