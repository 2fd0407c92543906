import Agent
import Foundation
import Imaging
import Tensor
import WorldModel

/// DreamerV3's open-loop prediction picture ("openl"): for a few replayed sequences, the real
/// frames above the model's. The model sees the first ``context`` steps (its row shows their
/// reconstructions), then imagines the rest from the real actions alone; a red line marks where
/// its context ends. Rows are labelled (`real`, `model`), the two parts headed (`context`,
/// `imagined`), and every ``every``-th of the first ``span`` steps is shown. A model that
/// remembers keeps the frames after the line close to the real ones.
public enum OpenLoopPicture {
  /// Steps the model observes before imagining.
  public static let context = 5
  /// Steps shown at most (observed and imagined).
  public static let span = 45
  /// One column every this many steps.
  public static let every = 3

  /// The picture of `batch` (image observations [N, T, H, W, C], pixels 0...255): its first
  /// `sequences` rows and ``span`` steps, frames enlarged `scale` times. Nil when the
  /// observations are not images or the sequences are not longer than ``context``.
  public static func render(
    agent: Agent, batch: WorldModelBatch, sequences: Int = 3, scale: Int = 1, rng: inout SeededGenerator
  ) -> Image? {
    let obs = batch.observations
    guard obs.rank == 5, batch.length > context else { return nil }
    let n = min(sequences, batch.batchSize)
    let t = min(span, batch.length)
    func cut(_ x: Tensor?) -> Tensor? { x?.slice(axis: 0, 0..<n).slice(axis: 1, 0..<t) }
    let part = WorldModelBatch(
      observations: cut(batch.observations)!, actions: cut(batch.actions)!, rewards: cut(batch.rewards)!,
      isFirst: cut(batch.isFirst)!, isTerminal: cut(batch.isTerminal)!, mask: cut(batch.mask))
    let predicted = agent.worldModel.openLoopPrediction(part, context: context, rng: &rng)
    return compose(real: part.observations, predicted: predicted, context: context, scale: scale)
  }

  /// Lays out `real` [N, T, H, W, C] (0...255) above `predicted` [N, T, H, W, C] (0...1) for
  /// each of the N sequences, every ``every``-th step, the first `context` steps left of a red
  /// line.
  public static func compose(real: Tensor, predicted: Tensor, context: Int, scale: Int = 1) -> Image {
    precondition(real.shape == predicted.shape && real.rank == 5, "OpenLoopPicture: shapes must be [N, T, H, W, C]")
    let (n, t, h, w, c) = (real.shape[0], real.shape[1], real.shape[2], real.shape[3], real.shape[4])
    let steps = Array(stride(from: 0, to: t, by: every))
    let (fw, fh) = (w * scale, h * scale)
    let pad = 2
    let label = 6 * 5 + 8  // "model" in the 5 x 7 font, and a margin
    let header = 12
    let boundary = steps.firstIndex { $0 >= context } ?? steps.count  // first imagined column
    let line = 2  // the red line's width, in the gap before that column
    let width = label + steps.count * (fw + pad) + pad + line
    let height = header + n * 2 * (fh + pad) + n * pad + pad
    var out = Image(width: width, height: height, channels: 3)
    out.fill(x0: 0, y0: 0, x1: width, y1: height, color: [32, 32, 32])
    let white: [UInt8] = [230, 230, 230]
    func columnX(_ k: Int) -> Int { label + pad + k * (fw + pad) + (k >= boundary ? line : 0) }
    out.draw(text: "context", x: columnX(0), y: 2, color: white)
    if boundary < steps.count { out.draw(text: "imagined", x: columnX(boundary), y: 2, color: white) }
    let realPixels = real.scalars
    let modelPixels = predicted.scalars
    for s in 0..<n {
      for (r, (pixels, gain)) in [(realPixels, Float(1)), (modelPixels, Float(255))].enumerated() {
        let y0 = header + s * (2 * (fh + pad) + pad) + r * (fh + pad)
        out.draw(text: r == 0 ? "real" : "model", x: 4, y: y0 + fh / 2 - 3, color: white)
        for (k, step) in steps.enumerated() {
          let base = (s * t + step) * h * w * c
          // RGB from the first three channels (or the first one, grey, for fewer).
          var rgb = [UInt8](repeating: 0, count: h * w * 3)
          for i in 0..<(h * w) {
            for ch in 0..<3 {
              let v = pixels[base + i * c + (c >= 3 ? ch : 0)] * gain
              rgb[i * 3 + ch] = UInt8(max(0, min(255, v.rounded())))
            }
          }
          let frame = Image(width: w, height: h, channels: 3, pixels: rgb).scaled(by: scale)
          out.paste(frame, x: columnX(k), y: y0)
        }
      }
    }
    if boundary > 0 && boundary < steps.count {
      let x = columnX(boundary) - pad / 2 - line
      out.fill(x0: x, y0: header, x1: x + line, y1: height, color: [230, 40, 40])
    }
    return out
  }
}

extension Image {
  /// Copies `image` (the same channel count) with its top-left corner at (x, y), clipped to
  /// this image.
  mutating func paste(_ image: Image, x: Int, y: Int) {
    precondition(image.channels == channels, "paste: channel counts differ")
    for row in 0..<image.height where y + row >= 0 && y + row < height {
      for col in 0..<image.width where x + col >= 0 && x + col < width {
        let src = (row * image.width + col) * channels
        let dst = ((y + row) * width + x + col) * channels
        for k in 0..<channels { pixels[dst + k] = image.pixels[src + k] }
      }
    }
  }
}
