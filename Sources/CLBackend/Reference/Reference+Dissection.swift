// Network Dissection's reductions in plain Swift (contract in `Dissection.swift`). Counts are exact
// integers. The bilinear sample is computed in float32 in the kernel's order, not in Double: the
// threshold `S >= T` is discontinuous, and only the same rounding gives the same masks.

import Foundation

extension ReferenceBackend: DissectionBackend {
    private func storage(_ t: Tensor, _ op: String) throws -> HostStorage {
        guard let s = t.storage as? HostStorage else { throw ShapeError("\(op): \(t) does not live on the reference backend") }
        return s
    }

    private func add(_ increments: [Int64], to counts: Tensor, _ op: String) throws {
        let s = try storage(counts, op)
        var totals = DissectionKey.counts(fromPairs: s.ints)
        for i in totals.indices { totals[i] += increments[i] }
        s.ints = totals.flatMap { [Int32(truncatingIfNeeded: $0), Int32(truncatingIfNeeded: $0 >> 32)] }
    }

    public func accumulateRadixHistogram(activations: Tensor, prefixes: Tensor, shift: Int, counts: Tensor) throws {
        let op = "accumulateRadixHistogram"
        let (n, k, plane) = try DissectionShapes.check(radix: activations, prefixes: prefixes, shift: shift, counts: counts)
        let x = try storage(activations, op).floats, prefix = try storage(prefixes, op).ints
        var bins = [Int64](repeating: 0, count: k * 256)
        for image in 0..<n {
            for unit in 0..<k {
                let p = UInt32(bitPattern: prefix[unit])
                for v in x[((image * k + unit) * plane)..<((image * k + unit + 1) * plane)] where !v.isNaN {
                    let key = DissectionKey.key(v)
                    if shift < 24 && key >> (shift + 8) != p >> (shift + 8) { continue }
                    bins[unit * 256 + Int((key >> shift) & 255)] += 1
                }
            }
        }
        try add(bins, to: counts, op)
    }

    public func accumulateConceptCounts(activations: Tensor, thresholds: Tensor, pixelLabels: Tensor, imageLabels: Tensor,
                                        bins: Int, counts: Tensor) throws {
        let op = "accumulateConceptCounts"
        let s = try DissectionShapes.check(concepts: activations, thresholds: thresholds, pixelLabels: pixelLabels,
                                           imageLabels: imageLabels, bins: bins, counts: counts)
        let a = try storage(activations, op).floats, t = try storage(thresholds, op).floats
        let labels = try storage(pixelLabels, op).ints, imageLevel = try storage(imageLabels, op).ints
        let labelPlane = s.lh * s.lw
        let rows = (0..<s.lh).map { bilinearSample($0, s.h, s.lh) }, cols = (0..<s.lw).map { bilinearSample($0, s.w, s.lw) }
        var totals = [Int64](repeating: 0, count: s.k * bins)
        for n in 0..<s.n {
            for k in 0..<s.k {
                let base = (n * s.k + k) * s.h * s.w
                var masked: Int64 = 0
                for y in 0..<s.lh {
                    let sy = rows[y]
                    for x in 0..<s.lw {
                        let sx = cols[x]
                        let top = (1 - sx.lambda) * a[base + sy.i0 * s.w + sx.i0] + sx.lambda * a[base + sy.i0 * s.w + sx.i1]
                        let bottom = (1 - sx.lambda) * a[base + sy.i1 * s.w + sx.i0] + sx.lambda * a[base + sy.i1 * s.w + sx.i1]
                        let sample: Float = (1 - sy.lambda) * top + sy.lambda * bottom
                        guard sample > t[k] else { continue }
                        masked += 1
                        for p in 0..<s.planes {
                            let label = Int(labels[(n * s.planes + p) * labelPlane + y * s.lw + x])
                            if label >= 1 && label < bins { totals[k * bins + label] += 1 }
                        }
                    }
                }
                for q in 0..<s.q {
                    let label = Int(imageLevel[n * s.q + q])
                    if label >= 1 && label < bins { totals[k * bins + label] += masked }
                }
            }
        }
        try add(totals, to: counts, op)
    }

    public func net2vecLoss(logits: Tensor, pixelLabels: Tensor, concepts: Tensor, weights: Tensor, loss: Tensor, gradient: Tensor) throws {
        let op = "net2vecLoss"
        let s = try DissectionShapes.check(net2vecLoss: logits, pixelLabels: pixelLabels, concepts: concepts, weights: weights,
                                           loss: loss, gradient: gradient)
        let u = try storage(logits, op).floats, labels = try storage(pixelLabels, op).ints
        let concept = try storage(concepts, op).ints, w = try storage(weights, op).floats
        var losses = [Float](repeating: 0, count: u.count), grads = [Float](repeating: 0, count: u.count)
        func softplus(_ x: Double) -> Double { max(x, 0) + log1p(exp(-abs(x))) }
        for n in 0..<s.n {
            for c in 0..<s.c {
                let (wp, wn) = (Double(w[(n * s.c + c) * 2]), Double(w[(n * s.c + c) * 2 + 1]))
                for p in 0..<s.plane {
                    let i = (n * s.c + c) * s.plane + p, x = Double(u[i])
                    let present = (0..<s.planes).contains { labels[(n * s.planes + $0) * s.plane + p] == concept[c] }
                    let sigmoid = 1 / (1 + exp(-x))
                    losses[i] = Float(present ? wp * softplus(-x) : wn * softplus(x))
                    grads[i] = Float(present ? wp * (sigmoid - 1) : wn * sigmoid)
                }
            }
        }
        try storage(loss, op).floats = losses
        try storage(gradient, op).floats = grads
    }

    public func accumulateNet2VecCounts(logits: Tensor, pixelLabels: Tensor, concepts: Tensor, annotated: Tensor, counts: Tensor) throws {
        let op = "accumulateNet2VecCounts"
        let s = try DissectionShapes.check(net2vecCounts: logits, pixelLabels: pixelLabels, concepts: concepts, annotated: annotated, counts: counts)
        let u = try storage(logits, op).floats, labels = try storage(pixelLabels, op).ints
        let concept = try storage(concepts, op).ints, counted = try storage(annotated, op).ints
        var totals = [Int64](repeating: 0, count: s.c * 3)
        for n in 0..<s.n {
            for c in 0..<s.c where counted[n * s.c + c] != 0 {
                for p in 0..<s.plane {
                    let masked = u[(n * s.c + c) * s.plane + p] > 0
                    let present = (0..<s.planes).contains { labels[(n * s.planes + $0) * s.plane + p] == concept[c] }
                    if masked && present { totals[c * 3] += 1 }
                    if masked { totals[c * 3 + 1] += 1 }
                    if present { totals[c * 3 + 2] += 1 }
                }
            }
        }
        try add(totals, to: counts, op)
    }

    /// `bilinear_sample` of Kernels.cl (half-pixel centres): the two inputs and the weight of the second.
    private func bilinearSample(_ dst: Int, _ inLength: Int, _ outLength: Int) -> (i0: Int, i1: Int, lambda: Float) {
        let numerator = max(0, (2 * dst + 1) * inLength - outLength), denominator = 2 * outLength
        let i0 = numerator / denominator
        return (i0, min(i0 + 1, inLength - 1), Float(numerator - i0 * denominator) / Float(denominator))
    }
}
