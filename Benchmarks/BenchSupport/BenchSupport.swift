// What every benchmark's command line shares: options and flags taken out of the arguments, a
// one-line error and exit, and the OpenCL device to measure.
import CLBackend
import Foundation

/// A benchmark's arguments; each `option` / `flag` removes what it reads, `finish` rejects the rest.
public struct BenchArguments {
    public let tool: String
    public private(set) var remaining: [String]

    public init(tool: String, _ arguments: [String] = Array(CommandLine.arguments.dropFirst())) {
        self.tool = tool
        remaining = arguments
    }

    /// Prints `tool: message` on stderr and exits with status 2.
    public func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("\(tool): \(message)\n".utf8))
        exit(2)
    }

    /// The value after `name`, or nil when `name` is absent.
    public mutating func option(_ name: String) -> String? {
        guard let i = remaining.firstIndex(of: name) else { return nil }
        guard i + 1 < remaining.count else { fail("\(name) needs a value") }
        let v = remaining[i + 1]
        remaining.removeSubrange(i...(i + 1))
        return v
    }

    /// The integer after `name` (`fallback` when absent); it must be at least `minimum`.
    public mutating func integer(_ name: String, _ fallback: Int, minimum: Int = 1) -> Int {
        guard let text = option(name) else { return fallback }
        guard let v = Int(text), v >= minimum else { fail("\(name) must be an integer of at least \(minimum), got '\(text)'") }
        return v
    }

    /// Whether `name` was given.
    public mutating func flag(_ name: String) -> Bool {
        let found = remaining.contains(name)
        remaining.removeAll { $0 == name }
        return found
    }

    /// Fails on any argument no option or flag took.
    public func finish(usage: String) {
        if !remaining.isEmpty { fail("unknown arguments \(remaining); usage: \(usage)") }
    }

    /// The OpenCL device `--device` names (`opencl:N`, or `auto`: the first GPU, else the first device).
    public func device(_ flag: String?) -> DeviceEntry {
        do {
            let devices = try enumerateDevices()
            switch try DeviceSelection.resolve(flag) {
            case .reference: fail("the benchmark measures an OpenCL device; choose one with --device opencl:N")
            case .opencl(let n):
                guard n < devices.count else { fail("no OpenCL device \(n) (\(devices.count) found)") }
                return devices[n]
            case .auto:
                guard let e = devices.first(where: { $0.profile.kind == .gpu }) ?? devices.first else { fail("no OpenCL device found") }
                return e
            }
        } catch { fail("\(error)") }
    }

    /// A backend on `device(flag)`.
    public func backend(_ flag: String?) -> OpenCLBackend {
        do { return try OpenCLBackend(device: device(flag)) } catch { fail("\(error)") }
    }
}
