import CLBackend

/// A tensor in host memory: a shape and its float32 values in C order.
public struct HostTensor: Equatable, Sendable {
    public var shape: Shape
    public var values: [Float]
    public init(shape: Shape, values: [Float]) throws {
        guard shape.count == values.count else { throw GraphError("\(values.count) values do not fill shape \(shape)") }
        self.shape = shape
        self.values = values
    }

    /// Items `range` of the batch (axis 0).
    func batch(_ range: Range<Int>) -> HostTensor {
        let per = shape.count / max(shape[0], 1)
        var dims = shape.dims
        dims[0] = range.count
        return HostTensor(unchecked: Shape(dims), Array(values[(range.lowerBound * per)..<(range.upperBound * per)]))
    }

    private init(unchecked shape: Shape, _ values: [Float]) {
        self.shape = shape
        self.values = values
    }

    /// Concatenation along the batch axis.
    static func joined(_ parts: [HostTensor]) -> HostTensor {
        var dims = parts[0].shape.dims
        dims[0] = parts.reduce(0) { $0 + $1.shape[0] }
        return HostTensor(unchecked: Shape(dims), parts.flatMap(\.values))
    }
}

extension Executor {
    /// Runs the graph on host inputs and returns the host values of `outputs` (default: the
    /// graph's outputs). When the device runs out of memory, the batch is split in halves and the
    /// halves run one after the other (recursively), so a batch larger than what fits still runs.
    /// Splitting needs a graph whose inputs and outputs all carry the batch on axis 0, which is the
    /// case for every graph built for a batch of images.
    public func infer(_ inputs: [ValueID: HostTensor], outputs wanted: [ValueID]? = nil) throws -> [ValueID: HostTensor] {
        let outs = wanted ?? graph.outputs
        return try splittingBatch(inputs, outs) { exec, feeds in
            let pass = try exec.forward(feeds, retaining: Set(outs))
            return try outs.map { v in try HostTensor(shape: exec.graph[v].shape, values: exec.backend.read(pass[v]!)) }
        }
    }

    /// The gradient of `<cotangent, value>` with respect to `target` (an input or any value
    /// upstream of `value`), on host tensors; splits the batch like `infer` when memory runs out.
    public func inputGradient(_ inputs: [ValueID: HostTensor], at value: ValueID, cotangent: HostTensor, target: ValueID,
                              rule: ReLUBackwardRule = .standard) throws -> HostTensor {
        guard cotangent.shape == graph[value].shape else {
            throw GraphError("cotangent for '\(graph[value].name)' must have shape \(graph[value].shape), got \(cotangent.shape)")
        }
        // The cotangent rides along as one more batched input, keyed by the value it seeds.
        var all = inputs
        all[value] = cotangent
        return try splittingBatch(all, [target]) { exec, feeds in
            var graphFeeds = feeds
            let seed = graphFeeds.removeValue(forKey: value)!
            let pass = try exec.forward(graphFeeds, forBackward: true, until: value)
            let shape = exec.graph[target].shape
            guard let g = try exec.backward(pass, seeds: [value: seed], targets: [target], rule: rule)[target] else {
                return [try HostTensor(shape: shape, values: Array(repeating: 0, count: shape.count))]
            }
            return [try HostTensor(shape: shape, values: exec.backend.read(g))]
        }[target]!
    }

    /// Uploads `inputs`, runs `body`, and on an out-of-memory error retries with each half of the
    /// batch on an executor of the same graph rebuilt for the smaller batch (sharing the parameters).
    private func splittingBatch(_ inputs: [ValueID: HostTensor], _ outs: [ValueID],
                                _ body: (Executor, [ValueID: Tensor]) throws -> [HostTensor]) throws -> [ValueID: HostTensor] {
        let batch = graph.inputs.first.map { graph[$0].shape[0] } ?? 1
        do {
            var feeds: [ValueID: Tensor] = [:]
            for (v, t) in inputs {
                if graph.inputs.contains(v) && t.shape != graph[v].shape {
                    throw GraphError("input '\(graph[v].name)' expects shape \(graph[v].shape), got \(t.shape)")
                }
                feeds[v] = try backend.tensor(t.values, shape: t.shape)
            }
            return Dictionary(uniqueKeysWithValues: zip(outs, try body(self, feeds)))
        } catch where isOutOfDeviceMemory(error) && batch > 1 && inputs.values.allSatisfy({ $0.shape.rank > 0 && $0.shape[0] == batch }) {
            splitCount += 1
            let half = batch / 2
            let parts = try [0..<half, half..<batch].map { range in
                let sub = try Executor(graph.withBatch(range.count), on: backend, parameters: parameters)
                return try sub.splittingBatch(inputs.mapValues { $0.batch(range) }, outs, body)
            }
            return Dictionary(uniqueKeysWithValues: outs.map { v in (v, HostTensor.joined(parts.map { $0[v]! })) })
        }
    }
}
