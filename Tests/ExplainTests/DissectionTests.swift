import CLBackend
import Explain
import Foundation
import Graph
import XCTest

/// Network Dissection against a brute-force host computation that holds every activation, and
/// sharded runs against the single process.
final class DissectionTests: XCTestCase {
    /// conv(3 -> 4) + ReLU at 16x16 ("relu1"), max pool, conv(4 -> 6) + ReLU at 8x8 ("relu2").
    static func smallModel(batch: Int) throws -> Graph {
        let g = Graph()
        var rng = SeededGenerator(seed: 3)
        let x = try g.input("image", shape: [batch, 3, 16, 16])
        let r1 = try g.relu(try g.conv(x, 4, kernel: 3, padding: 1, name: "conv1", rng: &rng), name: "relu1")
        let p = try g.maxPool(r1, kernel: 2, stride: 2, name: "pool")
        let r2 = try g.relu(try g.conv(p, 6, kernel: 3, padding: 1, name: "conv2", rng: &rng), name: "relu2")
        g.markOutput(r2)
        return g
    }

    static func dataset() throws -> (BrodenDataset, String) {
        let dir = NSTemporaryDirectory() + "loupe-dissect-\(UUID().uuidString)"
        try ConceptDataset.generate(into: dir, count: 10, size: 16, seed: 5, garments: nil)
        return (try BrodenDataset(directory: dir), dir)
    }

    static func backend() throws -> Backend {
        guard let entry = try enumerateDevices().first else { return ReferenceBackend() }
        return try OpenCLBackend(device: entry)
    }

    func testDissectionMatchesBruteForce() throws {
        let (data, dir) = try Self.dataset()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var settings = DissectionSettings(layers: ["relu1", "relu2"])
        settings.quantile = 0.05   // a top 5% on this small set: several values per unit above the threshold
        let graph = try Self.smallModel(batch: 4)
        let device = try Dissector(graph: graph, backend: try Self.backend(), dataset: data, settings: settings).runAll()
        let reference = try Dissector(graph: graph, backend: ReferenceBackend(), dataset: data, settings: settings).runAll()
        // The device's convolutions round differently from the reference's in the last bits, so
        // thresholds agree to float32 precision and counts up to pixels whose sample sits within
        // that rounding of the threshold (none expected here; IoUs within 0.01 allowed).
        XCTAssertEqual(device.labelPixels, reference.labelPixels)
        for (d, r) in zip(device.layers, reference.layers) {
            for (a, b) in zip(d.thresholds, r.thresholds) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "\(d.name) threshold") }
            for unit in 0..<d.units {
                for (a, b) in zip(DissectionResults.ious(d, unit: unit, state: device, dataset: data),
                                  DissectionResults.ious(r, unit: unit, state: reference, dataset: data)) {
                    XCTAssertEqual(a, b, accuracy: 0.01, "\(d.name) unit \(unit) IoU on the device")
                }
            }
        }
        // The reference run exactly against brute force.
        let results = try DissectionResults(state: reference, dataset: data)

        // Brute force: every activation on the host.
        let ref = ReferenceBackend()
        let exec = try Executor(try graph.withBatch(data.count), on: ref)
        let dissector = try Dissector(graph: graph, backend: ref, dataset: data, settings: settings)
        let outs = try exec.infer([exec.graph.inputs[0]: try dissector.inputs(Array(0..<data.count))],
                                  outputs: ["relu1", "relu2"].map { exec.graph.value(named: $0)! })
        let annotations = try (0..<data.count).map { try data.annotation(at: $0) }
        let labels = data.labels.count, side = data.maskHeight
        var labelPixels = [Int64](repeating: 0, count: labels)
        for a in annotations {
            for plane in a.planes { for l in plane where l > 0 { labelPixels[Int(l)] += 1 } }
            for l in a.imageLabels { labelPixels[Int(l)] += Int64(side * side) }
        }
        XCTAssertEqual(reference.labelPixels, labelPixels)
        for (l, name) in ["relu1", "relu2"].enumerated() {
            let maps = outs[exec.graph.value(named: name)!]!
            let (n, k, h, w) = (maps.shape[0], maps.shape[1], maps.shape[2], maps.shape[3])
            let up = try ref.read(try ref.resizeBilinear(try ref.tensor(maps.values, shape: maps.shape), BilinearResize(height: side, width: side)))
            for unit in 0..<k {
                let plane = h * w
                let values: [Float] = (0..<n).flatMap { (i: Int) -> [Float] in Array(maps.values[((i * k + unit) * plane)..<((i * k + unit + 1) * plane)]) }
                let rank = Int((settings.quantile * Double(values.count)).rounded(.up))
                let threshold = values.sorted(by: >)[rank - 1]
                XCTAssertEqual(reference.layers[l].thresholds[unit], threshold, "\(name) unit \(unit) threshold")
                var intersection = [Int64](repeating: 0, count: labels), masked = [Int64](repeating: 0, count: data.categories.count)
                for (i, a) in annotations.enumerated() {
                    let base = (i * k + unit) * side * side
                    let mask: [Bool] = (0..<(side * side)).map { p in up[base + p] > threshold }
                    let count = Int64(mask.filter { $0 }.count)
                    for c in a.categories { masked[c] += count }
                    for plane in a.planes { for (p, label) in plane.enumerated() where label > 0 && mask[p] { intersection[Int(label)] += 1 } }
                    for label in a.imageLabels { intersection[Int(label)] += count }
                }
                let iou = (0..<labels).map { c -> Double in
                    guard c > 0 else { return 0 }
                    let union = masked[data.labels[c].category] + labelPixels[c] - intersection[c]
                    return union > 0 ? Double(intersection[c]) / Double(union) : 0
                }
                XCTAssertEqual(DissectionResults.ious(reference.layers[l], unit: unit, state: reference, dataset: data), iou, "\(name) unit \(unit)")
                let best = iou.indices.dropFirst().max { iou[$0] < iou[$1] || (iou[$0] == iou[$1] && $0 > $1) }!
                let result = results.units.first { $0.layer == name && $0.unit == unit }!
                XCTAssertEqual(result.concept, data.labels[best].name)
                XCTAssertEqual(result.isDetector, iou[best] > 0.04)
                // Top images: highest peak activation first.
                let peaks: [Float] = (0..<n).map { (i: Int) -> Float in maps.values[((i * k + unit) * plane)..<((i * k + unit + 1) * plane)].max()! }
                let order = (0..<n).sorted { peaks[$0] != peaks[$1] ? peaks[$0] > peaks[$1] : $0 < $1 }
                XCTAssertEqual(result.topImages, Array(order.prefix(settings.topImages)))
            }
        }
        XCTAssertTrue(results.table.contains("relu2"))
        XCTAssertEqual(results.csv.split(separator: "\n").count, 1 + 4 + 6)
    }

    /// Three shards per pass, merged after each pass, give exactly the single-process state.
    func testShardedPassesMergeToTheSingleProcessResult() throws {
        let (data, dir) = try Self.dataset()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dissector = try Dissector(graph: try Self.smallModel(batch: 3), backend: try Self.backend(), dataset: data,
                                      settings: DissectionSettings(layers: ["relu2"]))
        let single = try dissector.runAll()
        var state = dissector.initialState()
        while !state.isComplete {
            let parts = try (0..<3).reversed().map { try dissector.run(state, images: shardRange($0, of: 3, images: data.count)) }
            XCTAssertThrowsError(try state.merging(Array(parts.prefix(2))))
            state = try state.merging(parts)
        }
        XCTAssertEqual(state, single)
        XCTAssertThrowsError(try state.merging([]))
    }
}
