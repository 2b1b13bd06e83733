import Dispatch

// Convolution on the device: `conv2d_fwd`, `conv2d_bwd_data` and `conv2d_bwd_filter` in Kernels.cl
// (the direct variant, any geometry), or the implicit-GEMM variants of OpenCL+FastConv.swift, as
// `convTuner` chooses.

extension OpenCLBackend {
    /// The geometry arguments every conv kernel takes last (`G_PARAMS` in Kernels.cl).
    private func geometry(_ op: Conv2D, input: Shape, weight: Shape, output: Shape) -> [KernelArg] {
        let w = op.window
        return [input[0], input[1], input[2], input[3], output[1], output[2], output[3],
                w.kernelH, w.kernelW, w.strideH, w.strideW, w.padTop, w.padLeft, w.dilationH, w.dilationW, op.groups]
            .map { KernelArg.int($0) }
    }

    private var convLocal: [Int] { [convTiling.groupWidth, convTiling.groupHeight, 1] }

    private func columns(_ width: Int) -> Int { (width + convTiling.vectorWidth - 1) / convTiling.vectorWidth }

    private func tiles(_ channels: Int) -> Int { (channels + convTiling.outputsPerItem - 1) / convTiling.outputsPerItem }

    /// The fastest of three synchronized runs of `body` after a warm-up: the tuner's measurement.
    func timedRuns(_ body: () throws -> Void) throws -> Double {
        try synchronize()
        var best = Double.infinity
        for run in 0..<4 {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            try synchronize()
            // Run 0 warms up (PoCL compiles a kernel for its work-group size on first use).
            if run > 0 { best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9) }
        }
        return best
    }

    /// Runs `variant`; where a GEMM variant's scratch (padded input, packed weights, partial sums)
    /// does not fit the memory budget, the direct kernels, which need none, run instead. Scratch is
    /// allocated before any kernel writes the output, so the retry starts clean.
    private func runFallingBack(_ variant: ConvVariant, _ run: (ConvVariant) throws -> Void) throws {
        do {
            try run(variant)
        } catch is DeviceMemoryError where variant != .direct {
            try run(.direct)
        }
    }

    public func conv2dForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws {
        let run = { (v: ConvVariant) throws in try self.conv2dForward(op, variant: v, input: input, weight: weight, bias: bias, relu: false, output: output) }
        try runFallingBack(convTuner.variant(.forward, op, input: input.shape, weight: weight.shape, held: isHeld(weight)) { v in try timedRuns { try run(v) } }, run)
    }

    /// Conv + bias + ReLU: one GEMM kernel (the ReLU in its epilogue, no extra pass over the
    /// output), or the direct kernel then a ReLU in place. Tuned under the forward key.
    public func conv2dBiasReLUForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws {
        let run = { (v: ConvVariant) throws in try self.conv2dForward(op, variant: v, input: input, weight: weight, bias: bias, relu: true, output: output) }
        try runFallingBack(convTuner.variant(.forward, op, input: input.shape, weight: weight.shape, held: isHeld(weight)) { v in try timedRuns { try run(v) } }, run)
    }

    /// The forward pass with `variant`; `relu` applies max(0, .) after the bias (GEMM variants fuse it).
    func conv2dForward(_ op: Conv2D, variant: ConvVariant, input: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, output: Tensor) throws {
        if case .gemm(let m, let nv) = variant {
            return try gemmForward(op, rows: m, vectors: nv, input: input, weight: weight, bias: bias, relu: relu, output: output)
        }
        if case .tiled(let m, let n) = variant {
            return try tiledForward(op, rows: m, columns: n, input: input, weight: weight, bias: bias, relu: relu, output: output)
        }
        if variant == .winograd { return try winogradForward(op, input: input, weight: weight, bias: bias, relu: relu, output: output) }
        if variant == .phased { return try phasedForward(op, input: input, weight: weight, bias: bias, relu: relu, output: output) }
        let (n, o, oh, ow) = (output.shape[0], output.shape[1], output.shape[2], output.shape[3])
        // Without a bias the kernel still needs a valid buffer argument; it never reads it.
        try launch("conv2d_fwd", global: [columns(ow), oh, n * op.groups * tiles(o / op.groups)], local: convLocal,
                   arguments: [.tensor(input), .tensor(weight), .tensor(bias ?? weight), .int(bias == nil ? 0 : 1), .tensor(output)]
                       + geometry(op, input: input.shape, weight: weight.shape, output: output.shape))
        // Elementwise in place: each work-item reads its element before writing it.
        if relu { try activationForward(.relu, input: output, output: output) }
    }

    public func conv2dBackwardData(_ op: Conv2D, outputGrad: Tensor, weight: Tensor, inputGrad: Tensor) throws {
        try conv2dBackwardData(op, outputGrad: outputGrad, weight: weight, mask: nil, inputGrad: inputGrad)
    }

    /// Backward-data with the backward of the ReLU that fed the convolution: the GEMM epilogue gates
    /// each input gradient by `rule` with the ReLU's output, or the direct kernel then the ReLU
    /// backward in place. Tuned under the backward-data key.
    public func conv2dBackwardDataReLU(_ op: Conv2D, rule: ReLUBackwardRule, outputGrad: Tensor, weight: Tensor, reluOutput: Tensor,
                                       inputGrad: Tensor) throws {
        try conv2dBackwardData(op, outputGrad: outputGrad, weight: weight, mask: ReLUMask(output: reluOutput, rule: rule), inputGrad: inputGrad)
    }

    private func conv2dBackwardData(_ op: Conv2D, outputGrad: Tensor, weight: Tensor, mask: ReLUMask?, inputGrad: Tensor) throws {
        let run = { (v: ConvVariant) throws in
            try self.conv2dBackwardData(op, variant: v, outputGrad: outputGrad, weight: weight, mask: mask, inputGrad: inputGrad)
        }
        try runFallingBack(convTuner.variant(.backwardData, op, input: inputGrad.shape, weight: weight.shape, held: isHeld(weight)) { v in try timedRuns { try run(v) } }, run)
    }

    func conv2dBackwardData(_ op: Conv2D, variant: ConvVariant, outputGrad: Tensor, weight: Tensor, mask: ReLUMask? = nil, inputGrad: Tensor) throws {
        if case .gemm(let m, let nv) = variant {
            return try gemmBackwardData(op, rows: m, vectors: nv, outputGrad: outputGrad, weight: weight, mask: mask, inputGrad: inputGrad)
        }
        if case .tiled(let m, let n) = variant {
            return try tiledBackwardData(op, rows: m, columns: n, outputGrad: outputGrad, weight: weight, mask: mask, inputGrad: inputGrad)
        }
        if variant == .winograd {
            return try winogradBackwardData(op, outputGrad: outputGrad, weight: weight, mask: mask, inputGrad: inputGrad)
        }
        if variant == .phased {
            return try phasedBackwardData(op, outputGrad: outputGrad, weight: weight, mask: mask, inputGrad: inputGrad)
        }
        let (n, c, h, w) = (inputGrad.shape[0], inputGrad.shape[1], inputGrad.shape[2], inputGrad.shape[3])
        // One column block per phase of the stride (see conv2d_bwd_data).
        let stride = op.window.strideW
        try launch("conv2d_bwd_data", global: [stride * columns((w + stride - 1) / stride), h, n * op.groups * tiles(c / op.groups)], local: convLocal,
                   arguments: [.tensor(outputGrad), .tensor(weight), .tensor(inputGrad)]
                       + geometry(op, input: inputGrad.shape, weight: weight.shape, output: outputGrad.shape))
        if let mask { try activationBackward(.relu, rule: mask.rule, input: mask.output, outputGrad: inputGrad, inputGrad: inputGrad) }
    }

    public func conv2dBackwardFilter(_ op: Conv2D, input: Tensor, outputGrad: Tensor, weightGrad: Tensor) throws {
        let run = { (v: ConvVariant) throws in try self.conv2dBackwardFilter(op, variant: v, input: input, outputGrad: outputGrad, weightGrad: weightGrad) }
        try runFallingBack(convTuner.variant(.backwardFilter, op, input: input.shape, weight: weightGrad.shape) { v in try timedRuns { try run(v) } }, run)
    }

    func conv2dBackwardFilter(_ op: Conv2D, variant: ConvVariant, input: Tensor, outputGrad: Tensor, weightGrad: Tensor) throws {
        if case .filter(let m, let t, let s) = variant {
            return try gemmBackwardFilter(op, rows: m, taps: t, slices: s, input: input, outputGrad: outputGrad, weightGrad: weightGrad)
        }
        let ws = weightGrad.shape
        try launch("conv2d_bwd_filter", global: [ws[1] * ws[2] * ws[3], op.groups * tiles(ws[0] / op.groups)],
                   local: [min(convTiling.groupWidth, profile.maxWorkGroupSize), 1],
                   arguments: [.tensor(input), .tensor(outputGrad), .tensor(weightGrad)]
                       + geometry(op, input: input.shape, weight: ws, output: outputGrad.shape))
    }
}
