/// A fixed set of named scalar measurements of one update (a loss and its terms, entropies,
/// gradient norms), kept as stored `Float` properties so that callers read them by name and a
/// renamed metric fails to build instead of printing nothing.
///
/// ``fields`` lists every metric once with the name it has in logs, namespaced by the part it
/// measures (`wm/loss`, `actor/entropy`); the arithmetic a log needs (sums, weighted sums, means)
/// and the conversion to and from an array of values come from that list.
///
/// ```swift
/// struct Probe: MetricSet {
///   var loss: Float = 0
///   var accuracy: Float = 0
///   static var fields: [MetricField<Probe>] { [.init("probe/loss", \.loss), .init("probe/accuracy", \.accuracy)] }
/// }
/// let mean = Probe.mean([a, b])
/// ```
public protocol MetricSet: Sendable, Equatable {
  /// Every metric (log name and property), in a fixed order.
  static var fields: [MetricField<Self>] { get }
  /// All metrics zero.
  init()
}

/// One metric of a ``MetricSet``: its name in logs and the property that holds it.
public struct MetricField<Metrics: MetricSet>: @unchecked Sendable {
  public let name: String
  public let path: WritableKeyPath<Metrics, Float>

  public init(_ name: String, _ path: WritableKeyPath<Metrics, Float>) {
    self.name = name
    self.path = path
  }
}

extension MetricSet {
  /// The values in ``fields`` order.
  public var values: [Float] { Self.fields.map { self[keyPath: $0.path] } }

  /// The set whose values, in ``fields`` order, are `values`.
  public init(values: [Float]) {
    precondition(
      values.count == Self.fields.count, "\(Self.self) has \(Self.fields.count) metrics, got \(values.count)")
    self.init()
    for (field, v) in zip(Self.fields, values) { self[keyPath: field.path] = v }
  }

  /// Log name and value of every metric, in ``fields`` order.
  public var named: [(name: String, value: Float)] { Self.fields.map { ($0.name, self[keyPath: $0.path]) } }

  /// The names of the metrics that are NaN or infinite.
  public var nonFinite: [String] { named.filter { !$0.value.isFinite }.map(\.name) }

  /// Every metric times `weight`.
  public func scaled(by weight: Float) -> Self { Self(values: values.map { $0 * weight }) }

  /// Metric by metric, `self + other`.
  public func adding(_ other: Self) -> Self { Self(values: zip(values, other.values).map { $0 + $1 }) }

  /// The metric-by-metric mean of `sets` (all zero for none), accumulated in Double.
  public static func mean(_ sets: [Self]) -> Self {
    guard !sets.isEmpty else { return Self() }
    var sums = [Double](repeating: 0, count: fields.count)
    for s in sets { for (i, v) in s.values.enumerated() { sums[i] += Double(v) } }
    return Self(values: sums.map { Float($0 / Double(sets.count)) })
  }
}
