import CLBackend
import XCTest

/// Network Dissection's two reductions, OpenCL against the reference: integer counts, so they must
/// match exactly. Counts start from non-zero values (the primitives accumulate), inputs hold NaNs,
/// ties and negative values, and the concept counts run with one and with two bin ranges (the
/// kernel splits bins into work-groups of 256).
final class DissectionConformanceTests: XCTestCase {
    /// Int64 pairs of `values` as the counts tensors hold them.
    static func pairs(_ values: [Int64]) -> [Int32] {
        values.flatMap { [Int32(truncatingIfNeeded: $0), Int32(truncatingIfNeeded: $0 >> 32)] }
    }

    func testRadixHistogramMatchesReference() throws {
        let b = try Backends()
        let (n, k, h, w) = (3, 5, 7, 6)
        var values = randomValues(n * k * h * w, scale: 3)
        for i in stride(from: 0, to: values.count, by: 11) { values[i] = 0 }
        for i in stride(from: 5, to: values.count, by: 37) { values[i] = .nan }
        let x = try b.pair(values, [n, k, h, w])
        let start = (0..<(k * 256)).map { _ in Int64.random(in: 0...(1 << 40)) }
        for shift in [24, 16, 8, 0] {
            // Prefixes from a value of each unit, so that some values match at every depth.
            let prefixes = (0..<k).map { unit in Int32(bitPattern: DissectionKey.key(values[(unit * h * w + 3) % values.count].isNaN ? 1 : values[unit * h * w + 3])) }
            let p = try b.pair(ints: prefixes, [k])
            try b.compareInts(op: "accumulateRadixHistogram", direction: "forward", shape: "[\(n)x\(k)x\(h)x\(w)] shift \(shift)") { be, cl in
                let counts = try be.tensor(ints: Self.pairs(start), shape: [k * 512])
                try (be as! any DissectionBackend).accumulateRadixHistogram(activations: cl ? x.cl : x.ref, prefixes: cl ? p.cl : p.ref,
                                                                            shift: shift, counts: counts)
                return counts
            }
        }
    }

    /// The reference histogram at shift 24 against counting the keys' top bytes directly.
    func testRadixHistogramCountsTopBytes() throws {
        let ref = ReferenceBackend()
        let values = randomValues(2 * 3 * 4 * 5, scale: 2)
        var expected = [Int64](repeating: 0, count: 3 * 256)
        for (i, v) in values.enumerated() { expected[((i / 20) % 3) * 256 + Int(DissectionKey.key(v) >> 24)] += 1 }
        let counts = try ref.tensor(ints: Self.pairs([Int64](repeating: 0, count: 3 * 256)), shape: [3 * 512])
        try ref.accumulateRadixHistogram(activations: try ref.tensor(values, shape: [2, 3, 4, 5]),
                                         prefixes: try ref.tensor(ints: [0, 0, 0], shape: [3]), shift: 24, counts: counts)
        XCTAssertEqual(DissectionKey.counts(fromPairs: try ref.readInts(counts)), expected)
    }

    func testKeyPreservesOrder() {
        let values = (randomValues(500, scale: 100) + [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude]).sorted()
        for (a, b) in zip(values, values.dropFirst()) where a < b { XCTAssertLessThan(DissectionKey.key(a), DissectionKey.key(b)) }
        for v in values { XCTAssertEqual(DissectionKey.value(DissectionKey.key(v)).bitPattern, v.bitPattern) }
    }

    func testConceptCountsMatchReference() throws {
        let b = try Backends()
        for (bins, lh, lw) in [(40, 13, 11), (300, 9, 16)] {
            let (n, k, h, w, planes, q) = (3, 4, 5, 4, 2, 3)
            var values = randomValues(n * k * h * w)
            for i in stride(from: 0, to: values.count, by: 13) { values[i] = .nan }
            let x = try b.pair(values, [n, k, h, w])
            let t = try b.pair((0..<k).map { _ in Float.random(in: -0.5...0.5) }, [k])
            let labels = try b.pair(ints: (0..<(n * planes * lh * lw)).map { _ in Int32.random(in: -1...Int32(bins + 2)) }, [n, planes, lh, lw])
            let imageLabels = try b.pair(ints: (0..<(n * q)).map { _ in Int32.random(in: 0..<Int32(bins)) }, [n, q])
            let start = (0..<(k * bins)).map { _ in Int64.random(in: 0...(1 << 33)) }
            try b.compareInts(op: "accumulateConceptCounts", direction: "forward", shape: "[\(n)x\(k)x\(h)x\(w)] -> \(lh)x\(lw), \(bins) bins") { be, cl in
                let counts = try be.tensor(ints: Self.pairs(start), shape: [k * bins * 2])
                try (be as! any DissectionBackend).accumulateConceptCounts(
                    activations: cl ? x.cl : x.ref, thresholds: cl ? t.cl : t.ref, pixelLabels: cl ? labels.cl : labels.ref,
                    imageLabels: cl ? imageLabels.cl : imageLabels.ref, bins: bins, counts: counts)
                return counts
            }
        }
    }

    /// The reference counts against a direct computation: the map upsampled by the reference
    /// `resizeBilinear` (in Double), thresholded, intersected with each label. Activations are
    /// multiples of 1/8 and the upsampling doubles each side, so every sample is exact in float32
    /// and in Double, and thresholds halfway between samples never tie.
    func testConceptCountsAgainstUpsampledMasks() throws {
        let ref = ReferenceBackend()
        let (n, k, h, w, lh, lw, bins) = (2, 3, 4, 5, 8, 10, 6)
        let values = (0..<(n * k * h * w)).map { _ in Float(Int.random(in: -8...8)) / 8 }
        let thresholds = (0..<k).map { _ in Float(Int.random(in: -40...40)) / 128 + 1.0 / 256 }
        let labels = (0..<(n * lh * lw)).map { _ in Int32.random(in: 0..<Int32(bins)) }
        let imageLabels: [Int32] = [2, 0, 5, 3]
        let x = try ref.tensor(values, shape: [n, k, h, w])
        let counts = try ref.tensor(ints: Self.pairs([Int64](repeating: 0, count: k * bins)), shape: [k * bins * 2])
        try ref.accumulateConceptCounts(activations: x, thresholds: try ref.tensor(thresholds, shape: [k]),
                                        pixelLabels: try ref.tensor(ints: labels, shape: [n, 1, lh, lw]),
                                        imageLabels: try ref.tensor(ints: imageLabels, shape: [n, 2]), bins: bins, counts: counts)
        let up = try ref.read(try ref.resizeBilinear(x, BilinearResize(height: lh, width: lw)))
        var expected = [Int64](repeating: 0, count: k * bins)
        for image in 0..<n {
            for unit in 0..<k {
                var masked: Int64 = 0
                for p in 0..<(lh * lw) where up[(image * k + unit) * lh * lw + p] > thresholds[unit] {
                    masked += 1
                    if labels[image * lh * lw + p] > 0 { expected[unit * bins + Int(labels[image * lh * lw + p])] += 1 }
                }
                for label in imageLabels[(image * 2)..<(image * 2 + 2)] where label > 0 { expected[unit * bins + Int(label)] += masked }
            }
        }
        XCTAssertEqual(DissectionKey.counts(fromPairs: try ref.readInts(counts)), expected)
    }
}
