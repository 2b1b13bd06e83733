import CLBackend
import Foundation
import ONNXProto
import SwiftProtobuf

extension ONNX {
    /// The opsets export writes: every op it emits has the same signature from 13 through 21.
    public static let exportOpsets = 13...21

    /// Serializes `graph` as an ONNX `ModelProto` of the default domain at `opset`, with the
    /// parameters as float32 initializers (`parameterValues`, e.g. trained weights, or else the
    /// graph's own). Importing the result gives back the same ops on the same values.
    ///
    /// Refused: max-pool switches that leave the graph (ONNX's indices are flat int64, Loupe's
    /// per-plane int32) or feed anything but a max unpool of the pooled shape, a convolution in
    /// ceil mode, and a nearest resize whose ONNX reading `floor(dst / scale)` would pick other
    /// inputs than Loupe's `dst * in / out`.
    public static func export(_ graph: Graph, opset: Int = 13, parameterValues: [ValueID: [Float]]? = nil) throws -> Data {
        let bytes: [UInt8] = try ONNXExporter(graph, opset: opset, parameterValues: parameterValues ?? graph.parameterValues).model().serializedBytes()
        return Data(bytes)
    }

    /// Writes `export(graph, ...)` to `path`; refuses to replace an existing file unless `overwrite` is set.
    public static func write(_ graph: Graph, to path: String, opset: Int = 13, parameterValues: [ValueID: [Float]]? = nil,
                             overwrite: Bool = false) throws {
        if !overwrite && FileManager.default.fileExists(atPath: path) {
            throw ONNXError("\(path) exists; not overwriting it (pass overwrite to replace it)")
        }
        let data = try export(graph, opset: opset, parameterValues: parameterValues)
        guard FileManager.default.createFile(atPath: path, contents: data) else { throw ONNXError("cannot write \(path)") }
    }

    /// The lowest IR version that carries each opset (onnx's version table).
    static func irVersion(for opset: Int) -> Int64 {
        switch opset {
        case ...14: return 7
        case 15...18: return 8
        case 19...20: return 9
        default: return 10
        }
    }
}

private final class ONNXExporter {
    let graph: Graph
    let opset: Int
    let parameterValues: [ValueID: [Float]]
    private var nodes: [Onnx_NodeProto] = []
    private var initializers: [Onnx_TensorProto] = []
    private var usedNames: Set<String>
    private var readers: [ValueID: [Int]] = [:]

    init(_ graph: Graph, opset: Int, parameterValues: [ValueID: [Float]]) throws {
        guard ONNX.exportOpsets.contains(opset) else {
            throw ONNXError("export writes opsets \(ONNX.exportOpsets.lowerBound) to \(ONNX.exportOpsets.upperBound), not \(opset)")
        }
        self.graph = graph
        self.opset = opset
        self.parameterValues = parameterValues
        usedNames = Set(graph.values.map(\.name))
        for (i, node) in graph.nodes.enumerated() { for v in node.inputs { readers[v, default: []].append(i) } }
    }

    func model() throws -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.name = "loupe"
        for v in graph.inputs { g.input.append(try valueInfo(v)) }
        for p in graph.parameters {
            guard let values = parameterValues[p], values.count == graph[p].shape.count else {
                throw ONNXError("parameter '\(graph[p].name)' \(graph[p].shape) has no values of that size to export")
            }
            initializers.append(Self.tensor(graph[p].name, dims: graph[p].shape.dims, floats: values))
        }
        for (i, node) in graph.nodes.enumerated() { try export(node, index: i) }
        for v in graph.outputs {
            guard graph[v].dtype == .float32 else {
                throw ONNXError("output '\(graph[v].name)' holds max-pool switches (per-plane int32), which have no ONNX equivalent")
            }
            g.output.append(try valueInfo(v))
        }
        g.node = nodes
        g.initializer = initializers
        var m = Onnx_ModelProto()
        m.irVersion = ONNX.irVersion(for: opset)
        m.producerName = "Loupe"
        var set = Onnx_OperatorSetIdProto()
        set.domain = ""
        set.version = Int64(opset)
        m.opsetImport = [set]
        m.graph = g
        return m
    }

    private func valueInfo(_ v: ValueID) throws -> Onnx_ValueInfoProto {
        var t = Onnx_TypeProto.Tensor()
        t.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.shape.dim = graph[v].shape.dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            dim.dimValue = Int64(d)
            return dim
        }
        var info = Onnx_ValueInfoProto()
        info.name = graph[v].name
        info.type.tensorType = t
        return info
    }

    static func tensor(_ name: String, dims: [Int], floats: [Float]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map(Int64.init)
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        var raw = Data(capacity: floats.count * 4)
        for f in floats { withUnsafeBytes(of: f.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
        t.rawData = raw
        return t
    }

    /// A fresh name for a value export makes (shapes, scalars, intermediate products).
    private func freshName(_ base: String) -> String {
        var name = base, k = 1
        while usedNames.contains(name) {
            name = "\(base)_\(k)"
            k += 1
        }
        usedNames.insert(name)
        return name
    }

    private func constantInts(_ base: String, _ values: [Int]) -> String {
        let name = freshName(base)
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = [Int64(values.count)]
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.int64Data = values.map(Int64.init)
        initializers.append(t)
        return name
    }

    private func constantScalar(_ base: String, _ value: Float) -> String {
        let name = freshName(base)
        initializers.append(Self.tensor(name, dims: [], floats: [value]))
        return name
    }

    private func append(_ opType: String, _ name: String, _ inputs: [String], _ outputs: [String], _ attributes: [Onnx_AttributeProto] = []) {
        var n = Onnx_NodeProto()
        n.opType = opType
        n.name = name
        n.input = inputs
        n.output = outputs
        n.attribute = attributes
        nodes.append(n)
    }

    private func attr(_ name: String, ints: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = ints.map(Int64.init)
        return a
    }

    private func attr(_ name: String, int: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = Int64(int)
        return a
    }

    private func attr(_ name: String, float: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = float
        return a
    }

    private func attr(_ name: String, string: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .string
        a.s = Data(string.utf8)
        return a
    }

    private func windowAttributes(_ w: Window2D, dilations: Bool = true) -> [Onnx_AttributeProto] {
        var a = [attr("kernel_shape", ints: [w.kernelH, w.kernelW]), attr("strides", ints: [w.strideH, w.strideW]),
                 attr("pads", ints: [w.padTop, w.padLeft, w.padBottom, w.padRight])]
        if dilations { a.append(attr("dilations", ints: [w.dilationH, w.dilationW])) }
        return a
    }

    /// Switches may only feed max unpools; anything else has no ONNX counterpart.
    private func switchesReaders(_ node: Node) throws -> Bool {
        let s = node.outputs[1]
        let fail = ONNXError("node '\(node.name)' (\(node.op.name)): its switches leave the graph or feed something other than a max unpool; ONNX's flat int64 indices differ from Loupe's per-plane switches")
        if graph.outputs.contains(s) { throw fail }
        let users = readers[s] ?? []
        for u in users {
            guard case .maxUnpool2d = graph.nodes[u].op, graph.nodes[u].inputs[1] == s else { throw fail }
        }
        return !users.isEmpty
    }

    private func export(_ node: Node, index: Int) throws {
        let names = node.inputs.map { graph[$0].name }
        let outs = node.outputs.map { graph[$0].name }
        let fail = { (m: String) in ONNXError("node '\(node.name)' (\(node.op.name)): \(m)") }
        switch node.op {
        case .conv2d(let c):
            guard !c.window.ceilMode else { throw fail("ONNX's Conv has no ceil mode") }
            append("Conv", node.name, names, outs, windowAttributes(c.window) + [attr("group", int: c.groups)])
        case .convTranspose2d(let c):
            append("ConvTranspose", node.name, names, outs,
                   windowAttributes(c.window) + [attr("group", int: c.groups), attr("output_padding", ints: [c.outputPaddingH, c.outputPaddingW])])
        case .maxPool2d(let p):
            let withIndices = try switchesReaders(node)
            append("MaxPool", node.name, names, withIndices ? outs : [outs[0]],
                   windowAttributes(p.window) + [attr("ceil_mode", int: p.window.ceilMode ? 1 : 0)])
        case .maxUnpool2d(let p, let shape):
            guard let pool = graph.producer[node.inputs[1]], graph[graph.nodes[pool].inputs[0]].shape == shape else {
                throw fail("the unpooled shape \(shape) must be the shape its max pool pooled")
            }
            guard !p.windowsOverlap(shape) else {
                throw fail("overlapping pool windows: ONNX's MaxUnpool writes a shared maximum once, Loupe's unpooling adds it per window")
            }
            append("MaxUnpool", node.name, names + [constantInts("\(node.name).output_shape", shape.dims)], outs, windowAttributes(p.window, dilations: false))
        case .avgPool2d(let p):
            append("AveragePool", node.name, names, outs, windowAttributes(p.window, dilations: false)
                   + [attr("ceil_mode", int: p.window.ceilMode ? 1 : 0), attr("count_include_pad", int: p.countIncludePad ? 1 : 0)])
        case .globalAvgPool:
            append("GlobalAveragePool", node.name, names, outs)
        case .globalMaxPool:
            guard try !switchesReaders(node) else { throw fail("ONNX's GlobalMaxPool has no indices output") }
            append("GlobalMaxPool", node.name, names, [outs[0]])
        case .activation(.relu):
            append("Relu", node.name, names, outs)
        case .activation(.leakyRelu(let slope)):
            append("LeakyRelu", node.name, names, outs, [attr("alpha", float: slope)])
        case .linear:
            append("Gemm", node.name, names, outs, [attr("transB", int: 1)])
        case .add:
            append(names.count == 2 ? "Add" : "Sum", node.name, names, outs)
        case .axpby(let alpha, let beta):
            // alpha * a + beta * b; with beta 0 only the first product.
            let a = beta == 0 ? outs[0] : freshName("\(node.name)/a")
            append("Mul", beta == 0 ? node.name : "\(node.name)/a", [names[0], constantScalar("\(node.name).alpha", alpha)], [a])
            if beta != 0 {
                let b = freshName("\(node.name)/b")
                append("Mul", "\(node.name)/b", [names[1], constantScalar("\(node.name).beta", beta)], [b])
                append("Add", node.name, [a, b], outs)
            }
        case .concat:
            append("Concat", node.name, names, outs, [attr("axis", int: 1)])
        case .flatten:
            append("Flatten", node.name, names, outs, [attr("axis", int: 1)])
        case .reshape(let s):
            append("Reshape", node.name, names + [constantInts("\(node.name).shape", s.dims)], outs)
        case .softmax(let log):
            append(log ? "LogSoftmax" : "Softmax", node.name, names, outs, [attr("axis", int: 1)])
        case .batchNorm(let eps):
            append("BatchNormalization", node.name, names, outs, [attr("epsilon", float: eps)])
        case .localResponseNorm(let l):
            append("LRN", node.name, names, outs,
                   [attr("size", int: l.size), attr("alpha", float: l.alpha), attr("beta", float: l.beta), attr("bias", float: l.k)])
        case .resizeBilinear(let b):
            let s = graph[node.inputs[0]].shape
            append("Resize", node.name, [names[0], "", "", constantInts("\(node.name).sizes", [s[0], s[1], b.height, b.width])], outs,
                   [attr("mode", string: "linear"), attr("coordinate_transformation_mode", string: b.alignCorners ? "align_corners" : "half_pixel")])
        case .resizeNearest(let n):
            let s = graph[node.inputs[0]].shape
            for (i, o) in [(s[2], n.height), (s[3], n.width)] where !ONNXImporter.nearestAgrees(inLength: i, outLength: o, scale: Float(o) / Float(i)) {
                throw fail("resizing \(i) to \(o) picks other inputs under ONNX's floor(dst / scale) than Loupe's dst * in / out")
            }
            append("Resize", node.name, [names[0], "", "", constantInts("\(node.name).sizes", [s[0], s[1], n.height, n.width])], outs,
                   [attr("mode", string: "nearest"), attr("coordinate_transformation_mode", string: "asymmetric"), attr("nearest_mode", string: "floor")])
        case .pad(let p):
            append("Pad", node.name, [names[0], constantInts("\(node.name).pads", [0, 0, p.top, p.left, 0, 0, p.bottom, p.right]),
                                      constantScalar("\(node.name).value", p.value)], outs, [attr("mode", string: "constant")])
        case .transpose:
            append("Transpose", node.name, names, outs, [attr("perm", ints: [1, 0])])
        case .dropout:
            append("Dropout", node.name, names, outs)
        case .identity:
            append("Identity", node.name, names, outs)
        }
    }
}
