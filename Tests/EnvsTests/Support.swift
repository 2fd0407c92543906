import Testing

@testable import Envs

/// One finished episode.
struct Episode {
  var observations: [Observation] = []
  var rewards: [Double] = []
  var terminated = false
  var truncated = false
  var length: Int { rewards.count }
  var total: Double { rewards.reduce(0, +) }
}

/// Runs one episode with `policy(env, last observation)`.
func run(
  _ env: any Env, seed: UInt64? = nil, maxSteps: Int = 1_000_000,
  policy: (any Env, Observation) -> Action
) throws -> Episode {
  var e = Episode()
  var obs = try env.reset(seed: seed)
  e.observations.append(obs)
  for _ in 0..<maxSteps {
    let r = try env.step(policy(env, obs))
    obs = r.observation
    e.observations.append(obs)
    e.rewards.append(r.reward)
    // Flags may only be set on the last step.
    if r.isLast {
      e.terminated = r.terminated
      e.truncated = r.truncated
      return e
    }
  }
  Issue.record("episode of \(env.name) did not end within \(maxSteps) steps")
  return e
}

/// Mean and standard error of a sample.
func meanAndStandardError(_ xs: [Double]) -> (Double, Double) {
  let n = Double(xs.count)
  let m = xs.reduce(0, +) / n
  let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)
  return (m, (v / n).squareRoot())
}

func isClose(_ a: Double, _ b: Double, _ tol: Double = 1e-9) -> Bool { abs(a - b) <= tol }

/// The distinct values of `xs`, rounded to 12 significant decimals so sums of floats compare.
func valueSet(_ xs: [Double]) -> Set<Double> { Set(xs.map { ($0 * 1e12).rounded() / 1e12 }) }

/// The parts of an observation, nil when it is of another kind: `try #require(o.vector)` fails
/// the test, naming the observation, where a `guard case` would pass silently.
extension Observation {
  var vector: [Float]? { if case .vector(let v) = self { v } else { nil } }
  var multiDiscrete: [Int]? { if case .multiDiscrete(let v) = self { v } else { nil } }
  var frame: Frame? { if case .image(let f) = self { f } else { nil } }
}
