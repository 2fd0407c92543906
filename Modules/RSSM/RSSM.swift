@_exported import NN

/// The DreamerV3 (2023) recurrent state-space model with a GRU core: the baseline backbone.
///
/// Prior step (imagination), from (h, z, a):
/// `x = Dense(units)([z, a])`; `g = LayerNorm(Linear([h, x]) -> 3 deter)`;
/// `h' = GRU gates (reset, candidate, update with bias -1)`; prior logits =
/// `Linear(Dense(units)(h'))`. Posterior (observation) step: after the prior step,
/// `logits = Linear(Dense(units)([h', embed_t]))`. The posterior depends on h', which depends on
/// the previous posterior sample, so a sequence is processed step by step.
///
/// For speed the parts of the first Dense layers that do not depend on the recurrence (the
/// action's share of the input projection, the embedding's share of the posterior projection)
/// run once over the whole sequence, and the prior head runs after the loop on all steps.
public final class RSSM: Module {
  public let deter: Int
  public let units: Int
  public let groups: Int
  public let classes: Int
  public let actionSize: Int
  public let embedSize: Int
  public let unimix: Float

  /// x = Dense(units)([z, a]).
  public let inputLayer: Dense
  /// Linear([h, x]) -> 3 deter, no bias, then LayerNorm over all gates.
  public let gru: Linear
  public let gruNorm: LayerNorm
  public let priorHidden: Dense
  public let priorOut: Linear
  /// Dense(units)([h, embed]).
  public let postHidden: Dense
  public let postOut: Linear
  /// w of the learned initial state h_init = tanh(w), or nil for zeros.
  public let initialWeight: Parameter?

  public var stochSize: Int { groups * classes }

  public init(
    deter: Int, units: Int, actionSize: Int, embedSize: Int, groups: Int = 32, classes: Int = 32,
    unimix: Float = 0.01, learnedInitialState: Bool = true, rng: inout SeededGenerator
  ) {
    self.deter = deter
    self.units = units
    self.groups = groups
    self.classes = classes
    self.actionSize = actionSize
    self.embedSize = embedSize
    self.unimix = unimix
    let s = groups * classes
    inputLayer = Dense(s + actionSize, units, rng: &rng)
    gru = Linear(deter + units, 3 * deter, bias: false, rng: &rng)
    gruNorm = LayerNorm(3 * deter, epsilon: 1e-3)
    priorHidden = Dense(deter, units, rng: &rng)
    priorOut = Linear(units, s, initializer: .uniform(), rng: &rng)
    postHidden = Dense(deter + embedSize, units, rng: &rng)
    postOut = Linear(units, s, initializer: .uniform(), rng: &rng)
    initialWeight = learnedInitialState ? Parameter(Tensor.zeros([deter])) : nil
  }

  // MARK: Pieces

  /// h_init = tanh(w) [1, deter] and z_init = mode of the prior on it [1, S*C].
  public func initialState() -> (h: Variable, z: Variable) {
    let h = initialWeight.map { tanh($0.variable).reshaped([1, deter]) } ?? Variable(Tensor.zeros([1, deter]))
    let logits = priorLogits(h)
    let z = OneHotCategorical(logits: logits.reshaped([1, groups, classes]), unimix: unimix).mode
    return (h, z.reshaped([1, stochSize]))
  }

  /// Prior logits [..., S*C] from h [..., deter].
  public func priorLogits(_ h: Variable) -> Variable { priorOut(priorHidden(h)) }

  /// The GRU update from h [B, deter] and the projected input x [B, units].
  public func gruStep(_ h: Variable, _ x: Variable) -> Variable {
    let g = gruNorm(gru(Variable.concat([h, x], axis: -1)))
    return gruGates(g, previous: h)
  }

  func sample(_ logits: Variable, rng: inout SeededGenerator) -> Variable {
    let b = logits.shape[0]
    return OneHotCategorical(logits: logits.reshaped([b, groups, classes]), unimix: unimix)
      .sample(using: &rng).reshaped([b, stochSize])
  }

  /// Replaces rows where `isFirst` [B] is set: h, z by the initial state; returns the mask [B, 1].
  func applyResets(_ h: Variable, _ z: Variable, isFirst: Tensor) -> (Variable, Variable) {
    let b = h.shape[0]
    let mask = isFirst.reshaped([b, 1])
    guard mask.max().scalar > 0 else { return (h, z) }
    let (h0, z0) = initialState()
    return (select(mask, h0, h), select(mask, z0, z))
  }

  // MARK: Steps

  /// One imagination step: (h, z, action) -> (h', z' ~ prior, prior logits).
  public func imagineStep(h: Variable, z: Variable, action: Variable, rng: inout SeededGenerator) -> (
    h: Variable, z: Variable, priorLogits: Variable
  ) {
    let x = inputLayer(Variable.concat([z, action], axis: -1))
    let h2 = gruStep(h, x)
    let logits = priorLogits(h2)
    return (h2, sample(logits, rng: &rng), logits)
  }

  /// One observation step (acting): resets, the prior step, then the posterior from the
  /// embedding. `prevAction` must already be zero where `isFirst` is set.
  public func observeStep(
    h: Variable, z: Variable, prevAction: Variable, embed: Variable, isFirst: Tensor,
    rng: inout SeededGenerator
  ) -> (h: Variable, z: Variable, postLogits: Variable) {
    let (hp, zp) = applyResets(h, z, isFirst: isFirst)
    let x = inputLayer(Variable.concat([zp, prevAction], axis: -1))
    let h2 = gruStep(hp, x)
    let logits = postOut(postHidden(Variable.concat([h2, embed], axis: -1)))
    return (h2, sample(logits, rng: &rng), logits)
  }

  /// The posterior over a whole sequence, step by step.
  ///
  /// - Parameters:
  ///   - embed: [B, T, embedSize]; prevActions: [B, T, A] (a_{t-1}, zero at resets);
  ///     isFirst: [B, T]; h, z: the state before t = 0 ([B, deter], [B, S*C]).
  /// - Returns: h [B, T, deter], z [B, T, S*C], posterior and prior logits [B, T, S*C].
  public func observe(
    embed: Variable, prevActions: Variable, isFirst: Tensor, h: Variable, z: Variable,
    rng: inout SeededGenerator
  ) -> (h: Variable, z: Variable, postLogits: Variable, priorLogits: Variable) {
    let (b, t) = (embed.shape[0], embed.shape[1])
    let s = stochSize
    // Non-recurrent shares of the first projections, for all steps at once.
    let wIn = inputLayer.linear.weight.variable.split(sizes: [s, actionSize], axis: 0)
    let wPost = postHidden.linear.weight.variable.split(sizes: [deter, embedSize], axis: 0)
    let actionPart = matmul(prevActions, wIn[1]).split(count: t, axis: 1)
    let embedPart = matmul(embed, wPost[1]).split(count: t, axis: 1)
    let flags = isFirst.split(count: t, axis: 1)
    var hs: [Variable] = []
    var zs: [Variable] = []
    var posts: [Variable] = []
    hs.reserveCapacity(t)
    var hc = h
    var zc = z
    for step in 0..<t {
      let f = flags[step].reshaped([b])
      let (hp, zp) = applyResets(hc, zc, isFirst: f)
      let x = inputLayer.norm(
        matmul(zp, wIn[0]) + actionPart[step].reshaped([b, units]), activation: .silu)
      hc = gruStep(hp, x)
      let post = postOut(
        postHidden.norm(matmul(hc, wPost[0]) + embedPart[step].reshaped([b, units]), activation: .silu))
      zc = sample(post, rng: &rng)
      hs.append(hc)
      zs.append(zc)
      posts.append(post)
    }
    let hAll = Variable.stack(hs, axis: 1)
    return (hAll, Variable.stack(zs, axis: 1), Variable.stack(posts, axis: 1), priorLogits(hAll))
  }
}
