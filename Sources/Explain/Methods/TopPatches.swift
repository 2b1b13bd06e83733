import CLBackend
import Foundation
import Graph

/// One of the dataset patches that most activate a unit.
public struct ActivatingPatch: Sendable {
    /// Index of the image in the dataset.
    public var index: Int
    public var activation: Float
    /// Position of the maximum in the layer's grid.
    public var y: Int, x: Int
    /// The receptive field of that position, clipped to the image, in input pixels (half-open).
    public var box: Box
    /// The image's pixels inside `box`, `[C, box.height, box.width]`.
    public var pixels: [Float]
}

extension Explainer {
    /// The `k` images of `dataset` whose maximum activation of `channel` at `layer` is largest
    /// (Zeiler & Fergus 2014, figure 2), each cropped to the receptive field of the position of
    /// that maximum. Images run forward in batches of `maxBatch`; ties keep the earlier image.
    public func topActivatingPatches(_ dataset: LabeledImageDataset, layer: ValueID, channel: Int, k: Int,
                                     limit: Int? = nil, maxBatch: Int = 32) throws -> [ActivatingPatch] {
        let s = graph[layer].shape
        guard s.rank == 4, (0..<s[1]).contains(channel) else { throw ExplainError("layer '\(graph[layer].name)' \(s) has no channel \(channel)") }
        guard dataset.imageShape == imageShape else { throw ExplainError("the dataset's images are \(dataset.imageShape); the model takes \(imageShape)") }
        guard k > 0 else { throw ExplainError("k must be positive") }
        guard let field = receptiveFields(of: graph)[layer] else { throw ExplainError("no receptive field for layer '\(graph[layer].name)'") }
        let n = min(limit ?? dataset.count, dataset.count)
        let (c, h, w) = (imageShape[0], imageShape[1], imageShape[2])
        let z = s[2] * s[3]
        var best: [(index: Int, value: Float, position: Int)] = []
        var start = 0
        while start < n {
            let count = min(max(maxBatch, 1), n - start)
            let (pixels, _) = dataset.batch(Array(start..<(start + count)))
            let exec = try executor(batch: count)
            let pass = try exec.forward([input: backend.tensor(pixels, shape: [count, c, h, w])], retaining: [layer], until: layer)
            let a = try backend.read(pass[layer]!)
            for i in 0..<count {
                let base = (i * s[1] + channel) * z
                var top = 0
                for p in 1..<z where a[base + p] > a[base + top] { top = p }
                best.append((start + i, a[base + top], top))
            }
            best.sort { $0.value > $1.value || ($0.value == $1.value && $0.index < $1.index) }
            best = Array(best.prefix(k))
            start += count
        }
        return best.map { b in
            let (y, x) = (b.position / s[3], b.position % s[3])
            let cy = field.height.start + Double(y) * field.height.jump, cx = field.width.start + Double(x) * field.width.jump
            let box = Box(x0: max(0, Int((cx - field.width.size / 2).rounded(.down))), y0: max(0, Int((cy - field.height.size / 2).rounded(.down))),
                          x1: min(w, Int((cx + field.width.size / 2).rounded(.up))), y1: min(h, Int((cy + field.height.size / 2).rounded(.up))))
            let image = dataset.batch([b.index]).images
            var crop: [Float] = []
            for ch in 0..<c { for yy in box.y0..<box.y1 { for xx in box.x0..<box.x1 { crop.append(image[(ch * h + yy) * w + xx]) } } }
            return ActivatingPatch(index: b.index, activation: b.value, y: y, x: x, box: box, pixels: crop)
        }
    }
}
