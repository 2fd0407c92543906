import Attention

/// Sizes of the Transformer backbone.
public struct TransformerSettings: Sendable, Codable, Equatable {
  /// Blocks of self-attention and MLP.
  public var layers: Int
  /// Features per step inside the blocks (the model width).
  public var width: Int
  /// Attention heads (`width` must be a multiple; the head size must be even for RoPE).
  public var heads: Int
  /// The MLP's hidden width as a multiple of `width`.
  public var mlpRatio: Int = 4
  /// The context window K: a step attends to at most this many steps, itself included (0: the
  /// training batch length, set when the run is configured).
  public var window: Int = 0

  public init(layers: Int, width: Int, heads: Int, mlpRatio: Int = 4, window: Int = 0) {
    self.layers = layers
    self.width = width
    self.heads = heads
    self.mlpRatio = mlpRatio
    self.window = window
  }

  /// The sizes this project pairs with an SSM stack of `ssm`'s sizes: as many layers, half its
  /// channels as the width, heads of 64 features (fewer heads when narrower), an MLP of 4x.
  /// About as many parameters as the SSM stack (`r2i presets --sizes` lists all three cores).
  public static func matching(_ ssm: SSMSettings) -> TransformerSettings {
    let heads = max(1, ssm.channels / 2 / 64)
    let headSize = max(2, ssm.channels / 2 / heads / 2 * 2)
    return TransformerSettings(layers: ssm.layers, width: heads * headSize, heads: heads)
  }

  /// The problem with these settings, or nil.
  public var problem: String? {
    if layers < 1 { return "transformer.layers must be at least 1, got \(layers)" }
    if heads < 1 || width % heads != 0 {
      return "transformer.width (\(width)) must be a multiple of transformer.heads (\(heads))"
    }
    if (width / heads) % 2 != 0 {
      return
        "the head size transformer.width / transformer.heads (\(width / heads)) must be even (rotary positions turn pairs)"
    }
    if mlpRatio < 1 { return "transformer.mlpRatio must be at least 1, got \(mlpRatio)" }
    if window < 0 { return "transformer.window must be 0 (the batch length) or positive, got \(window)" }
    return nil
  }
}

/// The Transformer backbone's memory of earlier steps: every layer's keys and values
/// (``KeyValueCache``) and which of them each entry sees (``CacheRows``). Part of a
/// ``LatentState``; sequence states [B, T] hold it for each of their B x T steps, sharing one
/// buffer per layer.
public struct AttentionContext {
  public var layers: [KeyValueCache]
  public var rows: CacheRows
  /// The window: at most this many keys per entry, its newest step included.
  public var window: Int
  /// (B, T) for the context of sequence states (entry b * T + t is step t of sequence b); nil
  /// for single states.
  public var sequence: (batch: Int, length: Int)?

  public init(layers: [KeyValueCache], rows: CacheRows, window: Int, sequence: (batch: Int, length: Int)? = nil) {
    self.layers = layers
    self.rows = rows
    self.window = window
    self.sequence = sequence
  }

  /// `count` entries that have seen nothing, for `layers` layers.
  public init(empty count: Int, layers: Int, window: Int) {
    self.init(layers: Array(repeating: KeyValueCache(), count: layers), rows: CacheRows(empty: count), window: window)
  }

  /// Own steps kept (the same for every layer).
  public var ownSteps: Int { layers.first?.ownKeys.count ?? 0 }

  /// Entries `indices`, in that order (single states only).
  public func rows(_ indices: [Int]) -> AttentionContext {
    precondition(sequence == nil, "AttentionContext.rows: take a step or flatten sequence states first")
    let picked = layers.map { c in
      KeyValueCache(
        prefixKeys: c.prefixKeys, prefixValues: c.prefixValues,
        ownKeys: c.ownKeys.map { $0.gather(indices: indices, axis: 0) },
        ownValues: c.ownValues.map { $0.gather(indices: indices, axis: 0) })
    }
    return AttentionContext(layers: picked, rows: rows.rows(indices), window: window)
  }

  /// The context of step `t` of sequence states, for the B sequences.
  public func step(_ t: Int) -> AttentionContext {
    guard let (b, length) = sequence else { preconditionFailure("AttentionContext.step: not sequence states") }
    precondition(ownSteps == 0, "AttentionContext.step: sequence states carry no own steps")
    return AttentionContext(layers: layers, rows: rows.rows((0..<b).map { $0 * length + t }), window: window)
  }

  /// Sequence states' context as that of B x T single states.
  public func flattened() -> AttentionContext {
    var c = self
    c.sequence = nil
    return c
  }

  /// The same context with gradients stopped.
  public var detached: AttentionContext {
    var c = self
    c.layers = layers.map { l in
      KeyValueCache(
        prefixKeys: l.prefixKeys, prefixValues: l.prefixValues, ownKeys: l.ownKeys.map(\.detached),
        ownValues: l.ownValues.map(\.detached))
    }
    return c
  }

  /// Forgets everything entries flagged in `isFirst` [N] have seen: they start an episode.
  mutating func reset(_ isFirst: [Float]) {
    for n in 0..<rows.count where isFirst[n] != 0 {
      rows.prefixRow[n] = -1
      rows.prefixFirst[n] = 0
      rows.prefixEnd[n] = 0
      rows.ownFirst[n] = Int32(ownSteps)
      rows.position[n] = 0
    }
  }

  /// Makes room for one more key per entry: an entry that already sees `window` keys drops its
  /// oldest.
  mutating func makeRoom() {
    let steps = ownSteps
    for n in 0..<rows.count where rows.visible(n, ownSteps: steps) >= window {
      if rows.prefixRow[n] >= 0 && rows.prefixFirst[n] < rows.prefixEnd[n] {
        rows.prefixFirst[n] += 1
      } else {
        rows.ownFirst[n] += 1
      }
    }
  }

  /// After a step: positions advance; own steps no entry sees any more are dropped.
  mutating func finishStep() {
    for n in 0..<rows.count { rows.position[n] += 1 }
    let unused = Int(rows.ownFirst.min() ?? 0)
    guard unused > 0 else { return }
    for i in layers.indices {
      layers[i].ownKeys.removeFirst(unused)
      layers[i].ownValues.removeFirst(unused)
    }
    for n in 0..<rows.count { rows.ownFirst[n] -= Int32(unused) }
  }
}

/// One pre-norm Transformer block: x + Attention(Norm(x)), then x + MLP(Norm(x)), the MLP
/// Linear -> SiLU -> Linear.
public final class TransformerBlock: Module {
  public let attentionNorm: LayerNorm
  /// Queries, keys and values at once, [width, 3 * width].
  public let qkv: Linear
  public let attentionOut: Linear
  public let mlpNorm: LayerNorm
  public let mlpIn: Linear
  public let mlpOut: Linear
  public let heads: Int

  public init(width: Int, heads: Int, mlpRatio: Int, rng: inout SeededGenerator) {
    self.heads = heads
    attentionNorm = LayerNorm(width)
    qkv = Linear(width, 3 * width, bias: false, rng: &rng)
    attentionOut = Linear(width, width, rng: &rng)
    mlpNorm = LayerNorm(width)
    mlpIn = Linear(width, mlpRatio * width, rng: &rng)
    mlpOut = Linear(mlpRatio * width, width, rng: &rng)
  }

  var width: Int { attentionOut.outFeatures }

  /// The rotated queries, the rotated keys and the values of `x` [..., width], its rows at the
  /// positions of `rotation`.
  func projections(_ x: Variable, rotation: RotaryTable) -> (q: Variable, k: Variable, v: Variable) {
    let parts = qkv(attentionNorm(x)).split(count: 3, axis: -1)
    return (rotation(parts[0], heads: heads), rotation(parts[1], heads: heads), parts[2])
  }

  /// The rest of the block after attention: residual, then the MLP with its residual.
  func finish(_ x: Variable, attended: Variable) -> Variable {
    let y = x + attentionOut(attended)
    return y + mlpOut(silu(mlpIn(mlpNorm(y))))
  }
}

/// The Transformer backbone: a non-recurrent posterior q(z_t | o_t) as R2I's, pre-norm blocks
/// of causal multi-head self-attention (rotary positions) and an MLP over
/// u_t = Dense(width)([z_{t-1}, a_{t-1}]), h_t = SiLU(Linear(deter)(Norm(block output))), the
/// prior p(z_t | h_t). A step attends to the steps of its own episode only (never across an
/// `isFirst`) and to at most ``window`` of them, itself included. Its memory x is h (as the
/// GRU's): what it remembers beyond h lives in the key/value cache of ``LatentState/context``.
///
/// Positions: rotary encoding (RoPE) rather than a learned relative bias. It needs no
/// parameters, scores depend on the offset of two steps only, so keys can be cached already
/// turned, and it has no built-in preference for recent steps (a linear distance penalty
/// would work against recalling a cue from the far end of the window).
public final class TransformerCore: Module, SequenceModel {
  public let backbone = Backbone.transformer
  public let deterSize: Int
  public let latent: CategoricalLatent
  public let actionSize: Int
  /// The context window K.
  public let window: Int
  /// q(z_t | o_t).
  public let posterior: LatentHead
  public let inputLayer: Dense
  public let blocks: [TransformerBlock]
  public let outputNorm: LayerNorm
  public let outProjection: Linear
  /// p(z_t | h_t).
  public let prior: LatentHead
  public let initial: InitialLatent

  public init(
    embedSize: Int, actionSize: Int, deter: Int, units: Int, settings: TransformerSettings, window: Int,
    latent: CategoricalLatent = CategoricalLatent(), learnedInitialState: Bool = true, rng: inout SeededGenerator
  ) {
    precondition(settings.problem == nil, settings.problem ?? "")
    precondition(window >= 1, "TransformerCore: window must be at least 1, got \(window)")
    deterSize = deter
    self.latent = latent
    self.actionSize = actionSize
    self.window = window
    posterior = LatentHead(embedSize, units: units, latent: latent, rng: &rng)
    inputLayer = Dense(latent.size + actionSize, settings.width, rng: &rng)
    blocks = (0..<settings.layers).map { _ in
      TransformerBlock(width: settings.width, heads: settings.heads, mlpRatio: settings.mlpRatio, rng: &rng)
    }
    outputNorm = LayerNorm(settings.width)
    outProjection = Linear(settings.width, deter, rng: &rng)
    prior = LatentHead(deter, units: units, latent: latent, rng: &rng)
    initial = InitialLatent(deter: deter, learned: learnedInitialState)
  }

  public var memorySize: Int { deterSize }

  func initialLatent() -> (h: Variable, z: Variable) { initial(prior: prior.callAsFunction, latent: latent) }

  public func initialState(batch: Int) -> LatentState {
    let (h, z) = initialLatent()
    return LatentState(
      deter: h.broadcast(to: [batch, deterSize]), stoch: z.broadcast(to: [batch, stochSize]), recurrent: [],
      context: AttentionContext(empty: batch, layers: blocks.count, window: window))
  }

  func outputs(_ x: Variable) -> (h: Variable, priorLogits: Variable) {
    let h = silu(outProjection(outputNorm(x)))
    return (h, prior(h))
  }

  public func observe(
    embed: Variable, prevActions: Variable, isFirst: Tensor, state: LatentState?,
    rng: inout SeededGenerator
  ) -> SequenceOutput {
    let (b, t) = (embed.shape[0], embed.shape[1])
    // A carried state that has seen steps: go on step by step against its cache.
    if let state, let context = state.context,
      context.ownSteps > 0 || context.rows.prefixRow.contains(where: { $0 >= 0 })
    {
      return observeStepwise(embed: embed, prevActions: prevActions, isFirst: isFirst, state: state, rng: &rng)
    }
    let postLogits = posterior(embed)
    let z = latent.sampleSequence(postLogits, using: &rng)
    let zPrev = previousLatents(z, carried: state?.stoch, initial: initialLatent().z, isFirst: isFirst)
    var x = inputLayer(blocks: [InputBlock(zPrev, mayBeBinary: true), InputBlock(prevActions, mayBeBinary: true)])
    // Positions count from each episode's start (from the carried position before one).
    let flags = isFirst.scalars
    var positions = [Int32](repeating: 0, count: b * t)
    for r in 0..<b {
      var p = state?.context?.rows.position[r] ?? 0
      for i in 0..<t {
        if flags[r * t + i] != 0 { p = 0 }
        positions[r * t + i] = p
        p += 1
      }
    }
    let firstKey = visibleFirst(isFirst: isFirst, window: window)
    let rotation = rotaryTable(positions)
    var caches: [KeyValueCache] = []
    for block in blocks {
      let (q, k, v) = block.projections(x, rotation: rotation)
      let attended = sequenceAttention(q: q, k: k, v: v, first: firstKey, heads: block.heads)
      x = block.finish(x, attended: attended)
      caches.append(KeyValueCache(prefixKeys: k.value, prefixValues: v.value))
    }
    let (h, priorLogits) = outputs(x)
    let rows = CacheRows(
      prefixRow: (0..<(b * t)).map { Int32($0 / t) }, prefixFirst: firstKey,
      prefixEnd: (0..<(b * t)).map { Int32($0 % t + 1) }, ownFirst: [Int32](repeating: 0, count: b * t),
      position: positions.map { $0 + 1 })
    let context = AttentionContext(layers: caches, rows: rows, window: window, sequence: (b, t))
    return SequenceOutput(
      states: LatentState(deter: h, stoch: z, recurrent: [], context: context), postLogits: postLogits,
      priorLogits: priorLogits)
  }

  /// ``observe(embed:prevActions:isFirst:state:rng:)`` one step at a time (a carried cache).
  func observeStepwise(
    embed: Variable, prevActions: Variable, isFirst: Tensor, state: LatentState, rng: inout SeededGenerator
  ) -> SequenceOutput {
    let t = embed.shape[1]
    var current = state
    var steps: [LatentState] = []
    var posts: [Variable] = []
    var priors: [Variable] = []
    for i in 0..<t {
      let r = observeStep(
        embed: embed.slice(at: i, axis: 1), prevAction: prevActions.slice(at: i, axis: 1),
        isFirst: isFirst.slice(at: i, axis: 1), state: current, rng: &rng)
      current = r.state
      steps.append(r.state)
      posts.append(r.postLogits)
      priors.append(r.priorLogits)
    }
    // Sequence states without a context (each step's cache is not kept); `final` has the last one's.
    let states = LatentState(
      deter: Variable.stack(steps.map(\.deter), axis: 1), stoch: Variable.stack(steps.map(\.stoch), axis: 1),
      recurrent: [])
    return SequenceOutput(
      states: states, postLogits: Variable.stack(posts, axis: 1), priorLogits: Variable.stack(priors, axis: 1),
      last: current)
  }

  /// The cache a single state carries. Every state this core makes has one: its initial states,
  /// the steps it takes, and the sequence states of a batch observed at once (their step or
  /// their flattened starts). Sequence states observed step by step from a carried cache keep
  /// theirs in ``SequenceOutput/final`` only, and stacked states (for the heads) none.
  static func cache(of state: LatentState) -> AttentionContext {
    guard let context = state.context else {
      preconditionFailure(
        "TransformerCore: this state carries no key/value cache (a stacked state, or one step of sequence states observed step by step: continue from `final`)"
      )
    }
    precondition(context.sequence == nil, "TransformerCore: take a step or flatten sequence states first")
    return context
  }

  /// The rotary table of rows at `positions`, shared by every block (same width and heads).
  func rotaryTable(_ positions: [Int32]) -> RotaryTable {
    RotaryTable(positions: positions, headSize: blocks[0].width / blocks[0].heads)
  }

  /// One step of every block for N entries with input `u` [N, width] against `context`, which
  /// takes the step's keys and values.
  func step(_ u: Variable, context: inout AttentionContext) -> Variable {
    context.makeRoom()
    let rotation = rotaryTable(context.rows.position)
    var x = u
    for (i, block) in blocks.enumerated() {
      let (q, k, v) = block.projections(x, rotation: rotation)
      context.layers[i].ownKeys.append(k)
      context.layers[i].ownValues.append(v)
      let attended = stepAttention(q: q, cache: context.layers[i], rows: context.rows, heads: block.heads)
      x = block.finish(x, attended: attended)
    }
    context.finishStep()
    return x
  }

  public func observeStep(
    embed: Variable, prevAction: Variable, isFirst: Tensor, state: LatentState,
    rng: inout SeededGenerator
  ) -> (state: LatentState, postLogits: Variable, priorLogits: Variable) {
    let (postLogits, z, zPrev) = observedLatents(
      embed, posterior: posterior, latent: latent, previous: state.stoch, initial: initialLatent().z,
      isFirst: isFirst, rng: &rng)
    var context = Self.cache(of: state)
    context.reset(isFirst.scalars)
    let x = step(inputLayer(Variable.concat([zPrev, prevAction], axis: -1)), context: &context)
    let (h, priorLogits) = outputs(x)
    return (LatentState(deter: h, stoch: z, recurrent: [], context: context), postLogits, priorLogits)
  }

  public func imagineStep(state: LatentState, action: Variable, rng: inout SeededGenerator) -> (
    state: LatentState, priorLogits: Variable
  ) {
    var context = Self.cache(of: state)
    let u = inputLayer(blocks: [InputBlock(state.stoch, mayBeBinary: true), InputBlock(action, mayBeBinary: true)])
    let x = step(u, context: &context)
    let (h, logits) = outputs(x)
    return (
      LatentState(deter: h, stoch: latent.sample(logits, using: &rng), recurrent: [], context: context), logits
    )
  }
}

// MARK: Analytic counts

extension TransformerCore {
  /// Parameters of a TransformerCore for embeddings of `embed` features and the config's sizes.
  static func parameterCount(embed: Int, _ c: WorldModelConfig) -> Int {
    let (d, u, s, a) = (c.deter, c.units, c.stochSize, c.actionSize)
    let tr = c.transformerSettings
    let w = tr.width
    let block =
      2 * w + Counting.linear(w, 3 * w, bias: false) + Counting.linear(w, w) + 2 * w
      + Counting.linear(w, tr.mlpRatio * w) + Counting.linear(tr.mlpRatio * w, w)
    return Counting.dense(embed, u) + Counting.linear(u, s) + Counting.dense(s + a, w) + tr.layers * block + 2 * w
      + Counting.linear(w, d) + Counting.dense(d, u) + Counting.linear(u, s) + (c.learnedInitialState ? d : 0)
  }

  /// Matrix-product FLOPs of forward and backward over B x T steps through BLAS (the
  /// projections and MLPs; attention itself: ``attentionFLOPs(batch:length:_:)``).
  static func updateFLOPs(batch b: Int, length t: Int, embed: Int, _ c: WorldModelConfig) -> Int {
    let n = b * t
    let (d, u, s, a) = (c.deter, c.units, c.stochSize, c.actionSize)
    let tr = c.transformerSettings
    let w = tr.width
    var total = Counting.tracked(n, embed, u) + Counting.tracked(n, u, s) + Counting.onData(n, s + a, w)
    total += Counting.product(n, w, s)
    let perLayer =
      Counting.tracked(n, w, 3 * w) + Counting.tracked(n, w, w) + Counting.tracked(n, w, tr.mlpRatio * w)
      + Counting.tracked(n, tr.mlpRatio * w, w)
    total += tr.layers * perLayer
    total += Counting.tracked(n, w, d) + Counting.tracked(n, d, u) + Counting.tracked(n, u, s)
    return total + Counting.tracked(1, d, u) + Counting.tracked(1, u, s)
  }

  /// The fused attention kernels' multiply-add FLOPs, forward and backward, over B sequences of
  /// T steps with no episode start inside: per pair of a query and a key it sees, the forward
  /// pass forms the score and adds the weighted value (2 x width each), the backward pass
  /// recomputes the score and forms four more products (5 x 2 x width).
  static func attentionFLOPs(batch b: Int, length t: Int, _ c: WorldModelConfig) -> Int {
    let tr = c.transformerSettings
    let k = min(t, tr.window > 0 ? tr.window : t)
    let pairs = k * (k + 1) / 2 + (t - k) * k
    return tr.layers * b * pairs * 2 * tr.width * (2 + 5)
  }
}
