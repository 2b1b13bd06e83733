// The public op API: every function checks its shapes and parameters, allocates its outputs and
// calls the backend's primitive. An op's forward and backward passes sit together.

extension Backend {
    // MARK: Tensors

    public func tensor(_ values: [Float], shape: Shape) throws -> Tensor {
        guard values.count == shape.count else { throw ShapeError("tensor: \(values.count) values do not fill shape \(shape)") }
        let t = try makeTensor(shape, dtype: .float32)
        try write(values, to: t)
        return t
    }

    public func tensor(ints values: [Int32], shape: Shape) throws -> Tensor {
        guard values.count == shape.count else { throw ShapeError("tensor: \(values.count) values do not fill shape \(shape)") }
        let t = try makeTensor(shape, dtype: .int32)
        try write(values, to: t)
        return t
    }

    public func full(_ shape: Shape, value: Float) throws -> Tensor {
        let t = try makeTensor(shape, dtype: .float32)
        try fill(t, value: value)
        return t
    }

    private func output(_ shape: Shape, dtype: DType = .float32) throws -> Tensor { try makeTensor(shape, dtype: dtype) }

    private func requireFloat(_ t: Tensor, _ op: String, _ role: String) throws {
        guard t.dtype == .float32 else { throw ShapeError("\(op): \(role) must be float32, got \(t)") }
    }

    private func requireSame(_ a: Tensor, _ b: Tensor, _ op: String, _ roles: (String, String)) throws {
        guard a.shape == b.shape else { throw ShapeError("\(op): \(roles.0) \(a.shape) and \(roles.1) \(b.shape) must have the same shape") }
    }

    private func requireChannelVector(_ v: Tensor, channels: Int, _ op: String, _ role: String) throws {
        guard v.shape == [channels] else { throw ShapeError("\(op): \(role) must have shape [\(channels)], got \(v.shape)") }
    }

    private func requireRows(_ t: Tensor, _ op: String) throws -> (n: Int, k: Int) {
        guard t.shape.rank == 2, t.shape[0] > 0, t.shape[1] > 0 else { throw ShapeError("\(op): expected [N, K] rows, got \(t.shape)") }
        return (t.shape[0], t.shape[1])
    }

    private func requireImages(_ t: Tensor, _ op: String) throws {
        guard t.shape.rank == 4 else { throw ShapeError("\(op): expected an NCHW tensor, got \(t.shape)") }
        try requireFloat(t, op, "input")
    }

    // MARK: Conv2D

    public func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, _ op: Conv2D) throws -> Tensor {
        let shape = try op.outputShape(input: input.shape, weight: weight.shape)
        if let bias { try requireChannelVector(bias, channels: weight.shape[0], "conv2d", "bias") }
        let y = try output(shape)
        try conv2dForward(op, input: input, weight: weight, bias: bias, output: y)
        return y
    }

    /// Gradient w.r.t. the input of `conv2d`.
    public func conv2dBackwardData(_ outputGrad: Tensor, weight: Tensor, inputShape: Shape, _ op: Conv2D) throws -> Tensor {
        let expected = try op.outputShape(input: inputShape, weight: weight.shape)
        guard outputGrad.shape == expected else {
            throw ShapeError("conv2dBackwardData: output gradient \(outputGrad.shape) does not match the forward output \(expected) of input \(inputShape)")
        }
        let dx = try output(inputShape)
        try conv2dBackwardData(op, outputGrad: outputGrad, weight: weight, inputGrad: dx)
        return dx
    }

    /// Gradient w.r.t. the weight of `conv2d`.
    public func conv2dBackwardFilter(_ input: Tensor, outputGrad: Tensor, weightShape: Shape, _ op: Conv2D) throws -> Tensor {
        let expected = try op.outputShape(input: input.shape, weight: weightShape)
        guard outputGrad.shape == expected else {
            throw ShapeError("conv2dBackwardFilter: output gradient \(outputGrad.shape) does not match the forward output \(expected)")
        }
        let dw = try output(weightShape)
        try conv2dBackwardFilter(op, input: input, outputGrad: outputGrad, weightGrad: dw)
        return dw
    }

    /// `relu(conv2d(input) + bias)` in one pass (the fused forward of a convolution followed only by a ReLU).
    public func conv2dBiasReLU(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, _ op: Conv2D) throws -> Tensor {
        let shape = try op.outputShape(input: input.shape, weight: weight.shape)
        if let bias { try requireChannelVector(bias, channels: weight.shape[0], "conv2dBiasReLU", "bias") }
        let y = try output(shape)
        try conv2dBiasReLUForward(op, input: input, weight: weight, bias: bias, output: y)
        return y
    }

    /// The gradient w.r.t. the input of the ReLU whose output `reluOutput` is this convolution's
    /// input: `reluBackward(conv2dBackwardData(outputGrad), input: reluOutput, rule:)` in one pass.
    public func conv2dBackwardDataReLU(_ outputGrad: Tensor, weight: Tensor, reluOutput: Tensor, rule: ReLUBackwardRule = .standard,
                                       _ op: Conv2D) throws -> Tensor {
        let expected = try op.outputShape(input: reluOutput.shape, weight: weight.shape)
        guard outputGrad.shape == expected else {
            throw ShapeError("conv2dBackwardDataReLU: output gradient \(outputGrad.shape) does not match the forward output \(expected) of input \(reluOutput.shape)")
        }
        try requireFloat(reluOutput, "conv2dBackwardDataReLU", "ReLU output")
        let dx = try output(reluOutput.shape)
        try conv2dBackwardDataReLU(op, rule: rule, outputGrad: outputGrad, weight: weight, reluOutput: reluOutput, inputGrad: dx)
        return dx
    }

    /// Gradient w.r.t. a per-channel bias: the sum of the output gradient over batch and space.
    public func biasGradient(_ outputGrad: Tensor) throws -> Tensor {
        let (_, c, _, _) = try outputGrad.shape.nchw(for: "biasGradient")
        let db = try output([c])
        try channelSum(outputGrad, output: db)
        return db
    }

    // MARK: ConvTranspose2D (the adjoint of Conv2D: forward is conv backward-data and vice versa)

    public func convTranspose2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, _ op: ConvTranspose2D) throws -> Tensor {
        let shape = try op.outputShape(input: input.shape, weight: weight.shape)
        if let bias { try requireChannelVector(bias, channels: shape[1], "convTranspose2d", "bias") }
        let y = try output(shape)
        try conv2dBackwardData(op.adjointConv, outputGrad: input, weight: weight, inputGrad: y)
        return bias == nil ? y : try biasAdd(y, bias: bias!)
    }

    public func convTranspose2dBackwardData(_ outputGrad: Tensor, weight: Tensor, inputShape: Shape, _ op: ConvTranspose2D) throws -> Tensor {
        let expected = try op.outputShape(input: inputShape, weight: weight.shape)
        guard outputGrad.shape == expected else {
            throw ShapeError("convTranspose2dBackwardData: output gradient \(outputGrad.shape) does not match the forward output \(expected)")
        }
        let dx = try output(inputShape)
        try conv2dForward(op.adjointConv, input: outputGrad, weight: weight, bias: nil, output: dx)
        return dx
    }

    public func convTranspose2dBackwardFilter(_ input: Tensor, outputGrad: Tensor, weightShape: Shape, _ op: ConvTranspose2D) throws -> Tensor {
        let expected = try op.outputShape(input: input.shape, weight: weightShape)
        guard outputGrad.shape == expected else {
            throw ShapeError("convTranspose2dBackwardFilter: output gradient \(outputGrad.shape) does not match the forward output \(expected)")
        }
        let dw = try output(weightShape)
        try conv2dBackwardFilter(op.adjointConv, input: outputGrad, outputGrad: input, weightGrad: dw)
        return dw
    }

    // MARK: Linear (weight [out, in] as in PyTorch)
    //
    // A linear layer runs as a 1x1 convolution over the transposed batch: X^T, `[in, N]`, viewed as
    // one `[1, in, 1, N]` image whose N columns are the batch, so one pass over the weights serves
    // every image (the conv kernels vectorize over columns). The transposes move N*in values; the
    // weights, out*in of them, are read once instead of once per image.

    private var pointwise: Conv2D { Conv2D(window: Window2D(kernel: 1)) }

    /// `[N, K]` -> its transpose viewed as a `[1, K, 1, N]` image.
    private func columns(_ rows: Tensor) throws -> Tensor {
        try transpose(rows).reshaped(to: [1, rows.shape[1], 1, rows.shape[0]])
    }

    private func weight1x1(_ weight: Tensor) throws -> Tensor { try weight.reshaped(to: [weight.shape[0], weight.shape[1], 1, 1]) }

    public func linear(_ input: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        guard input.shape.rank == 2, weight.shape.rank == 2, input.shape[1] == weight.shape[1] else {
            throw ShapeError("linear: input [N, in] and weight [out, in] must agree on in, got \(input.shape) and \(weight.shape)")
        }
        if let bias { try requireChannelVector(bias, channels: weight.shape[0], "linear", "bias") }
        let y = try output([input.shape[0], weight.shape[0]])
        try denseForward(input: input, weight: weight, bias: bias, output: y)
        return y
    }

    /// `linear` as a 1x1 convolution over the columns (the batch laid out as pixels): backends
    /// use it where a batch is large enough for the convolution GEMMs.
    public func linearAsConvolution(_ input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws {
        let y = try conv2d(columns(input), weight: weight1x1(weight), bias: bias, pointwise)
        try transpose2d(input: y.reshaped(to: [y.shape[1], y.shape[3]]), output: output)
    }

    /// `linearBackwardData` as the backward-data of that 1x1 convolution.
    public func linearBackwardDataAsConvolution(_ outputGrad: Tensor, weight: Tensor, inputGrad: Tensor) throws {
        let dx = try conv2dBackwardData(columns(outputGrad), weight: weight1x1(weight),
                                        inputShape: [1, weight.shape[1], 1, outputGrad.shape[0]], pointwise)
        try transpose2d(input: dx.reshaped(to: [dx.shape[1], dx.shape[3]]), output: inputGrad)
    }

    public func linearBackwardData(_ outputGrad: Tensor, weight: Tensor) throws -> Tensor {
        guard outputGrad.shape.rank == 2, weight.shape.rank == 2, outputGrad.shape[1] == weight.shape[0] else {
            throw ShapeError("linearBackwardData: output gradient [N, out] and weight [out, in] must agree on out, got \(outputGrad.shape) and \(weight.shape)")
        }
        let dx = try output([outputGrad.shape[0], weight.shape[1]])
        try denseBackwardData(outputGrad: outputGrad, weight: weight, inputGrad: dx)
        return dx
    }

    public func linearBackwardWeight(_ input: Tensor, outputGrad: Tensor) throws -> Tensor {
        guard input.shape.rank == 2, outputGrad.shape.rank == 2, input.shape[0] == outputGrad.shape[0] else {
            throw ShapeError("linearBackwardWeight: input [N, in] and output gradient [N, out] must agree on N, got \(input.shape) and \(outputGrad.shape)")
        }
        let (i, o) = (input.shape[1], outputGrad.shape[1])
        return try conv2dBackwardFilter(columns(input), outputGrad: columns(outputGrad), weightShape: [o, i, 1, 1], pointwise).reshaped(to: [o, i])
    }

    // MARK: Max pooling and unpooling

    /// Returns the pooled values and the switches (int32 argmax per window, `h * W + w`).
    public func maxPool2d(_ input: Tensor, _ op: MaxPool2D) throws -> (output: Tensor, switches: Tensor) {
        try requireFloat(input, "maxPool2d", "input")
        let shape = try op.outputShape(input: input.shape)
        let y = try output(shape), s = try output(shape, dtype: .int32)
        try maxPool2dForward(op, input: input, output: y, switches: s)
        return (y, s)
    }

    private func checkSwitches(_ pooled: Tensor, _ switches: Tensor, inputShape: Shape, _ op: MaxPool2D, _ name: String) throws {
        let expected = try op.outputShape(input: inputShape)
        guard pooled.shape == expected, switches.shape == expected, switches.dtype == .int32 else {
            throw ShapeError("\(name): pooled tensor \(pooled.shape) and int32 switches \(switches) must both be \(expected), the pooling of \(inputShape)")
        }
    }

    public func maxPool2dBackward(_ outputGrad: Tensor, switches: Tensor, inputShape: Shape, _ op: MaxPool2D) throws -> Tensor {
        try checkSwitches(outputGrad, switches, inputShape: inputShape, op, "maxPool2dBackward")
        let dx = try output(inputShape)
        try maxPool2dBackward(op, outputGrad: outputGrad, switches: switches, inputGrad: dx)
        return dx
    }

    /// Max unpooling (DeconvNet): each pooled value goes back to where its window's maximum was;
    /// every other position is 0. The inverse direction of `maxPool2d` with its switches.
    public func maxUnpool2d(_ pooled: Tensor, switches: Tensor, outputShape: Shape, _ op: MaxPool2D) throws -> Tensor {
        try checkSwitches(pooled, switches, inputShape: outputShape, op, "maxUnpool2d")
        let y = try output(outputShape)
        try maxPool2dBackward(op, outputGrad: pooled, switches: switches, inputGrad: y)
        return y
    }

    public func maxUnpool2dBackward(_ outputGrad: Tensor, switches: Tensor, _ op: MaxPool2D) throws -> Tensor {
        try checkSwitches(switches, switches, inputShape: outputGrad.shape, op, "maxUnpool2dBackward")
        let dy = try output(switches.shape)
        try gatherSwitches(op, input: outputGrad, switches: switches, output: dy)
        return dy
    }

    public func globalMaxPool(_ input: Tensor) throws -> (output: Tensor, switches: Tensor) {
        try requireImages(input, "globalMaxPool")
        return try maxPool2d(input, .global(for: input.shape))
    }

    public func globalMaxPoolBackward(_ outputGrad: Tensor, switches: Tensor, inputShape: Shape) throws -> Tensor {
        try maxPool2dBackward(outputGrad, switches: switches, inputShape: inputShape, .global(for: inputShape))
    }

    // MARK: Average pooling

    public func avgPool2d(_ input: Tensor, _ op: AvgPool2D) throws -> Tensor {
        try requireFloat(input, "avgPool2d", "input")
        let y = try output(try op.outputShape(input: input.shape))
        try avgPool2dForward(op, input: input, output: y)
        return y
    }

    public func avgPool2dBackward(_ outputGrad: Tensor, inputShape: Shape, _ op: AvgPool2D) throws -> Tensor {
        let expected = try op.outputShape(input: inputShape)
        guard outputGrad.shape == expected else {
            throw ShapeError("avgPool2dBackward: output gradient \(outputGrad.shape) must be \(expected), the pooling of \(inputShape)")
        }
        let dx = try output(inputShape)
        try avgPool2dBackward(op, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    public func globalAvgPool(_ input: Tensor) throws -> Tensor {
        try requireImages(input, "globalAvgPool")
        return try avgPool2d(input, .global(for: input.shape))
    }

    public func globalAvgPoolBackward(_ outputGrad: Tensor, inputShape: Shape) throws -> Tensor {
        try avgPool2dBackward(outputGrad, inputShape: inputShape, .global(for: inputShape))
    }

    // MARK: Activations

    public func activation(_ input: Tensor, _ activation: Activation) throws -> Tensor {
        try requireFloat(input, "activation", "input")
        let y = try output(input.shape)
        try activationForward(activation, input: input, output: y)
        return y
    }

    public func activationBackward(_ outputGrad: Tensor, input: Tensor, _ activation: Activation, rule: ReLUBackwardRule = .standard) throws -> Tensor {
        try requireSame(input, outputGrad, "activationBackward", ("input", "output gradient"))
        let dx = try output(input.shape)
        try activationBackward(activation, rule: rule, input: input, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    public func relu(_ input: Tensor) throws -> Tensor { try activation(input, .relu) }

    public func reluBackward(_ outputGrad: Tensor, input: Tensor, rule: ReLUBackwardRule = .standard) throws -> Tensor {
        try activationBackward(outputGrad, input: input, .relu, rule: rule)
    }

    // MARK: Elementwise

    /// `alpha * x + beta * y`.
    public func axpby(alpha: Float, _ x: Tensor, beta: Float, _ y: Tensor) throws -> Tensor {
        try requireSame(x, y, "axpby", ("x", "y"))
        try requireFloat(x, "axpby", "x")
        let out = try output(x.shape)
        try axpby(alpha: alpha, x, beta: beta, y, output: out)
        return out
    }

    /// Elementwise sum (residual connections). Its backward passes the gradient to both inputs unchanged.
    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try axpby(alpha: 1, a, beta: 1, b) }

    public func scaled(_ x: Tensor, by s: Float) throws -> Tensor { try axpby(alpha: s, x, beta: 0, x) }

    public func biasAdd(_ input: Tensor, bias: Tensor) throws -> Tensor {
        let (_, c, _, _) = try input.shape.nchw(for: "biasAdd")
        try requireChannelVector(bias, channels: c, "biasAdd", "bias")
        let y = try output(input.shape)
        try biasAdd(input, bias: bias, output: y)
        return y
    }

    /// Dropout at inference is the identity: the same tensor comes back, and so does its gradient.
    public func dropout(_ input: Tensor) -> Tensor { input }

    // MARK: Concat on channels

    public func concatChannels(_ inputs: [Tensor]) throws -> Tensor {
        guard let first = inputs.first else { throw ShapeError("concatChannels: no inputs") }
        let (n, _, h, w) = try first.shape.nchw(for: "concatChannels")
        var channels = 0
        for x in inputs {
            let (xn, xc, xh, xw) = try x.shape.nchw(for: "concatChannels")
            guard xn == n, xh == h, xw == w, x.shape.rank == first.shape.rank else {
                throw ShapeError("concatChannels: \(x.shape) does not match \(first.shape) outside the channel axis")
            }
            channels += xc
        }
        var dims = first.shape.dims
        dims[1] = channels
        let y = try output(Shape(dims))
        var offset = 0
        for x in inputs {
            try copyChannels(from: x, srcOffset: 0, to: y, dstOffset: offset, channels: x.shape[1])
            offset += x.shape[1]
        }
        return y
    }

    /// Splits the output gradient back into one gradient per input, of the given channel counts.
    public func concatChannelsBackward(_ outputGrad: Tensor, channels: [Int]) throws -> [Tensor] {
        let (_, c, _, _) = try outputGrad.shape.nchw(for: "concatChannelsBackward")
        guard channels.reduce(0, +) == c, channels.allSatisfy({ $0 > 0 }) else {
            throw ShapeError("concatChannelsBackward: channel counts \(channels) do not add up to \(c)")
        }
        var offset = 0
        return try channels.map { k in
            var dims = outputGrad.shape.dims
            dims[1] = k
            let dx = try output(Shape(dims))
            try copyChannels(from: outputGrad, srcOffset: offset, to: dx, dstOffset: 0, channels: k)
            offset += k
            return dx
        }
    }

    // MARK: Matrix transpose

    /// `[R, C] -> [C, R]` (Gemm and MatMul with a transposed operand). Transposition is linear and
    /// its own adjoint: the gradient of `transpose(x)` is `transpose` of the output gradient.
    public func transpose(_ input: Tensor) throws -> Tensor {
        guard input.shape.rank == 2 else { throw ShapeError("transpose: expected an [R, C] matrix, got \(input.shape)") }
        try requireFloat(input, "transpose", "input")
        let y = try output([input.shape[1], input.shape[0]])
        try transpose2d(input: input, output: y)
        return y
    }

    // MARK: Local response normalization

    public func localResponseNorm(_ input: Tensor, _ op: LocalResponseNorm) throws -> Tensor {
        try requireImages(input, "localResponseNorm")
        try op.validate()
        let y = try output(input.shape)
        try localResponseNormForward(op, input: input, output: y)
        return y
    }

    public func localResponseNormBackward(_ outputGrad: Tensor, input: Tensor, _ op: LocalResponseNorm) throws -> Tensor {
        try requireSame(input, outputGrad, "localResponseNormBackward", ("input", "output gradient"))
        try op.validate()
        let dx = try output(input.shape)
        try localResponseNormBackward(op, input: input, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    // MARK: Batch normalization (inference form)

    private func checkBatchNorm(_ input: Tensor, _ vectors: [(Tensor, String)], epsilon: Float) throws {
        let (_, c, _, _) = try input.shape.nchw(for: "batchNorm")
        for (v, role) in vectors { try requireChannelVector(v, channels: c, "batchNorm", role) }
        guard epsilon >= 0 else { throw ShapeError("batchNorm: epsilon must be non-negative, got \(epsilon)") }
    }

    public func batchNorm(_ input: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor, epsilon: Float = 1e-5) throws -> Tensor {
        try checkBatchNorm(input, [(scale, "scale"), (shift, "shift"), (mean, "mean"), (variance, "variance")], epsilon: epsilon)
        let y = try output(input.shape)
        try batchNormForward(epsilon: epsilon, input: input, scale: scale, shift: shift, mean: mean, variance: variance, output: y)
        return y
    }

    /// A convolution followed by an inference batch norm as one convolution: the weights scaled by
    /// `k = scale / sqrt(variance + epsilon)` per output channel and the bias `(bias - mean) k + shift`
    /// (both computed by `batchNorm` itself, on the weight and bias viewed as channels). Kept while
    /// all of them are held constant (`holdingConstant`).
    public func foldingBatchNorm(weight: Tensor, bias: Tensor?, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor,
                                 epsilon: Float) throws -> (weight: Tensor, bias: Tensor) {
        guard weight.shape.rank == 4 else { throw ShapeError("foldingBatchNorm: expected an [O, C, KH, KW] weight, got \(weight.shape)") }
        let o = weight.shape[0]
        let sources = [weight, scale, shift, mean, variance] + (bias.map { [$0] } ?? [])
        let w = try derived(from: sources, "batch-norm fold weight \(epsilon.bitPattern)") {
            let zeros = try full([o], value: 0)
            return try batchNorm(weight.reshaped(to: [1, o, weight.count / o, 1]), scale: scale, shift: zeros, mean: zeros,
                                 variance: variance, epsilon: epsilon).reshaped(to: weight.shape)
        }
        let b = try derived(from: sources, "batch-norm fold bias \(epsilon.bitPattern)") {
            let b0 = try bias ?? full([o], value: 0)
            return try batchNorm(b0.reshaped(to: [1, o, 1, 1]), scale: scale, shift: shift, mean: mean, variance: variance,
                                 epsilon: epsilon).reshaped(to: [o])
        }
        return (w, b)
    }

    /// The gradients in the input, the scale and the shift; with `parameters: false` only the
    /// input's (the others come back nil, and are not computed).
    public func batchNormBackward(_ outputGrad: Tensor, input: Tensor, scale: Tensor, mean: Tensor, variance: Tensor,
                                  epsilon: Float = 1e-5, parameters: Bool = true) throws -> (input: Tensor, scale: Tensor?, shift: Tensor?) {
        try requireSame(input, outputGrad, "batchNormBackward", ("input", "output gradient"))
        try checkBatchNorm(input, [(scale, "scale"), (mean, "mean"), (variance, "variance")], epsilon: epsilon)
        let dx = try output(input.shape)
        let ds = parameters ? try output(scale.shape) : nil, db = parameters ? try output(scale.shape) : nil
        try batchNormBackward(epsilon: epsilon, input: input, outputGrad: outputGrad, scale: scale, mean: mean, variance: variance,
                              inputGrad: dx, scaleGrad: ds, shiftGrad: db)
        return (dx, ds, db)
    }

    // MARK: Softmax, log-softmax, cross-entropy

    public func softmax(_ input: Tensor, log: Bool = false) throws -> Tensor {
        _ = try requireRows(input, log ? "logSoftmax" : "softmax")
        let y = try output(input.shape)
        try softmaxForward(log: log, input: input, output: y)
        return y
    }

    /// Takes the forward output `y` (not the input).
    public func softmaxBackward(_ outputGrad: Tensor, output y: Tensor, log: Bool = false) throws -> Tensor {
        try requireSame(y, outputGrad, log ? "logSoftmaxBackward" : "softmaxBackward", ("output", "output gradient"))
        _ = try requireRows(y, "softmaxBackward")
        let dx = try output(y.shape)
        try softmaxBackward(log: log, output: y, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    private func checkLabels(_ logits: Tensor, _ labels: Tensor) throws -> Int {
        let (n, _) = try requireRows(logits, "crossEntropy")
        guard labels.shape == [n], labels.dtype == .int32 else {
            throw ShapeError("crossEntropy: labels must be int32 [\(n)], got \(labels)")
        }
        return n
    }

    /// Per-row loss `-log softmax(logits)[label]`; labels outside `0..<K` give NaN.
    public func crossEntropy(_ logits: Tensor, labels: Tensor) throws -> Tensor {
        let n = try checkLabels(logits, labels)
        let losses = try output([n])
        try crossEntropyForward(logits: logits, labels: labels, losses: losses)
        return losses
    }

    public func crossEntropyBackward(_ lossGrad: Tensor, logits: Tensor, labels: Tensor) throws -> Tensor {
        let n = try checkLabels(logits, labels)
        guard lossGrad.shape == [n] else { throw ShapeError("crossEntropyBackward: loss gradient must be [\(n)], got \(lossGrad.shape)") }
        let dx = try output(logits.shape)
        try crossEntropyBackward(logits: logits, labels: labels, lossGrad: lossGrad, logitsGrad: dx)
        return dx
    }

    // MARK: Bilinear resize

    private func resizedShape(_ input: Shape, _ op: BilinearResize) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError("resizeBilinear: expected an NCHW tensor, got \(input)") }
        guard op.height > 0, op.width > 0 else { throw ShapeError("resizeBilinear: target size \(op.height)x\(op.width) must be positive") }
        return [input[0], input[1], op.height, op.width]
    }

    public func resizeBilinear(_ input: Tensor, _ op: BilinearResize) throws -> Tensor {
        let y = try output(try resizedShape(input.shape, op))
        try resizeBilinearForward(op, input: input, output: y)
        return y
    }

    public func resizeBilinearBackward(_ outputGrad: Tensor, inputShape: Shape, _ op: BilinearResize) throws -> Tensor {
        let expected = try resizedShape(inputShape, op)
        guard outputGrad.shape == expected else { throw ShapeError("resizeBilinearBackward: output gradient \(outputGrad.shape) must be \(expected)") }
        let dx = try output(inputShape)
        try resizeBilinearBackward(op, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    // MARK: Nearest resize

    public func resizeNearest(_ input: Tensor, _ op: NearestResize) throws -> Tensor {
        try requireFloat(input, "resizeNearest", "input")
        let y = try output(try op.outputShape(input: input.shape))
        try resizeNearestForward(op, input: input, output: y)
        return y
    }

    /// Gradient w.r.t. the input of `resizeNearest`: each input pixel sums the gradient of the
    /// outputs that copy it (none where down-sampling skips it).
    public func resizeNearestBackward(_ outputGrad: Tensor, inputShape: Shape, _ op: NearestResize) throws -> Tensor {
        let expected = try op.outputShape(input: inputShape)
        guard outputGrad.shape == expected else {
            throw ShapeError("resizeNearestBackward: output gradient \(outputGrad.shape) must be \(expected), the resize of \(inputShape)")
        }
        try requireFloat(outputGrad, "resizeNearestBackward", "output gradient")
        let dx = try output(inputShape)
        try resizeNearestBackward(op, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    // MARK: Constant pad

    public func pad2d(_ input: Tensor, _ op: ConstantPad2D) throws -> Tensor {
        try requireFloat(input, "pad2d", "input")
        let y = try output(try op.outputShape(input: input.shape))
        try pad2dForward(op, input: input, output: y)
        return y
    }

    /// Gradient w.r.t. the input of `pad2d`: the output gradient cropped back to the input, 0 on
    /// rows and columns a negative pad cropped away.
    public func pad2dBackward(_ outputGrad: Tensor, inputShape: Shape, _ op: ConstantPad2D) throws -> Tensor {
        let expected = try op.outputShape(input: inputShape)
        guard outputGrad.shape == expected else {
            throw ShapeError("pad2dBackward: output gradient \(outputGrad.shape) must be \(expected), the padding of \(inputShape)")
        }
        try requireFloat(outputGrad, "pad2dBackward", "output gradient")
        let dx = try output(inputShape)
        try pad2dBackward(op, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    // MARK: Image regularizers: total variation, Lp norm (one value per image)

    private func perImage(_ input: Tensor, _ grad: Tensor?, _ op: String) throws {
        try requireImages(input, op)
        if let grad, grad.shape != [input.shape[0]] {
            throw ShapeError("\(op): gradient of the per-image values must be [\(input.shape[0])], got \(grad.shape)")
        }
    }

    public func totalVariation(_ input: Tensor, _ op: TotalVariation) throws -> Tensor {
        try perImage(input, nil, "totalVariation")
        guard op.beta >= 1 else { throw ShapeError("totalVariation: beta must be >= 1, got \(op.beta)") }
        let y = try output([input.shape[0]])
        try totalVariationForward(op, input: input, output: y)
        return y
    }

    public func totalVariationBackward(_ outputGrad: Tensor, input: Tensor, _ op: TotalVariation) throws -> Tensor {
        try perImage(input, outputGrad, "totalVariationBackward")
        guard op.beta >= 1 else { throw ShapeError("totalVariation: beta must be >= 1, got \(op.beta)") }
        let dx = try output(input.shape)
        try totalVariationBackward(op, input: input, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    /// `sum |x|^p` per image.
    public func lpNorm(_ input: Tensor, p: Float) throws -> Tensor {
        try perImage(input, nil, "lpNorm")
        guard p >= 1 else { throw ShapeError("lpNorm: p must be >= 1, got \(p)") }
        let y = try output([input.shape[0]])
        try lpNormForward(p: p, input: input, output: y)
        return y
    }

    public func lpNormBackward(_ outputGrad: Tensor, input: Tensor, p: Float) throws -> Tensor {
        try perImage(input, outputGrad, "lpNormBackward")
        guard p >= 1 else { throw ShapeError("lpNorm: p must be >= 1, got \(p)") }
        let dx = try output(input.shape)
        try lpNormBackward(p: p, input: input, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    // MARK: Gaussian blur, roll, clamp

    private func checkBlur(_ t: Tensor, _ op: GaussianBlur) throws {
        try requireImages(t, "gaussianBlur")
        guard op.sigma > 0, op.sigma <= 64 else { throw ShapeError("gaussianBlur: sigma must be in (0, 64], got \(op.sigma)") }
    }

    public func gaussianBlur(_ input: Tensor, _ op: GaussianBlur) throws -> Tensor {
        try checkBlur(input, op)
        let y = try output(input.shape)
        try gaussianBlurForward(op, input: input, output: y)
        return y
    }

    public func gaussianBlurBackward(_ outputGrad: Tensor, _ op: GaussianBlur) throws -> Tensor {
        try checkBlur(outputGrad, op)
        let dx = try output(outputGrad.shape)
        try gaussianBlurBackward(op, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    /// Cyclic shift by `(shiftH, shiftW)` (jitter). Its backward is the shift by `(-shiftH, -shiftW)`.
    public func roll(_ input: Tensor, shiftH: Int, shiftW: Int) throws -> Tensor {
        try requireImages(input, "roll")
        let y = try output(input.shape)
        try roll(shiftH: shiftH, shiftW: shiftW, input: input, output: y)
        return y
    }

    public func clamp(_ input: Tensor, min lo: Float, max hi: Float) throws -> Tensor {
        guard lo <= hi else { throw ShapeError("clamp: min \(lo) exceeds max \(hi)") }
        try requireFloat(input, "clamp", "input")
        let y = try output(input.shape)
        try clampForward(min: lo, max: hi, input: input, output: y)
        return y
    }

    public func clampBackward(_ outputGrad: Tensor, input: Tensor, min lo: Float, max hi: Float) throws -> Tensor {
        guard lo <= hi else { throw ShapeError("clamp: min \(lo) exceeds max \(hi)") }
        try requireSame(input, outputGrad, "clampBackward", ("input", "output gradient"))
        let dx = try output(input.shape)
        try clampBackward(min: lo, max: hi, input: input, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    // MARK: Optimizer steps (in place)

    public func step(_ op: SGDMomentum, parameter: Tensor, gradient: Tensor, velocity: Tensor) throws {
        try requireSame(parameter, gradient, "sgdMomentum", ("parameter", "gradient"))
        try requireSame(parameter, velocity, "sgdMomentum", ("parameter", "velocity"))
        try sgdMomentumStep(op, parameter: parameter, gradient: gradient, velocity: velocity)
    }

    public func step(_ op: Adam, step t: Int, parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor) throws {
        guard t >= 1 else { throw ShapeError("adam: step counts from 1, got \(t)") }
        try requireSame(parameter, gradient, "adam", ("parameter", "gradient"))
        try requireSame(parameter, firstMoment, "adam", ("parameter", "first moment"))
        try requireSame(parameter, secondMoment, "adam", ("parameter", "second moment"))
        try adamStep(op, step: t, parameter: parameter, gradient: gradient, firstMoment: firstMoment, secondMoment: secondMoment)
    }
}
