import CLBackend
import XCTest

/// Every non-convolution primitive, OpenCL against the reference, in every direction, on odd and
/// non-square shapes (batch 3 where the batch matters), fresh random inputs each run, outputs
/// poisoned with NaN first. Every float comparison uses `float32Bound`: the longest reduction
/// here is a few thousand terms (channel sums, per-image norms, 1000-class rows), and every
/// transcendental (exp, log, pow) is within a few ulp. Max-pool switches must match exactly.
final class ConformanceTests: XCTestCase {
    /// Distinct values (a shuffled ramp in [-1, 1)): no pooling window holds a tie.
    static func distinctValues(_ count: Int) -> [Float] {
        (0..<count).shuffled().map { Float($0) / Float(max(count, 1)) * 2 - 1 }
    }

    /// ReLU of small integers: mostly exact zeros, the rest 1 or 2, so most windows tie.
    static func tiedValues(_ count: Int) -> [Float] {
        (0..<count).map { _ in Float(max(0, Int.random(in: -4...2))) }
    }

    /// Random values with every `period`-th one replaced by `special` (zeros, clamp bounds).
    static func values(_ count: Int, scale: Float = 1, every period: Int, is special: [Float]) -> [Float] {
        randomValues(count, scale: scale).enumerated().map { i, v in i % period == 0 ? special[(i / period) % special.count] : v }
    }

    // MARK: Elementwise and data movement

    func testElementwiseAndBias() throws {
        let b = try Backends()
        for shape: Shape in [[3, 5, 7, 9], [4, 10]] {
            let x = try b.random(shape), y = try b.random(shape), bias = try b.random([shape[1]])
            let (alpha, beta) = (Float.random(in: -2...2), Float.random(in: -2...2))
            try b.compare(op: "axpby", direction: "forward", shape: "\(shape)") { be, cl in
                try be.axpby(alpha: alpha, cl ? x.cl : x.ref, beta: beta, cl ? y.cl : y.ref)
            }
            try b.compare(op: "add", direction: "forward", shape: "\(shape)") { be, cl in try be.add(cl ? x.cl : x.ref, cl ? y.cl : y.ref) }
            try b.compare(op: "scaled", direction: "forward", shape: "\(shape)") { be, cl in try be.scaled(cl ? x.cl : x.ref, by: alpha) }
            try b.compare(op: "biasAdd", direction: "forward", shape: "\(shape)") { be, cl in
                try be.biasAdd(cl ? x.cl : x.ref, bias: cl ? bias.cl : bias.ref)
            }
            try b.compare(op: "biasAdd", direction: "backward-bias", shape: "\(shape)") { be, cl in try be.biasGradient(cl ? y.cl : y.ref) }
        }
        // 3069 terms per channel: many per work-item, then the tree.
        let big = try b.random([3, 6, 33, 31])
        try b.compare(op: "biasAdd", direction: "backward-bias", shape: "[3x6x33x31]") { be, cl in try be.biasGradient(cl ? big.cl : big.ref) }
    }

    func testConcatChannelsAndDropout() throws {
        let b = try Backends()
        let parts = [2, 3, 1]
        for plane in [[5, 7], [Int]()] {
            let xs = try parts.map { try b.random(Shape([3, $0] + plane)) }
            let dy = try b.random(Shape([3, parts.reduce(0, +)] + plane))
            let shape = "\(parts.map { Shape([3, $0] + plane).description }.joined(separator: " + "))"
            try b.compare(op: "concatChannels", direction: "forward", shape: shape) { be, cl in
                try be.concatChannels(xs.map { cl ? $0.cl : $0.ref })
            }
            for i in parts.indices {
                try b.compare(op: "concatChannels", direction: "backward input \(i)", shape: shape) { be, cl in
                    try be.concatChannelsBackward(cl ? dy.cl : dy.ref, channels: parts)[i]
                }
            }
        }
        let x = try b.random([3, 4, 5, 6])
        XCTAssertTrue(b.opencl.dropout(x.cl).storage === x.cl.storage, "dropout at inference must be the identity")
    }

    // MARK: Activations and clamp

    func testActivations() throws {
        let b = try Backends()
        let shape: Shape = [3, 4, 7, 5]
        // Exact zeros check the strict z > 0 and g > 0 masks.
        let x = try b.pair(Self.values(shape.count, every: 5, is: [0]), shape)
        let dy = try b.pair(Self.values(shape.count, every: 7, is: [0]), shape)
        for activation: Activation in [.relu, .leakyRelu(slope: 0.1)] {
            try b.compare(op: "\(activation)", direction: "forward", shape: "\(shape)") { be, cl in
                try be.activation(cl ? x.cl : x.ref, activation)
            }
            for rule in ReLUBackwardRule.allCases {
                try b.compare(op: "\(activation)", direction: "backward (\(rule.rawValue))", shape: "\(shape)") { be, cl in
                    try be.activationBackward(cl ? dy.cl : dy.ref, input: cl ? x.cl : x.ref, activation, rule: rule)
                }
            }
        }
    }

    func testClamp() throws {
        let b = try Backends()
        let shape: Shape = [3, 2, 9, 5]
        let (lo, hi): (Float, Float) = (-0.5, 0.7)
        // Inputs exactly on the bounds pass the gradient (lo <= x <= hi).
        let x = try b.pair(Self.values(shape.count, scale: 2, every: 6, is: [lo, hi]), shape), dy = try b.random(shape)
        try b.compare(op: "clamp", direction: "forward", shape: "\(shape)") { be, cl in try be.clamp(cl ? x.cl : x.ref, min: lo, max: hi) }
        try b.compare(op: "clamp", direction: "backward", shape: "\(shape)") { be, cl in
            try be.clampBackward(cl ? dy.cl : dy.ref, input: cl ? x.cl : x.ref, min: lo, max: hi)
        }
    }

    // MARK: Pooling

    struct PoolCase {
        var name: String
        var input: Shape
        var window: Window2D
    }

    static let maxPoolCases: [PoolCase] = [
        PoolCase(name: "3x3 stride 2 pad 1, batch 3", input: [3, 4, 11, 9], window: Window2D(kernel: 3, stride: 2, padding: 1)),
        PoolCase(name: "2x2 stride 2 ceil mode, odd size", input: [2, 3, 7, 9], window: Window2D(kernel: 2, stride: 2, ceilMode: true)),
        // Disjoint windows (the max_pool2d_bwd_disjoint path): even, and odd with uncovered edges.
        PoolCase(name: "2x2 stride 2, even size", input: [2, 3, 8, 6], window: Window2D(kernel: 2, stride: 2)),
        PoolCase(name: "3x2 stride (3, 2), odd size", input: [1, 2, 10, 7], window: Window2D(kernel: (3, 2), stride: (3, 2))),
        PoolCase(name: "3x2 stride (2, 1) dilation 2, pad (1, 0, 0, 1)", input: [2, 2, 12, 10],
                 window: Window2D(kernel: (3, 2), stride: (2, 1), dilation: (2, 2), padding: (1, 0, 0, 1))),
        PoolCase(name: "2x3 stride (3, 2), pad (1, 1, 1, 0), ceil mode", input: [1, 3, 8, 13],
                 window: Window2D(kernel: (2, 3), stride: (3, 2), padding: (1, 1, 1, 0), ceilMode: true)),
        PoolCase(name: "3x3 stride 1 (overlapping), dilation (1, 3), ceil mode", input: [3, 2, 6, 11],
                 window: Window2D(kernel: (3, 3), stride: (1, 2), dilation: (1, 3), padding: (1, 1, 1, 1), ceilMode: true)),
    ]

    /// Forward values, switches, backward, unpool and its backward, for distinct values and for
    /// values with many ties (the first-max rule must pick the same index as the reference).
    func checkMaxPool(_ b: Backends, name: String, input: Shape, op: MaxPool2D) throws {
        let yShape = try op.outputShape(input: input)
        for (data, values) in [("distinct", Self.distinctValues(input.count)), ("ties", Self.tiedValues(input.count))] {
            let x = try b.pair(values, input), dy = try b.random(yShape), du = try b.random(input)
            let shape = "\(name), \(data): \(input) -> \(yShape)"
            func pooled(_ be: Backend, _ cl: Bool) throws -> (output: Tensor, switches: Tensor) { try be.maxPool2d(cl ? x.cl : x.ref, op) }
            try b.compare(op: "maxPool2d", direction: "forward", shape: shape) { be, cl in try pooled(be, cl).output }
            try b.compareInts(op: "maxPool2d", direction: "switches", shape: shape) { be, cl in try pooled(be, cl).switches }
            try b.compare(op: "maxPool2d", direction: "backward", shape: shape) { be, cl in
                try be.maxPool2dBackward(cl ? dy.cl : dy.ref, switches: pooled(be, cl).switches, inputShape: input, op)
            }
            try b.compare(op: "maxUnpool2d", direction: "forward", shape: shape) { be, cl in
                let (y, s) = try pooled(be, cl)
                return try be.maxUnpool2d(y, switches: s, outputShape: input, op)
            }
            try b.compare(op: "maxUnpool2d", direction: "backward", shape: shape) { be, cl in
                try be.maxUnpool2dBackward(cl ? du.cl : du.ref, switches: pooled(be, cl).switches, op)
            }
        }
    }

    func testMaxPool() throws {
        let b = try Backends()
        for k in Self.maxPoolCases { try checkMaxPool(b, name: k.name, input: k.input, op: MaxPool2D(window: k.window)) }
    }

    func testGlobalMaxPool() throws {
        let b = try Backends()
        let input: Shape = [3, 5, 6, 7]
        for (data, values) in [("distinct", Self.distinctValues(input.count)), ("ties", Self.tiedValues(input.count))] {
            let x = try b.pair(values, input), dy = try b.random([3, 5, 1, 1])
            let shape = "\(data): \(input)"
            try b.compare(op: "globalMaxPool", direction: "forward", shape: shape) { be, cl in try be.globalMaxPool(cl ? x.cl : x.ref).output }
            try b.compareInts(op: "globalMaxPool", direction: "switches", shape: shape) { be, cl in try be.globalMaxPool(cl ? x.cl : x.ref).switches }
            try b.compare(op: "globalMaxPool", direction: "backward", shape: shape) { be, cl in
                try be.globalMaxPoolBackward(cl ? dy.cl : dy.ref, switches: be.globalMaxPool(cl ? x.cl : x.ref).switches, inputShape: input)
            }
        }
    }

    static let avgPoolCases: [PoolCase] = [
        PoolCase(name: "3x3 stride 2 pad 1, batch 3", input: [3, 4, 11, 9], window: Window2D(kernel: 3, stride: 2, padding: 1)),
        PoolCase(name: "2x2 stride 2 ceil mode, odd size", input: [2, 3, 7, 9], window: Window2D(kernel: 2, stride: 2, ceilMode: true)),
        // Disjoint windows (the max_pool2d_bwd_disjoint path): even, and odd with uncovered edges.
        PoolCase(name: "2x2 stride 2, even size", input: [2, 3, 8, 6], window: Window2D(kernel: 2, stride: 2)),
        PoolCase(name: "3x2 stride (3, 2), odd size", input: [1, 2, 10, 7], window: Window2D(kernel: (3, 2), stride: (3, 2))),
        PoolCase(name: "3x3 stride 2, pad (1, 0, 1, 1), ceil mode", input: [2, 2, 10, 8],
                 window: Window2D(kernel: (3, 3), stride: (2, 2), padding: (1, 0, 1, 1), ceilMode: true)),
        PoolCase(name: "3x2 stride (1, 2), pad (0, 1, 1, 0)", input: [1, 3, 6, 7],
                 window: Window2D(kernel: (3, 2), stride: (1, 2), padding: (0, 1, 1, 0))),
        PoolCase(name: "2x4 stride 3 (gaps), pad (1, 2, 0, 2), ceil mode", input: [3, 1, 9, 14],
                 window: Window2D(kernel: (2, 4), stride: (3, 3), padding: (1, 2, 0, 2), ceilMode: true)),
    ]

    func testAvgPool() throws {
        let b = try Backends()
        for k in Self.avgPoolCases {
            for includePad in [true, false] {
                let op = AvgPool2D(window: k.window, countIncludePad: includePad)
                let yShape = try op.outputShape(input: k.input)
                let x = try b.random(k.input), dy = try b.random(yShape)
                let shape = "\(k.name), countIncludePad \(includePad): \(k.input) -> \(yShape)"
                try b.compare(op: "avgPool2d", direction: "forward", shape: shape) { be, cl in try be.avgPool2d(cl ? x.cl : x.ref, op) }
                try b.compare(op: "avgPool2d", direction: "backward", shape: shape) { be, cl in
                    try be.avgPool2dBackward(cl ? dy.cl : dy.ref, inputShape: k.input, op)
                }
            }
        }
    }

    func testGlobalAvgPool() throws {
        let b = try Backends()
        let input: Shape = [3, 5, 6, 7]
        let x = try b.random(input), dy = try b.random([3, 5, 1, 1])
        try b.compare(op: "globalAvgPool", direction: "forward", shape: "\(input)") { be, cl in try be.globalAvgPool(cl ? x.cl : x.ref) }
        try b.compare(op: "globalAvgPool", direction: "backward", shape: "\(input)") { be, cl in
            try be.globalAvgPoolBackward(cl ? dy.cl : dy.ref, inputShape: input)
        }
    }

    // MARK: Normalization

    func testLocalResponseNorm() throws {
        let b = try Backends()
        let cases: [(Shape, LocalResponseNorm)] = [
            ([3, 7, 5, 4], LocalResponseNorm(size: 5, alpha: 0.5, beta: 0.75, k: 2)),
            ([2, 6, 3, 5], LocalResponseNorm(size: 4, alpha: 1, beta: 0.6, k: 1)),
            ([1, 3, 4, 3], LocalResponseNorm(size: 7, alpha: 2, beta: 1.2, k: 0.5)),
        ]
        for (input, op) in cases {
            let x = try b.random(input, scale: 2), dy = try b.random(input)
            let shape = "size \(op.size), alpha \(op.alpha), beta \(op.beta), k \(op.k): \(input)"
            try b.compare(op: "localResponseNorm", direction: "forward", shape: shape) { be, cl in try be.localResponseNorm(cl ? x.cl : x.ref, op) }
            try b.compare(op: "localResponseNorm", direction: "backward", shape: shape) { be, cl in
                try be.localResponseNormBackward(cl ? dy.cl : dy.ref, input: cl ? x.cl : x.ref, op)
            }
        }
    }

    func testBatchNorm() throws {
        let b = try Backends()
        for input: Shape in [[3, 5, 7, 6], [4, 9]] {
            let c = input[1], epsilon: Float = 1e-3
            let x = try b.random(input), dy = try b.random(input)
            let scale = try b.random([c]), shift = try b.random([c]), mean = try b.random([c], scale: 0.5)
            let variance = try b.pair(randomValues(c).map { abs($0) + 0.1 }, [c])
            func pick(_ t: (ref: Tensor, cl: Tensor), _ cl: Bool) -> Tensor { cl ? t.cl : t.ref }
            try b.compare(op: "batchNorm", direction: "forward", shape: "\(input)") { be, cl in
                try be.batchNorm(pick(x, cl), scale: pick(scale, cl), shift: pick(shift, cl), mean: pick(mean, cl),
                                 variance: pick(variance, cl), epsilon: epsilon)
            }
            func backward(_ be: Backend, _ cl: Bool, parameters: Bool = true) throws -> (input: Tensor, scale: Tensor?, shift: Tensor?) {
                try be.batchNormBackward(pick(dy, cl), input: pick(x, cl), scale: pick(scale, cl), mean: pick(mean, cl),
                                         variance: pick(variance, cl), epsilon: epsilon, parameters: parameters)
            }
            try b.compare(op: "batchNorm", direction: "backward-data", shape: "\(input)") { be, cl in try backward(be, cl).input }
            try b.compare(op: "batchNorm", direction: "backward-data only", shape: "\(input)") { be, cl in
                let r = try backward(be, cl, parameters: false)
                XCTAssertTrue(r.scale == nil && r.shift == nil, "parameters: false still made parameter gradients")
                return r.input
            }
            try b.compare(op: "batchNorm", direction: "backward-scale", shape: "\(input)") { be, cl in try backward(be, cl).scale! }
            try b.compare(op: "batchNorm", direction: "backward-shift", shape: "\(input)") { be, cl in try backward(be, cl).shift! }
        }
    }

    // MARK: Classifier heads

    /// Logits of scale 4, the first row shifted by +100: without the max subtraction its exp overflows.
    static func logits(_ n: Int, _ k: Int) -> [Float] {
        randomValues(n * k, scale: 4).enumerated().map { i, v in i < k ? v + 100 : v }
    }

    func testSoftmax() throws {
        let b = try Backends()
        for (n, k) in [(3, 10), (2, 1000), (4, 1), (5, 129)] {
            let shape: Shape = [n, k]
            let x = try b.pair(Self.logits(n, k), shape), dy = try b.random(shape)
            for log in [false, true] {
                let name = log ? "logSoftmax" : "softmax"
                try b.compare(op: name, direction: "forward", shape: "\(shape)") { be, cl in try be.softmax(cl ? x.cl : x.ref, log: log) }
                // The backward takes the forward output; both sides get the reference's.
                let y = try b.pair(b.reference.read(b.reference.softmax(x.ref, log: log)), shape)
                try b.compare(op: name, direction: "backward", shape: "\(shape)") { be, cl in
                    try be.softmaxBackward(cl ? dy.cl : dy.ref, output: cl ? y.cl : y.ref, log: log)
                }
            }
        }
    }

    func testCrossEntropy() throws {
        let b = try Backends()
        for (n, k) in [(3, 10), (2, 1000), (4, 1), (5, 129)] {
            let shape: Shape = [n, k]
            let x = try b.pair(Self.logits(n, k), shape), lossGrad = try b.random([n])
            let labels = try b.pair(ints: (0..<n).map { _ in Int32.random(in: 0..<Int32(k)) }, [n])
            try b.compare(op: "crossEntropy", direction: "forward", shape: "\(shape)") { be, cl in
                try be.crossEntropy(cl ? x.cl : x.ref, labels: cl ? labels.cl : labels.ref)
            }
            try b.compare(op: "crossEntropy", direction: "backward", shape: "\(shape)") { be, cl in
                try be.crossEntropyBackward(cl ? lossGrad.cl : lossGrad.ref, logits: cl ? x.cl : x.ref, labels: cl ? labels.cl : labels.ref)
            }
        }
    }

    // MARK: Image-space ops

    func testResizeBilinear() throws {
        let b = try Backends()
        let cases: [(Shape, Int, Int)] = [([2, 3, 5, 7], 11, 4), ([1, 2, 7, 7], 32, 32), ([3, 1, 6, 5], 1, 1), ([2, 2, 1, 3], 4, 6), ([1, 1, 9, 12], 4, 5)]
        for (input, height, width) in cases {
            for alignCorners in [false, true] {
                let op = BilinearResize(height: height, width: width, alignCorners: alignCorners)
                let x = try b.random(input), dy = try b.random([input[0], input[1], height, width])
                let shape = "\(input) -> \(height)x\(width), alignCorners \(alignCorners)"
                try b.compare(op: "resizeBilinear", direction: "forward", shape: shape) { be, cl in try be.resizeBilinear(cl ? x.cl : x.ref, op) }
                try b.compare(op: "resizeBilinear", direction: "backward", shape: shape) { be, cl in
                    try be.resizeBilinearBackward(cl ? dy.cl : dy.ref, inputShape: input, op)
                }
            }
        }
    }

    func testTotalVariation() throws {
        let b = try Backends()
        for input: Shape in [[3, 3, 7, 5], [2, 2, 1, 6]] {
            // Small integers make many differences exactly 0, where the gradient is taken as 0.
            for (data, values) in [("random", randomValues(input.count)), ("flat patches", (0..<input.count).map { _ in Float(Int.random(in: 0...2)) })] {
                let x = try b.pair(values, input), dy = try b.random([input[0]])
                for beta: Float in [2, 1, 1.5, 3] {
                    let op = TotalVariation(beta: beta)
                    let shape = "\(input) \(data), beta \(beta)"
                    try b.compare(op: "totalVariation", direction: "forward", shape: shape) { be, cl in try be.totalVariation(cl ? x.cl : x.ref, op) }
                    try b.compare(op: "totalVariation", direction: "backward", shape: shape) { be, cl in
                        try be.totalVariationBackward(cl ? dy.cl : dy.ref, input: cl ? x.cl : x.ref, op)
                    }
                }
            }
        }
    }

    func testLpNorm() throws {
        let b = try Backends()
        let input: Shape = [3, 4, 6, 5]
        let x = try b.pair(Self.values(input.count, every: 7, is: [0]), input), dy = try b.random([3])
        for p: Float in [1, 2, 1.5, 6] {
            try b.compare(op: "lpNorm", direction: "forward", shape: "\(input), p \(p)") { be, cl in try be.lpNorm(cl ? x.cl : x.ref, p: p) }
            try b.compare(op: "lpNorm", direction: "backward", shape: "\(input), p \(p)") { be, cl in
                try be.lpNormBackward(cl ? dy.cl : dy.ref, input: cl ? x.cl : x.ref, p: p)
            }
        }
    }

    func testGaussianBlur() throws {
        let b = try Backends()
        // sigma 3 has radius 9, wider than the 5x4 planes: every tap set is clipped.
        for (input, sigma): (Shape, Float) in [([3, 2, 9, 13], 0.6), ([2, 3, 11, 8], 1.5), ([1, 3, 5, 4], 3)] {
            let op = GaussianBlur(sigma: sigma)
            let x = try b.random(input), dy = try b.random(input)
            let shape = "\(input), sigma \(sigma) (radius \(op.radius))"
            try b.compare(op: "gaussianBlur", direction: "forward", shape: shape) { be, cl in try be.gaussianBlur(cl ? x.cl : x.ref, op) }
            try b.compare(op: "gaussianBlur", direction: "backward", shape: shape) { be, cl in try be.gaussianBlurBackward(cl ? dy.cl : dy.ref, op) }
        }
    }

    func testRoll() throws {
        let b = try Backends()
        let input: Shape = [2, 3, 5, 7]
        let x = try b.random(input)
        for (dh, dw) in [(2, -3), (0, 0), (-13, 20), (5, 7)] {
            try b.compare(op: "roll", direction: "forward", shape: "\(input) by (\(dh), \(dw))") { be, cl in
                try be.roll(cl ? x.cl : x.ref, shiftH: dh, shiftW: dw)
            }
            try b.compare(op: "roll", direction: "backward", shape: "\(input) by (\(dh), \(dw))") { be, cl in
                try be.roll(cl ? x.cl : x.ref, shiftH: -dh, shiftW: -dw)
            }
        }
    }

    func testConstantPad() throws {
        let b = try Backends()
        let cases: [(Shape, ConstantPad2D)] = [
            ([3, 2, 5, 7], ConstantPad2D(top: 1, left: 2, bottom: 3, right: 0)),
            ([3, 3, 6, 9], ConstantPad2D(top: 2, left: -1, bottom: 0, right: 3, value: -1.5)),
            ([2, 1, 7, 4], ConstantPad2D(top: -2, left: 1, bottom: -1, right: -1, value: 0.25)),
            ([1, 4, 5, 5], ConstantPad2D(0, value: 3)),
            // Cropping more rows than the input has: every output row is padding.
            ([2, 2, 3, 3], ConstantPad2D(top: -5, left: 1, bottom: 4, right: 0, value: 2)),
        ]
        for (input, op) in cases {
            let outShape = try op.outputShape(input: input)
            let x = try b.random(input), dy = try b.random(outShape)
            let shape = "\(input) pad (\(op.top), \(op.left), \(op.bottom), \(op.right)) value \(op.value) -> \(outShape)"
            try b.compare(op: "pad2d", direction: "forward", shape: shape) { be, cl in try be.pad2d(cl ? x.cl : x.ref, op) }
            try b.compare(op: "pad2d", direction: "backward", shape: shape) { be, cl in try be.pad2dBackward(cl ? dy.cl : dy.ref, inputShape: input, op) }
        }
    }

    func testResizeNearest() throws {
        let b = try Backends()
        // Up by 2; 5 -> 7 rows with 7 -> 5 columns; down-sampling that skips inputs; 1 -> 4; mixed 3x and 1/2.
        let cases: [(Shape, Int, Int)] = [([3, 2, 5, 7], 10, 14), ([2, 3, 5, 7], 7, 5), ([3, 1, 7, 6], 5, 4), ([2, 2, 1, 1], 4, 4),
                                          ([1, 3, 4, 6], 12, 3), ([2, 1, 9, 12], 4, 5)]
        for (input, height, width) in cases {
            let op = NearestResize(height: height, width: width)
            let x = try b.random(input), dy = try b.random([input[0], input[1], height, width])
            let shape = "\(input) -> \(height)x\(width)"
            try b.compare(op: "resizeNearest", direction: "forward", shape: shape) { be, cl in try be.resizeNearest(cl ? x.cl : x.ref, op) }
            try b.compare(op: "resizeNearest", direction: "backward", shape: shape) { be, cl in
                try be.resizeNearestBackward(cl ? dy.cl : dy.ref, inputShape: input, op)
            }
        }
    }

    func testTranspose() throws {
        let b = try Backends()
        for input: Shape in [[1, 37], [41, 1], [37, 53], [1, 1], [64, 3]] {
            let x = try b.random(input), dy = try b.random([input[1], input[0]])
            try b.compare(op: "transpose", direction: "forward", shape: "\(input)") { be, cl in try be.transpose(cl ? x.cl : x.ref) }
            try b.compare(op: "transpose", direction: "backward", shape: "\(input)") { be, cl in try be.transpose(cl ? dy.cl : dy.ref) }
        }
    }

    // MARK: Optimizers

    func testOptimizerSteps() throws {
        let b = try Backends()
        let shape: Shape = [5, 3, 7, 2]
        let zeros = [Float](repeating: 0, count: shape.count)

        let sgd = SGDMomentum(learningRate: 0.05, momentum: 0.9, weightDecay: 0.01)
        let p = try b.random(shape), v = try b.pair(zeros, shape)
        for _ in 1...3 {
            let g = try b.random(shape)
            try b.reference.step(sgd, parameter: p.ref, gradient: g.ref, velocity: v.ref)
            try b.opencl.step(sgd, parameter: p.cl, gradient: g.cl, velocity: v.cl)
        }
        for (role, t) in [("parameter", p), ("velocity", v)] {
            assertConforms(try b.opencl.read(t.cl), try b.reference.read(t.ref), op: "sgdMomentum", direction: role,
                           shape: "\(shape), 3 steps", bound: float32Bound)
        }

        let adam = Adam(learningRate: 0.01, weightDecay: 1e-3)
        let q = try b.random(shape), m1 = try b.pair(zeros, shape), m2 = try b.pair(zeros, shape)
        for t in 1...3 {
            let g = try b.random(shape)
            try b.reference.step(adam, step: t, parameter: q.ref, gradient: g.ref, firstMoment: m1.ref, secondMoment: m2.ref)
            try b.opencl.step(adam, step: t, parameter: q.cl, gradient: g.cl, firstMoment: m1.cl, secondMoment: m2.cl)
        }
        for (role, t) in [("parameter", q), ("first moment", m1), ("second moment", m2)] {
            assertConforms(try b.opencl.read(t.cl), try b.reference.read(t.ref), op: "adam", direction: role,
                           shape: "\(shape), 3 steps", bound: float32Bound)
        }
    }

    // MARK: Rejected shapes and parameters

    func testInvalidShapesAndParametersAreRejected() throws {
        let be = try Backends().opencl
        let shape: Shape = [3, 4, 5, 6]
        let x = try be.tensor(randomValues(shape.count), shape: shape)
        func t(_ s: Shape) throws -> Tensor { try be.tensor(randomValues(s.count), shape: s) }
        let pool = MaxPool2D(window: Window2D(kernel: 2, stride: 2))
        let (pooled, switches) = try be.maxPool2d(x, pool)

        assertRejects("biasAdd with a bias of the wrong length") { _ = try be.biasAdd(x, bias: t([5])) }
        assertRejects("biasAdd of a rank-3 tensor") { _ = try be.biasAdd(t([4, 5, 6]), bias: t([5])) }
        assertRejects("axpby of mismatched shapes") { _ = try be.axpby(alpha: 1, x, beta: 1, t([3, 4, 6, 5])) }
        assertRejects("concatChannels of mismatched planes") { _ = try be.concatChannels([x, t([3, 2, 5, 7])]) }
        assertRejects("concatChannelsBackward with counts not adding up") { _ = try be.concatChannelsBackward(x, channels: [1, 2]) }
        assertRejects("avgPool2d with dilation") { _ = try be.avgPool2d(x, AvgPool2D(window: Window2D(kernel: 2, dilation: 2))) }
        assertRejects("avgPool2dBackward with a mismatched gradient") {
            _ = try be.avgPool2dBackward(t([3, 4, 3, 3]), inputShape: shape, AvgPool2D(window: Window2D(kernel: 2, stride: 2)))
        }
        assertRejects("maxPool2d with padding over half the kernel") { _ = try be.maxPool2d(x, MaxPool2D(window: Window2D(kernel: 2, padding: 2))) }
        assertRejects("maxPool2d with a window larger than the input") { _ = try be.maxPool2d(x, MaxPool2D(window: Window2D(kernel: 7))) }
        assertRejects("maxPool2d with stride 0") { _ = try be.maxPool2d(x, MaxPool2D(window: Window2D(kernel: 2, stride: 0))) }
        assertRejects("maxPool2dBackward with a mismatched gradient") {
            _ = try be.maxPool2dBackward(t([3, 4, 2, 2]), switches: switches, inputShape: shape, pool)
        }
        assertRejects("maxPool2dBackward with float switches") { _ = try be.maxPool2dBackward(pooled, switches: pooled, inputShape: shape, pool) }
        assertRejects("maxUnpool2d to a shape that does not pool to the switches") {
            _ = try be.maxUnpool2d(pooled, switches: switches, outputShape: [3, 4, 7, 6], pool)
        }
        assertRejects("activationBackward with a mismatched gradient") { _ = try be.activationBackward(t([3, 4, 5, 7]), input: x, .relu) }
        assertRejects("clamp with min > max") { _ = try be.clamp(x, min: 1, max: 0) }
        assertRejects("clampBackward with min > max") { _ = try be.clampBackward(x, input: x, min: 1, max: 0) }
        assertRejects("localResponseNorm with size 0") { _ = try be.localResponseNorm(x, LocalResponseNorm(size: 0)) }
        assertRejects("localResponseNorm of [N, K] rows") { _ = try be.localResponseNorm(t([3, 4]), LocalResponseNorm(size: 3)) }
        assertRejects("batchNorm with a variance of the wrong length") {
            _ = try be.batchNorm(x, scale: t([4]), shift: t([4]), mean: t([4]), variance: t([3]))
        }
        assertRejects("batchNorm with a negative epsilon") {
            _ = try be.batchNorm(x, scale: t([4]), shift: t([4]), mean: t([4]), variance: t([4]), epsilon: -1)
        }
        assertRejects("softmax of an NCHW tensor") { _ = try be.softmax(x) }
        assertRejects("softmaxBackward with a mismatched gradient") { _ = try be.softmaxBackward(t([3, 5]), output: t([3, 4])) }
        assertRejects("crossEntropy with float labels") { _ = try be.crossEntropy(t([3, 10]), labels: t([3])) }
        assertRejects("crossEntropyBackward with a wrong loss gradient") {
            _ = try be.crossEntropyBackward(t([2]), logits: t([3, 10]), labels: be.tensor(ints: [0, 1, 2], shape: [3]))
        }
        assertRejects("resizeBilinear to an empty size") { _ = try be.resizeBilinear(x, BilinearResize(height: 0, width: 4)) }
        assertRejects("resizeBilinearBackward with a mismatched gradient") {
            _ = try be.resizeBilinearBackward(t([3, 4, 8, 8]), inputShape: shape, BilinearResize(height: 8, width: 9))
        }
        assertRejects("pad2d cropping every row") { _ = try be.pad2d(x, ConstantPad2D(top: -3, left: 0, bottom: -2, right: 0)) }
        assertRejects("pad2d cropping past every column") { _ = try be.pad2d(x, ConstantPad2D(top: 1, left: -4, bottom: 1, right: -3)) }
        assertRejects("pad2d of [N, K] rows") { _ = try be.pad2d(t([3, 4]), ConstantPad2D(1)) }
        assertRejects("pad2dBackward with a mismatched gradient") { _ = try be.pad2dBackward(t([3, 4, 7, 7]), inputShape: shape, ConstantPad2D(1)) }
        assertRejects("resizeNearest to an empty size") { _ = try be.resizeNearest(x, NearestResize(height: 0, width: 4)) }
        assertRejects("resizeNearest to a negative size") { _ = try be.resizeNearest(x, NearestResize(height: 4, width: -2)) }
        assertRejects("resizeNearestBackward with a mismatched gradient") {
            _ = try be.resizeNearestBackward(t([3, 4, 8, 8]), inputShape: shape, NearestResize(height: 8, width: 9))
        }
        assertRejects("transpose of a rank-3 tensor") { _ = try be.transpose(t([3, 4, 5])) }
        assertRejects("transpose of an NCHW tensor") { _ = try be.transpose(x) }
        assertRejects("transpose of int32") { _ = try be.transpose(be.tensor(ints: [1, 2], shape: [1, 2])) }
        assertRejects("totalVariation with beta < 1") { _ = try be.totalVariation(x, TotalVariation(beta: 0.5)) }
        assertRejects("totalVariationBackward with a gradient per channel") { _ = try be.totalVariationBackward(t([4]), input: x, TotalVariation()) }
        assertRejects("lpNorm with p < 1") { _ = try be.lpNorm(x, p: 0.5) }
        assertRejects("gaussianBlur with sigma 0") { _ = try be.gaussianBlur(x, GaussianBlur(sigma: 0)) }
        assertRejects("roll of [N, K] rows") { _ = try be.roll(t([3, 4]), shiftH: 1, shiftW: 1) }
        assertRejects("sgdMomentum with a mismatched velocity") {
            try be.step(SGDMomentum(learningRate: 0.1), parameter: x, gradient: x, velocity: t([3, 4, 5, 7]))
        }
        assertRejects("adam at step 0") {
            try be.step(Adam(learningRate: 0.1), step: 0, parameter: x, gradient: x, firstMoment: x, secondMoment: x)
        }
    }
}
