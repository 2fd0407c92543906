import Agent
import FileSupport
import Foundation

/// The JSON form of a ``TrainingConfig``: reading with migration, writing, and `--set key=value`.
extension TrainingConfig {
  /// Reads a configuration from its JSON form (`config.json`, a `--config` file). Older forms
  /// are migrated first: settings that did not exist then take the values that version meant
  /// (version 1, written before configurations carried a version: `sampling` uniform, the heads
  /// on [h, z] and one reward distribution, the SSM's step range and input scale at their
  /// defaults; version 2: greedy evaluation; version 3: logs by steps only, one checkpoint kept,
  /// no open-loop images). The `departures` list a file holds is derived
  /// (``departures``), not read. Throws ``TrainingError/badConfiguration(_:)`` naming `source`
  /// and the problem.
  ///
  /// A file this code wrote carries a checksum (``JSONSeal``); one that does not match is
  /// refused. A file without one (older, hand-written, or with its `crc32` line deleted to
  /// accept a hand edit) is read, but may hold no key a configuration does not have.
  public static func decode(_ data: Data, source: String) throws -> TrainingConfig {
    let seal = JSONSeal.check(data)
    if seal == .damaged {
      throw TrainingError.badConfiguration(
        "'\(source)' does not match its checksum (damaged, or edited by hand); if you edited it on purpose, delete its \"crc32\" line to accept the edit"
      )
    }
    guard var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw TrainingError.badConfiguration("'\(source)' is not a JSON object")
    }
    object[JSONSeal.key] = nil
    object[Self.departuresKey] = nil
    let given = Set(object.keys)
    let version = (object["version"] as? Int) ?? 1
    guard version <= currentVersion else {
      throw TrainingError.badConfiguration(
        "'\(source)' is configuration version \(version); this build reads up to \(currentVersion) (update r2i)")
    }
    if version == 1 { object = migratedFromVersion1(object) }
    if (object["version"] as? Int) == 2 { object = migratedFromVersion2(object) }
    if (object["version"] as? Int) == 3 { object = migratedFromVersion3(object) }
    if object["adjustments"] == nil { object["adjustments"] = [Any]() }  // none recorded
    let config: TrainingConfig
    do {
      config = try JSONDecoder().decode(TrainingConfig.self, from: JSONSerialization.data(withJSONObject: object))
    } catch {
      throw TrainingError.badConfiguration("'\(source)' is not a valid configuration (\(describe(error)))")
    }
    let known = Set(
      namingUnset(try JSONSerialization.jsonObject(with: config.encoded()) as! [String: Any], of: config).keys)
    if let unknown = given.subtracting(known).sorted().first {
      throw TrainingError.badConfiguration(
        "'\(source)' has a key no configuration has: '\(unknown)' (a typo, or a damaged file)")
    }
    return config
  }

  /// The JSON form as `config.json` holds it: ``encoded()`` with the ``departures`` list and a
  /// checksum (``JSONSeal``).
  public func sealed() throws -> Data {
    // The list goes last, before the checksum: the settings above it stay as the encoder wrote them.
    var text = String(decoding: try encoded(), as: UTF8.self)
    while text.last?.isWhitespace == true { text.removeLast() }
    precondition(text.last == "}", "a configuration encodes as a JSON object")
    text.removeLast()
    while text.last?.isWhitespace == true { text.removeLast() }
    let names = try departures().map { "\"\($0.name)\"" }.joined(separator: ", ")
    text += ",\n  \"\(Self.departuresKey)\" : [\(names)]\n}\n"
    return JSONSeal.sealed(Data(text.utf8))
  }

  /// The key of the derived list of departures in `config.json`.
  static let departuresKey = "departures"

  /// The JSON form: pretty-printed, keys sorted, unset optional settings absent.
  public func encoded() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(self)
  }

  /// A version-3 object as version 4: version 3 logged by steps only (`logSeconds` 0), kept
  /// one checkpoint and wrote no open-loop images (`openLoopMinutes` 0).
  static func migratedFromVersion3(_ v3: [String: Any]) -> [String: Any] {
    var object = v3
    object["version"] = 4
    if object["logSeconds"] == nil { object["logSeconds"] = 0 }
    if object["checkpointKeep"] == nil { object["checkpointKeep"] = 1 }
    if object["openLoopMinutes"] == nil { object["openLoopMinutes"] = 0 }
    return object
  }

  /// A version-2 object as version 3: version 2 evaluated greedily (`evaluation` greedy); the
  /// settings version 3 added elsewhere (weight decay 0, SSM resets at episode starts, the
  /// encoder's MLP as the heads') read as those defaults when absent.
  static func migratedFromVersion2(_ v2: [String: Any]) -> [String: Any] {
    var object = v2
    object["version"] = 3
    if object["evaluation"] == nil { object["evaluation"] = EvaluationMode.greedy.rawValue }
    return object
  }

  /// A version-1 object as version 2.
  static func migratedFromVersion1(_ v1: [String: Any]) -> [String: Any] {
    var object = v1
    object["version"] = 2
    if object["sampling"] == nil || object["sampling"] is NSNull { object["sampling"] = "uniform" }
    guard var agent = object["agent"] as? [String: Any], var model = agent["worldModel"] as? [String: Any] else {
      return object  // decoding names what is missing
    }
    if model["headInput"] == nil || model["headInput"] is NSNull { model["headInput"] = "output" }
    if model["rewardByAction"] == nil || model["rewardByAction"] is NSNull { model["rewardByAction"] = false }
    // Version 1 wrote no step range or input scale before they existed: their defaults.
    let ssmDefaults = SSMSettings(states: 1, channels: 1, layers: 1)
    if var ssm = model["ssm"] as? [String: Any],
      let defaults = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(ssmDefaults))) as? [String: Any]
    {
      for (key, value) in defaults where ssm[key] == nil { ssm[key] = value }
      model["ssm"] = ssm
    }
    agent["worldModel"] = model
    object["agent"] = agent
    return object
  }

  /// The configuration with `key=value` settings applied; keys are dotted paths into the JSON
  /// form (`trainRatio=32`, `agent.actorCritic.entropy=0.001`, `agent.worldModel.optimizer.learningRate=3e-4`).
  /// Throws for a malformed setting, an unknown key (listing the keys at that level) or a
  /// value of the wrong type.
  public func applying(_ settings: [String]) throws -> TrainingConfig {
    guard !settings.isEmpty else { return self }
    var root = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as! [String: Any]
    // Unset optional settings are absent from the JSON form; name them (as null) so they can be set.
    root = Self.namingUnset(root, of: self)
    for setting in settings {
      guard let eq = setting.firstIndex(of: "="), eq != setting.startIndex else {
        throw TrainingError.badConfiguration("--set '\(setting)' is not key=value (e.g. --set trainRatio=32)")
      }
      let key = String(setting[..<eq])
      let text = String(setting[setting.index(after: eq)...])
      let value: Any =
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) ?? text
      root = try Self.set(root, path: key.split(separator: ".").map(String.init), value: value, full: key)
    }
    let data = try JSONSerialization.data(withJSONObject: root)
    do {
      return try JSONDecoder().decode(TrainingConfig.self, from: data)
    } catch {
      throw TrainingError.badConfiguration(
        "--set \(settings.joined(separator: " ")): a value has the wrong type (\(Self.describe(error)))")
    }
  }

  /// `object` (the JSON form of `value`) with every optional stored property of `value` that is
  /// nil present as null, found by reflection, in nested structures too.
  static func namingUnset(_ object: [String: Any], of value: Any) -> [String: Any] {
    var object = object
    for child in Mirror(reflecting: value).children {
      guard let label = child.label else { continue }
      let mirror = Mirror(reflecting: child.value)
      if mirror.displayStyle == .optional && mirror.children.isEmpty {
        if object[label] == nil { object[label] = NSNull() }
      } else if mirror.displayStyle == .struct, let inner = object[label] as? [String: Any] {
        object[label] = namingUnset(inner, of: child.value)
      }
    }
    return object
  }

  static func set(_ object: [String: Any], path: [String], value: Any, full: String) throws -> [String: Any] {
    var object = object
    let key = path[0]
    if full == departuresKey {
      throw TrainingError.badConfiguration(
        "--set: 'departures' is derived from the settings (what differs from the paper's recipe), not a setting")
    }
    if full == "adjustments" {
      throw TrainingError.badConfiguration(
        "--set: 'adjustments' is the record of settings changed on resumes, not a setting; change a learning rate on --resume instead"
      )
    }
    guard let current = object[key] else {
      throw TrainingError.badConfiguration(
        "--set: unknown key '\(full)': '\(key)' is not one of \(object.keys.sorted().joined(separator: ", "))")
    }
    if path.count == 1 {
      if current is [String: Any] {
        throw TrainingError.badConfiguration("--set: '\(full)' is a group; set one of its keys")
      }
      object[key] = value
    } else {
      guard let inner = current as? [String: Any] else {
        throw TrainingError.badConfiguration("--set: '\(key)' in '\(full)' is a value, not a group")
      }
      object[key] = try set(inner, path: Array(path.dropFirst()), value: value, full: full)
    }
    return object
  }

  /// A short description of a decoding error: the key path and what was wrong.
  public static func describe(_ error: Error) -> String {
    switch error as? DecodingError {
    case .typeMismatch(let type, let c)?:
      return "\(c.codingPath.map(\.stringValue).joined(separator: ".")) must be \(type)"
    case .dataCorrupted(let c)?:
      let path = c.codingPath.map(\.stringValue).joined(separator: ".")
      return path.isEmpty ? c.debugDescription : "\(path): \(c.debugDescription)"
    case .keyNotFound(let k, let c)?:
      return "missing \((c.codingPath.map(\.stringValue) + [k.stringValue]).joined(separator: "."))"
    case .valueNotFound(_, let c)?: return "\(c.codingPath.map(\.stringValue).joined(separator: ".")) is missing"
    default: return "\(error)"
    }
  }
}
