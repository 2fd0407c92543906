import Foundation

/// Questions tests ask about other processes (Linux `/proc`).
public enum ProcessProbe {
  /// Whether process `pid` has ended: it no longer exists, or it is a zombie waiting to be reaped
  /// (which has stopped running all the same).
  public static func isGone(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return true }
    return stat[stat.index(close, offsetBy: 2)] == "Z"
  }

  /// The processes whose parent is `pid`.
  public static func children(of pid: pid_t) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> pid_t? in
      guard let child = pid_t(entry),
        let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
      else { return nil }
      let fields = stat[stat.index(after: close)...].split(separator: " ")
      return fields.count > 2 && pid_t(fields[1]) == pid ? child : nil
    }
  }

  /// Polls `condition` every 50 ms until it holds (true) or `seconds` have passed (false).
  public static func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if condition() { return true }
      usleep(50_000)
    }
    return condition()
  }
}
