import ArgumentParser
import CommandLineSupport
import Foundation
import SSM

/// Forward + backward time of the scan alone and of a 3-block SSM stack against sequence length.
struct SSMBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ssm",
    abstract: "Scan and 3-block stack forward+backward time vs sequence length (P = 128, H = 512, batch 16).")

  @Option(help: "Comma-separated sequence lengths in 1...65536.")
  var lengths: String = "64,128,256,512,1024,2048,4096"

  @OptionGroup var threadOption: ThreadListOption

  @Option(parsing: .unconditional, help: "Batch size, 1...1024.")
  var batch: Int = 16

  @Option(parsing: .unconditional, help: "Timed repetitions per measurement, 1...1000 (after a warm-up).")
  var repeats: Int = 3

  @Option(help: "Where to write the CSV of results.")
  var output: String = "results/ssm.csv"

  func validate() throws {
    try OptionCheck.range(batch, Limits.batch, "--batch")
    try OptionCheck.range(repeats, Limits.repeats, "--repeats")
    let ls = try OptionCheck.integers(lengths, 1...65_536, "--lengths")
    try OptionCheck.product(
      batch, ls.max()!, atMost: Limits.stepsPerBatch, "steps per batch (--batch x longest --lengths)")
  }

  func run() throws {
    let outputURL = try prepareOutputFile(output)
    let ls = try OptionCheck.integers(lengths, 1...65_536, "--lengths")
    let ts = try threadOption.counts()
    print(
      "SSM benchmark on \(Machine.summary); P = 128, H = 512, 3 layers, batch \(batch); fwd+bwd, median of \(repeats)\n"
    )
    var table = ResultTable([
      "threads", "length", "scan_ms", "scan_us_per_step", "stack_ms", "stack_us_per_step",
      "scan_share_of_stack", "peak_rss_mb",
    ])
    var rng = SeededGenerator(seed: 0)
    let stack = SSMStack(layers: 3, states: 128, channels: 512, rng: &rng)
    let p = 128
    for t in ts {
      Parallelism.setThreadCount(t)
      for l in ls {
        let bu = Tensor.normal([batch, l, 2 * p], using: &rng)
        var flags = Tensor.zeros([batch, l])
        for b in 0..<batch { flags[b, 0] = 1 }
        let (lambdaBar, _) = stack.blocks[0].ssm.discretize()
        let xInit = Tensor.zeros([2 * p])
        let seed = Tensor.normal([batch, l, 2 * p], using: &rng)
        let scan = measure(warmup: 1, repeats: repeats) {
          _ = valueWithGradient(at: [bu, lambdaBar.value, xInit], seed: seed) { v in
            linearRecurrence(inputs: v[0], lambdaBar: v[1], xInit: v[2], state: nil, isFirst: flags)
          }
        }
        let u = Tensor.normal([batch, l, 512], using: &rng)
        ProcessMemory.resetPeak()
        let full = measure(warmup: 1, repeats: repeats) {
          _ = valueAndGradient(of: stack) {
            stack(Variable(u), isFirst: flags, state: nil).output.mean()
          }
        }
        let share = 3 * scan.median / full.median
        table.add([
          "\(t)", "\(l)", fmt(scan.median, 2), fmt(scan.median / Double(l) * 1e3, 2), fmt(full.median, 1),
          fmt(full.median / Double(l) * 1e3, 1), fmt(100 * share, 1) + "%", fmt(ProcessMemory.peakResidentMB, 0),
        ])
        print("threads \(t) length \(l): scan \(fmt(scan.median, 2)) ms, stack \(fmt(full.median, 1)) ms")
      }
    }
    print("\n" + table.render())
    print("\nLinear cost in length shows as a constant time per step across rows.")
    try table.writeCSV(to: outputURL)
    print("CSV written to \(output)")
  }
}
