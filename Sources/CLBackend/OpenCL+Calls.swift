import COpenCL
import Foundation

// Every raw `cl*` call Loupe makes goes through this file, each behind a throwing wrapper that
// names the call in its `CLError`.

/// A NUL-terminated C string buffer as a Swift string.
func string(_ bytes: [CChar]) -> String {
    String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

@inline(__always) func check(_ status: cl_int, _ call: @autoclosure () -> String) throws {
    if status != CL_SUCCESS { throw CLError(status: status, call: call()) }
}

enum CL {
    /// All platform ids. The corresponding C function is `clGetPlatformIDs`.
    static func platformIDs() throws -> [cl_platform_id] {
        var n: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &n)
        if status == CL_PLATFORM_NOT_FOUND_KHR_VALUE || n == 0 { return [] }
        try check(status, "clGetPlatformIDs")
        var ids = [cl_platform_id?](repeating: nil, count: Int(n))
        try check(clGetPlatformIDs(n, &ids, nil), "clGetPlatformIDs")
        return ids.compactMap { $0 }
    }

    /// All device ids of a platform. The corresponding C function is `clGetDeviceIDs`.
    static func deviceIDs(_ platform: cl_platform_id) throws -> [cl_device_id] {
        var n: cl_uint = 0
        let status = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
        if status == CL_DEVICE_NOT_FOUND || n == 0 { return [] }
        try check(status, "clGetDeviceIDs")
        var ids = [cl_device_id?](repeating: nil, count: Int(n))
        try check(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs")
        return ids.compactMap { $0 }
    }

    /// A string property. The corresponding C function is `clGetPlatformInfo`.
    static func platformString(_ p: cl_platform_id, _ param: Int32) throws -> String {
        var size = 0
        try check(clGetPlatformInfo(p, cl_platform_info(param), 0, nil, &size), "clGetPlatformInfo")
        var bytes = [CChar](repeating: 0, count: size + 1)
        try check(clGetPlatformInfo(p, cl_platform_info(param), size, &bytes, nil), "clGetPlatformInfo")
        return string(bytes).trimmingCharacters(in: .whitespaces)
    }

    /// A string property. The corresponding C function is `clGetDeviceInfo`.
    static func deviceString(_ d: cl_device_id, _ param: Int32) throws -> String {
        var size = 0
        try check(clGetDeviceInfo(d, cl_device_info(param), 0, nil, &size), "clGetDeviceInfo")
        var bytes = [CChar](repeating: 0, count: size + 1)
        try check(clGetDeviceInfo(d, cl_device_info(param), size, &bytes, nil), "clGetDeviceInfo")
        return string(bytes).trimmingCharacters(in: .whitespaces)
    }

    /// A fixed-size property (`cl_ulong`, `cl_uint`, `size_t`, enums). The corresponding C function is `clGetDeviceInfo`.
    static func deviceValue<T: FixedWidthInteger>(_ d: cl_device_id, _ param: Int32, as: T.Type) throws -> T {
        var v: T = 0
        try check(clGetDeviceInfo(d, cl_device_info(param), MemoryLayout<T>.size, &v, nil), "clGetDeviceInfo")
        return v
    }

    /// The corresponding C function is `clCreateContext`.
    static func createContext(_ device: cl_device_id) throws -> cl_context {
        var status: cl_int = 0
        var dev: cl_device_id? = device
        let ctx = clCreateContext(nil, 1, &dev, nil, nil, &status)
        try check(status, "clCreateContext")
        return ctx!
    }

    /// An in-order queue. The corresponding C function is `clCreateCommandQueue`.
    static func createQueue(_ ctx: cl_context, _ device: cl_device_id) throws -> cl_command_queue {
        var status: cl_int = 0
        let q = clCreateCommandQueue(ctx, device, 0, &status)
        try check(status, "clCreateCommandQueue")
        return q!
    }

    /// The corresponding C function is `clCreateBuffer`.
    static func createBuffer(_ ctx: cl_context, bytes: Int) throws -> cl_mem {
        var status: cl_int = 0
        let mem = clCreateBuffer(ctx, cl_mem_flags(CL_MEM_READ_WRITE), max(bytes, 4), nil, &status)
        try check(status, "clCreateBuffer(\(formatBytes(bytes)))")
        return mem!
    }

    // cl_mem, cl_kernel, ... all import as OpaquePointer, so each release has its own name.
    static func releaseBuffer(_ mem: cl_mem) { clReleaseMemObject(mem) }
    static func releaseKernel(_ k: cl_kernel) { clReleaseKernel(k) }
    static func releaseProgram(_ p: cl_program) { clReleaseProgram(p) }
    static func releaseQueue(_ q: cl_command_queue) { clReleaseCommandQueue(q) }
    static func releaseContext(_ c: cl_context) { clReleaseContext(c) }

    /// Blocking write. The corresponding C function is `clEnqueueWriteBuffer`.
    static func write(_ q: cl_command_queue, _ mem: cl_mem, _ ptr: UnsafeRawPointer, bytes: Int) throws {
        try check(clEnqueueWriteBuffer(q, mem, cl_bool(CL_TRUE), 0, bytes, ptr, 0, nil, nil), "clEnqueueWriteBuffer")
    }

    /// Blocking read. The corresponding C function is `clEnqueueReadBuffer`.
    static func read(_ q: cl_command_queue, _ mem: cl_mem, _ ptr: UnsafeMutableRawPointer, bytes: Int) throws {
        try check(clEnqueueReadBuffer(q, mem, cl_bool(CL_TRUE), 0, bytes, ptr, 0, nil, nil), "clEnqueueReadBuffer")
    }

    /// The corresponding C function is `clFinish`.
    static func finish(_ q: cl_command_queue) throws { try check(clFinish(q), "clFinish") }

    /// Builds a program from source, or from a device binary when one is given.
    /// The corresponding C functions are `clCreateProgramWithSource`, `clCreateProgramWithBinary`, `clBuildProgram`.
    static func buildProgram(_ ctx: cl_context, _ device: cl_device_id, source: String?, binary: [UInt8]?,
                             options: String) throws -> cl_program {
        var status: cl_int = 0
        var program: cl_program?
        if let binary {
            var dev: cl_device_id? = device
            var length = binary.count
            var binStatus: cl_int = 0
            program = binary.withUnsafeBufferPointer { buf -> cl_program? in
                var ptr: UnsafePointer<UInt8>? = buf.baseAddress
                return clCreateProgramWithBinary(ctx, 1, &dev, &length, &ptr, &binStatus, &status)
            }
            try check(status, "clCreateProgramWithBinary")
            try check(binStatus, "clCreateProgramWithBinary")
        } else if let source {
            program = source.withCString { cstr -> cl_program? in
                var ptr: UnsafePointer<CChar>? = cstr
                var len = strlen(cstr)
                return clCreateProgramWithSource(ctx, 1, &ptr, &len, &status)
            }
            try check(status, "clCreateProgramWithSource")
        }
        guard let program else { throw CLError(status: CL_INVALID_VALUE, call: "buildProgram: neither source nor binary") }
        var dev: cl_device_id? = device
        let built = clBuildProgram(program, 1, &dev, options, nil, nil)
        if built != CL_SUCCESS {
            let log = (try? buildLog(program, device)) ?? ""
            clReleaseProgram(program)
            throw CLError(status: built, call: "clBuildProgram(\(options))", buildLog: log)
        }
        return program
    }

    /// The corresponding C function is `clGetProgramBuildInfo(CL_PROGRAM_BUILD_LOG)`.
    static func buildLog(_ program: cl_program, _ device: cl_device_id) throws -> String {
        var size = 0
        try check(clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size), "clGetProgramBuildInfo")
        var bytes = [CChar](repeating: 0, count: size + 1)
        try check(clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil), "clGetProgramBuildInfo")
        return string(bytes)
    }

    /// The device binary of a built single-device program. The corresponding C function is `clGetProgramInfo`.
    static func programBinary(_ program: cl_program) throws -> [UInt8] {
        var size = 0
        try check(clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil), "clGetProgramInfo(CL_PROGRAM_BINARY_SIZES)")
        var bytes = [UInt8](repeating: 0, count: size)
        try bytes.withUnsafeMutableBufferPointer { buf in
            var ptr: UnsafeMutablePointer<UInt8>? = buf.baseAddress
            try check(clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &ptr, nil), "clGetProgramInfo(CL_PROGRAM_BINARIES)")
        }
        return bytes
    }

    /// The corresponding C function is `clCreateKernel`.
    static func createKernel(_ program: cl_program, _ name: String) throws -> cl_kernel {
        var status: cl_int = 0
        let k = clCreateKernel(program, name, &status)
        try check(status, "clCreateKernel(\(name))")
        return k!
    }

    /// The corresponding C function is `clSetKernelArg`.
    static func setArg(_ k: cl_kernel, _ index: Int, size: Int, _ value: UnsafeRawPointer?, kernel name: String) throws {
        try check(clSetKernelArg(k, cl_uint(index), size, value), "clSetKernelArg(\(name), arg \(index))")
    }

    /// The corresponding C function is `clEnqueueNDRangeKernel`.
    static func enqueue(_ q: cl_command_queue, _ k: cl_kernel, global: [Int], local: [Int]?, kernel name: String) throws {
        let status = global.withUnsafeBufferPointer { g in
            if let local {
                return local.withUnsafeBufferPointer { l in
                    clEnqueueNDRangeKernel(q, k, cl_uint(global.count), nil, g.baseAddress, l.baseAddress, 0, nil, nil)
                }
            }
            return clEnqueueNDRangeKernel(q, k, cl_uint(global.count), nil, g.baseAddress, nil, 0, nil, nil)
        }
        try check(status, "clEnqueueNDRangeKernel(\(name), global \(global), local \(local.map { "\($0)" } ?? "auto"))")
    }

    /// The per-kernel work-group multiple. The corresponding C function is `clGetKernelWorkGroupInfo`.
    static func preferredMultiple(_ k: cl_kernel, _ device: cl_device_id) throws -> Int {
        var v = 0
        try check(clGetKernelWorkGroupInfo(k, device, cl_kernel_work_group_info(CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE), MemoryLayout<Int>.size, &v, nil), "clGetKernelWorkGroupInfo")
        return v
    }
}
