import CLBackend
import Foundation
import Graph

/// Faithfulness metrics: does the map point at what the model uses?
extension Explainer {
    /// Deletion and insertion (Petsiuk et al. 2018): pixels are removed from the image (deletion:
    /// set to `baseline`) or added to a baseline image (insertion) in order of decreasing attribution,
    /// `steps` equal groups at a time, and the class probability is recorded after each; the area
    /// under that curve over the fraction of pixels in [0, 1] (trapezoid rule) is the score. A
    /// faithful map has low deletion and high insertion AUC. All steps of one image run as one
    /// batch (or batches of `maxBatch`).
    public func deletionInsertion(_ image: HostTensor, class c: Int, map: AttributionMap, steps: Int = 16,
                                  baseline: Float = 0, maxBatch: Int = 32) throws -> (deletion: Double, insertion: Double) {
        guard try checkImages(image) == 1 else { throw ExplainError("deletion/insertion takes one image at a time") }
        let (ch, h, w) = (imageShape[0], imageShape[1], imageShape[2])
        guard map.height == h, map.width == w else { throw ExplainError("the map is \(map.height)x\(map.width); upsample it to the image's \(h)x\(w) first") }
        guard steps > 0 else { throw ExplainError("deletion/insertion needs steps > 0") }
        let order = map.values.indices.sorted { map.values[$0] > map.values[$1] || (map.values[$0] == map.values[$1] && $0 < $1) }
        var deleted: [Float] = [], inserted: [Float] = []
        for s in 0...steps {
            let k = order.count * s / steps
            var del = image.values, ins = [Float](repeating: baseline, count: image.values.count)
            for p in order[..<k] { for c in 0..<ch { del[c * h * w + p] = baseline; ins[c * h * w + p] = image.values[c * h * w + p] } }
            deleted += del
            inserted += ins
        }
        func curve(_ batch: [Float]) throws -> [Double] {
            var probs: [Double] = []
            var start = 0
            let per = ch * h * w
            while start <= steps {
                let count = min(max(maxBatch, 1), steps + 1 - start)
                let part = Array(batch[(start * per)..<((start + count) * per)])
                probs += try probabilities(HostTensor(shape: [count, ch, h, w], values: part)).map { Double($0[c]) }
                start += count
            }
            return probs
        }
        func auc(_ y: [Double]) -> Double {
            var area = 0.0
            for i in 0..<steps { area += (y[i] + y[i + 1]) / 2 }
            return area / Double(steps)
        }
        return (auc(try curve(deleted)), auc(try curve(inserted)))
    }
}

extension Explainer {
    /// The cascading model-randomization sanity check (Adebayo et al. 2018): re-initialize the
    /// parameters of the layers from the top (logits) down, one more layer each step, recompute
    /// the maps with `method`, and report the mean Spearman rank correlation with the original maps.
    /// A map that depends on the model's weights decorrelates; one that does not (an edge
    /// detector) stays high. The original weights are restored afterwards.
    public func cascadingRandomization(layers: Int? = nil, seed: UInt64 = 0,
                                       _ method: (Explainer) throws -> [AttributionMap]) throws -> [(layer: String, correlation: Double)] {
        let original = try method(self)
        let parameterized = graph.nodes.reversed().filter { node in node.inputs.contains { graph[$0].kind == .parameter } }
        let count = min(layers ?? parameterized.count, parameterized.count)
        var rng = SeededGenerator(seed: seed)
        var saved: [(ValueID, [Float])] = []
        defer { for (p, v) in saved { try? base.setParameter(p, values: v) } }
        var result: [(String, Double)] = []
        for node in parameterized.prefix(count) {
            for p in node.inputs where graph[p].kind == .parameter {
                let values = graph.parameterValues[p] ?? []
                saved.append((p, values))
                // Same scale as the trained weights, fresh values: a normal draw matching their standard deviation.
                let mean = values.reduce(0, +) / Float(max(values.count, 1))
                let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(values.count, 1))).squareRoot()
                try base.setParameter(p, values: values.map { _ in rng.normal() * max(std, 1e-3) })
            }
            let maps = try method(self)
            let rhos = zip(original, maps).map { spearmanCorrelation($0.values, $1.values) }.filter { !$0.isNaN }
            result.append((node.name, rhos.isEmpty ? .nan : rhos.reduce(0, +) / Double(rhos.count)))
        }
        return result
    }
}
