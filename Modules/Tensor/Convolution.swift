/// Padding rule of a convolution.
public enum ConvPadding: String, Sendable, Codable {
  /// Output extent ceil(input / stride); the padding is split with the smaller half before
  /// (the TensorFlow / JAX rule).
  case same
  /// No padding: output extent floor((input - kernel) / stride) + 1.
  case valid
}

/// The geometry of a 2-D convolution over one spatial size.
public struct ConvGeometry: Sendable, Equatable {
  public let inputHeight, inputWidth: Int
  public let kernelHeight, kernelWidth: Int
  public let stride: Int
  public let outputHeight, outputWidth: Int
  public let padTop, padLeft: Int

  public init(
    inputHeight: Int, inputWidth: Int, kernelHeight: Int, kernelWidth: Int, stride: Int,
    padding: ConvPadding
  ) {
    precondition(stride >= 1, "convolution stride must be >= 1, got \(stride)")
    self.inputHeight = inputHeight
    self.inputWidth = inputWidth
    self.kernelHeight = kernelHeight
    self.kernelWidth = kernelWidth
    self.stride = stride
    switch padding {
    case .same:
      outputHeight = (inputHeight + stride - 1) / stride
      outputWidth = (inputWidth + stride - 1) / stride
      let padH = Swift.max((outputHeight - 1) * stride + kernelHeight - inputHeight, 0)
      let padW = Swift.max((outputWidth - 1) * stride + kernelWidth - inputWidth, 0)
      padTop = padH / 2
      padLeft = padW / 2
    case .valid:
      precondition(
        inputHeight >= kernelHeight && inputWidth >= kernelWidth,
        "valid convolution: input \(inputHeight)x\(inputWidth) is smaller than kernel \(kernelHeight)x\(kernelWidth)"
      )
      outputHeight = (inputHeight - kernelHeight) / stride + 1
      outputWidth = (inputWidth - kernelWidth) / stride + 1
      padTop = 0
      padLeft = 0
    }
  }
}

/// Caps the im2col buffer (in floats) so large batches are processed in chunks of images.
let im2colBudget = 1 << 22

/// Fills `cols` [images * OH * OW, KH * KW * C] from `x` [images, H, W, C] (zeros off the edge).
func im2col(
  _ x: UnsafePointer<Float>, images: Int, channels c: Int, _ g: ConvGeometry,
  _ cols: UnsafeMutablePointer<Float>
) {
  let rowLen = g.kernelHeight * g.kernelWidth * c
  let positions = g.outputHeight * g.outputWidth
  Parallelism.forEachChunk(count: images * positions, grain: Swift.max(1, elementwiseGrain / rowLen)) {
    range in
    for p in range {
      let img = p / positions
      let oy = (p % positions) / g.outputWidth
      let ox = p % g.outputWidth
      let dst = cols + p * rowLen
      let src = x + img * g.inputHeight * g.inputWidth * c
      let ix0 = ox * g.stride - g.padLeft
      let lo = Swift.max(0, -ix0)
      let hi = Swift.min(g.kernelWidth, g.inputWidth - ix0)
      for ky in 0..<g.kernelHeight {
        let iy = oy * g.stride - g.padTop + ky
        let d = dst + ky * g.kernelWidth * c
        if iy < 0 || iy >= g.inputHeight || hi <= lo {
          d.update(repeating: 0, count: g.kernelWidth * c)
          continue
        }
        if lo > 0 { d.update(repeating: 0, count: lo * c) }
        (d + lo * c).update(from: src + (iy * g.inputWidth + ix0 + lo) * c, count: (hi - lo) * c)
        if hi < g.kernelWidth { (d + hi * c).update(repeating: 0, count: (g.kernelWidth - hi) * c) }
      }
    }
  }
}

/// Adds `cols` back into `dx` [images, H, W, C]: the adjoint of ``im2col``.
func col2im(
  _ cols: UnsafePointer<Float>, images: Int, channels c: Int, _ g: ConvGeometry,
  _ dx: UnsafeMutablePointer<Float>
) {
  let rowLen = g.kernelHeight * g.kernelWidth * c
  let positions = g.outputHeight * g.outputWidth
  // Parallel over images: each image owns its region of dx.
  Parallelism.forEachChunk(count: images, grain: Swift.max(1, elementwiseGrain / Swift.max(positions * rowLen, 1))) {
    range in
    for img in range {
      let out = dx + img * g.inputHeight * g.inputWidth * c
      for q in 0..<positions {
        let oy = q / g.outputWidth
        let ox = q % g.outputWidth
        let src = cols + (img * positions + q) * rowLen
        let ix0 = ox * g.stride - g.padLeft
        let lo = Swift.max(0, -ix0)
        let hi = Swift.min(g.kernelWidth, g.inputWidth - ix0)
        if hi <= lo { continue }
        for ky in 0..<g.kernelHeight {
          let iy = oy * g.stride - g.padTop + ky
          if iy < 0 || iy >= g.inputHeight { continue }
          let s = src + ky * g.kernelWidth * c + lo * c
          let d = out + (iy * g.inputWidth + ix0 + lo) * c
          let n = (hi - lo) * c
          var i = 0
          while i + 8 <= n {
            storeFloat8(loadFloat8(d, i) + loadFloat8(s, i), d, i)
            i += 8
          }
          while i < n {
            d[i] += s[i]
            i += 1
          }
        }
      }
    }
  }
}

extension Tensor {
  static func convChunk(images: Int, perImage: Int) -> Int {
    Swift.max(1, Swift.min(images, im2colBudget / Swift.max(perImage, 1)))
  }
}

/// 2-D convolution, NHWC: `x` [N, H, W, Cin], `kernel` [KH, KW, Cin, Cout] -> [N, OH, OW, Cout].
public func conv2d(_ x: Tensor, _ kernel: Tensor, stride: Int = 1, padding: ConvPadding = .same)
  -> Tensor
{
  precondition(
    x.rank == 4 && kernel.rank == 4 && x.shape[3] == kernel.shape[2],
    "conv2d: input \(x.shape) (NHWC) and kernel \(kernel.shape) (KH, KW, Cin, Cout) do not fit")
  let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let cout = kernel.shape[3]
  let g = ConvGeometry(
    inputHeight: h, inputWidth: w, kernelHeight: kernel.shape[0], kernelWidth: kernel.shape[1],
    stride: stride, padding: padding)
  let positions = g.outputHeight * g.outputWidth
  let rowLen = g.kernelHeight * g.kernelWidth * cin
  let out = Tensor(uninitializedShape: [n, g.outputHeight, g.outputWidth, cout])
  let chunk = Tensor.convChunk(images: n, perImage: positions * rowLen)
  let cols = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(chunk * positions * rowLen, 1))
  defer { cols.deallocate() }
  var start = 0
  while start < n {
    let nb = Swift.min(chunk, n - start)
    im2col(x.storage.base + start * h * w * cin, images: nb, channels: cin, g, cols)
    sgemm(
      false, false, nb * positions, cout, rowLen, 1, cols, kernel.storage.base, 0,
      out.storage.base + start * positions * cout)
    start += nb
  }
  return out
}

/// The gradient of ``conv2d(_:_:stride:padding:)`` with respect to its input.
public func conv2dBackwardInput(
  _ gradient: Tensor, kernel: Tensor, inputShape: [Int], stride: Int = 1,
  padding: ConvPadding = .same
) -> Tensor {
  let (n, h, w, cin) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
  let cout = kernel.shape[3]
  let g = ConvGeometry(
    inputHeight: h, inputWidth: w, kernelHeight: kernel.shape[0], kernelWidth: kernel.shape[1],
    stride: stride, padding: padding)
  precondition(
    gradient.shape == [n, g.outputHeight, g.outputWidth, cout] && kernel.shape[2] == cin,
    "conv2dBackwardInput: gradient \(gradient.shape), kernel \(kernel.shape), input \(inputShape)")
  let positions = g.outputHeight * g.outputWidth
  let rowLen = g.kernelHeight * g.kernelWidth * cin
  let dx = Tensor.zeros(inputShape)
  let chunk = Tensor.convChunk(images: n, perImage: positions * rowLen)
  let cols = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(chunk * positions * rowLen, 1))
  defer { cols.deallocate() }
  var start = 0
  while start < n {
    let nb = Swift.min(chunk, n - start)
    sgemm(
      false, true, nb * positions, rowLen, cout, 1, gradient.storage.base + start * positions * cout,
      kernel.storage.base, 0, cols)
    col2im(cols, images: nb, channels: cin, g, dx.storage.base + start * h * w * cin)
    start += nb
  }
  return dx
}

/// The gradient of ``conv2d(_:_:stride:padding:)`` with respect to its kernel.
public func conv2dBackwardKernel(
  _ gradient: Tensor, input x: Tensor, kernelShape: [Int], stride: Int = 1,
  padding: ConvPadding = .same
) -> Tensor {
  let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let cout = kernelShape[3]
  let g = ConvGeometry(
    inputHeight: h, inputWidth: w, kernelHeight: kernelShape[0], kernelWidth: kernelShape[1],
    stride: stride, padding: padding)
  precondition(
    gradient.shape == [n, g.outputHeight, g.outputWidth, cout] && kernelShape[2] == cin,
    "conv2dBackwardKernel: gradient \(gradient.shape), input \(x.shape), kernel \(kernelShape)")
  let positions = g.outputHeight * g.outputWidth
  let rowLen = g.kernelHeight * g.kernelWidth * cin
  let dk = Tensor.zeros(kernelShape)
  let chunk = Tensor.convChunk(images: n, perImage: positions * rowLen)
  let cols = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(chunk * positions * rowLen, 1))
  defer { cols.deallocate() }
  var start = 0
  while start < n {
    let nb = Swift.min(chunk, n - start)
    im2col(x.storage.base + start * h * w * cin, images: nb, channels: cin, g, cols)
    sgemm(
      true, false, rowLen, cout, nb * positions, 1, cols,
      gradient.storage.base + start * positions * cout, 1, dk.storage.base)
    start += nb
  }
  return dk
}

/// The output spatial extent of a transposed convolution.
public func convTransposeOutputSize(
  input: Int, kernel: Int, stride: Int, padding: ConvPadding
) -> Int {
  switch padding {
  case .same: return input * stride
  case .valid: return (input - 1) * stride + kernel
  }
}

/// Transposed 2-D convolution, NHWC: `x` [N, H, W, Cin], `kernel` [KH, KW, Cout, Cin]
/// -> [N, OH, OW, Cout] with OH = H * stride ("same") or (H - 1) * stride + KH ("valid").
///
/// It is exactly the adjoint of ``conv2d(_:_:stride:padding:)`` with the same kernel:
/// `<conv2d(y, k), x> == <y, convTranspose2d(x, k)>`.
public func convTranspose2d(
  _ x: Tensor, _ kernel: Tensor, stride: Int = 1, padding: ConvPadding = .same
) -> Tensor {
  precondition(
    x.rank == 4 && kernel.rank == 4 && x.shape[3] == kernel.shape[3],
    "convTranspose2d: input \(x.shape) (NHWC) and kernel \(kernel.shape) (KH, KW, Cout, Cin) do not fit"
  )
  let oh = convTransposeOutputSize(
    input: x.shape[1], kernel: kernel.shape[0], stride: stride, padding: padding)
  let ow = convTransposeOutputSize(
    input: x.shape[2], kernel: kernel.shape[1], stride: stride, padding: padding)
  return conv2dBackwardInput(
    x, kernel: kernel, inputShape: [x.shape[0], oh, ow, kernel.shape[2]], stride: stride,
    padding: padding)
}
