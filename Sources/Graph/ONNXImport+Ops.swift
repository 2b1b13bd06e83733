import CLBackend
import Foundation
import ONNXProto

// One handler per ONNX op, each reading exactly the inputs and attributes that the op has at the
// model's opset (operator spec, versions 7 to 21) and lowering it onto Loupe's graph ops.

/// Kernel, stride, dilation and pad values beyond this are refused before any size arithmetic.
private let maxWindow = 1 << 20
/// The largest output length a Resize may ask for along one axis.
private let maxResize = 1 << 24

extension ONNXImporter {
    func importOp(_ r: NodeReader, index: Int) throws {
        switch r.opType {
        case "Conv": try conv(r, index: index)
        case "ConvTranspose": try convTranspose(r)
        case "MaxPool": try maxPool(r)
        case "AveragePool": try averagePool(r)
        case "GlobalAveragePool", "GlobalMaxPool": try globalPool(r)
        case "MaxUnpool": try maxUnpool(r)
        case "Relu":
            try r.requireInputs(1...1)
            try emit(.activation(.relu), [value(r.requireInput(0, "X"), for: r)], r)
        case "LeakyRelu":
            try r.requireInputs(1...1)
            try emit(.activation(.leakyRelu(slope: r.float("alpha", default: 0.01))), [value(r.requireInput(0, "X"), for: r)], r)
        case "Gemm": try gemm(r)
        case "MatMul": try matMul(r)
        case "Add", "Sum": try sum(r)
        case "Mul": try mul(r)
        case "Concat": try concat(r)
        case "Flatten": try flatten(r)
        case "Reshape": try reshape(r)
        case "Softmax", "LogSoftmax": try softmax(r)
        case "BatchNormalization": try batchNorm(r)
        case "LRN": try lrn(r)
        case "Dropout": try dropout(r)
        case "Pad": try pad(r)
        case "Identity":
            try r.requireInputs(1...1)
            let x = try r.requireInput(0, "input")
            if let c = constant(x) { bind(r.output(0), .constant(c)) } else { try emit(.identity, [value(x, for: r)], r) }
        case "Constant": try constantNode(r)
        case "Transpose": try transpose(r)
        case "Resize", "Upsample": try resize(r)
        default:
            throw r.error("op type '\(r.opType)' is not supported")
        }
    }

    // MARK: Windows: kernel, strides, dilations, pads, auto_pad

    /// Reads the window attributes of a 2-D conv or pool over `input` (NCHW), resolving `auto_pad`
    /// to explicit pads from the input size. `kernel` is the weight's kernel where there is one.
    private func window(_ r: NodeReader, input: [Int], kernel weightKernel: (Int, Int)?, dilations: Bool, ceilMode: Bool,
                        autoPad readsAutoPad: Bool = true) throws -> Window2D {
        func pair(_ key: String, _ values: [Int]?, default d: Int, min lo: Int) throws -> (Int, Int) {
            guard let v = values else { return (d, d) }
            guard v.count == 2 else { throw r.error("'\(key)' must have 2 entries for a 2-D op, got \(v)") }
            guard v.allSatisfy({ (lo...maxWindow).contains($0) }) else { throw r.error("'\(key)' \(v) is out of range") }
            return (v[0], v[1])
        }
        var kernel = try pair("kernel_shape", r.ints("kernel_shape"), default: 0, min: 1)
        if let w = weightKernel {
            if r.has("kernel_shape"), kernel != w {
                throw r.error("kernel_shape \([kernel.0, kernel.1]) does not match the weight's \(w.0)x\(w.1) kernel")
            }
            kernel = w
        } else if kernel.0 == 0 {
            throw r.error("attribute 'kernel_shape' is required")
        }
        let stride = try pair("strides", r.ints("strides"), default: 1, min: 1)
        let dilation = dilations ? try pair("dilations", r.ints("dilations"), default: 1, min: 1) : (1, 1)
        var pads = (0, 0, 0, 0)
        if let p = try r.ints("pads") {
            guard p.count == 4 else { throw r.error("'pads' must have 4 entries for a 2-D op, got \(p)") }
            guard p.allSatisfy({ (0...maxWindow).contains($0) }) else { throw r.error("'pads' \(p) must be non-negative and in range") }
            pads = (p[0], p[1], p[2], p[3])
        }
        let ceil = ceilMode ? try r.flag("ceil_mode", default: false) : false
        let autoPad = readsAutoPad ? try r.string("auto_pad", default: "NOTSET") : "NOTSET"
        switch autoPad {
        case "NOTSET", "":
            break
        case "VALID", "SAME_UPPER", "SAME_LOWER":
            guard !r.has("pads") else { throw r.error("'pads' and auto_pad \(autoPad) cannot be used together") }
            if autoPad != "VALID" {
                func split(_ n: Int, _ k: Int, _ s: Int, _ d: Int) -> (Int, Int) {
                    let out = (n + s - 1) / s
                    let total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
                    return autoPad == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
                }
                let (t, b) = split(input[2], kernel.0, stride.0, dilation.0)
                let (l, rt) = split(input[3], kernel.1, stride.1, dilation.1)
                pads = (t, l, b, rt)
            }
        default:
            throw r.error("auto_pad '\(autoPad)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        }
        return Window2D(kernel: kernel, stride: stride, dilation: dilation, padding: pads, ceilMode: ceil)
    }

    private func images(_ r: NodeReader, _ role: String = "X") throws -> ValueID {
        let x = try value(r.requireInput(0, role), for: r)
        guard shape(x).count == 4 else {
            throw r.error("only 2-D \(r.opType) over NCHW tensors is supported; input '\(graph[x].name)' has shape \(graph[x].shape)")
        }
        return x
    }

    private func weight4D(_ r: NodeReader) throws -> ValueID {
        let w = try value(r.requireInput(1, "W"), for: r)
        guard shape(w).count == 4 else { throw r.error("the weight must be 4-D for a 2-D op, got \(graph[w].shape)") }
        return w
    }

    // MARK: Conv, ConvTranspose

    private func conv(_ r: NodeReader, index: Int) throws {
        try r.requireInputs(2...3)
        let x = try images(r)
        let wName = try r.requireInput(1, "W")
        let w = try weight4D(r)
        let ws = shape(w)
        let window = try window(r, input: shape(x), kernel: (ws[2], ws[3]), dilations: true, ceilMode: false)
        let groups = try r.int("group", default: 1)
        guard groups >= 1, groups <= maxWindow else { throw r.error("group \(groups) is out of range") }
        let op = GraphOp.conv2d(Conv2D(window: window, groups: groups))
        if let j = foldedBatchNorm[index] {
            try foldBatchNorm(into: r, op: op, x: x, weightName: wName, bnIndex: j)
            return
        }
        var inputs = [x, w]
        if let b = r.input(2) { inputs.append(try value(b, for: r)) }
        try emit(op, inputs, r)
    }

    /// Emits `r`'s convolution with the following BatchNormalization folded into its weights.
    private func foldBatchNorm(into r: NodeReader, op: GraphOp, x: ValueID, weightName: String, bnIndex: Int) throws {
        let bnProto = model.graph.node[bnIndex]
        let bn = try NodeReader(bnProto, index: bnIndex, uniqueName: "\(r.name)+bn", opset: opset)
        let epsilon = try batchNormAttributes(bn)
        try bn.finish()
        guard let w = constant(weightName)?.floats else { throw r.error("cannot fold: weight '\(weightName)' is not a float constant") }
        let outChannels = constant(weightName)!.dims[0]
        let perChannel = w.count / max(outChannels, 1)
        func vector(_ i: Int) throws -> [Double] {
            guard let c = constant(bnProto.input[i]), let f = c.floats, f.count == outChannels else {
                throw bn.error("cannot fold into '\(r.name)': input '\(bnProto.input[i])' must be a float constant of \(outChannels) values")
            }
            return f.map(Double.init)
        }
        let (scale, shift, mean, variance) = (try vector(1), try vector(2), try vector(3), try vector(4))
        let bias = try r.input(2).map { name -> [Double] in
            guard let f = constant(name)?.floats, f.count == outChannels else { throw r.error("cannot fold: bias '\(name)' must be a float constant of \(outChannels) values") }
            return f.map(Double.init)
        } ?? Array(repeating: 0, count: outChannels)
        let gain = (0..<outChannels).map { scale[$0] / (variance[$0] + Double(epsilon)).squareRoot() }
        let folded = w.indices.map { Float(Double(w[$0]) * gain[$0 / perChannel]) }
        let foldedBias = (0..<outChannels).map { Float((bias[$0] - mean[$0]) * gain[$0] + shift[$0]) }
        let wv = try parameter("\(r.name).weight", dims: constant(weightName)!.dims, folded, r)
        let bv = try parameter("\(r.name).bias", dims: [outChannels], foldedBias, r)
        let y = try emit(op, [x, wv, bv], r, outputNames: [bn.output(0) ?? r.name])[0]
        bind(bn.output(0), .value(y))
    }

    private func convTranspose(_ r: NodeReader) throws {
        try r.requireInputs(2...3)
        let x = try images(r)
        let w = try weight4D(r)
        let (xs, ws) = (shape(x), shape(w))
        let groups = try r.int("group", default: 1)
        guard groups >= 1, groups <= maxWindow else { throw r.error("group \(groups) is out of range") }
        var outputPadding = (0, 0)
        if let op = try r.ints("output_padding") {
            guard op.count == 2, op.allSatisfy({ (0...maxWindow).contains($0) }) else { throw r.error("output_padding \(op) must be 2 non-negative entries") }
            outputPadding = (op[0], op[1])
        }
        let outputShape = try r.ints("output_shape")
        // auto_pad means something else here than for Conv (SAME makes the output input * stride).
        let autoPad = try r.string("auto_pad", default: "NOTSET")
        guard ["NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"].contains(autoPad) else {
            throw r.error("auto_pad '\(autoPad)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        }
        if !["NOTSET", ""].contains(autoPad), r.has("pads"), outputShape == nil {
            throw r.error("'pads' and auto_pad \(autoPad) cannot be used together")
        }
        var window = try self.window(r, input: xs, kernel: (ws[2], ws[3]), dilations: true, ceilMode: false, autoPad: false)
        let targets: (Int, Int)?
        if let s = outputShape {
            guard s.count == 2 || s.count == 4 else { throw r.error("output_shape \(s) must give the 2 spatial sizes (or all 4)") }
            targets = (s[s.count - 2], s[s.count - 1])
        } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            targets = (xs[2] * window.strideH, xs[3] * window.strideW)
        } else {
            targets = nil
        }
        if let (th, tw) = targets {
            // The spec's total padding for a given output size, split as it says (the odd one at
            // the end for SAME_UPPER, at the start otherwise).
            func split(_ n: Int, _ k: Int, _ s: Int, _ d: Int, _ adj: Int, _ out: Int) throws -> (Int, Int) {
                guard (1...ConstantTensor.maxDim).contains(out) else { throw r.error("output size \(out) is out of range") }
                let total = s * (n - 1) + adj + (k - 1) * d + 1 - out
                guard total >= 0 else { throw r.error("output size \(out) needs negative padding (\(total)), which Loupe does not support") }
                return autoPad == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
            }
            let (t, b) = try split(xs[2], ws[2], window.strideH, window.dilationH, outputPadding.0, th)
            let (l, rt) = try split(xs[3], ws[3], window.strideW, window.dilationW, outputPadding.1, tw)
            (window.padTop, window.padBottom, window.padLeft, window.padRight) = (t, b, l, rt)
        } else if autoPad == "VALID" {
            (window.padTop, window.padBottom, window.padLeft, window.padRight) = (0, 0, 0, 0)
        }
        var inputs = [x, w]
        if let b = r.input(2) { inputs.append(try value(b, for: r)) }
        try emit(.convTranspose2d(ConvTranspose2D(window: window, groups: groups, outputPadding: outputPadding)), inputs, r)
    }

    // MARK: Pools

    private func maxPool(_ r: NodeReader) throws {
        try r.requireInputs(1...1)
        let x = try images(r)
        let window = try window(r, input: shape(x), kernel: nil, dilations: opset >= 10, ceilMode: opset >= 10)
        let storageOrder = opset >= 8 ? try r.int("storage_order", default: 0) : 0
        guard storageOrder == 0 || storageOrder == 1 else { throw r.error("storage_order must be 0 or 1, got \(storageOrder)") }
        if let indices = r.output(1), storageOrder == 1, isRead(indices) {
            throw r.error("storage_order 1 (column-major Indices) is not supported; Loupe's switches are row-major")
        }
        try emit(.maxPool2d(MaxPool2D(window: window)), [x], r, outputNames: [r.output(0) ?? r.name, r.output(1) ?? "\(r.name)/switches"])
    }

    private func averagePool(_ r: NodeReader) throws {
        try r.requireInputs(1...1)
        let x = try images(r)
        let window = try window(r, input: shape(x), kernel: nil, dilations: opset >= 19, ceilMode: opset >= 10)
        guard window.dilationH == 1, window.dilationW == 1 else { throw r.error("dilations other than 1 are not supported for AveragePool") }
        let includePad = try r.flag("count_include_pad", default: false)
        try emit(.avgPool2d(AvgPool2D(window: window, countIncludePad: includePad)), [x], r)
    }

    private func globalPool(_ r: NodeReader) throws {
        try r.requireInputs(1...1)
        let x = try images(r)
        if r.opType == "GlobalAveragePool" {
            try emit(.globalAvgPool, [x], r)
        } else {
            try emit(.globalMaxPool, [x], r, outputNames: [r.output(0) ?? r.name, "\(r.name)/switches"])
        }
    }

    /// MaxUnpool reads the flat indices of a MaxPool in this graph. Loupe's switches count within
    /// a plane, so the two agree exactly when the unpooled shape is the pooled input's shape.
    private func maxUnpool(_ r: NodeReader) throws {
        try r.requireInputs(2...3)
        let x = try images(r)
        let iName = try r.requireInput(1, "I")
        guard case .value(let switches)? = slots[iName], graph[switches].dtype == .int32, let p = graph.producer[switches] else {
            throw r.error("indices '\(iName)' must be the Indices output of a MaxPool in this graph")
        }
        let pool = graph.nodes[p]
        let poolInput = graph[pool.inputs[0]].shape
        let op: MaxPool2D
        switch pool.op {
        case .maxPool2d(let m): op = m
        case .globalMaxPool: op = .global(for: poolInput)
        default: throw r.error("indices '\(iName)' must be the Indices output of a MaxPool in this graph")
        }
        let window = try self.window(r, input: shape(x), kernel: nil, dilations: false, ceilMode: false, autoPad: false)
        let target: [Int]
        if let s = r.input(2) {
            guard let c = constant(s), let ints = c.ints, ints.count == 4 else { throw r.error("output_shape '\(s)' must be a constant of 4 integers") }
            target = ints.map { Int(clamping: $0) }
        } else {
            let xs = shape(x)
            target = [xs[0], xs[1],
                      (xs[2] - 1) * window.strideH + window.kernelH - window.padTop - window.padBottom,
                      (xs[3] - 1) * window.strideW + window.kernelW - window.padLeft - window.padRight]
        }
        guard Shape(target) == poolInput else {
            throw r.error("the unpooled shape \(Shape(target)) differs from the shape \(poolInput) that MaxPool '\(pool.name)' pooled; the flat indices would land elsewhere")
        }
        if op.windowsOverlap(poolInput) {
            throw r.error("MaxPool '\(pool.name)' has overlapping windows; ONNX's MaxUnpool writes a maximum that two windows share once, Loupe's unpooling adds it once per window")
        }
        try emit(.maxUnpool2d(op, outputShape: poolInput), [x, switches], r)
    }

    // MARK: Gemm, MatMul

    private static func transposed(_ v: [Float], rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: v.count)
        for i in 0..<rows { for j in 0..<cols { out[j * rows + i] = v[i * cols + j] } }
        return out
    }

    private func matrix(_ r: NodeReader, _ i: Int, _ role: String) throws -> (name: String, dims: [Int]) {
        let name = try r.requireInput(i, role)
        let dims = try dims(of: name, r)
        guard dims.count == 2 else { throw r.error("\(role) must be a matrix, got shape \(Shape(dims)); Loupe's \(r.opType) is 2-D only") }
        return (name, dims)
    }

    /// `Y = alpha * A' B' + beta * C` with `A' = transA ? A^T : A`, `B' = transB ? B^T : B` and
    /// C broadcast to `[M, N]`. Loupe's linear computes `x w^T + b`, so `w = B'^T`: constant
    /// operands are transposed and scaled here, computed ones through transpose and axpby nodes.
    private func gemm(_ r: NodeReader) throws {
        try r.requireInputs(opset >= 11 ? 2...3 : 3...3)
        let alpha = try r.float("alpha", default: 1), beta = try r.float("beta", default: 1)
        let transA = try r.flag("transA", default: false), transB = try r.flag("transB", default: false)
        let a = try matrix(r, 0, "A"), b = try matrix(r, 1, "B")
        let (m, k) = transA ? (a.dims[1], a.dims[0]) : (a.dims[0], a.dims[1])
        let (kb, n) = transB ? (b.dims[1], b.dims[0]) : (b.dims[0], b.dims[1])
        guard k == kb else { throw r.error("A' is \(m)x\(k) and B' is \(kb)x\(n); the inner sizes differ") }
        let x: ValueID
        if let c = constant(a.name)?.floats, transA {
            x = try parameter("\(r.name).A", dims: [m, k], Self.transposed(c, rows: k, cols: m), r)
        } else {
            let av = try value(a.name, for: r)
            x = transA ? try emit(.transpose, [av], r, step: "transA")[0] : av
        }
        // w = alpha * B'^T when B is constant; otherwise alpha is applied after the product.
        let w: ValueID, after: Float
        if let c = constant(b.name)?.floats {
            if transB && alpha == 1 {
                w = try value(b.name, for: r)
            } else {
                let bt = transB ? c : Self.transposed(c, rows: k, cols: n)
                w = try parameter("\(r.name).weight", dims: [n, k], bt.map { alpha * $0 }, r)
            }
            after = 1
        } else {
            let bv = try value(b.name, for: r)
            w = transB ? bv : try emit(.transpose, [bv], r, step: "transB")[0]
            after = alpha
        }
        guard let cName = r.input(2), beta != 0 else {
            if after == 1 { try emit(.linear, [x, w], r) } else {
                let y = try emit(.linear, [x, w], r, step: "product")[0]
                try emit(.axpby(alpha: after, beta: 0), [y, y], r)
            }
            return
        }
        if let c = constant(cName) {
            guard let cf = c.floats, !cf.isEmpty else { throw r.error("C '\(cName)' must be a non-empty float tensor") }
            guard let full = Self.broadcast(cf, from: c.dims, to: [m, n]) else {
                throw r.error("C of shape \(Shape(c.dims)) does not broadcast to [\(m), \(n)]")
            }
            // A C without an M axis (of size > 1) adds the same row to every output row: a bias.
            if after == 1 && (c.dims.count < 2 || c.dims[0] == 1) {
                let bias = c.dims == [n] && beta == 1 ? try value(cName, for: r)
                    : try parameter("\(r.name).bias", dims: [n], (0..<n).map { beta * full[$0] }, r)
                try emit(.linear, [x, w, bias], r)
            } else {
                let cv = c.dims == [m, n] ? try value(cName, for: r) : try parameter("\(r.name).C", dims: [m, n], full, r)
                let y = try emit(.linear, [x, w], r, step: "product")[0]
                try emit(.axpby(alpha: after, beta: beta), [y, cv], r)
            }
        } else {
            let cv = try value(cName, for: r)
            if shape(cv) == [n] && after == 1 && beta == 1 {
                try emit(.linear, [x, w, cv], r)
                return
            }
            guard shape(cv) == [m, n] else {
                throw r.error("a computed C must have the output's shape [\(m), \(n)], got \(graph[cv].shape); Loupe broadcasts only constants")
            }
            let y = try emit(.linear, [x, w], r, step: "product")[0]
            try emit(.axpby(alpha: after, beta: beta), [y, cv], r)
        }
    }

    private func matMul(_ r: NodeReader) throws {
        try r.requireInputs(2...2)
        let a = try matrix(r, 0, "A"), b = try matrix(r, 1, "B")
        guard a.dims[1] == b.dims[0] else { throw r.error("A \(Shape(a.dims)) and B \(Shape(b.dims)) do not multiply") }
        let x = try value(a.name, for: r)
        let w: ValueID
        if let c = constant(b.name)?.floats {
            w = try parameter("\(r.name).weight", dims: [b.dims[1], b.dims[0]], Self.transposed(c, rows: b.dims[0], cols: b.dims[1]), r)
        } else {
            w = try emit(.transpose, [try value(b.name, for: r)], r, step: "transB")[0]
        }
        try emit(.linear, [x, w], r)
    }

    // MARK: Elementwise: Add, Sum, Mul

    /// Numpy-style broadcasting of two shapes, or nil where they do not broadcast.
    static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = max(a.count, b.count)
        let pa = Array(repeating: 1, count: rank - a.count) + a, pb = Array(repeating: 1, count: rank - b.count) + b
        var out: [Int] = []
        for (x, y) in zip(pa, pb) {
            guard x == y || x == 1 || y == 1 else { return nil }
            out.append(x == 1 ? y : x)
        }
        return out
    }

    /// `values` of shape `from` repeated to shape `to` (unidirectional broadcasting), or nil.
    static func broadcast(_ values: [Float], from: [Int], to: [Int]) -> [Float]? {
        guard from.count <= to.count, let count = ConstantTensor.checkedCount(to) else { return nil }
        let padded = Array(repeating: 1, count: to.count - from.count) + from
        guard zip(padded, to).allSatisfy({ $0 == $1 || $0 == 1 }) else { return nil }
        if padded == to { return values }
        var strides = Array(repeating: 0, count: to.count)
        var s = 1
        for i in stride(from: to.count - 1, through: 0, by: -1) {
            strides[i] = padded[i] == 1 ? 0 : s
            s *= padded[i]
        }
        var out = [Float](repeating: 0, count: count)
        var index = Array(repeating: 0, count: to.count)
        for o in 0..<count {
            var src = 0
            for i in 0..<to.count { src += index[i] * strides[i] }
            out[o] = values[src]
            var axis = to.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < to[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return out
    }

    /// Add (2 operands) and Sum (1 or more). Computed operands must have the output's shape;
    /// constants broadcast to it (Sum broadcasts from opset 8 on); all-constant sums fold.
    private func sum(_ r: NodeReader) throws {
        try r.requireInputs(r.opType == "Add" ? 2...2 : 1...Int.max)
        let names = try (0..<r.proto.input.count).map { try r.requireInput($0, "operand \($0)") }
        let dims = try names.map { n in try self.dims(of: n, r) }
        let broadcasts = r.opType == "Add" || opset >= 8
        let out = try dims.dropFirst().reduce(dims[0]) { acc, d in
            guard let s = broadcasts ? Self.broadcastShape(acc, d) : (acc == d ? d : nil) else {
                throw r.error("operand shapes \(dims.map { Shape($0) }) do not \(broadcasts ? "broadcast" : "match")")
            }
            return s
        }
        guard let count = ConstantTensor.checkedCount(out) else { throw r.error("the broadcast shape \(out) is too large") }
        if names.allSatisfy({ constant($0)?.floats != nil }) {
            var total = [Float](repeating: 0, count: count)
            for n in names {
                let c = constant(n)!
                let full = Self.broadcast(c.floats!, from: c.dims, to: out)!
                for i in total.indices { total[i] += full[i] }
            }
            bind(r.output(0), .constant(ConstantTensor(dims: out, floats: total)))
            return
        }
        var operands: [ValueID] = []
        for (i, n) in names.enumerated() {
            if let c = constant(n), dims[i] != out {
                guard let f = c.floats, let full = Self.broadcast(f, from: c.dims, to: out) else { throw r.error("operand '\(n)' must be a float tensor") }
                operands.append(try parameter("\(r.name).operand\(i)", dims: out, full, r))
            } else {
                let v = try value(n, for: r)
                guard shape(v) == out else {
                    throw r.error("computed operand '\(n)' of shape \(graph[v].shape) would broadcast to \(Shape(out)); Loupe broadcasts only constants")
                }
                operands.append(v)
            }
        }
        try emit(.add, operands, r)
    }

    /// Mul by a constant scalar (one element): `alpha * x` as an axpby.
    private func mul(_ r: NodeReader) throws {
        try r.requireInputs(2...2)
        let names = [try r.requireInput(0, "A"), try r.requireInput(1, "B")]
        let scalars = names.map { n in constant(n).flatMap { $0.count == 1 ? $0.floats?.first : nil } }
        guard let k = scalars.firstIndex(where: { $0 != nil }) else {
            throw r.error("Mul is supported only by a constant scalar (one element)")
        }
        let other = names[1 - k]
        if let c = constant(other), let f = c.floats {
            bind(r.output(0), .constant(ConstantTensor(dims: c.dims, floats: f.map { $0 * scalars[k]! })))
            return
        }
        let x = try value(other, for: r)
        let scalarDims = constant(names[k])!.dims
        guard scalarDims.count <= shape(x).count else { throw r.error("the scalar's rank \(scalarDims.count) would raise the rank of \(graph[x].shape)") }
        try emit(.axpby(alpha: scalars[k]!, beta: 0), [x, x], r)
    }

    // MARK: Concat, Flatten, Reshape

    /// An axis attribute in `-rank..<rank` (negative counts from the end, from opset 11 on, or 13 for some ops).
    private func axis(_ r: NodeReader, _ key: String = "axis", default d: Int?, rank: Int, upTo upper: Int? = nil, negativeFrom: Int = 11) throws -> Int {
        guard let a = try r.int(key) ?? d else { throw r.error("attribute '\(key)' is required") }
        let top = upper ?? rank - 1
        guard a >= -rank, a <= top, a >= 0 || opset >= negativeFrom else {
            throw r.error("\(key) \(a) is out of range for rank \(rank)\(a < 0 && opset < negativeFrom ? " (negative axes need opset \(negativeFrom))" : "")")
        }
        return a < 0 ? a + rank : a
    }

    private func concat(_ r: NodeReader) throws {
        try r.requireInputs(1...Int.max)
        let xs = try (0..<r.proto.input.count).map { try value(r.requireInput($0, "input \($0)"), for: r) }
        let rank = shape(xs[0]).count
        let a = try axis(r, default: nil, rank: rank)
        guard a == 1, rank == 2 || rank == 4 else {
            throw r.error("only concatenation on axis 1 of [N, C] or NCHW tensors is supported, got axis \(a) of rank \(rank)")
        }
        try emit(.concat, xs, r)
    }

    private func flatten(_ r: NodeReader) throws {
        try r.requireInputs(1...1)
        let name = try r.requireInput(0, "input")
        let dims = try dims(of: name, r)
        let a = try axis(r, default: 1, rank: dims.count, upTo: dims.count)
        let target = [dims[..<a].reduce(1, *), dims[a...].reduce(1, *)]
        if let c = constant(name) {
            bind(r.output(0), .constant(c.reshaped(target)))
            return
        }
        try emit(a == 1 ? .flatten : .reshape(Shape(target)), [value(name, for: r)], r)
    }

    private func reshape(_ r: NodeReader) throws {
        try r.requireInputs(2...2)
        let name = try r.requireInput(0, "data"), shapeName = try r.requireInput(1, "shape")
        guard let s = constant(shapeName), let requested = s.ints, s.dims.count == 1 else {
            throw r.error("shape '\(shapeName)' must be a constant 1-D integer tensor; Loupe's shapes are fixed when the graph is built")
        }
        let allowZero = opset >= 14 ? try r.flag("allowzero", default: false) : false
        let dims = try dims(of: name, r)
        var out: [Int] = []
        var inferred: Int?
        for (i, d) in requested.enumerated() {
            switch d {
            case 0 where !allowZero:
                guard i < dims.count else { throw r.error("shape entry \(i) is 0 (copy), but the input has rank \(dims.count)") }
                out.append(dims[i])
            case 0: throw r.error("allowzero with a 0 in the shape makes an empty tensor, which Loupe does not have")
            case -1:
                guard inferred == nil else { throw r.error("shape \(requested) has more than one -1") }
                inferred = i
                out.append(1)
            case 1...Int64(ConstantTensor.maxDim): out.append(Int(d))
            default: throw r.error("shape entry \(d) is invalid")
            }
        }
        let total = dims.reduce(1, *)
        guard let known = ConstantTensor.checkedCount(out), known > 0 else { throw r.error("shape \(requested) is out of range") }
        if let i = inferred {
            guard total % known == 0 else { throw r.error("cannot reshape \(Shape(dims)) to \(requested)") }
            out[i] = total / known
        }
        guard out.reduce(1, *) == total else { throw r.error("cannot reshape \(Shape(dims)) (\(total) elements) to \(Shape(out))") }
        if let c = constant(name) {
            bind(r.output(0), .constant(c.reshaped(out)))
            return
        }
        try emit(.reshape(Shape(out)), [try value(name, for: r)], r)
    }

    /// Transpose of a matrix (perm [1, 0], the default for rank 2).
    private func transpose(_ r: NodeReader) throws {
        try r.requireInputs(1...1)
        let name = try r.requireInput(0, "data")
        let d = try dims(of: name, r)
        let perm = try r.ints("perm") ?? [1, 0]
        guard d.count == 2, perm == [1, 0] else { throw r.error("only the transpose of a matrix is supported, got perm \(perm) of shape \(Shape(d))") }
        if let c = constant(name), let f = c.floats {
            bind(r.output(0), .constant(ConstantTensor(dims: [d[1], d[0]], floats: Self.transposed(f, rows: d[0], cols: d[1]))))
        } else {
            try emit(.transpose, [value(name, for: r)], r)
        }
    }

    // MARK: Softmax, LogSoftmax

    /// Before opset 13 the input is coerced to rows `[prod(d[..<axis]), prod(d[axis...])]`; from 13
    /// on softmax runs along `axis` alone, which is the same wherever the axes after it are all 1.
    private func softmax(_ r: NodeReader) throws {
        try r.requireInputs(1...1)
        let x = try value(r.requireInput(0, "input"), for: r)
        let dims = shape(x)
        let a = try axis(r, default: opset >= 13 ? -1 : 1, rank: dims.count)
        if opset >= 13 {
            guard dims[(a + 1)...].reduce(1, *) == 1 else {
                throw r.error("axis \(a) of \(graph[x].shape) is not the last axis (up to size-1 axes); Loupe's softmax runs along the last axis only")
            }
        }
        let rows = [dims[..<a].reduce(1, *), dims[a...].reduce(1, *)]
        let op = GraphOp.softmax(log: r.opType == "LogSoftmax")
        if dims == rows {
            try emit(op, [x], r)
        } else {
            let flat = try emit(.reshape(Shape(rows)), [x], r, step: "rows")[0]
            let y = try emit(op, [flat], r, step: r.opType)[0]
            try emit(.reshape(graph[x].shape), [y], r)
        }
    }

    // MARK: BatchNormalization, LRN, Dropout

    /// Reads BatchNormalization's attributes and checks it is the inference form; returns epsilon.
    func batchNormAttributes(_ r: NodeReader) throws -> Float {
        try r.requireInputs(5...5)
        let epsilon = try r.float("epsilon", default: 1e-5)
        _ = try r.float("momentum")  // the running-average rate: used only in training
        if opset < 9, !(try r.flag("spatial", default: true)) {
            throw r.error("spatial 0 (statistics per element, not per channel) is not supported")
        }
        if opset >= 14, try r.flag("training_mode", default: false) {
            throw r.error("training_mode 1 is not supported; Loupe imports the inference form")
        }
        for i in 1..<5 { try requireUnread(r, output: i, "a training statistic") }
        return epsilon
    }

    private func batchNorm(_ r: NodeReader) throws {
        let epsilon = try batchNormAttributes(r)
        let x = try value(r.requireInput(0, "X"), for: r)
        let params = try (1..<5).map { try value(r.requireInput($0, ["", "scale", "B", "mean", "var"][$0]), for: r) }
        let dims = shape(x)
        guard dims.count >= 2 else { throw r.error("input must have a channel axis, got \(graph[x].shape)") }
        if dims.count == 4 {
            try emit(.batchNorm(epsilon: epsilon), [x] + params, r)
        } else {
            let planes = try emit(.reshape([dims[0], dims[1], dims[2...].reduce(1, *), 1]), [x], r, step: "nchw")[0]
            let y = try emit(.batchNorm(epsilon: epsilon), [planes] + params, r, step: "norm")[0]
            try emit(.reshape(graph[x].shape), [y], r)
        }
    }

    private func lrn(_ r: NodeReader) throws {
        try r.requireInputs(1...1)
        let x = try images(r)
        guard let size = try r.int("size") else { throw r.error("attribute 'size' is required") }
        guard (1...maxWindow).contains(size) else { throw r.error("size \(size) is out of range") }
        let op = LocalResponseNorm(size: size, alpha: try r.float("alpha", default: 1e-4), beta: try r.float("beta", default: 0.75),
                                   k: try r.float("bias", default: 1))
        try emit(.localResponseNorm(op), [x], r)
    }

    /// Inference: the identity. The mask output is not made; a training_mode input must be a constant false.
    private func dropout(_ r: NodeReader) throws {
        try r.requireInputs(opset >= 12 ? 1...3 : 1...1)
        if opset < 12 { _ = try r.float("ratio") } else { _ = try r.int("seed") }
        if let t = r.input(2) {
            guard let c = constant(t), let flags = c.ints, flags.count == 1 else { throw r.error("training_mode '\(t)' must be a constant boolean") }
            guard flags[0] == 0 else { throw r.error("training_mode true is not supported; Loupe imports the inference form") }
        }
        try requireUnread(r, output: 1, "the dropout mask")
        try emit(.dropout, [value(r.requireInput(0, "data"), for: r)], r)
    }

    // MARK: Pad

    private func pad(_ r: NodeReader) throws {
        let mode = try r.string("mode", default: "constant")
        guard mode == "constant" else { throw r.error("mode '\(mode)' is not supported; Loupe pads with a constant") }
        let x = try value(r.requireInput(0, "data"), for: r)
        let rank = shape(x).count
        var pads: [Int], value: Float = 0, axes = Array(0..<rank)
        if opset < 11 {
            try r.requireInputs(1...1)
            guard let p = try r.ints("pads") else { throw r.error("attribute 'pads' is required") }
            pads = p
            value = try r.float("value", default: 0)
        } else {
            try r.requireInputs(2...(opset >= 18 ? 4 : 3))
            let pName = try r.requireInput(1, "pads")
            guard let p = constant(pName)?.ints else { throw r.error("pads '\(pName)' must be a constant integer tensor") }
            pads = p.map { Int(clamping: $0) }
            if let v = r.input(2) {
                guard let c = constant(v), let f = c.floats, f.count == 1 else { throw r.error("constant_value '\(v)' must be a constant float scalar") }
                value = f[0]
            }
            if let a = r.input(3) {
                guard let c = constant(a)?.ints else { throw r.error("axes '\(a)' must be a constant integer tensor") }
                axes = try c.map { v -> Int in
                    guard v >= -Int64(rank), v < Int64(rank) else { throw r.error("axis \(v) is out of range for rank \(rank)") }
                    return v < 0 ? Int(v) + rank : Int(v)
                }
                guard Set(axes).count == axes.count else { throw r.error("axes \(c) repeat an axis") }
            }
        }
        guard pads.count == 2 * axes.count else { throw r.error("pads \(pads) must have \(2 * axes.count) entries (begin and end per axis)") }
        guard pads.allSatisfy({ (-maxWindow...maxWindow).contains($0) }) else { throw r.error("pads \(pads) are out of range") }
        var begin = Array(repeating: 0, count: rank), end = begin
        for (i, a) in axes.enumerated() { (begin[a], end[a]) = (pads[i], pads[axes.count + i]) }
        if begin.allSatisfy({ $0 == 0 }) && end.allSatisfy({ $0 == 0 }) {
            try emit(.identity, [x], r)
            return
        }
        guard rank == 4, begin[0] == 0, begin[1] == 0, end[0] == 0, end[1] == 0 else {
            throw r.error("only padding of the two spatial axes of an NCHW tensor is supported, got begin \(begin) and end \(end) for \(graph[x].shape)")
        }
        try emit(.pad(ConstantPad2D(top: begin[2], left: begin[3], bottom: end[2], right: end[3], value: value)), [x], r)
    }

    // MARK: Constant

    private func constantNode(_ r: NodeReader) throws {
        try r.requireInputs(0...0)
        var found: [ConstantTensor] = []
        if let t = try r.tensor("value") { found.append(try ConstantTensor(t, what: "\(r.label) value")) }
        if opset >= 12 {
            if let f = try r.float("value_float") { found.append(ConstantTensor(dims: [], floats: [f])) }
            if let f = try r.floats("value_floats") { found.append(ConstantTensor(dims: [f.count], floats: f)) }
            if let i = try r.int("value_int") { found.append(ConstantTensor(dims: [], ints: [Int64(i)])) }
            if let i = try r.ints("value_ints") { found.append(ConstantTensor(dims: [i.count], ints: i.map { Int64($0) })) }
        }
        guard found.count == 1 else {
            throw r.error(found.isEmpty ? "needs a value Loupe reads (value, value_float(s), value_int(s))" : "has more than one value attribute")
        }
        bind(r.output(0), .constant(found[0]))
    }

    // MARK: Resize, Upsample

    /// Whether ONNX's nearest rule `floor(dst / scale)` (asymmetric, floor; clamped to the input)
    /// picks, for every output position, the same input as Loupe's exact `dst * in / out`,
    /// computed in float32 and in float64.
    static func nearestAgrees(inLength: Int, outLength: Int, scale: Float) -> Bool {
        (0..<outLength).allSatisfy { dst in
            let loupe = NearestResize.source(of: dst, inLength: inLength, outLength: outLength)
            let f = min(Int((Float(dst) / scale).rounded(.down)), inLength - 1)
            let d = min(Int((Double(dst) / Double(scale)).rounded(.down)), inLength - 1)
            return f == loupe && d == loupe
        }
    }

    private func resize(_ r: NodeReader) throws {
        let isUpsample = r.opType == "Upsample"
        if isUpsample { guard opset < 10 else { throw r.error("Upsample is deprecated from opset 10 on; use Resize") } }
        let x = try images(r)
        let dims = shape(x)
        // Per-axis scales (or output sizes) over all four axes.
        var scales: [Float]?, sizes: [Int]?
        var axes = Array(0..<4)
        if opset >= 18 && !isUpsample, let a = try r.ints("axes") {
            axes = try a.map { v in
                guard (-4..<4).contains(v) else { throw r.error("axis \(v) is out of range for rank 4") }
                return v < 0 ? v + 4 : v
            }
            guard Set(axes).count == axes.count else { throw r.error("axes \(a) repeat an axis") }
        }
        func full<T>(_ given: [T], _ identity: (Int) -> T) throws -> [T] {
            guard given.count == axes.count else { throw r.error("\(given.count) scales or sizes given for \(axes.count) axes") }
            var out = (0..<4).map(identity)
            for (i, a) in axes.enumerated() { out[a] = given[i] }
            return out
        }
        let mode: String
        if isUpsample && opset < 9 {
            try r.requireInputs(1...1)
            guard let s = try r.floats("scales") else { throw r.error("attribute 'scales' is required") }
            scales = try full(s) { _ in 1 }
        } else {
            let scalesIndex = opset >= 11 && !isUpsample ? 2 : 1
            try r.requireInputs(isUpsample || opset == 10 ? 2...2 : (opset >= 13 ? 1...4 : 3...4))
            if let s = r.input(scalesIndex) {
                guard let c = constant(s) else { throw r.error("scales '\(s)' must be a constant; Loupe's shapes are fixed when the graph is built") }
                if c.count > 0 {
                    guard let f = c.floats else { throw r.error("scales '\(s)' must be float") }
                    scales = try full(f) { _ in 1 }
                }
            }
            if !isUpsample && opset >= 11, let s = r.input(3) {
                guard let c = constant(s), let i = c.ints else { throw r.error("sizes '\(s)' must be a constant integer tensor") }
                if c.count > 0 {
                    guard scales == nil else { throw r.error("only one of scales and sizes may be given") }
                    sizes = try full(i.map { Int(clamping: $0) }) { dims[$0] }
                }
            }
        }
        mode = try r.string("mode", default: "nearest")
        let coordinates = opset >= 11 && !isUpsample ? try r.string("coordinate_transformation_mode", default: "half_pixel") : "asymmetric"
        let nearestMode = opset >= 11 && !isUpsample ? try r.string("nearest_mode", default: "round_prefer_floor") : "floor"
        if opset >= 11 && !isUpsample {
            // Used only by cubic and tf_crop_and_resize, both refused below.
            _ = try r.float("cubic_coeff_a")
            _ = try r.float("extrapolation_value")
            if try r.flag("exclude_outside", default: false) { throw r.error("exclude_outside 1 is not supported") }
        }
        var antialias = false
        if opset >= 18 && !isUpsample {
            antialias = try r.flag("antialias", default: false)
            let policy = try r.string("keep_aspect_ratio_policy", default: "stretch")
            guard policy == "stretch" || sizes == nil else { throw r.error("keep_aspect_ratio_policy '\(policy)' is not supported") }
        }
        // Output sizes, and the scale each axis's coordinate transform divides by.
        let outDims: [Int], axisScales: [Float]
        if let sizes {
            guard sizes.allSatisfy({ (1...maxResize).contains($0) }) else { throw r.error("sizes \(sizes) are out of range") }
            outDims = sizes
            axisScales = (0..<4).map { Float(sizes[$0]) / Float(dims[$0]) }
        } else if let scales {
            guard scales.allSatisfy({ $0.isFinite && $0 > 0 }), zip(dims, scales).allSatisfy({ Double($0) * Double($1) <= Double(maxResize) }) else {
                throw r.error("scales \(scales) must be positive, finite and give outputs of at most \(maxResize)")
            }
            outDims = try (0..<4).map { i in
                let f = Int((Float(dims[i]) * scales[i]).rounded(.down)), d = Int((Double(dims[i]) * Double(scales[i])).rounded(.down))
                guard f == d, f > 0 else { throw r.error("scale \(scales[i]) of axis \(i) (size \(dims[i])) gives an ambiguous or empty output size") }
                return f
            }
            axisScales = scales
        } else {
            throw r.error("needs scales or sizes")
        }
        guard outDims[0] == dims[0], outDims[1] == dims[1] else {
            throw r.error("resizing the batch or channel axis (\(Shape(dims)) to \(Shape(outDims))) is not supported")
        }
        let (h, w) = (outDims[2], outDims[3])
        switch mode {
        case "nearest":
            guard coordinates == "asymmetric", nearestMode == "floor" else {
                throw r.error("nearest resize with coordinate_transformation_mode '\(coordinates)' and nearest_mode '\(nearestMode)' is not supported; Loupe's is asymmetric with floor")
            }
            for i in 2..<4 where !Self.nearestAgrees(inLength: dims[i], outLength: outDims[i], scale: axisScales[i]) {
                throw r.error("scale \(axisScales[i]) on axis \(i) (\(dims[i]) to \(outDims[i])) picks inputs other than floor(dst * in / out) for some outputs")
            }
            try emit(.resizeNearest(NearestResize(height: h, width: w)), [x], r)
        case "linear":
            let alignCorners: Bool
            switch coordinates {
            case "half_pixel", "pytorch_half_pixel":
                // pytorch_half_pixel differs from half_pixel only for an output of length 1.
                guard coordinates == "half_pixel" || (h > 1 && w > 1) else {
                    throw r.error("pytorch_half_pixel with an output of length 1 is not supported")
                }
                // Loupe maps through in/out; with scales given that is ONNX's 1/scale only where in * scale is whole.
                if sizes == nil, let scales {
                    for i in 2..<4 where Float(outDims[i]) != Float(dims[i]) * scales[i] {
                        throw r.error("scale \(scales[i]) on axis \(i) does not give a whole output size; half_pixel would then differ from in/out")
                    }
                }
                alignCorners = false
            case "align_corners" where h > 1 && w > 1:
                alignCorners = true
            default:
                throw r.error("linear resize with coordinate_transformation_mode '\(coordinates)' is not supported; Loupe's bilinear resize is half_pixel or align_corners (outputs larger than 1)")
            }
            if antialias && (h < dims[2] || w < dims[3]) { throw r.error("antialiased down-sampling is not supported") }
            try emit(.resizeBilinear(BilinearResize(height: h, width: w, alignCorners: alignCorners)), [x], r)
        default:
            throw r.error("mode '\(mode)' is not supported; Loupe resizes with nearest or linear")
        }
    }
}
