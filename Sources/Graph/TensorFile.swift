import Foundation

/// A tensor file that cannot be read or written; names the file and what is wrong.
public struct TensorFileError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ d: String) { description = d }
}

/// The number of elements in `shape`, or nil when a dimension is negative or the product overflows `Int`.
/// A zero dimension makes the count zero whatever the other dimensions are.
func elementCount(_ shape: [Int]) -> Int? {
    guard shape.allSatisfy({ $0 >= 0 }) else { return nil }
    if shape.contains(0) { return 0 }
    var count = 1
    for dimension in shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
        guard !overflow else { return nil }
        count = product
    }
    return count
}

/// The bytes that `shape` takes at `elementSize` bytes per element, or nil as for `elementCount`.
func byteCount(_ shape: [Int], elementSize: Int) -> Int? {
    guard let count = elementCount(shape) else { return nil }
    let (bytes, overflow) = count.multipliedReportingOverflow(by: elementSize)
    return overflow ? nil : bytes
}

/// The whole file at `path`.
func readTensorFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw TensorFileError("cannot read \(path)") }
    return [UInt8](data)
}

/// Writes `bytes` to `path`; refuses to replace an existing file unless `overwrite` is set.
func writeTensorFile(_ bytes: [UInt8], to path: String, overwrite: Bool) throws {
    if !overwrite && FileManager.default.fileExists(atPath: path) {
        throw TensorFileError("\(path) exists; not overwriting it (pass overwrite to replace it)")
    }
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw TensorFileError("cannot write \(path)") }
}

/// Appends the little-endian bytes of float32 `values` to `bytes`.
func appendLittleEndian(_ values: [Float], to bytes: inout [UInt8]) {
    bytes.reserveCapacity(bytes.count + values.count * 4)
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
}
