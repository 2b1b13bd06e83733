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

    /// Sizes that overflow `Int` and headers cut short are refused, not trapped on.
    func testRefusesOverflowingShapesAndShortHeaders() throws {
        func npy(_ header: String, version: UInt8 = 1) -> [UInt8] {
            let length = littleEndianBytes([UInt32(header.utf8.count)]).prefix(version == 1 ? 2 : 4)
            return [0x93] + Array("NUMPY".utf8) + [version, 0] + length + Array(header.utf8)
        }
        let cases: [(name: String, bytes: [UInt8], expected: String)] = [
            ("overflow", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n"), "more elements than an Int can count"),
            ("bytes-overflow", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }\n"), "more elements than an Int can count"),
            ("zero-dim", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 0), }\n") + [0], "needs 0 bytes of data, the file has 1"),
            ("short-v2", Array(npy("{}", version: 2).prefix(11)), "truncated header"),
            ("long-v2", npy("{}", version: 2).dropLast(), "truncated header"),
        ]
        for c in cases {
            let file = dir.appendingPathComponent("\(c.name).npy").path
            try Data(c.bytes).write(to: URL(fileURLWithPath: file))
            XCTAssertThrowsError(try NPY.read(file), c.name) { XCTAssertTrue("\($0)".contains(c.expected), "\(c.name): \($0)") }
        }
        let path = dir.appendingPathComponent("negative.npy").path
        XCTAssertThrowsError(try NPY.write([1], shape: [-1, -1], to: path)) { XCTAssertTrue("\($0)".contains("do not fill shape"), "\($0)") }
        XCTAssertThrowsError(try NPY.write([], shape: [Int](repeating: 0, count: 30_000), to: path)) { XCTAssertTrue("\($0)".contains("too many dimensions"), "\($0)") }
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
