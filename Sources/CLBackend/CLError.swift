import COpenCL
import Foundation

/// An OpenCL call that failed: its status code, the status's name and the call.
///
/// Named like `Errno` in swift-system: `CLError.outOfResources` etc. compare by status code.
public struct CLError: Error, Hashable, CustomStringConvertible {
    public let status: Int32
    /// The OpenCL function (and what it was doing) that returned `status`.
    public let call: String
    /// The compiler's log when a program build failed.
    public let buildLog: String?

    public init(status: Int32, call: String, buildLog: String? = nil) {
        self.status = status
        self.call = call
        self.buildLog = buildLog
    }

    public static func == (a: CLError, b: CLError) -> Bool { a.status == b.status }
    public func hash(into h: inout Hasher) { h.combine(status) }

    public static let outOfResources = CLError(status: CL_OUT_OF_RESOURCES, call: "")
    public static let outOfHostMemory = CLError(status: CL_OUT_OF_HOST_MEMORY, call: "")
    public static let memObjectAllocationFailure = CLError(status: CL_MEM_OBJECT_ALLOCATION_FAILURE, call: "")
    public static let invalidBufferSize = CLError(status: CL_INVALID_BUFFER_SIZE, call: "")
    public static let buildProgramFailure = CLError(status: CL_BUILD_PROGRAM_FAILURE, call: "")
    public static let deviceNotFound = CLError(status: CL_DEVICE_NOT_FOUND, call: "")
    public static let invalidWorkGroupSize = CLError(status: CL_INVALID_WORK_GROUP_SIZE, call: "")

    /// The `CL_*` name of the status.
    public var statusName: String { Self.names[status] ?? "CL_UNKNOWN_STATUS(\(status))" }

    public var description: String {
        var s = "OpenCL error \(statusName) in \(call)"
        if let log = buildLog, !log.isEmpty { s += "\nbuild log:\n" + log }
        return s
    }

    private static let names: [Int32: String] = [
        CL_DEVICE_NOT_FOUND: "CL_DEVICE_NOT_FOUND", CL_DEVICE_NOT_AVAILABLE: "CL_DEVICE_NOT_AVAILABLE",
        CL_COMPILER_NOT_AVAILABLE: "CL_COMPILER_NOT_AVAILABLE",
        CL_MEM_OBJECT_ALLOCATION_FAILURE: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        CL_OUT_OF_RESOURCES: "CL_OUT_OF_RESOURCES", CL_OUT_OF_HOST_MEMORY: "CL_OUT_OF_HOST_MEMORY",
        CL_PROFILING_INFO_NOT_AVAILABLE: "CL_PROFILING_INFO_NOT_AVAILABLE", CL_MEM_COPY_OVERLAP: "CL_MEM_COPY_OVERLAP",
        CL_BUILD_PROGRAM_FAILURE: "CL_BUILD_PROGRAM_FAILURE", CL_MAP_FAILURE: "CL_MAP_FAILURE",
        CL_MISALIGNED_SUB_BUFFER_OFFSET: "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        CL_COMPILE_PROGRAM_FAILURE: "CL_COMPILE_PROGRAM_FAILURE", CL_LINKER_NOT_AVAILABLE: "CL_LINKER_NOT_AVAILABLE",
        CL_LINK_PROGRAM_FAILURE: "CL_LINK_PROGRAM_FAILURE",
        CL_INVALID_VALUE: "CL_INVALID_VALUE", CL_INVALID_DEVICE_TYPE: "CL_INVALID_DEVICE_TYPE",
        CL_INVALID_PLATFORM: "CL_INVALID_PLATFORM", CL_INVALID_DEVICE: "CL_INVALID_DEVICE",
        CL_INVALID_CONTEXT: "CL_INVALID_CONTEXT", CL_INVALID_QUEUE_PROPERTIES: "CL_INVALID_QUEUE_PROPERTIES",
        CL_INVALID_COMMAND_QUEUE: "CL_INVALID_COMMAND_QUEUE", CL_INVALID_HOST_PTR: "CL_INVALID_HOST_PTR",
        CL_INVALID_MEM_OBJECT: "CL_INVALID_MEM_OBJECT", CL_INVALID_BINARY: "CL_INVALID_BINARY",
        CL_INVALID_BUILD_OPTIONS: "CL_INVALID_BUILD_OPTIONS", CL_INVALID_PROGRAM: "CL_INVALID_PROGRAM",
        CL_INVALID_PROGRAM_EXECUTABLE: "CL_INVALID_PROGRAM_EXECUTABLE", CL_INVALID_KERNEL_NAME: "CL_INVALID_KERNEL_NAME",
        CL_INVALID_KERNEL_DEFINITION: "CL_INVALID_KERNEL_DEFINITION", CL_INVALID_KERNEL: "CL_INVALID_KERNEL",
        CL_INVALID_ARG_INDEX: "CL_INVALID_ARG_INDEX", CL_INVALID_ARG_VALUE: "CL_INVALID_ARG_VALUE",
        CL_INVALID_ARG_SIZE: "CL_INVALID_ARG_SIZE", CL_INVALID_KERNEL_ARGS: "CL_INVALID_KERNEL_ARGS",
        CL_INVALID_WORK_DIMENSION: "CL_INVALID_WORK_DIMENSION", CL_INVALID_WORK_GROUP_SIZE: "CL_INVALID_WORK_GROUP_SIZE",
        CL_INVALID_WORK_ITEM_SIZE: "CL_INVALID_WORK_ITEM_SIZE", CL_INVALID_GLOBAL_OFFSET: "CL_INVALID_GLOBAL_OFFSET",
        CL_INVALID_EVENT_WAIT_LIST: "CL_INVALID_EVENT_WAIT_LIST", CL_INVALID_EVENT: "CL_INVALID_EVENT",
        CL_INVALID_OPERATION: "CL_INVALID_OPERATION", CL_INVALID_BUFFER_SIZE: "CL_INVALID_BUFFER_SIZE",
        CL_INVALID_GLOBAL_WORK_SIZE: "CL_INVALID_GLOBAL_WORK_SIZE", CL_INVALID_PROPERTY: "CL_INVALID_PROPERTY",
        CL_PLATFORM_NOT_FOUND_KHR_VALUE: "CL_PLATFORM_NOT_FOUND_KHR",
    ]
}

/// `CL_PLATFORM_NOT_FOUND_KHR` (from cl_ext.h): what the ICD loader returns when no platform is installed.
let CL_PLATFORM_NOT_FOUND_KHR_VALUE: Int32 = -1001

/// A device-side allocation that cannot be made; names the tensor size and the device's limit.
public struct AllocationError: Error, CustomStringConvertible {
    public let requestedBytes: Int
    public let limitBytes: Int
    public let device: String
    public var description: String {
        "cannot allocate \(formatBytes(requestedBytes)) in one buffer on \(device): its largest allocation (CL_DEVICE_MAX_MEM_ALLOC_SIZE) is \(formatBytes(limitBytes)); use a smaller batch or input"
    }
}

func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n), u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f ", v) + units[u]
}
