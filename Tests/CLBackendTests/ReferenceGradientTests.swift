import XCTest
@testable import CLBackend

/// A seeded SplitMix64, so that fresh random inputs each run stay reproducible: every failure
/// message carries the seed, and `LOUPE_SEED=<seed>` replays it.
fileprivate struct SeededGenerator: RandomNumberGenerator {
    let seed: UInt64
    private var state: UInt64

    init() {
        let replay = ProcessInfo.processInfo.environment["LOUPE_SEED"].flatMap { UInt64($0) }
        seed = replay ?? UInt64.random(in: .min ... .max)
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform(_ count: Int, in range: Range<Double> = -1..<1) -> [Double] {
        (0..<count).map { _ in Double.random(in: range, using: &self) }
    }

    /// Values in `[-1, 1)` at least `gap` apart from each other and from every kink, so that a
    /// finite-difference step (1e-6) crosses no kink and breaks no tie.
    mutating func separated(_ count: Int, avoiding kinks: [Double] = [], gap: Double = 1e-3) -> [Double] {
        var values: [Double] = []
        while values.count < count {
            let v = Double.random(in: -1..<1, using: &self)
            if (values + kinks).allSatisfy({ abs($0 - v) >= gap }) { values.append(v) }
        }
        return values
    }
}

fileprivate func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
fileprivate func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }

/// `||a - b|| / max(||a||, ||b||)`, and 0 when both vanish.
fileprivate func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    let scale = max(norm(a), norm(b))
    return scale == 0 ? 0 : norm(zip(a, b).map { $0 - $1 }) / scale
}

/// The finite-difference step and bound. Central differences in Float64 have truncation error
/// O(eps^2 |f'''|) ~ 1e-12 and rounding error O(1e-16 |f| / eps) ~ 1e-10 relative to the scalar
/// `<u, f>`; a 1e-6 bound on the relative error of the tested gradient entries leaves a wide
/// margin above both while still catching any wrong index or factor.
fileprivate let eps = 1e-6
fileprivate let bound = 1e-6

/// Checks `gradient`, the claimed `d<u, forward(x)>/dx` at `x`, against central differences at
/// every coordinate when there are at most 64, else at 40 random ones.
fileprivate func checkGradient(_ label: String, at x: [Double], cotangent u: [Double], gradient: [Double],
                               rng: inout SeededGenerator, file: StaticString = #filePath, line: UInt = #line,
                               forward: ([Double]) -> [Double]) {
    XCTAssertEqual(gradient.count, x.count, "\(label): gradient size", file: file, line: line)
    let coordinates = x.count <= 64 ? Array(x.indices) : Array(x.indices.shuffled(using: &rng).prefix(40))
    let differences = coordinates.map { i in
        var (plus, minus) = (x, x)
        plus[i] += eps
        minus[i] -= eps
        return (dot(u, forward(plus)) - dot(u, forward(minus))) / (2 * eps)
    }
    let error = relativeError(coordinates.map { gradient[$0] }, differences)
    XCTAssertLessThanOrEqual(error, bound, "\(label): relative error \(error) (seed \(rng.seed))", file: file, line: line)
}

final class ReferenceGradientTests: XCTestCase {
    // MARK: Convolution

    private struct ConvCase {
        var op: Conv2D, input: Shape, weight: Shape
    }

    private let convCases: [ConvCase] = [
        // Grouped, non-square kernel, stride and dilation per axis, asymmetric padding.
        ConvCase(op: Conv2D(window: Window2D(kernel: (3, 2), stride: (2, 1), dilation: (1, 2), padding: (1, 0, 2, 1)), groups: 2),
                 input: [3, 4, 7, 6], weight: [6, 2, 3, 2]),
        // Depthwise with channel multiplier 2.
        ConvCase(op: Conv2D(window: Window2D(kernel: (3, 3), stride: (2, 2), dilation: (2, 2), padding: (0, 1, 1, 0)), groups: 3),
                 input: [2, 3, 9, 8], weight: [6, 1, 3, 3]),
        // Dense, stride 3 with ceil mode (a partial last window).
        ConvCase(op: Conv2D(window: Window2D(kernel: (2, 3), stride: (3, 3), padding: (1, 1, 0, 1), ceilMode: true)),
                 input: [3, 2, 5, 7], weight: [3, 2, 2, 3]),
    ]

    func testConv2dGradients() throws {
        var rng = SeededGenerator()
        for (index, c) in convCases.enumerated() {
            let outShape = try c.op.outputShape(input: c.input, weight: c.weight)
            XCTAssertEqual(outShape, Reference.conv2dOutputShape(c.op, inputShape: c.input, weightShape: c.weight))
            let (x, w, b) = (rng.uniform(c.input.count), rng.uniform(c.weight.count), rng.uniform(c.weight[0]))
            let u = rng.uniform(outShape.count)
            func forward(_ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
                Reference.conv2dForward(c.op, input: x, inputShape: c.input, weight: w, weightShape: c.weight, bias: b)
            }
            checkGradient("conv \(index) data", at: x, cotangent: u,
                          gradient: Reference.conv2dBackwardData(c.op, outputGrad: u, weight: w, weightShape: c.weight, inputShape: c.input),
                          rng: &rng) { forward($0, w, b) }
            checkGradient("conv \(index) filter", at: w, cotangent: u,
                          gradient: Reference.conv2dBackwardFilter(c.op, input: x, inputShape: c.input, outputGrad: u, weightShape: c.weight),
                          rng: &rng) { forward(x, $0, b) }
            checkGradient("conv \(index) bias", at: b, cotangent: u,
                          gradient: Reference.channelSum(u, shape: outShape), rng: &rng) { forward(x, w, $0) }
        }
    }

    func testBiasAddGradientIsChannelSum() {
        var rng = SeededGenerator()
        for shape: Shape in [[3, 5, 2, 3], [3, 7]] {
            let (x, b, u) = (rng.uniform(shape.count), rng.uniform(shape[1]), rng.uniform(shape.count))
            checkGradient("biasAdd \(shape)", at: b, cotangent: u, gradient: Reference.channelSum(u, shape: shape), rng: &rng) {
                Reference.biasAdd(x, shape: shape, bias: $0)
            }
        }
    }

    // MARK: Pooling

    private let maxPools: [(op: MaxPool2D, input: Shape)] = [
        (MaxPool2D(window: Window2D(kernel: (3, 2), stride: (2, 2), padding: (1, 0, 1, 1), ceilMode: true)), [3, 2, 7, 8]),
        (MaxPool2D(window: Window2D(kernel: (3, 3), stride: (1, 2), dilation: (2, 1), padding: (0, 1, 1, 0))), [3, 2, 6, 5]),
        (MaxPool2D.global(for: [3, 4, 3, 5]), [3, 4, 3, 5]),
    ]

    func testMaxPoolGradient() throws {
        var rng = SeededGenerator()
        for (index, c) in maxPools.enumerated() {
            let outShape = try c.op.outputShape(input: c.input)
            let x = rng.separated(c.input.count)
            let u = rng.uniform(outShape.count)
            let switches = Reference.maxPool2dForward(c.op, input: x, inputShape: c.input).switches
            checkGradient("maxPool \(index)", at: x, cotangent: u,
                          gradient: Reference.maxPool2dBackward(outputGrad: u, switches: switches, inputShape: c.input),
                          rng: &rng) { Reference.maxPool2dForward(c.op, input: $0, inputShape: c.input).output }
        }
    }

    /// Max unpooling is linear in the pooled values; `gatherSwitches` must be its gradient.
    func testGatherSwitchesIsGradientOfUnpooling() throws {
        var rng = SeededGenerator()
        for (index, c) in maxPools.enumerated() {
            let outShape = try c.op.outputShape(input: c.input)
            let switches = Reference.maxPool2dForward(c.op, input: rng.separated(c.input.count), inputShape: c.input).switches
            let (v, u) = (rng.uniform(outShape.count), rng.uniform(c.input.count))
            checkGradient("unpool \(index)", at: v, cotangent: u,
                          gradient: Reference.gatherSwitches(input: u, inputShape: c.input, switches: switches),
                          rng: &rng) { Reference.maxPool2dBackward(outputGrad: $0, switches: switches, inputShape: c.input) }
        }
    }

    func testAvgPoolGradients() throws {
        var rng = SeededGenerator()
        let windows = [
            Window2D(kernel: (3, 2), stride: (2, 2), padding: (1, 0, 1, 1), ceilMode: true),
            Window2D(kernel: (2, 3), stride: (2, 1), padding: (0, 1, 1, 0)),
            Window2D(kernel: 3, stride: 2, padding: 1, ceilMode: true),
        ]
        let input: Shape = [3, 2, 7, 6]
        for (index, window) in windows.enumerated() {
            for countIncludePad in [true, false] {
                let op = AvgPool2D(window: window, countIncludePad: countIncludePad)
                let outShape = try op.outputShape(input: input)
                let (x, u) = (rng.uniform(input.count), rng.uniform(outShape.count))
                checkGradient("avgPool \(index) countIncludePad \(countIncludePad)", at: x, cotangent: u,
                              gradient: Reference.avgPool2dBackward(op, outputGrad: u, inputShape: input),
                              rng: &rng) { Reference.avgPool2dForward(op, input: $0, inputShape: input) }
            }
        }
    }

    // MARK: Activations and clamp

    func testActivationGradients() {
        var rng = SeededGenerator()
        let x = rng.separated(90, avoiding: [0])
        let u = rng.uniform(x.count)
        let activations: [Activation] = [.relu, .leakyRelu(slope: 0.1)]
        for activation in activations {
            // Leaky ReLU ignores the rule; ReLU's standard rule is its true gradient.
            let rules: [ReLUBackwardRule] = activation == .relu ? [.standard] : ReLUBackwardRule.allCases
            for rule in rules {
                checkGradient("\(activation) \(rule)", at: x, cotangent: u,
                              gradient: Reference.activationBackward(activation, rule: rule, input: x, outputGrad: u),
                              rng: &rng) { Reference.activationForward(activation, input: $0) }
            }
        }
    }

    func testReLUBackwardRules() {
        let z: [Double] = [-2, -1, 1, 2]
        let g: [Double] = [-3, 4, -5, 6]
        XCTAssertEqual(Reference.activationBackward(.relu, rule: .standard, input: z, outputGrad: g), [0, 0, -5, 6])
        XCTAssertEqual(Reference.activationBackward(.relu, rule: .guided, input: z, outputGrad: g), [0, 0, 0, 6])
        XCTAssertEqual(Reference.activationBackward(.relu, rule: .deconvnet, input: z, outputGrad: g), [0, 4, 0, 6])
    }

    func testClampGradient() {
        var rng = SeededGenerator()
        let (lower, upper) = (-0.4, 0.3)
        let x = rng.separated(90, avoiding: [lower, upper])
        let u = rng.uniform(x.count)
        checkGradient("clamp", at: x, cotangent: u,
                      gradient: Reference.clampBackward(min: lower, max: upper, input: x, outputGrad: u),
                      rng: &rng) { Reference.clampForward(min: lower, max: upper, input: $0) }
    }

    // MARK: Normalization

    func testLocalResponseNormGradient() {
        var rng = SeededGenerator()
        let shape: Shape = [3, 6, 2, 3]
        // alpha large enough that the cross-channel term matters; sizes odd, even and wider than C.
        for op in [LocalResponseNorm(size: 3, alpha: 0.5, beta: 0.75, k: 1.5),
                   LocalResponseNorm(size: 4, alpha: 0.8, beta: 0.6, k: 1),
                   LocalResponseNorm(size: 9, alpha: 1, beta: 1.2, k: 2)] {
            let (x, u) = (rng.uniform(shape.count, in: -2..<2), rng.uniform(shape.count))
            checkGradient("lrn size \(op.size)", at: x, cotangent: u,
                          gradient: Reference.localResponseNormBackward(op, input: x, shape: shape, outputGrad: u),
                          rng: &rng) { Reference.localResponseNormForward(op, input: $0, shape: shape) }
        }
    }

    func testLocalResponseNormWindow() {
        // ONNX window [c - floor((size-1)/2), c + ceil((size-1)/2)], clipped.
        XCTAssertEqual(Reference.lrnWindow(0, size: 4, channels: 6), 0..<3)
        XCTAssertEqual(Reference.lrnWindow(3, size: 4, channels: 6), 2..<6)
        XCTAssertEqual(Reference.lrnWindow(5, size: 4, channels: 6), 4..<6)
        XCTAssertEqual(Reference.lrnWindow(2, size: 3, channels: 6), 1..<4)
        let op = LocalResponseNorm(size: 1, alpha: 0.5, beta: 0.75, k: 2)
        let y = Reference.localResponseNormForward(op, input: [1.5, -2], shape: [1, 2])
        XCTAssertEqual(y[0], 1.5 / pow(2 + 0.5 * 2.25, 0.75), accuracy: 1e-15)
        XCTAssertEqual(y[1], -2 / pow(2 + 0.5 * 4, 0.75), accuracy: 1e-15)
    }

    func testBatchNormGradients() {
        var rng = SeededGenerator()
        for shape: Shape in [[3, 4, 2, 3], [3, 5]] {
            let c = shape[1]
            let (x, scale, shift, mean) = (rng.uniform(shape.count), rng.uniform(c), rng.uniform(c), rng.uniform(c))
            let variance = rng.uniform(c, in: 0.1..<2)
            let u = rng.uniform(shape.count)
            let epsilon = 1e-3
            func forward(_ x: [Double], _ scale: [Double], _ shift: [Double]) -> [Double] {
                Reference.batchNormForward(epsilon: epsilon, input: x, shape: shape, scale: scale, shift: shift, mean: mean, variance: variance)
            }
            let grads = Reference.batchNormBackward(epsilon: epsilon, input: x, shape: shape, outputGrad: u, scale: scale, mean: mean, variance: variance)
            checkGradient("batchNorm \(shape) input", at: x, cotangent: u, gradient: grads.input, rng: &rng) { forward($0, scale, shift) }
            checkGradient("batchNorm \(shape) scale", at: scale, cotangent: u, gradient: grads.scale, rng: &rng) { forward(x, $0, shift) }
            checkGradient("batchNorm \(shape) shift", at: shift, cotangent: u, gradient: grads.shift, rng: &rng) { forward(x, scale, $0) }
        }
    }

    // MARK: Classifier heads

    func testSoftmaxGradients() {
        var rng = SeededGenerator()
        let shape: Shape = [3, 7]
        for log in [false, true] {
            let (x, u) = (rng.uniform(shape.count, in: -3..<3), rng.uniform(shape.count))
            let y = Reference.softmaxForward(log: log, input: x, shape: shape)
            checkGradient("softmax log \(log)", at: x, cotangent: u,
                          gradient: Reference.softmaxBackward(log: log, output: y, outputGrad: u, shape: shape),
                          rng: &rng) { Reference.softmaxForward(log: log, input: $0, shape: shape) }
        }
    }

    func testCrossEntropyGradient() {
        var rng = SeededGenerator()
        let shape: Shape = [3, 7]
        let x = rng.uniform(shape.count, in: -3..<3)
        let labels = (0..<3).map { _ in Int32.random(in: 0..<7, using: &rng) }
        let u = rng.uniform(3)
        checkGradient("crossEntropy", at: x, cotangent: u,
                      gradient: Reference.crossEntropyBackward(logits: x, shape: shape, labels: labels, lossGrad: u),
                      rng: &rng) { Reference.crossEntropyForward(logits: $0, shape: shape, labels: labels) }
    }

    func testSoftmaxIdentities() {
        var rng = SeededGenerator()
        let shape: Shape = [3, 6]
        // Large logits: the max subtraction keeps exp from overflowing. `x - lse` then carries an
        // absolute rounding error of about ulp(900) ~ 1e-13, hence the 1e-12 tolerance.
        let x = rng.uniform(shape.count, in: 500..<900)
        let probabilities = Reference.softmaxForward(log: false, input: x, shape: shape)
        let logProbabilities = Reference.softmaxForward(log: true, input: x, shape: shape)
        let labels: [Int32] = [0, 5, 2]
        let losses = Reference.crossEntropyForward(logits: x, shape: shape, labels: labels)
        for n in 0..<3 {
            XCTAssertEqual(probabilities[(n * 6)..<(n * 6 + 6)].reduce(0, +), 1, accuracy: 1e-12)
            XCTAssertEqual(logProbabilities[(n * 6)..<(n * 6 + 6)].reduce(0) { $0 + exp($1) }, 1, accuracy: 1e-12)
            XCTAssertEqual(losses[n], -logProbabilities[n * 6 + Int(labels[n])], accuracy: 1e-12)
        }
    }

    // MARK: Image-space ops

    func testBilinearGradients() {
        var rng = SeededGenerator()
        let cases: [(input: Shape, height: Int, width: Int)] = [([3, 2, 4, 5], 7, 9), ([2, 2, 7, 9], 3, 4), ([2, 1, 5, 3], 1, 6)]
        for c in cases {
            for alignCorners in [false, true] {
                let op = BilinearResize(height: c.height, width: c.width, alignCorners: alignCorners)
                let (x, u) = (rng.uniform(c.input.count), rng.uniform(c.input[0] * c.input[1] * c.height * c.width))
                checkGradient("resize \(c.input) to \(c.height)x\(c.width) alignCorners \(alignCorners)", at: x, cotangent: u,
                              gradient: Reference.resizeBilinearBackward(op, outputGrad: u, inputShape: c.input),
                              rng: &rng) { Reference.resizeBilinearForward(op, input: $0, inputShape: c.input) }
            }
        }
    }

    func testBilinearSampling() {
        var rng = SeededGenerator()
        let shape: Shape = [2, 3, 4, 5]
        let x = rng.uniform(shape.count)
        for alignCorners in [false, true] {
            let same = BilinearResize(height: 4, width: 5, alignCorners: alignCorners)
            XCTAssertEqual(Reference.resizeBilinearForward(same, input: x, inputShape: shape), x)
        }
        // Half-pixel 2 -> 4: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (i1 clamped to 1).
        let up = Reference.resizeBilinearForward(BilinearResize(height: 1, width: 4), input: [10, 20], inputShape: [1, 1, 1, 2])
        XCTAssertEqual(up, [10, 12.5, 17.5, 20])
        // Align corners 3 -> 5: sources 0, 0.5, 1, 1.5, 2.
        let aligned = Reference.resizeBilinearForward(BilinearResize(height: 1, width: 5, alignCorners: true),
                                                      input: [0, 4, 8], inputShape: [1, 1, 1, 3])
        XCTAssertEqual(aligned, [0, 2, 4, 6, 8])
    }

    func testTotalVariationGradients() {
        var rng = SeededGenerator()
        let shape: Shape = [3, 2, 4, 5]
        for beta in [2, 1, 1.5] as [Float] {
            let op = TotalVariation(beta: beta)
            // Distinct values: no difference is near 0, where beta < 2 has a kink.
            let (x, u) = (rng.separated(shape.count, gap: 4e-3), rng.uniform(shape[0]))
            checkGradient("totalVariation beta \(beta)", at: x, cotangent: u,
                          gradient: Reference.totalVariationBackward(op, input: x, shape: shape, outputGrad: u),
                          rng: &rng) { Reference.totalVariationForward(op, input: $0, shape: shape) }
        }
    }

    func testTotalVariationOfConstantImageIsZero() {
        let shape: Shape = [2, 3, 4, 5]
        let x = [Double](repeating: 0.7, count: shape.count)
        for beta in [2, 1] as [Float] {
            let op = TotalVariation(beta: beta)
            XCTAssertEqual(Reference.totalVariationForward(op, input: x, shape: shape), [0, 0])
            XCTAssertEqual(Reference.totalVariationBackward(op, input: x, shape: shape, outputGrad: [1, 1]),
                           [Double](repeating: 0, count: shape.count))
        }
        // One 2x2 plane [[0, 1], [3, 0]], beta 2: terms 1^2 + 3^2, (-1)^2, (-3)^2, 0.
        XCTAssertEqual(Reference.totalVariationForward(TotalVariation(beta: 2), input: [0, 1, 3, 0], shape: [1, 1, 2, 2]), [20])
    }

    func testLpNormGradients() {
        var rng = SeededGenerator()
        for shape: Shape in [[3, 2, 3, 4], [3, 10]] {
            for p in [1, 2, 3.5, 6] as [Double] {
                let (x, u) = (rng.separated(shape.count, avoiding: [0]), rng.uniform(shape[0]))
                checkGradient("lpNorm \(shape) p \(p)", at: x, cotangent: u,
                              gradient: Reference.lpNormBackward(p: p, input: x, shape: shape, outputGrad: u),
                              rng: &rng) { Reference.lpNormForward(p: p, input: $0, shape: shape) }
            }
        }
        XCTAssertEqual(Reference.lpNormBackward(p: 1, input: [0, -2], shape: [1, 2], outputGrad: [1]), [0, -1])
    }

    func testGaussianBlurGradient() {
        var rng = SeededGenerator()
        let shape: Shape = [2, 2, 5, 7]
        for sigma in [0.8, 1.3] as [Float] {
            let op = GaussianBlur(sigma: sigma)
            let (x, u) = (rng.uniform(shape.count), rng.uniform(shape.count))
            checkGradient("blur sigma \(sigma)", at: x, cotangent: u,
                          gradient: Reference.gaussianBlurBackward(op, outputGrad: u, shape: shape),
                          rng: &rng) { Reference.gaussianBlurForward(op, input: $0, shape: shape) }
        }
    }

    func testBlurOfConstantImageIsConstant() {
        let shape: Shape = [1, 2, 4, 6]
        let x = [Double](repeating: -1.25, count: shape.count)
        for y in Reference.gaussianBlurForward(GaussianBlur(sigma: 1.1), input: x, shape: shape) {
            XCTAssertEqual(y, -1.25, accuracy: 1e-14)
        }
    }

    /// Roll is linear; its gradient is the roll by the opposite shift.
    func testRollGradientAndIdentity() {
        var rng = SeededGenerator()
        let shape: Shape = [3, 2, 4, 5]
        let (x, u) = (rng.uniform(shape.count), rng.uniform(shape.count))
        checkGradient("roll", at: x, cotangent: u, gradient: Reference.roll(shiftH: 1, shiftW: 7, input: u, shape: shape),
                      rng: &rng) { Reference.roll(shiftH: -1, shiftW: -7, input: $0, shape: shape) }
        XCTAssertEqual(Reference.roll(shiftH: 4, shiftW: -5, input: x, shape: shape), x)
        XCTAssertEqual(Reference.roll(shiftH: 1, shiftW: -1, input: [1, 2, 3, 4, 5, 6], shape: [1, 1, 2, 3]), [5, 6, 4, 2, 3, 1])
    }

    func testNearestResizeGradients() {
        var rng = SeededGenerator()
        let cases: [(input: Shape, height: Int, width: Int)] = [([3, 2, 3, 4], 6, 8), ([2, 1, 5, 7], 7, 5), ([2, 2, 7, 3], 4, 1), ([3, 1, 1, 2], 4, 3)]
        for c in cases {
            let op = NearestResize(height: c.height, width: c.width)
            let (x, u) = (rng.uniform(c.input.count), rng.uniform(c.input[0] * c.input[1] * c.height * c.width))
            checkGradient("nearest \(c.input) to \(c.height)x\(c.width)", at: x, cotangent: u,
                          gradient: Reference.resizeNearestBackward(op, outputGrad: u, inputShape: c.input),
                          rng: &rng) { Reference.resizeNearestForward(op, input: $0, inputShape: c.input) }
        }
    }

    func testNearestResizeSampling() {
        // ONNX asymmetric + floor, 5 -> 7: floor(dst * 5 / 7); 7 -> 5: floor(dst * 7 / 5); 1 -> 4 reads only 0.
        XCTAssertEqual((0..<7).map { NearestResize.source(of: $0, inLength: 5, outLength: 7) }, [0, 0, 1, 2, 2, 3, 4])
        XCTAssertEqual((0..<5).map { NearestResize.source(of: $0, inLength: 7, outLength: 5) }, [0, 1, 2, 4, 5])
        XCTAssertEqual((0..<4).map { NearestResize.source(of: $0, inLength: 1, outLength: 4) }, [0, 0, 0, 0])
        // An integer factor k repeats each pixel k x k.
        var rng = SeededGenerator()
        let (shape, k): (Shape, Int) = ([2, 3, 4, 5], 3)
        let x = rng.uniform(shape.count)
        let y = Reference.resizeNearestForward(NearestResize(height: 4 * k, width: 5 * k), input: x, inputShape: shape)
        XCTAssertEqual(y.count, shape.count * k * k)
        for (i, v) in y.enumerated() {
            let (plane, offset) = i.quotientAndRemainder(dividingBy: 4 * k * 5 * k)
            let (row, column) = offset.quotientAndRemainder(dividingBy: 5 * k)
            XCTAssertEqual(v, x[plane * 20 + (row / k) * 5 + column / k])
        }
        // Same size is the identity; its gradient too.
        let same = NearestResize(height: 4, width: 5)
        XCTAssertEqual(Reference.resizeNearestForward(same, input: x, inputShape: shape), x)
        XCTAssertEqual(Reference.resizeNearestBackward(same, outputGrad: x, inputShape: shape), x)
    }

    func testConstantPadGradients() throws {
        var rng = SeededGenerator()
        let cases: [(input: Shape, op: ConstantPad2D)] = [
            ([3, 2, 4, 5], ConstantPad2D(top: 1, left: 0, bottom: 2, right: 3, value: 0.5)),
            ([2, 2, 5, 6], ConstantPad2D(top: -1, left: 2, bottom: 1, right: -2, value: -2)),
            ([2, 1, 6, 3], ConstantPad2D(top: -2, left: -1, bottom: -3, right: 0)),
        ]
        for c in cases {
            let outShape = try c.op.outputShape(input: c.input)
            let (x, u) = (rng.uniform(c.input.count), rng.uniform(outShape.count))
            checkGradient("pad \(c.input) by (\(c.op.top), \(c.op.left), \(c.op.bottom), \(c.op.right))", at: x, cotangent: u,
                          gradient: Reference.pad2dBackward(c.op, outputGrad: u, inputShape: c.input),
                          rng: &rng) { Reference.pad2dForward(c.op, input: $0, inputShape: c.input) }
        }
    }

    func testConstantPadClosedForms() {
        var rng = SeededGenerator()
        let shape: Shape = [2, 3, 4, 5]
        let x = rng.uniform(shape.count)
        // Padding by 0 is the identity, forward and backward, whatever the value.
        let zero = ConstantPad2D(0, value: 7)
        XCTAssertEqual(Reference.pad2dForward(zero, input: x, inputShape: shape), x)
        XCTAssertEqual(Reference.pad2dBackward(zero, outputGrad: x, inputShape: shape), x)
        // One 2x3 plane [[1, 2, 3], [4, 5, 6]]: one row of 9 on top, the first column cropped, one column of 9 on the right.
        let op = ConstantPad2D(top: 1, left: -1, bottom: 0, right: 1, value: 9)
        XCTAssertEqual(Reference.pad2dForward(op, input: [1, 2, 3, 4, 5, 6], inputShape: [1, 1, 2, 3]), [9, 9, 9, 2, 3, 9, 5, 6, 9])
        // Its gradient crops back; the cropped column gets 0.
        XCTAssertEqual(Reference.pad2dBackward(op, outputGrad: (1...9).map(Double.init), inputShape: [1, 1, 2, 3]), [0, 4, 5, 0, 7, 8])
    }

    /// Transposition is linear and its own adjoint; twice is the identity.
    func testTransposeGradientAndIdentity() {
        var rng = SeededGenerator()
        for (rows, columns) in [(1, 7), (6, 1), (5, 9)] {
            let (x, u) = (rng.uniform(rows * columns), rng.uniform(rows * columns))
            checkGradient("transpose \(rows)x\(columns)", at: x, cotangent: u,
                          gradient: Reference.transpose(u, rows: columns, columns: rows),
                          rng: &rng) { Reference.transpose($0, rows: rows, columns: columns) }
            XCTAssertEqual(Reference.transpose(Reference.transpose(x, rows: rows, columns: columns), rows: columns, columns: rows), x)
        }
        XCTAssertEqual(Reference.transpose([1, 2, 3, 4, 5, 6], rows: 2, columns: 3), [1, 4, 2, 5, 3, 6])
    }

    /// Copying channels is linear; its gradient copies the same channels back.
    func testCopyChannelsGradient() {
        var rng = SeededGenerator()
        let (srcShape, dstShape): (Shape, Shape) = ([3, 4, 2, 3], [3, 6, 2, 3])
        let (x, u) = (rng.uniform(srcShape.count), rng.uniform(dstShape.count))
        var gradient = [Double](repeating: 0, count: srcShape.count)
        Reference.copyChannels(from: u, srcShape: dstShape, srcOffset: 3, to: &gradient, dstShape: srcShape, dstOffset: 1, channels: 2)
        checkGradient("copyChannels", at: x, cotangent: u, gradient: gradient, rng: &rng) { src in
            var dst = [Double](repeating: 0, count: dstShape.count)
            Reference.copyChannels(from: src, srcShape: srcShape, srcOffset: 1, to: &dst, dstShape: dstShape, dstOffset: 3, channels: 2)
            return dst
        }
    }

    // MARK: Closed forms

    func testOneByOneConvIsMatmul() {
        var rng = SeededGenerator()
        let (n, c, o, plane) = (3, 4, 5, 6)
        let (x, w) = (rng.uniform(n * c * plane), rng.uniform(o * c))
        let y = Reference.conv2dForward(Conv2D(window: Window2D(kernel: 1)), input: x, inputShape: [n, c, 2, 3],
                                        weight: w, weightShape: [o, c, 1, 1], bias: nil)
        for b in 0..<n {
            for oc in 0..<o {
                for p in 0..<plane {
                    let expected = (0..<c).reduce(0) { $0 + w[oc * c + $1] * x[(b * c + $1) * plane + p] }
                    XCTAssertEqual(y[(b * o + oc) * plane + p], expected, accuracy: 1e-14)
                }
            }
        }
    }

    /// A transposed conv (conv backward-data) of an impulse stamps the kernel at the impulse's
    /// strided position.
    func testTransposedConvOfImpulseStampsKernel() throws {
        let transposed = ConvTranspose2D(window: Window2D(kernel: 3, stride: 2), outputPadding: (1, 1))
        let (inShape, weightShape): (Shape, Shape) = ([1, 1, 2, 2], [1, 1, 3, 3])
        let outShape = try transposed.outputShape(input: inShape, weight: weightShape)
        XCTAssertEqual(outShape, [1, 1, 6, 6])
        let kernel = (1...9).map(Double.init)
        let y = Reference.conv2dBackwardData(transposed.adjointConv, outputGrad: [0, 0, 1, 0], weight: kernel,
                                             weightShape: weightShape, inputShape: outShape)
        var expected = [Double](repeating: 0, count: 36)
        for ky in 0..<3 { for kx in 0..<3 { expected[(2 + ky) * 6 + kx] = kernel[ky * 3 + kx] } }
        XCTAssertEqual(y, expected)
    }

    func testAvgPoolDivisors() {
        let window = Window2D(kernel: 3, stride: 2, padding: 1, ceilMode: true)
        let ones = [Double](repeating: 1, count: 16)
        // Without countIncludePad, the mean of a constant image is that constant.
        let plain = Reference.avgPool2dForward(AvgPool2D(window: window, countIncludePad: false), input: ones.map { $0 * 2.5 }, inputShape: [1, 1, 4, 4])
        XCTAssertEqual(plain.count, 9)
        for value in plain { XCTAssertEqual(value, 2.5, accuracy: 1e-15) }
        // With it, 4x4 input: windows start at -1, 1, 3 and end at min(start + 3, 4 + 1), so the
        // divisors are 3, 3, 2 per axis and the in-image counts 2, 3, 1.
        let padded = Reference.avgPool2dForward(AvgPool2D(window: window, countIncludePad: true), input: ones, inputShape: [1, 1, 4, 4])
        let expected: [Double] = [4.0 / 9, 6.0 / 9, 2.0 / 6, 6.0 / 9, 1, 3.0 / 6, 2.0 / 6, 3.0 / 6, 1.0 / 4]
        for (value, want) in zip(padded, expected) { XCTAssertEqual(value, want, accuracy: 1e-15) }
    }

    func testMaxPoolTiesAndPadding() {
        let op = MaxPool2D(window: Window2D(kernel: 3, stride: 2, padding: 1))
        // All zeros: every window's first in-image element wins.
        let zeros = Reference.maxPool2dForward(op, input: [Double](repeating: 0, count: 20), inputShape: [1, 1, 4, 5])
        XCTAssertEqual(zeros.switches, [0, 1, 3, 5, 6, 8])
        // All negative: padding (as minus infinity) never wins, so outputs stay negative.
        let negative = Reference.maxPool2dForward(op, input: (0..<20).map { -1 - Double($0) }, inputShape: [1, 1, 4, 5])
        XCTAssertEqual(negative.switches, [0, 1, 3, 5, 6, 8])
        XCTAssertEqual(negative.output, [-1, -2, -4, -6, -7, -9])
    }

    func testOptimizerSteps() {
        var parameter: [Double] = [1, -2]
        var velocity: [Double] = [0, 0]
        let sgd = SGDMomentum(learningRate: 0.5, momentum: 0.5, weightDecay: 0.25)
        Reference.sgdMomentumStep(sgd, parameter: &parameter, gradient: [1, 1], velocity: &velocity)
        XCTAssertEqual(velocity, [1.25, 0.5])
        XCTAssertEqual(parameter, [0.375, -2.25])
        Reference.sgdMomentumStep(sgd, parameter: &parameter, gradient: [1, 1], velocity: &velocity)
        XCTAssertEqual(velocity, [0.625 + 1 + 0.09375, 0.25 + 1 - 0.5625])

        // Adam's first step moves each coordinate by about lr against the gradient's sign.
        var p: [Double] = [1, -2, 3]
        var (m, v): ([Double], [Double]) = ([0, 0, 0], [0, 0, 0])
        let adam = Adam(learningRate: 0.125)
        Reference.adamStep(adam, step: 1, parameter: &p, gradient: [0.5, -4, 2], firstMoment: &m, secondMoment: &v)
        for (value, want) in zip(p, [0.875, -1.875, 2.875]) { XCTAssertEqual(value, want, accuracy: 1e-6) }
        XCTAssertEqual(m[1], -0.4, accuracy: 1e-6)
        XCTAssertEqual(v[1], 0.016, accuracy: 1e-6)
    }
}
