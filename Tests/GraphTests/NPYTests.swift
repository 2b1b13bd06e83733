import Foundation
import Graph
import XCTest

/// `.npy` files against NumPy itself (an external oracle), when python3 with numpy is present.
final class NPYTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func python(_ script: String) throws -> String {
        try runPython(script, skippingOnFailure: "python3 with numpy not available")
    }

    func testRoundTripAndNumPyReadsWhatWeWrite() throws {
        let shape = [2, 3, 5, 4]
        let values = (0..<120).map { _ in Float.random(in: -10...10) }
        let path = dir.appendingPathComponent("a.npy").path
        try NPY.write(values, shape: shape, to: path)
        let back = try NPY.read(path)
        XCTAssertEqual(back.shape, shape)
        XCTAssertEqual(back.values, values)
        let printed = try python("import numpy as np; a = np.load('\(path)'); print(a.dtype, a.shape, repr(float(a.astype(np.float64).sum())))")
        let parts = printed.split(separator: " ")
        XCTAssertEqual(parts.first, "float32")
        XCTAssertTrue(printed.contains("(2, 3, 5, 4)"), printed)
        let sum = values.reduce(0.0) { $0 + Double($1) }
        XCTAssertEqual(Double(parts.last!.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan, sum, accuracy: 1e-9 * max(1, abs(sum)))
    }

    func testReadsWhatNumPyWrites() throws {
        let path = dir.appendingPathComponent("b.npy").path
        _ = try python("import numpy as np; np.save('\(path)', (np.arange(42, dtype=np.float32).reshape(6, 7) - 20.5) / 4)")
        let (shape, values) = try NPY.read(path)
        XCTAssertEqual(shape, [6, 7])
        XCTAssertEqual(values, (0..<42).map { (Float($0) - 20.5) / 4 })
    }

    func testRefusesOtherDtypesFortranOrderAndTruncation() throws {
        let f64 = dir.appendingPathComponent("f64.npy").path
        let fortran = dir.appendingPathComponent("fortran.npy").path
        _ = try python("import numpy as np; np.save('\(f64)', np.zeros((2, 2))); np.save('\(fortran)', np.asfortranarray(np.zeros((2, 3), np.float32)))")
        XCTAssertThrowsError(try NPY.read(f64)) { XCTAssertTrue("\($0)".contains("float32"), "\($0)") }
        XCTAssertThrowsError(try NPY.read(fortran)) { XCTAssertTrue("\($0)".contains("Fortran"), "\($0)") }
        let good = dir.appendingPathComponent("good.npy").path
        try NPY.write([1, 2, 3, 4], shape: [4], to: good)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let truncated = dir.appendingPathComponent("truncated.npy").path
        try bytes.dropLast(3).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try NPY.read(truncated)) { XCTAssertTrue("\($0)".contains("bytes"), "\($0)") }
        XCTAssertThrowsError(try NPY.read(dir.appendingPathComponent("missing.npy").path))
    }

    func testDoesNotOverwriteWithoutBeingAsked() throws {
        let path = dir.appendingPathComponent("c.npy").path
        try NPY.write([1], shape: [1], to: path)
        XCTAssertThrowsError(try NPY.write([2], shape: [1], to: path))
        XCTAssertEqual(try NPY.read(path).values, [1])
        try NPY.write([2], shape: [1], to: path, overwrite: true)
        XCTAssertEqual(try NPY.read(path).values, [2])
    }
}
