import CLBackend
import XCTest

/// Convolution kernels (forward, backward-data, backward-filter, bias gradient), transposed
/// convolution and linear layers, OpenCL against the reference, under both tile sets.
final class ConvConformanceTests: XCTestCase {
    struct ConvCase {
        var name: String
        var input: Shape
        var outChannels: Int
        var op: Conv2D
        var bias = true
    }

    static let convCases: [ConvCase] = [
        ConvCase(name: "3x3 pad 1, batch 3", input: [3, 5, 11, 9], outChannels: 7, op: Conv2D(window: Window2D(kernel: 3, padding: 1))),
        ConvCase(name: "3x2 stride 2, asymmetric pad", input: [2, 4, 13, 10], outChannels: 9,
                 op: Conv2D(window: Window2D(kernel: (3, 2), stride: (2, 2), padding: (0, 1, 1, 2)))),
        ConvCase(name: "3x3 dilation 2, pad 2", input: [1, 6, 12, 12], outChannels: 10, op: Conv2D(window: Window2D(kernel: 3, padding: 2, dilation: 2))),
        ConvCase(name: "groups 3", input: [2, 6, 8, 7], outChannels: 9, op: Conv2D(window: Window2D(kernel: 3, padding: 1), groups: 3), bias: false),
        ConvCase(name: "depthwise stride 2", input: [3, 8, 9, 11], outChannels: 8, op: Conv2D(window: Window2D(kernel: 3, stride: 2, padding: 1), groups: 8)),
        ConvCase(name: "1x1", input: [2, 16, 7, 5], outChannels: 20, op: Conv2D(window: Window2D(kernel: 1))),
        ConvCase(name: "9x9 (81 taps), pad 4", input: [1, 3, 10, 12], outChannels: 5, op: Conv2D(window: Window2D(kernel: 9, padding: 4))),
        ConvCase(name: "stride 3 x 1, dilation (2, 3), pad (2, 0, 1, 3)", input: [2, 3, 15, 14], outChannels: 4,
                 op: Conv2D(window: Window2D(kernel: (3, 3), stride: (3, 1), dilation: (2, 3), padding: (2, 0, 1, 3)))),
        ConvCase(name: "column stride 3, dilation (1, 2), pad (0, 2, 1, 1)", input: [2, 3, 11, 37], outChannels: 5,
                 op: Conv2D(window: Window2D(kernel: (2, 3), stride: (1, 3), dilation: (1, 2), padding: (0, 2, 1, 1)))),
    ]

    /// Stride-1 shapes for the implicit-GEMM variants: rows not a multiple of any register block,
    /// several pixel tiles per plane, asymmetric pads, groups, a pad beyond the kernel extent
    /// (backward-data falls back to the direct kernel there), and a gapnet-like training shape.
    static let gemmCases: [ConvCase] = [
        ConvCase(name: "3x3 pad 1, batch 3", input: [3, 5, 11, 9], outChannels: 7, op: Conv2D(window: Window2D(kernel: 3, padding: 1))),
        ConvCase(name: "3x2 asymmetric pad", input: [2, 4, 13, 30], outChannels: 13, op: Conv2D(window: Window2D(kernel: (3, 2), padding: (0, 1, 2, 0)))),
        ConvCase(name: "3x3 dilation 2, pad 2", input: [1, 6, 12, 12], outChannels: 10, op: Conv2D(window: Window2D(kernel: 3, padding: 2, dilation: 2))),
        ConvCase(name: "groups 3", input: [2, 6, 8, 7], outChannels: 9, op: Conv2D(window: Window2D(kernel: 3, padding: 1), groups: 3), bias: false),
        ConvCase(name: "1x1", input: [2, 16, 7, 5], outChannels: 20, op: Conv2D(window: Window2D(kernel: 1))),
        ConvCase(name: "1x1 pad 1", input: [1, 5, 6, 9], outChannels: 3, op: Conv2D(window: Window2D(kernel: 1, padding: 1))),
        ConvCase(name: "5x5 no pad, wide", input: [1, 3, 9, 70], outChannels: 25, op: Conv2D(window: Window2D(kernel: 5))),
        ConvCase(name: "gapnet-like 14x14", input: [4, 16, 14, 14], outChannels: 32, op: Conv2D(window: Window2D(kernel: 3, padding: 1))),
    ]

    @discardableResult
    func runConvCases(tiling: ConvTiling?, label: String, cases: [ConvCase] = convCases,
                      variants: [ConvDirection: ConvVariant] = [.forward: .direct, .backwardData: .direct, .backwardFilter: .direct]) throws -> Backends {
        let b = try Backends(tiling: tiling)
        b.opencl.convTuner.forced = variants
        for k in cases {
            let wShape: Shape = [k.outChannels, k.input[1] / k.op.groups, k.op.window.kernelH, k.op.window.kernelW]
            let x = try b.random(k.input), w = try b.random(wShape), bias = try b.random([k.outChannels])
            let yShape = try k.op.outputShape(input: k.input, weight: wShape)
            let dy = try b.random(yShape)
            let shape = "\(k.name): \(k.input) * \(wShape) -> \(yShape)\(label)"
            try b.compare(op: "conv2d", direction: "forward", shape: shape) { be, cl in
                try be.conv2d(cl ? x.cl : x.ref, weight: cl ? w.cl : w.ref, bias: k.bias ? (cl ? bias.cl : bias.ref) : nil, k.op)
            }
            try b.compare(op: "conv2d", direction: "backward-data", shape: shape) { be, cl in
                try be.conv2dBackwardData(cl ? dy.cl : dy.ref, weight: cl ? w.cl : w.ref, inputShape: k.input, k.op)
            }
            try b.compare(op: "conv2d", direction: "backward-filter", shape: shape) { be, cl in
                try be.conv2dBackwardFilter(cl ? x.cl : x.ref, outputGrad: cl ? dy.cl : dy.ref, weightShape: wShape, k.op)
            }
            if k.bias {
                try b.compare(op: "conv2d", direction: "backward-bias", shape: shape) { be, cl in try be.biasGradient(cl ? dy.cl : dy.ref) }
            }
        }
        return b
    }

    func testConvolutionWithDeviceTiling() throws { try runConvCases(tiling: nil, label: "") }

    /// The GPU tile set (weights staged in local memory, 16x4 work-groups) runs on any device;
    /// on PoCL its speed means nothing but its results must be just as right.
    func testConvolutionWithGPUTiling() throws { try runConvCases(tiling: .gpu, label: " [gpu tiles]") }

    func testConvolutionWithNarrowTiling() throws {
        try runConvCases(tiling: ConvTiling(outputsPerItem: 3, vectorWidth: 4, groupWidth: 2, groupHeight: 2, stagesWeightsInLocalMemory: false), label: " [3x4 tiles]")
    }

    /// Every implicit-GEMM variant (register blocks for forward and backward-data, blocks x split-K
    /// slices for backward-filter) against the reference.
    func testConvolutionGEMMVariants() throws {
        let data = ConvVariant.gemmBlocks.map { ConvVariant.gemm(rows: $0.0, vectors: $0.1) }
        let filters = ConvVariant.filterBlocks.flatMap { b in ConvVariant.filterSlices.map { ConvVariant.filter(rows: b.0, taps: b.1, slices: $0) } }
        for (i, filter) in filters.enumerated() {
            let gemm = data[i % data.count]
            try runConvCases(tiling: nil, label: " [\(gemm), \(filter)]", cases: Self.gemmCases,
                             variants: [.forward: gemm, .backwardData: gemm, .backwardFilter: filter])
        }
    }

    /// The GPU-like tile set (`conv_tiled_*`: 64 x 64 work-group tiles in local memory, float4 reads)
    /// on every geometry (forward; backward-data where stride 1 allows, the direct kernel elsewhere),
    /// plus shapes spanning several tiles with ragged edges: 70 output channels (two channel tiles),
    /// 286 and 1001 pixels, reduction lengths 171 and 50 (not multiples of the 16-deep k step).
    func testConvolutionTiledVariants() throws {
        let ragged = [
            ConvCase(name: "70 channels, 3x3 pad 1", input: [2, 19, 13, 11], outChannels: 70, op: Conv2D(window: Window2D(kernel: 3, padding: 1))),
            ConvCase(name: "5x5 stride 2 groups 2", input: [1, 4, 63, 65], outChannels: 6, op: Conv2D(window: Window2D(kernel: 5, stride: 2, padding: 2), groups: 2)),
        ]
        let maxGroup = try Backends().opencl.profile.maxWorkGroupSize
        for block in ConvVariant.tiledBlocks where (64 / block.1) * (64 / block.0) <= maxGroup {
            let tiled = ConvVariant.tiled(rows: block.0, columns: block.1)
            let b = try runConvCases(tiling: nil, label: " [\(tiled)]", cases: Self.convCases + Self.gemmCases + ragged,
                                     variants: [.forward: tiled, .backwardData: tiled, .backwardFilter: .direct])
            XCTAssertGreaterThanOrEqual(b.opencl.launchCounts["conv_tiled_\(block.0)x\(block.1)"] ?? 0, 2 * ragged.count, "the tiled kernel ran")
        }
    }

    /// Winograd F(2x2, 3x3), forward and backward-data (rotated weights, pads 2 - pad), against the
    /// reference: odd output sizes (partial 2x2 tiles), no pad, asymmetric pads, more than 8 output
    /// channels and more than 32 tiles (several GEMM blocks each way), batch 3.
    func testConvolutionWinograd() throws {
        let op = Conv2D(window: Window2D(kernel: 3, padding: 1))
        let cases = [
            Self.gemmCases[0],
            ConvCase(name: "odd 13x11, 19 channels", input: [1, 5, 13, 11], outChannels: 19, op: op),
            ConvCase(name: "no pad", input: [2, 3, 10, 7], outChannels: 4, op: Conv2D(window: Window2D(kernel: 3))),
            ConvCase(name: "asymmetric pad (0, 1, 2, 0)", input: [2, 4, 9, 12], outChannels: 6, op: Conv2D(window: Window2D(kernel: (3, 3), padding: (0, 1, 2, 0)))),
            ConvCase(name: "gapnet-like 14x14", input: [4, 16, 14, 14], outChannels: 32, op: op, bias: false),
        ]
        let b = try runConvCases(tiling: nil, label: " [winograd2x2]", cases: cases,
                                 variants: [.forward: .winograd, .backwardData: .winograd, .backwardFilter: .direct])
        XCTAssertEqual(b.opencl.launchCounts["wino_gemm"], 2 * cases.count, "one forward and one backward-data per case")
    }

    /// Strided convolutions as stride-1 ones on the stride phases: ResNet's 3x3 / 1x1 / 7x7 stride-2
    /// layers, odd sizes whose last rows no output reads, asymmetric pads, stride 3 and a kernel
    /// smaller than the stride, each inner stride-1 convolution left to the heuristic (GEMM or Winograd).
    func testConvolutionPhased() throws {
        let cases = [
            ConvCase(name: "3x3 stride 2 pad 1", input: [2, 8, 14, 14], outChannels: 12, op: Conv2D(window: Window2D(kernel: 3, stride: 2, padding: 1))),
            ConvCase(name: "1x1 stride 2, odd size", input: [1, 16, 9, 7], outChannels: 8, op: Conv2D(window: Window2D(kernel: 1, stride: 2))),
            ConvCase(name: "7x7 stride 2 pad 3, 3 channels", input: [1, 3, 23, 20], outChannels: 16, op: Conv2D(window: Window2D(kernel: 7, stride: 2, padding: 3))),
            ConvCase(name: "3x2 stride 2, asymmetric pad", input: [2, 4, 13, 10], outChannels: 9,
                     op: Conv2D(window: Window2D(kernel: (3, 2), stride: (2, 2), padding: (1, 0, 0, 1))), bias: false),
            ConvCase(name: "5x5 stride 3 pad 2", input: [1, 5, 17, 16], outChannels: 6, op: Conv2D(window: Window2D(kernel: 5, stride: 3, padding: 2))),
            ConvCase(name: "2x2 stride 3 (taps skip phases)", input: [1, 4, 11, 13], outChannels: 5, op: Conv2D(window: Window2D(kernel: 2, stride: 3))),
        ]
        let b = try runConvCases(tiling: nil, label: " [phased]", cases: cases,
                                 variants: [.forward: .phased, .backwardData: .phased, .backwardFilter: .direct])
        XCTAssertEqual(b.opencl.launchCounts["s2d_input"], cases.count, "one phase split per forward")
        XCTAssertEqual(b.opencl.launchCounts["s2d_input_bwd"], cases.count, "one gather per backward-data")
    }

    /// The Float64 Winograd reference (the transform matrices) equals the direct definition.
    func testReferenceWinogradEqualsTheDefinition() {
        for (input, o, op) in [([2, 3, 7, 9] as Shape, 4, Conv2D(window: Window2D(kernel: 3, padding: 1))),
                               ([1, 2, 6, 5], 3, Conv2D(window: Window2D(kernel: (3, 3), padding: (0, 2, 1, 0))))] {
            let wShape: Shape = [o, input[1], 3, 3]
            let x = randomValues(input.count).map(Double.init), w = randomValues(wShape.count).map(Double.init)
            let direct = Reference.conv2dForward(op, input: x, inputShape: input, weight: w, weightShape: wShape, bias: nil)
            let wino = Reference.conv2dWinograd2x2(op, input: x, inputShape: input, weight: w, weightShape: wShape)
            XCTAssertEqual(wino.count, direct.count)
            XCTAssertLessThan(zip(wino, direct).map { abs($0 - $1) }.max()!, 1e-12, "\(input) \(op.window)")
        }
    }

    /// Conv + bias + ReLU in one pass, and conv backward-data fused with the backward (every rule)
    /// of the ReLU that fed the convolution, under every variant (direct: a separate ReLU pass in
    /// place; GEMM, tiled, Winograd: in the kernel's epilogue), against the reference; shapes with a 3x3
    /// kernel (Winograd applies), an asymmetric pad, groups, and a stride of 2 (direct kernels only) plus a pad beyond the kernel extent
    /// (backward-data direct only).
    func testFusedConvolutionReLU() throws {
        let b = try Backends()
        let cases = [Self.gemmCases[0], Self.gemmCases[1], Self.gemmCases[3], Self.gemmCases[5], Self.convCases[1]]
        let variants = [ConvVariant.direct] + ConvVariant.gemmBlocks.map { .gemm(rows: $0.0, vectors: $0.1) }
            + ConvVariant.tiledBlocks.map { .tiled(rows: $0.0, columns: $0.1) } + [.winograd, .phased]
        for variant in variants {
            b.opencl.convTuner.forced = [.forward: variant, .backwardData: variant]
            for k in cases {
                let wShape: Shape = [k.outChannels, k.input[1] / k.op.groups, k.op.window.kernelH, k.op.window.kernelW]
                let x = try b.random(k.input), w = try b.random(wShape), bias = try b.random([k.outChannels])
                let yShape = try k.op.outputShape(input: k.input, weight: wShape)
                let dy = try b.random(yShape), z = try b.random(k.input)
                let a = (ref: try b.reference.relu(z.ref), cl: try b.opencl.relu(z.cl))
                let shape = "\(k.name): \(k.input) * \(wShape) -> \(yShape) [\(variant)]"
                try b.compare(op: "conv2d+relu", direction: "forward", shape: shape) { be, cl in
                    try be.conv2dBiasReLU(cl ? x.cl : x.ref, weight: cl ? w.cl : w.ref, bias: k.bias ? (cl ? bias.cl : bias.ref) : nil, k.op)
                }
                for rule in ReLUBackwardRule.allCases {
                    try b.compare(op: "relu+conv2d", direction: "backward-data (\(rule))", shape: shape) { be, cl in
                        try be.conv2dBackwardDataReLU(cl ? dy.cl : dy.ref, weight: cl ? w.cl : w.ref, reluOutput: cl ? a.cl : a.ref, rule: rule, k.op)
                    }
                }
            }
        }
    }

    /// Weights held constant: every variant that derives something from the weights (GEMM packing,
    /// the flipped pack for backward-data, the Winograd transforms) reuses it on later calls with the
    /// same results bit for bit, and a `write` to the weight inside the region is seen by the next call.
    func testHeldConstantWeightsAreReusedAndRefreshedOnWrite() throws {
        let b = try Backends()
        let be = b.opencl
        let op = Conv2D(window: Window2D(kernel: 3, padding: 1))
        let input: Shape = [2, 8, 9, 7], wShape: Shape = [12, 8, 3, 3]
        let x = try be.tensor(randomValues(input.count), shape: input), dy = try be.tensor(randomValues(2 * 12 * 9 * 7), shape: [2, 12, 9, 7])
        let w1 = randomValues(wShape.count), w2 = randomValues(wShape.count)
        for variant in [ConvVariant.gemm(rows: 8, vectors: 3), .winograd, .tiled(rows: 4, columns: 4)] {
            be.convTuner.forced = [.forward: variant, .backwardData: variant]
            let w = try be.tensor(w1, shape: wShape)
            func run() throws -> [Float] {
                try be.read(be.conv2d(x, weight: w, op)) + be.read(be.conv2dBackwardData(dy, weight: w, inputShape: input, op))
            }
            let plain = try run()
            let (made, reused) = (be.derivedWeightsMade, be.derivedWeightsReused)
            let (first, second, afterWrite) = try be.holdingConstant([w]) { () throws -> ([Float], [Float], [Float]) in
                let first = try run(), second = try run()
                try be.write(w2, to: w)
                return (first, second, try run())
            }
            XCTAssertEqual(first, plain, "\(variant): held weights changed the result")
            XCTAssertEqual(second, plain, "\(variant): reused weights changed the result")
            XCTAssertGreaterThan(be.derivedWeightsMade, made, "\(variant): nothing was derived and kept")
            XCTAssertGreaterThan(be.derivedWeightsReused, reused, "\(variant): the second call derived its weights again")
            try be.write(w2, to: w)
            XCTAssertEqual(afterWrite, try run(), "\(variant): a write to a held weight was not seen")
            XCTAssertNotEqual(afterWrite, plain)
        }
        be.convTuner.forced = [:]
    }

    /// The reference's fused ops are its separate ops composed (to rounding: the fused ones round once).
    func testReferenceFusedConvolutionReLUComposesTheSeparateOps() throws {
        let be = ReferenceBackend()
        let op = Conv2D(window: Window2D(kernel: 3, padding: 1))
        let x = try be.tensor(randomValues(2 * 4 * 7 * 6), shape: [2, 4, 7, 6]), w = try be.tensor(randomValues(5 * 4 * 9), shape: [5, 4, 3, 3])
        let bias = try be.tensor(randomValues(5), shape: [5]), dy = try be.tensor(randomValues(2 * 5 * 7 * 6), shape: [2, 5, 7, 6])
        let a = try be.relu(be.tensor(randomValues(2 * 4 * 7 * 6), shape: [2, 4, 7, 6]))
        XCTAssertLessThan(relativeError(try be.read(be.conv2dBiasReLU(x, weight: w, bias: bias, op)),
                                        try be.read(be.relu(be.conv2d(x, weight: w, bias: bias, op)))), 1e-6)
        for rule in ReLUBackwardRule.allCases {
            let fused = try be.read(be.conv2dBackwardDataReLU(dy, weight: w, reluOutput: a, rule: rule, op))
            let separate = try be.read(be.reluBackward(be.conv2dBackwardData(dy, weight: w, inputShape: x.shape, op), input: a, rule: rule))
            XCTAssertLessThan(relativeError(fused, separate), 1e-6, "\(rule)")
        }
    }

    /// A tuned second run, in a new backend on the same cache directory, compiles nothing and times
    /// nothing, and picks the first run's winners.
    func testTunedSecondRunCompilesAndTunesNothing() throws {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-tune-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = ProgramCache(environment: [ProgramCache.locationVariable: dir.path])
        let op = Conv2D(window: Window2D(kernel: 3, padding: 1))
        func run(_ be: OpenCLBackend) throws -> [Float] {
            let x = try be.tensor(randomValues(2 * 8 * 12 * 12), shape: [2, 8, 12, 12])
            let w = try be.tensor(randomValues(16 * 8 * 9), shape: [16, 8, 3, 3])
            let y = try be.conv2d(x, weight: w, op)
            _ = try be.conv2dBackwardData(y, weight: w, inputShape: x.shape, op)
            return try be.read(be.conv2dBackwardFilter(x, outputGrad: y, weightShape: w.shape, op))
        }
        let first = try OpenCLBackend(device: entry, cache: cache)
        first.convTuner.mode = .tune
        _ = try run(first)
        XCTAssertFalse(first.buildReport.cacheHit, "a fresh cache directory cannot hold the program")
        XCTAssertEqual(first.convTuner.tuningsRun, 3, "one tuning per direction")
        let second = try OpenCLBackend(device: entry, cache: cache)
        second.convTuner.mode = .tune
        _ = try run(second)
        XCTAssertTrue(second.buildReport.cacheHit, "the second run must load the program from the cache")
        XCTAssertEqual(second.convTuner.tuningsRun, 0, "the second run must reuse the stored winners")
        XCTAssertEqual(second.convTuner.storedChoices, first.convTuner.storedChoices)
        XCTAssertEqual(first.convTuner.storedChoices.count, 3)
    }

    /// In tune mode the tiled set is timed where local memory is on-chip, or when asked; Winograd
    /// and the GEMM blocks always (3x3 stride 1).
    func testTunerCandidates() throws {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-tune-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let op = Conv2D(window: Window2D(kernel: 3, padding: 1))
        for askTiled in [false, true] {
            let be = try OpenCLBackend(device: entry, cache: ProgramCache(environment: [ProgramCache.locationVariable: dir.appendingPathComponent("\(askTiled)").path]))
            be.convTuner.mode = .tune
            if askTiled { be.convTuner.timesTiledVariants = true }
            _ = try be.conv2d(be.tensor(randomValues(2 * 4 * 9 * 9), shape: [2, 4, 9, 9]), weight: be.tensor(randomValues(8 * 4 * 9), shape: [8, 4, 3, 3]), op)
            let timed = Set(be.convTuner.lastTimings.map(\.variant))
            let tiledTimed = askTiled || entry.profile.hasDedicatedLocalMemory
            XCTAssertEqual(timed, Set(ConvVariant.candidates(.forward, op, localMemory: tiledTimed, maxWorkGroupSize: entry.profile.maxWorkGroupSize)))
            XCTAssertTrue(timed.contains(.winograd) && timed.contains(.gemm(rows: 8, vectors: 3)))
            XCTAssertEqual(timed.contains(.tiled(rows: 8, columns: 8)), tiledTimed && entry.profile.maxWorkGroupSize >= 64)
        }
    }

    func testTransposedConvolution() throws {
        let b = try Backends()
        let cases: [(String, Shape, Int, ConvTranspose2D)] = [
            ("4x4 stride 2 pad 1", [2, 6, 7, 5], 4, ConvTranspose2D(window: Window2D(kernel: 4, stride: 2, padding: 1))),
            ("3x3 stride 2 pad 1 output padding 1", [3, 4, 5, 6], 5, ConvTranspose2D(window: Window2D(kernel: 3, stride: 2, padding: 1), outputPadding: (1, 1))),
            ("groups 2, dilation 2, asymmetric pad", [1, 4, 6, 5], 6,
             ConvTranspose2D(window: Window2D(kernel: (3, 2), stride: (1, 2), dilation: (2, 2), padding: (1, 0, 2, 1)), groups: 2)),
        ]
        for (name, input, outChannels, op) in cases {
            let wShape: Shape = [input[1], outChannels / op.groups, op.window.kernelH, op.window.kernelW]
            let x = try b.random(input), w = try b.random(wShape), bias = try b.random([outChannels])
            let yShape = try op.outputShape(input: input, weight: wShape)
            let dy = try b.random(yShape)
            let shape = "\(name): \(input) * \(wShape) -> \(yShape)"
            try b.compare(op: "convTranspose2d", direction: "forward", shape: shape) { be, cl in
                try be.convTranspose2d(cl ? x.cl : x.ref, weight: cl ? w.cl : w.ref, bias: cl ? bias.cl : bias.ref, op)
            }
            try b.compare(op: "convTranspose2d", direction: "backward-data", shape: shape) { be, cl in
                try be.convTranspose2dBackwardData(cl ? dy.cl : dy.ref, weight: cl ? w.cl : w.ref, inputShape: input, op)
            }
            try b.compare(op: "convTranspose2d", direction: "backward-filter", shape: shape) { be, cl in
                try be.convTranspose2dBackwardFilter(cl ? x.cl : x.ref, outputGrad: cl ? dy.cl : dy.ref, weightShape: wShape, op)
            }
            try b.compare(op: "convTranspose2d", direction: "backward-bias", shape: shape) { be, cl in try be.biasGradient(cl ? dy.cl : dy.ref) }
        }
    }

    func testLinear() throws {
        let b = try Backends()
        // The row kernels (N <= 16: ragged 16- and 32-wide tails, more than 8 rows) and the 1x1-convolution GEMM (N > 16).
        for (n, i, o) in [(3, 37, 11), (1, 64, 10), (5, 9, 130), (11, 100, 7), (16, 33, 5), (17, 40, 9), (40, 70, 12)] {
            let x = try b.random([n, i]), w = try b.random([o, i]), bias = try b.random([o]), dy = try b.random([n, o])
            let shape = "[\(n), \(i)] -> [\(n), \(o)]"
            try b.compare(op: "linear", direction: "forward", shape: shape) { be, cl in
                try be.linear(cl ? x.cl : x.ref, weight: cl ? w.cl : w.ref, bias: cl ? bias.cl : bias.ref)
            }
            try b.compare(op: "linear", direction: "backward-data", shape: shape) { be, cl in
                try be.linearBackwardData(cl ? dy.cl : dy.ref, weight: cl ? w.cl : w.ref)
            }
            try b.compare(op: "linear", direction: "backward-weight", shape: shape) { be, cl in
                try be.linearBackwardWeight(cl ? x.cl : x.ref, outputGrad: cl ? dy.cl : dy.ref)
            }
            try b.compare(op: "linear", direction: "backward-bias", shape: shape) { be, cl in try be.biasGradient(cl ? dy.cl : dy.ref) }
        }
    }

    /// The transposed convolution is the adjoint of the convolution: <conv(x), y> = <x, convT(y)>
    /// for the same weights, a closed-form identity independent of either implementation.
    func testTransposedConvolutionIsTheAdjointOfConvolution() throws {
        let b = try Backends()
        let conv = Conv2D(window: Window2D(kernel: (3, 4), stride: (2, 3), dilation: (1, 2), padding: (1, 2, 0, 1)), groups: 2)
        let input: Shape = [2, 4, 11, 13], wShape: Shape = [6, 2, 3, 4]
        let yShape = try conv.outputShape(input: input, weight: wShape)
        let x = randomValues(input.count), w = randomValues(wShape.count), y = randomValues(yShape.count)
        let be = b.opencl
        let cx = try be.read(be.conv2d(be.tensor(x, shape: input), weight: be.tensor(w, shape: wShape), conv))
        let ty = try be.read(be.conv2dBackwardData(be.tensor(y, shape: yShape), weight: be.tensor(w, shape: wShape), inputShape: input, conv))
        let lhs = zip(cx, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(x, ty).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(lhs)), "conv and its transpose are not adjoint")
    }

    func testInvalidConvolutionsAreRejected() throws {
        let be = ReferenceBackend()
        let x = try be.full([1, 6, 8, 8], value: 1)
        func rejects(_ what: String, _ body: () throws -> Tensor) {
            XCTAssertThrowsError(try body(), what) { XCTAssertTrue($0 is ShapeError, "\(what): \($0)") }
        }
        rejects("channels not divisible by groups") { try be.conv2d(x, weight: be.full([4, 2, 3, 3], value: 1), Conv2D(window: Window2D(kernel: 3), groups: 4)) }
        rejects("weight channels mismatch") { try be.conv2d(x, weight: be.full([4, 5, 3, 3], value: 1), Conv2D(window: Window2D(kernel: 3))) }
        rejects("kernel larger than padded input") { try be.conv2d(x, weight: be.full([4, 6, 9, 9], value: 1), Conv2D(window: Window2D(kernel: 9))) }
        rejects("zero stride") { try be.conv2d(x, weight: be.full([4, 6, 3, 3], value: 1), Conv2D(window: Window2D(kernel: 3, stride: 0))) }
        rejects("wrong bias length") { try be.conv2d(x, weight: be.full([4, 6, 3, 3], value: 1), bias: be.full([5], value: 0), Conv2D(window: Window2D(kernel: 3))) }
        rejects("rank-2 input") { try be.conv2d(be.full([6, 8], value: 1), weight: be.full([4, 6, 3, 3], value: 1), Conv2D(window: Window2D(kernel: 3))) }
        rejects("output padding not below stride") {
            try be.convTranspose2d(x, weight: be.full([6, 2, 3, 3], value: 1), ConvTranspose2D(window: Window2D(kernel: 3, stride: 2), outputPadding: (2, 0)))
        }
        rejects("linear in-features mismatch") { try be.linear(be.full([2, 5], value: 1), weight: be.full([3, 4], value: 1)) }
    }
}
