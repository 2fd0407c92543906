// The library example of the README, compiled here as a user's package would compile it. The
// lines between the markers must stay equal to the README's Swift block
// (`LibraryExampleTests.theReadmeShowsThisExampleVerbatim`).
// BEGIN README
import Agent  // AgentConfig.small: the CPU preset's sizes
import Envs
import Replay
import Training  // EnvInterface and WorldModelBatch(ReplayBatch): envs <-> replay <-> tensors
import WorldModel

func trainAWorldModelAndImagine() throws -> [Float] {
  // Four environments, random actions, every step into a replay (one stream per environment).
  let envs = try BatchEnv(name: "bsuite/memory_len/10", count: 4, seed: 0)
  let interface = try EnvInterface(envs)
  let replay = try Replay(layout: interface.replayLayout, capacity: 10_000, seed: 0)
  var rng = SeededGenerator(seed: 1)
  var actions = Tensor.zeros([4, interface.actionSpec.size])
  for _ in 0..<200 {
    let transitions = try envs.step(interface.environmentActions(actions))
    actions = interface.randomActions(count: 4, rng: &rng)  // the action taken after this step
    try replay.insert(interface.replaySteps(transitions, actions: actions), streams: Array(0..<4))
  }
  // An R2I world model for these spaces, one update on 8 whole episodes (12 steps each).
  let config = AgentConfig.small(
    backbone: .r2i, observation: interface.observationKind, actions: interface.actionSpec
  ).worldModel
  let model = WorldModel(config: config, seed: 0)
  let trainer = WorldModelTrainer(model: model)
  guard let sampled = try replay.sample(batchSize: 8, length: 12, mode: .episodes) else { return [] }
  let update = trainer.update(WorldModelBatch(sampled), rng: &rng)
  print("loss \(update.metrics.loss), reward nll \(update.metrics.reward)")
  // Imagine 15 steps from all 8 x 12 posterior states with a policy of your own.
  let starts = update.posterior.states.flattened()
  let rollout = withoutGradient {
    model.imagine(from: starts, horizon: 15, rng: &rng) { state, rng in
      Variable(Tensor.oneHot((0..<state.batchSize).map { _ in rng.nextInt(below: 2) }, depth: 2))
    }
  }
  return rollout.states.dropFirst().map { model.predictedReward($0).value.mean().scalar }
}
// END README
