// Image-space ops: bilinear and nearest resize, constant pad, total variation, Lp norm, Gaussian
// blur, roll. Backward passes are gathers (one work-item per input element); per-image values are
// one work-group per image.

extension OpenCLBackend {
    // MARK: Bilinear resize

    public func resizeBilinearForward(_ op: BilinearResize, input: Tensor, output: Tensor) throws {
        let (_, _, h, w) = try input.shape.nchw(for: "resizeBilinear")
        try launchElementwise("resize_bilinear_fwd", count: output.count,
                              [.tensor(input), .tensor(output), .int(h), .int(w), .int(op.height), .int(op.width), .int(op.alignCorners ? 1 : 0)])
    }

    public func resizeBilinearBackward(_ op: BilinearResize, outputGrad: Tensor, inputGrad: Tensor) throws {
        let (_, _, h, w) = try inputGrad.shape.nchw(for: "resizeBilinearBackward")
        try launchElementwise("resize_bilinear_bwd", count: inputGrad.count,
                              [.tensor(outputGrad), .tensor(inputGrad), .int(h), .int(w), .int(op.height), .int(op.width), .int(op.alignCorners ? 1 : 0)])
    }

    // MARK: Nearest resize and constant pad

    /// The plane sizes `H, W, OH, OW` of a kernel mapping `input`'s planes to `output`'s.
    private func planeSizes(input: Tensor, output: Tensor, _ name: String) throws -> [KernelArg] {
        let (_, _, h, w) = try input.shape.nchw(for: name)
        let (_, _, oh, ow) = try output.shape.nchw(for: name)
        return [h, w, oh, ow].map { .int($0) }
    }

    public func resizeNearestForward(_ op: NearestResize, input: Tensor, output: Tensor) throws {
        try launchElementwise("resize_nearest_fwd", count: output.count,
                              [.tensor(input), .tensor(output)] + planeSizes(input: input, output: output, "resizeNearest"))
    }

    public func resizeNearestBackward(_ op: NearestResize, outputGrad: Tensor, inputGrad: Tensor) throws {
        try launchElementwise("resize_nearest_bwd", count: inputGrad.count,
                              [.tensor(outputGrad), .tensor(inputGrad)] + planeSizes(input: inputGrad, output: outputGrad, "resizeNearestBackward"))
    }

    public func pad2dForward(_ op: ConstantPad2D, input: Tensor, output: Tensor) throws {
        try launchElementwise("pad2d_fwd", count: output.count,
                              [.tensor(input), .tensor(output)] + planeSizes(input: input, output: output, "pad2d")
                                + [.int(op.top), .int(op.left), .float(op.value)])
    }

    public func pad2dBackward(_ op: ConstantPad2D, outputGrad: Tensor, inputGrad: Tensor) throws {
        try launchElementwise("pad2d_bwd", count: inputGrad.count,
                              [.tensor(outputGrad), .tensor(inputGrad)] + planeSizes(input: inputGrad, output: outputGrad, "pad2dBackward")
                                + [.int(op.top), .int(op.left)])
    }

    // MARK: Total variation and Lp norm

    public func totalVariationForward(_ op: TotalVariation, input: Tensor, output: Tensor) throws {
        let (n, c, h, w) = try input.shape.nchw(for: "totalVariation")
        try launchReduction("total_variation_fwd", groups: n, [.tensor(input), .tensor(output), .int(c), .int(h), .int(w), .float(op.beta)])
    }

    public func totalVariationBackward(_ op: TotalVariation, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let (_, c, h, w) = try input.shape.nchw(for: "totalVariationBackward")
        try launchElementwise("total_variation_bwd", count: inputGrad.count,
                              [.tensor(input), .tensor(outputGrad), .tensor(inputGrad), .int(c), .int(h), .int(w), .float(op.beta)])
    }

    public func lpNormForward(p: Float, input: Tensor, output: Tensor) throws {
        let n = input.shape[0]
        try launchReduction("lp_norm_fwd", groups: n, [.tensor(input), .tensor(output), .int(n > 0 ? input.count / n : 0), .float(p)])
    }

    public func lpNormBackward(p: Float, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let n = input.shape[0]
        guard n > 0 else { return }
        try launchElementwise("lp_norm_bwd", count: inputGrad.count,
                              [.tensor(input), .tensor(outputGrad), .tensor(inputGrad), .int(input.count / n), .float(p)])
    }

    // MARK: Gaussian blur

    /// The axes of one `gaussian_blur_pass` (the `BLUR_*` codes of Kernels.cl).
    private enum BlurAxis: Int { case none = 0, horizontal = 1, vertical = 2 }

    private func blurPass(_ op: GaussianBlur, from input: Tensor, to output: Tensor, convolve: BlurAxis, normalize: BlurAxis) throws {
        let (_, _, h, w) = try input.shape.nchw(for: "gaussianBlur")
        let sigma = Double(op.sigma)
        try launchElementwise("gaussian_blur_pass", count: output.count,
                              [.tensor(input), .tensor(output), .int(h), .int(w), .int(op.radius), .float(Float(1 / (2 * sigma * sigma))),
                               .int(convolve.rawValue), .int(normalize.rawValue)])
    }

    /// Horizontal pass, then vertical, each renormalized over its in-image taps.
    public func gaussianBlurForward(_ op: GaussianBlur, input: Tensor, output: Tensor) throws {
        let horizontal = try makeTensor(input.shape, dtype: .float32)
        try blurPass(op, from: input, to: horizontal, convolve: .horizontal, normalize: .horizontal)
        try blurPass(op, from: horizontal, to: output, convolve: .vertical, normalize: .vertical)
    }

    /// The exact adjoint: vertical adjoint (divide by the vertical Z, convolve vertically), then the
    /// horizontal one (divide by the horizontal Z, convolve horizontally); the middle pass does both
    /// the vertical convolution and the horizontal division.
    public func gaussianBlurBackward(_ op: GaussianBlur, outputGrad: Tensor, inputGrad: Tensor) throws {
        let vertical = try makeTensor(outputGrad.shape, dtype: .float32)
        try blurPass(op, from: outputGrad, to: inputGrad, convolve: .none, normalize: .vertical)
        try blurPass(op, from: inputGrad, to: vertical, convolve: .vertical, normalize: .horizontal)
        try blurPass(op, from: vertical, to: inputGrad, convolve: .horizontal, normalize: .none)
    }

    // MARK: Roll

    public func roll(shiftH: Int, shiftW: Int, input: Tensor, output: Tensor) throws {
        let (_, _, h, w) = try input.shape.nchw(for: "roll")
        guard h > 0, w > 0 else { return }
        try launchElementwise("roll_planes", count: output.count,
                              [.tensor(input), .tensor(output), .int(h), .int(w), .int((shiftH % h + h) % h), .int((shiftW % w + w) % w)])
    }
}
