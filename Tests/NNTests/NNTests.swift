import Foundation
import Testing

@testable import NN

final class Toy: Module {
  let encoder: MLP
  let head: Linear
  let extra: [Parameter]
  let optionalNorm: LayerNorm?
  let settings = 3  // ignored: not a parameter

  init(rng: inout SeededGenerator) {
    encoder = MLP(4, units: 8, depth: 2, rng: &rng)
    head = Linear(8, 2, rng: &rng)
    extra = [Parameter(Tensor.zeros([3]))]
    optionalNorm = LayerNorm(2)
  }
}

func reportText(_ r: (report: GradientCheckReport, names: [String])) -> String {
  guard let w = r.report.worst else { return "\(r.report)" }
  return "\(r.report) [parameter \(r.names[w.input])]"
}

@Suite struct ModuleTests {
  @Test func parameterNamesAreHierarchicalAndStable() {
    var rng = SeededGenerator(seed: 1)
    let m = Toy(rng: &rng)
    let names = m.namedParameters().map { $0.name }
    #expect(
      names == [
        "encoder/layers/0/linear/weight", "encoder/layers/0/norm/scale",
        "encoder/layers/0/norm/offset", "encoder/layers/1/linear/weight",
        "encoder/layers/1/norm/scale", "encoder/layers/1/norm/offset", "head/weight", "head/bias",
        "extra/0", "optionalNorm/scale", "optionalNorm/offset",
      ])
    // 4*8 + 8 + 8 + 8*8 + 8 + 8 + 8*2 + 2 + 3 + 2 + 2
    #expect(m.parameterCount == 32 + 16 + 64 + 16 + 18 + 3 + 4)
    var rng2 = SeededGenerator(seed: 1)
    let again = Toy(rng: &rng2)
    #expect(again.namedParameters().map { $0.name } == names)
    #expect(again.head.weight.value == m.head.weight.value)  // same seed, same init
  }

  @Test func initializersHaveTheirStatedScales() {
    var rng = SeededGenerator(seed: 2)
    let w = Initializer.truncatedNormal().make([400, 600], rng: &rng)
    // std = sqrt(1 / fan_avg) with fan_avg = 500 after undoing the truncation.
    let sd = sqrt(w.variance().scalar)
    #expect(abs(sd - (1 / 500 as Float).squareRoot()) < 0.002)
    #expect(w.max().scalar <= 2 * (1 / 500 as Float).squareRoot() / Initializer.truncationStd + 1e-6)
    let u = Initializer.uniform().make([300, 100], rng: &rng)
    let limit = (3 / 200 as Float).squareRoot()
    #expect(u.max().scalar <= limit && u.min().scalar >= -limit)
    #expect(u.max().scalar > 0.98 * limit)
    let k = Initializer.lecunNormal.make([4, 4, 8, 16], rng: &rng)
    #expect(abs(sqrt(k.variance().scalar) - (1 / 128 as Float).squareRoot()) < 0.01)
    #expect(Initializer.fans([4, 4, 8, 16]) == (128, 256))
    #expect(Initializer.zeros.make([3], rng: &rng) == Tensor.zeros([3]))
  }
}

@Suite struct LayerGradientTests {
  @Test func denseMLPAndGLU() {
    var rng = SeededGenerator(seed: 3)
    let x = Variable(Tensor.normal([5, 6], using: &rng))
    let mlp = MLP(6, units: 7, depth: 2, rng: &rng)
    let r1 = checkParameterGradients(of: mlp) { (mlp(x) * x.value.sum(axes: [1], keepDims: true)).sum() }
    #expect(r1.report.passed, "\(reportText(r1))")
    let glu = GLU(6, 4, rng: &rng)
    let r2 = checkParameterGradients(of: glu) { tanh(glu(x)).sum() }
    #expect(r2.report.passed, "\(reportText(r2))")
  }

  @Test func convolutionLayers() {
    var rng = SeededGenerator(seed: 4)
    let x = Variable(Tensor.normal([2, 8, 8, 3], using: &rng))
    let conv = Conv2D(3, 4, kernelSize: 4, stride: 2, rng: &rng)
    let r1 = checkParameterGradients(of: conv) { square(conv(x)).sum() }
    #expect(r1.report.passed, "\(reportText(r1))")
    let up = ConvTranspose2D(3, 2, kernelSize: 4, stride: 2, rng: &rng)
    let y = up(x)
    #expect(y.shape == [2, 16, 16, 2])
    let r2 = checkParameterGradients(of: up) { tanh(up(x)).sum() }
    #expect(r2.report.passed, "\(reportText(r2))")
  }
}

@Suite struct LearningTests {
  /// y = sin(3 x0) + x1^2 on 256 points in [-1, 1]^2: an MLP(2 x 64) + linear head must reach a
  /// mean squared error below 0.01 in 800 Adam steps (the target's variance is about 0.6).
  ///
  /// The Dense block has no bias before its LayerNorm (docs/method.md, section 2), so the first
  /// block is blind to the input's overall scale: LN(W c x) = LN(W x) for c > 0. A constant
  /// input feature restores it, as an observation with a constant entry would.
  @Test func mlpLearnsARegression() {
    var rng = SeededGenerator(seed: 5)
    let n = 256
    let raw = Tensor.uniform([n, 2], low: -1, high: 1, using: &rng)
    let xs = raw.scalars
    let x = Tensor.concat([raw, Tensor.ones([n, 1])], axis: 1)
    let y = Tensor((0..<n).map { sin(3 * xs[2 * $0]) + xs[2 * $0 + 1] * xs[2 * $0 + 1] }, shape: [n, 1])
    final class Net: Module {
      let body: MLP
      let out: Linear
      init(rng: inout SeededGenerator) {
        body = MLP(3, units: 64, depth: 2, rng: &rng)
        out = Linear(64, 1, rng: &rng)
      }
      func callAsFunction(_ x: Variable) -> Variable { out(body(x)) }
    }
    let net = Net(rng: &rng)
    let opt = Adam(for: net, learningRate: 3e-3)
    var loss: Float = .infinity
    for _ in 0..<800 {
      let (l, g) = valueAndGradient(of: net) { square(net(Variable(x)) - y).mean() }
      opt.update(g)
      loss = l
    }
    #expect(loss < 0.01, "final regression MSE \(loss)")
  }

  /// Three interleaved spiral arms (150 points each): cross-entropy below 0.15 and training
  /// accuracy above 95% within 1000 Adam steps.
  @Test func mlpLearnsAClassification() {
    var rng = SeededGenerator(seed: 6)
    var pts: [Float] = []
    var labels: [Int] = []
    for c in 0..<3 {
      for i in 0..<150 {
        let r = Float(i) / 150
        let t = Float(c) * 2.094 + r * 4 + 0.15 * rng.nextNormal()
        pts += [r * sin(t), r * cos(t)]
        labels.append(c)
      }
    }
    let x = Tensor(pts, shape: [450, 2])
    let onehot = Tensor.oneHot(labels, depth: 3)
    let body = MLP(2, units: 64, depth: 2, rng: &rng)
    let head = Linear(64, 3, rng: &rng)
    let opt = Adam(
      names: (body.namedParameters() + head.namedParameters()).map { $0.name },
      parameters: body.parameters + head.parameters, learningRate: 5e-3)
    var loss: Float = .infinity
    for _ in 0..<1000 {
      let (l, g) = valueWithGradient(for: body.parameters + head.parameters) {
        -(head(body(Variable(x))).logSoftmax() * onehot).sum(axes: [1]).mean()
      }
      opt.update(g)
      loss = l.scalar
    }
    let pred = head(body(Variable(x))).value.argmax(axis: 1).scalars.map { Int($0) }
    let accuracy = Float(zip(pred, labels).filter { $0 == $1 }.count) / 450
    #expect(loss < 0.15, "final cross-entropy \(loss)")
    #expect(accuracy > 0.95, "training accuracy \(accuracy)")
  }
}

@Suite struct DistributionTests {
  @Test func twoHotOfAValueDecodesBackToTheValue() {
    var rng = SeededGenerator(seed: 7)
    let bins = TwoHotSymlog.defaultBins
    let values = Tensor.uniform([500], low: -1000, high: 1000, using: &rng)
    let weights = TwoHotSymlog.encode(symlog(values), bins: bins)
    #expect(weights.sum(axes: [1]).isClose(to: Tensor.ones([500]), rtol: 0, atol: 1e-6))
    // At most two non-zero weights, on neighbouring bins.
    for row in 0..<500 {
      let nz = (0..<255).filter { weights[row, $0] != 0 }
      #expect(nz.count <= 2 && (nz.count < 2 || nz[1] == nz[0] + 1))
    }
    let decoded = symexp((weights * bins).sum(axes: [1]))
    #expect(decoded.isClose(to: values, rtol: 1e-4, atol: 1e-3), "\(decoded.maxAbsDifference(values))")
    // Outside the bin range the mass goes wholly to the end bin.
    let edge = TwoHotSymlog.encode(Tensor([-25, 25, 0]), bins: bins)
    #expect(edge[0, 0] == 1 && edge[1, 254] == 1 && edge[2, 127] == 1)
  }

  @Test func twoHotLogProbAndMean() {
    // Logits concentrated on the bins around symlog(5) predict about 5.
    let bins = TwoHotSymlog.defaultBins
    let target = Tensor([5])
    let w = TwoHotSymlog.encode(symlog(target), bins: bins)
    let logits = Variable(log(w + 1e-8))
    let d = TwoHotSymlog(logits: logits)
    #expect(abs(d.mean.value.scalar - 5) < 1e-3)
    // log p is the cross-entropy between the two-hot target and the softmax.
    let expected = (w * logits.value.logSoftmax()).sumAll()
    #expect(abs(d.logProb(target).value.scalar - expected) < 1e-5)
    #expect(TwoHotSymlog(logits: Variable(Tensor.zeros([255]))).mean.value.scalar == 0)
  }

  /// Several scaled targets under one log-softmax: the same value and gradient as the sum of
  /// the single-target log-probabilities (the critic's loss).
  @Test func twoHotLogProbOfSeveralTargetsIsTheScaledSum() {
    var rng = SeededGenerator(seed: 3)
    let logits = Tensor.normal([4, 3, 255], std: 2, using: &rng)
    let a = Tensor.normal([4, 3], std: 30, using: &rng)
    let b = Tensor.normal([4, 3], std: 2, using: &rng)
    let (fused, gFused) = valueWithGradient(at: [logits]) { v in
      TwoHotSymlog(logits: v[0]).logProb([(a, 1), (b, 0.7)]).sum()
    }
    let (plain, gPlain) = valueWithGradient(at: [logits]) { v in
      let d = TwoHotSymlog(logits: v[0])
      return (d.logProb(a) + d.logProb(b) * 0.7).sum()
    }
    #expect(abs(fused.scalar - plain.scalar) < 1e-3 * abs(plain.scalar), "\(fused.scalar) vs \(plain.scalar)")
    #expect(gFused[0].isClose(to: gPlain[0], rtol: 1e-4, atol: 1e-6))
  }

  /// The two-hot log-probability keeps only the bins around each target: its value and
  /// gradient against the dense cross-entropy with the two-hot weights written out, and
  /// against finite differences (targets inside the range, at its ends and beyond it).
  @Test func twoHotLogProbMatchesTheDenseCrossEntropyAndFiniteDifferences() {
    var rng = SeededGenerator(seed: 4)
    let logits = Tensor.normal([5, 255], std: 2, using: &rng)
    let a = Tensor([0.3, -7, 1e9, -1e9, 40])
    let b = Tensor([2, 0, -0.5, 3e8, 0.01])
    let bins = TwoHotSymlog.defaultBins
    let weights = TwoHotSymlog.encode(symlog(a), bins: bins) + TwoHotSymlog.encode(symlog(b), bins: bins) * 0.7
    let seed = Tensor.normal([5], using: &rng)
    let (value, grad) = valueWithGradient(at: [logits], seed: seed) { v in
      TwoHotSymlog(logits: v[0]).logProb([(a, 1), (b, 0.7)])
    }
    let (denseValue, denseGrad) = valueWithGradient(at: [logits], seed: seed) { v in
      (v[0].logSoftmax(axis: -1) * weights).sum(axes: [-1])
    }
    #expect(value.isClose(to: denseValue, rtol: 1e-5, atol: 1e-5), "\(value) vs \(denseValue)")
    #expect(grad[0].isClose(to: denseGrad[0], rtol: 1e-4, atol: 1e-6))
    let report = checkGradients(
      of: { v in TwoHotSymlog(logits: v[0]).logProb([(a, 1), (b, 0.7)]) }, at: [Tensor.normal([5, 255], using: &rng)])
    #expect(report.passed, "\(report)")
  }

  @Test func categoricalUnimixKLAndEntropy() {
    var rng = SeededGenerator(seed: 8)
    let logits = Variable(Tensor.normal([6, 32, 32], std: 8, using: &rng))
    let p = OneHotCategorical(logits: logits, unimix: 0.01, eventAxes: 2)
    #expect(p.probs.value.min().scalar >= 0.01 / 32 * 0.9999)
    #expect(p.probs.value.sum(axes: [-1]).isClose(to: Tensor.ones([6, 32]), rtol: 0, atol: 1e-5))
    let kl = OneHotCategorical.kl(p, p).value
    #expect(kl.shape == [6] && kl.max().scalar.magnitude < 1e-6)
    let q = OneHotCategorical(logits: Variable(Tensor.normal([6, 32, 32], using: &rng)), eventAxes: 2)
    #expect(OneHotCategorical.kl(p, q).value.min().scalar > 0)
    // Entropy of uniform logits: 32 groups * log(32).
    let u = OneHotCategorical(logits: Variable(Tensor.zeros([1, 32, 32])), eventAxes: 2)
    #expect(abs(u.entropy().value.scalar - 32 * log(32)) < 1e-3)
    // Samples are one-hot per group and follow the probabilities.
    let s = p.sample(using: &rng).value
    #expect(s.sum(axes: [-1]) == Tensor.ones([6, 32]))
    let mode = p.mode.value
    #expect(mode.argmax(axis: -1) == p.probs.value.argmax(axis: -1))
  }

  @Test func straightThroughGradientEqualsTheSoftmaxGradient() {
    var rng = SeededGenerator(seed: 9)
    let logits = Tensor.normal([4, 5], using: &rng)
    let w = Tensor.normal([4, 5], using: &rng)
    var sampleRNG = SeededGenerator(seed: 10)
    let gSample = gradient(at: logits) { l in
      (OneHotCategorical(logits: l).sample(using: &sampleRNG) * w).sum()
    }
    let gProbs = gradient(at: logits) { l in (OneHotCategorical(logits: l).probs * w).sum() }
    #expect(gSample.isClose(to: gProbs, rtol: 1e-6, atol: 1e-7))
    // The forward value is exactly one-hot.
    let s = OneHotCategorical(logits: Variable(logits)).sample(using: &sampleRNG).value
    #expect(s.scalars.allSatisfy { $0 == 0 || $0 == 1 })
  }

  @Test func bernoulliAndBoundedNormalMatchClosedForms() {
    let l = Tensor([-3, -0.5, 0, 2])
    let b = Bernoulli(logits: Variable(l))
    let x = Tensor([0, 1, 1, 1])
    let lp = b.logProb(x).value.scalars
    for i in 0..<4 {
      let p = 1 / (1 + exp(-Double(l.scalars[i])))
      let ref = x.scalars[i] == 1 ? log(p) : log(1 - p)
      #expect(abs(Double(lp[i]) - ref) < 1e-6)
    }
    #expect(b.mode.scalars == [0, 0, 0, 1])
    let n = BoundedNormal(rawMean: Variable(Tensor([0.3, -20])), rawStd: Variable(Tensor([-50, 50])))
    #expect(n.std.value.isClose(to: Tensor([0.1, 1]), rtol: 1e-5, atol: 1e-6))
    #expect(abs(n.mean.value.scalars[1] + 1) < 1e-6)
    let at = Variable(Tensor([0.5, -0.5]))
    let mean = n.mean.value.scalars.map(Double.init)
    let std = n.std.value.scalars.map(Double.init)
    var ref = 0.0
    for i in 0..<2 {
      let z = (Double(at.value.scalars[i]) - mean[i]) / std[i]
      ref += -0.5 * z * z - log(std[i]) - 0.5 * log(2 * Double.pi)
    }
    #expect(abs(Double(n.logProb(at).value.scalar) - ref) < 1e-3)
    let entropyRef = std.reduce(0.0) { $0 + log($1) + 0.5 * log(2 * Double.pi * M_E) }
    #expect(abs(Double(n.entropy().value.scalar) - entropyRef) < 1e-5)
  }

  @Test func symlogDistributionLossIsSquaredErrorInSymlogSpace() {
    let pred = Variable(Tensor([0, 1, 2], shape: [1, 3]))
    let target = Tensor([0, 10, -3], shape: [1, 3])
    let d = SymlogDistribution(prediction: pred)
    let ref = -(0 + pow(1 - log(11.0), 2) + pow(2 + log(4.0), 2))
    #expect(abs(Double(d.logProb(target).value.scalar) - ref) < 1e-5)
    #expect(MSEDistribution(prediction: pred).logProb(target).value.scalar == -(0 + 81 + 25))
  }
}

@Suite struct OptimizerTests {
  @Test func adamFirstStepsMatchHandComputation() {
    let p = Parameter(Tensor([1, -1]))
    let opt = Adam(names: ["p"], parameters: [p], learningRate: 0.1, epsilon: 1e-8)
    // Constant gradient g: every bias-corrected step is lr * g / (|g| + eps) = lr * sign(g).
    opt.update([Tensor([2, -0.5])])
    #expect(p.value.isClose(to: Tensor([0.9, -0.9]), rtol: 1e-6, atol: 1e-6))
    opt.update([Tensor([2, -0.5])])
    #expect(p.value.isClose(to: Tensor([0.8, -0.8]), rtol: 1e-6, atol: 1e-6))
    // A gradient that flips sign: m = 0.9 * m + 0.1 g etc., computed by hand in Double.
    let q = Parameter(Tensor([0]))
    let o2 = Adam(names: ["q"], parameters: [q], learningRate: 0.01, epsilon: 1e-8)
    var m = 0.0
    var v = 0.0
    var value = 0.0
    for (t, g) in [1.0, -3.0, 0.5].enumerated() {
      o2.update([Tensor([Float(g)])])
      m = 0.9 * m + 0.1 * g
      v = 0.999 * v + 0.001 * g * g
      let mh = m / (1 - pow(0.9, Double(t + 1)))
      let vh = v / (1 - pow(0.999, Double(t + 1)))
      value -= 0.01 * mh / (vh.squareRoot() + 1e-8)
    }
    #expect(abs(Double(q.value.scalar) - value) < 1e-6)
  }

  /// Decoupled weight decay: a weight matrix or kernel moves by lr (adam + wd p) with the
  /// parameter's value before the step; biases, norms and other parameters by the Adam step
  /// alone; settings without the key (older files) read as no decay.
  @Test func weightDecayShrinksWeightsAndKernelsOnly() throws {
    let names = ["dense.weight", "dense.bias", "conv.kernel", "ssm.bRe"]
    let params = names.map { _ in Parameter(Tensor([2, -4])) }
    let settings = AdamSettings(learningRate: 0.1, epsilon: 1e-8, weightDecay: 0.5)
    let opt = Adam(names: names, parameters: params, learningRate: settings.learningRate, epsilon: 1e-8)
    opt.weightDecay = settings.weightDecay
    opt.update(names.map { _ in Tensor([1, 1]) })
    // First bias-corrected Adam step: lr * sign(g) = 0.1; decay: lr * wd * p = 0.05 * p.
    let decayed = Tensor([2 - 0.1 - 0.05 * 2, -4 - 0.1 - 0.05 * -4])
    let plain = Tensor([1.9, -4.1])
    for (name, p) in zip(names, params) {
      let expected = Adam.decays(name) ? decayed : plain
      #expect(p.value.isClose(to: expected, rtol: 1e-6, atol: 1e-6), "\(name): \(p.value.scalars)")
    }
    #expect(Adam.decays("weight") && Adam.decays("a.b.kernel") && !Adam.decays("a.weights") && !Adam.decays("offset"))
    let old = Data(#"{"learningRate":0.001,"epsilon":1e-8,"gradientClip":100,"beta1":0.9,"beta2":0.999}"#.utf8)
    #expect(try JSONDecoder().decode(AdamSettings.self, from: old).weightDecay == 0)
    let round = try JSONDecoder().decode(AdamSettings.self, from: JSONEncoder().encode(settings))
    #expect(round == settings)
  }

  @Test func globalNormClipping() {
    let a = Parameter(Tensor([0, 0]))
    let b = Parameter(Tensor([0]))
    var g = Gradients(names: ["a", "b"], parameters: [a, b], tensors: [Tensor([3, 0]), Tensor([4])])
    #expect(g.globalNorm == 5)
    let before = g.clipByGlobalNorm(1)
    #expect(before == 5)
    #expect(abs(g.globalNorm - 1) < 1e-6)
    #expect(g.tensors[0].isClose(to: Tensor([0.6, 0]), rtol: 1e-6, atol: 1e-7))
    let opt = Adam(names: ["a", "b"], parameters: [a, b], learningRate: 1, clipGlobalNorm: 1)
    let stats = opt.update([Tensor([30, 0]), Tensor([40])])
    #expect(stats.gradientNorm == 50 && stats.clipped)
  }

  @Test func emaMovesTowardsTheSource() {
    var rng = SeededGenerator(seed: 11)
    let src = Linear(3, 2, rng: &rng)
    let dst = Linear(3, 2, rng: &rng)
    let ema = ParameterEMA(source: src, target: dst, rate: 0.02)
    #expect(dst.weight.value == src.weight.value)
    let old = dst.weight.value
    src.weight.value = src.weight.value + 1
    ema.update()
    #expect(dst.weight.value.isClose(to: old * 0.98 + src.weight.value * 0.02, rtol: 1e-6, atol: 1e-6))
  }
}

@Suite struct CheckpointTests {
  func tempURL(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)/\(name)")
  }

  @Test func roundTripIsBitIdenticalAndKeepsMetadata() throws {
    var rng = SeededGenerator(seed: 12)
    let m = Toy(rng: &rng)
    let url = tempURL("toy.safetensors")
    defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
    try SafeTensors.save(m, to: url, metadata: ["step": "42"])
    var rng2 = SeededGenerator(seed: 99)
    let other = Toy(rng: &rng2)
    #expect(other.head.weight.value != m.head.weight.value)
    let meta = try SafeTensors.load(into: other, from: url)
    #expect(meta == ["step": "42"])
    for (a, b) in zip(m.parameters, other.parameters) { #expect(a.value == b.value) }
    // The header is valid safetensors: 8-byte length, JSON, data aligned to 8 bytes.
    let data = try Data(contentsOf: url)
    let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    #expect(n % 8 == 0)
    let json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + Int(n)))) as! [String: Any]
    let entry = json["head/weight"] as! [String: Any]
    #expect(entry["dtype"] as? String == "F32" && entry["shape"] as? [Int] == [8, 2])
  }

  @Test func truncatedAlteredAndMismatchedFilesAreRejectedWithClearErrors() throws {
    var rng = SeededGenerator(seed: 13)
    let m = Toy(rng: &rng)
    let url = tempURL("toy.safetensors")
    defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
    try SafeTensors.save(m, to: url)
    let good = try Data(contentsOf: url)

    func expectError(_ data: Data, containing words: [String]) {
      try? data.write(to: url)
      do {
        try SafeTensors.load(into: Toy(rng: &rng), from: url)
        Issue.record("a damaged file was accepted (expected \(words))")
      } catch let e as CheckpointError {
        for w in words { #expect(e.description.contains(w), "\(e.description) lacks '\(w)'") }
      } catch {
        Issue.record("unexpected error \(error)")
      }
    }
    expectError(good.prefix(good.count - 10), containing: ["truncated"])
    expectError(good.prefix(5), containing: ["too short"])
    var flipped = good
    flipped[flipped.count - 3] ^= 0x40  // a byte of the last tensor's data
    expectError(flipped, containing: ["checksum", "optionalNorm/offset"])
    var badHeader = good
    badHeader[8] = UInt8(ascii: "#")  // the opening brace of the JSON header
    expectError(badHeader, containing: ["JSON"])

    // A model with a different shape: the error names the parameter and both shapes.
    try SafeTensors.write([("head/weight", Tensor.zeros([8, 3]))], to: url)
    do {
      try SafeTensors.assign(
        try SafeTensors.read(from: url).tensors, to: Linear(8, 2, bias: false, rng: &rng),
        source: "x")
      Issue.record("shape mismatch accepted")
    } catch let e as CheckpointError {
      #expect(e.description.contains("lacks"))
    }
    let lin = Linear(8, 2, bias: false, rng: &rng)
    try SafeTensors.write([("weight", Tensor.zeros([8, 3]))], to: url)
    let before = lin.weight.value
    #expect(throws: CheckpointError.self) { try SafeTensors.load(into: lin, from: url) }
    #expect(lin.weight.value == before)  // nothing changed on failure
    try SafeTensors.write([("weight", Tensor.zeros([8, 2])), ("stray", Tensor.zeros([1]))], to: url)
    #expect(throws: CheckpointError.self) { try SafeTensors.load(into: lin, from: url) }
    try SafeTensors.load(into: lin, from: url, allowExtra: true)
    #expect(lin.weight.value == Tensor.zeros([8, 2]))
  }

  @Test func adamStateRoundTrip() throws {
    let p = Parameter(Tensor([1, 2]))
    let opt = Adam(names: ["p"], parameters: [p], learningRate: 0.1)
    opt.update([Tensor([1, -1])])
    opt.update([Tensor([0.5, 2])])
    let url = tempURL("opt.safetensors")
    defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
    try SafeTensors.write(opt.stateTensors(), to: url)
    let p2 = Parameter(p.value)
    let opt2 = Adam(names: ["p"], parameters: [p2], learningRate: 0.1)
    try opt2.loadState(try SafeTensors.read(from: url).tensors)
    opt.update([Tensor([0.3, 0.3])])
    opt2.update([Tensor([0.3, 0.3])])
    #expect(p.value == p2.value && opt2.step == 3)
  }
}

/// The safetensors reader must turn any byte sequence into a thrown error or a correct result,
/// never a trap (a damaged file is user input).
@Suite struct CheckpointFuzzTests {
  func tensorsEqual(_ a: [String: Tensor], _ b: [(String, Tensor)]) -> Bool {
    a.count == b.count && b.allSatisfy { a[$0.0]?.shape == $0.1.shape && a[$0.0]?.scalars == $0.1.scalars }
  }

  @Test func truncationsAndBitFlipsThrowOrReadCorrectly() throws {
    var rng = SeededGenerator(seed: 31)
    let tensors: [(String, Tensor)] = [
      ("a/weight", Tensor.normal([3, 5], using: &rng)), ("a/bias", Tensor.normal([5], using: &rng)),
      ("b", Tensor.normal([2, 2, 2], using: &rng)),
    ]
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("x.safetensors")
    try SafeTensors.write(tensors, metadata: ["step": "7"], to: url)
    let original = [UInt8](try Data(contentsOf: url))
    let damaged = dir.appendingPathComponent("damaged.safetensors")
    var thrown = 0
    var readBack = 0
    for trial in 0..<1500 {
      var bytes = original
      switch trial % 3 {
      case 0: bytes = Array(bytes.prefix(rng.nextInt(below: bytes.count)))
      case 1:
        for _ in 0...rng.nextInt(below: 3) {
          bytes[rng.nextInt(below: bytes.count)] ^= UInt8(1) << UInt8(rng.nextInt(below: 8))
        }
      default:
        // Flips concentrated in the 8-byte length and the JSON header.
        let headerEnd = 8 + Int(original[0]) + Int(original[1]) << 8
        bytes[rng.nextInt(below: headerEnd)] ^= UInt8(1) << UInt8(rng.nextInt(below: 8))
      }
      try Data(bytes).write(to: damaged)
      do {
        let read = try SafeTensors.read(from: damaged)
        #expect(tensorsEqual(read.tensors, tensors), "trial \(trial): a damaged file read as different tensors")
        #expect(read.metadata == ["step": "7"], "trial \(trial): damaged metadata went unnoticed")
        readBack += 1
      } catch is CheckpointError {
        thrown += 1
      }
    }
    #expect(thrown > 1000)
    // The two cases the review found: the length's top bit set, and a shape whose size overflows.
    var topBit = original
    topBit[7] |= 0x80
    try Data(topBit).write(to: damaged)
    #expect(throws: CheckpointError.self) { try SafeTensors.read(from: damaged) }
    let header = #"{"big":{"dtype":"F32","shape":[2147483648,2147483648,4],"data_offsets":[0,0]}}"#
    var w = [UInt8]()
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { w.append(contentsOf: $0) }
    w.append(contentsOf: header.utf8)
    try Data(w).write(to: damaged)
    #expect(throws: CheckpointError.self) { try SafeTensors.read(from: damaged) }
  }
}

@Suite struct CategoricalLatentTests {
  @Test func samplesAreOneHotPerGroupAndSequencesSampleLikeSteps() {
    let latent = CategoricalLatent(groups: 3, classes: 4, unimix: 0.01)
    var rng = SeededGenerator(seed: 1)
    let logits = Variable(Tensor.normal([2, 5, 12], std: 2, using: &rng))
    var a = SeededGenerator(seed: 2)
    let seq = latent.sampleSequence(logits, using: &a).value
    #expect(seq.shape == [2, 5, 12])
    #expect(seq.reshaped([2, 5, 3, 4]).sum(axes: [3]) == Tensor.ones([2, 5, 3]))
    // Step by step with the same stream gives the same samples.
    var b = SeededGenerator(seed: 2)
    for t in 0..<5 {
      let step = latent.sample(Variable(logits.value.slice(at: t, axis: 1)), using: &b).value
      #expect(step == seq.slice(at: t, axis: 1), "step \(t)")
    }
    // The mode is the argmax of every group.
    let mode = latent.mode(Variable(logits.value.slice(at: 0, axis: 1))).value.reshaped([2, 3, 4])
    let groups = logits.value.slice(at: 0, axis: 1).reshaped([2, 3, 4])
    for i in 0..<2 {
      for g in 0..<3 {
        let best = (0..<4).max { groups[i, g, $0] < groups[i, g, $1] }!
        #expect(mode[i, g, best] == 1)
      }
    }
  }

  @Test func theInitialLatentIsTheModeOfThePriorOnTanhW() {
    var rng = SeededGenerator(seed: 3)
    let latent = CategoricalLatent(groups: 2, classes: 3)
    let head = LatentHead(4, units: 5, latent: latent, rng: &rng)
    let learned = InitialLatent(deter: 4, learned: true)
    learned.weight!.value = Tensor([0.5, -1, 2, 0])
    let (h, z) = learned(prior: head.callAsFunction, latent: latent)
    #expect(h.value.isClose(to: tanh(Tensor([0.5, -1, 2, 0])).reshaped([1, 4]), rtol: 1e-6, atol: 1e-6))
    #expect(z.value == latent.mode(head(h)).value)
    let fixed = InitialLatent(deter: 4, learned: false)
    #expect(
      fixed.parameterCount == 0 && fixed(prior: head.callAsFunction, latent: latent).h.value == Tensor.zeros([1, 4]))
  }

  @Test func aDenseLayerSplitByInputPartsEqualsTheWholeLayer() {
    var rng = SeededGenerator(seed: 4)
    let dense = Dense(5, 6, rng: &rng)
    let x = Tensor.normal([3, 2], using: &rng)
    let y = Tensor.normal([3, 3], using: &rng)
    let w = dense.inputWeights(splitting: [2, 3])
    let parts = dense.activate(matmul(Variable(x), w[0]) + matmul(Variable(y), w[1]))
    let whole = dense(Variable(Tensor.concat([x, y], axis: 1)))
    #expect(parts.value.maxAbsDifference(whole.value) < 1e-5)
  }
}

@Suite struct MetricSetTests {
  struct Probe: MetricSet {
    var loss: Float = 0
    var accuracy: Float = 0
    static var fields: [MetricField<Probe>] { [.init("probe/loss", \.loss), .init("probe/accuracy", \.accuracy)] }
  }

  @Test func arithmeticFollowsTheFields() {
    var a = Probe()
    a.loss = 1
    a.accuracy = 0.5
    let b = Probe(values: [3, 0.25])
    #expect(b.loss == 3 && b.accuracy == 0.25 && b.values == [3, 0.25])
    #expect(a.adding(b) == Probe(values: [4, 0.75]))
    #expect(a.named.map(\.name) == ["probe/loss", "probe/accuracy"])
    var c = a
    c.accuracy = .infinity
    #expect(c.nonFinite == ["probe/accuracy"] && a.nonFinite.isEmpty)
  }
}
