import XCTest
@testable import CLBackend

/// The synthesis ops: OpenCL against the reference (NaN-poisoned outputs), reference backwards
/// against central finite differences, and the generator's draws against their definition.
final class SynthesisOpsTests: XCTestCase {
    private let affine = RandomAffine(scale: 0.8...1.2, maxDegrees: 20)

    func testRandomRollConforms() throws {
        let b = try Backends()
        let input: Shape = [3, 2, 7, 6]
        let x = try b.random(input)
        for (draw, maxShift) in [(RandomDraw(seed: 7, step: 3, firstStream: 2), 3), (RandomDraw(seed: 123_456, step: 999), 9)] {
            let op = RandomRoll(maxShift: maxShift)
            for inverse in [false, true] {
                try b.compare(op: "randomRoll", direction: inverse ? "backward" : "forward", shape: "\(input), max \(maxShift)") { be, cl in
                    try be.randomRoll(cl ? x.cl : x.ref, op, draw, inverse: inverse)
                }
            }
            // Rolling and rolling back is the identity on both backends.
            let back = try b.opencl.read(b.opencl.randomRoll(b.opencl.randomRoll(x.cl, op, draw), op, draw, inverse: true))
            XCTAssertEqual(back, try b.opencl.read(x.cl))
        }
    }

    func testRandomShiftsCoverTheRangeUniformly() {
        var counts = [Int](repeating: 0, count: 7)
        for step in 0..<7000 { counts[SynthesisRandom.shift(seed: 5, step: UInt32(step), stream: 0, k: 0, max: 3) + 3] += 1 }
        // 1000 expected per value; 5 standard deviations (~ 5 * 30) of a binomial count.
        for c in counts { XCTAssertEqual(Double(c), 1000, accuracy: 150, "\(counts)") }
    }

    func testRandomAffineConforms() throws {
        let b = try Backends()
        for input: Shape in [[2, 3, 9, 11], [3, 1, 16, 16]] {
            let x = try b.random(input), dy = try b.random(input)
            for draw in [RandomDraw(seed: 1, step: 1), RandomDraw(seed: 77, step: 40, firstStream: 5)] {
                let shape = "\(input), seed \(draw.seed) step \(draw.step)"
                try b.compare(op: "randomAffine", direction: "forward", shape: shape) { be, cl in try be.randomAffine(cl ? x.cl : x.ref, affine, draw) }
                try b.compare(op: "randomAffine", direction: "backward", shape: shape) { be, cl in
                    try be.randomAffineBackward(cl ? dy.cl : dy.ref, affine, draw)
                }
            }
        }
    }

    func testFourierImageConforms() throws {
        let b = try Backends()
        // Even and odd widths (a Nyquist column or none), non-square.
        for input: Shape in [[2, 3, 8, 6], [1, 1, 7, 9], [1, 3, 16, 16]] {
            let op = FourierImage(height: input[2], width: input[3])
            let s = try b.random(op.spectrumShape(batch: input[0], channels: input[1])), dy = try b.random(input)
            try b.compare(op: "fourierImage", direction: "forward", shape: "\(input)") { be, cl in try be.fourierImage(cl ? s.cl : s.ref, op) }
            try b.compare(op: "fourierImage", direction: "backward", shape: "\(input)") { be, cl in try be.fourierImageBackward(cl ? dy.cl : dy.ref, op) }
        }
    }

    func testColorSigmoidConforms() throws {
        let b = try Backends()
        for input: Shape in [[2, 3, 5, 4], [3, 1, 6, 6]] {
            let c = input[1]
            let m = try b.pair(c == 3 ? imageNetColorDecorrelation : [1], [c, c]), z = try b.random(input, scale: 3), dy = try b.random(input)
            try b.compare(op: "colorSigmoid", direction: "forward", shape: "\(input)") { be, cl in try be.colorSigmoid(cl ? z.cl : z.ref, matrix: cl ? m.cl : m.ref) }
            let y = try b.pair(b.reference.read(b.reference.colorSigmoid(z.ref, matrix: m.ref)), input)
            try b.compare(op: "colorSigmoid", direction: "backward", shape: "\(input)") { be, cl in
                try be.colorSigmoidBackward(cl ? dy.cl : dy.ref, output: cl ? y.cl : y.ref, matrix: cl ? m.cl : m.ref)
            }
        }
    }

    /// Non-negative features, as at the ReLU layers the term is used on: with signed ones a pair of
    /// nearly orthogonal Grams makes the cosine a sum that cancels to near zero, and its relative
    /// error unbounded (a [2, 6, 1, 1] draw reached 2.6e-5). The backward's cotangent is still a
    /// difference of two terms of similar size (G_j / (|G_i||G_j|) - cos G_i / |G_i|^2), so its bound
    /// allows for that cancellation.
    func testGramDiversityConforms() throws {
        let b = try Backends()
        for input: Shape in [[3, 4, 5, 3], [2, 6, 1, 1], [4, 7], [1, 3, 2, 2]] {
            let x = try b.pair(randomValues(input.count).map(abs), input), dy = try b.pair([0.7], [1])
            try b.compare(op: "gramDiversity", direction: "forward", shape: "\(input)") { be, cl in try be.gramDiversity(cl ? x.cl : x.ref) }
            try b.compare(op: "gramDiversity", direction: "backward", shape: "\(input)", bound: 1e-4) { be, cl in
                try be.gramDiversityBackward(cl ? dy.cl : dy.ref, input: cl ? x.cl : x.ref)
            }
        }
    }

    /// Identical images are cosine 1 to each other: D = N - 1. Images whose features live on
    /// disjoint channels have orthogonal Gram matrices: D = 0, whatever their magnitudes.
    func testGramDiversityClosedForms() throws {
        let cl = try Backends().opencl
        let one = randomValues(3 * 4), n = 4
        let same = try cl.read(cl.gramDiversity(cl.tensor(Array([[Float]](repeating: one, count: n).joined()), shape: [n, 3, 2, 2])))
        XCTAssertEqual(same[0], Float(n - 1), accuracy: 1e-5)
        var disjoint = [Float](repeating: 0, count: 2 * 2 * 4)
        for p in 0..<4 { disjoint[p] = Float(p + 1); disjoint[2 * 4 + 4 + p] = 3 * Float(p) - 2 }
        XCTAssertEqual(try cl.read(cl.gramDiversity(cl.tensor(disjoint, shape: [2, 2, 2, 2])))[0], 0, accuracy: 1e-7)
    }

    /// The transform ops are linear, so a finite difference of `<u, f(x)>` is exact up to rounding.
    func testReferenceBackwardsMatchFiniteDifferences() {
        let draw = RandomDraw(seed: 3, step: 11, firstStream: 1)
        let affineShape: Shape = [2, 2, 7, 8]
        check("randomAffine", shape: affineShape, outputCount: affineShape.count,
              forward: { Reference.randomAffineForward(self.affine, draw, input: $0, shape: affineShape) },
              backward: { Reference.randomAffineBackward(self.affine, draw, outputGrad: $0, shape: affineShape) })
        let roll = RandomRoll(maxShift: 4)
        check("randomRoll", shape: affineShape, outputCount: affineShape.count,
              forward: { Reference.randomRoll(roll, draw, inverse: false, input: $0, shape: affineShape) },
              backward: { Reference.randomRoll(roll, draw, inverse: true, input: $0, shape: affineShape) })
        for image: Shape in [[1, 2, 6, 5], [1, 1, 4, 8]] {
            let op = FourierImage(height: image[2], width: image[3], decay: 1)
            let spectrum = op.spectrumShape(batch: image[0], channels: image[1])
            check("fourierImage \(image)", shape: spectrum, outputCount: image.count,
                  forward: { Reference.fourierImageForward(op, spectrum: $0, spectrumShape: spectrum) },
                  backward: { Reference.fourierImageBackward(op, outputGrad: $0, imageShape: image) })
        }
        let gram = (0..<(3 * 4 * 6)).map { _ in Double.random(in: -1...1) }
        check("gramDiversity", shape: [3, 4, 2, 3], outputCount: 1, at: gram,
              forward: { [Reference.gramDiversityForward(input: $0, n: 3, c: 4, p: 6)] },
              backward: { Reference.gramDiversityBackward(input: gram, n: 3, c: 4, p: 6, outputGrad: $0[0]) })
        let m = imageNetColorDecorrelation.map(Double.init), colorShape: Shape = [2, 3, 3, 2]
        let z = (0..<colorShape.count).map { _ in Double.random(in: -2...2) }
        let y = Reference.colorSigmoidForward(matrix: m, input: z, shape: colorShape)
        check("colorSigmoid", shape: colorShape, outputCount: colorShape.count, at: z,
              forward: { Reference.colorSigmoidForward(matrix: m, input: $0, shape: colorShape) },
              backward: { Reference.colorSigmoidBackward(matrix: m, output: y, outputGrad: $0, shape: colorShape) })
    }

    /// Inverse DFT of a single frequency is the closed-form cosine: a real coefficient r at
    /// (ky, kx), 0 < kx < W/2, gives x[h, w] = 2 r scale cos(2 pi (ky h / H + kx w / W)) / (H W).
    func testFourierImageOfOneFrequencyIsACosine() {
        let op = FourierImage(height: 6, width: 8)
        let shape = op.spectrumShape(batch: 1, channels: 1)
        var s = [Double](repeating: 0, count: shape.count)
        s[(2 * op.spectrumWidth + 3) * 2] = 1.5
        let x = Reference.fourierImageForward(op, spectrum: s, spectrumShape: shape)
        for h in 0..<6 {
            for w in 0..<8 {
                let expected = 2 * 1.5 * op.scale(ky: 2, kx: 3) * cos(2 * .pi * (2.0 * Double(h) / 6 + 3.0 * Double(w) / 8)) / 48
                XCTAssertEqual(x[h * 8 + w], expected, accuracy: 1e-12)
            }
        }
    }

    private func check(_ label: String, shape: Shape, outputCount: Int, at point: [Double]? = nil,
                       forward: ([Double]) -> [Double], backward: ([Double]) -> [Double], file: StaticString = #filePath, line: UInt = #line) {
        let x = point ?? (0..<shape.count).map { _ in Double.random(in: -1...1) }
        let u = (0..<outputCount).map { _ in Double.random(in: -1...1) }
        let g = backward(u)
        let eps = 1e-6
        let coordinates = Array(x.indices.shuffled().prefix(40))
        var worst = 0.0
        for i in coordinates {
            var (p, m) = (x, x)
            p[i] += eps; m[i] -= eps
            let fd = (zip(u, forward(p)).reduce(0) { $0 + $1.0 * $1.1 } - zip(u, forward(m)).reduce(0) { $0 + $1.0 * $1.1 }) / (2 * eps)
            worst = max(worst, abs(fd - g[i]) / max(1, abs(fd)))
        }
        // Central differences in Float64: rounding ~1e-10 relative; 1e-6 still catches any wrong tap.
        XCTAssertLessThan(worst, 1e-6, "\(label): finite differences disagree by \(worst)", file: file, line: line)
    }
}
