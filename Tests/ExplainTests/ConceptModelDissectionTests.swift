import CLBackend
import Explain
import Foundation
import Graph
import XCTest

/// Network Dissection and Net2Vec on the shipped concept model (`Models/conceptnet.onnx`, trained
/// to name the shape and its colour in concept scenes), on a freshly generated concept dataset of
/// a seed no training draw used, against the same architecture with its random initial weights.
final class ConceptModelDissectionTests: XCTestCase {
    private static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Models/conceptnet.onnx").path
    static let shapes: Set<String> = Set(ConceptDataset.shapes)
    static let colours: Set<String> = Set(ConceptDataset.colors.map(\.name))

    /// The best IoU over the layer's units for any concept of `names`.
    static func bestIoU(_ layer: DissectionState.Layer, _ state: DissectionState, _ data: BrodenDataset, _ names: Set<String>) -> Double {
        (0..<layer.units).flatMap { k in
            DissectionResults.ious(layer, unit: k, state: state, dataset: data).enumerated().filter { names.contains(data.labels[$0.offset].name) }.map(\.element)
        }.max() ?? 0
    }

    /// The shipped model's accuracy on the first 500 of `loupe train --data concepts`'s test scenes
    /// (seed 2,000,002), where Models/README.md states 96.30% on all 1,000.
    func testShippedModelAccuracy() throws {
        let data = try ConceptClassification(count: 500, size: 64, seed: 2_000_002)
        let explainer = try Explainer(Executor(try ModelSource.load(Self.model, batch: 1), on: try DissectionTests.backend()))
        let (pixels, labels) = data.batch(Array(0..<500))
        let predicted = try explainer.predictedClasses(try HostTensor(shape: [500, 3, 64, 64], values: pixels))
        let accuracy = Double(zip(predicted, labels).filter { $0 == Int($1) }.count) / 500
        print("conceptnet.onnx accuracy on 500 test scenes: \(accuracy)")
        XCTAssertGreaterThan(accuracy, 0.94)
    }

    func testTrainedModelHasColourAndShapeDetectorsAndNet2VecBeatsSingleUnits() throws {
        let dir = NSTemporaryDirectory() + "loupe-concepts-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ConceptDataset.generate(into: dir, count: 200, size: 64, seed: 77, garments: nil)
        let data = try BrodenDataset(directory: dir)
        let backend = try DissectionTests.backend()
        let settings = DissectionSettings(layers: ["relu4"])
        let trainedGraph = try ModelSource.load(Self.model, batch: 20)
        let trained = try Dissector(graph: trainedGraph, backend: backend, dataset: data, settings: settings)
        let trainedState = try trained.runAll()
        let randomState = try Dissector(graph: try ZooModel.conceptnet.build(batch: 20, seed: 0), backend: backend, dataset: data,
                                        settings: settings).runAll()
        let results = try DissectionResults(state: trainedState, dataset: data)
        let detectors = results.units.filter(\.isDetector)
        XCTAssertTrue(detectors.contains { Self.colours.contains($0.concept) }, "a colour detector with IoU > 0.04")
        XCTAssertTrue(detectors.contains { Self.shapes.contains($0.concept) }, "a shape detector with IoU > 0.04")
        // Shapes come from training: the trained relu4's best shape IoU against the random net's.
        let l = 0
        let trainedShape = Self.bestIoU(trainedState.layers[l], trainedState, data, Self.shapes)
        let randomShape = Self.bestIoU(randomState.layers[l], randomState, data, Self.shapes)
        print("relu4 best shape IoU: trained \(trainedShape), random \(randomShape); colour: trained \(Self.bestIoU(trainedState.layers[l], trainedState, data, Self.colours)), random \(Self.bestIoU(randomState.layers[l], randomState, data, Self.colours))")
        XCTAssertGreaterThan(trainedShape, 0.04)
        XCTAssertGreaterThan(trainedShape, randomShape + 0.02)

        // Net2Vec on relu4 (20 held-out images). Measured: Net2Vec beats the best single unit for every
        // colour and for circle and square; for triangle the trained net has a dedicated unit (IoU 0.31
        // on these images) that the combination does not reach (0.22; on 500 images 0.25 vs 0.26).
        var n2v = Net2VecSettings()
        n2v.epochs = 20
        let fitted = try Net2Vec(dissector: trained, state: trainedState, settings: n2v).run()
        print(Net2VecResult.table(fitted))
        XCTAssertEqual(Set(fitted.map(\.concept)), Self.shapes.union(Self.colours), "every planted shape and colour is fitted")
        let wins = fitted.filter { $0.net2vecIoU >= $0.unitIoU }
        XCTAssertGreaterThanOrEqual(wins.count, fitted.count - 1, "Net2Vec >= the best unit for all concepts but at most one")
        for names in [Self.shapes, Self.colours] {
            let group = fitted.filter { names.contains($0.concept) }
            let mean = { (f: (Net2VecResult) -> Double) in group.map(f).reduce(0, +) / Double(group.count) }
            XCTAssertGreaterThan(mean(\.net2vecIoU), 1.5 * mean(\.unitIoU), "mean held-out IoU over \(names.sorted())")
        }
    }
}
