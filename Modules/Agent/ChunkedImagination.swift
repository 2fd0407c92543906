/// Imagination from many starts in chunks, so that memory stays bounded by one chunk's tape at
/// long sequences: the layer under ``ActorCriticLearner/gradients(start:startContinue:rng:)``
/// that the one-pass update does not need.
extension ActorCriticLearner {
  /// The starts to imagine from under a limit of `limit` (``ActorCriticSettings/imaginationStarts``):
  /// nil when every start is kept (no limit, or no more starts that continue than the limit),
  /// else `limit` distinct indices, in increasing order, drawn uniformly among the starts whose
  /// `continues` [N] entry is positive (terminal and padded starts carry no weight).
  public static func chooseStarts(_ limit: Int?, continues: Tensor, rng: inout SeededGenerator) -> [Int]? {
    guard let limit else { return nil }
    precondition(limit >= 1, "imaginationStarts must be at least 1, got \(limit)")
    let values = continues.scalars
    var eligible = values.indices.filter { values[$0] > 0 }
    guard eligible.count > limit else { return nil }
    for i in 0..<limit {  // a partial Fisher-Yates shuffle: the first `limit` are a uniform draw
      eligible.swapAt(i, i + rng.nextInt(below: eligible.count - i))
    }
    return eligible[0..<limit].sorted()
  }

  /// The chunks the N starts are imagined in: consecutive ranges of at most
  /// `settings.imaginationChunk` starts.
  public func chunks(starts n: Int) -> [Range<Int>] {
    let size = max(1, settings.imaginationChunk)
    return stride(from: 0, to: n, by: size).map { $0..<min(n, $0 + size) }
  }

  /// The chunks of this rank's N starts and the generators they imagine from: the job's starts
  /// (N per rank, in rank order) split by ``chunks(starts:)``, one generator split off `rng` per
  /// chunk in order, as one process would split them; of each chunk that holds starts of this
  /// rank, those starts (a local range) and the chunk's generator drawing for them
  /// (``SeededGenerator/shard``). In a job of one: the chunks and their generators.
  func localChunks(starts n: Int, rng: inout SeededGenerator) -> (
    ranges: [Range<Int>], generators: [SeededGenerator]
  ) {
    let ranks = communicator.size
    let all = chunks(starts: n * ranks)
    let generators = all.map { _ in rng.split() }
    guard ranks > 1 else { return (all, generators) }
    let mine = (communicator.rank * n)..<((communicator.rank + 1) * n)
    var out: (ranges: [Range<Int>], generators: [SeededGenerator]) = ([], [])
    for (chunk, generator) in zip(all, generators) {
      let part = chunk.clamped(to: mine)
      guard !part.isEmpty else { continue }
      out.ranges.append((part.lowerBound - mine.lowerBound)..<(part.upperBound - mine.lowerBound))
      var g = generator
      g.shard = RowShard(offset: part.lowerBound - chunk.lowerBound, count: part.count, total: chunk.count)
      out.generators.append(g)
    }
    return out
  }

  /// ``gradients(start:startContinue:rng:)`` over chunks of the starts (``localChunks(starts:rng:)``),
  /// each imagined from its own generator, so memory is bounded by one
  /// chunk's tape plus the imagined states. The
  /// return scale is updated once with the returns of all chunks before any advantage is
  /// computed; each chunk's losses enter weighted by its share of the starts, so the gradient is
  /// that of the mean over all starts. Discrete actions: every chunk is imagined once, off the
  /// tape, and kept. Continuous actions with several chunks: a first pass off the tape gives the
  /// returns for the scale, and each chunk is imagined again (same generator, same values) on
  /// the tape for the actor's gradient.
  func chunkedGradients(_ parts: StartChunks) -> (actor: Gradients, critic: Gradients, metrics: BehaviourMetrics) {
    let ranges = parts.ranges
    let discrete = actor.spec.isDiscrete
    var sums = ChunkSums()
    var kept: [ImaginedReturns] = []  // detached, for the critic (and the discrete actor)
    if discrete {
      kept = discreteCriticPass(parts, into: &sums)
    } else if ranges.count > 1 {
      let returns = ranges.indices.map { i in withoutGradient { parts.imagine(i, with: self).returns.value } }
      updateReturnScale(Tensor.concat(returns, axis: 1))
    }
    for i in ranges.indices {
      let (_, g) = valueAndGradient(of: actor) {
        let imagined: ImaginedReturns
        if discrete {
          imagined = kept[i]
        } else {
          imagined = parts.imagine(i, with: self)
          if ranges.count == 1 { updateReturnScale(imagined.returns.value) }
          kept.append(imagined.detached)
        }
        let (loss, m) = actorLoss(imagined)
        sums.add(m, weight: parts.weight(i))
        return loss * parts.weight(i)
      }
      ChunkSums.accumulate(g, into: &sums.actor)
    }
    for i in ranges.indices where !discrete {
      let (_, g) = valueAndGradient(of: critic) {
        let (loss, m) = criticLoss(kept[i])
        sums.add(m, weight: parts.weight(i))
        return loss * parts.weight(i)
      }
      ChunkSums.accumulate(g, into: &sums.critic)
    }
    var metrics = sums.metrics
    metrics.returnScale = returnScale.scale
    return (sums.actor!, sums.critic!, metrics)
  }

  /// Discrete actions: each chunk imagined once with the critic on a tape of its own (its loss
  /// needs no return scale, so its gradient is taken at once), then the return scale updated
  /// with every chunk's returns. Returns the chunks' rollouts, detached, for the actor.
  func discreteCriticPass(_ parts: StartChunks, into sums: inout ChunkSums) -> [ImaginedReturns] {
    var kept: [ImaginedReturns] = []
    for i in parts.ranges.indices {
      var r = parts.generators[i]
      let (_, g) = valueAndGradient(of: critic) {
        let rollout = discreteRollout(
          start: parts.start.rows(parts.ranges[i]), startContinue: parts.continues.slice(axis: 0, parts.ranges[i]),
          actorOnTape: false, rng: &r)
        kept.append(rollout.imagined)
        let (loss, m) = criticLoss(rollout.imagined, distribution: rollout.values)
        sums.add(m, weight: parts.weight(i))
        return loss * parts.weight(i)
      }
      ChunkSums.accumulate(g, into: &sums.critic)
    }
    updateReturnScale(Tensor.concat(kept.map(\.returns.value), axis: 1))
    return kept
  }
}

/// The starts split into chunks, each with the generator it imagines from.
struct StartChunks {
  let start: LatentState
  let continues: Tensor
  let ranges: [Range<Int>]
  let generators: [SeededGenerator]

  /// Chunk `i`'s share of the starts: its losses' weight.
  func weight(_ i: Int) -> Float { Float(ranges[i].count) / Float(start.batchSize) }

  /// Chunk `i` imagined by `learner` from its own generator (the same draws every time).
  func imagine(_ i: Int, with learner: ActorCriticLearner) -> ImaginedReturns {
    var r = generators[i]
    return learner.imagine(start: start.rows(ranges[i]), startContinue: continues.slice(axis: 0, ranges[i]), rng: &r)
  }
}

/// Gradients and metrics summed over chunks (metrics in Double, weighted by each chunk's share).
struct ChunkSums {
  var actor: Gradients?
  var critic: Gradients?
  var values = [Double](repeating: 0, count: BehaviourMetrics.fields.count)

  mutating func add(_ m: BehaviourMetrics, weight: Float) {
    for (i, v) in m.values.enumerated() { values[i] += Double(v * weight) }
  }

  var metrics: BehaviourMetrics { BehaviourMetrics(values: values.map { Float($0) }) }

  static func accumulate(_ g: Gradients, into total: inout Gradients?) {
    if total == nil { total = g } else { total!.accumulate(g) }
  }
}
