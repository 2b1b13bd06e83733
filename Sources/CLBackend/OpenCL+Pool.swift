// Max and average pooling. Forward kernels run one work-item per output element; backward kernels
// one per input element, gathering from the windows that cover it (no scatter, no atomics).

extension OpenCLBackend {
    /// The `POOL_GEOMETRY` arguments of Kernels.cl, in order, for pooling `input` to `output`.
    private func poolGeometry(_ w: Window2D, input: Shape, output: Shape) -> [KernelArg] {
        [input[2], input[3], output[2], output[3], w.kernelH, w.kernelW, w.strideH, w.strideW,
         w.dilationH, w.dilationW, w.padTop, w.padLeft, w.padBottom, w.padRight].map { .int($0) }
    }

    public func maxPool2dForward(_ op: MaxPool2D, input: Tensor, output: Tensor, switches: Tensor) throws {
        try launchElementwise("max_pool2d_fwd", count: output.count,
                              [.tensor(input), .tensor(output), .tensor(switches)]
                                + poolGeometry(op.window, input: input.shape, output: output.shape))
    }

    /// Each input position gathers from the windows that cover it. Switches made by
    /// `maxPool2dForward` always lie in their own window, so this is the sum over every window
    /// whose switch is the position.
    public func maxPool2dBackward(_ op: MaxPool2D, outputGrad: Tensor, switches: Tensor, inputGrad: Tensor) throws {
        let w = op.window, (ih, iw) = (inputGrad.shape[2], inputGrad.shape[3]), (oh, ow) = (outputGrad.shape[2], outputGrad.shape[3])
        if w.strideH == w.kernelH, w.strideW == w.kernelW, w.dilationH == 1, w.dilationW == 1,
           w.padTop == 0, w.padLeft == 0, w.padBottom == 0, w.padRight == 0, oh * w.kernelH <= ih, ow * w.kernelW <= iw {
            let rows = outputGrad.count / ow
            try launch("max_pool2d_bwd_disjoint", global: [ow, rows], local: [min(ow, 16), 1],
                       arguments: [.tensor(outputGrad), .tensor(switches), .tensor(inputGrad), .int(ih), .int(iw), .int(oh), .int(ow),
                                   .int(w.kernelH), .int(w.kernelW), .int(rows)])
            return
        }
        try launchElementwise("max_pool2d_bwd", count: inputGrad.count,
                              [.tensor(outputGrad), .tensor(switches), .tensor(inputGrad)]
                                + poolGeometry(op.window, input: inputGrad.shape, output: outputGrad.shape))
    }

    public func gatherSwitches(_ op: MaxPool2D, input: Tensor, switches: Tensor, output: Tensor) throws {
        let (_, _, h, w) = try input.shape.nchw(for: "gatherSwitches")
        let (_, _, oh, ow) = try switches.shape.nchw(for: "gatherSwitches")
        try launchElementwise("gather_switches", count: output.count,
                              [.tensor(input), .tensor(switches), .tensor(output), .int(h * w), .int(oh * ow)])
    }

    public func avgPool2dForward(_ op: AvgPool2D, input: Tensor, output: Tensor) throws {
        try launchElementwise("avg_pool2d_fwd", count: output.count,
                              [.tensor(input), .tensor(output)]
                                + poolGeometry(op.window, input: input.shape, output: output.shape)
                                + [.int(op.countIncludePad ? 1 : 0)])
    }

    public func avgPool2dBackward(_ op: AvgPool2D, outputGrad: Tensor, inputGrad: Tensor) throws {
        try launchElementwise("avg_pool2d_bwd", count: inputGrad.count,
                              [.tensor(outputGrad), .tensor(inputGrad)]
                                + poolGeometry(op.window, input: inputGrad.shape, output: outputGrad.shape)
                                + [.int(op.countIncludePad ? 1 : 0)])
    }
}
