import Foundation

/// An episode as one animated file: `.gif` written here (``GIF``), `.mp4` through `ffmpeg`
/// (H.264, when `ffmpeg` is on the PATH).
public enum Video {
  /// Writes `frames` (equal sizes) to `url`, shown at `framesPerSecond`. The file's extension
  /// chooses the format; throws naming the fix for another extension or a missing `ffmpeg`.
  public static func write(_ frames: [Image], to url: URL, framesPerSecond: Double = 20) throws {
    guard framesPerSecond > 0 && framesPerSecond <= 100 else {
      throw ImageError(problem: "frames per second must be in (0, 100], got \(framesPerSecond)")
    }
    switch url.pathExtension.lowercased() {
    case "gif": try GIF.write(frames, to: url, secondsPerFrame: 1 / framesPerSecond)
    case "mp4": try writeMP4(frames, to: url, framesPerSecond: framesPerSecond)
    default:
      throw ImageError(problem: "'\(url.path)': a video is a .gif (written by r2i) or an .mp4 (through ffmpeg)")
    }
  }

  /// The path of `ffmpeg` on the PATH, or nil.
  public static func ffmpeg() -> String? {
    let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
    return paths.map { "\($0)/ffmpeg" }.first { FileManager.default.isExecutableFile(atPath: $0) }
  }

  static func writeMP4(_ frames: [Image], to url: URL, framesPerSecond: Double) throws {
    guard let first = frames.first else { throw ImageError(problem: "a video needs at least one frame") }
    guard let ffmpeg = ffmpeg() else {
      throw ImageError(
        problem:
          "'\(url.path)': writing .mp4 needs ffmpeg (apt-get install ffmpeg); or give a .gif, which needs nothing")
    }
    // H.264 in yuv420p wants even sides: pad by a pixel where needed.
    let (w, h) = (first.width + first.width % 2, first.height + first.height % 2)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: ffmpeg)
    process.arguments = [
      "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(w)x\(h)", "-r",
      String(framesPerSecond), "-i", "-", "-pix_fmt", "yuv420p", "-c:v", "libx264", url.path,
    ]
    let input = Pipe()
    // ffmpeg's messages go to a file: a pipe nobody reads could fill and stall it.
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("r2i-ffmpeg-\(UUID().uuidString).log")
    FileManager.default.createFile(atPath: log.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: log) }
    process.standardInput = input
    process.standardError = try FileHandle(forWritingTo: log)
    process.standardOutput = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      throw ImageError(problem: "cannot start ffmpeg (\(error.localizedDescription))")
    }
    // A write to an ffmpeg that quit must be an error, not SIGPIPE ending this process.
    signal(SIGPIPE, SIG_IGN)
    var writeError: Error?
    for frame in frames {
      guard frame.width == first.width, frame.height == first.height else {
        writeError = ImageError(problem: "video frames must share one size")
        break
      }
      var rgb = frame.rgb()
      if (rgb.width, rgb.height) != (w, h) {
        var padded = Image(width: w, height: h, channels: 3)
        for y in 0..<rgb.height {
          padded.pixels.replaceSubrange(
            (y * w * 3)..<(y * w * 3 + rgb.width * 3), with: rgb.pixels[(y * rgb.width * 3)..<((y + 1) * rgb.width * 3)]
          )
        }
        rgb = padded
      }
      do {
        try input.fileHandleForWriting.write(contentsOf: rgb.pixels)
      } catch {
        writeError = error
        break
      }
    }
    try? input.fileHandleForWriting.close()
    process.waitUntilExit()
    let messages = (try? Data(contentsOf: log)) ?? Data()
    if let problem = writeError as? ImageError { throw problem }
    guard process.terminationStatus == 0, writeError == nil else {
      let text = String(decoding: messages, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      throw ImageError(problem: "ffmpeg could not write '\(url.path)' (status \(process.terminationStatus)): \(text)")
    }
  }
}

extension Image {
  /// The image with a strip below it holding `text` (light on dark, the bitmap font at `scale`).
  public func captioned(_ text: String, scale: Int = 1) -> Image {
    let strip = 9 * scale + 4
    let base = rgb()
    var out = Image(width: base.width, height: base.height + strip, channels: 3)
    out.fill(x0: 0, y0: 0, x1: out.width, y1: out.height, color: [24, 24, 24])
    out.pixels.replaceSubrange(0..<base.pixels.count, with: base.pixels)
    out.draw(text: text, x: 3, y: base.height + 3, scale: scale, color: [235, 235, 235])
    return out
  }
}
