import COpenCL
import Foundation

/// A device buffer. Goes back to the backend's pool when the last tensor viewing it goes away.
final class CLStorage: TensorStorage {
    let mem: cl_mem
    let byteCount: Int
    private let memory: DeviceMemory
    init(mem: cl_mem, byteCount: Int, memory: DeviceMemory) { self.mem = mem; self.byteCount = byteCount; self.memory = memory }
    deinit { memory.recycle(mem, bytes: byteCount) }
}

/// An argument to a kernel launch, in the kernel's parameter order.
enum KernelArg {
    case tensor(Tensor)
    case int(Int)
    case float(Float)
    /// `__local float*` scratch of this many floats.
    case localFloats(Int)
}

/// A kernel and the global size it was launched over, as `OpenCLBackend.kernelProfile` keys them.
public struct KernelProfileKey: Hashable, Sendable {
    public let name: String
    public let global: [Int]
}

/// The OpenCL backend: one device, one context, one in-order queue, one program holding every
/// kernel of `Sources/Kernels.cl` built with this device's tiling macros.
///
/// Kernel launches only enqueue; `read`, `readInts` and `synchronize` are the only calls that wait.
public final class OpenCLBackend: Backend {
    public let profile: DeviceProfile
    public let deviceIndex: Int
    public let convTiling: ConvTiling
    public let buildReport: ProgramBuildReport
    /// Picks the convolution variant per shape and direction (see `ConvTuner`).
    public let convTuner: ConvTuner
    public var poisonsNewTensors = false
    /// How many times the host has read device memory (`read`/`readInts`): iterative methods are
    /// tested to read only when asked.
    public private(set) var hostReads = 0
    /// Kernels enqueued so far, by name (tests check which kernels a path runs, e.g. that a fused
    /// conv + ReLU runs no separate ReLU).
    public private(set) var launchCounts: [String: Int] = [:]
    /// When set, every launch waits for its kernel and adds the wall time to `kernelProfile`
    /// (benchmarks use this to see where a step's time goes; it serializes the queue).
    public var profilesKernels = false
    /// Seconds and launches per kernel name and global size, while `profilesKernels` is on.
    public private(set) var kernelProfile: [KernelProfileKey: (launches: Int, seconds: Double)] = [:]
    public func resetKernelProfile() { kernelProfile = [:] }

    /// Device memory in use by live tensors (pooled buffers excluded).
    public var memoryInUseBytes: Int { memory.inUseBytes }
    /// The most device memory held at once (in use plus pooled) since the backend started or `resetPeakMemory`.
    public var peakMemoryBytes: Int { memory.peakBytes }
    /// Allocations beyond this (in use plus pooled) fail with `DeviceMemoryError`; defaults to the
    /// device's global memory. Lower it to leave room for other programs.
    public var memoryBudgetBytes: Int {
        get { memory.budgetBytes }
        set { memory.budgetBytes = newValue }
    }
    public func resetPeakMemory() { memory.resetPeak() }
    /// Hands pooled buffers back to the driver.
    public func releaseCachedBuffers() { memory.releasePool() }

    private let memory: DeviceMemory
    let device: cl_device_id
    let context: cl_context
    let queue: cl_command_queue
    let program: cl_program
    private var kernels: [String: cl_kernel] = [:]
    /// The tensors `holdingConstant` takes as constant, by storage, and what was derived from each
    /// (packed and Winograd-transformed weights), by the derivation's name.
    private var constantTensors: [ObjectIdentifier: Tensor] = [:]
    private var derived: [ObjectIdentifier: [String: Tensor]] = [:]
    /// How many derived weights were made, and how many calls reused one (tests check the reuse).
    public private(set) var derivedWeightsMade = 0, derivedWeightsReused = 0

    public func holdingConstant<T>(_ tensors: [Tensor], _ body: () throws -> T) throws -> T {
        let before = constantTensors
        for t in tensors { constantTensors[ObjectIdentifier(t.storage)] = t }
        defer {
            // The enclosing region keeps its own tensors and everything derived from them, also
            // in turn (a folded weight's packing), and drops the rest.
            var kept = before, grew = !before.isEmpty
            while grew {
                grew = false
                for (id, entries) in derived where kept[id] != nil {
                    for t in entries.values where kept[ObjectIdentifier(t.storage)] == nil {
                        kept[ObjectIdentifier(t.storage)] = t
                        grew = true
                    }
                }
            }
            constantTensors = kept
            derived = derived.filter { kept[$0.key] != nil }
        }
        return try body()
    }

    /// Forgets everything derived (a held tensor was written): what was derived from it may have
    /// been derived from in turn (a folded weight's packing), or combined with others.
    private func dropDerived() {
        for entries in derived.values {
            for t in entries.values { constantTensors[ObjectIdentifier(t.storage)] = nil }
        }
        derived = [:]
    }

    /// Whether `tensor` is held constant by `holdingConstant`.
    public func isHeld(_ tensor: Tensor) -> Bool { constantTensors[ObjectIdentifier(tensor.storage)] != nil }

    /// `make(weight)`, kept while `weight` is held constant (see `holdingConstant`). `name` must
    /// name everything besides the weight's storage that the result depends on.
    func derivedWeight(_ weight: Tensor, _ name: String, _ make: () throws -> Tensor) throws -> Tensor {
        try derived(from: [weight], name, make)
    }

    public func derived(from sources: [Tensor], _ name: String, _ make: () throws -> Tensor) throws -> Tensor {
        guard let first = sources.first, sources.allSatisfy(isHeld) else { return try make() }
        let id = ObjectIdentifier(first.storage)
        let key = "\(name) \(first.shape)" + sources.dropFirst().map { " \(ObjectIdentifier($0.storage).hashValue)" }.joined()
        if let t = derived[id]?[key] {
            derivedWeightsReused += 1
            return t
        }
        let t = try make()
        derived[id, default: [:]][key] = t
        // Held too, so what is derived from it in turn (a phased weight's packing) is kept as well.
        constantTensors[ObjectIdentifier(t.storage)] = t
        derivedWeightsMade += 1
        return t
    }

    /// Constant tables (twiddle factors, spectrum scales) by name, uploaded once.
    private var constants: [String: Tensor] = [:]

    /// The named constant table, made by `values` on first use and kept on the device.
    func constant(_ name: String, _ values: () -> [Float]) throws -> Tensor {
        if let t = constants[name] { return t }
        let v = values()
        let t = try makeTensor([v.count], dtype: .float32)
        try write(v, to: t)
        constants[name] = t
        return t
    }

    public var name: String { "opencl:\(deviceIndex) (\(profile.name))" }

    /// - Parameter tiling: overrides the tiling chosen from the device profile (tests use this to
    ///   exercise the GPU tile set on a CPU device).
    public init(device entry: DeviceEntry, tiling: ConvTiling? = nil, cache: ProgramCache = ProgramCache()) throws {
        device = entry.device
        deviceIndex = entry.index
        memory = DeviceMemory(budgetBytes: entry.profile.globalMemoryBytes)
        var profile = entry.profile
        context = try CL.createContext(entry.device)
        do {
            queue = try CL.createQueue(context, entry.device)
        } catch {
            CL.releaseContext(context)
            throw error
        }
        let tiling = tiling ?? ConvTiling.choose(for: profile)
        convTiling = tiling
        let options = "-cl-std=CL1.2 -cl-mad-enable " + tiling.buildOptions
        let key = ProgramCache.key(profile: profile, options: options, source: kernelSource)
        let start = Date()
        var built: cl_program?
        var hit = false
        if let binary = cache.load(key: key), let p = try? CL.buildProgram(context, entry.device, source: nil, binary: binary, options: options) {
            built = p
            hit = true
        }
        do {
            if built == nil {
                built = try CL.buildProgram(context, entry.device, source: kernelSource, binary: nil, options: options)
                if let binary = try? CL.programBinary(built!) { cache.store(key: key, binary: binary) }
            }
        } catch {
            CL.releaseQueue(queue)
            CL.releaseContext(context)
            throw error
        }
        program = built!
        convTuner = ConvTuner(cache: cache, deviceKey: key, wideVectors: !profile.hasDedicatedLocalMemory,
                              maxWorkGroupSize: profile.maxWorkGroupSize)
        buildReport = ProgramBuildReport(cacheHit: hit, seconds: Date().timeIntervalSince(start), cacheFile: cache.fileURL(forKey: key)?.path)
        if profile.preferredWorkGroupMultiple == 0 {
            profile.preferredWorkGroupMultiple = (try? CL.preferredMultiple(CL.createKernel(program, "fill_f32"), entry.device)) ?? 1
        }
        self.profile = profile
    }

    deinit {
        for k in kernels.values { CL.releaseKernel(k) }
        CL.releaseProgram(program)
        CL.releaseQueue(queue)
        CL.releaseContext(context)
    }

    // MARK: Memory

    public func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        let bytes = shape.count * 4
        guard bytes <= profile.maxAllocationBytes else {
            throw AllocationError(requestedBytes: bytes, limitBytes: profile.maxAllocationBytes, device: name)
        }
        let mem = try memory.acquire(bytes: bytes, context: context, device: name)
        let t = Tensor(shape: shape, dtype: dtype, storage: CLStorage(mem: mem, byteCount: bytes, memory: memory))
        if poisonsNewTensors {
            try launch("fill_f32", global: [t.count], .tensor(t), .float(dtype == .float32 ? .nan : Float(bitPattern: UInt32(bitPattern: Int32.min))), .int(t.count))
        }
        return t
    }

    func buffer(_ t: Tensor, _ role: String = "tensor") throws -> cl_mem {
        guard let s = t.storage as? CLStorage else {
            throw ShapeError("\(name): \(role) \(t) lives on another backend; move it with read/write first")
        }
        return s.mem
    }

    public func write(_ values: [Float], to tensor: Tensor) throws { try upload(values, to: tensor, as: .float32) }

    public func write(_ values: [Int32], to tensor: Tensor) throws { try upload(values, to: tensor, as: .int32) }

    public func read(_ tensor: Tensor) throws -> [Float] { try download(tensor, as: .float32, zero: Float(0)) }

    public func readInts(_ tensor: Tensor) throws -> [Int32] { try download(tensor, as: .int32, zero: Int32(0)) }

    /// Blocking copy of host values into a tensor of the matching dtype.
    private func upload<T>(_ values: [T], to tensor: Tensor, as dtype: DType) throws {
        guard values.count == tensor.count, tensor.dtype == dtype else {
            throw ShapeError("write: \(values.count) \(dtype) values into \(tensor)")
        }
        if isHeld(tensor) { dropDerived() }
        try values.withUnsafeBytes { try CL.write(queue, buffer(tensor), $0.baseAddress!, bytes: $0.count) }
    }

    /// Blocking copy of a tensor to the host; counted in `hostReads`.
    private func download<T>(_ tensor: Tensor, as dtype: DType, zero: T) throws -> [T] {
        guard tensor.dtype == dtype else { throw ShapeError("read: \(tensor) is not \(dtype); use \(dtype == .float32 ? "readInts" : "read")") }
        hostReads += 1
        var out = [T](repeating: zero, count: tensor.count)
        try out.withUnsafeMutableBytes { try CL.read(queue, buffer(tensor), $0.baseAddress!, bytes: $0.count) }
        return out
    }

    public func synchronize() throws { try CL.finish(queue) }

    // MARK: Dispatch

    private func kernel(_ name: String) throws -> cl_kernel {
        if let k = kernels[name] { return k }
        let k = try CL.createKernel(program, name)
        kernels[name] = k
        return k
    }

    /// Enqueues `name` over `global` work-items. With a `local` size, each global dimension is
    /// rounded up to a multiple of it, so kernels guard their own bounds.
    func launch(_ name: String, global: [Int], local: [Int]? = nil, _ args: KernelArg...) throws {
        try launch(name, global: global, local: local, arguments: args)
    }

    func launch(_ name: String, global: [Int], local: [Int]?, arguments args: [KernelArg]) throws {
        guard global.allSatisfy({ $0 > 0 }) else { return }
        let k = try kernel(name)
        launchCounts[name, default: 0] += 1
        for (i, arg) in args.enumerated() {
            switch arg {
            case .tensor(let t):
                var mem: cl_mem? = try buffer(t)
                try CL.setArg(k, i, size: MemoryLayout<cl_mem>.size, &mem, kernel: name)
            case .int(let v):
                guard let v32 = Int32(exactly: v) else { throw ShapeError("\(name): argument \(i) = \(v) does not fit a 32-bit int") }
                var v = v32
                try CL.setArg(k, i, size: 4, &v, kernel: name)
            case .float(let v):
                var v = v
                try CL.setArg(k, i, size: 4, &v, kernel: name)
            case .localFloats(let n):
                try CL.setArg(k, i, size: n * 4, nil, kernel: name)
            }
        }
        let rounded = local.map { l in zip(global, l).map { g, s in (g + s - 1) / s * s } } ?? global
        if profilesKernels {
            try CL.finish(queue)
            let start = DispatchTime.now().uptimeNanoseconds
            try CL.enqueue(queue, k, global: rounded, local: local, kernel: name)
            try CL.finish(queue)
            let key = KernelProfileKey(name: name, global: global)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let old = kernelProfile[key] ?? (0, 0)
            kernelProfile[key] = (old.launches + 1, old.seconds + seconds)
        } else {
            try CL.enqueue(queue, k, global: rounded, local: local, kernel: name)
        }
    }
}
