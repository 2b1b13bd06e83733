import CLBackend
import Explain
import Foundation
import Graph
import XCTest

/// The explanation methods against the identities and definitions they must satisfy.
final class MethodsTests: XCTestCase {
    private func backend() throws -> Backend {
        guard let entry = try enumerateDevices().first else { return ReferenceBackend() }
        return try OpenCLBackend(device: entry)
    }

    private func randomImages(_ n: Int, _ shape: Shape, seed: UInt64) throws -> HostTensor {
        var rng = SeededGenerator(seed: seed)
        return try HostTensor(shape: Shape([n] + shape.dims), values: (0..<(n * shape.count)).map { _ in Float.random(in: 0...1, using: &rng) })
    }

    /// On a GAP network at the layer before pooling, dy_c/dA_k(i,j) = w_ck / Z, so
    /// Grad-CAM = ReLU(CAM / Z) exactly (Selvaraju et al. 2017, section 3.1). Both maps are float32
    /// sums of 128 channel terms of mixed sign; the cancellation leaves ~1e-5 relative rounding
    /// noise, hence the 2e-4 bound (a wrong weighting gives errors of order 1).
    func testGradCAMEqualsCAMOverZOnAGAPNetwork() throws {
        let graph = try ZooModel.gapnet.build(batch: 1, seed: UInt64.random(in: 0...1000))
        let explainer = try Explainer(Executor(graph, on: backend()))
        let images = try randomImages(3, explainer.imageShape, seed: UInt64.random(in: 0...1000))
        let classes = [0, 4, 9]
        let layer = try explainer.camStructure().layer
        let cams = try explainer.cam(images, classes: classes)
        let grad = try explainer.gradientCAM(images, classes: classes, layer: layer)
        for (c, g) in zip(cams, grad) {
            let z = Float(c.height * c.width)
            XCTAssertLessThan(relativeError(g.values.map { $0 * z }, c.values.map { max($0, 0) }), 2e-4)
        }
    }

    func testCAMRefusesModelsWithoutGAPAndLinear() throws {
        let graph = try ZooModel.lenet5.build(batch: 1)
        let explainer = try Explainer(Executor(graph, on: ReferenceBackend()))
        XCTAssertThrowsError(try explainer.cam(randomImages(1, explainer.imageShape, seed: 1), classes: [0])) {
            XCTAssertTrue("\($0)".contains("global average pooling"), "\($0)")
        }
    }

    /// Vanilla saliency's gradient is the executor's input gradient for a one-hot class seed
    /// (what `loupe grad --unit LOGITS:C` computes).
    func testSaliencyGradientIsTheInputGradient() throws {
        let graph = try ZooModel.gapnet.build(batch: 2, seed: 3)
        let be = try backend()
        let exec = try Executor(graph, on: be)
        let explainer = try Explainer(exec)
        let images = try randomImages(2, explainer.imageShape, seed: UInt64.random(in: 0...1000))
        let g = try explainer.inputGradients(images, classes: [2, 7])
        var seed = [Float](repeating: 0, count: 20)
        seed[2] = 1
        seed[10 + 7] = 1
        let expected = try exec.inputGradient([graph.inputs[0]: images], at: graph.outputs[0],
                                              cotangent: HostTensor(shape: [2, 10], values: seed), target: graph.inputs[0])
        XCTAssertLessThan(relativeError(g, expected.values), 1e-6)
        let maps = try explainer.saliency(images, classes: [2, 7], reduction: .maxAbs)
        XCTAssertEqual(maps[1].values, Array(g[784...].map(abs)))
    }

    /// Integrated Gradients' completeness: the attributions add up to y_c(x) - y_c(0), up to the
    /// Riemann-sum error of the path integral (a few percent at 64 steps through ReLU kinks).
    func testIntegratedGradientsAreComplete() throws {
        let graph = try ZooModel.gapnet.build(batch: 1, seed: 5)
        let be = try backend()
        let exec = try Executor(graph, on: be)
        let explainer = try Explainer(exec)
        let image = try randomImages(1, explainer.imageShape, seed: UInt64.random(in: 0...1000))
        let c = 3
        let attributions = try explainer.integratedGradients(image, classes: [c], steps: 64)
        let y = try exec.infer([graph.inputs[0]: image])[graph.outputs[0]]!.values[c]
        let y0 = try exec.infer([graph.inputs[0]: HostTensor(shape: image.shape, values: Array(repeating: 0, count: 784))])[graph.outputs[0]]!.values[c]
        let total = attributions.reduce(0, +)
        XCTAssertEqual(total, y - y0, accuracy: 0.05 * max(abs(y - y0), 1e-3))
    }

    /// A pixel covered by exactly one occlusion window gets that window's probability drop.
    func testOcclusionRecordsTheProbabilityDropOfEachWindow() throws {
        let graph = try ZooModel.gapnet.build(batch: 1, seed: 8)
        let explainer = try Explainer(Executor(graph, on: try backend()))
        let image = try randomImages(1, explainer.imageShape, seed: UInt64.random(in: 0...1000))
        let map = try explainer.occlusion(image, classes: [1], patch: 7, stride: 7, fill: 0.5)[0]
        var occluded = image.values
        for y in 0..<7 { for x in 0..<7 { occluded[y * 28 + x] = 0.5 } }
        let p = try explainer.probabilities(image)[0][1]
        let q = try explainer.probabilities(HostTensor(shape: image.shape, values: occluded))[0][1]
        XCTAssertEqual(map.values[0], p - q, accuracy: 1e-6)
        XCTAssertEqual(map.values[3 * 28 + 3], p - q, accuracy: 1e-6)
    }

    /// When every channel of the layer is a multiple of one pattern m (a rank-1 activation
    /// matrix), Eigen-CAM's centred first component is m minus its mean, up to a positive scale.
    func testEigenCAMRecoversARankOnePattern() throws {
        let g = Graph()
        let x = try g.input("x", shape: [1, 1, 6, 5])
        let w = try g.parameter("mix.weight", shape: [4, 1, 1, 1], values: [0.5, 1.5, 2, 3])
        let layer = try g.apply(.conv2d(Conv2D(window: Window2D(kernel: 1))), [x, w], name: "mix")
        let pooled = try g.apply(.flatten, [try g.apply(.globalAvgPool, [layer], name: "gap")], name: "flat")
        var rng = SeededGenerator(seed: 1)
        g.markOutput(try g.linear(pooled, 3, name: "fc", rng: &rng))
        let explainer = try Explainer(Executor(g, on: ReferenceBackend()))
        let image = try randomImages(1, [1, 6, 5], seed: UInt64.random(in: 0...1000))
        let map = try explainer.eigenCAM(image, layer: layer)[0].values
        let mean = image.values.reduce(0, +) / 30
        let centred = image.values.map { $0 - mean }
        let scale = zip(map, centred).reduce(0) { $0 + $1.0 * $1.1 } / centred.reduce(0) { $0 + $1 * $1 }
        XCTAssertGreaterThan(scale, 0)
        XCTAssertLessThan(relativeError(map, centred.map { $0 * scale }), 1e-4)
    }

    /// A DeconvNet projection of one unit is zero outside that unit's receptive field.
    func testDeconvProjectionStaysInsideTheReceptiveField() throws {
        let graph = try ZooModel.gapnet.build(batch: 1, seed: 2)
        let explainer = try Explainer(Executor(graph, on: try backend()))
        let layer = graph.value(named: "relu3")!
        let rf = receptiveFields(of: graph)[layer]!
        let image = try randomImages(1, explainer.imageShape, seed: UInt64.random(in: 0...1000))
        let (uy, ux) = (6, 9)
        let projection = try explainer.deconvProjection(image, layer: layer, channel: 5, position: (uy, ux))
        let centreY = rf.height.start + Double(uy) * rf.height.jump, centreX = rf.width.start + Double(ux) * rf.width.jump
        for y in 0..<28 { for x in 0..<28 where abs(Double(y) + 0.5 - centreY) > rf.height.size / 2 || abs(Double(x) + 0.5 - centreX) > rf.width.size / 2 {
            XCTAssertEqual(projection[y * 28 + x], 0, "pixel (\(y), \(x)) outside the receptive field")
        } }
    }

    func testMapsHaveTheShapesTheyPromise() throws {
        let graph = try ZooModel.gapnet.build(batch: 1, seed: 4)
        let explainer = try Explainer(Executor(graph, on: try backend()))
        let images = try randomImages(2, explainer.imageShape, seed: 9)
        for rule in Explainer.GradientCAMRule.allCases {
            let maps = try explainer.gradientCAM(images, classes: [1, 2], rule: rule)
            XCTAssertEqual(maps.map(\.height), [14, 14])
            XCTAssertTrue(maps.allSatisfy { $0.values.allSatisfy { $0 >= 0 && $0.isFinite } }, "\(rule)")
        }
        let score = try explainer.scoreCAM(images, classes: [1, 2], maxBatch: 16)
        XCTAssertTrue(score.allSatisfy { $0.values.allSatisfy { $0 >= 0 && $0.isFinite } })
        let up = try explainer.upsampled(score)
        XCTAssertEqual(up.map(\.width), [28, 28])
        let smooth = try explainer.smoothGrad(images, classes: [1, 2], samples: 8, maxBatch: 5)
        XCTAssertEqual(smooth.count, 2)
        XCTAssertEqual(try explainer.guidedGradCAM(images, classes: [1, 2]).map(\.height), [28, 28])
        XCTAssertThrowsError(try explainer.gradientCAM(images, classes: [1])) { XCTAssertTrue("\($0)".contains("2 images but 1")) }
        XCTAssertThrowsError(try explainer.featureMap(named: "nosuch")) { XCTAssertTrue("\($0)".contains("no layer 'nosuch'")) }
    }
}

final class TopPatchesTests: XCTestCase {
    /// A 1-channel 3x3 box filter: the unit's activation is the local sum, so the top images are
    /// the ones with the brightest 3x3 spot, and each crop is the 3x3 receptive field around it.
    func testTopPatchesFindTheBrightestSpotsAndCropTheirField() throws {
        let g = Graph()
        let x = try g.input("x", shape: [1, 1, 10, 10])
        let w = try g.parameter("box.weight", shape: [1, 1, 3, 3], values: Array(repeating: 1, count: 9))
        let layer = try g.apply(.conv2d(Conv2D(window: Window2D(kernel: 3, padding: 1))), [x, w], name: "box")
        let pooled = try g.apply(.flatten, [try g.apply(.globalAvgPool, [layer], name: "gap")], name: "flat")
        var rng = SeededGenerator(seed: 1)
        g.markOutput(try g.linear(pooled, 2, name: "fc", rng: &rng))
        let explainer = try Explainer(Executor(g, on: ReferenceBackend()))
        var images = [Float](repeating: 0, count: 6 * 100)
        let spots = [(0, 2, 3, Float(1)), (1, 7, 7, 5), (2, 4, 1, 3), (3, 5, 5, 0.5), (4, 1, 8, 4), (5, 8, 2, 2)]
        for (i, y, xx, v) in spots { images[i * 100 + y * 10 + xx] = v }
        let data = try InMemoryDataset(images: images, labels: Array(repeating: 0, count: 6), imageShape: [1, 10, 10], classes: 2)
        let top = try explainer.topActivatingPatches(data, layer: layer, channel: 0, k: 3, maxBatch: 4)
        XCTAssertEqual(top.map(\.index), [1, 4, 2])
        XCTAssertEqual(top.map(\.activation), [5, 4, 3])
        // The first maximum of the 3x3 sums around (7, 7) is at (6, 6); its field is rows and columns 5..<8.
        XCTAssertEqual(top[0].box, Box(x0: 5, y0: 5, x1: 8, y1: 8))
        XCTAssertEqual(top[0].pixels.count, 9)
        XCTAssertEqual(top[0].pixels.max(), 5)
    }
}
