import CLBackend
import Explain
import Foundation
import Graph
import XCTest

/// The models the project trains and ships (`Models/`), checked against what `Models/README.md`
/// states about them, and the localization claim the CAM paper makes, on real trained weights.
final class TrainedModelTests: XCTestCase {
    private static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Models")

    private func explainer(_ file: String) throws -> Explainer {
        let backend: Backend = try enumerateDevices().first.map { try OpenCLBackend(device: $0) } ?? ReferenceBackend()
        let graph = try ModelSource.load(Self.models.appendingPathComponent(file).path, batch: 1)
        return try Explainer(Executor(graph, on: backend))
    }

    private func accuracy(_ explainer: Explainer, _ data: any LabeledImageDataset, count: Int) throws -> Double {
        var correct = 0
        for start in stride(from: 0, to: count, by: 500) {
            let indices = Array(start..<min(start + 500, count))
            let (pixels, labels) = data.batch(indices)
            let images = try HostTensor(shape: Shape([indices.count] + data.imageShape.dims), values: pixels)
            correct += zip(try explainer.predictedClasses(images), labels).filter { $0 == Int($1) }.count
        }
        return Double(correct) / Double(count)
    }

    /// The shipped Fashion CNN scores the test accuracy its README states (91.43%) on all 10,000
    /// test images of the Debian package, read through Loupe's IDX reader.
    func testShippedFashionCNNAccuracy() throws {
        let acc = try accuracy(explainer("fashioncnn.onnx"), FashionMNIST(split: .test), count: 10_000)
        XCTAssertEqual(acc, 0.9143, accuracy: 0.0002)
    }

    /// The shipped GAP net scores its README's 89.16% on all 10,000 test images.
    func testShippedGAPNetAccuracy() throws {
        let acc = try accuracy(explainer("gapnet.onnx"), FashionMNIST(split: .test), count: 10_000)
        XCTAssertEqual(acc, 0.8916, accuracy: 0.0002)
    }

    /// The cluttered-canvas GAP model classifies held-out cluttered canvases (drawn from the test
    /// split with evaluate's seed, so never seen in training) far above chance (10%).
    func testClutterNetClassifiesHeldOutCanvases() throws {
        let data = try ClutteredFashionMNIST(source: FashionMNIST(split: .test), count: 1000, seed: 0)
        XCTAssertGreaterThan(try accuracy(explainer("clutternet.onnx"), data, count: 1000), 0.8)
    }

    /// CAM localizes: on 128 held-out cluttered canvases, true classes, the pointing game of CAM
    /// beats the centred-Gaussian baseline by at least 15 points and CAM-paper box localization
    /// (20% threshold, largest component, IoU >= 0.5) beats it too. Both baselines are scored by the
    /// same functions on the same images, so the margin is the method's, not the data's.
    func testCAMBeatsTheCentreBaselineOnTheTrainedGAPModel() throws {
        let explainer = try explainer("clutternet.onnx")
        let n = 128, side = 84
        let data = try ClutteredFashionMNIST(source: FashionMNIST(split: .test), count: n, seed: 0)
        let (pixels, labels) = data.batch(Array(0..<n))
        let images = try HostTensor(shape: [n, 1, side, side], values: pixels)
        let maps = try explainer.upsampled(explainer.cam(images, classes: labels.map(Int.init)))
        let masks = data.masks(Array(0..<n))
        let tolerance = Int((15.0 * Double(side) / 224.0).rounded())
        let centre = Localization.centredGaussian(height: side, width: side)
        var (camHits, centreHits, camBoxes, centreBoxes) = (0, 0, 0, 0)
        for i in 0..<n {
            let mask = Array(masks[(i * side * side)..<((i + 1) * side * side)])
            if Localization.pointingHit(maps[i], mask: mask, tolerance: tolerance) { camHits += 1 }
            if Localization.pointingHit(centre, mask: mask, tolerance: tolerance) { centreHits += 1 }
            if Localization.boxCorrect(maps[i], truth: data.samples[i].box) { camBoxes += 1 }
            if Localization.boxCorrect(centre, truth: data.samples[i].box) { centreBoxes += 1 }
        }
        let (cam, baseline) = (Double(camHits) / Double(n), Double(centreHits) / Double(n))
        print("trained GAP model, \(n) canvases: pointing CAM \(cam), centre \(baseline); box CAM \(camBoxes), centre \(centreBoxes)")
        XCTAssertGreaterThanOrEqual(cam, baseline + 0.15, "pointing: CAM \(cam), centre \(baseline)")
        XCTAssertGreaterThan(camBoxes, centreBoxes, "box localization: CAM \(camBoxes), centre \(centreBoxes) of \(n)")
    }
}
