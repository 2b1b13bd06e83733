import CLBackend
import Foundation
import XCTest

/// The one tolerance check for all conformance tests: asserts `relativeError(actual, expected) <= bound`,
/// records the row in the conformance table, and names the op, direction and shape on failure.
func assertConforms(_ actual: [Float], _ expected: [Float], op: String, direction: String, shape: String,
                    bound: Double, file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(op) \(direction) \(shape): \(actual.count) elements, reference has \(expected.count)", file: file, line: line)
        return
    }
    let err = relativeError(actual, expected)
    ConformanceTable.shared.record(op: op, direction: direction, shape: shape, error: err, bound: bound)
    XCTAssertTrue(err <= bound, "\(op) \(direction) \(shape): relative error \(err) exceeds \(bound)", file: file, line: line)
}

/// Standard bound for float32 kernels against the Float64-accumulated reference: a reduction of
/// `terms` products in float32 has a relative error growing like sqrt(terms) * 2^-24 for random
/// signs; 1e-5 covers the longest reductions in these tests (a few thousand terms) with margin,
/// and still fails any indexing mistake (which gives errors of order 1).
let float32Bound = 1e-5

/// Fresh random values in `-scale...scale` (a new draw every run, as the project's tests require).
func randomValues(_ count: Int, scale: Float = 1) -> [Float] {
    (0..<count).map { _ in Float.random(in: -scale...scale) }
}

/// Asserts that `body` is rejected with a `ShapeError` (an invalid shape or parameter caught by the
/// public op API before any kernel runs).
func assertRejects(_ what: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
    } catch is ShapeError {
        return
    } catch {
        XCTFail("\(what): threw \(error), expected a ShapeError", file: file, line: line)
        return
    }
    XCTFail("\(what): accepted, expected a ShapeError", file: file, line: line)
}

/// Both backends for a conformance comparison, with poisoned new tensors; skips when the machine
/// has no OpenCL device (the reference alone cannot be compared with anything).
final class Backends {
    let reference = ReferenceBackend()
    let opencl: OpenCLBackend

    init(tiling: ConvTiling? = nil) throws {
        let devices = try enumerateDevices()
        // LOUPE_TEST_DEVICE=opencl:N picks another device (e.g. a GPU) for the whole suite.
        let preferred = ProcessInfo.processInfo.environment["LOUPE_TEST_DEVICE"].flatMap { Int($0.dropFirst("opencl:".count)) }
        if let preferred, !devices.indices.contains(preferred) {
            throw ShapeError("LOUPE_TEST_DEVICE names opencl:\(preferred), but \(devices.count) OpenCL devices exist")
        }
        guard let entry = preferred.map({ devices[$0] }) ?? devices.first else {
            throw XCTSkip("no OpenCL device on this machine")
        }
        opencl = try OpenCLBackend(device: entry, tiling: tiling)
        ConformanceTable.shared.noteDevice(opencl.name)
        reference.poisonsNewTensors = true
        opencl.poisonsNewTensors = true
    }

    /// The same values uploaded to both backends.
    func pair(_ values: [Float], _ shape: Shape) throws -> (ref: Tensor, cl: Tensor) {
        (try reference.tensor(values, shape: shape), try opencl.tensor(values, shape: shape))
    }

    func pair(ints values: [Int32], _ shape: Shape) throws -> (ref: Tensor, cl: Tensor) {
        (try reference.tensor(ints: values, shape: shape), try opencl.tensor(ints: values, shape: shape))
    }

    func random(_ shape: Shape, scale: Float = 1) throws -> (ref: Tensor, cl: Tensor) {
        try pair(randomValues(shape.count, scale: scale), shape)
    }

    /// Runs `body` on both backends and requires identical int32 outputs (max-pool switches: an
    /// index is right or it is a different function). Recorded with the mismatched fraction, bound 0.
    func compareInts(op: String, direction: String, shape: String, file: StaticString = #filePath, line: UInt = #line,
                     _ body: (Backend, Bool) throws -> Tensor) throws {
        let expected = try reference.readInts(body(reference, false))
        let actual = try opencl.readInts(body(opencl, true))
        guard actual.count == expected.count else {
            XCTFail("\(op) \(direction) \(shape): \(actual.count) elements, reference has \(expected.count)", file: file, line: line)
            return
        }
        let mismatches = zip(actual, expected).filter { $0 != $1 }.count
        ConformanceTable.shared.record(op: op, direction: direction, shape: shape,
                                       error: Double(mismatches) / Double(max(expected.count, 1)), bound: 0)
        XCTAssertEqual(mismatches, 0, "\(op) \(direction) \(shape): \(mismatches) of \(expected.count) indices differ", file: file, line: line)
    }

    /// Runs `body` on both backends and compares the float outputs.
    func compare(op: String, direction: String, shape: String, bound: Double = float32Bound,
                 file: StaticString = #filePath, line: UInt = #line,
                 _ body: (Backend, Bool) throws -> Tensor) throws {
        let expected = try reference.read(body(reference, false))
        let actual = try opencl.read(body(opencl, true))
        assertConforms(actual, expected, op: op, direction: direction, shape: shape, bound: bound, file: file, line: line)
    }
}

/// The conformance table every comparison adds a row to. Printed when the test bundle finishes
/// and, when `LOUPE_CONFORMANCE_DOC` names a file, written there as markdown.
final class ConformanceTable: NSObject, XCTestObservation, @unchecked Sendable {
    static let shared: ConformanceTable = {
        let t = ConformanceTable()
        XCTestObservationCenter.shared.addTestObserver(t)
        return t
    }()

    private let lock = NSLock()
    private var rows: [(op: String, direction: String, shape: String, error: Double, bound: Double)] = []
    private var device = ""

    func record(op: String, direction: String, shape: String, error: Double, bound: Double) {
        lock.lock(); defer { lock.unlock() }
        rows.append((op, direction, shape, error, bound))
    }

    func noteDevice(_ name: String) {
        lock.lock(); defer { lock.unlock() }
        device = name
    }

    func testBundleDidFinish(_ testBundle: Bundle) {
        lock.lock(); defer { lock.unlock() }
        guard !rows.isEmpty else { return }
        var md = "# Conformance: OpenCL kernels vs the Swift reference\n\n"
        md += "Device: \(device). Relative error ||opencl - reference|| / ||reference|| on fresh random inputs "
        md += "(outputs poisoned with NaN first); the bound and its reason are in the tests.\n\n"
        md += "| op | direction | shape | relative error | bound |\n|---|---|---|---|---|\n"
        for r in rows.sorted(by: { ($0.op, $0.direction, $0.shape) < ($1.op, $1.direction, $1.shape) }) {
            md += "| \(r.op) | \(r.direction) | \(r.shape) | \(String(format: "%.2e", r.error)) | \(String(format: "%.0e", r.bound)) |\n"
        }
        print(md)
        if let path = ProcessInfo.processInfo.environment["LOUPE_CONFORMANCE_DOC"], !path.isEmpty {
            try? md.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }
}
