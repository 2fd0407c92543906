import Testing

@testable import Autodiff
@testable import Tensor

/// A product over column blocks (``matmul(blocks:_:)``) against the dense product of the
/// concatenation, with binary blocks (one-hot groups, as a sampled latent and an action) taking
/// the sparse path.
@Suite struct PartsProductTests {
  /// [rows, groups * classes] with one 1 per group at a random class.
  static func oneHot(rows: Int, groups: Int, classes: Int, rng: inout SeededGenerator) -> Tensor {
    var t = Tensor.zeros([rows, groups * classes])
    for r in 0..<rows {
      for g in 0..<groups { t[r, g * classes + rng.nextInt(below: classes)] = 1 }
    }
    return t
  }

  @Test func binaryRowsFindTheOnesAndRefuseOtherValuesOrDenseMatrices() throws {
    let x = Tensor([0, 1, 0, 0, -0.0, 1, 1, 0, 0, 0, 0, 0], shape: [3, 4])
    let pattern = try #require(BinaryRows(x))
    #expect(pattern.rows == 3 && pattern.columns == 4)
    // Rows [0, 1, 0, 0], [-0, 1, 1, 0] (-0 is a zero), [0, 0, 0, 0].
    #expect(pattern.offsets == [0, 1, 3, 3])
    #expect(pattern.indices == [1, 1, 2])
    #expect(BinaryRows(Tensor([0, 1, 0.5, 0], shape: [2, 2])) == nil, "0.5 is not binary")
    #expect(BinaryRows(Tensor([0, 1, 2, 0], shape: [2, 2])) == nil, "2 is not binary")
    #expect(BinaryRows(Tensor([0, 1, .nan, 0], shape: [2, 2])) == nil, "NaN is not binary")
    // Half ones: denser than the default limit of a quarter.
    #expect(BinaryRows(Tensor([1, 0, 1, 0], shape: [2, 2])) == nil)
    #expect(BinaryRows(Tensor([1, 0, 1, 0], shape: [2, 2]), maxDensity: 0.5) != nil)
  }

  /// Forward and every gradient match the dense product of the concatenation, for binary and
  /// dense blocks in any order, and a block marked binary that is not (relaxed samples).
  @Test(arguments: [1, 2])
  func blocksGiveTheDenseProductAndItsGradients(threads: Int) {
    var rng = SeededGenerator(seed: 3)
    let rows = 37
    let z = Self.oneHot(rows: rows, groups: 4, classes: 8, rng: &rng)  // binary, 32 columns
    let a = Self.oneHot(rows: rows, groups: 1, classes: 3, rng: &rng)  // binary, 3 columns
    let h = Tensor.normal([rows, 10], using: &rng)  // dense
    let relaxed = Tensor.uniform([rows, 5], low: 0, high: 1, using: &rng)  // marked binary, is not
    let w = Tensor.normal([10 + 32 + 3 + 5, 19], using: &rng)
    let seed = Tensor.normal([rows, 19], using: &rng)
    let values = [h, z, a, relaxed]
    let binary = [false, true, true, true]
    Parallelism.withThreadCount(threads) {
      let (y, grads) = valueWithGradient(at: values + [w], seed: seed) { v in
        matmul(blocks: (0..<4).map { InputBlock(v[$0], mayBeBinary: binary[$0]) }, v[4])
      }
      let (yDense, gradsDense) = valueWithGradient(at: values + [w], seed: seed) { v in
        matmul(Variable.concat(Array(v[0..<4]), axis: -1), v[4])
      }
      #expect(y.shape == [rows, 19])
      #expect(y.maxAbsDifference(yDense) < 1e-5, "forward")
      for i in 0..<5 {
        #expect(
          grads[i].maxAbsDifference(gradsDense[i]) < 1e-4, "gradient \(i): \(grads[i].maxAbsDifference(gradsDense[i]))")
      }
    }
  }

  /// The sparse path's results do not depend on the thread count (bit for bit).
  @Test func theSparsePathIsTheSameOnOneAndTwoThreads() {
    var rng = SeededGenerator(seed: 4)
    let z = Self.oneHot(rows: 300, groups: 8, classes: 8, rng: &rng)
    let w = Tensor.normal([64, 200], using: &rng)
    let seed = Tensor.normal([300, 200], using: &rng)
    func run(_ threads: Int) -> (Tensor, Tensor) {
      Parallelism.withThreadCount(threads) {
        let (y, g) = valueWithGradient(at: [w], seed: seed) { v in
          matmul(blocks: [InputBlock(Variable(z), mayBeBinary: true)], v[0])
        }
        return (y, g[0])
      }
    }
    let (y1, g1) = run(1)
    let (y2, g2) = run(2)
    #expect(y1 == y2 && g1 == g2)
    // And they are the dense product (rows of w summed) and its weight gradient (z^T seed).
    #expect(y1.maxAbsDifference(matmul(z, w)) < 1e-5)
    #expect(g1.maxAbsDifference(matmul(z, seed, transposeA: true)) < 1e-4)
  }

  /// Dense blocks: the product's gradients against finite differences (the binary path is
  /// compared with the dense one above; a finite-difference probe makes a binary block dense).
  @Test func denseBlocksHaveCorrectGradients() {
    var inputs = Inputs(5)
    let report = checkGradients(
      of: { v in matmul(blocks: [InputBlock(v[0]), InputBlock(v[1], mayBeBinary: true)], v[2]) },
      at: [inputs.t([4, 3]), inputs.t([4, 2]), inputs.t([5, 6])])
    #expect(report.passed, "\(report)")
  }
}
