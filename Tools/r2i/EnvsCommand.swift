import ArgumentParser
import Envs

/// Lists the registered environments with their spaces.
struct EnvsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "envs", abstract: "List the environments and their spaces.")

  func run() throws {
    let width = (EnvRegistry.names.map(\.count).max() ?? 0) + 2
    for name in EnvRegistry.names {
      if PythonEnvironment.handles(name) {
        print("\(name.padding(toLength: width, withPad: " ", startingAt: 0)) a Python package's, in a worker process")
        continue
      }
      let concrete = name.replacingOccurrences(of: "<L>", with: "30").replacingOccurrences(
        of: "<mapping seed>", with: "0")
      let e = try EnvRegistry.make(concrete)
      print(
        "\(name.padding(toLength: width, withPad: " ", startingAt: 0)) obs \(e.observationSpace)  action \(e.actionSpace)"
      )
    }
  }
}
