// Convolution on the device: `conv2d_fwd`, `conv2d_bwd_data` and `conv2d_bwd_filter` in Kernels.cl.

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

    public func conv2dForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws {
        let (n, o, oh, ow) = (output.shape[0], output.shape[1], output.shape[2], output.shape[3])
        // Without a bias the kernel still needs a valid buffer argument; it never reads it.
        try launch("conv2d_fwd", global: [columns(ow), oh, n * op.groups * tiles(o / op.groups)], local: convLocal,
                   arguments: [.tensor(input), .tensor(weight), .tensor(bias ?? weight), .int(bias == nil ? 0 : 1), .tensor(output)]
                       + geometry(op, input: input.shape, weight: weight.shape, output: output.shape))
    }

    public func conv2dBackwardData(_ op: Conv2D, outputGrad: Tensor, weight: Tensor, inputGrad: Tensor) throws {
        let (n, c, h, w) = (inputGrad.shape[0], inputGrad.shape[1], inputGrad.shape[2], inputGrad.shape[3])
        // One column block per phase of the stride (see conv2d_bwd_data).
        let stride = op.window.strideW
        try launch("conv2d_bwd_data", global: [stride * columns((w + stride - 1) / stride), h, n * op.groups * tiles(c / op.groups)], local: convLocal,
                   arguments: [.tensor(outputGrad), .tensor(weight), .tensor(inputGrad)]
                       + geometry(op, input: inputGrad.shape, weight: weight.shape, output: outputGrad.shape))
    }

    public func conv2dBackwardFilter(_ op: Conv2D, input: Tensor, outputGrad: Tensor, weightGrad: Tensor) throws {
        let ws = weightGrad.shape
        try launch("conv2d_bwd_filter", global: [ws[1] * ws[2] * ws[3], op.groups * tiles(ws[0] / op.groups)],
                   local: [min(convTiling.groupWidth, profile.maxWorkGroupSize), 1],
                   arguments: [.tensor(input), .tensor(outputGrad), .tensor(weightGrad)]
                       + geometry(op, input: input.shape, weight: ws, output: outputGrad.shape))
    }
}
