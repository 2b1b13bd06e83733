import CLBackend
import Foundation

/// Where a model comes from on the command line: a zoo name (`vgg16`) or an `.onnx` file, with
/// optional weights from a `.safetensors` or `.onnx` file matched by parameter name.
public enum ModelSource {
    /// Loads `spec`. `batch` rebuilds the graph for that batch size (the zoo builds it directly);
    /// `inputSize` builds a zoo model for other images (fully convolutional models keep their
    /// weights' meaning); `randomize: false` leaves zoo weights at zero where only shapes matter.
    public static func load(_ spec: String, batch: Int? = nil, inputSize: Int? = nil, weights: String? = nil, seed: UInt64 = 0,
                            randomize: Bool = true) throws -> Graph {
        var graph: Graph
        if spec.lowercased().hasSuffix(".onnx") || FileManager.default.fileExists(atPath: spec) {
            guard inputSize == nil else { throw GraphError("an input size applies to zoo models; \(spec) fixes its own") }
            graph = try ONNX.importGraph(contentsOf: spec)
            if let batch, graph.inputs.first.map({ graph[$0].shape[0] }) != batch { graph = try graph.withBatch(batch) }
        } else if let zoo = ZooModel(rawValue: spec.lowercased()) {
            graph = try zoo.build(batch: batch ?? 1, inputSize: inputSize, seed: seed, randomize: randomize && weights == nil)
        } else {
            throw GraphError("unknown model '\(spec)': not a file, and not one of the zoo models (\(ZooModel.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if let weights {
            let tensors: [String: NamedTensor] = weights.lowercased().hasSuffix(".onnx")
                ? try ONNX.initializers(contentsOf: weights) : try Safetensors.read(weights).tensors
            try graph.loadWeights(tensors)
        }
        return graph
    }
}
