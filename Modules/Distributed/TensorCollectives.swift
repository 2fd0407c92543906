import Tensor

extension Communicator {
  /// Replaces each of `tensors` (the same shapes on every rank) with its mean over the ranks.
  /// The tensors travel packed into flat buckets of at most `bucketFloats` values, one sum per
  /// bucket, not one per tensor. Nothing happens in a job of one.
  public func average(_ tensors: inout [Tensor], bucketFloats: Int = 1 << 22) {
    guard size > 1 else { return }
    let scale = 1 / Float(size)
    let capacity = min(bucketFloats, tensors.reduce(0) { $0 + $1.count })
    var bucket = [Float](unsafeUninitializedCapacity: capacity) { _, count in count = capacity }  // filled below
    var first = 0
    while first < tensors.count {
      // The tensors that fit in one bucket (a larger one goes alone, in pieces of the bucket).
      var last = first
      var filled = 0
      while last < tensors.count && (last == first || filled + tensors[last].count <= bucket.count) {
        filled += tensors[last].count
        last += 1
      }
      if filled > bucket.count {
        averageAlone(&tensors[first], scale: scale)
      } else {
        var offset = 0
        bucket.withUnsafeMutableBufferPointer { b in
          for i in first..<last {
            tensors[i].withUnsafeBufferPointer { t in
              (b.baseAddress! + offset).update(from: t.baseAddress!, count: t.count)
            }
            offset += tensors[i].count
          }
          sum(UnsafeMutableBufferPointer(rebasing: b[0..<filled]))
          offset = 0
          for i in first..<last {
            tensors[i].withUnsafeMutableBufferPointer { t in
              for j in 0..<t.count { t[j] = b[offset + j] * scale }
            }
            offset += tensors[i].count
          }
        }
      }
      first = last
    }
  }

  private func averageAlone(_ tensor: inout Tensor, scale: Float) {
    tensor.withUnsafeMutableBufferPointer { t in
      sum(t)
      for j in 0..<t.count { t[j] *= scale }
    }
  }

  /// Replaces each of `tensors` on every rank with rank `root`'s (parameters at the start of a
  /// job, so every rank begins from the same ones).
  public func broadcast(_ tensors: inout [Tensor], from root: Int) {
    guard size > 1 else { return }
    for i in tensors.indices {
      tensors[i].withUnsafeMutableBufferPointer { broadcast(UnsafeMutableRawBufferPointer($0), from: root) }
    }
  }
}
