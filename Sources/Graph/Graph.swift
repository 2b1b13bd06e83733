import CLBackend

/// A value in a graph: a named tensor with a shape known when the graph is built.
public struct ValueID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let index: Int
    public static func < (a: ValueID, b: ValueID) -> Bool { a.index < b.index }
    public var description: String { "%\(index)" }
}

public struct Value: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Fed by the caller on every run.
        case input
        /// A trainable weight with an initial value held by the graph.
        case parameter
        /// Computed by a node.
        case computed
    }
    public let name: String
    public let shape: Shape
    public let dtype: DType
    public let kind: Kind
}

/// The operations a node can run, each over the compute core's ops. Inputs are listed per case.
public enum GraphOp: Sendable, Equatable {
    /// `x, w[, b]`
    case conv2d(Conv2D)
    /// `x, w[, b]`
    case convTranspose2d(ConvTranspose2D)
    /// `x` -> `y, switches` (switches are int32 argmax positions within each plane)
    case maxPool2d(MaxPool2D)
    /// `pooled, switches` -> the unpooled tensor of `outputShape` (DeconvNet, ONNX MaxUnpool)
    case maxUnpool2d(MaxPool2D, outputShape: Shape)
    /// `x`
    case avgPool2d(AvgPool2D)
    case globalAvgPool
    /// `x` -> `y, switches`
    case globalMaxPool
    case activation(Activation)
    /// `x [N, in], w [out, in][, b [out]]` -> `x w^T + b`
    case linear
    /// `a, b, ...` -> elementwise sum (equal shapes)
    case add
    /// `a, b` -> `alpha * a + beta * b`
    case axpby(alpha: Float, beta: Float)
    /// concatenation on the channel axis (1)
    case concat
    /// `[N, ...] -> [N, rest]`
    case flatten
    /// a view with another shape of the same element count
    case reshape(Shape)
    /// over the last axis of `[N, K]`
    case softmax(log: Bool)
    /// `x, scale, shift, mean, variance` (inference form)
    case batchNorm(epsilon: Float)
    case localResponseNorm(LocalResponseNorm)
    case resizeBilinear(BilinearResize)
    case resizeNearest(NearestResize)
    /// constant padding (negative pads crop)
    case pad(ConstantPad2D)
    /// `[R, C] -> [C, R]`
    case transpose
    /// identity at inference
    case dropout
    case identity

    /// A short name for messages and listings.
    public var name: String {
        switch self {
        case .conv2d: return "Conv2D"
        case .convTranspose2d: return "ConvTranspose2D"
        case .maxPool2d: return "MaxPool2D"
        case .maxUnpool2d: return "MaxUnpool2D"
        case .avgPool2d: return "AvgPool2D"
        case .globalAvgPool: return "GlobalAvgPool"
        case .globalMaxPool: return "GlobalMaxPool"
        case .activation(.relu): return "ReLU"
        case .activation(.leakyRelu): return "LeakyReLU"
        case .linear: return "Linear"
        case .add: return "Add"
        case .axpby: return "Axpby"
        case .concat: return "Concat"
        case .flatten: return "Flatten"
        case .reshape: return "Reshape"
        case .softmax(let log): return log ? "LogSoftmax" : "Softmax"
        case .batchNorm: return "BatchNorm"
        case .localResponseNorm: return "LRN"
        case .resizeBilinear: return "ResizeBilinear"
        case .resizeNearest: return "ResizeNearest"
        case .pad: return "Pad"
        case .transpose: return "Transpose"
        case .dropout: return "Dropout"
        case .identity: return "Identity"
        }
    }
}

public struct Node: Sendable {
    public let name: String
    public let op: GraphOp
    public let inputs: [ValueID]
    public let outputs: [ValueID]
}

/// An error in building or running a graph; names the node, its op and the shapes involved.
public struct GraphError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A model as a graph of nodes over named values, in topological order (a node's inputs are
/// always made before it). Shapes are inferred as nodes are added; an inconsistent shape throws.
public final class Graph {
    public private(set) var values: [Value] = []
    public private(set) var nodes: [Node] = []
    public private(set) var inputs: [ValueID] = []
    public private(set) var outputs: [ValueID] = []
    /// Initial values of the parameters (host memory, float32).
    public var parameterValues: [ValueID: [Float]] = [:]
    private var byName: [String: ValueID] = [:]
    private var nodeNames: Set<String> = []
    /// The node that computes each computed value.
    public private(set) var producer: [ValueID: Int] = [:]

    public init() {}

    public subscript(_ v: ValueID) -> Value { values[v.index] }

    public func value(named name: String) -> ValueID? { byName[name] }

    public var parameters: [ValueID] { values.indices.filter { values[$0].kind == .parameter }.map { ValueID(index: $0) } }

    /// Total number of parameter elements, BatchNorm running statistics included.
    public var parameterCount: Int { parameters.reduce(0) { $0 + self[$1].shape.count } }

    /// Parameter elements less the BatchNorm running statistics (values named `*running_mean`,
    /// `*running_var`): the count papers and torchvision report (`sum(p.numel() for p in
    /// model.parameters())`), since PyTorch keeps those statistics as buffers, not parameters.
    public var trainableParameterCount: Int {
        parameters.filter { !(self[$0].name.hasSuffix("running_mean") || self[$0].name.hasSuffix("running_var")) }
            .reduce(0) { $0 + self[$1].shape.count }
    }

    private func newValue(_ name: String, _ shape: Shape, _ dtype: DType, _ kind: Value.Kind) throws -> ValueID {
        guard byName[name] == nil else { throw GraphError("value name '\(name)' is used twice") }
        let id = ValueID(index: values.count)
        values.append(Value(name: name, shape: shape, dtype: dtype, kind: kind))
        byName[name] = id
        return id
    }

    /// A float32 input fed on every run.
    @discardableResult
    public func input(_ name: String, shape: Shape) throws -> ValueID {
        let id = try newValue(name, shape, .float32, .input)
        inputs.append(id)
        return id
    }

    /// A parameter with its initial values.
    @discardableResult
    public func parameter(_ name: String, shape: Shape, values initial: [Float]) throws -> ValueID {
        guard initial.count == shape.count else {
            throw GraphError("parameter '\(name)': \(initial.count) values do not fill shape \(shape)")
        }
        let id = try newValue(name, shape, .float32, .parameter)
        parameterValues[id] = initial
        return id
    }

    public func markOutput(_ v: ValueID) {
        if !outputs.contains(v) { outputs.append(v) }
    }

    /// Replaces the outputs (e.g. to cut a model at an inner layer).
    public func setOutputs(_ vs: [ValueID]) { outputs = vs }

    /// Adds a node, inferring the shapes of its outputs. Output names are `name` for the first
    /// output and `name:k` for the others, unless given.
    @discardableResult
    public func add(_ op: GraphOp, _ inputs: [ValueID], name: String, outputNames: [String]? = nil) throws -> [ValueID] {
        guard !nodeNames.contains(name) else { throw GraphError("node name '\(name)' is used twice") }
        for v in inputs where v.index >= values.count {
            throw GraphError("node '\(name)' (\(op.name)): input \(v) does not exist")
        }
        let shapes: [(Shape, DType)]
        do {
            shapes = try inferOutputs(op, inputs.map { self[$0] })
        } catch let e as ShapeError {
            throw GraphError("node '\(name)' (\(op.name)), inputs \(inputs.map { "\(self[$0].name) \(self[$0].shape)" }.joined(separator: ", ")): \(e.message)")
        }
        let names = outputNames ?? shapes.indices.map { $0 == 0 ? name : "\(name):\($0)" }
        guard names.count == shapes.count else { throw GraphError("node '\(name)' (\(op.name)) has \(shapes.count) outputs, \(names.count) names given") }
        var outs: [ValueID] = []
        for ((shape, dtype), n) in zip(shapes, names) { outs.append(try newValue(n, shape, dtype, .computed)) }
        nodeNames.insert(name)
        for o in outs { producer[o] = nodes.count }
        nodes.append(Node(name: name, op: op, inputs: inputs, outputs: outs))
        return outs
    }

    /// Adds a single-output node and returns its output.
    @discardableResult
    public func apply(_ op: GraphOp, _ inputs: [ValueID], name: String) throws -> ValueID {
        try add(op, inputs, name: name)[0]
    }
}

extension Graph {
    /// The same graph for another batch size: the same values in the same order (so every
    /// `ValueID` means the same thing in both), inputs with batch `n`, shapes inferred anew.
    /// Reshapes and unpool shapes whose first axis is the batch follow it.
    public func withBatch(_ n: Int) throws -> Graph {
        guard n > 0 else { throw GraphError("batch size must be positive, got \(n)") }
        let old = inputs.first.map { self[$0].shape[0] } ?? 1
        func rebatched(_ s: Shape) -> Shape {
            guard s.rank > 0, s[0] == old else { return s }
            var d = s.dims
            d[0] = n
            return Shape(d)
        }
        let g = Graph()
        var i = 0
        while i < values.count {
            let v = values[i]
            switch v.kind {
            case .input:
                try g.input(v.name, shape: rebatched(v.shape))
                i += 1
            case .parameter:
                try g.parameter(v.name, shape: v.shape, values: parameterValues[ValueID(index: i)] ?? [])
                i += 1
            case .computed:
                let node = nodes[producer[ValueID(index: i)]!]
                var op = node.op
                switch op {
                case .reshape(let s): op = .reshape(rebatched(s))
                case .maxUnpool2d(let p, let s): op = .maxUnpool2d(p, outputShape: rebatched(s))
                default: break
                }
                try g.add(op, node.inputs, name: node.name, outputNames: node.outputs.map { values[$0.index].name })
                i += node.outputs.count
            }
        }
        g.setOutputs(outputs)
        return g
    }
}
