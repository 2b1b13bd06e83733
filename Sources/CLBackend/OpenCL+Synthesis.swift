// Synthesis ops (SynthesisOps.swift): one work-item per output element; every backward is a gather.

extension OpenCLBackend {
    private func drawArgs(_ draw: RandomDraw) -> [KernelArg] { [.int(draw.seed), .int(draw.step), .int(draw.firstStream)] }

    public func randomRollForward(_ op: RandomRoll, _ draw: RandomDraw, inverse: Bool, input: Tensor, output: Tensor) throws {
        let (_, c, h, w) = try input.shape.nchw(for: "randomRoll")
        try launchElementwise("synth_random_roll", count: output.count,
                              [.tensor(input), .tensor(output), .int(c), .int(h), .int(w)] + drawArgs(draw)
                                + [.int(op.maxShift), .int(inverse ? 1 : 0)])
    }

    private func affineArgs(_ op: RandomAffine, _ draw: RandomDraw) -> [KernelArg] {
        drawArgs(draw) + [.float(op.scale.lowerBound), .float(op.scale.upperBound), .float(op.maxRadians)]
    }

    public func randomAffineForward(_ op: RandomAffine, _ draw: RandomDraw, input: Tensor, output: Tensor) throws {
        let (_, c, h, w) = try input.shape.nchw(for: "randomAffine")
        try launchElementwise("synth_random_affine_fwd", count: output.count,
                              [.tensor(input), .tensor(output), .int(c), .int(h), .int(w)] + affineArgs(op, draw))
    }

    public func randomAffineBackward(_ op: RandomAffine, _ draw: RandomDraw, outputGrad: Tensor, inputGrad: Tensor) throws {
        let (_, c, h, w) = try outputGrad.shape.nchw(for: "randomAffineBackward")
        try launchElementwise("synth_random_affine_bwd", count: inputGrad.count,
                              [.tensor(outputGrad), .tensor(inputGrad), .int(c), .int(h), .int(w)] + affineArgs(op, draw))
    }

    /// Pass H into a complex intermediate `[N, C, H, 2 WF]`, then pass W.
    public func fourierImageForward(_ op: FourierImage, spectrum: Tensor, output: Tensor) throws {
        let t = try makeTensor(spectrum.shape, dtype: .float32)
        try launchElementwise("synth_fourier_h_fwd", count: spectrum.count / 2,
                              [.tensor(spectrum), .tensor(t), .int(op.height), .int(op.width), .float(op.decay)])
        try launchElementwise("synth_fourier_w_fwd", count: output.count, [.tensor(t), .tensor(output), .int(op.height), .int(op.width)])
    }

    /// The adjoint passes in reverse order.
    public func fourierImageBackward(_ op: FourierImage, outputGrad: Tensor, spectrumGrad: Tensor) throws {
        let dt = try makeTensor(spectrumGrad.shape, dtype: .float32)
        try launchElementwise("synth_fourier_w_bwd", count: dt.count / 2, [.tensor(outputGrad), .tensor(dt), .int(op.height), .int(op.width)])
        try launchElementwise("synth_fourier_h_bwd", count: spectrumGrad.count / 2,
                              [.tensor(dt), .tensor(spectrumGrad), .int(op.height), .int(op.width), .float(op.decay)])
    }

    public func colorSigmoidForward(matrix: Tensor, input: Tensor, output: Tensor) throws {
        let (_, c, h, w) = try input.shape.nchw(for: "colorSigmoid")
        try launchElementwise("synth_color_sigmoid_fwd", count: output.count,
                              [.tensor(input), .tensor(matrix), .tensor(output), .int(c), .int(h * w)])
    }

    public func colorSigmoidBackward(matrix: Tensor, output: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let (_, c, h, w) = try output.shape.nchw(for: "colorSigmoidBackward")
        try launchElementwise("synth_color_sigmoid_bwd", count: inputGrad.count,
                              [.tensor(output), .tensor(outputGrad), .tensor(matrix), .tensor(inputGrad), .int(c), .int(h * w)])
    }
}
