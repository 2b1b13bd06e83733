import Foundation

/// NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): little-endian float32, C order only.
/// Anything else (another dtype, Fortran order, a truncated file) is refused with its reason.
public enum NPY {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Reads the shape and values of a float32 `.npy` file.
    public static func read(_ path: String) throws -> (shape: [Int], values: [Float]) {
        let bytes = try readTensorFile(path)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw TensorFileError("\(path) is not a .npy file (bad magic)") }
        let major = bytes[6]
        let headerStart = major == 1 ? 10 : 12
        guard [1, 2, 3].contains(major) else { throw TensorFileError("\(path): unsupported .npy version \(major).\(bytes[7])") }
        guard bytes.count >= headerStart else { throw TensorFileError("\(path): truncated header") }
        let headerLength = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8
            : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        guard bytes.count >= headerStart + headerLength else { throw TensorFileError("\(path): truncated header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        let descr = try field("descr", in: header, path)
        guard descr == "'<f4'" || descr == "'float32'" else {
            throw TensorFileError("\(path): dtype \(descr) is not supported; Loupe reads little-endian float32 ('<f4') only")
        }
        guard try field("fortran_order", in: header, path) == "False" else {
            throw TensorFileError("\(path): Fortran-order arrays are not supported; save with C order (numpy.ascontiguousarray)")
        }
        let shapeText = try field("shape", in: header, path).trimmingCharacters(in: CharacterSet(charactersIn: "()"))
        let shape = try shapeText.split(separator: ",").map { part -> Int in
            guard let n = Int(part.trimmingCharacters(in: .whitespaces)), n >= 0 else { throw TensorFileError("\(path): bad shape (\(shapeText))") }
            return n
        }
        guard let count = elementCount(shape), let needed = byteCount(shape, elementSize: 4) else {
            throw TensorFileError("\(path): shape \(shape) has more elements than an Int can count")
        }
        let body = headerStart + headerLength
        guard bytes.count - body == needed else {
            throw TensorFileError("\(path): shape \(shape) needs \(needed) bytes of data, the file has \(bytes.count - body)")
        }
        let values = bytes[body...].withUnsafeBytes { raw in
            (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        return (shape, values)
    }

    /// Writes a float32 C-order `.npy` file (version 1.0). Refuses to replace an existing file unless `overwrite` is set.
    public static func write(_ values: [Float], shape: [Int], to path: String, overwrite: Bool = false) throws {
        guard elementCount(shape) == values.count else { throw TensorFileError("\(path): \(values.count) values do not fill shape \(shape)") }
        let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // Magic, version and length take 10 bytes; the header ends in a newline at a multiple of 64.
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        guard header.utf8.count <= Int(UInt16.max) else {
            throw TensorFileError("\(path): shape \(shape) has too many dimensions for a version 1.0 header (\(header.utf8.count) bytes, at most 65535)")
        }
        var out = magic + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)] + Array(header.utf8)
        appendLittleEndian(values, to: &out)
        try writeTensorFile(out, to: path, overwrite: overwrite)
    }

    private static func field(_ name: String, in header: String, _ path: String) throws -> String {
        guard let key = header.range(of: "'\(name)':") else { throw TensorFileError("\(path): header has no '\(name)'") }
        let rest = header[key.upperBound...].trimmingCharacters(in: .whitespaces)
        if rest.hasPrefix("(") {
            guard let close = rest.firstIndex(of: ")") else { throw TensorFileError("\(path): unterminated '\(name)' in header") }
            return String(rest[...close])
        }
        return String(rest.prefix { $0 != "," && $0 != "}" }).trimmingCharacters(in: .whitespaces)
    }
}
