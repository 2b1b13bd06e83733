// Fully connected layers: `dense_rows_fwd` / `dense_rows_bwd_data` in Kernels.cl for a few rows
// (they stream the weight matrix once per 8 rows and pack nothing), the convolution GEMMs as a
// 1x1 convolution for larger batches.

extension OpenCLBackend {
    /// Up to this many rows run on the row kernels. Past it the GEMM's reuse of each weight
    /// across 16-column vectors beats re-streaming the weights every 8 rows.
    static let denseRowLimit = 16

    public func denseForward(input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws {
        let (n, i, o) = (input.shape[0], weight.shape[1], weight.shape[0])
        guard n > Self.denseRowLimit else {
            try launch("dense_rows_fwd", global: [o], local: [1],
                       arguments: [.tensor(input), .tensor(weight), .tensor(bias ?? weight), .int(bias == nil ? 0 : 1), .tensor(output),
                                   .int(n), .int(i), .int(o)])
            return
        }
        try linearAsConvolution(input, weight: weight, bias: bias, output: output)
    }

    public func denseBackwardData(outputGrad: Tensor, weight: Tensor, inputGrad: Tensor) throws {
        let (n, i, o) = (outputGrad.shape[0], weight.shape[1], weight.shape[0])
        guard n > Self.denseRowLimit else {
            try launch("dense_rows_bwd_data", global: [(i + 31) / 32], local: [1],
                       arguments: [.tensor(outputGrad), .tensor(weight), .tensor(inputGrad), .int(n), .int(i), .int(o)])
            return
        }
        try linearBackwardDataAsConvolution(outputGrad, weight: weight, inputGrad: inputGrad)
    }
}
