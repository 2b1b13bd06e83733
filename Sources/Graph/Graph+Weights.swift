import CLBackend

/// What loading weights by name did.
public struct WeightLoadReport: Equatable, Sendable {
    /// Parameters that got values.
    public var loaded: [String]
    /// Parameters of the graph that the file does not have (they keep their values).
    public var missing: [String]
    /// Tensors of the file that the graph has no parameter for.
    public var unexpected: [String]
}

extension Graph {
    /// Sets parameter values from named tensors (a safetensors file, an ONNX model's
    /// initializers), matching by name. A tensor whose shape differs from its parameter's is an
    /// error naming both; with `strict`, so is a parameter the tensors do not cover.
    @discardableResult
    public func loadWeights(_ tensors: [String: NamedTensor], strict: Bool = true) throws -> WeightLoadReport {
        var report = WeightLoadReport(loaded: [], missing: [], unexpected: [])
        let byName = Dictionary(uniqueKeysWithValues: parameters.map { (self[$0].name, $0) })
        for (name, t) in tensors.sorted(by: { $0.key < $1.key }) {
            guard let p = byName[name] else {
                report.unexpected.append(name)
                continue
            }
            guard Shape(t.shape) == self[p].shape else {
                throw GraphError("weight '\(name)' has shape \(Shape(t.shape)); the model's parameter has \(self[p].shape)")
            }
            report.loaded.append(name)
        }
        report.missing = byName.keys.filter { tensors[$0] == nil }.sorted()
        if strict && !report.missing.isEmpty {
            throw GraphError("the weights lack \(report.missing.count) of the model's parameters, e.g. '\(report.missing[0])'")
        }
        for name in report.loaded { parameterValues[byName[name]!] = tensors[name]!.values }
        return report
    }

    /// Every parameter's current values, by name (to save as safetensors).
    public func namedWeights() -> [String: NamedTensor] {
        Dictionary(uniqueKeysWithValues: parameters.map { p in
            (self[p].name, NamedTensor(shape: self[p].shape.dims, values: parameterValues[p] ?? []))
        })
    }
}
