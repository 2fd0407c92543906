/// A fixed set of named scalar measurements of one update (a loss and its terms, entropies,
/// gradient norms), kept as stored `Float` properties so that callers read them by name and a
/// renamed metric fails to build instead of printing nothing.
///
/// ``fields`` lists every metric once with the name it has in logs, namespaced by the part it
/// measures (`wm/loss`, `actor/entropy`); sums and the conversion to and from an array of
/// values come from that list.
///
/// ```swift
/// struct Probe: MetricSet {
///   var loss: Float = 0
///   var accuracy: Float = 0
///   static var fields: [MetricField<Probe>] { [.init("probe/loss", \.loss), .init("probe/accuracy", \.accuracy)] }
/// }
/// let total = a.adding(b)                       // metric by metric
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

  /// Metric by metric, `self + other`.
  public func adding(_ other: Self) -> Self { Self(values: zip(values, other.values).map { $0 + $1 }) }
}
