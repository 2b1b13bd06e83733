import CLBackend
import Foundation
import ONNXProto
import SwiftProtobuf

/// An ONNX model Loupe cannot read or write, in one line: the file, or the node's name and op type,
/// and what is wrong or unsupported.
public struct ONNXError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ d: String) { description = d.split(whereSeparator: \.isNewline).joined(separator: " ") }
}

public struct ONNXImportOptions: Sendable {
    /// Shapes for graph inputs, by name: required where the file leaves a dimension symbolic
    /// (`dim_param`), and otherwise replacing the declared shape.
    public var inputShapes: [String: Shape]
    /// Fold each `BatchNormalization` that is the only reader of a `Conv` with constant weights into
    /// that convolution: `w' = w * g`, `b' = (b - mean) * g + shift`, `g = scale / sqrt(var + eps)`,
    /// computed in Float64 and rounded once to float32. The folded model equals the unfolded one up
    /// to that rounding. Off by default, so that the imported graph mirrors the file node for node.
    public var foldBatchNorm: Bool

    public init(inputShapes: [String: Shape] = [:], foldBatchNorm: Bool = false) {
        self.inputShapes = inputShapes
        self.foldBatchNorm = foldBatchNorm
    }
}

/// ONNX model import and export (the `onnx.proto` schema, compiled in `ONNXProto`).
///
/// Import reads opsets 7 through 21 of the default domain, op by op as the ONNX operator spec
/// defines each version: every attribute is read and checked, and anything Loupe cannot compute
/// exactly (an op, an attribute value, an opset, a data type) is refused with an `ONNXError` naming
/// the node and its op type. Nothing is silently dropped. Initializers become parameters; `Constant`
/// outputs are constants folded into the ops that read them (a shape, pads, scales) or parameters
/// where a node reads them as data. MaxPool's `Indices` become Loupe's int32 switches, which count
/// within one plane (`h * W + w`); ONNX's flat indices add `(n * C + c) * H * W`.
public enum ONNX {
    /// The default-domain opsets import accepts.
    public static let importOpsets = 7...21

    public static func importGraph(contentsOf path: String, options: ONNXImportOptions = .init()) throws -> Graph {
        guard let data = FileManager.default.contents(atPath: path) else { throw ONNXError("\(path): cannot read the file") }
        do {
            return try importGraph(data, options: options)
        } catch let e as ONNXError {
            throw ONNXError("\(path): \(e.description)")
        }
    }

    /// Imports a serialized `ModelProto`.
    public static func importGraph(_ data: Data, options: ONNXImportOptions = .init()) throws -> Graph {
        try ONNXImporter(decode(data), options: options).run()
    }

    /// The float32 initializers of a model file by name, e.g. weights for a zoo model through
    /// `Graph.loadWeights`; integer initializers (shapes, pads) are left out.
    public static func initializers(contentsOf path: String) throws -> [String: NamedTensor] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ONNXError("\(path): cannot read the file") }
        do {
            var named: [String: NamedTensor] = [:]
            for t in try decode(data).graph.initializer {
                let c = try ConstantTensor(t, what: "initializer '\(t.name)'")
                if let floats = c.floats { named[t.name] = NamedTensor(shape: c.dims, values: floats) }
            }
            return named
        } catch let e as ONNXError {
            throw ONNXError("\(path): \(e.description)")
        }
    }

    private static func decode(_ data: Data) throws -> Onnx_ModelProto {
        do {
            return try Onnx_ModelProto(serializedBytes: data)
        } catch let e as BinaryDecodingError {
            throw ONNXError("not an ONNX model: the protobuf is \(describe(e)) (\(data.count) bytes)")
        }
    }

    private static func describe(_ e: BinaryDecodingError) -> String {
        switch e {
        case .truncated: return "truncated"
        case .invalidUTF8: return "malformed (a string is not UTF-8)"
        case .messageDepthLimit: return "nested too deeply"
        case .missingRequiredFields: return "missing required fields"
        default: return "malformed"
        }
    }
}

/// A tensor known when the model is read: an initializer or a `Constant` output.
struct ConstantTensor {
    var dims: [Int]
    /// Float data, or integer (int64, int32, bool) data widened to Int64.
    var floats: [Float]?
    var ints: [Int64]?
    var count: Int { floats?.count ?? ints?.count ?? 0 }

    /// Limits that keep every size computation far from overflow.
    static let maxElements = 1 << 36
    static let maxDim = 1 << 31

    static func checkedCount(_ dims: [Int]) -> Int? {
        var n = 1
        for d in dims {
            guard d >= 0, d <= maxDim else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= maxElements else { return nil }
            n = p
        }
        return n
    }

    init(dims: [Int], floats: [Float]) { self.dims = dims; self.floats = floats }
    init(dims: [Int], ints: [Int64]) { self.dims = dims; self.ints = ints }

    /// The same elements under other dimensions of equal count.
    func reshaped(_ newDims: [Int]) -> ConstantTensor {
        var c = self
        c.dims = newDims
        return c
    }

    /// Decodes `t` (float32 as floats; int64, int32 and bool as integers); `what` names it in errors.
    init(_ t: Onnx_TensorProto, what: String) throws {
        guard t.dataLocation != .external, t.externalData.isEmpty else {
            throw ONNXError("\(what) keeps its data in an external file, which Loupe does not read")
        }
        guard !t.hasSegment else { throw ONNXError("\(what) is a segment of a larger tensor, which Loupe does not read") }
        let dims = t.dims.map { Int($0) }
        guard let count = Self.checkedCount(dims) else { throw ONNXError("\(what) has an impossible shape \(t.dims)") }
        func raw<T>(_ width: Int, _ convert: (UnsafeRawBufferPointer, Int) -> T) throws -> [T] {
            guard t.rawData.count == count * width else {
                throw ONNXError("\(what): shape \(dims) needs \(count * width) bytes of raw data, the tensor has \(t.rawData.count)")
            }
            return t.rawData.withUnsafeBytes { bytes in (0..<count).map { convert(bytes, $0 * width) } }
        }
        func typed<T>(_ values: [T]) throws -> [T] {
            guard values.count == count else { throw ONNXError("\(what): shape \(dims) needs \(count) values, the tensor has \(values.count)") }
            return values
        }
        self.dims = dims
        switch Onnx_TensorProto.DataType(rawValue: Int(t.dataType)) {
        case .float:
            floats = t.hasRawData
                ? try raw(4) { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt32.self))) }
                : try typed(t.floatData)
        case .int64:
            ints = t.hasRawData ? try raw(8) { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int64.self)) } : try typed(t.int64Data)
        case .int32:
            ints = t.hasRawData ? try raw(4) { Int64(Int32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int32.self))) }
                : try typed(t.int32Data).map(Int64.init)
        case .bool:
            ints = t.hasRawData ? try raw(1) { Int64($0[$1] != 0 ? 1 : 0) } : try typed(t.int32Data).map { $0 != 0 ? 1 : 0 }
        default:
            let name = Onnx_TensorProto.DataType(rawValue: Int(t.dataType)).map { "\($0)" } ?? "\(t.dataType)"
            throw ONNXError("\(what) has data type \(name); Loupe reads float32 data and int64/int32/bool shapes and flags")
        }
    }
}

extension MaxPool2D {
    /// Whether two windows over `input` can share an element (then an unpooled maximum that both
    /// windows picked is written once by ONNX's MaxUnpool and added twice by Loupe's).
    func windowsOverlap(_ input: Shape) -> Bool {
        let w = window
        let spanH = w.dilationH * (w.kernelH - 1) + 1, spanW = w.dilationW * (w.kernelW - 1) + 1
        let rows = input.rank == 4 ? (try? w.outputSize(h: input[2], w: input[3], op: "maxPool2d")) : nil
        let overlapH = w.strideH < spanH && (rows?.h ?? 2) > 1, overlapW = w.strideW < spanW && (rows?.w ?? 2) > 1
        return overlapH || overlapW
    }
}

/// One node being imported: its attributes, each marked as read when a handler reads it, so
/// that an attribute no handler reads is refused rather than ignored.
final class NodeReader {
    let proto: Onnx_NodeProto
    /// A unique name for the Loupe nodes made from it.
    let name: String
    let opType: String
    let opset: Int
    private var attributes: [String: Onnx_AttributeProto] = [:]
    private var read: Set<String> = []
    /// How ONNX names this node in messages.
    let label: String

    init(_ proto: Onnx_NodeProto, index: Int, uniqueName: String, opset: Int) throws {
        self.proto = proto
        self.opType = proto.opType
        self.opset = opset
        name = uniqueName
        label = proto.name.isEmpty ? "node #\(index) (\(proto.opType))" : "node '\(proto.name)' (\(proto.opType))"
        for a in proto.attribute {
            guard attributes[a.name] == nil else { throw error("attribute '\(a.name)' is given twice") }
            guard !a.hasRefAttrName else { throw error("attribute '\(a.name)' refers to a function attribute, which Loupe does not support") }
            attributes[a.name] = a
        }
    }

    func error(_ message: String) -> ONNXError { ONNXError("\(label): \(message)") }

    func has(_ key: String) -> Bool { attributes[key] != nil }

    private func take(_ key: String, _ type: Onnx_AttributeProto.AttributeType, present: (Onnx_AttributeProto) -> Bool) throws -> Onnx_AttributeProto? {
        guard let a = attributes[key] else { return nil }
        read.insert(key)
        guard a.type == type || (a.type == .undefined && present(a)) else {
            throw error("attribute '\(key)' must be of type \(type), got \(a.type)")
        }
        return a
    }

    func int(_ key: String) throws -> Int? { try take(key, .int) { $0.hasI }.map { Int($0.i) } }
    func int(_ key: String, default d: Int) throws -> Int { try int(key) ?? d }
    func ints(_ key: String) throws -> [Int]? { try take(key, .ints) { !$0.ints.isEmpty }.map { $0.ints.map { Int($0) } } }
    func float(_ key: String) throws -> Float? { try take(key, .float) { $0.hasF }.map(\.f) }
    func float(_ key: String, default d: Float) throws -> Float { try float(key) ?? d }
    func floats(_ key: String) throws -> [Float]? { try take(key, .floats) { !$0.floats.isEmpty }.map(\.floats) }
    func tensor(_ key: String) throws -> Onnx_TensorProto? { try take(key, .tensor) { $0.hasT }.map(\.t) }

    func string(_ key: String, default d: String) throws -> String {
        guard let a = try take(key, .string, present: { $0.hasS }) else { return d }
        guard let s = String(data: a.s, encoding: .utf8) else { throw error("attribute '\(key)' is not UTF-8 text") }
        return s
    }

    /// A 0/1 flag attribute.
    func flag(_ key: String, default d: Bool) throws -> Bool {
        let v = try int(key, default: d ? 1 : 0)
        guard v == 0 || v == 1 else { throw error("attribute '\(key)' must be 0 or 1, got \(v)") }
        return v == 1
    }

    /// Refuses every attribute that no handler read.
    func finish() throws {
        if let unread = attributes.keys.filter({ !read.contains($0) }).sorted().first {
            throw error("attribute '\(unread)' is not supported at opset \(opset)")
        }
    }

    /// The name of input `i`, or nil where it is absent or left empty (an omitted optional input).
    func input(_ i: Int) -> String? { i < proto.input.count && !proto.input[i].isEmpty ? proto.input[i] : nil }
    func output(_ i: Int) -> String? { i < proto.output.count && !proto.output[i].isEmpty ? proto.output[i] : nil }

    func requireInput(_ i: Int, _ role: String) throws -> String {
        guard let n = input(i) else { throw error("input \(i) (\(role)) is missing") }
        return n
    }

    func requireInputs(_ allowed: ClosedRange<Int>) throws {
        guard allowed.contains(proto.input.count) else {
            throw error("takes \(allowed.lowerBound == allowed.upperBound ? "\(allowed.lowerBound)" : "\(allowed.lowerBound) to \(allowed.upperBound)") inputs, got \(proto.input.count)")
        }
    }
}

/// The ONNX graph being read into a Loupe graph.
final class ONNXImporter {
    let model: Onnx_ModelProto
    let options: ONNXImportOptions
    let graph = Graph()
    private(set) var opset = 0

    /// What each ONNX name holds so far.
    enum Slot {
        case value(ValueID)
        case constant(ConstantTensor)
    }
    var slots: [String: Slot] = [:]
    /// Parameters made from constants that a node reads as data, by the constant's name.
    private var materialized: [String: ValueID] = [:]
    /// How many nodes read each name, and the names the graph outputs (optional outputs that
    /// nothing reads may be left unmade).
    private(set) var readers: [String: Int] = [:]
    private(set) var graphOutputs: Set<String> = []
    /// Conv node index -> the BatchNormalization node folded into it.
    var foldedBatchNorm: [Int: Int] = [:]
    var skippedNodes: Set<Int> = []
    private var nodeNames: Set<String> = []

    init(_ model: Onnx_ModelProto, options: ONNXImportOptions) {
        self.model = model
        self.options = options
    }

    func run() throws -> Graph {
        let defaultOpsets = model.opsetImport.filter { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        guard let version = defaultOpsets.first?.version else { throw ONNXError("the model imports no opset of the default ONNX domain") }
        guard defaultOpsets.count == 1 else { throw ONNXError("the model imports the default ONNX domain \(defaultOpsets.count) times") }
        guard ONNX.importOpsets.contains(Int(version)) else {
            throw ONNXError("opset \(version) is not supported; Loupe imports opsets \(ONNX.importOpsets.lowerBound) to \(ONNX.importOpsets.upperBound)")
        }
        opset = Int(version)
        guard model.hasGraph else { throw ONNXError("the model has no graph") }
        let g = model.graph
        guard g.sparseInitializer.isEmpty else { throw ONNXError("sparse initializers are not supported") }
        for t in g.initializer {
            guard !t.name.isEmpty else { throw ONNXError("an initializer has no name") }
            guard slots[t.name] == nil else { throw ONNXError("initializer '\(t.name)' is defined twice") }
            slots[t.name] = .constant(try ConstantTensor(t, what: "initializer '\(t.name)'"))
        }
        for input in g.input where slots[input.name] == nil {
            slots[input.name] = .value(try graph.input(input.name, shape: try inputShape(input)))
        }
        for node in g.node { for i in node.input where !i.isEmpty { readers[i, default: 0] += 1 } }
        graphOutputs = Set(g.output.map(\.name))
        guard !g.output.isEmpty else { throw ONNXError("the graph has no outputs") }
        if options.foldBatchNorm { planBatchNormFolding() }
        for (index, node) in g.node.enumerated() where !skippedNodes.contains(index) {
            try importNode(node, index: index)
        }
        for out in g.output {
            guard slots[out.name] != nil else { throw ONNXError("graph output '\(out.name)' is not computed by any node") }
            graph.markOutput(try value(out.name, for: nil))
        }
        return graph
    }

    private func inputShape(_ input: Onnx_ValueInfoProto) throws -> Shape {
        guard case .tensorType(let t)? = input.type.value else { throw ONNXError("graph input '\(input.name)' is not a tensor") }
        guard t.elemType == Int32(Onnx_TensorProto.DataType.float.rawValue) else {
            throw ONNXError("graph input '\(input.name)' has element type \(t.elemType); Loupe's inputs are float32 (1)")
        }
        if let given = options.inputShapes[input.name] { return given }
        guard t.hasShape else { throw ONNXError("graph input '\(input.name)' has no shape; give one in ONNXImportOptions.inputShapes") }
        let dims = try t.shape.dim.map { d -> Int in
            guard case .dimValue(let v)? = d.value, v > 0 else {
                throw ONNXError("graph input '\(input.name)' has a symbolic or empty dimension ('\(d.dimParam)'); give its shape in ONNXImportOptions.inputShapes")
            }
            return Int(v)
        }
        guard ConstantTensor.checkedCount(dims) != nil else { throw ONNXError("graph input '\(input.name)' has an impossible shape \(dims)") }
        return Shape(dims)
    }

    private func importNode(_ node: Onnx_NodeProto, index: Int) throws {
        var unique = node.name.isEmpty ? "\(node.opType)_\(index)" : node.name
        if nodeNames.contains(unique) { unique += "_\(index)" }
        nodeNames.insert(unique)
        let r = try NodeReader(node, index: index, uniqueName: unique, opset: opset)
        guard node.domain.isEmpty || node.domain == "ai.onnx" else {
            throw r.error("domain '\(node.domain)' is not supported; Loupe imports the default ONNX domain")
        }
        for i in node.input where !i.isEmpty && slots[i] == nil {
            throw r.error("input '\(i)' is not made by an earlier node, an initializer or a graph input")
        }
        for o in node.output where !o.isEmpty && slots[o] != nil { throw r.error("output '\(o)' is defined twice") }
        try importOp(r, index: index)
        try r.finish()
    }

    // MARK: Values

    /// Whether some node or the graph output reads `name`.
    func isRead(_ name: String) -> Bool { readers[name, default: 0] > 0 || graphOutputs.contains(name) }

    func constant(_ name: String) -> ConstantTensor? {
        if case .constant(let c)? = slots[name] { return c }
        return nil
    }

    /// The graph value for an ONNX name; a float constant read as data becomes a parameter (once).
    func value(_ name: String, for r: NodeReader?) throws -> ValueID {
        let fail = { (m: String) in r?.error(m) ?? ONNXError(m) }
        switch slots[name] {
        case .value(let v)?: return v
        case .constant(let c)?:
            if let v = materialized[name] { return v }
            guard let floats = c.floats else { throw fail("integer tensor '\(name)' is read as data; Loupe computes in float32") }
            guard !floats.isEmpty else { throw fail("tensor '\(name)' is empty; Loupe has no empty tensors") }
            let v = try parameter(name, dims: c.dims, floats, r)
            materialized[name] = v
            return v
        case nil: throw fail("'\(name)' is not defined")
        }
    }

    func parameter(_ name: String, dims: [Int], _ values: [Float], _ r: NodeReader?) throws -> ValueID {
        do {
            return try graph.parameter(name, shape: Shape(dims), values: values)
        } catch let e as GraphError {
            throw r?.error(e.description) ?? ONNXError(e.description)
        }
    }

    func shape(_ v: ValueID) -> [Int] { graph[v].shape.dims }

    /// The dimensions of a constant or a graph value, without making a constant a parameter.
    func dims(of name: String, _ r: NodeReader) throws -> [Int] {
        if let c = constant(name) { return c.dims }
        return shape(try value(name, for: r))
    }

    func bind(_ name: String?, _ slot: Slot) {
        if let name { slots[name] = slot }
    }

    /// Adds one Loupe node for `r`. `step` names an intermediate node of a lowering ("NAME/step");
    /// without it the node makes `r`'s outputs and takes their names.
    @discardableResult
    func emit(_ op: GraphOp, _ inputs: [ValueID], _ r: NodeReader, step: String? = nil, outputNames: [String]? = nil) throws -> [ValueID] {
        let nodeName = step.map { "\(r.name)/\($0)" } ?? r.name
        let names = outputNames ?? (step == nil ? [r.output(0) ?? nodeName] : nil)
        do {
            let outs = try graph.add(op, inputs, name: nodeName, outputNames: names)
            if step == nil {
                for (i, v) in outs.enumerated() where i < r.proto.output.count { bind(r.output(i), .value(v)) }
            }
            return outs
        } catch let e as GraphError {
            throw r.error(e.description)
        }
    }

    /// An optional output that Loupe does not compute must be left unread.
    func requireUnread(_ r: NodeReader, output i: Int, _ what: String) throws {
        if let name = r.output(i), isRead(name) { throw r.error("output \(i) ('\(name)', \(what)) is read, and Loupe does not compute it") }
    }

    // MARK: Conv + BatchNormalization folding

    private func planBatchNormFolding() {
        let g = model.graph
        var constants = Set(g.initializer.map(\.name))
        for n in g.node where n.opType == "Constant" { constants.formUnion(n.output) }
        var producerIndex: [String: Int] = [:]
        for (i, n) in g.node.enumerated() { for o in n.output { producerIndex[o] = i } }
        for (j, bn) in g.node.enumerated() where bn.opType == "BatchNormalization" && bn.input.count == 5 {
            guard let i = producerIndex[bn.input[0]], g.node[i].opType == "Conv", foldedBatchNorm[i] == nil else { continue }
            let conv = g.node[i]
            let convOut = bn.input[0]
            guard conv.output.count == 1, readers[convOut] == 1, !graphOutputs.contains(convOut),
                  conv.input.count >= 2, conv.input.dropFirst().allSatisfy({ $0.isEmpty || constants.contains($0) }),
                  bn.input.dropFirst().allSatisfy(constants.contains),
                  bn.output.dropFirst().allSatisfy({ $0.isEmpty || !isRead($0) }) else { continue }
            foldedBatchNorm[i] = j
            skippedNodes.insert(j)
        }
    }
}
