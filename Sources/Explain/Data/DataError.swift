import Foundation

/// A data file or dataset that cannot be read or generated: one line naming the file (or the
/// dataset and the setting) and what is wrong.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ d: String) { description = d }
}

/// The whole file at `path`.
func readDataFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw DataError(FileManager.default.fileExists(atPath: path) ? "cannot read \(path)" : "cannot read \(path): no such file")
    }
    return [UInt8](data)
}
