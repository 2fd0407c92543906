import ArgumentParser
import COpenBLAS
import CommandLineSupport
import Foundation
import NN

/// Throughput of the numerical core: matmul, elementwise, layer norm, softmax, and the
/// autodiff overhead of a Dense MLP against the matrix products it contains.
struct TensorBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tensor",
    abstract:
      "Matmul GFLOP/s (Tensor vs raw cblas_sgemm), elementwise GB/s, layer norm, softmax, MLP autodiff overhead.")

  @OptionGroup var threadOption: ThreadListOption

  @Option(help: "Where to write the CSV of results.")
  var output: String = "results/tensor.csv"

  @Option(parsing: .unconditional, help: "Timed repetitions per measurement, 1...1000 (after 2 warm-ups).")
  var repeats: Int = 9

  func validate() throws {
    try OptionCheck.range(repeats, Limits.repeats, "--repeats")
  }

  func run() throws {
    let outputURL = try prepareOutputFile(output)
    let threadCounts = try threadOption.counts()
    print("Tensor benchmark on \(Machine.summary); release build; median of \(repeats) after warm-up\n")
    var table = ResultTable(["threads", "benchmark", "median_ms", "min_ms", "max_ms", "rate", "unit", "note"])
    for t in threadCounts {
      Parallelism.setThreadCount(t)
      var rng = SeededGenerator(seed: 1)

      // Matmul: Tensor vs raw cblas_sgemm into a preallocated buffer.
      for (m, k, n) in [(1024, 1024, 1024), (16, 1024, 1536)] {
        let a = Tensor.normal([m, k], using: &rng)
        let b = Tensor.normal([k, n], using: &rng)
        let flops = 2.0 * Double(m * n * k)
        let tt = measure(repeats: repeats) { _ = matmul(a, b) }
        let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        defer { c.deallocate() }
        // The reference: cblas_sgemm called directly with OpenBLAS's own thread pool.
        Parallelism.setGEMMThreading(.blas)
        defer { Parallelism.setGEMMThreading(.split) }
        let raw = measure(repeats: repeats) {
          a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
              cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                ap.baseAddress, Int32(k), bp.baseAddress, Int32(n), 0, c, Int32(n))
            }
          }
        }
        let gT = flops / tt.median / 1e6
        let gR = flops / raw.median / 1e6
        table.add([
          "\(t)", "matmul \(m)x\(k)x\(n) Tensor", fmt(tt.median, 3), fmt(tt.min, 3), fmt(tt.max, 3), fmt(gT, 1),
          "GFLOP/s", "\(fmt(100 * gT / gR, 1))% of raw sgemm",
        ])
        table.add([
          "\(t)", "matmul \(m)x\(k)x\(n) cblas_sgemm", fmt(raw.median, 3), fmt(raw.min, 3), fmt(raw.max, 3), fmt(gR, 1),
          "GFLOP/s", "OpenBLAS's own \(t)-thread pool",
        ])
      }

      // Elementwise on 16M floats.
      let n16 = 16 << 20
      let x = Tensor.normal([n16], using: &rng)
      let y = Tensor.normal([n16], using: &rng)
      let add = measure(repeats: repeats) { _ = x + y }
      table.add([
        "\(t)", "add 16M", fmt(add.median, 3), fmt(add.min, 3), fmt(add.max, 3),
        fmt(Double(n16 * 12) / add.median / 1e6, 1), "GB/s", "reads 2, writes 1",
      ])
      let si = measure(repeats: repeats) { _ = silu(x) }
      table.add([
        "\(t)", "silu 16M", fmt(si.median, 3), fmt(si.min, 3), fmt(si.max, 3),
        fmt(Double(n16 * 8) / si.median / 1e6, 1), "GB/s", "reads 1, writes 1",
      ])

      // Layer norm [4096, 512] forward and forward+backward.
      let ln = Tensor.normal([4096, 512], using: &rng)
      let scale = Tensor.ones([512])
      let offset = Tensor.zeros([512])
      let lnF = measure(repeats: repeats) {
        _ = Tensor.layerNormForward(ln, scale: scale, offset: offset, epsilon: 1e-3)
      }
      table.add([
        "\(t)", "layernorm [4096,512] fwd", fmt(lnF.median, 3), fmt(lnF.min, 3), fmt(lnF.max, 3),
        fmt(Double(ln.count * 8) / lnF.median / 1e6, 1), "GB/s", "",
      ])
      let gOut = Tensor.normal([4096, 512], using: &rng)
      let lnFB = measure(repeats: repeats) {
        let (_, stats) = Tensor.layerNormForward(ln, scale: scale, offset: offset, epsilon: 1e-3)
        _ = Tensor.layerNormBackward(gOut, input: ln, statistics: stats, scale: scale, offset: offset)
      }
      table.add([
        "\(t)", "layernorm [4096,512] fwd+bwd", fmt(lnFB.median, 3), fmt(lnFB.min, 3), fmt(lnFB.max, 3), "", "", "",
      ])

      // Softmax [4096, 1024].
      let sm = Tensor.normal([4096, 1024], using: &rng)
      let smT = measure(repeats: repeats) { _ = sm.softmax(axis: -1) }
      table.add([
        "\(t)", "softmax [4096,1024]", fmt(smT.median, 3), fmt(smT.min, 3), fmt(smT.max, 3),
        fmt(Double(sm.count * 8) / smT.median / 1e6, 1), "GB/s", "",
      ])

      // MLP forward + backward vs its matrix products.
      let batch = Tensor.normal([4096, 512], using: &rng)
      let mlp = MLP(512, units: 512, depth: 2, rng: &rng)
      let mlpT = measure(repeats: repeats) {
        _ = valueAndGradient(of: mlp) { mlp(Variable(batch)).mean() }
      }
      // The products it contains: 2 forward, then dW and dX of layer 2 and dW of layer 1.
      let w = Tensor.normal([512, 512], using: &rng)
      let buf = UnsafeMutablePointer<Float>.allocate(capacity: 4096 * 512)
      defer { buf.deallocate() }
      let gemmT = measure(repeats: repeats) {
        batch.withUnsafeBufferPointer { xp in
          w.withUnsafeBufferPointer { wp in
            let (X, W) = (xp.baseAddress!, wp.baseAddress!)
            sgemm(false, false, 4096, 512, 512, 1, X, W, 0, buf)  // layer 1 forward
            sgemm(false, false, 4096, 512, 512, 1, X, W, 0, buf)  // layer 2 forward
            sgemm(false, true, 4096, 512, 512, 1, X, W, 0, buf)  // layer 2 dX
            sgemm(true, false, 512, 512, 4096, 1, X, X, 0, buf)  // layer 2 dW
            sgemm(true, false, 512, 512, 4096, 1, X, X, 0, buf)  // layer 1 dW
          }
        }
      }
      let overhead = (mlpT.median - gemmT.median) / gemmT.median * 100
      let flops = 5 * 2.0 * 4096 * 512 * 512
      table.add([
        "\(t)", "MLP 2x512 [4096,512] fwd+bwd", fmt(mlpT.median, 3), fmt(mlpT.min, 3), fmt(mlpT.max, 3),
        fmt(flops / mlpT.median / 1e6, 1), "GFLOP/s", "overhead \(fmt(overhead, 1))% over its GEMMs",
      ])
      table.add([
        "\(t)", "  its 5 GEMMs alone", fmt(gemmT.median, 3), fmt(gemmT.min, 3), fmt(gemmT.max, 3),
        fmt(flops / gemmT.median / 1e6, 1), "GFLOP/s", "",
      ])
    }
    print(table.render())
    try table.writeCSV(to: outputURL)
    print("\nCSV written to \(outputURL.path)")
  }
}
