import Foundation

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

    /// `exp(2 pi i j / n)` for j < n as (cos, sin) pairs, computed in double precision once per n.
    private func twiddles(_ n: Int) throws -> Tensor {
        try constant("twiddles \(n)") {
            (0..<n).flatMap { j -> [Float] in
                let a = 2 * Double.pi * Double(j) / Double(n)
                return [Float(cos(a)), Float(sin(a))]
            }
        }
    }

    /// `op.scale(ky, kx)` as a `[H, WF]` table.
    private func spectrumScale(_ op: FourierImage) throws -> Tensor {
        try constant("spectrum scale \(op.height)x\(op.width) decay \(op.decay.bitPattern)") {
            (0..<op.height).flatMap { ky in (0..<op.spectrumWidth).map { kx in Float(op.scale(ky: ky, kx: kx)) } }
        }
    }

    /// Pass H into a complex intermediate `[N, C, H, 2 WF]`, then pass W.
    public func fourierImageForward(_ op: FourierImage, spectrum: Tensor, output: Tensor) throws {
        let t = try makeTensor(spectrum.shape, dtype: .float32)
        try launchElementwise("synth_fourier_h_fwd", count: spectrum.count / 2,
                              [.tensor(spectrum), .tensor(t), .tensor(twiddles(op.height)), .tensor(spectrumScale(op)),
                               .int(op.height), .int(op.width)])
        try launchElementwise("synth_fourier_w_fwd", count: output.count,
                              [.tensor(t), .tensor(output), .tensor(twiddles(op.width)), .int(op.height), .int(op.width)])
    }

    /// The adjoint passes in reverse order.
    public func fourierImageBackward(_ op: FourierImage, outputGrad: Tensor, spectrumGrad: Tensor) throws {
        let dt = try makeTensor(spectrumGrad.shape, dtype: .float32)
        try launchElementwise("synth_fourier_w_bwd", count: dt.count / 2,
                              [.tensor(outputGrad), .tensor(dt), .tensor(twiddles(op.width)), .int(op.height), .int(op.width)])
        try launchElementwise("synth_fourier_h_bwd", count: spectrumGrad.count / 2,
                              [.tensor(dt), .tensor(spectrumGrad), .tensor(twiddles(op.height)), .tensor(spectrumScale(op)),
                               .int(op.height), .int(op.width)])
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

    /// Lucid's diversity: the Gram matrices `[N, C, C]` and their pairwise dot products `[N, N]`
    /// (one work-group per pair), then the value from the dots alone.
    private func grams(_ input: Tensor) throws -> (g: Tensor, dots: Tensor, n: Int, c: Int, p: Int) {
        let (n, c) = (input.shape[0], input.shape[1]), p = input.count / (n * c)
        let g = try makeTensor([n, c, c], dtype: .float32), dots = try makeTensor([n, n], dtype: .float32)
        try launchElementwise("gram_fwd", count: g.count, [.tensor(input), .tensor(g), .int(c), .int(p)])
        try launchReduction("gram_pair_dots", groups: n * n, [.tensor(g), .tensor(dots), .int(n), .int(c * c)])
        return (g, dots, n, c, p)
    }

    public func gramDiversityForward(input: Tensor, output: Tensor) throws {
        let (_, dots, n, _, _) = try grams(input)
        try launch("gram_diversity_value", global: [1], .tensor(dots), .tensor(output), .int(n))
    }

    /// The cotangent of each Gram matrix, then `dA_n = 2 U_n A_n`.
    public func gramDiversityBackward(input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let (g, dots, n, c, p) = try grams(input)
        let u = try makeTensor(g.shape, dtype: .float32)
        try launchElementwise("gram_diversity_cotangent", count: u.count, [.tensor(g), .tensor(dots), .tensor(outputGrad), .tensor(u), .int(n), .int(c * c)])
        try launchElementwise("gram_backward_apply", count: inputGrad.count, [.tensor(u), .tensor(input), .tensor(inputGrad), .int(c), .int(p)])
    }
}
