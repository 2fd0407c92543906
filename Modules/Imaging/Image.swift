internal import CPNG
import FileSupport
import Foundation

/// An 8-bit image: rows top to bottom, pixels left to right, `channels` bytes per pixel
/// (1 gray, 3 RGB, 4 RGBA).
///
/// ```swift
/// var img = Image(width: 64, height: 64, channels: 3)
/// img[3, 5] = [255, 0, 0]             // a red pixel at x = 3, y = 5
/// try img.writePNG(to: URL(fileURLWithPath: "frame.png"))
/// let back = try Image(pngFile: URL(fileURLWithPath: "frame.png"))
/// ```
public struct Image: Equatable, Sendable {
  public let width: Int
  public let height: Int
  public let channels: Int
  public var pixels: [UInt8]

  /// A black (or transparent) image.
  public init(width: Int, height: Int, channels: Int = 3) {
    precondition(width >= 0 && height >= 0, "Image: negative size \(width)x\(height)")
    precondition([1, 3, 4].contains(channels), "Image: channels must be 1, 3 or 4, got \(channels)")
    self.width = width
    self.height = height
    self.channels = channels
    pixels = [UInt8](repeating: 0, count: width * height * channels)
  }

  /// An image over existing pixel bytes (row-major, `channels` per pixel).
  public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
    precondition([1, 3, 4].contains(channels), "Image: channels must be 1, 3 or 4, got \(channels)")
    precondition(
      pixels.count == width * height * channels,
      "Image: \(pixels.count) bytes do not fill \(width)x\(height)x\(channels)")
    self.width = width
    self.height = height
    self.channels = channels
    self.pixels = pixels
  }

  /// The bytes of the pixel at (x, y).
  public subscript(x: Int, y: Int) -> [UInt8] {
    get {
      let o = (y * width + x) * channels
      return Array(pixels[o..<(o + channels)])
    }
    set {
      precondition(newValue.count == channels, "Image: pixel needs \(channels) bytes")
      let o = (y * width + x) * channels
      for c in 0..<channels { pixels[o + c] = newValue[c] }
    }
  }

  /// Fills the rectangle [x0, x1) x [y0, y1), clipped to the image, with `color`.
  public mutating func fill(x0: Int, y0: Int, x1: Int, y1: Int, color: [UInt8]) {
    precondition(color.count == channels, "Image.fill: color needs \(channels) bytes")
    let xa = max(0, x0)
    let xb = min(width, x1)
    let ya = max(0, y0)
    let yb = min(height, y1)
    guard xa < xb && ya < yb else { return }
    for y in ya..<yb {
      for x in xa..<xb {
        let o = (y * width + x) * channels
        for c in 0..<channels { pixels[o + c] = color[c] }
      }
    }
  }

  /// The image converted to RGB (gray is replicated, alpha is dropped over black).
  public func rgb() -> Image {
    if channels == 3 { return self }
    var out = Image(width: width, height: height, channels: 3)
    for i in 0..<(width * height) {
      for c in 0..<3 {
        out.pixels[i * 3 + c] =
          channels == 1
          ? pixels[i]
          : UInt8((Int(pixels[i * 4 + c]) * Int(pixels[i * 4 + 3]) + 127) / 255)
      }
    }
    return out
  }

  /// Nearest-neighbour scaling by an integer factor.
  public func scaled(by factor: Int) -> Image {
    precondition(factor >= 1, "Image.scaled: factor must be >= 1")
    if factor == 1 { return self }
    var out = Image(width: width * factor, height: height * factor, channels: channels)
    for y in 0..<out.height {
      for x in 0..<out.width {
        let s = ((y / factor) * width + x / factor) * channels
        let d = (y * out.width + x) * channels
        for c in 0..<channels { out.pixels[d + c] = pixels[s + c] }
      }
    }
    return out
  }
}

/// A problem reading or writing an image.
public struct ImageError: Error, CustomStringConvertible, Sendable {
  public let problem: String
  public var description: String { "image: \(problem)" }
}

extension Image {
  var pngFormat: UInt32 {
    switch channels {
    case 1: return UInt32(PNG_FORMAT_GRAY)
    case 3: return UInt32(PNG_FORMAT_RGB)
    default: return (UInt32(PNG_FORMAT_FLAG_COLOR) | UInt32(PNG_FORMAT_FLAG_ALPHA))
    }
  }

  /// The image encoded as PNG bytes.
  public func pngData() throws -> Data {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(width)
    image.height = UInt32(height)
    image.format = pngFormat
    var size: Int = 0
    // First call: ask for the size.
    let ok1 = pixels.withUnsafeBytes { p in
      png_image_write_to_memory(&image, nil, &size, 0, p.baseAddress, 0, nil)
    }
    guard ok1 != 0, size > 0 else {
      throw ImageError(problem: "PNG encoding failed: \(message(of: &image))")
    }
    var out = [UInt8](repeating: 0, count: size)
    let ok2 = out.withUnsafeMutableBytes { dst in
      pixels.withUnsafeBytes { p in
        png_image_write_to_memory(&image, dst.baseAddress, &size, 0, p.baseAddress, 0, nil)
      }
    }
    guard ok2 != 0 else { throw ImageError(problem: "PNG encoding failed: \(message(of: &image))") }
    return Data(out.prefix(size))
  }

  /// Writes the image as a PNG file (atomically: temporary file, then rename).
  public func writePNG(to url: URL) throws {
    try AtomicFile.write(try pngData(), to: url)
  }

  /// Decodes PNG bytes, converting to `channels` (1, 3 or 4; default: keep RGB or RGBA).
  public init(pngData data: Data, channels wanted: Int? = nil, source: String = "PNG data") throws {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    let begun = data.withUnsafeBytes { p in
      png_image_begin_read_from_memory(&image, p.baseAddress, p.count)
    }
    guard begun != 0 else {
      throw ImageError(problem: "\(source) is not a readable PNG: \(message(of: &image))")
    }
    let hasAlpha = (image.format & UInt32(PNG_FORMAT_FLAG_ALPHA)) != 0
    let isColor = (image.format & UInt32(PNG_FORMAT_FLAG_COLOR)) != 0
    let c = wanted ?? (hasAlpha ? 4 : (isColor ? 3 : 1))
    guard [1, 3, 4].contains(c) else {
      png_image_free(&image)
      throw ImageError(problem: "channels must be 1, 3 or 4, got \(c)")
    }
    image.format =
      c == 1
      ? UInt32(PNG_FORMAT_GRAY)
      : (c == 3 ? UInt32(PNG_FORMAT_RGB) : (UInt32(PNG_FORMAT_FLAG_COLOR) | UInt32(PNG_FORMAT_FLAG_ALPHA)))
    let w = Int(image.width)
    let h = Int(image.height)
    var buffer = [UInt8](repeating: 0, count: w * h * c)
    let finished = buffer.withUnsafeMutableBytes { dst in
      png_image_finish_read(&image, nil, dst.baseAddress, 0, nil)
    }
    guard finished != 0 else {
      throw ImageError(problem: "\(source): PNG decoding failed: \(message(of: &image))")
    }
    self.init(width: w, height: h, channels: c, pixels: buffer)
  }

  /// Reads a PNG file.
  public init(pngFile url: URL, channels: Int? = nil) throws {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw ImageError(problem: "cannot read '\(url.path)' (\(error.localizedDescription))")
    }
    try self.init(pngData: data, channels: channels, source: url.path)
  }
}

private func message(of image: inout png_image) -> String {
  withUnsafeBytes(of: &image.message) { raw in
    let bytes = raw.prefix { $0 != 0 }
    return String(decoding: bytes, as: UTF8.self)
  }
}

// MARK: - Frames

extension Image {
  /// Arranges images of equal size into a grid of `columns` columns with `padding` pixels of
  /// `background` between them.
  public static func grid(
    _ images: [Image], columns: Int, padding: Int = 2, background: UInt8 = 32
  ) -> Image {
    precondition(!images.isEmpty, "Image.grid needs at least one image")
    precondition(columns >= 1, "Image.grid needs columns >= 1")
    let w = images[0].width
    let h = images[0].height
    let c = images[0].channels
    for im in images {
      precondition(
        im.width == w && im.height == h && im.channels == c,
        "Image.grid: all images must be \(w)x\(h)x\(c)")
    }
    let rows = (images.count + columns - 1) / columns
    let cols = min(columns, images.count)
    var out = Image(
      width: cols * w + (cols + 1) * padding, height: rows * h + (rows + 1) * padding, channels: c)
    out.pixels = [UInt8](repeating: background, count: out.pixels.count)
    if c == 4 { for i in 0..<(out.width * out.height) { out.pixels[i * 4 + 3] = 255 } }
    for (k, im) in images.enumerated() {
      let x0 = padding + (k % columns) * (w + padding)
      let y0 = padding + (k / columns) * (h + padding)
      for y in 0..<h {
        let src = y * w * c
        let dst = ((y0 + y) * out.width + x0) * c
        out.pixels.replaceSubrange(dst..<(dst + w * c), with: im.pixels[src..<(src + w * c)])
      }
    }
    return out
  }

  /// Places images of equal height side by side.
  public static func row(_ images: [Image], padding: Int = 2, background: UInt8 = 32) -> Image {
    let h = images.map { $0.height }.max() ?? 0
    let c = images.first?.channels ?? 3
    let w = images.reduce(padding) { $0 + $1.width + padding }
    var out = Image(width: w, height: h + 2 * padding, channels: c)
    out.pixels = [UInt8](repeating: background, count: out.pixels.count)
    var x0 = padding
    for im in images {
      precondition(im.channels == c, "Image.row: channel counts differ")
      for y in 0..<im.height {
        let src = y * im.width * c
        let dst = ((padding + y) * out.width + x0) * c
        out.pixels.replaceSubrange(dst..<(dst + im.width * c), with: im.pixels[src..<(src + im.width * c)])
      }
      x0 += im.width + padding
    }
    return out
  }

  /// Writes `frames` as `prefix_00000.png`, `prefix_00001.png`, ... into `directory`; returns
  /// the file URLs.
  @discardableResult
  ///
  /// Frames named `<prefix>_<number>.png` that an earlier call left in the folder and this one
  /// did not write are removed, so the folder never mixes two episodes; other files are kept.
  public static func writeFrames(_ frames: [Image], to directory: URL, prefix: String = "frame")
    throws -> [URL]
  {
    var urls: [URL] = []
    for (i, f) in frames.enumerated() {
      let name = "\(prefix)_\(String(format: "%05d", i)).png"
      let url = directory.appendingPathComponent(name)
      try f.writePNG(to: url)
      urls.append(url)
    }
    let written = Set(urls.map(\.lastPathComponent))
    for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    where name.hasPrefix(prefix + "_") && name.hasSuffix(".png") && !written.contains(name)
      && name.dropFirst(prefix.count + 1).dropLast(4).allSatisfy(\.isNumber)
    {
      try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
    }
    return urls
  }
}
