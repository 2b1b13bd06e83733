import Foundation

/// One tensor of a tensor file: its shape and its float32 values in C order.
public struct NamedTensor: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }
}

/// What a safetensors file holds: its tensors by name, as float32, and its `__metadata__` strings.
public struct SafetensorsFile: Equatable, Sendable {
    public var tensors: [String: NamedTensor]
    public var metadata: [String: String]

    public init(tensors: [String: NamedTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }
}

/// safetensors files: an 8-byte little-endian header length N, N bytes of JSON giving each tensor's
/// `dtype`, `shape` and `data_offsets` (a byte range counted from the end of the header), then the data.
///
/// Reading accepts F32, F16, BF16 and F64 and returns float32: F16 and BF16 convert exactly (each of
/// their values is a float32), F64 rounds to nearest (magnitudes beyond float32's range become
/// infinities). Other dtypes are refused. The header is checked strictly: its length lies within the
/// file, the JSON is well formed, and the tensors' byte ranges fit their shapes, do not overlap and
/// cover the data section exactly. Writing produces F32 only.
public enum Safetensors {
    static let metadataKey = "__metadata__"

    /// The element types Loupe reads, with their safetensors names.
    enum DType: String {
        case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"

        var size: Int {
            switch self {
            case .f16, .bf16: 2
            case .f32: 4
            case .f64: 8
            }
        }

        /// Converts `count` little-endian elements starting at `offset` of `raw` to float32.
        func decode(_ raw: UnsafeRawBufferPointer, at offset: Int, count: Int) -> [Float] {
            (0..<count).map { i in
                let at = offset + i * size
                switch self {
                case .f32: return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                case .f16: return DType.float(half: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                case .bf16: return Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))) << 16)
                case .f64: return Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))))
                }
            }
        }

        /// IEEE 754 binary16 to float32, exactly; written out because `Float16` is missing on some platforms (macOS on Intel).
        static func float(half bits: UInt16) -> Float {
            let sign: Float = bits & 0x8000 == 0 ? 1 : -1
            let exponent = UInt32(bits >> 10) & 0x1f
            let mantissa = UInt32(bits) & 0x3ff
            switch exponent {
            case 0: return sign * Float(mantissa) * 0x1p-24
            case 0x1f: return Float(bitPattern: UInt32(bits & 0x8000) << 16 | 0x7f80_0000 | mantissa << 13)
            default: return Float(bitPattern: UInt32(bits & 0x8000) << 16 | (exponent + 112) << 23 | mantissa << 13)
            }
        }
    }

    /// One header entry, checked against its own shape and the size of the data section.
    private struct Entry {
        let name: String
        let dtype: DType
        let shape: [Int]
        let count: Int
        let begin: Int
        let end: Int
    }

    /// Reads every tensor of a safetensors file as float32, with the file's metadata.
    public static func read(_ path: String) throws -> SafetensorsFile {
        let bytes = try readTensorFile(path)
        guard bytes.count >= 8 else {
            throw TensorFileError("\(path) is not a safetensors file: \(bytes.count) bytes is too short for the 8-byte header length")
        }
        let declared = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard declared <= UInt64(bytes.count - 8) else {
            throw TensorFileError("\(path): header length \(declared) runs past the end of the file (\(bytes.count - 8) bytes follow it)")
        }
        let dataStart = 8 + Int(declared)
        let dataSize = bytes.count - dataStart
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
        } catch {
            throw TensorFileError("\(path): the \(declared)-byte header is not well-formed JSON")
        }
        guard let header = json as? [String: Any] else { throw TensorFileError("\(path): the header is not a JSON object") }

        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for name in header.keys.sorted() {
            guard let value = header[name] else { continue }
            if name == metadataKey {
                guard let strings = value as? [String: Any] else { throw TensorFileError("\(path): \(metadataKey) is not a JSON object") }
                for (key, text) in strings {
                    guard let text = text as? String else { throw TensorFileError("\(path): \(metadataKey) value \(quoted(key)) is not a string") }
                    metadata[key] = text
                }
            } else {
                entries.append(try entry(name, value, dataSize: dataSize, path))
            }
        }
        try checkLayout(entries, dataSize: dataSize, path)

        var tensors: [String: NamedTensor] = [:]
        bytes.withUnsafeBytes { raw in
            for e in entries {
                tensors[e.name] = NamedTensor(shape: e.shape, values: e.dtype.decode(raw, at: dataStart + e.begin, count: e.count))
            }
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    /// Writes float32 tensors, laid out in sorted-name order, and `metadata` (omitted when empty).
    /// Refuses to replace an existing file unless `overwrite` is set.
    public static func write(_ tensors: [String: NamedTensor], metadata: [String: String] = [:], to path: String, overwrite: Bool = false) throws {
        var header: [String: Any] = [:]
        var data: [UInt8] = []
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            guard name != metadataKey else { throw TensorFileError("\(path): '\(metadataKey)' is reserved for metadata and cannot name a tensor") }
            guard elementCount(tensor.shape) == tensor.values.count else {
                throw TensorFileError("\(path): tensor '\(name)': \(tensor.values.count) values do not fill shape \(tensor.shape)")
            }
            let begin = data.count
            appendLittleEndian(tensor.values, to: &data)
            header[name] = ["dtype": DType.f32.rawValue, "shape": tensor.shape, "data_offsets": [begin, data.count]] as [String: Any]
        }
        if !metadata.isEmpty { header[metadataKey] = metadata }
        var json: [UInt8]
        do {
            json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes]))
        } catch {
            throw TensorFileError("\(path): cannot encode the header as JSON")
        }
        // The data section starts 8-byte aligned, as the safetensors library writes it.
        json += [UInt8](repeating: UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
        var out = withUnsafeBytes(of: UInt64(json.count).littleEndian) { [UInt8]($0) }
        out += json
        out += data
        try writeTensorFile(out, to: path, overwrite: overwrite)
    }

    private static func entry(_ name: String, _ value: Any, dataSize: Int, _ path: String) throws -> Entry {
        let tensor = "\(path): tensor \(quoted(name))"
        guard let fields = value as? [String: Any] else { throw TensorFileError("\(tensor) is not a JSON object") }
        let unknown = Set(fields.keys).subtracting(["dtype", "shape", "data_offsets"])
        guard unknown.isEmpty else { throw TensorFileError("\(tensor) has unknown fields \(unknown.sorted().map(quoted).joined(separator: ", "))") }
        guard let dtypeName = fields["dtype"] as? String else { throw TensorFileError("\(tensor) has no dtype string") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw TensorFileError("\(tensor) has dtype \(quoted(dtypeName)); Loupe reads F32, F16, BF16 and F64 only")
        }
        guard let shapeJSON = fields["shape"] as? [Any], case let dims = shapeJSON.compactMap(integer), dims.count == shapeJSON.count,
              dims.allSatisfy({ $0 >= 0 }) else {
            throw TensorFileError("\(tensor): shape must be an array of non-negative integers")
        }
        guard let offsets = fields["data_offsets"] as? [Any], offsets.count == 2,
              let begin = integer(offsets[0]), let end = integer(offsets[1]), 0 <= begin, begin <= end else {
            throw TensorFileError("\(tensor): data_offsets must be [begin, end] with 0 <= begin <= end")
        }
        guard end <= dataSize else {
            throw TensorFileError("\(tensor): data_offsets [\(begin), \(end)] run past the \(dataSize)-byte data section")
        }
        guard let count = elementCount(dims), let needed = byteCount(dims, elementSize: dtype.size) else {
            throw TensorFileError("\(tensor): shape \(dims) has more elements than an Int can count")
        }
        guard end - begin == needed else {
            throw TensorFileError("\(tensor): shape \(dims) of \(dtype.rawValue) needs \(needed) bytes, data_offsets [\(begin), \(end)] hold \(end - begin)")
        }
        return Entry(name: name, dtype: dtype, shape: dims, count: count, begin: begin, end: end)
    }

    /// The byte ranges, in order, must tile the data section: no overlap, no gap, nothing left over.
    private static func checkLayout(_ entries: [Entry], dataSize: Int, _ path: String) throws {
        var covered = 0
        var previous: Entry?
        for e in entries.sorted(by: { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }) {
            if e.begin < covered, let previous {
                throw TensorFileError("\(path): tensors \(quoted(previous.name)) [\(previous.begin), \(previous.end)] and \(quoted(e.name)) [\(e.begin), \(e.end)] overlap")
            }
            guard e.begin == covered else { throw TensorFileError("\(path): data bytes \(covered)..<\(e.begin) belong to no tensor") }
            covered = e.end
            previous = e
        }
        guard covered == dataSize else { throw TensorFileError("\(path): data bytes \(covered)..<\(dataSize) belong to no tensor") }
    }

    /// A name from the header in quotes, control characters and line breaks escaped, so that every error stays on one line.
    private static func quoted(_ text: String) -> String {
        let breaking: [Unicode.GeneralCategory] = [.control, .lineSeparator, .paragraphSeparator]
        return "'" + text.unicodeScalars.map { breaking.contains($0.properties.generalCategory) ? $0.escaped(asASCII: true) : String($0) }.joined() + "'"
    }

    /// A JSON integer; booleans and numbers written with a fraction or exponent are not integers here.
    private static func integer(_ json: Any) -> Int? {
        guard let number = json as? NSNumber, !["c", "B", "d", "f"].contains(String(cString: number.objCType)) else { return nil }
        return number as? Int
    }
}
