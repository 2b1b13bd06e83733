import CLBackend

/// The output shapes and dtypes of `op` applied to values of the given shapes, using the same
/// shape rules as the compute core's ops; throws `ShapeError` naming what does not fit.
func inferOutputs(_ op: GraphOp, _ inputs: [Value]) throws -> [(Shape, DType)] {
    func arity(_ allowed: ClosedRange<Int>) throws {
        guard allowed.contains(inputs.count) else {
            throw ShapeError("takes \(allowed.lowerBound == allowed.upperBound ? "\(allowed.lowerBound)" : "\(allowed.lowerBound) to \(allowed.upperBound)") inputs, got \(inputs.count)")
        }
        for (i, v) in inputs.enumerated() where v.dtype != .float32 && !(i == 1 && op.takesSwitches) {
            throw ShapeError("input \(i) ('\(v.name)') must be float32, got \(v.dtype)")
        }
    }
    func channelVector(_ v: Value, _ channels: Int, _ role: String) throws {
        guard v.shape == [channels] else { throw ShapeError("\(role) '\(v.name)' must have shape [\(channels)], got \(v.shape)") }
    }
    let shapes = inputs.map(\.shape)
    switch op {
    case .conv2d(let c):
        try arity(2...3)
        let out = try c.outputShape(input: shapes[0], weight: shapes[1])
        if inputs.count == 3 { try channelVector(inputs[2], out[1], "bias") }
        return [(out, .float32)]
    case .convTranspose2d(let c):
        try arity(2...3)
        let out = try c.outputShape(input: shapes[0], weight: shapes[1])
        if inputs.count == 3 { try channelVector(inputs[2], out[1], "bias") }
        return [(out, .float32)]
    case .maxPool2d(let p):
        try arity(1...1)
        let out = try p.outputShape(input: shapes[0])
        return [(out, .float32), (out, .int32)]
    case .maxUnpool2d(let p, let outputShape):
        try arity(2...2)
        guard inputs[1].dtype == .int32 else { throw ShapeError("switches '\(inputs[1].name)' must be int32 (a MaxPool2D's second output)") }
        let pooled = try p.outputShape(input: outputShape)
        guard shapes[0] == pooled, shapes[1] == pooled else {
            throw ShapeError("pooled \(shapes[0]) and switches \(shapes[1]) must both be \(pooled), the pooling of \(outputShape)")
        }
        return [(outputShape, .float32)]
    case .avgPool2d(let p):
        try arity(1...1)
        return [(try p.outputShape(input: shapes[0]), .float32)]
    case .globalAvgPool:
        try arity(1...1)
        return [(try AvgPool2D.global(for: shapes[0]).outputShape(input: shapes[0]), .float32)]
    case .globalMaxPool:
        try arity(1...1)
        let out = try MaxPool2D.global(for: shapes[0]).outputShape(input: shapes[0])
        return [(out, .float32), (out, .int32)]
    case .activation, .dropout, .identity:
        try arity(1...1)
        return [(shapes[0], .float32)]
    case .linear:
        try arity(2...3)
        guard shapes[0].rank == 2, shapes[1].rank == 2, shapes[0][1] == shapes[1][1] else {
            throw ShapeError("input [N, in] and weight [out, in] must agree on in, got \(shapes[0]) and \(shapes[1])")
        }
        if inputs.count == 3 { try channelVector(inputs[2], shapes[1][0], "bias") }
        return [([shapes[0][0], shapes[1][0]], .float32)]
    case .add:
        try arity(1...64)
        for s in shapes where s != shapes[0] { throw ShapeError("summands must have equal shapes, got \(shapes)") }
        return [(shapes[0], .float32)]
    case .axpby:
        try arity(2...2)
        guard shapes[0] == shapes[1] else { throw ShapeError("operands must have equal shapes, got \(shapes[0]) and \(shapes[1])") }
        return [(shapes[0], .float32)]
    case .concat:
        try arity(1...64)
        let first = shapes[0]
        guard first.rank == 4 || first.rank == 2 else { throw ShapeError("concat works on NCHW or [N, K] tensors, got \(first)") }
        var dims = first.dims
        dims[1] = 0
        for s in shapes {
            var other = s.dims
            guard s.rank == first.rank else { throw ShapeError("concat operands differ in rank: \(shapes)") }
            dims[1] += other[1]
            other[1] = first[1]
            guard other == first.dims else { throw ShapeError("concat operands must agree outside the channel axis: \(shapes)") }
        }
        return [(Shape(dims), .float32)]
    case .flatten:
        try arity(1...1)
        guard shapes[0].rank >= 1 else { throw ShapeError("flatten needs a batch axis") }
        return [([shapes[0][0], shapes[0].count / max(shapes[0][0], 1)], .float32)]
    case .reshape(let target):
        try arity(1...1)
        guard target.count == shapes[0].count else { throw ShapeError("cannot reshape \(shapes[0]) (\(shapes[0].count) elements) to \(target)") }
        return [(target, .float32)]
    case .softmax:
        try arity(1...1)
        guard shapes[0].rank == 2 else { throw ShapeError("softmax works on [N, K] rows, got \(shapes[0]); flatten first") }
        return [(shapes[0], .float32)]
    case .batchNorm(let eps):
        try arity(5...5)
        let (_, c, _, _) = try shapes[0].nchw(for: "batchNorm")
        for (v, role) in zip(inputs.dropFirst(), ["scale", "shift", "mean", "variance"]) { try channelVector(v, c, role) }
        guard eps >= 0 else { throw ShapeError("epsilon must be non-negative, got \(eps)") }
        return [(shapes[0], .float32)]
    case .localResponseNorm:
        try arity(1...1)
        guard shapes[0].rank == 4 else { throw ShapeError("LRN works on NCHW tensors, got \(shapes[0])") }
        return [(shapes[0], .float32)]
    case .resizeNearest(let r):
        try arity(1...1)
        return [(try r.outputShape(input: shapes[0]), .float32)]
    case .pad(let p):
        try arity(1...1)
        return [(try p.outputShape(input: shapes[0]), .float32)]
    case .transpose:
        try arity(1...1)
        guard shapes[0].rank == 2 else { throw ShapeError("transpose works on [R, C] matrices, got \(shapes[0])") }
        return [([shapes[0][1], shapes[0][0]], .float32)]
    case .resizeBilinear(let r):
        try arity(1...1)
        guard shapes[0].rank == 4, r.height > 0, r.width > 0 else { throw ShapeError("resize needs an NCHW input and a positive size, got \(shapes[0]) to \(r.height)x\(r.width)") }
        return [([shapes[0][0], shapes[0][1], r.height, r.width], .float32)]
    }
}

extension GraphOp {
    /// Ops whose second input is an int32 switches tensor.
    var takesSwitches: Bool {
        if case .maxUnpool2d = self { return true }
        return false
    }
}
