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
  public let latent: CategoricalLatent
  public let actionSize: Int
  public let embedSize: Int

  /// x = Dense(units)([z, a]).
  public let inputLayer: Dense
  /// Linear([h, x]) -> 3 deter, no bias, then LayerNorm over all gates.
  public let gru: Linear
  public let gruNorm: LayerNorm
  /// p(z | h) and q(z | h, embed).
  public let prior: LatentHead
  public let posterior: LatentHead
  /// h_init = tanh(w) and z_init = the prior's mode on it.
  public let initial: InitialLatent

  public var stochSize: Int { latent.size }

  public init(
    deter: Int, units: Int, actionSize: Int, embedSize: Int, latent: CategoricalLatent = CategoricalLatent(),
    learnedInitialState: Bool = true, rng: inout SeededGenerator
  ) {
    self.deter = deter
    self.units = units
    self.latent = latent
    self.actionSize = actionSize
    self.embedSize = embedSize
    inputLayer = Dense(latent.size + actionSize, units, rng: &rng)
    gru = Linear(deter + units, 3 * deter, bias: false, rng: &rng)
    gruNorm = LayerNorm(3 * deter, epsilon: 1e-3)
    prior = LatentHead(deter, units: units, latent: latent, rng: &rng)
    posterior = LatentHead(deter + embedSize, units: units, latent: latent, rng: &rng)
    initial = InitialLatent(deter: deter, learned: learnedInitialState)
  }

  // MARK: Pieces

  /// h_init [1, deter] and z_init [1, S*C].
  public func initialLatent() -> (h: Variable, z: Variable) { initial(prior: prior.callAsFunction, latent: latent) }

  /// Prior logits [..., S*C] from h [..., deter].
  public func priorLogits(_ h: Variable) -> Variable { prior(h) }

  /// The GRU update from h [B, deter] and the projected input x [B, units].
  public func gruStep(_ h: Variable, _ x: Variable) -> Variable {
    let g = gruNorm(gru(Variable.concat([h, x], axis: -1)))
    return gruGates(g, previous: h)
  }

  /// Replaces rows where `isFirst` [B] is set: h, z by the initial state; returns the mask [B, 1].
  func applyResets(_ h: Variable, _ z: Variable, isFirst: Tensor) -> (Variable, Variable) {
    let b = h.shape[0]
    let mask = isFirst.reshaped([b, 1])
    guard mask.max().scalar > 0 else { return (h, z) }
    let (h0, z0) = initialLatent()
    return (select(mask, h0, h), select(mask, z0, z))
  }

  // MARK: Steps

  /// One imagination step: (h, z, action) -> (h', z' ~ prior, prior logits).
  public func imagineStep(h: Variable, z: Variable, action: Variable, rng: inout SeededGenerator) -> (
    h: Variable, z: Variable, priorLogits: Variable
  ) {
    let x = inputLayer(blocks: [InputBlock(z, mayBeBinary: true), InputBlock(action, mayBeBinary: true)])
    let h2 = gruStep(h, x)
    let logits = priorLogits(h2)
    return (h2, latent.sample(logits, using: &rng), logits)
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
    let logits = posterior(Variable.concat([h2, embed], axis: -1))
    return (h2, latent.sample(logits, using: &rng), logits)
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
    let wIn = inputLayer.inputWeights(splitting: [s, actionSize])
    let wPost = posterior.hidden.inputWeights(splitting: [deter, embedSize])
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
      let x = inputLayer.activate(matmul(zp, wIn[0]) + actionPart[step].reshaped([b, units]))
      hc = gruStep(hp, x)
      let post = posterior.out(posterior.hidden.activate(matmul(hc, wPost[0]) + embedPart[step].reshaped([b, units])))
      zc = latent.sample(post, using: &rng)
      hs.append(hc)
      zs.append(zc)
      posts.append(post)
    }
    let hAll = Variable.stack(hs, axis: 1)
    return (hAll, Variable.stack(zs, axis: 1), Variable.stack(posts, axis: 1), priorLogits(hAll))
  }
}
