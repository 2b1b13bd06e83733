// Elementwise kernels, data movement and the launch shapes every non-convolution kernel uses.
// Kernels: `Sources/Kernels.cl` below "Non-convolution kernels". No atomics anywhere; every
// reduction is one work-group folding in a fixed order, so results repeat bit for bit on a device.
// Against the reference: relative error within 1e-5 (`ConformanceTests`, seen ~1e-7).

extension OpenCLBackend {
    // MARK: Launch shapes

    /// Work-group size of the one-work-item-per-element kernels: 64 items rounded up to the
    /// device's preferred multiple (SIMD width or warp), within its maximum work-group size.
    var elementGroupSize: Int {
        let multiple = max(profile.preferredWorkGroupMultiple, 1)
        return max(1, min((64 + multiple - 1) / multiple * multiple, profile.maxWorkGroupSize))
    }

    /// Work-items of a reduction work-group: a power of two (the tree in `work_group_reduce`
    /// halves it), 128 unless the device allows fewer. Fixed per device, so reductions repeat
    /// bit for bit.
    var reductionGroupSize: Int {
        var size = 128
        while size > max(profile.maxWorkGroupSize, 1) { size /= 2 }
        return size
    }

    /// One work-item per element; the kernel's last argument is the element count.
    func launchElementwise(_ name: String, count: Int, _ args: [KernelArg]) throws {
        try launch(name, global: [count], local: [elementGroupSize], arguments: args + [.int(count)])
    }

    /// One work-group per reduced channel, row or image; the kernel's last argument is the
    /// group's local scratch.
    func launchReduction(_ name: String, groups: Int, _ args: [KernelArg]) throws {
        let size = reductionGroupSize
        try launch(name, global: [groups * size], local: [size], arguments: args + [.localFloats(size)])
    }

    // MARK: Elementwise and data movement

    public func fill(_ tensor: Tensor, value: Float) throws {
        try launch("fill_f32", global: [tensor.count], .tensor(tensor), .float(value), .int(tensor.count))
    }

    public func axpby(alpha: Float, _ x: Tensor, beta: Float, _ y: Tensor, output: Tensor) throws {
        try launchElementwise("axpby_f32", count: output.count, [.float(alpha), .tensor(x), .float(beta), .tensor(y), .tensor(output)])
    }

    public func biasAdd(_ input: Tensor, bias: Tensor, output: Tensor) throws {
        let (_, c, h, w) = try input.shape.nchw(for: "biasAdd")
        try launchElementwise("bias_add", count: output.count, [.tensor(input), .tensor(bias), .tensor(output), .int(c), .int(h * w)])
    }

    /// Work-group per channel; each sum is folded in the fixed order of `work_group_reduce`.
    public func channelSum(_ input: Tensor, output: Tensor) throws {
        let (n, c, h, w) = try input.shape.nchw(for: "channelSum")
        try launchReduction("channel_sum", groups: c, [.tensor(input), .tensor(output), .int(n), .int(c), .int(h * w)])
    }

    public func copyChannels(from src: Tensor, srcOffset: Int, to dst: Tensor, dstOffset: Int, channels: Int) throws {
        let (n, srcChannels, h, w) = try src.shape.nchw(for: "copyChannels")
        let dstChannels = try dst.shape.nchw(for: "copyChannels").c
        try launchElementwise("copy_channels", count: n * channels * h * w,
                              [.tensor(src), .int(srcChannels), .int(srcOffset), .tensor(dst), .int(dstChannels), .int(dstOffset),
                               .int(channels), .int(h * w)])
    }

    /// One work-item per output element, neighbours along an output row: contiguous writes, reads
    /// `C` apart.
    public func transpose2d(input: Tensor, output: Tensor) throws {
        guard input.shape.rank == 2 else { throw ShapeError("transpose2d: expected an [R, C] matrix, got \(input.shape)") }
        try launchElementwise("transpose2d", count: output.count, [.tensor(input), .tensor(output), .int(input.shape[0]), .int(input.shape[1])])
    }

    // MARK: Activations and clamp

    /// ReLU runs as leaky ReLU with slope 0 (`leaky_gate` keeps its closed side exactly 0).
    private func slope(_ activation: Activation) -> Float {
        switch activation {
        case .relu: return 0
        case .leakyRelu(let slope): return slope
        }
    }

    public func activationForward(_ activation: Activation, input: Tensor, output: Tensor) throws {
        try launchElementwise("activation_fwd", count: output.count, [.tensor(input), .tensor(output), .float(slope(activation))])
    }

    /// The `RELU_*` codes of Kernels.cl; leaky ReLU always takes its true gradient.
    public func activationBackward(_ activation: Activation, rule: ReLUBackwardRule, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let code = activation == .relu ? rule.kernelCode : ReLUBackwardRule.standard.kernelCode
        try launchElementwise("activation_bwd", count: inputGrad.count,
                              [.tensor(input), .tensor(outputGrad), .tensor(inputGrad), .float(slope(activation)), .int(code)])
    }

    public func clampForward(min: Float, max: Float, input: Tensor, output: Tensor) throws {
        try launchElementwise("clamp_fwd", count: output.count, [.tensor(input), .tensor(output), .float(min), .float(max)])
    }

    public func clampBackward(min: Float, max: Float, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        try launchElementwise("clamp_bwd", count: inputGrad.count,
                              [.tensor(input), .tensor(outputGrad), .tensor(inputGrad), .float(min), .float(max)])
    }
}
