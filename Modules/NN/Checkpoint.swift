import FileSupport
import Foundation

/// A problem with a checkpoint file, naming the tensor and what is wrong.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
  public let problem: String
  public init(problem: String) { self.problem = problem }
  public var description: String { "checkpoint: \(problem)" }
}

/// Reading and writing named Float32 tensors in the safetensors format.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
/// "__metadata__": {...}}`), then the raw little-endian data, offsets relative to its start.
/// Files we write also carry a CRC-32 of every tensor's bytes in the metadata
/// (`"crc32/<name>": "<hex>"`) and of the user metadata (`"crc32/__metadata__"`), so a flipped
/// byte is detected, not only truncation; other safetensors readers ignore those entries. A file
/// that carries any of these checksums must carry all of them (a renamed tensor or key is damage);
/// files from other writers, with none, are read without. Writes go to a temporary file that is renamed
/// into place, so an interrupted save never leaves a broken checkpoint.
///
/// ```swift
/// try SafeTensors.save(model, to: url, metadata: ["step": "1000"])
/// try SafeTensors.load(into: model, from: url)   // names and shapes must match
/// ```
public enum SafeTensors {
  /// Writes `tensors` (names must be unique) and string `metadata`.
  public static func write(
    _ tensors: [(String, Tensor)], metadata: [String: String] = [:], to url: URL
  ) throws {
    var seen = Set<String>()
    for (name, _) in tensors {
      guard !name.isEmpty, name != "__metadata__" else {
        throw CheckpointError(problem: "invalid tensor name '\(name)'")
      }
      guard seen.insert(name).inserted else {
        throw CheckpointError(problem: "duplicate tensor name '\(name)'")
      }
    }
    var header: [String: Any] = [:]
    var meta = metadata
    var offset = 0
    for (name, t) in tensors {
      let bytes = t.count * 4
      header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]]
      let crc = t.withUnsafeBufferPointer { CRC32.checksum(UnsafeRawBufferPointer($0)) }
      meta["crc32/\(name)"] = String(crc, radix: 16)
      offset += bytes
    }
    meta[metadataChecksumKey] = String(metadataChecksum(metadata), radix: 16)
    header["__metadata__"] = meta
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    // Pad the header with spaces to a multiple of 8 bytes so the data is aligned.
    while (json.count % 8) != 0 { json.append(0x20) }
    try AtomicFile.write(to: url) { handle in
      var w = BinaryWriter()
      w.write(UInt64(json.count))
      try handle.write(contentsOf: Data(w.bytes))
      try handle.write(contentsOf: json)
      for (_, t) in tensors {
        var chunk = BinaryWriter()
        t.withUnsafeBufferPointer { chunk.write(floats: $0) }
        try handle.write(contentsOf: Data(chunk.bytes))
      }
    }
  }

  static let metadataChecksumKey = "crc32/__metadata__"

  /// CRC-32 of the user metadata in a fixed encoding (sorted `key=value` lines).
  static func metadataChecksum(_ metadata: [String: String]) -> UInt32 {
    CRC32.checksum(Array(metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)\n" }.joined().utf8))
  }

  /// Reads every tensor and the metadata, validating the header, the offsets and the checksums.
  public static func read(from url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw CheckpointError(
        problem: "cannot read '\(url.path)' (\(error.localizedDescription)); check the path")
    }
    let path = url.lastPathComponent
    guard data.count >= 8 else {
      throw CheckpointError(
        problem: "'\(path)' is \(data.count) bytes, too short for a safetensors header (truncated?)")
    }
    var r = BinaryReader(Array(data.prefix(8)), source: path)
    let declared = try r.read(UInt64.self, "header length")
    guard declared > 0, declared <= UInt64(data.count - 8) else {
      throw CheckpointError(
        problem:
          "'\(path)' declares a \(declared)-byte header but only \(data.count - 8) bytes follow (truncated or not a safetensors file)"
      )
    }
    let headerLength = Int(declared)
    let headerData = data.subdata(in: 8..<(8 + headerLength))
    guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
      throw CheckpointError(problem: "'\(path)' has a header that is not valid JSON (file altered or not safetensors)")
    }
    let metadata = (header["__metadata__"] as? [String: String]) ?? [:]
    let checksummed = metadata.keys.contains { $0.hasPrefix("crc32/") }
    let userMetadata = metadata.filter { !$0.key.hasPrefix("crc32/") }
    if checksummed {
      guard metadata[metadataChecksumKey] == String(metadataChecksum(userMetadata), radix: 16) else {
        throw CheckpointError(
          problem: "the metadata of '\(path)' fails its checksum: the file was altered or corrupted")
      }
      let names = Set(header.keys.filter { $0 != "__metadata__" }.map { "crc32/\($0)" })
      let stray = metadata.keys.filter { $0.hasPrefix("crc32/") && $0 != metadataChecksumKey && !names.contains($0) }
      guard stray.isEmpty else {
        throw CheckpointError(
          problem:
            "'\(path)' has checksums for tensors it does not hold (\(stray.sorted().prefix(3))): the file was altered")
      }
    }
    let dataStart = 8 + headerLength
    let dataLength = data.count - dataStart
    var tensors: [String: Tensor] = [:]
    var spans: [(Int, Int, String)] = []
    for (name, value) in header where name != "__metadata__" {
      guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
        let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int],
        offsets.count == 2
      else {
        throw CheckpointError(problem: "tensor '\(name)' in '\(path)' has a malformed header entry")
      }
      guard dtype == "F32" else {
        throw CheckpointError(problem: "tensor '\(name)' has dtype \(dtype); only F32 is supported")
      }
      guard shape.allSatisfy({ $0 >= 0 }) else {
        throw CheckpointError(problem: "tensor '\(name)' has a negative extent in shape \(shape)")
      }
      // Overflow-checked: a damaged header may declare any extents.
      var count = 1
      for extent in shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: extent)
        guard !overflow, product <= Int.max / 4 else {
          throw CheckpointError(problem: "tensor '\(name)' in '\(path)' declares an impossible shape \(shape)")
        }
        count = product
      }
      let (begin, end) = (offsets[0], offsets[1])
      guard begin >= 0, end >= begin, end - begin == count * 4 else {
        throw CheckpointError(
          problem: "tensor '\(name)' has offsets [\(begin), \(end)] that do not fit shape \(shape) (\(count * 4) bytes)"
        )
      }
      guard end <= dataLength else {
        throw CheckpointError(
          problem: "tensor '\(name)' ends at byte \(end) but the data section has \(dataLength) bytes (file truncated)")
      }
      spans.append((begin, end, name))
      let t = Tensor(shape: shape) { p in
        data.withUnsafeBytes { raw in
          let src = UnsafeRawBufferPointer(rebasing: raw[(dataStart + begin)..<(dataStart + end)])
          UnsafeMutableRawBufferPointer(p).copyMemory(from: src)
        }
        #if !_endian(little)
          for i in 0..<p.count { p[i] = Float(bitPattern: UInt32(littleEndian: p[i].bitPattern)) }
        #endif
      }
      if checksummed && metadata["crc32/\(name)"] == nil {
        throw CheckpointError(
          problem: "tensor '\(name)' in '\(path)' has no checksum while the others do: the file was altered")
      }
      if let expected = metadata["crc32/\(name)"] {
        let crc = t.withUnsafeBufferPointer { CRC32.checksum(UnsafeRawBufferPointer($0)) }
        guard String(crc, radix: 16) == expected else {
          throw CheckpointError(
            problem:
              "tensor '\(name)' fails its checksum (stored \(expected), computed \(String(crc, radix: 16))): the file was altered or corrupted"
          )
        }
      }
      tensors[name] = t
    }
    spans.sort { $0.0 < $1.0 }
    for (a, b) in zip(spans, spans.dropFirst()) where b.0 < a.1 {
      throw CheckpointError(problem: "tensors '\(a.2)' and '\(b.2)' overlap in '\(path)'")
    }
    return (tensors, userMetadata)
  }

  /// Saves every parameter of `model` under its hierarchical name.
  public static func save(_ model: Module, to url: URL, metadata: [String: String] = [:]) throws {
    try write(model.namedParameters().map { ($0.name, $0.parameter.value) }, metadata: metadata, to: url)
  }

  /// Loads parameters into `model`. Every parameter must be present with the right shape;
  /// unexpected tensors are an error unless `allowExtra`. Nothing is changed when it throws.
  @discardableResult
  public static func load(into model: Module, from url: URL, allowExtra: Bool = false) throws
    -> [String: String]
  {
    let (tensors, metadata) = try read(from: url)
    try assign(tensors, to: model, allowExtra: allowExtra, source: url.lastPathComponent)
    return metadata
  }

  /// Assigns named tensors to a model's parameters after checking all names and shapes.
  public static func assign(
    _ tensors: [String: Tensor], to model: Module, allowExtra: Bool = false, source: String = "checkpoint"
  ) throws {
    let named = model.namedParameters()
    let missing = named.map { $0.name }.filter { tensors[$0] == nil }
    if !missing.isEmpty {
      throw CheckpointError(
        problem:
          "\(source) lacks \(missing.count) parameter(s) of this model, e.g. '\(missing.prefix(3).joined(separator: "', '"))' (was it saved from a different preset?)"
      )
    }
    if !allowExtra {
      let known = Set(named.map { $0.name })
      let extra = tensors.keys.filter { !known.contains($0) }.sorted()
      if !extra.isEmpty {
        throw CheckpointError(
          problem:
            "\(source) has \(extra.count) tensor(s) this model does not, e.g. '\(extra.prefix(3).joined(separator: "', '"))'"
        )
      }
    }
    for (name, p) in named where tensors[name]!.shape != p.shape {
      throw CheckpointError(
        problem: "parameter '\(name)' has shape \(tensors[name]!.shape) in \(source) but \(p.shape) in the model")
    }
    for (name, p) in named { p.value = tensors[name]! }
  }
}
