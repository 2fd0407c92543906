@_exported import Attention
@_exported import NN
import RSSM
import SSM

/// Which sequence backbone a world model uses.
public enum Backbone: String, Sendable, Codable, CaseIterable {
  /// R2I: non-recurrent posterior, S5-style SSM stack with a parallel scan.
  case r2i
  /// DreamerV3: the GRU RSSM with a recurrent posterior.
  case dreamerv3
  /// A causal Transformer core (``TransformerCore``) with R2I's non-recurrent posterior.
  case transformer

  /// The name reports print: R2I, DreamerV3, Transformer.
  public var displayName: String {
    switch self {
    case .r2i: return "R2I"
    case .dreamerv3: return "DreamerV3"
    case .transformer: return "Transformer"
    }
  }
}

/// What the policy, critic and heads read from a latent state.
public enum FeatureView: String, Sendable, Codable, CaseIterable {
  /// [h, z]: the deterministic output and the stochastic latent (the decoder always reads this;
  /// the reward and continue heads unless ``WorldModelConfig/headInput`` says otherwise).
  case output
  /// [z, x]: the latent and the backbone's recurrent memory (R2I's recommendation for memory
  /// tasks; x is the SSM state of every layer, or h for the GRU).
  case hidden
  /// [h, z, x].
  case full
}

/// Latent states of the world model: one per batch entry ([B, ...]), or one per step of every
/// sequence ([B, T, ...], as ``SequenceOutput/states``). Every field has the same leading axes.
public struct LatentState {
  /// The deterministic output h, [..., deter].
  public var deter: Variable
  /// The sampled latent z (flattened one-hot groups), [..., groups * classes].
  public var stoch: Variable
  /// The backbone's recurrent memory x: each SSM layer's complex state [..., 2P] for R2I; empty
  /// for the GRU and the Transformer, whose memory features are `deter`.
  public var recurrent: [Variable]
  /// The Transformer's key/value cache of the steps each entry has seen (nil for the other
  /// backbones). Not a feature: the heads, the policy and the critic never read it, and
  /// ``stacked(_:)`` drops it.
  public var context: AttentionContext?

  public init(deter: Variable, stoch: Variable, recurrent: [Variable], context: AttentionContext? = nil) {
    self.deter = deter
    self.stoch = stoch
    self.recurrent = recurrent
    self.context = context
  }

  /// x, the memory as flat real features: the SSM states of every layer, or h for the GRU and
  /// the Transformer.
  public var memory: Variable { recurrent.isEmpty ? deter : Variable.concat(recurrent, axis: -1) }

  /// Features of `view`, [..., F]: what the heads, the policy and the critic read.
  public func features(_ view: FeatureView) -> Variable {
    switch view {
    case .output: return Variable.concat([deter, stoch], axis: -1)
    case .hidden: return Variable.concat([stoch, memory], axis: -1)
    case .full: return Variable.concat([deter, stoch, memory], axis: -1)
    }
  }

  /// ``features(_:)`` as blocks for a layer that reads them without concatenating them (see
  /// ``Linear/callAsFunction(blocks:)``): h, z (marked as possibly binary: a sampled latent is
  /// one-hot in each group) and each SSM layer's state, in the order of ``features(_:)``.
  public func featureBlocks(_ view: FeatureView) -> [InputBlock] {
    let h = InputBlock(deter)
    let z = InputBlock(stoch, mayBeBinary: true)
    let x = recurrent.isEmpty ? [InputBlock(deter)] : recurrent.map { InputBlock($0) }
    switch view {
    case .output: return [h, z]
    case .hidden: return [z] + x
    case .full: return [h, z] + x
    }
  }

  /// The same state with gradients stopped.
  public var detached: LatentState {
    LatentState(
      deter: deter.detached, stoch: stoch.detached, recurrent: recurrent.map { $0.detached }, context: context?.detached
    )
  }

  /// The size of the first axis.
  public var batchSize: Int { deter.shape[0] }

  /// Sequence states [B, T, ...] as B·T single states [B·T, ...] (entry b·T + t is step t of
  /// sequence b): the start states of imagination.
  public func flattened() -> LatentState {
    func merge(_ v: Variable) -> Variable {
      precondition(v.rank >= 3, "flattened() needs sequence states [B, T, ...], got \(v.shape)")
      return v.reshaped([v.shape[0] * v.shape[1]] + v.shape.dropFirst(2))
    }
    return LatentState(
      deter: merge(deter), stoch: merge(stoch), recurrent: recurrent.map(merge), context: context?.flattened())
  }

  /// States of equal shape [N, ...] stacked on a new leading axis, [K, N, ...] (imagined steps
  /// as one batch for the heads, the policy and the critic; without their contexts).
  public static func stacked(_ states: [LatentState]) -> LatentState {
    precondition(!states.isEmpty, "stacked needs at least one state")
    let layers = states[0].recurrent.count
    return LatentState(
      deter: Variable.stack(states.map(\.deter), axis: 0), stoch: Variable.stack(states.map(\.stoch), axis: 0),
      recurrent: (0..<layers).map { i in Variable.stack(states.map { $0.recurrent[i] }, axis: 0) })
  }

  /// Entries `range` of the first axis (a chunk of starts, or steps of a stacked rollout).
  public func rows(_ range: Range<Int>) -> LatentState {
    func pick(_ v: Variable) -> Variable { v.slice(axis: 0, range) }
    return LatentState(
      deter: pick(deter), stoch: pick(stoch), recurrent: recurrent.map(pick), context: context?.rows(Array(range)))
  }

  /// Entries `indices` of the first axis, in that order (a subset of imagination starts).
  public func rows(_ indices: [Int]) -> LatentState {
    func pick(_ v: Variable) -> Variable { v.gather(indices: indices, axis: 0) }
    return LatentState(
      deter: pick(deter), stoch: pick(stoch), recurrent: recurrent.map(pick), context: context?.rows(indices))
  }

  /// Step `t` of sequence states [B, T, ...], as [B, ...].
  public func step(_ t: Int) -> LatentState {
    func pick(_ v: Variable) -> Variable { v.slice(at: t, axis: 1) }
    return LatentState(
      deter: pick(deter), stoch: pick(stoch), recurrent: recurrent.map(pick), context: context?.step(t))
  }
}

/// The result of observing whole sequences.
public struct SequenceOutput {
  /// The posterior state of every step, [B, T, ...] (z sampled from the posterior).
  public var states: LatentState
  /// Posterior and prior logits, [B, T, groups * classes].
  public var postLogits: Variable
  public var priorLogits: Variable

  /// The state after the last step when `states` cannot give it (a Transformer that observed
  /// step by step keeps its cache there).
  var last: LatentState?

  public init(states: LatentState, postLogits: Variable, priorLogits: Variable, last: LatentState? = nil) {
    self.states = states
    self.postLogits = postLogits
    self.priorLogits = priorLogits
    self.last = last
  }

  /// The sequence length T.
  public var length: Int { states.deter.shape[1] }

  /// The state after the last step, [B, ...] (pass it as `state` to continue the sequences).
  public var final: LatentState { last ?? states.step(length - 1) }

  /// The same output with gradients stopped (what imagination starts from).
  public var detached: SequenceOutput {
    SequenceOutput(
      states: states.detached, postLogits: postLogits.detached, priorLogits: priorLogits.detached,
      last: last?.detached)
  }
}

/// A sequence backbone of the world model. R2I's SSM core and DreamerV3's RSSM conform; a new
/// backbone (an LRU, a Transformer, a selective SSM) is one more conformance.
///
/// Conventions (`docs/method.md`, section 1): `prevActions[t]` is a_{t-1} and is zero where
/// `isFirst[t]` is set; at every `isFirst` step the previous latent and memory are replaced by the
/// initial state.
public protocol SequenceModel: AnyObject {
  var backbone: Backbone { get }
  var deterSize: Int { get }
  /// The stochastic latent z (groups, classes, unimix).
  var latent: CategoricalLatent { get }
  /// Size of the memory features x.
  var memorySize: Int { get }

  /// The initial state (learned or zeros) for `batch` entries.
  func initialState(batch: Int) -> LatentState

  /// Observes a whole sequence: embeddings [B, T, E], previous actions [B, T, A], reset flags
  /// [B, T], and the state before t = 0 (nil: the initial state).
  func observe(
    embed: Variable, prevActions: Variable, isFirst: Tensor, state: LatentState?,
    rng: inout SeededGenerator
  ) -> SequenceOutput

  /// One observation step (acting): returns the posterior state and the prior logits of the step.
  func observeStep(
    embed: Variable, prevAction: Variable, isFirst: Tensor, state: LatentState,
    rng: inout SeededGenerator
  ) -> (state: LatentState, postLogits: Variable, priorLogits: Variable)

  /// One imagination step: the prior from `state` and `action`, with a sampled latent.
  func imagineStep(state: LatentState, action: Variable, rng: inout SeededGenerator) -> (
    state: LatentState, priorLogits: Variable
  )
}

extension SequenceModel {
  public var stochSize: Int { latent.size }
}

/// z_{t-1} for every step of sequences whose latents are `z` [B, T, S] (the cores with a
/// posterior that reads the observation alone): `carried` [B, S] (or `initial`) before t = 0,
/// the previous step's latent after, and `initial` [1, S] at every `isFirst` [B, T].
func previousLatents(_ z: Variable, carried: Variable?, initial: Variable, isFirst: Tensor) -> Variable {
  let (b, t, s) = (z.shape[0], z.shape[1], z.shape[2])
  let first = (carried ?? initial.broadcast(to: [b, s])).reshaped([b, 1, s])
  let shifted = t > 1 ? Variable.concat([first, z.slice(axis: 1, 0..<(t - 1))], axis: 1) : first
  return select(isFirst.reshaped([b, t, 1]), initial.reshaped([1, 1, s]), shifted)
}

/// One observed step of the cores with a posterior that reads the observation alone: the
/// posterior's logits for `embed` [N, E], their sample z_t, and z_{t-1} (`previous` [N, S], or
/// `initial` [1, S] where `isFirst` [N] is set).
func observedLatents(
  _ embed: Variable, posterior: LatentHead, latent: CategoricalLatent, previous: Variable, initial: Variable,
  isFirst: Tensor, rng: inout SeededGenerator
) -> (postLogits: Variable, z: Variable, zPrev: Variable) {
  let postLogits = posterior(embed)
  let z = latent.sample(postLogits, using: &rng)
  return (postLogits, z, select(isFirst.reshaped([embed.shape[0], 1]), initial, previous))
}
