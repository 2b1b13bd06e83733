// Network Dissection's device reductions (contract in `Dissection.swift`). Kernels: `Sources/Kernels.cl`,
// block "Network Dissection". Integer counts, no atomics: they match the reference exactly.

extension OpenCLBackend: DissectionBackend {
    /// Work-items per dissection work-group: each holds a 256-bin int row in local memory, so as
    /// many as half the local memory allows, at most 16 and within the work-group limit.
    var dissectionGroupSize: Int {
        let rowBytes = 256 * 4
        return max(1, min(16, profile.maxWorkGroupSize, profile.localMemoryBytes / 2 / rowBytes))
    }

    public func accumulateRadixHistogram(activations: Tensor, prefixes: Tensor, shift: Int, counts: Tensor) throws {
        let (n, k, plane) = try DissectionShapes.check(radix: activations, prefixes: prefixes, shift: shift, counts: counts)
        let g = dissectionGroupSize
        try launch("dissect_radix_histogram", global: [k * g], local: [g],
                   .tensor(activations), .tensor(prefixes), .tensor(counts), .int(n), .int(k), .int(plane), .int(shift),
                   .localFloats(g * 256))
    }

    public func accumulateConceptCounts(activations: Tensor, thresholds: Tensor, pixelLabels: Tensor, imageLabels: Tensor,
                                        bins: Int, counts: Tensor) throws {
        let s = try DissectionShapes.check(concepts: activations, thresholds: thresholds, pixelLabels: pixelLabels,
                                           imageLabels: imageLabels, bins: bins, counts: counts)
        let g = dissectionGroupSize
        let chunks = (bins + 255) / 256
        try launch("dissect_concept_counts", global: [s.k * chunks * g], local: [g],
                   .tensor(activations), .tensor(thresholds), .tensor(pixelLabels), .tensor(imageLabels), .tensor(counts),
                   .int(s.n), .int(s.k), .int(s.h), .int(s.w), .int(s.planes), .int(s.lh), .int(s.lw), .int(s.q), .int(bins),
                   .int(chunks), .localFloats(g * 256))
    }

    public func net2vecLoss(logits: Tensor, pixelLabels: Tensor, concepts: Tensor, weights: Tensor, loss: Tensor, gradient: Tensor) throws {
        let s = try DissectionShapes.check(net2vecLoss: logits, pixelLabels: pixelLabels, concepts: concepts, weights: weights,
                                           loss: loss, gradient: gradient)
        try launchElementwise("net2vec_bce", count: logits.count,
                              [.tensor(logits), .tensor(pixelLabels), .tensor(concepts), .tensor(weights), .tensor(loss), .tensor(gradient),
                               .int(s.c), .int(s.planes), .int(s.plane)])
    }

    public func accumulateNet2VecCounts(logits: Tensor, pixelLabels: Tensor, concepts: Tensor, annotated: Tensor, counts: Tensor) throws {
        let s = try DissectionShapes.check(net2vecCounts: logits, pixelLabels: pixelLabels, concepts: concepts, annotated: annotated, counts: counts)
        let g = min(64, profile.maxWorkGroupSize)
        try launch("net2vec_counts", global: [s.c * g], local: [g],
                   .tensor(logits), .tensor(pixelLabels), .tensor(concepts), .tensor(annotated), .tensor(counts),
                   .int(s.n), .int(s.c), .int(s.planes), .int(s.plane), .localFloats(g * 3))
    }
}
