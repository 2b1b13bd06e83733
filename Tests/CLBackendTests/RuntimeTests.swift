@testable import CLBackend
import Foundation
import XCTest

/// The OpenCL runtime wrapper: device selection, profiles, typed errors, allocation limits and
/// the program-binary cache.
final class RuntimeTests: XCTestCase {
    private func firstDevice() throws -> DeviceEntry {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        return entry
    }

    func testDeviceSelectionParsing() throws {
        XCTAssertEqual(try DeviceSelection(parsing: "auto"), .auto)
        XCTAssertEqual(try DeviceSelection(parsing: "opencl:3"), .opencl(3))
        XCTAssertEqual(try DeviceSelection(parsing: "Reference"), .reference)
        XCTAssertThrowsError(try DeviceSelection(parsing: "cuda:0"))
        XCTAssertThrowsError(try DeviceSelection(parsing: "opencl:-1"))
        XCTAssertEqual(try DeviceSelection.resolve(nil, environment: ["LOUPE_DEVICE": "reference"]), .reference)
        XCTAssertEqual(try DeviceSelection.resolve("opencl:1", environment: ["LOUPE_DEVICE": "reference"]), .opencl(1))
        XCTAssertEqual(try DeviceSelection.resolve(nil, environment: [:]), .auto)
        XCTAssertEqual(try makeBackend(.reference).backend.name, "reference")
    }

    func testMissingDeviceIsAClearError() throws {
        let count = try enumerateDevices().count
        XCTAssertThrowsError(try makeBackend(.opencl(count))) { error in
            XCTAssertTrue("\(error)".contains("no OpenCL device \(count)"), "\(error)")
        }
    }

    func testProfileIsPlausible() throws {
        let p = try firstDevice().profile
        XCTAssertGreaterThan(p.computeUnits, 0)
        XCTAssertGreaterThan(p.maxAllocationBytes, 0)
        XCTAssertLessThanOrEqual(p.maxAllocationBytes, p.globalMemoryBytes)
        XCTAssertGreaterThan(p.maxWorkGroupSize, 0)
        let backend = try OpenCLBackend(device: firstDevice())
        XCTAssertGreaterThan(backend.profile.preferredWorkGroupMultiple, 0)
    }

    func testAllocationBeyondTheDeviceLimitIsRefused() throws {
        let backend = try OpenCLBackend(device: firstDevice())
        let limit = backend.profile.maxAllocationBytes
        let elements = limit / 4 + 1
        XCTAssertThrowsError(try backend.makeTensor([elements], dtype: .float32)) { error in
            guard let e = error as? AllocationError else { return XCTFail("expected AllocationError, got \(error)") }
            XCTAssertEqual(e.limitBytes, limit)
            XCTAssertTrue(e.description.contains("CL_DEVICE_MAX_MEM_ALLOC_SIZE"), e.description)
        }
    }

    func testErrorsNameTheStatusAndTheCall() throws {
        let e = CLError(status: -5, call: "clEnqueueNDRangeKernel(conv2d_fwd)")
        XCTAssertEqual(e.statusName, "CL_OUT_OF_RESOURCES")
        XCTAssertEqual(e, .outOfResources)
        XCTAssertTrue(e.description.contains("CL_OUT_OF_RESOURCES") && e.description.contains("conv2d_fwd"))
        XCTAssertEqual(CLError(status: -4, call: "").statusName, "CL_MEM_OBJECT_ALLOCATION_FAILURE")
    }

    func testBuildFailureCarriesTheBuildLog() throws {
        let backend = try OpenCLBackend(device: firstDevice())
        XCTAssertThrowsError(try CL.buildProgram(backend.context, backend.device, source: "__kernel void broken(__global float* x) { x[0] = undefined_name; }",
                                                 binary: nil, options: "")) { error in
            guard let e = error as? CLError else { return XCTFail("expected CLError, got \(error)") }
            XCTAssertEqual(e, .buildProgramFailure)
            XCTAssertTrue(e.buildLog?.contains("undefined_name") ?? false, "build log: \(e.buildLog ?? "none")")
        }
    }

    func testProgramCacheMissThenHitThenDisabled() throws {
        let entry = try firstDevice()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-cache-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = ProgramCache(environment: [ProgramCache.locationVariable: dir.path])
        let cold = try OpenCLBackend(device: entry, cache: cache)
        XCTAssertFalse(cold.buildReport.cacheHit)
        let warm = try OpenCLBackend(device: entry, cache: cache)
        XCTAssertTrue(warm.buildReport.cacheHit, "second build did not load the cached binary")
        // Other build options (another tiling) are another key.
        let other = try OpenCLBackend(device: entry, tiling: .gpu, cache: cache)
        XCTAssertFalse(other.buildReport.cacheHit)
        // The cached binary computes the same thing as the compiled one.
        let x = randomValues(2 * 3 * 9 * 8), w = randomValues(4 * 3 * 3 * 3)
        let op = Conv2D(window: Window2D(kernel: 3, padding: 1))
        let results = try [cold, warm].map { be in
            try be.read(be.conv2d(be.tensor(x, shape: [2, 3, 9, 8]), weight: be.tensor(w, shape: [4, 3, 3, 3]), op))
        }
        XCTAssertEqual(results[0], results[1])
        let off = ProgramCache(environment: [ProgramCache.locationVariable: dir.path, ProgramCache.disableVariable: "1"])
        XCTAssertNil(off.directory)
        XCTAssertFalse(try OpenCLBackend(device: entry, cache: off).buildReport.cacheHit)
    }

    func testCorruptCacheEntryIsIgnored() throws {
        let entry = try firstDevice()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-cache-corrupt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = ProgramCache(environment: [ProgramCache.locationVariable: dir.path])
        let first = try OpenCLBackend(device: entry, cache: cache)
        let file = try XCTUnwrap(first.buildReport.cacheFile)
        // Keep the key line (so the entry is found) and replace the binary with garbage.
        let stored = try Data(contentsOf: URL(fileURLWithPath: file))
        let keyLine = stored.prefix(through: try XCTUnwrap(stored.firstIndex(of: 0x0A)))
        try (keyLine + Data("not a program binary".utf8)).write(to: URL(fileURLWithPath: file))
        let second = try OpenCLBackend(device: entry, cache: cache)
        XCTAssertFalse(second.buildReport.cacheHit)
    }

    func testRepeatedRunsAreBitIdentical() throws {
        let backend = try OpenCLBackend(device: firstDevice())
        let op = Conv2D(window: Window2D(kernel: 3, stride: 2, padding: 1))
        let x = try backend.tensor(randomValues(2 * 8 * 15 * 13), shape: [2, 8, 15, 13])
        let dy = try backend.tensor(randomValues(2 * 6 * 8 * 7), shape: [2, 6, 8, 7])
        let a = try backend.read(backend.conv2dBackwardFilter(x, outputGrad: dy, weightShape: [6, 8, 3, 3], op))
        let b = try backend.read(backend.conv2dBackwardFilter(x, outputGrad: dy, weightShape: [6, 8, 3, 3], op))
        XCTAssertEqual(a, b, "backward-filter is not deterministic")
    }

    func testTensorsFromAnotherBackendAreRefused() throws {
        let backend = try OpenCLBackend(device: firstDevice())
        let foreign = try ReferenceBackend().tensor([1, 2, 3], shape: [3])
        XCTAssertThrowsError(try backend.read(foreign))
    }
}

/// The device-memory ledger: pooled reuse, peak tracking and the budget.
final class DeviceMemoryTests: XCTestCase {
    func testBuffersAreReusedAndTheBudgetIsEnforced() throws {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        let backend = try OpenCLBackend(device: entry)
        XCTAssertEqual(backend.memoryInUseBytes, 0)
        do {
            let a = try backend.full([1024], value: 1)
            XCTAssertEqual(backend.memoryInUseBytes, 4096)
            XCTAssertEqual(try backend.read(a).first, 1)
        }
        XCTAssertEqual(backend.memoryInUseBytes, 0, "a dropped tensor still counts as in use")
        let peak = backend.peakMemoryBytes
        let b = try backend.full([1024], value: 2)   // the pooled buffer comes back: no new allocation
        XCTAssertEqual(backend.peakMemoryBytes, peak)
        XCTAssertEqual(try backend.read(b), Array(repeating: 2, count: 1024))
        backend.memoryBudgetBytes = 16 * 1024
        XCTAssertThrowsError(try backend.makeTensor([8192], dtype: .float32)) { error in
            XCTAssertTrue(error is DeviceMemoryError, "\(error)")
            XCTAssertTrue(isOutOfDeviceMemory(error))
            XCTAssertTrue("\(error)".contains("out of device memory"), "\(error)")
        }
        XCTAssertNoThrow(try backend.makeTensor([2048], dtype: .float32))
    }
}
