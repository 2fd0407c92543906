import Envs
import Foundation
import Imaging

/// The pictures `r2i eval` and `r2i render` write: what an environment looks like now, with
/// the step and return below it.
enum EpisodePictures {
  /// Environment `env`'s own drawing (its image observation, or the picture of a task that
  /// draws itself), enlarged to about 256 pixels wide unless `scale` is given; Memory Maze with
  /// its top-down map and the map's legend beside it. Nil when the environment draws nothing.
  static func picture(of env: any Env, scale: Int? = nil) -> Image? {
    guard let f = env.render() else { return nil }
    let factor = scale ?? max(1, 256 / max(1, f.width))
    let view = Image(width: f.width, height: f.height, channels: f.channels, pixels: f.pixels).rgb().scaled(by: factor)
    guard let maze = env as? MemoryMaze else { return view }
    let map = maze.renderTopDown(cell: max(1, view.height / maze.gridSize))
    var mapImage = Image(width: map.width, height: map.height, channels: 3, pixels: map.pixels)
    if maze.objects.indices.contains(maze.target) {
      mapImage = legend(below: mapImage, target: MemoryMaze.palette[maze.objects[maze.target].colour])
    }
    return Image.row([view, mapImage], padding: 4)
  }

  /// The Memory Maze map with its legend under it: the target (its colour, ringed in white),
  /// the other objects, the agent (a dark dot with its heading).
  static func legend(below map: Image, target: (UInt8, UInt8, UInt8)) -> Image {
    let lines = ["target: ringed", "agent: dark dot", "walls: dark"]
    var out = Image(width: max(map.width, 100), height: map.height + 10 * lines.count + 4, channels: 3)
    out.fill(x0: 0, y0: 0, x1: out.width, y1: out.height, color: [32, 32, 32])
    for y in 0..<map.height {
      out.pixels.replaceSubrange(
        (y * out.width * 3)..<(y * out.width * 3 + map.width * 3),
        with: map.pixels[(y * map.width * 3)..<((y + 1) * map.width * 3)])
    }
    for (i, line) in lines.enumerated() {
      let y = map.height + 3 + 10 * i
      let swatch: [UInt8] = i == 0 ? [target.0, target.1, target.2] : i == 1 ? [20, 20, 20] : [45, 45, 55]
      if i == 0 { out.fill(x0: 1, y0: y - 1, x1: 10, y1: y + 8, color: [255, 255, 255]) }
      out.fill(x0: 2, y0: y, x1: 9, y1: y + 7, color: swatch)
      out.draw(text: line, x: 13, y: y, color: [230, 230, 230])
    }
    return out
  }

  /// `picture` with `step N  return R` below it.
  static func captioned(_ picture: Image, step: Int, return total: Double) -> Image {
    picture.captioned("step \(step)  return \(String(format: "%.2f", total))")
  }
}
