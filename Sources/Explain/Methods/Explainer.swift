import CLBackend
import Foundation
import Graph

/// One attribution map per image, row-major, at the resolution it was computed at
/// (`height x width`: a layer's grid, or the input's).
public struct AttributionMap: Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var values: [Float]

    public init(height: Int, width: Int, values: [Float]) {
        precondition(values.count == height * width, "AttributionMap: \(values.count) values for \(height)x\(width)")
        self.height = height
        self.width = width
        self.values = values
    }
}

/// An explanation method could not run; names the method, the model's layer or the input.
public struct ExplainError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Explanations of a classifier graph (one image input `[N, C, H, W]`, one logits output
/// `[N, K]`) on the executor's backend. Forward and backward passes run on the device in
/// batches; the per-image maps are combined from the few tensors read back (a layer's
/// activations and gradients), which is cheap next to the passes.
public final class Explainer {
    public let graph: Graph
    public let backend: Backend
    public let input: ValueID
    public let logits: ValueID
    let base: Executor
    private var byBatch: [Int: Executor] = [:]

    public init(_ executor: Executor) throws {
        let g = executor.graph
        guard g.inputs.count == 1, g[g.inputs[0]].shape.rank == 4 else {
            throw ExplainError("explanations need a model with one image input [N, C, H, W]; this one has \(g.inputs.map { "\(g[$0].name) \(g[$0].shape)" })")
        }
        guard let out = g.outputs.first, g[out].shape.rank == 2 else {
            throw ExplainError("explanations need a model whose first output is [N, classes] logits")
        }
        graph = g
        backend = executor.backend
        input = g.inputs[0]
        logits = out
        base = executor
        byBatch[g[input].shape[0]] = executor
    }

    /// `[C, H, W]` of one input image.
    public var imageShape: Shape { Shape(Array(graph[input].shape.dims.dropFirst())) }
    public var classes: Int { graph[logits].shape[1] }

    /// The executor for `n` images (the graph rebuilt for that batch, sharing the parameters).
    func executor(batch n: Int) throws -> Executor {
        if let e = byBatch[n] { return e }
        let e = try Executor(graph.withBatch(n), on: backend, parameters: base.parameters)
        byBatch[n] = e
        return e
    }

    /// A layer by name (a value of the graph), checked to be an NCHW feature map.
    public func featureMap(named name: String) throws -> ValueID {
        guard let v = graph.value(named: name) else {
            throw ExplainError("the model has no layer '\(name)'; see `loupe info` for its layers")
        }
        guard graph[v].shape.rank == 4, graph[v].dtype == .float32 else {
            throw ExplainError("layer '\(name)' is \(graph[v].shape), not a feature map [N, C, H, W]")
        }
        return v
    }

    /// The last NCHW value before the logits whose spatial size is above 1x1 (the usual Grad-CAM layer).
    public func lastConvolutionalLayer() throws -> ValueID {
        for node in graph.nodes.reversed() {
            for v in node.outputs where graph[v].shape.rank == 4 && graph[v].dtype == .float32 && graph[v].shape[2] * graph[v].shape[3] > 1 {
                return v
            }
        }
        throw ExplainError("the model has no feature map above 1x1 to explain")
    }

    func checkImages(_ images: HostTensor) throws -> Int {
        guard images.shape.rank == 4, Shape(Array(images.shape.dims.dropFirst())) == imageShape, images.shape[0] > 0 else {
            throw ExplainError("images must be [N, \(imageShape.dims.map(String.init).joined(separator: ", "))], got \(images.shape)")
        }
        return images.shape[0]
    }

    func checkClasses(_ classes: [Int], count: Int) throws {
        guard classes.count == count else { throw ExplainError("\(count) images but \(classes.count) target classes") }
        if let bad = classes.first(where: { $0 < 0 || $0 >= self.classes }) {
            throw ExplainError("class \(bad) is outside 0..<\(self.classes)")
        }
    }

    /// Class probabilities (softmax of the logits) for each image.
    public func probabilities(_ images: HostTensor) throws -> [[Float]] {
        let n = try checkImages(images)
        let exec = try executor(batch: n)
        let x = try backend.tensor(images.values, shape: images.shape)
        let pass = try exec.forward([exec.graph.inputs[0]: x])
        let p = try backend.read(backend.softmax(pass[logits]!))
        return (0..<n).map { Array(p[($0 * classes)..<(($0 + 1) * classes)]) }
    }

    /// The most probable class of each image.
    public func predictedClasses(_ images: HostTensor) throws -> [Int] {
        try probabilities(images).map { row in row.indices.max { row[$0] < row[$1] }! }
    }

    /// A one-hot cotangent on the logits: image i seeds its class `classes[i]`.
    func classSeed(_ classes: [Int]) throws -> Tensor {
        var v = [Float](repeating: 0, count: classes.count * self.classes)
        for (i, c) in classes.enumerated() { v[i * self.classes + c] = 1 }
        return try backend.tensor(v, shape: [classes.count, self.classes])
    }

    /// Runs `x` forward (keeping what backward needs) and backward from the class logits; returns
    /// the device tensors of `layer`'s activation and its gradient, and the input gradient when asked.
    func activationAndGradient(_ x: Tensor, classes: [Int], layer: ValueID?, wantInput: Bool,
                               rule: ReLUBackwardRule = .standard) throws -> (activation: Tensor?, gradient: Tensor?, inputGradient: Tensor?) {
        let exec = try executor(batch: x.shape[0])
        var targets: Set<ValueID> = []
        if let layer { targets.insert(layer) }
        if wantInput { targets.insert(input) }
        let pass = try exec.forward([input: x], forBackward: true, retaining: layer.map { [$0] } ?? [])
        let grads = try exec.backward(pass, seeds: [logits: classSeed(classes)], targets: targets, rule: rule)
        return (layer.flatMap { pass[$0] }, layer.flatMap { grads[$0] }, wantInput ? grads[input] : nil)
    }

    /// Bilinear upsampling of per-image maps to the input's height and width, on the device.
    public func upsampled(_ maps: [AttributionMap]) throws -> [AttributionMap] {
        guard let first = maps.first else { return [] }
        let (h, w) = (imageShape[1], imageShape[2])
        if first.height == h && first.width == w { return maps }
        let t = try backend.tensor(maps.flatMap(\.values), shape: [maps.count, 1, first.height, first.width])
        let r = try backend.read(backend.resizeBilinear(t, BilinearResize(height: h, width: w)))
        return (0..<maps.count).map { AttributionMap(height: h, width: w, values: Array(r[($0 * h * w)..<(($0 + 1) * h * w)])) }
    }
}

/// Splits `[N, C, H, W]` host values into per-image `[C * H * W]` slices.
func perImage(_ values: [Float], _ shape: Shape) -> [ArraySlice<Float>] {
    let per = shape.count / shape[0]
    return (0..<shape[0]).map { values[($0 * per)..<(($0 + 1) * per)] }
}
