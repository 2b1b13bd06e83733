import COpenCL
import Foundation

/// What kind of processor an OpenCL device is.
public enum DeviceKind: String, Sendable {
    case gpu, cpu, accelerator, other
}

/// The facts about a device that Loupe's kernels branch on, read once when the device is found.
/// Code branches on these features, never on vendor strings.
public struct DeviceProfile: Sendable, CustomStringConvertible {
    public var platformName: String
    public var platformVersion: String
    public var name: String
    public var vendor: String
    public var driverVersion: String
    public var deviceVersion: String
    public var kind: DeviceKind
    public var computeUnits: Int
    public var clockMHz: Int
    /// `CL_DEVICE_MAX_MEM_ALLOC_SIZE`: the largest single buffer.
    public var maxAllocationBytes: Int
    public var globalMemoryBytes: Int
    public var localMemoryBytes: Int
    /// True when local memory is dedicated on-chip memory (`CL_LOCAL`); false when it is emulated
    /// in global memory (`CL_GLOBAL`, as on CPU devices), where staging through it only costs copies.
    public var hasDedicatedLocalMemory: Bool
    public var maxWorkGroupSize: Int
    /// The work-group size multiple the device schedules best (warp/wavefront/SIMD width).
    public var preferredWorkGroupMultiple: Int
    public var preferredFloatVectorWidth: Int
    /// `cl_ext_float_atomics`. Loupe never relies on it: every reduction is a deterministic gather.
    public var hasFloatAtomics: Bool
    public var hasFP16: Bool

    public var description: String {
        """
        \(name) [\(kind.rawValue)] — \(platformName) (\(platformVersion)), driver \(driverVersion)
            compute units \(computeUnits) @ \(clockMHz) MHz, max work-group \(maxWorkGroupSize), preferred multiple \(preferredWorkGroupMultiple), float vector width \(preferredFloatVectorWidth)
            global memory \(formatBytes(globalMemoryBytes)), max allocation \(formatBytes(maxAllocationBytes)), local memory \(formatBytes(localMemoryBytes)) (\(hasDedicatedLocalMemory ? "dedicated" : "emulated in global memory"))
            float atomics \(hasFloatAtomics ? "yes" : "no"), fp16 \(hasFP16 ? "yes" : "no")
        """
    }
}

/// One OpenCL device as enumerated, numbered across all platforms in platform order.
public struct DeviceEntry: @unchecked Sendable {
    public let index: Int
    public let profile: DeviceProfile
    let platform: cl_platform_id
    let device: cl_device_id
}

/// Every OpenCL device on every platform. A platform that fails to answer is skipped, so one
/// broken driver does not hide the others.
public func enumerateDevices() throws -> [DeviceEntry] {
    var entries: [DeviceEntry] = []
    for platform in try CL.platformIDs() {
        guard let devices = try? CL.deviceIDs(platform) else { continue }
        for device in devices {
            guard let profile = try? readProfile(platform, device) else { continue }
            entries.append(DeviceEntry(index: entries.count, profile: profile, platform: platform, device: device))
        }
    }
    return entries
}

private func readProfile(_ platform: cl_platform_id, _ device: cl_device_id) throws -> DeviceProfile {
    let type = try CL.deviceValue(device, CL_DEVICE_TYPE, as: cl_device_type.self)
    let kind: DeviceKind = type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 ? .gpu
        : type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 ? .cpu
        : type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 ? .accelerator : .other
    let extensions = (try? CL.deviceString(device, CL_DEVICE_EXTENSIONS)) ?? ""
    let localType = try CL.deviceValue(device, CL_DEVICE_LOCAL_MEM_TYPE, as: cl_device_local_mem_type.self)
    // CL_DEVICE_PREFERRED_WORK_GROUP_SIZE_MULTIPLE (OpenCL 3.0, 0x1067); older platforms answer
    // per kernel only, so the backend refines it after its program is built.
    let preferred = (try? CL.deviceValue(device, 0x1067, as: Int.self)) ?? 0
    return DeviceProfile(
        platformName: try CL.platformString(platform, CL_PLATFORM_NAME),
        platformVersion: try CL.platformString(platform, CL_PLATFORM_VERSION),
        name: try CL.deviceString(device, CL_DEVICE_NAME),
        vendor: try CL.deviceString(device, CL_DEVICE_VENDOR),
        driverVersion: try CL.deviceString(device, CL_DRIVER_VERSION),
        deviceVersion: try CL.deviceString(device, CL_DEVICE_VERSION),
        kind: kind,
        computeUnits: Int(try CL.deviceValue(device, CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self)),
        clockMHz: Int(try CL.deviceValue(device, CL_DEVICE_MAX_CLOCK_FREQUENCY, as: cl_uint.self)),
        maxAllocationBytes: Int(try CL.deviceValue(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, as: cl_ulong.self)),
        globalMemoryBytes: Int(try CL.deviceValue(device, CL_DEVICE_GLOBAL_MEM_SIZE, as: cl_ulong.self)),
        localMemoryBytes: Int(try CL.deviceValue(device, CL_DEVICE_LOCAL_MEM_SIZE, as: cl_ulong.self)),
        hasDedicatedLocalMemory: localType == cl_device_local_mem_type(CL_LOCAL),
        maxWorkGroupSize: try CL.deviceValue(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, as: Int.self),
        preferredWorkGroupMultiple: preferred,
        preferredFloatVectorWidth: Int(try CL.deviceValue(device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, as: cl_uint.self)),
        hasFloatAtomics: extensions.contains("cl_ext_float_atomics"),
        hasFP16: extensions.contains("cl_khr_fp16"))
}

/// Which backend to run on: `auto` (first GPU, else first OpenCL CPU device, else the reference),
/// `opencl:N` (device N of `loupe devices`), or `reference`.
public enum DeviceSelection: Equatable, Sendable, CustomStringConvertible {
    case auto
    case opencl(Int)
    case reference

    /// The environment variable that chooses a device when no `--device` is given.
    public static let environmentVariable = "LOUPE_DEVICE"

    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch t {
        case "auto", "": self = .auto
        case "reference", "ref", "cpu-reference": self = .reference
        default:
            if t.hasPrefix("opencl:"), let n = Int(t.dropFirst("opencl:".count)), n >= 0 {
                self = .opencl(n)
            } else {
                throw DeviceSelectionError("unknown device '\(text)': use auto, opencl:N or reference (see `loupe devices`)")
            }
        }
    }

    /// `--device` if given, else `LOUPE_DEVICE`, else `auto`.
    public static func resolve(_ flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DeviceSelection {
        if let flag { return try DeviceSelection(parsing: flag) }
        if let env = environment[environmentVariable] { return try DeviceSelection(parsing: env) }
        return .auto
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .opencl(let n): return "opencl:\(n)"
        case .reference: return "reference"
        }
    }
}

public struct DeviceSelectionError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Makes the backend a selection names. `auto` never fails: without a usable OpenCL device it
/// falls back to the reference and says so in `note`.
public func makeBackend(_ selection: DeviceSelection) throws -> (backend: Backend, note: String?) {
    switch selection {
    case .reference:
        return (ReferenceBackend(), nil)
    case .opencl(let n):
        let devices = try enumerateDevices()
        guard n < devices.count else {
            throw DeviceSelectionError("no OpenCL device \(n): \(devices.count) found (see `loupe devices`)")
        }
        return (try OpenCLBackend(device: devices[n]), nil)
    case .auto:
        let devices = (try? enumerateDevices()) ?? []
        let pick = devices.first { $0.profile.kind == .gpu } ?? devices.first { $0.profile.kind == .cpu } ?? devices.first
        guard let pick else { return (ReferenceBackend(), "no OpenCL device found; using the reference backend") }
        do {
            return (try OpenCLBackend(device: pick), nil)
        } catch {
            return (ReferenceBackend(), "opencl:\(pick.index) failed to start (\(error)); using the reference backend")
        }
    }
}
