import CLBackend
import Foundation
import Graph

/// Net2Vec (Fong & Vedaldi 2018; METHODS.md "Dissection"): per concept, one weight per unit of a
/// layer and a bias, segmentation `sigmoid(sum_k w_k A_k + b)` upsampled to the label grid (the
/// upsampling is linear, so this is the paper's sum of upsampled maps), trained on the device and
/// scored by set IoU on held-out images against the best single unit.
///
/// - Concepts: the labels that occur in pixel masks (not image-level labels such as textures) in at
///   least `minImages` training images, `conceptsPerPass` at a time.
/// - Training: the dataset's `train` images, the layers' maps of every image computed once and kept
///   on the device (memory: all images' maps of the dissected layers; a subset of a large dataset
///   is the way to fit a small device);
///   `epochs` passes of Adam over mini-batches (the dissector's batch, in order) minimizing the
///   per-pixel BCE of METHODS.md with positives weighted by `alpha = 1 - f` and negatives by `f`,
///   `f` the fraction of annotated training pixels that carry the concept (the paper's balancing),
///   averaged over the batch's annotated pixels. Weights and bias start at 0. Forward: 1x1
///   `conv2d`, `resizeBilinear`, `net2vecLoss`; backward: `resizeBilinearBackward`,
///   `conv2dBackwardFilter`, `biasGradient` — each op with its own conformance test.
/// - Scoring: the `val` images. Net2Vec's mask is `sigmoid(u) > 1/2`; the single unit is the one
///   with the highest dissection IoU for the concept (over the whole dataset, which favours it), its
///   mask `upsample(A_k) > T_k` evaluated as the logits `A_k - T_k` (equal up to rounding, since the
///   bilinear weights sum to 1). Set IoU `I / (M + L - I)` over the held-out images annotated for
///   the concept's category.
public struct Net2VecSettings: Codable, Equatable, Sendable {
    public var epochs: Int = 10
    public var learningRate: Float = 0.01
    public var minImages: Int = 4
    public var conceptsPerPass: Int = 32
    public init() {}
}

public struct Net2VecResult: Equatable, Sendable {
    public var layer: String
    public var concept: String
    public var category: String
    /// The single unit with the best dissection IoU for the concept, and its set IoU on the held-out images.
    public var unit: Int
    public var unitIoU: Double
    /// Net2Vec's set IoU on the held-out images, and its balanced training loss per annotated pixel
    /// in the last epoch.
    public var net2vecIoU: Double
    public var trainingLoss: Double
}

/// Net2Vec for every layer of a completed dissection.
public struct Net2Vec {
    public let settings: Net2VecSettings
    let dissector: Dissector
    let state: DissectionState

    public init(dissector: Dissector, state: DissectionState, settings: Net2VecSettings = .init()) throws {
        guard state.isComplete else { throw DataError("net2vec: needs a completed dissection (\(state.pass) of \(DissectionState.passes) passes)") }
        guard settings.epochs >= 1, settings.learningRate > 0, settings.conceptsPerPass >= 1 else {
            throw DataError("net2vec: epochs, learning rate and concepts per pass must be positive")
        }
        self.dissector = dissector
        self.state = state
        self.settings = settings
    }

    var backend: any DissectionBackend { dissector.backend }
    var dataset: BrodenDataset { dissector.dataset }

    /// One batch of images: the layers' maps (on the device), pixel labels (on the device) and the
    /// categories each image is annotated for.
    struct Batch {
        var maps: [Tensor]
        var pixelLabels: Tensor
        var planes: [[[Int32]]]
        var categories: [Set<Int>]
    }

    func batches(_ indices: [Int]) throws -> [Batch] {
        let planeSize = dataset.maskHeight * dataset.maskWidth
        return try stride(from: 0, to: indices.count, by: dissector.batch).map { start in
            let chunk = Array(indices[start..<min(start + dissector.batch, indices.count)])
            let annotations = try chunk.map { try dataset.annotation(at: $0) }
            let planes = max(1, annotations.map(\.planes.count).max() ?? 0)
            var labels = [Int32](repeating: 0, count: chunk.count * planes * planeSize)
            for (n, a) in annotations.enumerated() {
                for (p, plane) in a.planes.enumerated() {
                    labels.replaceSubrange(((n * planes + p) * planeSize)..<((n * planes + p + 1) * planeSize), with: plane)
                }
            }
            return Batch(maps: try dissector.forward(chunk),
                         pixelLabels: try backend.tensor(ints: labels, shape: [chunk.count, planes, dataset.maskHeight, dataset.maskWidth]),
                         planes: annotations.map(\.planes), categories: annotations.map { Set($0.categories) })
        }
    }

    /// Trains and scores every pixel-level concept of every dissected layer.
    public func run(progress: (String) -> Void = { _ in }) throws -> [Net2VecResult] {
        let split = (train: dataset.records.indices.filter { dataset.records[$0].split != "val" },
                     val: dataset.records.indices.filter { dataset.records[$0].split == "val" })
        guard !split.train.isEmpty, !split.val.isEmpty else {
            throw DataError("net2vec: the dataset needs images of both splits, train and val (index.csv's split column); it has \(split.train.count) and \(split.val.count)")
        }
        let train = try batches(split.train), val = try batches(split.val)
        // Per label: training images with it in a mask, and its training pixels.
        var images = [Int](repeating: 0, count: dataset.labels.count), pixels = [Int64](repeating: 0, count: dataset.labels.count)
        for b in train {
            for planes in b.planes {
                var seen = Set<Int32>()
                for plane in planes { for label in plane where label > 0 { pixels[Int(label)] += 1; seen.insert(label) } }
                for label in seen { images[Int(label)] += 1 }
            }
        }
        let concepts = dataset.labels.indices.filter { $0 > 0 && images[$0] >= settings.minImages && !dataset.imageLevel[dataset.labels[$0].category] }
        guard !concepts.isEmpty else { throw DataError("net2vec: no pixel-level concept occurs in \(settings.minImages) or more training images") }
        var results: [Net2VecResult] = []
        for (l, layer) in state.layers.enumerated() {
            for start in stride(from: 0, to: concepts.count, by: settings.conceptsPerPass) {
                let chosen = Array(concepts[start..<min(start + settings.conceptsPerPass, concepts.count)])
                progress("net2vec \(layer.name): concepts \(start + 1)-\(start + chosen.count) of \(concepts.count)")
                results += try fit(layer: l, concepts: chosen, train: train, val: val, pixels: pixels)
            }
        }
        return results
    }

    /// Per image and concept: annotated for the concept's category?
    func annotated(_ b: Batch, _ concepts: [Int]) -> [Int32] {
        b.categories.flatMap { cats in concepts.map { cats.contains(dataset.labels[$0].category) ? 1 : 0 } }
    }

    func fit(layer l: Int, concepts: [Int], train: [Batch], val: [Batch], pixels: [Int64]) throws -> [Net2VecResult] {
        let layer = state.layers[l], k = layer.units, c = concepts.count
        let planeSize = dataset.maskHeight * dataset.maskWidth
        let resize = BilinearResize(height: dataset.maskHeight, width: dataset.maskWidth)
        let conv = Conv2D(window: Window2D(kernel: (1, 1)))
        // f: the fraction of the pixels of the training images annotated for the concept's category that carry it.
        let annotatedPixels = concepts.map { label in
            Int64(train.reduce(0) { $0 + $1.categories.filter { $0.contains(dataset.labels[label].category) }.count }) * Int64(planeSize)
        }
        let fraction = zip(concepts, annotatedPixels).map { $1 > 0 ? Double(pixels[$0]) / Double($1) : 0 }
        let conceptTensor = try backend.tensor(ints: concepts.map(Int32.init), shape: [c])
        let weight = try backend.full([c, k, 1, 1], value: 0), bias = try backend.full([c], value: 0)
        let moments = try (0..<4).map { i in try backend.full(i < 2 ? [c, k, 1, 1] : [c], value: 0) }
        let adam = Adam(learningRate: settings.learningRate)
        var step = 0, lastLoss = [Double](repeating: 0, count: c)
        for _ in 0..<settings.epochs {
            var total = [Double](repeating: 0, count: c), seen = [Int](repeating: 0, count: c)
            for b in train {
                let n = b.categories.count
                let annotated = self.annotated(b, concepts)
                // Mean over the batch's annotated pixels of the balanced BCE.
                let counts = (0..<c).map { j in (0..<n).reduce(0) { $0 + Int(annotated[$1 * c + j]) } }
                let weights = (0..<n).flatMap { i in
                    (0..<c).flatMap { j -> [Float] in
                        guard annotated[i * c + j] != 0 else { return [0, 0] }
                        let scale = 1 / Double(counts[j] * planeSize)
                        return [Float((1 - fraction[j]) * scale), Float(fraction[j] * scale)]
                    }
                }
                let logits = try backend.resizeBilinear(try backend.conv2d(b.maps[l], weight: weight, bias: bias, conv), resize)
                let loss = try backend.makeTensor(logits.shape, dtype: .float32), grad = try backend.makeTensor(logits.shape, dtype: .float32)
                try backend.net2vecLoss(logits: logits, pixelLabels: b.pixelLabels, concepts: conceptTensor,
                                        weights: try backend.tensor(weights, shape: [n, c, 2]), loss: loss, gradient: grad)
                let lowGrad = try backend.resizeBilinearBackward(grad, inputShape: [n, c, b.maps[l].shape[2], b.maps[l].shape[3]], resize)
                let dw = try backend.conv2dBackwardFilter(b.maps[l], outputGrad: lowGrad, weightShape: [c, k, 1, 1], conv)
                let db = try backend.biasGradient(lowGrad)
                step += 1
                try backend.step(adam, step: step, parameter: weight, gradient: dw, firstMoment: moments[0], secondMoment: moments[1])
                try backend.step(adam, step: step, parameter: bias, gradient: db, firstMoment: moments[2], secondMoment: moments[3])
                let batchLoss = try backend.read(try backend.biasGradient(loss))
                for j in 0..<c {
                    total[j] += Double(batchLoss[j]) * Double(counts[j])
                    seen[j] += counts[j]
                }
            }
            lastLoss = (0..<c).map { seen[$0] > 0 ? total[$0] / Double(seen[$0]) : 0 }
        }
        // Scoring rows: Net2Vec's c concepts, then each concept's best single unit as logits A_k - T_k.
        let unitIoUs = (0..<k).map { DissectionResults.ious(layer, unit: $0, state: state, dataset: dataset) }
        let best = concepts.map { label in (0..<k).max { a, b in unitIoUs[a][label] < unitIoUs[b][label] || (unitIoUs[a][label] == unitIoUs[b][label] && a > b) }! }
        var scoringWeights = try backend.read(weight), scoringBias = try backend.read(bias)
        for unit in best {
            scoringWeights += (0..<k).map { $0 == unit ? 1 : 0 }
            // A unit with no finite threshold (all NaN) masks nothing.
            scoringBias.append(layer.thresholds[unit].isFinite ? -layer.thresholds[unit] : -.greatestFiniteMagnitude)
        }
        let w2 = try backend.tensor(scoringWeights, shape: [2 * c, k, 1, 1]), b2 = try backend.tensor(scoringBias, shape: [2 * c])
        let doubled = try backend.tensor(ints: (concepts + concepts).map(Int32.init), shape: [2 * c])
        let counts = try backend.tensor(ints: [Int32](repeating: 0, count: 2 * c * 6), shape: [2 * c * 6])
        for b in val {
            let logits = try backend.resizeBilinear(try backend.conv2d(b.maps[l], weight: w2, bias: b2, conv), resize)
            let annotated = b.categories.flatMap { cats in (concepts + concepts).map { Int32(cats.contains(dataset.labels[$0].category) ? 1 : 0) } }
            try backend.accumulateNet2VecCounts(logits: logits, pixelLabels: b.pixelLabels, concepts: doubled,
                                                annotated: try backend.tensor(ints: annotated, shape: [b.categories.count, 2 * c]), counts: counts)
        }
        let totals = DissectionKey.counts(fromPairs: try backend.readInts(counts))
        func iou(_ row: Int) -> Double {
            let (i, m, t) = (totals[row * 3], totals[row * 3 + 1], totals[row * 3 + 2])
            return m + t - i > 0 ? Double(i) / Double(m + t - i) : 0
        }
        return concepts.enumerated().map { j, label in
            Net2VecResult(layer: layer.name, concept: dataset.labels[label].name, category: dataset.categories[dataset.labels[label].category],
                          unit: best[j], unitIoU: iou(c + j), net2vecIoU: iou(j), trainingLoss: lastLoss[j])
        }
    }
}

extension Net2VecResult {
    /// `net2vec.csv`: one row per layer and concept.
    public static func csv(_ results: [Net2VecResult]) -> String {
        "layer,concept,category,best_unit,unit_iou,net2vec_iou,training_loss\n" + results.map {
            "\($0.layer),\($0.concept),\($0.category),\($0.unit),\(String(format: "%.4f", $0.unitIoU)),\(String(format: "%.4f", $0.net2vecIoU)),\(String(format: "%.4f", $0.trainingLoss))\n"
        }.joined()
    }

    /// A table for the summary: per layer and concept, the single unit's and Net2Vec's held-out set IoU.
    public static func table(_ results: [Net2VecResult]) -> String {
        var out = "Net2Vec (held-out set IoU: best single unit vs learned combination of the layer's units)\n"
        out += "layer        concept          category   unit   unit IoU   net2vec IoU\n"
        for r in results {
            out += r.layer.padding(toLength: 12, withPad: " ", startingAt: 0) + " " + r.concept.padding(toLength: 16, withPad: " ", startingAt: 0) + " "
                + r.category.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: " %5d   %8.4f   %11.4f\n", r.unit, r.unitIoU, r.net2vecIoU)
        }
        let wins = results.filter { $0.net2vecIoU >= $0.unitIoU }.count
        out += "net2vec >= best unit for \(wins) of \(results.count) (layer, concept) pairs\n"
        return out
    }
}
