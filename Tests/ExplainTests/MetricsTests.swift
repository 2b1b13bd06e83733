import CLBackend
import Explain
import Foundation
import Graph
import XCTest

final class MetricsTests: XCTestCase {
    func testBoxOfTheLargestComponentAndIoU() {
        var v = [Float](repeating: 0, count: 100)
        for y in 2..<5 { for x in 3..<8 { v[y * 10 + x] = 1 } }   // 15 pixels
        v[9 * 10 + 9] = 0.9                                        // a single strong pixel elsewhere
        v[0] = 0.1                                                 // below 20% of the max
        let map = AttributionMap(height: 10, width: 10, values: v)
        XCTAssertEqual(Localization.box(of: map), Box(x0: 3, y0: 2, x1: 8, y1: 5))
        XCTAssertEqual(Box(x0: 0, y0: 0, x1: 2, y1: 2).iou(Box(x0: 1, y0: 1, x1: 3, y1: 3)), 1.0 / 7.0, accuracy: 1e-12)
        XCTAssertTrue(Localization.boxCorrect(map, truth: Box(x0: 3, y0: 2, x1: 8, y1: 6)))
        XCTAssertFalse(Localization.boxCorrect(map, truth: Box(x0: 0, y0: 0, x1: 3, y1: 3)))
        XCTAssertNil(Localization.box(of: AttributionMap(height: 2, width: 2, values: [0, 0, 0, -1])))
    }

    func testPointingGameWithTolerance() {
        var v = [Float](repeating: 0, count: 64)
        v[1 * 8 + 1] = 5
        let map = AttributionMap(height: 8, width: 8, values: v)
        var mask = [Bool](repeating: false, count: 64)
        mask[4 * 8 + 4] = true
        XCTAssertFalse(Localization.pointingHit(map, mask: mask, tolerance: 2))
        XCTAssertTrue(Localization.pointingHit(map, mask: mask, tolerance: 5))   // distance sqrt(18) ~ 4.24
        mask[1 * 8 + 1] = true
        XCTAssertTrue(Localization.pointingHit(map, mask: mask, tolerance: 0))
    }

    func testSpearmanKnownValues() {
        XCTAssertEqual(spearmanCorrelation([1, 2, 3, 4], [10, 20, 30, 40]), 1, accuracy: 1e-12)
        XCTAssertEqual(spearmanCorrelation([1, 2, 3, 4], [4, 3, 2, 1]), -1, accuracy: 1e-12)
        // Ties take average ranks: x ranks [1.5, 1.5, 3, 4], y ranks [1, 2, 3, 4]; rho = 0.9486832980505138 (scipy.stats.spearmanr).
        XCTAssertEqual(spearmanCorrelation([1, 1, 2, 3], [1, 2, 3, 4]), 0.9486832980505138, accuracy: 1e-12)
        XCTAssertTrue(spearmanCorrelation([1, 1, 1], [1, 2, 3]).isNaN)
    }

    func testBaselinesHaveTheirShape() {
        let g = Localization.centredGaussian(height: 9, width: 9)
        XCTAssertEqual(g.values.indices.max { g.values[$0] < g.values[$1] }, 40)
        XCTAssertEqual(Localization.randomMap(height: 4, width: 4, seed: 1), Localization.randomMap(height: 4, width: 4, seed: 1))
        XCTAssertNotEqual(Localization.randomMap(height: 4, width: 4, seed: 1), Localization.randomMap(height: 4, width: 4, seed: 2))
    }

    /// A model whose class-0 logit is the mean of the top-left 4x4 corner: a map on that corner
    /// deletes the evidence first (low deletion AUC, high insertion AUC); the reversed map does not.
    func testDeletionAndInsertionRankAFaithfulMapAboveItsReverse() throws {
        let g = Graph()
        let x = try g.input("x", shape: [1, 1, 8, 8])
        var w = [Float](repeating: 0, count: 2 * 64)
        for y in 0..<4 { for xx in 0..<4 { w[y * 8 + xx] = 8.0 / 16 } }
        let flat = try g.apply(.flatten, [x], name: "flat")
        let wv = try g.parameter("fc.weight", shape: [2, 64], values: w)
        g.markOutput(try g.apply(.linear, [flat, wv], name: "fc"))
        let explainer = try Explainer(Executor(g, on: ReferenceBackend()))
        let image = try HostTensor(shape: [1, 1, 8, 8], values: Array(repeating: 1, count: 64))
        var good = [Float](repeating: 0, count: 64)
        for y in 0..<4 { for xx in 0..<4 { good[y * 8 + xx] = 1 } }
        let faithful = try explainer.deletionInsertion(image, class: 0, map: AttributionMap(height: 8, width: 8, values: good), steps: 8)
        let reversed = try explainer.deletionInsertion(image, class: 0, map: AttributionMap(height: 8, width: 8, values: good.map { 1 - $0 }), steps: 8)
        XCTAssertLessThan(faithful.deletion, reversed.deletion)
        XCTAssertGreaterThan(faithful.insertion, reversed.insertion)
    }

    /// Gradient saliency decorrelates under cascading randomization of a GAP network; the
    /// weights come back afterwards.
    func testCascadingRandomizationDecorrelatesAndRestores() throws {
        let graph = try ZooModel.gapnet.build(batch: 1, seed: 12)
        let explainer = try Explainer(Executor(graph, on: ReferenceBackend()))
        var rng = SeededGenerator(seed: 3)
        let images = try HostTensor(shape: [2, 1, 28, 28], values: (0..<1568).map { _ in Float.random(in: 0...1, using: &rng) })
        let before = try explainer.saliency(images, classes: [1, 2])
        let result = try explainer.cascadingRandomization(layers: 3) { try $0.saliency(images, classes: [1, 2]) }
        XCTAssertEqual(result.map(\.layer), ["fc", "conv4", "conv3"])
        XCTAssertLessThan(result.last!.correlation, 0.9, "\(result)")
        XCTAssertEqual(try explainer.saliency(images, classes: [1, 2]), before, "weights were not restored")
    }
}
