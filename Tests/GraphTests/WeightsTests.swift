import CLBackend
import Foundation
import Graph
import XCTest

final class WeightsTests: XCTestCase {
    private func net(seed: UInt64) throws -> Graph {
        var rng = SeededGenerator(seed: seed)
        let g = Graph()
        let x = try g.input("input", shape: [1, 2, 6, 6])
        var h = try g.conv(x, 3, kernel: 3, padding: 1, name: "conv", rng: &rng)
        h = try g.batchNorm(h, name: "bn")
        h = try g.apply(.flatten, [try g.relu(h, name: "relu")], name: "flat")
        g.markOutput(try g.linear(h, 4, name: "fc", rng: &rng))
        return g
    }

    func testWeightsRoundTripThroughSafetensorsByName() throws {
        let a = try net(seed: 1), b = try net(seed: 2)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-weights-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Safetensors.write(a.namedWeights(), to: path)
        let report = try b.loadWeights(Safetensors.read(path).tensors)
        XCTAssertEqual(Set(report.loaded), Set(a.parameters.map { a[$0].name }))
        XCTAssertTrue(report.missing.isEmpty && report.unexpected.isEmpty)
        let be = ReferenceBackend()
        let input = try HostTensor(shape: [1, 2, 6, 6], values: (0..<72).map { _ in Float.random(in: -1...1) })
        let ya = try Executor(a, on: be).infer([a.inputs[0]: input])[a.outputs[0]]!
        let yb = try Executor(b, on: be).infer([b.inputs[0]: input])[b.outputs[0]]!
        XCTAssertEqual(ya, yb)
    }

    func testMismatchesAreNamed() throws {
        let g = try net(seed: 1)
        var weights = g.namedWeights()
        weights["fc.weight"] = NamedTensor(shape: [4, 3], values: Array(repeating: 0, count: 12))
        XCTAssertThrowsError(try g.loadWeights(weights)) { XCTAssertTrue("\($0)".contains("fc.weight"), "\($0)") }
        var partial = g.namedWeights()
        partial["conv.bias"] = nil
        partial["extra.weight"] = NamedTensor(shape: [1], values: [0])
        XCTAssertThrowsError(try g.loadWeights(partial)) { XCTAssertTrue("\($0)".contains("conv.bias"), "\($0)") }
        let report = try g.loadWeights(partial, strict: false)
        XCTAssertEqual(report.missing, ["conv.bias"])
        XCTAssertEqual(report.unexpected, ["extra.weight"])
    }
}
