import Foundation
import Testing

@testable import Imaging

@Suite struct ImagingTests {
  func randomImage(_ w: Int, _ h: Int, _ c: Int, seed: UInt64) -> Image {
    var s = seed
    let bytes = (0..<(w * h * c)).map { _ -> UInt8 in
      s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return UInt8(truncatingIfNeeded: s >> 33)
    }
    return Image(width: w, height: h, channels: c, pixels: bytes)
  }

  @Test(arguments: [1, 3, 4])
  func pngRoundTripGivesIdenticalPixels(channels: Int) throws {
    let img = randomImage(37, 23, channels, seed: UInt64(channels))
    let data = try img.pngData()
    #expect(data.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
    let back = try Image(pngData: data)
    #expect(back == img)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("img-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("x.png")
    try img.writePNG(to: url)
    #expect(try Image(pngFile: url) == img)
  }

  @Test func corruptOrMissingFilesGiveClearErrors() throws {
    let img = randomImage(8, 8, 3, seed: 9)
    var data = try img.pngData()
    data[1] = 0  // break the signature
    #expect(throws: ImageError.self) { try Image(pngData: data) }
    do {
      _ = try Image(pngFile: URL(fileURLWithPath: "/nonexistent/frame.png"))
      Issue.record("missing file accepted")
    } catch let e as ImageError {
      #expect(e.description.contains("/nonexistent/frame.png"))
    }
  }

  @Test func grayConvertsToRGBAndGridPlacesTiles() {
    var g = Image(width: 2, height: 1, channels: 1)
    g.pixels = [10, 200]
    #expect(g.rgb().pixels == [10, 10, 10, 200, 200, 200])
    var a = Image(width: 2, height: 2, channels: 3)
    a.fill(x0: 0, y0: 0, x1: 2, y1: 2, color: [255, 0, 0])
    var b = Image(width: 2, height: 2, channels: 3)
    b.fill(x0: 0, y0: 0, x1: 2, y1: 2, color: [0, 0, 255])
    let grid = Image.grid([a, b, a], columns: 2, padding: 1, background: 7)
    #expect(grid.width == 2 * 2 + 3 && grid.height == 2 * 2 + 3)
    #expect(grid[1, 1] == [255, 0, 0])
    #expect(grid[4, 1] == [0, 0, 255])
    #expect(grid[1, 4] == [255, 0, 0])
    #expect(grid[4, 4] == [7, 7, 7])  // empty cell
    #expect(grid[0, 0] == [7, 7, 7])
    #expect(a.scaled(by: 3).width == 6 && a.scaled(by: 3)[5, 5] == [255, 0, 0])
    let r = Image.row([a, b], padding: 1)
    #expect(r.width == 7 && r[4, 1] == [0, 0, 255])
  }

  @Test func framesAreWrittenInOrder() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("frames-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let frames = (0..<3).map { randomImage(4, 4, 3, seed: UInt64(100 + $0)) }
    let urls = try Image.writeFrames(frames, to: dir, prefix: "ep")
    #expect(urls.map { $0.lastPathComponent } == ["ep_00000.png", "ep_00001.png", "ep_00002.png"])
    for (u, f) in zip(urls, frames) { #expect(try Image(pngFile: u) == f) }
  }

  /// The tick labels a chart prints on each axis (SVG: the y labels are right-aligned, the x
  /// labels centred).
  func tickLabels(_ chart: LineChart) -> (x: [String], y: [String]) {
    func labels(_ anchor: String) -> [String] {
      chart.svg().split(separator: "\n").filter {
        $0.contains("text-anchor=\"\(anchor)\"") && $0.contains("font-size=\"13\"")
      }
      .compactMap { line in
        line.split(separator: ">").dropFirst().first.map { String($0.prefix { $0 != "<" }) }
      }
    }
    return (labels("middle"), labels("end"))
  }

  /// Returns between 1.00 and 1.08 (discounting_chain) once printed 1.0, 1.0, 1.0, 1.1, 1.1: the
  /// labels carry as many decimals as the tick step needs, and zero prints as 0 (not 0.0).
  @Test func tickLabelsKeepTheDecimalsTheirStepNeeds() {
    var chart = LineChart(title: "t", xLabel: "minutes", yLabel: "return")
    chart.add(series: "a", points: [(0, 1.0), (15, 1.08)])
    #expect(tickLabels(chart).y == ["1.00", "1.02", "1.04", "1.06", "1.08"])
    #expect(tickLabels(chart).x == ["0", "5", "10", "15"])
    var signed = LineChart(title: "t", xLabel: "x", yLabel: "y")
    signed.add(series: "a", points: [(0, -0.5), (1, 0.5)])
    #expect(tickLabels(signed).y == ["-0.5", "0", "0.5"])
    #expect(tickLabels(signed).x == ["0", "0.5", "1.0"])
    var success = LineChart(title: "t", xLabel: "x", yLabel: "y")
    success.yRange = (0, 1)
    success.add(series: "a", points: [(10, 0.5), (300, 0.9)])
    #expect(tickLabels(success).y == ["0", "0.2", "0.4", "0.6", "0.8", "1.0"])
    #expect(tickLabels(success).x == ["0", "100", "200", "300"])
  }

  /// A chart with nothing to draw is not written (no empty 0-1 chart on disk).
  @Test func aChartWithoutPointsIsNotWritten() throws {
    var chart = LineChart(title: "t", xLabel: "x", yLabel: "y")
    chart.add(series: "a", points: [(1, .nan)])
    #expect(chart.isEmpty)
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(UUID().uuidString).png")
    #expect(throws: ImageError.self) { try chart.writePNG(to: url) }
    #expect(throws: ImageError.self) { try chart.writeSVG(to: url.appendingPathExtension("svg")) }
    #expect(!FileManager.default.fileExists(atPath: url.path))
  }

  /// Log axes: 1-2-5 ticks over up to 2.5 decades, 1-3 up to 5, decades beyond.
  @Test func logAxesTickBetweenDecades() {
    func yTicks(_ lo: Double, _ hi: Double) -> [String] {
      var chart = LineChart(title: "t", xLabel: "x", yLabel: "y", logY: true)
      chart.add(series: "a", points: [(1, lo), (2, hi)])
      return tickLabels(chart).y
    }
    #expect(yTicks(1, 100) == ["1", "2", "5", "10", "20", "50", "100"])
    #expect(yTicks(1, 10_000) == ["1", "3", "10", "30", "100", "300", "1000", "3000", "10000"])
    #expect(yTicks(1, 1e7) == ["1", "10", "100", "1000", "10000", "1e+05", "1e+06", "1e+07"])
  }

  /// The y axis's label sits above the top tick's label and below the title (PNG): the rows of
  /// the label and of the top tick share no pixel row.
  @Test func theAxisLabelClearsTheTopTick() {
    var chart = LineChart(title: "T", xLabel: "x", yLabel: "YYYY")
    chart.yRange = (0, 1)
    chart.add(series: "a", points: [(0, 0), (1, 1)])
    let image = chart.render(width: 900, height: 540)
    // Rows with dark text pixels in the left margin (x < 90): the label's and the ticks'.
    let dark = (0..<image.height).filter { y in (0..<88).contains { image[$0, y][0] < 100 } }
    var runs: [[Int]] = []
    for y in dark {
      if let last = runs.last?.last, last == y - 1 { runs[runs.count - 1].append(y) } else { runs.append([y]) }
    }
    // The first run is the axis label, the second the top tick ("1.0"): apart, in that order.
    #expect(runs.count >= 3)
    #expect((runs.first?.last ?? 0) < (runs.dropFirst().first?.first ?? 0) - 1)
  }

  /// Markers-only series draw no line; a series may share another's colour.
  @Test func seriesStylesAndSharedColours() {
    var chart = LineChart(title: "t", xLabel: "x", yLabel: "y")
    chart.add(series: "run", points: [(0, 0), (10, 1)], style: .line)
    chart.add(series: "run eval", points: [(5, 0.5)], style: .markers, colorOf: "run")
    chart.add(series: "other", points: [(0, 1), (10, 0)])
    #expect(chart.series[1].color == chart.series[0].color && chart.series[2].color != chart.series[0].color)
    let svg = chart.svg()
    #expect(svg.components(separatedBy: "<polyline").count - 1 == 2)
    // The eval dot and its legend dot, the other series' two dots and its legend dot.
    #expect(svg.components(separatedBy: "<circle").count - 1 == 1 + 1 + 2 + 1)
  }
}
