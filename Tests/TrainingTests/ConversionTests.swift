import Foundation
import Replay
import Testing
import Training
import WorldModel

@Suite struct ConversionTests {
  @Test func replayBatchesBecomeWorldModelBatchesElementForElement() throws {
    let layout = ReplayLayout(vectorSize: 2, actionSize: 3)
    let replay = try Replay(layout: layout, capacity: 100, seed: 1)
    for i in 0..<40 {
      try replay.insert(
        ReplayStep(
          vector: [Float(i), -Float(i)], action: [Float(i % 3 == 0 ? 1 : 0), 0, Float(i % 3 == 0 ? 0 : 1)],
          reward: Float(i) / 10, isFirst: i % 10 == 0, isLast: i % 10 == 9, isTerminal: i % 20 == 19), stream: 0)
    }
    let r = try #require(try replay.sample(batchSize: 3, length: 5))
    let b = WorldModelBatch(r)
    #expect(b.observations.shape == [3, 5, 2] && b.actions.shape == [3, 5, 3] && b.rewards.shape == [3, 5])
    #expect(b.observations.scalars == r.vectors && b.actions.scalars == r.actions)
    #expect(b.rewards.scalars == r.rewards && b.isFirst.scalars == r.isFirst && b.isTerminal.scalars == r.isTerminal)
    #expect(b.mask?.scalars == r.mask)
    // Images become 0...255 floats with the image shape.
    let imageLayout = ReplayLayout(image: (height: 2, width: 2, channels: 1), actionSize: 1)
    let images = try Replay(layout: imageLayout, capacity: 10, seed: 0)
    for i in 0..<4 {
      try images.insert(
        ReplayStep(
          image: [UInt8(i), 255, 0, 7], action: [0], reward: 0, isFirst: i == 0, isLast: false, isTerminal: false),
        stream: 0)
    }
    let ib = WorldModelBatch(try #require(try images.sample(batchSize: 1, length: 2)))
    #expect(
      ib.observations.shape == [1, 2, 2, 2, 1]
        && ib.observations.scalars.allSatisfy { [0, 1, 2, 3, 255, 7].contains($0) })
    // Rows of stored steps.
    let steps = replay.stepsByStream()[0]!
    let rows = WorldModelBatch(rows: [Array(steps[0..<4]), Array(steps[10..<14])], layout: layout)
    #expect(rows.observations.shape == [2, 4, 2] && rows.observations[1, 0, 0] == 10 && rows.isFirst[1, 0] == 1)
    #expect(rows.rewards[0, 3] == 0.3 && rows.mask == nil)
  }
}
