import ArgumentParser
import CLBackend
import Foundation
import Graph

/// Runs `body`; any error becomes one line on standard error and exit code 2 (bad input).
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        printError("loupe: error: " + "\(error)".split(whereSeparator: \.isNewline).joined(separator: " "))
        throw ExitCode(2)
    }
}

/// `[NAME=]path` arguments.
struct NamedPath {
    var name: String?
    var path: String
    init(_ text: String) {
        if let eq = text.firstIndex(of: "="), !text[..<eq].isEmpty, !text[..<eq].contains("/") {
            name = String(text[..<eq])
            path = String(text[text.index(after: eq)...])
        } else {
            path = text
        }
    }
}

struct ModelOptions: ParsableArguments {
    @Argument(help: "A zoo model name (\(ZooModel.allCases.map(\.rawValue).joined(separator: ", "))) or an .onnx file.")
    var model: String
    @Option(help: "Weights to load by parameter name: a .safetensors or .onnx file.")
    var weights: String?
    @Option(help: "Seed of the random initialization of zoo models without --weights.")
    var initSeed: UInt64 = 0

    func load(batch: Int?, randomize: Bool = true) throws -> Graph {
        try ModelSource.load(model, batch: batch, weights: weights, seed: initSeed, randomize: randomize)
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a model's layers: output shapes, parameters, receptive fields and FLOPs.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Batch size to build the model for.") var batch: Int = 1

    func run() throws {
        try reportingErrors {
            let graph = try modelOptions.load(batch: batch, randomize: false)
            let fields = receptiveFields(of: graph)
            func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
            print(pad("node", 28) + pad("op", 16) + pad("output", 22) + pad("params", 12) + pad("receptive field (size/jump/start)", 36) + "MFLOPs")
            for (i, node) in graph.nodes.enumerated() {
                let out = node.outputs[0]
                let params = node.inputs.filter { graph[$0].kind == .parameter }.reduce(0) { $0 + graph[$1].shape.count }
                let rf = fields[out].map { "\($0.height)" } ?? "-"
                print(pad(node.name, 28) + pad(node.op.name, 16) + pad("\(graph[out].shape)", 22) + pad("\(params)", 12) + pad(rf, 36)
                      + String(format: "%.1f", Double(graph.forwardFLOPs(ofNode: i)) / 1e6))
            }
            print("inputs: " + graph.inputs.map { "\(graph[$0].name) \(graph[$0].shape)" }.joined(separator: ", "))
            print("outputs: " + graph.outputs.map { "\(graph[$0].name) \(graph[$0].shape)" }.joined(separator: ", "))
            print("parameters: \(graph.trainableParameterCount) trainable, \(graph.parameterCount) in all")
            print(String(format: "forward: %.2f GFLOPs (2 per multiply-add) at batch %d", Double(graph.forwardFLOPs) / 1e9, batch))
        }
    }
}

/// Reads `[NAME=]x.npy` inputs onto the graph's inputs, by name or in order.
func readInputs(_ specs: [String], for graph: Graph) throws -> [ValueID: HostTensor] {
    var feeds: [ValueID: HostTensor] = [:]
    for (i, spec) in specs.map(NamedPath.init).enumerated() {
        let id: ValueID
        if let name = spec.name {
            guard let v = graph.value(named: name), graph.inputs.contains(v) else {
                throw GraphError("the model has no input '\(name)'; its inputs: \(graph.inputs.map { graph[$0].name }.joined(separator: ", "))")
            }
            id = v
        } else {
            guard i < graph.inputs.count else { throw GraphError("\(specs.count) inputs given; the model takes \(graph.inputs.count)") }
            id = graph.inputs[i]
        }
        let (shape, values) = try NPY.read(spec.path)
        guard Shape(shape) == graph[id].shape else {
            throw GraphError("\(spec.path) has shape \(Shape(shape)); input '\(graph[id].name)' takes \(graph[id].shape)")
        }
        feeds[id] = try HostTensor(shape: Shape(shape), values: values)
    }
    for v in graph.inputs where feeds[v] == nil {
        throw GraphError("missing input '\(graph[v].name)' \(graph[v].shape): give --input \(graph[v].name)=FILE.npy")
    }
    return feeds
}

/// The batch size of the first `.npy` input, so the model is built to match it.
func batchOf(_ specs: [String]) throws -> Int? {
    guard let first = specs.first.map(NamedPath.init) else { return nil }
    let (shape, _) = try NPY.read(first.path)
    return shape.first
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a model on .npy inputs and write its outputs (or any inner tensor) as .npy.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var deviceOption: DeviceOption
    @Option(name: .long, help: "[NAME=]x.npy, once per model input (by name, or in order).") var input: [String] = []
    @Option(name: .long, help: "[NAME=]y.npy: a tensor to write (by name, or the model's outputs in order).") var output: [String] = []
    @Flag(help: "Replace output files that exist.") var overwrite = false

    func run() throws {
        try reportingErrors {
            guard !output.isEmpty else { throw GraphError("give at least one --output [NAME=]y.npy") }
            let graph = try modelOptions.load(batch: try batchOf(input))
            let feeds = try readInputs(input, for: graph)
            var targets: [(ValueID, String)] = []
            var unnamed = 0
            for spec in output.map(NamedPath.init) {
                if let name = spec.name {
                    guard let v = graph.value(named: name), graph[v].dtype == .float32 else { throw GraphError("the model has no float tensor '\(name)'") }
                    targets.append((v, spec.path))
                } else {
                    guard unnamed < graph.outputs.count else {
                        throw GraphError("\(unnamed + 1) unnamed outputs asked for; the model has \(graph.outputs.count) (name inner tensors as NAME=FILE.npy)")
                    }
                    targets.append((graph.outputs[unnamed], spec.path))
                    unnamed += 1
                }
            }
            if !overwrite, let existing = targets.first(where: { FileManager.default.fileExists(atPath: $0.1) }) {
                throw GraphError("\(existing.1) exists; not overwriting it (pass --overwrite)")
            }
            let exec = try Executor(graph, on: deviceOption.backend())
            let start = Date()
            let results = try exec.infer(feeds, outputs: targets.map(\.0))
            for (v, path) in targets {
                try NPY.write(results[v]!.values, shape: results[v]!.shape.dims, to: path, overwrite: overwrite)
                print("wrote \(path): \(graph[v].name) \(results[v]!.shape)")
            }
            printError(String(format: "loupe: ran %@ on %@ in %.3f s%@", modelOptions.model, exec.backend.name, Date().timeIntervalSince(start),
                              exec.splitCount > 0 ? " (batch split \(exec.splitCount) times to fit device memory)" : ""))
        }
    }
}

struct Grad: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Backpropagate from a unit, a channel, a class or any cotangent to the input, and write the gradient as .npy.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var deviceOption: DeviceOption
    @Option(name: .long, help: "[NAME=]x.npy, once per model input.") var input: [String] = []
    @Option(name: .long, help: "LAYER:C[:Y:X] — channel C of a layer's output (at one position, or summed over all), or class C of an [N, K] output.")
    var unit: String?
    @Option(name: .long, help: "A tensor to seed with --cotangent.") var at: String?
    @Option(name: .long, help: "The cotangent (.npy, the shape of --at).") var cotangent: String?
    @Option(name: .long, help: "ReLU backward rule: standard, guided or deconvnet.") var relu: String = "standard"
    @Option(name: .long, help: "Where to write the gradient w.r.t. the (first) input.") var output: String
    @Flag(help: "Replace the output file if it exists.") var overwrite = false

    func run() throws {
        try reportingErrors {
            guard let rule = ReLUBackwardRule(rawValue: relu) else { throw GraphError("unknown --relu '\(relu)': standard, guided or deconvnet") }
            if !overwrite && FileManager.default.fileExists(atPath: output) { throw GraphError("\(output) exists; not overwriting it (pass --overwrite)") }
            let graph = try modelOptions.load(batch: try batchOf(input))
            let feeds = try readInputs(input, for: graph)
            let (value, seed) = try seedFor(graph)
            let exec = try Executor(graph, on: deviceOption.backend())
            let dx = try exec.inputGradient(feeds, at: value, cotangent: seed, target: graph.inputs[0], rule: rule)
            try NPY.write(dx.values, shape: dx.shape.dims, to: output, overwrite: overwrite)
            print("wrote \(output): d<seed, \(graph[value].name)>/d\(graph[graph.inputs[0]].name) \(dx.shape), \(rule.rawValue) ReLU rule")
        }
    }

    private func seedFor(_ graph: Graph) throws -> (ValueID, HostTensor) {
        switch (unit, at, cotangent) {
        case (let unit?, nil, nil):
            let parts = unit.split(separator: ":").map(String.init)
            guard parts.count == 2 || parts.count == 4, let c = Int(parts[1]) else { throw GraphError("--unit must be LAYER:C or LAYER:C:Y:X, got '\(unit)'") }
            guard let v = graph.value(named: parts[0]), graph[v].dtype == .float32 else { throw GraphError("the model has no layer '\(parts[0])' (see `loupe info`)") }
            let s = graph[v].shape
            guard s.rank == 2 || s.rank == 4, c >= 0, c < s[1] else { throw GraphError("layer '\(parts[0])' \(s) has no channel \(c)") }
            var values = [Float](repeating: 0, count: s.count)
            let (h, w) = s.rank == 4 ? (s[2], s[3]) : (1, 1)
            var positions = (0..<(h * w)).map { $0 }
            if parts.count == 4 {
                guard let y = Int(parts[2]), let x = Int(parts[3]), (0..<h).contains(y), (0..<w).contains(x) else {
                    throw GraphError("layer '\(parts[0])' \(s) has no position (\(parts[2]), \(parts[3]))")
                }
                positions = [y * w + x]
            }
            for n in 0..<s[0] { for p in positions { values[(n * s[1] + c) * h * w + p] = 1 } }
            return (v, try HostTensor(shape: s, values: values))
        case (nil, let name?, let path?):
            guard let v = graph.value(named: name), graph[v].dtype == .float32 else { throw GraphError("the model has no tensor '\(name)'") }
            let (shape, values) = try NPY.read(path)
            guard Shape(shape) == graph[v].shape else { throw GraphError("\(path) has shape \(Shape(shape)); '\(name)' is \(graph[v].shape)") }
            return (v, try HostTensor(shape: Shape(shape), values: values))
        default:
            throw GraphError("give either --unit LAYER:C[:Y:X], or --at TENSOR with --cotangent g.npy")
        }
    }
}
