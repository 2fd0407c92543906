import Foundation

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as used by zlib and PNG.
///
/// ```swift
/// var crc = CRC32()
/// crc.update(bytes)
/// let value = crc.value          // CRC32.checksum(Array("123456789".utf8)) == 0xCBF43926
/// ```
public struct CRC32: Sendable {
  static let table: [UInt32] = (0..<256).map { i in
    var c = UInt32(i)
    for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
  }

  private var state: UInt32 = 0xFFFF_FFFF

  public init() {}

  /// Feeds raw bytes.
  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    var c = state
    CRC32.table.withUnsafeBufferPointer { t in
      for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    }
    state = c
  }

  /// Feeds the bytes of a collection.
  public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
    if let done: Void = bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) {
      return done
    }
    let copy = Array(bytes)
    copy.withUnsafeBytes { update($0) }
  }

  /// The checksum of everything fed so far.
  public var value: UInt32 { state ^ 0xFFFF_FFFF }

  /// The checksum of `bytes`.
  public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    var c = CRC32()
    c.update(bytes)
    return c.value
  }

  /// The checksum of raw memory.
  public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var c = CRC32()
    c.update(bytes)
    return c.value
  }
}

/// Errors from reading or writing project files, each naming the file and what to do.
public struct FileError: Error, CustomStringConvertible, Sendable {
  public let path: String
  public let problem: String
  public init(path: String, problem: String) {
    self.path = path
    self.problem = problem
  }
  public var description: String { "\(path): \(problem)" }
}

/// Writes files so a crash or a full disk never leaves a half-written file under the final
/// name: the data goes to a temporary file in the same directory, is flushed, then renamed.
public enum AtomicFile {
  /// Writes `data` to `url` atomically, creating parent directories as needed.
  public static func write(_ data: Data, to url: URL) throws {
    try write(to: url) { handle in try handle.write(contentsOf: data) }
  }

  /// Calls `body` with a handle to a temporary file, then renames it to `url`.
  public static func write(to url: URL, _ body: (FileHandle) throws -> Void) throws {
    let dir = url.deletingLastPathComponent()
    let fm = FileManager.default
    do {
      try fm.createDirectory(at: dir, withIntermediateDirectories: true)
    } catch {
      throw FileError(
        path: dir.path,
        problem: "cannot create the directory (\(error.localizedDescription)); check the path and permissions")
    }
    let tmp = dir.appendingPathComponent(
      ".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
    )
    // open(2) directly: FileManager.createFile itself writes through a temporary file of its own,
    // which a process killed at that moment would leave behind under another name.
    let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw FileError(
        path: tmp.path, problem: "cannot create a temporary file (errno \(errno)); check that the directory is writable"
      )
    }
    let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
    do {
      do {
        try body(handle)
        guard fsync(fd) == 0 else {
          throw FileError(path: url.path, problem: "cannot flush the file to disk (errno \(errno))")
        }
        close(fd)
      } catch {
        close(fd)
        throw error
      }
      if rename(tmp.path, url.path) != 0 {
        let code = errno
        throw FileError(
          path: url.path, problem: "cannot move the finished file into place (errno \(code))")
      }
    } catch {
      try? fm.removeItem(at: tmp)
      if let e = error as? FileError { throw e }
      throw FileError(path: url.path, problem: "\(Self.reason(error)); the previous file, if any, is unchanged")
    }
  }
}

extension AtomicFile {
  /// A failed write in words a user can act on: a full disk, a file-size limit, permissions.
  static func reason(_ error: Error) -> String {
    let ns = error as NSError
    let posix = (ns.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap {
      $0.domain == NSPOSIXErrorDomain ? $0.code : nil
    }
    let code = ns.domain == NSPOSIXErrorDomain ? ns.code : posix
    switch code.map(Int32.init) {
    case ENOSPC?, EDQUOT?: return "the disk is full (or the quota is spent); free some space and retry"
    case EFBIG?: return "the file would exceed the file-size limit (ulimit -f); raise it and retry"
    case EACCES?, EPERM?, EROFS?: return "no permission to write here; check the folder's permissions"
    default:
      if ns.domain == NSCocoaErrorDomain && ns.code == NSFileWriteOutOfSpaceError {
        return "the disk is full (or the quota is spent); free some space and retry"
      }
      return "write failed (\(error.localizedDescription))"
    }
  }
}

/// Little-endian binary encoding into a byte array.
public struct BinaryWriter: Sendable {
  public private(set) var bytes: [UInt8] = []
  public init() {}
  public mutating func write<T: FixedWidthInteger>(_ v: T) {
    withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
  }
  public mutating func write(_ v: Float) { write(v.bitPattern) }
  public mutating func write(_ v: Double) { write(v.bitPattern) }
  public mutating func write(_ v: Bool) { write(UInt8(v ? 1 : 0)) }
  public mutating func write(bytes b: some Collection<UInt8>) { bytes.append(contentsOf: b) }
  public mutating func write(string s: String) {
    let u = Array(s.utf8)
    write(UInt32(u.count))
    bytes.append(contentsOf: u)
  }
  /// Appends `values` as raw little-endian Float32.
  public mutating func write(floats values: UnsafeBufferPointer<Float>) {
    #if _endian(little)
      bytes.append(contentsOf: UnsafeRawBufferPointer(values))
    #else
      for v in values { write(v) }
    #endif
  }
}

/// Little-endian binary decoding with bounds checks that throw instead of trapping.
public struct BinaryReader {
  public let bytes: [UInt8]
  public private(set) var offset: Int = 0
  let source: String

  /// A reader over `bytes`; `source` names the file in errors.
  public init(_ bytes: [UInt8], source: String) {
    self.bytes = bytes
    self.source = source
  }

  public var remaining: Int { bytes.count - offset }

  mutating func need(_ n: Int, _ what: String) throws {
    guard n >= 0, offset + n <= bytes.count else {
      throw FileError(
        path: source,
        problem: "truncated: needed \(n) bytes for \(what) at offset \(offset), only \(bytes.count - offset) left")
    }
  }

  public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String = "a field") throws -> T {
    try need(MemoryLayout<T>.size, what)
    var v: T = 0
    withUnsafeMutableBytes(of: &v) { dst in
      for i in 0..<MemoryLayout<T>.size { dst[i] = bytes[offset + i] }
    }
    offset += MemoryLayout<T>.size
    return T(littleEndian: v)
  }
  public mutating func readFloat(_ what: String = "a float") throws -> Float {
    Float(bitPattern: try read(UInt32.self, what))
  }
  public mutating func readDouble(_ what: String = "a double") throws -> Double {
    Double(bitPattern: try read(UInt64.self, what))
  }
  public mutating func readBool(_ what: String = "a flag") throws -> Bool {
    try read(UInt8.self, what) != 0
  }
  public mutating func readBytes(_ n: Int, _ what: String = "bytes") throws -> ArraySlice<UInt8> {
    try need(n, what)
    defer { offset += n }
    return bytes[offset..<(offset + n)]
  }
  public mutating func readString(_ what: String = "a string") throws -> String {
    let n = Int(try read(UInt32.self, what))
    let b = try readBytes(n, what)
    guard let s = String(bytes: b, encoding: .utf8) else {
      throw FileError(path: source, problem: "\(what) is not valid UTF-8 at offset \(offset - n)")
    }
    return s
  }
  public mutating func readFloats(_ n: Int, _ what: String = "float data") throws -> [Float] {
    try need(n * 4, what)
    var out = [Float](repeating: 0, count: n)
    out.withUnsafeMutableBytes { dst in
      bytes.withUnsafeBytes { src in
        dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + n * 4)]))
      }
    }
    #if !_endian(little)
      for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
    #endif
    offset += n * 4
    return out
  }
}

/// Durability helpers for the atomic-save pattern (write temporary files, flush, rename, flush
/// the directory), and an advisory lock that keeps two processes from saving into one folder.
public enum FileSystem {
  /// Flushes a directory's entries (new names from `rename`) to stable storage. Call it after
  /// renaming files into `directory` and before anything that relies on them being there.
  public static func synchronizeDirectory(_ directory: URL) throws {
    let fd = open(directory.path, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else {
      throw FileError(path: directory.path, problem: "cannot open the directory to flush it (errno \(errno))")
    }
    defer { close(fd) }
    guard fsync(fd) == 0 else {
      throw FileError(path: directory.path, problem: "cannot flush the directory to disk (errno \(errno))")
    }
  }

  /// True for the temporary files ``AtomicFile`` creates (`.<name>.tmp-<pid>-<random>`), which a
  /// process killed mid-write leaves behind.
  /// Also true for Foundation's own temporary files (`.dat.nosync*`).
  public static func isTemporaryFile(_ name: String) -> Bool {
    name.hasPrefix(".") && (name.contains(".tmp-") || name.hasPrefix(".dat.nosync"))
  }
}

/// An advisory lock (`flock`) on `<directory>/.lock`, released on `unlock()`, on deinit, and by
/// the kernel when the process dies, so a killed writer never leaves the folder locked.
///
/// ```swift
/// let lock = try DirectoryLock(directory, exclusive: true)   // waits for other holders
/// defer { lock.unlock() }
/// ```
public final class DirectoryLock {
  private var fd: Int32

  /// Locks `directory` (which must exist). A shared lock admits other shared holders; an
  /// exclusive one waits for every other holder, or when `wait` is false throws once the folder
  /// has stayed busy for `patience` seconds (0: at once).
  public init(_ directory: URL, exclusive: Bool, wait: Bool = true, patience: Double = 0) throws {
    let path = directory.appendingPathComponent(".lock").path
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw FileError(
        path: path, problem: "cannot create the lock file (errno \(errno)); check that the folder is writable")
    }
    var operation = exclusive ? LOCK_EX : LOCK_SH
    if !wait { operation |= LOCK_NB }
    // A holder that just released the lock can still hold it for a moment through a child
    // this process forked before it did (the child keeps the descriptor until it execs): a
    // caller that expects no other holder gives some patience.
    var retries = wait ? 0 : Int((patience / 0.05).rounded(.up))
    while flock(fd, operation) != 0 {
      let code = errno
      if code == EINTR { continue }
      if code == EWOULDBLOCK && retries > 0 {
        retries -= 1
        usleep(50_000)
        continue
      }
      let holder = Self.recordedHolder(fd)
      close(fd)
      fd = -1
      throw FileError(
        path: directory.path,
        problem: code == EWOULDBLOCK
          ? "another process\(holder.map { " (pid \($0))" } ?? "") is using this folder; wait for it to finish or stop it"
          : "cannot lock the folder (errno \(code))")
    }
  }

  /// Writes this process's id into the lock file, for the message another process gets when it
  /// cannot take the lock. (Not done on taking the lock: a command that then fails leaves the
  /// folder as it found it.)
  public func recordHolder() {
    guard fd >= 0 else { return }
    let text = Array("\(getpid())\n".utf8)
    _ = ftruncate(fd, 0)
    _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
  }

  /// The process id the holder wrote into the lock file, if any.
  static func recordedHolder(_ fd: Int32) -> Int32? {
    var buffer = [UInt8](repeating: 0, count: 32)
    let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
    guard n > 0 else { return nil }
    return Int32(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// Releases the lock (idempotent).
  public func unlock() {
    if fd >= 0 {
      close(fd)
      fd = -1
    }
  }

  deinit { unlock() }
}
