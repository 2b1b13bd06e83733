import CLBackend
import Foundation
import Graph
import ONNXProto
import XCTest

/// ONNX import and export against onnxruntime: `onnx_models.py` builds small models (every op and
/// attribute the importer supports, across opsets 7 to 21) into a temporary directory with fresh
/// random inputs and onnxruntime's outputs; the tests import and run them on both backends.
///
/// Bound: `relativeError <= 1e-5` (as in the conformance tests). Both sides compute in float32 in
/// different orders; the longest reductions here are a few hundred terms, whose rounding stays
/// near sqrt(n) * 2^-24 ~ 1e-6, while a wrong attribute reading (a pad on the other side, another
/// coordinate rule) moves outputs by order 1.
final class ONNXTests: XCTestCase {
    static let bound = 1e-5

    struct Manifest: Decodable {
        struct File: Decodable { let name: String; let file: String }
        struct Output: Decodable { let name: String; let file: String; let kind: String }
        struct Model: Decodable {
            let name: String
            let opset: Int
            let inputs: [File]?
            let outputs: [Output]?
            let refuse: [String]?
        }
        let seed: UInt64
        let models: [Model]
    }

    /// Calls `onnx_models.main(arguments)` (the script next to this file) in python3.
    @discardableResult
    static func onnxModels(_ arguments: [String]) throws -> String {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
        let list = arguments.map { "'\($0)'" }.joined(separator: ", ")
        return try runPython("import sys; sys.path.insert(0, '\(folder)'); import onnx_models; onnx_models.main([\(list)])")
    }

    /// The models, built once per test run.
    nonisolated(unsafe) static var fixtures: Result<(dir: String, manifest: Manifest), Error>?

    func models() throws -> (dir: String, manifest: Manifest) {
        if Self.fixtures == nil {
            Self.fixtures = Result {
                _ = try runPython("import onnx, onnxruntime, numpy", skippingOnFailure: "python3 with onnx, onnxruntime and numpy is needed (make test installs them)")
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-onnx-\(UUID().uuidString)").path
                let output = try Self.onnxModels([dir])
                let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json")))
                print("onnx_models.py: \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
                return (dir, manifest)
            }
        }
        return try Self.fixtures!.get()
    }

    private func backends() throws -> [Backend] {
        var list: [Backend] = [ReferenceBackend()]
        if let entry = try enumerateDevices().first { list.append(try OpenCLBackend(device: entry)) }
        return list
    }

    /// Runs `graph` on `backend` and returns each output as floats (switches as ONNX's flat indices).
    private func run(_ graph: Graph, on backend: Backend, _ inputs: [ValueID: [Float]]) throws -> [[Float]] {
        backend.poisonsNewTensors = true
        let exec = try Executor(graph, on: backend)
        var tensors: [ValueID: Tensor] = [:]
        for (v, values) in inputs { tensors[v] = try backend.tensor(values, shape: graph[v].shape) }
        let pass = try exec.forward(tensors)
        return try graph.outputs.map { v in
            guard graph[v].dtype == .int32 else { return try backend.read(pass[v]!) }
            // Loupe's switches count within a plane; ONNX's indices add the plane's offset.
            let pooled = graph[graph.nodes[graph.producer[v]!].inputs[0]].shape
            let out = graph[v].shape
            let per = out[2] * out[3]
            return try backend.readInts(pass[v]!).enumerated().map { i, s in Float((i / per) * pooled[2] * pooled[3] + Int(s)) }
        }
    }

    private func load(_ dir: String, _ file: String) throws -> [Float] { try NPY.read(dir + "/" + file).values }

    /// Imports every model, runs it on the reference and OpenCL backends, compares with onnxruntime.
    func testImportedModelsReproduceOnnxRuntime() throws {
        let (dir, manifest) = try models()
        let runnable = manifest.models.filter { $0.refuse == nil }
        XCTAssertGreaterThan(runnable.count, 60)
        let backends = try backends()
        var opsets: Set<Int> = []
        for m in runnable {
            opsets.insert(m.opset)
            let graph: Graph
            do {
                graph = try ONNX.importGraph(contentsOf: dir + "/\(m.name).onnx")
            } catch {
                XCTFail("\(m.name): \(error)")
                continue
            }
            var inputs: [ValueID: [Float]] = [:]
            for i in m.inputs ?? [] {
                guard let v = graph.value(named: i.name) else { XCTFail("\(m.name): no input '\(i.name)'"); continue }
                inputs[v] = try load(dir, i.file)
            }
            XCTAssertEqual(graph.outputs.map { graph[$0].name }, (m.outputs ?? []).map(\.name), m.name)
            for backend in backends {
                let results: [[Float]]
                do {
                    results = try run(graph, on: backend, inputs)
                } catch {
                    XCTFail("\(m.name) on \(backend.name): \(error)")
                    continue
                }
                for (out, actual) in zip(m.outputs ?? [], results) {
                    let expected = try load(dir, out.file)
                    if out.kind == "indices" {
                        XCTAssertEqual(actual, expected, "\(m.name) \(out.name) on \(backend.name): indices differ")
                    } else {
                        let err = actual.count == expected.count ? relativeError(actual, expected) : .infinity
                        XCTAssertLessThanOrEqual(err, Self.bound, "\(m.name) \(out.name) on \(backend.name) (seed \(manifest.seed)): relative error \(err)")
                    }
                }
            }
        }
        XCTAssertEqual(opsets.min(), 7)
        XCTAssertEqual(opsets.max(), 21)
    }

    /// Conv + BatchNormalization folding: fewer nodes, the same outputs (to rounding).
    func testBatchNormFoldingKeepsOutputs() throws {
        let (dir, manifest) = try models()
        let m = try XCTUnwrap(manifest.models.first { $0.name == "small_cnn_o13" })
        let path = dir + "/small_cnn_o13.onnx"
        let plain = try ONNX.importGraph(contentsOf: path)
        let folded = try ONNX.importGraph(contentsOf: path, options: ONNXImportOptions(foldBatchNorm: true))
        XCTAssertEqual(plain.nodes.filter { if case .batchNorm = $0.op { return true } else { return false } }.count, 2)
        XCTAssertFalse(folded.nodes.contains { if case .batchNorm = $0.op { return true } else { return false } })
        XCTAssertEqual(folded.nodes.count, plain.nodes.count - 2)
        let x = try load(dir, m.inputs![0].file)
        let results = try run(folded, on: ReferenceBackend(), [folded.inputs[0]: x])
        for (out, actual) in zip(m.outputs!, results) {
            let err = relativeError(actual, try load(dir, out.file))
            XCTAssertLessThanOrEqual(err, Self.bound, "folded \(out.name): relative error \(err)")
        }
    }

    /// A model's float initializers load by name into the graph imported from it.
    func testInitializersLoadAsWeights() throws {
        let (dir, _) = try models()
        let path = dir + "/small_cnn_o13.onnx"
        let graph = try ONNX.importGraph(contentsOf: path)
        let weights = try ONNX.initializers(contentsOf: path)
        XCTAssertEqual(weights.count, 13)
        let report = try graph.loadWeights(weights)
        XCTAssertEqual(Set(report.loaded), Set(graph.parameters.map { graph[$0].name }))
        XCTAssertTrue(report.unexpected.isEmpty && report.missing.isEmpty, "\(report)")
    }

    /// Every model the importer must refuse gives one line naming the node and op (or the opset).
    func testUnsupportedModelsAreRefusedByName() throws {
        let (dir, manifest) = try models()
        let refused = manifest.models.filter { $0.refuse != nil }
        XCTAssertGreaterThanOrEqual(refused.count, 9)
        for m in refused {
            XCTAssertThrowsError(try ONNX.importGraph(contentsOf: dir + "/\(m.name).onnx"), m.name) { error in
                guard let e = error as? ONNXError else { return XCTFail("\(m.name): \(error) is not an ONNXError") }
                for s in m.refuse! { XCTAssertTrue(e.description.contains(s), "\(m.name): '\(e)' does not mention '\(s)'") }
                XCTAssertFalse(e.description.contains("\n"), "\(m.name): the error is not one line")
            }
        }
    }

    private func assertOneLineError(_ data: Data, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try ONNX.importGraph(data)
            XCTFail("\(what): imported", file: file, line: line)
        } catch let e as ONNXError {
            XCTAssertFalse(e.description.isEmpty || e.description.contains("\n"), "\(what): '\(e)'", file: file, line: line)
        } catch {
            XCTFail("\(what): \(error) is not an ONNXError", file: file, line: line)
        }
    }

    func testMalformedAndTruncatedFilesGiveOneLineErrors() throws {
        let (dir, _) = try models()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/small_cnn_o13.onnx"))
        assertOneLineError(Data(), "an empty file")
        assertOneLineError(Data("not a model at all, just some text\n".utf8), "a text file")
        assertOneLineError(Data((0..<512).map { _ in UInt8.random(in: 0...255) }), "random bytes")
        for cut in [1, 2, 7, bytes.count / 3, bytes.count / 2, bytes.count - 2, bytes.count - 1] {
            assertOneLineError(bytes.prefix(cut), "the model truncated to \(cut) of \(bytes.count) bytes")
        }
        XCTAssertThrowsError(try ONNX.importGraph(contentsOf: dir + "/no-such-file.onnx")) { error in
            XCTAssertTrue("\(error)".contains("no-such-file.onnx"), "\(error)")
        }
    }

    /// Draws in `0..<bound` from SplitMix64 with its own bounded draw, so one seed gives the
    /// same mutants on every platform and toolchain (see docs/FUZZING.md).
    private struct Draw {
        var rng: SeededGenerator
        mutating func below(_ bound: Int) -> Int { Int(rng.next() % UInt64(bound)) }
        mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }
    }

    private static let edgeInts: [Int64] = [0, 1, 2, 3, -1, -2, 1 << 20, 1 << 31, 1 << 40, Int64.max, Int64.min]
    private static let edgeFloats: [Float] = [0, -1, 1e-30, 1e30, .infinity, -.infinity, .nan]

    /// One edit of the decoded model where the importer's checks of meaning live: an attribute value,
    /// a tensor's dims or data type, a node's op type or inputs, the opset.
    private static func mutateStructure(_ m: inout Onnx_ModelProto, _ d: inout Draw) {
        guard !m.graph.node.isEmpty else { return }
        let n = d.below(m.graph.node.count)
        switch d.below(7) {
        case 0 where !m.graph.node[n].attribute.isEmpty:
            let a = d.below(m.graph.node[n].attribute.count)
            var attr = m.graph.node[n].attribute[a]
            switch attr.type {
            case .int: attr.i = d.pick(edgeInts)
            case .ints where !attr.ints.isEmpty: attr.ints[d.below(attr.ints.count)] = d.pick(edgeInts)
            case .float: attr.f = d.pick(edgeFloats)
            case .floats where !attr.floats.isEmpty: attr.floats[d.below(attr.floats.count)] = d.pick(edgeFloats)
            case .string: attr.s = Data(d.pick(["", "SAME_UPPER", "VALID", "nearest", "linear", "cubic", "asymmetric", "half_pixel", "reflect"]).utf8)
            default: attr.type = d.pick([.int, .ints, .float, .string, .tensor, .undefined])
            }
            m.graph.node[n].attribute[a] = attr
        case 1 where !m.graph.node[n].attribute.isEmpty:
            m.graph.node[n].attribute.remove(at: d.below(m.graph.node[n].attribute.count))
        case 2 where !m.graph.initializer.isEmpty:
            let t = d.below(m.graph.initializer.count)
            if m.graph.initializer[t].dims.isEmpty || d.below(3) == 0 {
                m.graph.initializer[t].dims.append(d.pick([0, 1, 2, -1]))
            } else {
                m.graph.initializer[t].dims[d.below(m.graph.initializer[t].dims.count)] = d.pick(edgeInts)
            }
        case 3 where !m.graph.initializer.isEmpty:
            m.graph.initializer[d.below(m.graph.initializer.count)].dataType = Int32(d.pick([0, 1, 6, 7, 9, 10, 11, 99]))
        case 4:
            m.graph.node[n].opType = d.pick(["Conv", "ConvTranspose", "MaxPool", "AveragePool", "Gemm", "MatMul", "Add", "Sum", "Mul", "Concat",
                                             "Flatten", "Reshape", "Softmax", "BatchNormalization", "LRN", "Dropout", "Pad", "Resize",
                                             "Upsample", "MaxUnpool", "Constant", "Identity", "Transpose", "GlobalMaxPool"])
        case 5:
            var inputs = m.graph.node[n].input
            if !inputs.isEmpty && d.below(2) == 0 { inputs.remove(at: d.below(inputs.count)) } else {
                inputs.append(d.pick(["", m.graph.initializer.first?.name ?? "x", m.graph.input.first?.name ?? "x", "nowhere"]))
            }
            m.graph.node[n].input = inputs
        default:
            m.opsetImport[0].version = Int64(d.below(26))
        }
    }

    /// Seeded mutations of valid models: raw byte edits (bit flips, truncations, overwritten,
    /// deleted or repeated runs) and structural edits of the decoded model. Import either succeeds
    /// or throws a one-line ONNXError; a crash ends the test process. docs/FUZZING.md says more.
    func testMutatedModelsNeverCrashTheImporter() throws {
        let (dir, _) = try models()
        let seed = try fuzzSetting("LOUPE_FUZZ_SEED", default: 0x4F4E_4E58)
        let iterations = Int(clamping: try fuzzSetting("LOUPE_FUZZ_ITERATIONS", default: 2000))
        let corpus = try ["small_cnn_o13", "gemm_transA_B_input_o9", "resize_linear_axes_o18", "pad_inputs_o11", "maxunpool_output_shape_o11",
                          "convt_output_shape_o11", "softmax_coerced_o7", "upsample_o7", "reshape_constant_o14", "conv_same_lower_o11"]
            .map { try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/\($0).onnx"))) }
        let current = dir + "/current-input.onnx"
        print("fuzz ONNX: seed 0x\(String(seed, radix: 16)) (LOUPE_FUZZ_SEED), \(iterations) inputs (LOUPE_FUZZ_ITERATIONS); should the importer crash, the input it was reading is \(current)")
        var d = Draw(rng: SeededGenerator(seed: seed))
        var imported = 0, refused = 0
        for iteration in 0..<iterations {
            var b = d.pick(corpus)
            switch d.below(5) {
            case 0:
                for _ in 0...d.below(8) { b[d.below(b.count)] ^= 1 << UInt8(d.below(8)) }
            case 1:
                b = Array(b.prefix(d.below(b.count)))
            case 2:
                let at = d.below(b.count)
                for i in at..<min(b.count, at + 1 + d.below(16)) { b[i] = UInt8(d.below(256)) }
            case 3:
                let at = d.below(b.count), end = min(b.count, at + 1 + d.below(32))
                if d.below(2) == 0 { b.removeSubrange(at..<end) } else { b.insert(contentsOf: b[at..<end], at: at) }
            default:
                var m = try Onnx_ModelProto(serializedBytes: b)
                for _ in 0...d.below(3) { Self.mutateStructure(&m, &d) }
                b = try m.serializedBytes()
            }
            try Data(b).write(to: URL(fileURLWithPath: current))
            do {
                _ = try ONNX.importGraph(Data(b))
                imported += 1
            } catch let e as ONNXError {
                XCTAssertFalse(e.description.contains("\n"), "input \(iteration), seed \(seed): '\(e)'")
                refused += 1
            } catch {
                XCTFail("input \(iteration), seed 0x\(String(seed, radix: 16)): \(error) is not an ONNXError; input (base64) \(Data(b).base64EncodedString())")
            }
        }
        print("fuzz ONNX: \(iterations) inputs tried, \(imported) imported, \(refused) refused with ONNXError, no crash")
        XCTAssertGreaterThan(refused, 0)
        XCTAssertGreaterThan(imported, 0)
    }

    // MARK: Export

    /// A graph built in Loupe over every op the exporter writes.
    private func loupeNet(_ rng: inout SeededGenerator) throws -> (Graph, ValueID) {
        let g = Graph()
        let x = try g.input("x", shape: [2, 3, 10, 10])
        var h = try g.conv(x, 6, kernel: 3, padding: 1, name: "conv1", rng: &rng)
        h = try g.batchNorm(h, name: "bn1")
        h = try g.relu(h, name: "relu1")
        let pooled = try g.add(.maxPool2d(MaxPool2D(window: Window2D(kernel: 2, stride: 2))), [h], name: "pool1")
        h = try g.apply(.maxUnpool2d(MaxPool2D(window: Window2D(kernel: 2, stride: 2)), outputShape: [2, 6, 10, 10]), pooled, name: "unpool1")
        h = try g.avgPool(h, kernel: 3, stride: 2, padding: 1, countIncludePad: false, name: "avg1")
        let wt = try g.parameter("up.weight", shape: [6, 4, 3, 3], values: (0..<216).map { _ in Float.random(in: -0.3...0.3, using: &rng) })
        h = try g.apply(.convTranspose2d(ConvTranspose2D(window: Window2D(kernel: 3, stride: 2, padding: 1), outputPadding: (1, 1))), [h, wt], name: "up")
        h = try g.apply(.localResponseNorm(LocalResponseNorm(size: 3, alpha: 0.01, beta: 0.75, k: 2)), [h], name: "lrn")
        h = try g.apply(.activation(.leakyRelu(slope: 0.1)), [h], name: "leaky")
        h = try g.apply(.pad(ConstantPad2D(top: 1, left: 0, bottom: 0, right: 1, value: 0.5)), [h], name: "pad")
        let bilinear = try g.apply(.resizeBilinear(BilinearResize(height: 8, width: 8)), [h], name: "bilinear")
        let corners = try g.apply(.resizeBilinear(BilinearResize(height: 8, width: 8, alignCorners: true)), [h], name: "corners")
        let nearest = try g.apply(.resizeNearest(NearestResize(height: 16, width: 16)), [bilinear], name: "nearest")
        let down = try g.maxPool(nearest, kernel: 2, stride: 2, name: "pool2")
        h = try g.apply(.concat, [bilinear, down, corners], name: "cat")
        h = try g.apply(.globalAvgPool, [h], name: "gap")
        h = try g.apply(.flatten, [h], name: "flat")
        let a = try g.linear(h, 5, name: "fc1", rng: &rng)
        let b = try g.linear(h, 5, bias: false, name: "fc2", rng: &rng)
        h = try g.apply(.axpby(alpha: 0.5, beta: 2), [a, b], name: "mix")
        h = try g.apply(.add, [h, a, b], name: "sum")
        h = try g.apply(.dropout, [h], name: "drop")
        h = try g.apply(.identity, [h], name: "id")
        h = try g.apply(.reshape([5, 2]), [h], name: "rows")
        h = try g.apply(.transpose, [h], name: "t")
        let p = try g.apply(.softmax(log: false), [h], name: "prob")
        g.markOutput(p)
        g.markOutput(a)
        for v in g.parameters where g.parameterValues[v]!.allSatisfy({ $0 == 0 || $0 == 1 }) {
            let n = g[v].shape.count
            g.parameterValues[v] = g[v].name.hasSuffix("running_var") ? (0..<n).map { _ in Float.random(in: 0.5...1.5, using: &rng) }
                : (0..<n).map { _ in Float.random(in: -0.5...0.5, using: &rng) }
        }
        return (g, x)
    }

    /// Loupe-built graphs exported at opsets 13 and 21: onnxruntime reproduces Loupe's outputs,
    /// and importing the file gives back the same parameters and the same outputs.
    func testExportedGraphsReproduceInOnnxRuntimeAndRoundTrip() throws {
        _ = try models()
        var rng = SeededGenerator(seed: UInt64.random(in: 0...UInt64(UInt32.max)))
        let (g, x) = try loupeNet(&rng)
        let input = (0..<g[x].shape.count).map { _ in Float.random(in: -1...1, using: &rng) }
        let loupe = try run(g, on: ReferenceBackend(), [x: input])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-onnx-export-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try NPY.write(input, shape: g[x].shape.dims, to: dir + "/x.npy")
        for opset in [13, 21] {
            let path = dir + "/loupe_o\(opset).onnx"
            try ONNX.write(g, to: path, opset: opset)
            try Self.onnxModels(["--run", path, dir + "/ort_o\(opset)", dir + "/x.npy"])
            for (k, ours) in loupe.enumerated() {
                let theirs = try load(dir, "ort_o\(opset).out\(k).npy")
                let err = relativeError(theirs, ours)
                XCTAssertLessThanOrEqual(err, Self.bound, "opset \(opset) output \(k): onnxruntime differs from Loupe by \(err)")
            }
            let back = try ONNX.importGraph(contentsOf: path)
            XCTAssertEqual(back.outputs.map { back[$0].name }, g.outputs.map { g[$0].name })
            for p in g.parameters {
                XCTAssertEqual(back.value(named: g[p].name).flatMap { back.parameterValues[$0] }, g.parameterValues[p], "parameter \(g[p].name)")
            }
            let again = try run(back, on: ReferenceBackend(), [back.inputs[0]: input])
            for (k, (ours, reimported)) in zip(loupe, again).enumerated() {
                XCTAssertLessThanOrEqual(relativeError(reimported, ours), 1e-6, "opset \(opset) output \(k) after the round trip")
            }
        }
        XCTAssertThrowsError(try ONNX.export(g, opset: 12)) { XCTAssertTrue("\($0)".contains("12"), "\($0)") }
    }

    /// Switches that leave the graph have no ONNX form; export says so and names the node.
    func testExportRefusesSwitchesAsOutputs() throws {
        let g = Graph()
        let x = try g.input("x", shape: [1, 2, 4, 4])
        let outs = try g.add(.maxPool2d(MaxPool2D(window: Window2D(kernel: 2, stride: 2))), [x], name: "pool")
        g.setOutputs(outs)
        XCTAssertThrowsError(try ONNX.export(g)) { XCTAssertTrue("\($0)".contains("pool"), "\($0)") }
    }
}
