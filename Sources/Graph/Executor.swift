import CLBackend

/// Runs a graph on one backend: forward passes that keep what backward needs (or free values as
/// they go), and reverse-mode autodiff seeded with any cotangent on any values.
///
/// Everything stays on the device: a forward or backward pass only enqueues kernels, and the
/// host reads a tensor only when the caller calls `backend.read` on it.
public final class Executor {
    public let graph: Graph
    public let backend: Backend
    /// The parameters, uploaded once when the executor is made.
    public private(set) var parameters: [ValueID: Tensor] = [:]
    /// How many times `infer`/`inputGradient` have split a batch in two to fit device memory.
    public internal(set) var splitCount = 0
    /// For each value, the index of the last node that reads it (inference frees values after it).
    private let lastUse: [ValueID: Int]
    /// Values that some node's backward needs.
    private let neededByBackward: Set<ValueID>
    /// Whether fusion is on (see `init`).
    public let fuses: Bool
    /// Conv nodes whose output only a ReLU reads, to the index of that ReLU node.
    private let reluAfterConv: [Int: Int]
    /// ReLU nodes whose output only a conv reads, as that conv's data input.
    private let reluBeforeConv: Set<Int>
    /// Whether batch norms are folded into the convolutions before them (see `init`).
    public let foldsBatchNorm: Bool
    /// Conv nodes whose output only a batch norm reads, to that batch-norm node (with `foldsBatchNorm`).
    private let batchNormAfterConv: [Int: Int]
    /// Batch-norm nodes (folded into a conv) whose output only a ReLU reads, to that ReLU node.
    private let reluAfterBatchNorm: [Int: Int]
    /// How many batch norms forward passes folded into their convolutions.
    public private(set) var foldedBatchNormCount = 0
    /// How many conv + ReLU pairs forward passes ran as one fused op, and how many ReLU backwards
    /// ran inside a conv's backward-data (tests check the fused paths are taken).
    public private(set) var fusedForwardCount = 0, fusedBackwardCount = 0
    /// Called before each node's forward op (`backward: false`) and before its backward.
    public var nodeObserver: ((_ node: Node, _ backward: Bool) -> Void)?

    /// - Parameters:
    ///   - parameters: device tensors to use for the parameters instead of uploading the graph's
    ///     values (executors of one graph at different batch sizes share them).
    ///   - fuses: run a convolution read only by a ReLU as one conv + bias + ReLU op (unless the
    ///     pass must keep the convolution's output), and the backward of a ReLU read only by a
    ///     convolution inside that convolution's backward-data. The ReLU's backward then reads its
    ///     output, which is positive exactly where its input is. Results equal the unfused ops'
    ///     up to the rounding of the separate passes.
    ///   - foldsBatchNorm: run a convolution read only by an inference batch norm as one convolution
    ///     with the folded weights (`Backend.foldingBatchNorm`; with a ReLU after the batch norm, one
    ///     conv + bias + ReLU), unless the pass must keep the convolution's output. Backward passes
    ///     then reach inputs and other values but not the folded layers' weights or batch-norm
    ///     parameters (asking for those throws): for explanations and synthesis, not training.
    public init(_ graph: Graph, on backend: Backend, parameters shared: [ValueID: Tensor]? = nil, fuses: Bool = true,
                foldsBatchNorm: Bool = false) throws {
        self.graph = graph
        self.backend = backend
        self.fuses = fuses
        self.foldsBatchNorm = foldsBatchNorm
        var last: [ValueID: Int] = [:]
        var readers: [ValueID: [(node: Int, slot: Int)]] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for (slot, v) in node.inputs.enumerated() {
                last[v] = i
                readers[v, default: []].append((i, slot))
            }
        }
        var after: [Int: Int] = [:], before: Set<Int> = []
        if fuses {
            for (i, node) in graph.nodes.enumerated() {
                guard let only = readers[node.outputs[0]], only.count == 1, !graph.outputs.contains(node.outputs[0]) else { continue }
                let reader = graph.nodes[only[0].node]
                if case .conv2d = node.op, case .activation(.relu) = reader.op { after[i] = only[0].node }
                if case .activation(.relu) = node.op, case .conv2d = reader.op, only[0].slot == 0 { before.insert(i) }
            }
        }
        var bnAfter: [Int: Int] = [:], reluAfterBN: [Int: Int] = [:]
        if foldsBatchNorm {
            for (i, node) in graph.nodes.enumerated() {
                guard case .conv2d = node.op, let only = readers[node.outputs[0]], only.count == 1, only[0].slot == 0,
                      !graph.outputs.contains(node.outputs[0]) else { continue }
                let bn = graph.nodes[only[0].node]
                guard case .batchNorm = bn.op, bn.inputs.dropFirst().allSatisfy({ graph[$0].kind == .parameter }) else { continue }
                bnAfter[i] = only[0].node
                if fuses, let r = readers[bn.outputs[0]], r.count == 1, !graph.outputs.contains(bn.outputs[0]),
                   case .activation(.relu) = graph.nodes[r[0].node].op {
                    reluAfterBN[only[0].node] = r[0].node
                }
            }
        }
        batchNormAfterConv = bnAfter
        reluAfterBatchNorm = reluAfterBN
        reluAfterConv = after
        reluBeforeConv = before
        var needed: Set<ValueID> = []
        for (i, node) in graph.nodes.enumerated() {
            // A fused ReLU's backward reads its output (its input is never made).
            let fusedReLU = after.values.contains(i) || reluAfterBN.values.contains(i)
            needed.formUnion(fusedReLU ? [node.outputs[0]] : Executor.valuesBackwardNeeds(node))
        }
        lastUse = last
        neededByBackward = needed
        for p in graph.parameters {
            parameters[p] = try shared?[p] ?? backend.tensor(graph.parameterValues[p] ?? [], shape: graph[p].shape)
        }
    }

    /// Replaces a parameter's device values (e.g. after loading weights); shapes must match.
    public func setParameter(_ v: ValueID, values: [Float]) throws {
        guard graph[v].kind == .parameter else { throw GraphError("'\(graph[v].name)' is not a parameter") }
        guard values.count == graph[v].shape.count else {
            throw GraphError("parameter '\(graph[v].name)' has shape \(graph[v].shape); \(values.count) values given")
        }
        try backend.write(values, to: parameters[v]!)
    }

    /// The results of one forward pass: every value still held, by id.
    public final class Pass {
        public internal(set) var values: [ValueID: Tensor]
        /// The folded weights of each conv node that ran with its batch norm folded in.
        var foldedWeights: [Int: Tensor] = [:]
        /// Batch-norm nodes folded into the conv before them.
        var foldedBatchNorms: Set<Int> = []
        /// Whether the pass kept what `backward` needs.
        public let supportsBackward: Bool
        init(values: [ValueID: Tensor], supportsBackward: Bool) {
            self.values = values
            self.supportsBackward = supportsBackward
        }
        public subscript(_ v: ValueID) -> Tensor? { values[v] }

        /// The same pass on another backend (every held value read back and uploaded there), so
        /// that backward passes on both backends follow the same ReLU masks and max-pool switches:
        /// comparing backends this way isolates the backward kernels from decisions that a forward
        /// value within rounding of a threshold can flip.
        public func copied(from source: Backend, to target: Backend) throws -> Pass {
            var moved: [ValueID: Tensor] = [:]
            for (v, t) in values {
                moved[v] = t.dtype == .int32 ? try target.tensor(ints: source.readInts(t), shape: t.shape)
                    : try target.tensor(source.read(t), shape: t.shape)
            }
            let pass = Pass(values: moved, supportsBackward: supportsBackward)
            pass.foldedBatchNorms = foldedBatchNorms
            for (i, w) in foldedWeights { pass.foldedWeights[i] = try target.tensor(source.read(w), shape: w.shape) }
            return pass
        }
    }

    /// Runs the graph forward.
    /// - Parameters:
    ///   - feeds: a tensor for every graph input, of its declared shape (on this executor's backend).
    ///   - forBackward: keep the activations `backward` needs; otherwise free every value after its
    ///     last use.
    ///   - retaining: values to keep in the pass besides the graph outputs (e.g. a layer to explain).
    ///   - until: stop after the node producing this value (the rest of the graph is not run).
    public func forward(_ feeds: [ValueID: Tensor], forBackward: Bool = false, retaining: Set<ValueID> = [],
                        until stop: ValueID? = nil) throws -> Pass {
        var live: [ValueID: Tensor] = parameters
        for input in graph.inputs {
            guard let t = feeds[input] else { throw GraphError("no tensor fed for input '\(graph[input].name)' \(graph[input].shape)") }
            guard t.shape == graph[input].shape else {
                throw GraphError("input '\(graph[input].name)' expects shape \(graph[input].shape), got \(t.shape)")
            }
            live[input] = t
        }
        let keep = retaining.union(graph.outputs).union(stop.map { [$0] } ?? [])
        let lastNode = stop.flatMap { graph.producer[$0] } ?? (graph.nodes.count - 1)
        var fusedInto: [Int: Tensor] = [:]   // ReLU (or batch-norm) node -> its output, already computed by the conv before it
        var skipped: Set<Int> = []            // folded batch norms whose ReLU took the output
        var foldedWeights: [Int: Tensor] = [:]
        for i in 0...max(lastNode, 0) where i < graph.nodes.count {
            let node = graph.nodes[i]
            if skipped.contains(i) { continue }
            if let done = fusedInto.removeValue(forKey: i) {
                live[node.outputs[0]] = done
            } else if let bn = batchNormAfterConv[i], bn <= lastNode, !keep.contains(node.outputs[0]), case .conv2d(let op) = node.op,
                      case .batchNorm(let eps) = graph.nodes[bn].op {
                nodeObserver?(node, false)
                let x = node.inputs.map { live[$0]! }, p = graph.nodes[bn].inputs.dropFirst().map { live[$0]! }
                let folded = try annotated(node) {
                    try backend.foldingBatchNorm(weight: x[1], bias: x.count > 2 ? x[2] : nil, scale: p[0], shift: p[1], mean: p[2],
                                                 variance: p[3], epsilon: eps)
                }
                foldedWeights[i] = folded.weight
                foldedBatchNormCount += 1
                if let relu = reluAfterBatchNorm[bn], relu <= lastNode, !keep.contains(graph.nodes[bn].outputs[0]) {
                    fusedInto[relu] = try annotated(node) { try backend.conv2dBiasReLU(x[0], weight: folded.weight, bias: folded.bias, op) }
                    skipped.insert(bn)
                    fusedForwardCount += 1
                } else {
                    fusedInto[bn] = try annotated(node) { try backend.conv2d(x[0], weight: folded.weight, bias: folded.bias, op) }
                }
            } else if let relu = reluAfterConv[i], relu <= lastNode, !keep.contains(node.outputs[0]), case .conv2d(let op) = node.op {
                nodeObserver?(node, false)
                let x = node.inputs.map { live[$0]! }
                fusedInto[relu] = try annotated(node) { try backend.conv2dBiasReLU(x[0], weight: x[1], bias: x.count > 2 ? x[2] : nil, op) }
                fusedForwardCount += 1
            } else {
                nodeObserver?(node, false)
                let outs = try run(node, node.inputs.map { live[$0]! })
                for (v, t) in zip(node.outputs, outs) { live[v] = t }
            }
            if !forBackward {
                for v in node.inputs where lastUse[v] == i && !keep.contains(v) && graph[v].kind != .parameter { live[v] = nil }
                for v in node.outputs where lastUse[v] == nil && !keep.contains(v) { live[v] = nil }
            } else {
                for v in node.inputs where lastUse[v] == i && !keep.contains(v) && !neededByBackward.contains(v) && graph[v].kind == .computed {
                    live[v] = nil
                }
            }
        }
        for p in graph.parameters where !keep.contains(p) && !(forBackward && neededByBackward.contains(p)) { live[p] = nil }
        if !forBackward { for v in graph.inputs where !keep.contains(v) { live[v] = nil } }
        let pass = Pass(values: live, supportsBackward: forBackward)
        if forBackward {
            pass.foldedWeights = foldedWeights
            pass.foldedBatchNorms = Set(foldedWeights.keys.map { batchNormAfterConv[$0]! })
        }
        return pass
    }

    /// Reverse-mode autodiff from `seeds` (a cotangent for each seeded value, of its shape) to
    /// `targets` (any inputs, parameters or computed values). ReLUs use `rule` (standard, guided
    /// or deconvnet) for this pass only. Returns a gradient for every target that the seeds reach.
    public func backward(_ pass: Pass, seeds: [ValueID: Tensor], targets: Set<ValueID>,
                         rule: ReLUBackwardRule = .standard) throws -> [ValueID: Tensor] {
        guard pass.supportsBackward else { throw GraphError("backward needs a forward pass run with forBackward: true") }
        for (v, s) in seeds where s.shape != graph[v].shape {
            throw GraphError("cotangent for '\(graph[v].name)' must have shape \(graph[v].shape), got \(s.shape)")
        }
        // Values whose gradient is wanted: the targets and everything computed from them.
        var dependsOnTarget = targets
        for node in graph.nodes where node.inputs.contains(where: dependsOnTarget.contains) {
            dependsOnTarget.formUnion(node.outputs)
        }
        var grads = seeds
        func accumulate(_ v: ValueID, _ g: Tensor) throws { grads[v] = try grads[v].map { try backend.add($0, g) } ?? g }
        for node in graph.nodes.reversed() {
            let outGrads = node.outputs.map { grads[$0] }
            guard outGrads.contains(where: { $0 != nil }) else { continue }
            nodeObserver?(node, true)
            var wanted = node.inputs.map { dependsOnTarget.contains($0) && graph[$0].dtype == .float32 }
            let index = graph.producer[node.outputs[0]]!
            if pass.foldedBatchNorms.contains(index) {
                // Folded into the conv before it: the conv's backward takes this gradient as its own.
                if wanted.dropFirst().contains(true) {
                    throw GraphError("backward of node '\(node.name)' (BatchNorm): its parameters were folded into the convolution; "
                                     + "make the executor with foldsBatchNorm: false for their gradients")
                }
                if wanted[0], let g = outGrads[0] { try accumulate(node.inputs[0], g) }
                for v in node.outputs where !targets.contains(v) { grads[v] = nil }
                continue
            }
            let foldedWeight = pass.foldedWeights[index]
            if foldedWeight != nil && wanted.dropFirst().contains(true) {
                throw GraphError("backward of node '\(node.name)' (Conv2D): its weights were folded with a batch norm; "
                                 + "make the executor with foldsBatchNorm: false for their gradients")
            }
            // The data input comes from a ReLU read by nothing else: its backward goes into backward-data,
            // and the ReLU node, getting no output gradient, is skipped.
            if wanted[0], case .conv2d(let op) = node.op, let g = outGrads[0], let relu = graph.producer[node.inputs[0]],
               reluBeforeConv.contains(relu), !targets.contains(node.inputs[0]), grads[node.inputs[0]] == nil,
               let a = pass.values[node.inputs[0]] {
                let dz = try annotated(node, backward: true) {
                    try backend.conv2dBackwardDataReLU(g, weight: try foldedWeight ?? held(node.inputs[1], of: node, in: pass), reluOutput: a,
                                                       rule: rule, op)
                }
                try accumulate(graph.nodes[relu].inputs[0], dz)
                fusedBackwardCount += 1
                wanted[0] = false
            }
            if wanted.contains(true) {
                let inGrads = try gradients(node, outGrads, wanted, pass, rule: rule, foldedWeight: foldedWeight)
                for (v, g) in zip(node.inputs, inGrads) {
                    guard let g else { continue }
                    try accumulate(v, g)
                }
            }
            for v in node.outputs where !targets.contains(v) { grads[v] = nil }
        }
        return grads.filter { targets.contains($0.key) }
    }

    /// `body`'s shape errors as graph errors naming the node.
    private func annotated<T>(_ node: Node, backward: Bool = false, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as ShapeError {
            throw GraphError("\(backward ? "backward of " : "")node '\(node.name)' (\(node.op.name)): \(e.message)")
        }
    }

    private func held(_ v: ValueID, of node: Node, in pass: Pass) throws -> Tensor {
        guard let t = pass.values[v] else { throw GraphError("node '\(node.name)': '\(graph[v].name)' was not kept by the forward pass") }
        return t
    }

    // MARK: - Ops

    private func run(_ node: Node, _ x: [Tensor]) throws -> [Tensor] {
        let b = backend
        return try annotated(node) {
            switch node.op {
            case .conv2d(let op): return [try b.conv2d(x[0], weight: x[1], bias: x.count > 2 ? x[2] : nil, op)]
            case .convTranspose2d(let op): return [try b.convTranspose2d(x[0], weight: x[1], bias: x.count > 2 ? x[2] : nil, op)]
            case .maxPool2d(let op):
                let (y, s) = try b.maxPool2d(x[0], op)
                return [y, s]
            case .maxUnpool2d(let op, let shape): return [try b.maxUnpool2d(x[0], switches: x[1], outputShape: shape, op)]
            case .avgPool2d(let op): return [try b.avgPool2d(x[0], op)]
            case .globalAvgPool: return [try b.globalAvgPool(x[0])]
            case .globalMaxPool:
                let (y, s) = try b.globalMaxPool(x[0])
                return [y, s]
            case .activation(let a): return [try b.activation(x[0], a)]
            case .linear: return [try b.linear(x[0], weight: x[1], bias: x.count > 2 ? x[2] : nil)]
            case .add: return [try x.dropFirst().reduce(x[0]) { try b.add($0, $1) }]
            case .axpby(let alpha, let beta): return [try b.axpby(alpha: alpha, x[0], beta: beta, x[1])]
            case .concat: return [try b.concatChannels(x)]
            case .flatten: return [try x[0].flattened()]
            case .reshape(let shape): return [try x[0].reshaped(to: shape)]
            case .softmax(let log): return [try b.softmax(x[0], log: log)]
            case .batchNorm(let eps): return [try b.batchNorm(x[0], scale: x[1], shift: x[2], mean: x[3], variance: x[4], epsilon: eps)]
            case .localResponseNorm(let op): return [try b.localResponseNorm(x[0], op)]
            case .resizeBilinear(let op): return [try b.resizeBilinear(x[0], op)]
            case .resizeNearest(let op): return [try b.resizeNearest(x[0], op)]
            case .pad(let op): return [try b.pad2d(x[0], op)]
            case .transpose: return [try b.transpose(x[0])]
            case .dropout: return [b.dropout(x[0])]
            case .identity: return [x[0]]
            }
        }
    }

    /// The values a node's backward reads (besides the output gradients).
    static func valuesBackwardNeeds(_ node: Node) -> [ValueID] {
        switch node.op {
        case .conv2d, .convTranspose2d, .linear: return [node.inputs[0], node.inputs[1]]
        case .maxPool2d, .globalMaxPool: return [node.outputs[1]]
        case .maxUnpool2d: return [node.inputs[1]]
        case .activation, .localResponseNorm: return [node.inputs[0]]
        case .softmax: return [node.outputs[0]]
        case .batchNorm: return [node.inputs[0], node.inputs[1], node.inputs[3], node.inputs[4]]
        case .avgPool2d, .globalAvgPool, .add, .axpby, .concat, .flatten, .reshape, .resizeBilinear, .resizeNearest, .pad, .transpose,
             .dropout, .identity: return []
        }
    }

    /// `foldedWeight`: a conv's weights with its batch norm folded in, used for its backward-data.
    private func gradients(_ node: Node, _ dy: [Tensor?], _ wanted: [Bool], _ pass: Pass, rule: ReLUBackwardRule,
                           foldedWeight: Tensor? = nil) throws -> [Tensor?] {
        let b = backend
        func held(_ v: ValueID) throws -> Tensor { try self.held(v, of: node, in: pass) }
        func shape(_ i: Int) -> Shape { graph[node.inputs[i]].shape }
        func want(_ i: Int, _ body: () throws -> Tensor) rethrows -> Tensor? { i < wanted.count && wanted[i] ? try body() : nil }
        guard let g = dy[0] else { return node.inputs.map { _ in nil } }
        return try annotated(node, backward: true) {
            switch node.op {
            case .conv2d(let op):
                return [try want(0) { try b.conv2dBackwardData(g, weight: try foldedWeight ?? held(node.inputs[1]), inputShape: shape(0), op) },
                        try want(1) { try b.conv2dBackwardFilter(try held(node.inputs[0]), outputGrad: g, weightShape: shape(1), op) },
                        try want(2) { try b.biasGradient(g) }]
            case .convTranspose2d(let op):
                return [try want(0) { try b.convTranspose2dBackwardData(g, weight: try held(node.inputs[1]), inputShape: shape(0), op) },
                        try want(1) { try b.convTranspose2dBackwardFilter(try held(node.inputs[0]), outputGrad: g, weightShape: shape(1), op) },
                        try want(2) { try b.biasGradient(g) }]
            case .maxPool2d(let op):
                return [try b.maxPool2dBackward(g, switches: try held(node.outputs[1]), inputShape: shape(0), op)]
            case .globalMaxPool:
                return [try b.globalMaxPoolBackward(g, switches: try held(node.outputs[1]), inputShape: shape(0))]
            case .maxUnpool2d(let op, _):
                return [try b.maxUnpool2dBackward(g, switches: try held(node.inputs[1]), op), nil]
            case .avgPool2d(let op): return [try b.avgPool2dBackward(g, inputShape: shape(0), op)]
            case .globalAvgPool: return [try b.globalAvgPoolBackward(g, inputShape: shape(0))]
            case .activation(let a):
                // After a fused conv + ReLU only the ReLU's output exists; it masks the same elements.
                let mask = a == .relu && pass.values[node.inputs[0]] == nil ? node.outputs[0] : node.inputs[0]
                return [try b.activationBackward(g, input: try held(mask), a, rule: rule)]
            case .linear:
                return [try want(0) { try b.linearBackwardData(g, weight: try held(node.inputs[1])) },
                        try want(1) { try b.linearBackwardWeight(try held(node.inputs[0]), outputGrad: g) },
                        try want(2) { try b.biasGradient(g) }]
            case .add: return node.inputs.map { _ in g }
            case .axpby(let alpha, let beta): return [try want(0) { try b.scaled(g, by: alpha) }, try want(1) { try b.scaled(g, by: beta) }]
            case .concat: return try b.concatChannelsBackward(g, channels: node.inputs.map { graph[$0].shape[1] })
            case .flatten, .reshape: return [try g.reshaped(to: shape(0))]
            case .softmax(let log): return [try b.softmaxBackward(g, output: try held(node.outputs[0]), log: log)]
            case .batchNorm(let eps):
                // Explanations and synthesis want only the input's gradient: the parameters' are skipped.
                let r = try b.batchNormBackward(g, input: try held(node.inputs[0]), scale: try held(node.inputs[1]),
                                                mean: try held(node.inputs[3]), variance: try held(node.inputs[4]), epsilon: eps,
                                                parameters: wanted[1] || wanted[2])
                return [wanted[0] ? r.input : nil, wanted[1] ? r.scale : nil, wanted[2] ? r.shift : nil, nil, nil]
            case .localResponseNorm(let op): return [try b.localResponseNormBackward(g, input: try held(node.inputs[0]), op)]
            case .resizeBilinear(let op): return [try b.resizeBilinearBackward(g, inputShape: shape(0), op)]
            case .resizeNearest(let op): return [try b.resizeNearestBackward(g, inputShape: shape(0), op)]
            case .pad(let op): return [try b.pad2dBackward(g, inputShape: shape(0), op)]
            case .transpose: return [try b.transpose(g)]
            case .dropout, .identity: return [g]
            }
        }
    }
}
