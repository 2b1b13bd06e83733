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

    /// Net2Vec's inputs: logits, two label planes with the concepts' labels among others, and
    /// weights with some images zero (not annotated).
    static func net2vecInputs(_ b: Backends, n: Int, c: Int, h: Int, w: Int) throws
        -> (logits: (ref: Tensor, cl: Tensor), labels: (ref: Tensor, cl: Tensor), concepts: (ref: Tensor, cl: Tensor), labelValues: [Int32], conceptValues: [Int32]) {
        let conceptValues = (0..<c).map { Int32(2 + 2 * $0) }
        let labelValues = (0..<(n * 2 * h * w)).map { _ in Int32.random(in: 0...Int32(2 * c + 2)) }
        return (try b.pair(randomValues(n * c * h * w, scale: 4), [n, c, h, w]), try b.pair(ints: labelValues, [n, 2, h, w]),
                try b.pair(ints: conceptValues, [c]), labelValues, conceptValues)
    }

    func testNet2VecLossMatchesReference() throws {
        let b = try Backends()
        let (n, c, h, w) = (3, 4, 9, 7)
        let x = try Self.net2vecInputs(b, n: n, c: c, h: h, w: w)
        let weights = try b.pair((0..<(n * c)).flatMap { i -> [Float] in i % 5 == 3 ? [0, 0] : [Float.random(in: 0.1...2), Float.random(in: 0.1...2)] }, [n, c, 2])
        for output in ["loss", "gradient"] {
            // exp and log1p of the device round differently from the reference's Double: float32 bound.
            try b.compare(op: "net2vecLoss", direction: output == "loss" ? "forward" : "backward", shape: "[\(n)x\(c)x\(h)x\(w)]") { be, cl in
                let loss = try be.makeTensor([n, c, h, w], dtype: .float32), grad = try be.makeTensor([n, c, h, w], dtype: .float32)
                try be.fill(loss, value: .nan)
                try be.fill(grad, value: .nan)
                try (be as! any DissectionBackend).net2vecLoss(logits: cl ? x.logits.cl : x.logits.ref, pixelLabels: cl ? x.labels.cl : x.labels.ref,
                                                               concepts: cl ? x.concepts.cl : x.concepts.ref, weights: cl ? weights.cl : weights.ref,
                                                               loss: loss, gradient: grad)
                return output == "loss" ? loss : grad
            }
        }
    }

    func testNet2VecCountsMatchReferenceAndDirectCount() throws {
        let b = try Backends()
        let (n, c, h, w) = (3, 4, 9, 7)
        let x = try Self.net2vecInputs(b, n: n, c: c, h: h, w: w)
        let annotatedValues = (0..<(n * c)).map { Int32($0 % 4 == 1 ? 0 : 1) }
        let annotated = try b.pair(ints: annotatedValues, [n, c])
        let start = (0..<(c * 3)).map { _ in Int64.random(in: 0...(1 << 33)) }
        try b.compareInts(op: "accumulateNet2VecCounts", direction: "forward", shape: "[\(n)x\(c)x\(h)x\(w)]") { be, cl in
            let counts = try be.tensor(ints: Self.pairs(start), shape: [c * 6])
            try (be as! any DissectionBackend).accumulateNet2VecCounts(logits: cl ? x.logits.cl : x.logits.ref, pixelLabels: cl ? x.labels.cl : x.labels.ref,
                                                                       concepts: cl ? x.concepts.cl : x.concepts.ref,
                                                                       annotated: cl ? annotated.cl : annotated.ref, counts: counts)
            return counts
        }
        // The reference against counting directly.
        let u = try b.reference.read(x.logits.ref), plane = h * w
        var expected = start
        for image in 0..<n {
            for j in 0..<c where annotatedValues[image * c + j] == 1 {
                for p in 0..<plane {
                    let masked = u[(image * c + j) * plane + p] > 0
                    let present = x.labelValues[(image * 2) * plane + p] == x.conceptValues[j] || x.labelValues[(image * 2 + 1) * plane + p] == x.conceptValues[j]
                    expected[j * 3] += masked && present ? 1 : 0
                    expected[j * 3 + 1] += masked ? 1 : 0
                    expected[j * 3 + 2] += present ? 1 : 0
                }
            }
        }
        let counts = try b.reference.tensor(ints: Self.pairs(start), shape: [c * 6])
        try b.reference.accumulateNet2VecCounts(logits: x.logits.ref, pixelLabels: x.labels.ref, concepts: x.concepts.ref, annotated: annotated.ref, counts: counts)
        XCTAssertEqual(DissectionKey.counts(fromPairs: try b.reference.readInts(counts)), expected)
    }

    /// Net2Vec's training gradient (1x1 conv, bilinear upsampling, weighted BCE; backward through
    /// resizeBilinearBackward, conv2dBackwardFilter and biasGradient, as `Net2Vec` composes them) on
    /// the device against central finite differences of the reference's loss in every weight and
    /// bias. Step 1e-2 on a loss of size ~1: truncation error ~1e-4 relative, float32 rounding of the
    /// loss sum ~1e-5; tolerance 2e-3 of the largest gradient.
    func testNet2VecGradientMatchesFiniteDifferences() throws {
        let b = try Backends()
        let (n, c, k, h, w, lh, lw) = (2, 2, 3, 3, 4, 7, 9)
        let maps = randomValues(n * k * h * w, scale: 1).map(abs)
        let labels = (0..<(n * lh * lw)).map { _ in Int32.random(in: 0...3) }
        let weights = (0..<(n * c)).flatMap { _ in [Float.random(in: 0.5...1.5) / Float(lh * lw), Float.random(in: 0.5...1.5) / Float(lh * lw)] }
        let resize = BilinearResize(height: lh, width: lw), conv = Conv2D(window: Window2D(kernel: (1, 1)))
        func loss(_ be: Backend, _ wv: [Float], _ bv: [Float], gradients: Bool) throws -> (Double, [Float]) {
            let d = be as! any DissectionBackend
            let a = try be.tensor(maps, shape: [n, k, h, w])
            let logits = try be.resizeBilinear(try be.conv2d(a, weight: try be.tensor(wv, shape: [c, k, 1, 1]), bias: try be.tensor(bv, shape: [c]), conv), resize)
            let l = try be.makeTensor(logits.shape, dtype: .float32), g = try be.makeTensor(logits.shape, dtype: .float32)
            try d.net2vecLoss(logits: logits, pixelLabels: try be.tensor(ints: labels, shape: [n, 1, lh, lw]), concepts: try be.tensor(ints: [1, 2], shape: [c]),
                              weights: try be.tensor(weights, shape: [n, c, 2]), loss: l, gradient: g)
            let total = try be.read(l).reduce(0.0) { $0 + Double($1) }
            guard gradients else { return (total, []) }
            let low = try be.resizeBilinearBackward(g, inputShape: [n, c, h, w], resize)
            return (total, try be.read(try be.conv2dBackwardFilter(a, outputGrad: low, weightShape: [c, k, 1, 1], conv)) + be.read(try be.biasGradient(low)))
        }
        let w0 = randomValues(c * k, scale: 1), b0 = randomValues(c, scale: 0.5)
        let analytic = try loss(b.opencl, w0, b0, gradients: true).1
        let eps: Float = 1e-2
        var numeric: [Float] = []
        for i in 0..<(c * k + c) {
            func shifted(_ delta: Float) throws -> Double {
                var (wv, bv) = (w0, b0)
                if i < c * k { wv[i] += delta } else { bv[i - c * k] += delta }
                return try loss(b.reference, wv, bv, gradients: false).0
            }
            numeric.append(Float((try shifted(eps) - shifted(-eps)) / Double(2 * eps)))
        }
        let scale = numeric.map(abs).max()!
        XCTAssertGreaterThan(scale, 1e-3, "the gradient is not trivially zero")
        for (i, (a, e)) in zip(analytic, numeric).enumerated() { XCTAssertEqual(a, e, accuracy: 2e-3 * scale, "parameter \(i)") }
    }
}
