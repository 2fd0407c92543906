/// Building blocks of the analytic parameter and FLOP counts that each network states beside
/// itself (`parameterCount(...)`, `updateFLOPs(...)`); ``WorldModelConfig`` adds them up and the
/// preset tests check them against the built modules and the instrumented matmul count.
enum Counting {
  /// A ``Dense`` layer: weight (no bias) and LayerNorm scale and offset.
  static func dense(_ i: Int, _ o: Int) -> Int { i * o + 2 * o }
  static func linear(_ i: Int, _ o: Int, bias: Bool = true) -> Int { i * o + (bias ? o : 0) }
  /// An ``MLP`` of `l` Dense layers of width `u`.
  static func mlp(_ i: Int, _ u: Int, _ l: Int) -> Int { l == 0 ? 0 : dense(i, u) + (l - 1) * dense(u, u) }

  /// 2 m n k for one product.
  static func product(_ m: Int, _ n: Int, _ k: Int) -> Int { 2 * m * n * k }
  /// A layer whose input needs a gradient, over `m` rows: forward, input and weight gradients.
  static func tracked(_ m: Int, _ i: Int, _ o: Int) -> Int { 3 * product(m, o, i) }
  /// A layer applied to data: forward and weight gradient only.
  static func onData(_ m: Int, _ i: Int, _ o: Int) -> Int { 2 * product(m, o, i) }
  /// An MLP over `m` rows whose first layer is `first` (`tracked` or `onData`).
  static func mlpFLOPs(_ m: Int, _ i: Int, units u: Int, layers l: Int, first: (Int, Int, Int) -> Int) -> Int {
    l == 0 ? 0 : first(m, i, u) + (l - 1) * tracked(m, u, u)
  }
}
