import FileSupport
import Foundation

/// A line chart of several series, rendered to PNG (built-in bitmap font) or SVG.
///
/// ```swift
/// var chart = LineChart(title: "World-model update", xLabel: "sequence length", yLabel: "ms", logX: true, logY: true)
/// chart.add(series: "r2i", points: [(64, 50), (128, 90)])
/// chart.add(series: "dreamerv3", points: [(64, 120), (128, 240)])
/// try chart.writePNG(to: url)
/// try chart.writeSVG(to: svgURL)
/// ```
public struct LineChart: Sendable {
  public struct Series: Sendable {
    public var name: String
    public var points: [Point]
    public var color: [UInt8]
    public var style: Style
  }

  /// How a series is drawn.
  public enum Style: Sendable {
    /// A line through the points, each point marked (the default: few points).
    case lineAndMarkers
    /// A line only (many points, e.g. a smoothed training curve).
    case line
    /// Marked points only.
    case markers
  }
  public struct Point: Sendable {
    public var x: Double
    public var y: Double
  }

  public var title: String
  public var xLabel: String
  public var yLabel: String
  public var logX: Bool
  public var logY: Bool
  public private(set) var series: [Series] = []
  /// Fixed y range (nil: from the data).
  public var yRange: (Double, Double)?

  static let palette: [[UInt8]] = [
    [31, 119, 180], [214, 39, 40], [44, 160, 44], [255, 127, 14], [148, 103, 189], [140, 86, 75],
    [227, 119, 194], [127, 127, 127],
  ]

  public init(title: String, xLabel: String, yLabel: String, logX: Bool = false, logY: Bool = false) {
    self.title = title
    self.xLabel = xLabel
    self.yLabel = yLabel
    self.logX = logX
    self.logY = logY
  }

  /// Adds a series (points with non-finite values, or non-positive ones on a log axis, are left
  /// out), drawn in `style`, in the next colour of the palette or in the colour of the series
  /// named `colorOf` (two views of one run, e.g. its training curve and its evaluations).
  public mutating func add(
    series name: String, points: [(Double, Double)], style: Style = .lineAndMarkers, colorOf: String? = nil
  ) {
    let valid = points.filter { p in
      p.0.isFinite && p.1.isFinite && (!logX || p.0 > 0) && (!logY || p.1 > 0)
    }
    let distinct = Set(series.map { $0.color.map(Int.init) }).count
    let color =
      colorOf.flatMap { n in series.first { $0.name == n }?.color }
      ?? LineChart.palette[distinct % LineChart.palette.count]
    series.append(Series(name: name, points: valid.map { Point(x: $0.0, y: $0.1) }, color: color, style: style))
  }

  /// Whether no series has a point to draw (writing such a chart throws).
  public var isEmpty: Bool { series.allSatisfy { $0.points.isEmpty } }

  // MARK: Layout

  struct Axis {
    let log: Bool
    let lo: Double
    let hi: Double
    func position(_ v: Double) -> Double {
      let (a, b, x) = log ? (log10(lo), log10(hi), log10(v)) : (lo, hi, v)
      return b == a ? 0.5 : (x - a) / (b - a)
    }
    var ticks: [Double] {
      if log {
        var out: [Double] = []
        var e = floor(log10(lo))
        let span = log10(hi) - log10(lo)
        // 1-2-5 over a few decades, 1-3 over several, decades beyond.
        let mults: [Double] = span <= 2.5 ? [1, 2, 5] : span <= 5 ? [1, 3] : [1]
        while pow(10, e) <= hi * 1.0001 {
          for m in mults {
            let v = m * pow(10, e)
            if v >= lo * 0.9999 && v <= hi * 1.0001 { out.append(v) }
          }
          e += 1
        }
        if out.count < 2 { return [lo, hi] }
        return out
      }
      let raw = (hi - lo) / 5
      let mag = pow(10, floor(log10(max(raw, 1e-300))))
      let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
      var v = ceil(lo / step) * step
      var out: [Double] = []
      while v <= hi + step * 1e-9 {
        out.append(v)
        v += step
      }
      return out
    }
    /// The ticks with their labels. On a linear axis every label carries the decimals its tick
    /// step needs (ticks 1.00, 1.02, 1.04 keep two; with one they would all read 1.0); a log axis
    /// and very large or very fine steps use ``LineChart/label(_:)``.
    var labelledTicks: [(value: Double, label: String)] {
      let t = ticks
      guard !log, t.count >= 2 else { return t.map { ($0, LineChart.label($0)) } }
      let step = t[1] - t[0]
      let decimals = max(0, Int(-floor(log10(step) + 1e-9)))
      guard decimals <= 6, t.allSatisfy({ abs($0) < 1e5 }) else { return t.map { ($0, LineChart.label($0)) } }
      return t.map { v in (v, abs(v) < step * 1e-6 ? "0" : String(format: "%.\(decimals)f", v)) }
    }
  }

  func axes() -> (Axis, Axis) {
    let xs = series.flatMap { $0.points.map(\.x) }
    let ys = series.flatMap { $0.points.map(\.y) }
    func range(_ v: [Double], log: Bool) -> (Double, Double) {
      guard var lo = v.min(), var hi = v.max() else { return log ? (1, 10) : (0, 1) }
      if log {
        lo = pow(10, floor(log10(lo) * 4) / 4)
        hi = pow(10, ceil(log10(hi) * 4) / 4)
        if hi <= lo { hi = lo * 10 }
      } else {
        let pad = (hi - lo) * 0.05
        lo -= pad
        hi += pad
        if hi <= lo {
          lo -= 1
          hi += 1
        }
      }
      return (lo, hi)
    }
    let (x0, x1) = range(xs, log: logX)
    let (y0, y1) = yRange ?? range(ys, log: logY)
    return (Axis(log: logX, lo: x0, hi: x1), Axis(log: logY, lo: y0, hi: y1))
  }

  static func label(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = abs(v)
    if a >= 1e5 || a < 1e-3 { return String(format: "%.0e", v) }
    if a >= 100 || v == v.rounded() { return String(format: "%.0f", v) }
    if a >= 1 { return String(format: "%.1f", v) }
    return String(format: "%.2g", v)
  }

  // MARK: PNG

  /// The chart as an RGB image.
  public func render(width: Int = 900, height: Int = 540) -> Image {
    var img = Image(width: width, height: height, channels: 3)
    img.fill(x0: 0, y0: 0, x1: width, y1: height, color: [255, 255, 255])
    let legendWidth = (series.map { BitmapFont.measure($0.name, scale: 2) }.max() ?? 0) + 50
    let (left, right, top, bottom) = (90, legendWidth + 20, 60, 70)
    let pw = width - left - right
    let ph = height - top - bottom
    let (ax, ay) = axes()
    // Positions stay finite and near the image whatever the values (a range of 1e308 or more
    // overflows to infinity), so the pixel conversions below cannot trap.
    func clamped(_ x: Double) -> Double { x.isNaN ? 0 : min(max(x, -100_000), 100_000) }
    func px(_ v: Double) -> Double { clamped(Double(left) + ax.position(v) * Double(pw)) }
    func py(_ v: Double) -> Double { clamped(Double(top + ph) - ay.position(v) * Double(ph)) }
    let black: [UInt8] = [0, 0, 0]
    let grid: [UInt8] = [225, 225, 225]
    let text: [UInt8] = [40, 40, 40]
    // The largest font scale at which the title fits the width (long titles step down).
    let titleScale = [3, 2].first { BitmapFont.measure(title, scale: $0) <= width - 20 } ?? 1
    img.draw(
      text: title, x: max(10, (width - BitmapFont.measure(title, scale: titleScale)) / 2), y: 12,
      scale: titleScale, color: black)
    for (v, s) in ax.labelledTicks {
      let x = px(v)
      img.drawLine(x0: x, y0: Double(top), x1: x, y1: Double(top + ph), color: grid)
      img.draw(text: s, x: Int(x) - BitmapFont.measure(s, scale: 2) / 2, y: top + ph + 10, scale: 2, color: text)
    }
    for (v, s) in ay.labelledTicks {
      let y = py(v)
      img.drawLine(x0: Double(left), y0: y, x1: Double(left + pw), y1: y, color: grid)
      img.draw(text: s, x: left - 10 - BitmapFont.measure(s, scale: 2), y: Int(y) - 7, scale: 2, color: text)
    }
    img.drawLine(x0: Double(left), y0: Double(top), x1: Double(left), y1: Double(top + ph), thickness: 2, color: black)
    img.drawLine(
      x0: Double(left), y0: Double(top + ph), x1: Double(left + pw), y1: Double(top + ph), thickness: 2, color: black)
    img.draw(
      text: xLabel + (logX ? " (log)" : ""), x: left + (pw - BitmapFont.measure(xLabel, scale: 2)) / 2,
      y: height - 28, scale: 2, color: black)
    // Above the top tick's label (which sits at most 7 pixels above the plot), below the title.
    img.draw(text: yLabel + (logY ? " (log)" : ""), x: 10, y: top - 26, scale: 2, color: black)
    for s in series {
      if s.style != .markers {
        for (a, b) in zip(s.points, s.points.dropFirst()) {
          img.drawLine(x0: px(a.x), y0: py(a.y), x1: px(b.x), y1: py(b.y), thickness: 3, color: s.color)
        }
      }
      if s.style != .line {
        for p in s.points {
          let (x, y) = (Int(px(p.x)), Int(py(p.y)))
          img.fill(x0: x - 4, y0: y - 4, x1: x + 5, y1: y + 5, color: s.color)
        }
      }
    }
    for (i, s) in series.enumerated() {
      let y = top + 10 + i * 26
      let x = width - right + 15
      if s.style != .markers {
        img.drawLine(
          x0: Double(x), y0: Double(y + 7), x1: Double(x + 24), y1: Double(y + 7), thickness: 3, color: s.color)
      }
      if s.style != .line { img.fill(x0: x + 8, y0: y + 3, x1: x + 17, y1: y + 12, color: s.color) }
      img.draw(text: s.name, x: x + 32, y: y, scale: 2, color: black)
    }
    return img
  }

  /// Writes the chart as PNG; throws, writing nothing, when it has no data (``isEmpty``).
  public func writePNG(to url: URL, width: Int = 900, height: Int = 540) throws {
    try checkNotEmpty(url)
    try render(width: width, height: height).writePNG(to: url)
  }

  func checkNotEmpty(_ url: URL) throws {
    if isEmpty {
      throw ImageError(problem: "the chart '\(title)' has no points to draw; '\(url.path)' was not written")
    }
  }

  // MARK: SVG

  /// The chart as an SVG document.
  public func svg(width: Int = 900, height: Int = 540) -> String {
    // Legend column wide enough for the longest series name (about 8 px per character at 14 px).
    // Title font size that keeps the title inside the width (about 0.55 em per character).
    let titleSize = min(20, max(10, Int(Double(width - 20) / (0.55 * Double(max(1, title.count))))))
    let legendWidth = max(200, (series.map { $0.name.count }.max() ?? 0) * 8 + 60)
    let (left, right, top, bottom) = (90, legendWidth, 60, 70)
    let pw = width - left - right
    let ph = height - top - bottom
    let (ax, ay) = axes()
    func px(_ v: Double) -> Double { Double(left) + ax.position(v) * Double(pw) }
    func py(_ v: Double) -> Double { Double(top + ph) - ay.position(v) * Double(ph) }
    func esc(_ s: String) -> String {
      s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;")
    }
    func hex(_ c: [UInt8]) -> String { String(format: "#%02x%02x%02x", c[0], c[1], c[2]) }
    var out = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(width / 2)" y="30" font-size="\(titleSize)" text-anchor="middle">\(esc(title))</text>

      """
    for (v, s) in ax.labelledTicks {
      out += "<line x1=\"\(px(v))\" y1=\"\(top)\" x2=\"\(px(v))\" y2=\"\(top + ph)\" stroke=\"#e1e1e1\"/>\n"
      out += "<text x=\"\(px(v))\" y=\"\(top + ph + 22)\" font-size=\"13\" text-anchor=\"middle\">\(s)</text>\n"
    }
    for (v, s) in ay.labelledTicks {
      out += "<line x1=\"\(left)\" y1=\"\(py(v))\" x2=\"\(left + pw)\" y2=\"\(py(v))\" stroke=\"#e1e1e1\"/>\n"
      out += "<text x=\"\(left - 8)\" y=\"\(py(v) + 4)\" font-size=\"13\" text-anchor=\"end\">\(s)</text>\n"
    }
    out +=
      "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + ph)\" stroke=\"black\" stroke-width=\"2\"/>\n"
    out +=
      "<line x1=\"\(left)\" y1=\"\(top + ph)\" x2=\"\(left + pw)\" y2=\"\(top + ph)\" stroke=\"black\" stroke-width=\"2\"/>\n"
    out +=
      "<text x=\"\(left + pw / 2)\" y=\"\(height - 20)\" font-size=\"15\" text-anchor=\"middle\">\(esc(xLabel))\(logX ? " (log)" : "")</text>\n"
    out += "<text x=\"10\" y=\"\(top - 15)\" font-size=\"15\">\(esc(yLabel))\(logY ? " (log)" : "")</text>\n"
    for (i, s) in series.enumerated() {
      let pts = s.points.map { "\(px($0.x)),\(py($0.y))" }.joined(separator: " ")
      if s.style != .markers {
        out += "<polyline fill=\"none\" stroke=\"\(hex(s.color))\" stroke-width=\"3\" points=\"\(pts)\"/>\n"
      }
      if s.style != .line {
        for p in s.points {
          out += "<circle cx=\"\(px(p.x))\" cy=\"\(py(p.y))\" r=\"4\" fill=\"\(hex(s.color))\"/>\n"
        }
      }
      let y = top + 10 + i * 24
      if s.style != .markers {
        out +=
          "<line x1=\"\(width - right + 15)\" y1=\"\(y)\" x2=\"\(width - right + 40)\" y2=\"\(y)\" stroke=\"\(hex(s.color))\" stroke-width=\"3\"/>\n"
      }
      if s.style != .line {
        out += "<circle cx=\"\(width - right + 27)\" cy=\"\(y)\" r=\"5\" fill=\"\(hex(s.color))\"/>\n"
      }
      out += "<text x=\"\(width - right + 46)\" y=\"\(y + 5)\" font-size=\"14\">\(esc(s.name))</text>\n"
    }
    return out + "</svg>\n"
  }

  /// Writes the chart as SVG (atomically); throws, writing nothing, when it has no data.
  public func writeSVG(to url: URL, width: Int = 900, height: Int = 540) throws {
    try checkNotEmpty(url)
    try AtomicFile.write(Data(svg(width: width, height: height).utf8), to: url)
  }
}
