import COpenCL

/// Device memory of one backend: what is in use, the peak, an optional budget, and a pool of
/// released buffers reused by exact size.
///
/// Reuse is safe on the backend's in-order queue: a buffer handed out again is only written by
/// kernels enqueued after every kernel that used it before.
final class DeviceMemory {
    private(set) var inUseBytes = 0
    private(set) var pooledBytes = 0
    private(set) var peakBytes = 0
    /// Allocations beyond this many bytes (in use plus pooled) fail with `DeviceMemoryError`.
    var budgetBytes: Int
    private var pool: [Int: [cl_mem]] = [:]

    init(budgetBytes: Int) { self.budgetBytes = budgetBytes }

    deinit { releasePool() }

    /// A buffer of exactly `bytes`, from the pool when one is free.
    func acquire(bytes: Int, context: cl_context, device: String) throws -> cl_mem {
        if var free = pool[bytes], let mem = free.popLast() {
            pool[bytes] = free.isEmpty ? nil : free
            pooledBytes -= bytes
            inUseBytes += bytes
            return mem
        }
        if inUseBytes + pooledBytes + bytes > budgetBytes { releasePool() }
        guard inUseBytes + bytes <= budgetBytes else {
            throw DeviceMemoryError(requestedBytes: bytes, inUseBytes: inUseBytes, budgetBytes: budgetBytes, device: device)
        }
        let mem = try CL.createBuffer(context, bytes: bytes)
        inUseBytes += bytes
        peakBytes = max(peakBytes, inUseBytes + pooledBytes)
        return mem
    }

    func recycle(_ mem: cl_mem, bytes: Int) {
        inUseBytes -= bytes
        pool[bytes, default: []].append(mem)
        pooledBytes += bytes
    }

    func releasePool() {
        for mems in pool.values { for m in mems { CL.releaseBuffer(m) } }
        pool = [:]
        pooledBytes = 0
    }

    func resetPeak() { peakBytes = inUseBytes + pooledBytes }
}

/// The device (or its configured budget) has no room for another buffer.
public struct DeviceMemoryError: Error, CustomStringConvertible {
    public let requestedBytes: Int
    public let inUseBytes: Int
    public let budgetBytes: Int
    public let device: String
    public var description: String {
        "out of device memory on \(device): \(formatBytes(requestedBytes)) requested with \(formatBytes(inUseBytes)) in use of \(formatBytes(budgetBytes)); use a smaller batch or input"
    }
}

/// Whether an error means the device ran out of memory (so a smaller batch may fit).
public func isOutOfDeviceMemory(_ error: Error) -> Bool {
    if error is DeviceMemoryError || error is AllocationError { return true }
    if let e = error as? CLError { return [CLError.memObjectAllocationFailure, .outOfResources, .outOfHostMemory, .invalidBufferSize].contains(e) }
    return false
}
