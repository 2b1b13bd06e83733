// Local response norm, inference batch norm, and the classifier heads over [N, K] rows.
// Per-channel and per-row reductions run one work-group each, folded in the fixed order of
// `work_group_reduce`: deterministic, no atomics.

extension OpenCLBackend {
    // MARK: Local response normalization

    private func lrnArgs(_ op: LocalResponseNorm, _ shape: Shape) throws -> [KernelArg] {
        let (_, c, h, w) = try shape.nchw(for: "localResponseNorm")
        return [.int(c), .int(h * w), .int(op.size), .float(op.alpha), .float(op.beta), .float(op.k)]
    }

    public func localResponseNormForward(_ op: LocalResponseNorm, input: Tensor, output: Tensor) throws {
        try launchElementwise("local_response_norm_fwd", count: output.count,
                              [.tensor(input), .tensor(output)] + lrnArgs(op, input.shape))
    }

    public func localResponseNormBackward(_ op: LocalResponseNorm, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        try launchElementwise("local_response_norm_bwd", count: inputGrad.count,
                              [.tensor(input), .tensor(outputGrad), .tensor(inputGrad)] + lrnArgs(op, input.shape))
    }

    // MARK: Batch normalization (inference form)

    public func batchNormForward(epsilon: Float, input: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor,
                                 output: Tensor) throws {
        let (_, c, h, w) = try input.shape.nchw(for: "batchNorm")
        try launchElementwise("batch_norm_fwd", count: output.count,
                              [.tensor(input), .tensor(scale), .tensor(shift), .tensor(mean), .tensor(variance), .tensor(output),
                               .float(epsilon), .int(c), .int(h * w)])
    }

    /// `dx` elementwise; `dscale` one work-group per channel; `dshift` is the channel sum of `dy`.
    public func batchNormBackward(epsilon: Float, input: Tensor, outputGrad: Tensor, scale: Tensor, mean: Tensor, variance: Tensor,
                                  inputGrad: Tensor, scaleGrad: Tensor?, shiftGrad: Tensor?) throws {
        let (n, c, h, w) = try input.shape.nchw(for: "batchNormBackward")
        try launchElementwise("batch_norm_bwd_data", count: inputGrad.count,
                              [.tensor(outputGrad), .tensor(scale), .tensor(variance), .tensor(inputGrad), .float(epsilon), .int(c), .int(h * w)])
        if let scaleGrad {
            try launchReduction("batch_norm_bwd_scale", groups: c,
                                [.tensor(input), .tensor(outputGrad), .tensor(mean), .tensor(variance), .tensor(scaleGrad),
                                 .float(epsilon), .int(n), .int(c), .int(h * w)])
        }
        if let shiftGrad { try channelSum(outputGrad, output: shiftGrad) }
    }

    // MARK: Softmax and cross-entropy (one work-group per row)

    /// Rows and row length of an `[N, K]` tensor (the public API has checked the rank).
    private func rows(_ t: Tensor) -> (n: Int, k: Int) {
        let n = t.shape.rank > 0 ? t.shape[0] : 1
        return (n, n > 0 ? t.count / n : 0)
    }

    public func softmaxForward(log: Bool, input: Tensor, output: Tensor) throws {
        let (n, k) = rows(input)
        try launchReduction("softmax_fwd", groups: n, [.tensor(input), .tensor(output), .int(k), .int(log ? 1 : 0)])
    }

    public func softmaxBackward(log: Bool, output: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let (n, k) = rows(output)
        try launchReduction("softmax_bwd", groups: n, [.tensor(output), .tensor(outputGrad), .tensor(inputGrad), .int(k), .int(log ? 1 : 0)])
    }

    public func crossEntropyForward(logits: Tensor, labels: Tensor, losses: Tensor) throws {
        let (n, k) = rows(logits)
        try launchReduction("cross_entropy_fwd", groups: n, [.tensor(logits), .tensor(labels), .tensor(losses), .int(k)])
    }

    public func crossEntropyBackward(logits: Tensor, labels: Tensor, lossGrad: Tensor, logitsGrad: Tensor) throws {
        let (n, k) = rows(logits)
        try launchReduction("cross_entropy_bwd", groups: n,
                            [.tensor(logits), .tensor(labels), .tensor(lossGrad), .tensor(logitsGrad), .int(k)])
    }
}
