import Agent
import Replay

/// Conversions between the replay's plain buffers and the world model's tensors. This room is
/// the only one that sees both conventions (Replay and Envs use no tensor code).
extension WorldModelBatch {
  /// A batch sampled from a replay, [B, T, ...] (vector observations; images as 0...255 floats).
  /// The replay's padding mask becomes the batch's mask.
  public init(_ r: ReplayBatch) {
    let (b, t) = (r.batchSize, r.length)
    let l = r.layout
    let observations: Tensor
    if l.imageSize > 0 {
      observations = Tensor(r.images.map { Float($0) }, shape: [b, t, l.imageHeight, l.imageWidth, l.imageChannels])
    } else {
      observations = Tensor(r.vectors, shape: [b, t, l.vectorSize])
    }
    self.init(
      observations: observations, actions: Tensor(r.actions, shape: [b, t, l.actionSize]),
      rewards: Tensor(r.rewards, shape: [b, t]), isFirst: Tensor(r.isFirst, shape: [b, t]),
      isTerminal: Tensor(r.isTerminal, shape: [b, t]), mask: Tensor(r.mask, shape: [b, t]))
  }

  /// Rows of equal length from stored steps (vector observations), [B, T, ...], no padding.
  public init(rows: [[ReplayStep]], layout: ReplayLayout) {
    precondition(
      !rows.isEmpty && rows.allSatisfy { $0.count == rows[0].count }, "rows must be non-empty and of equal length")
    let (b, t) = (rows.count, rows[0].count)
    self.init(
      observations: Tensor(rows.flatMap { $0.flatMap { $0.vector } }, shape: [b, t, layout.vectorSize]),
      actions: Tensor(rows.flatMap { $0.flatMap { $0.action } }, shape: [b, t, layout.actionSize]),
      rewards: Tensor(rows.flatMap { $0.map { $0.reward } }, shape: [b, t]),
      isFirst: Tensor(rows.flatMap { $0.map { $0.isFirst ? 1 : 0 } }, shape: [b, t]),
      isTerminal: Tensor(rows.flatMap { $0.map { $0.isTerminal ? 1 : 0 } }, shape: [b, t]))
  }
}
