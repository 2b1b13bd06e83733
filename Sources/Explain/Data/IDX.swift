/// IDX files (LeCun's MNIST format), plain or gzipped (detected by the gzip magic number).
///
/// Layout: a 4-byte magic `00 00 TT NN` (`TT` the element type, `NN` the number of dimensions),
/// then `NN` dimensions as big-endian `UInt32`, then the elements in C order. Loupe reads unsigned
/// bytes (`TT = 08`): image files have magic `0x00000803` (2051: count, rows, columns), label files
/// `0x00000801` (2049: count). The data must be exactly as long as the dimensions say.
public enum IDX {
    /// Magic number of an unsigned-byte file of 3 dimensions (images).
    public static let imagesMagic: UInt32 = 0x0000_0803
    /// Magic number of an unsigned-byte file of 1 dimension (labels).
    public static let labelsMagic: UInt32 = 0x0000_0801

    /// The contents of an unsigned-byte IDX file.
    public struct Contents: Equatable, Sendable {
        public let dimensions: [Int]
        /// The elements in C order, `dimensions` multiplied together of them.
        public let values: [UInt8]
    }

    /// Reads an unsigned-byte IDX file (plain or gzipped); with `rank`, refuses files of another rank.
    public static func read(_ path: String, rank: Int? = nil) throws -> Contents {
        let bytes = try readDataFile(path)
        return try parse(Gzip.isCompressed(bytes) ? Gzip.decompress(bytes, name: path) : bytes, rank: rank, name: path)
    }

    /// Reads an images file (magic 2051): `count` images of `rows x columns` bytes.
    public static func readImages(_ path: String) throws -> (count: Int, rows: Int, columns: Int, pixels: [UInt8]) {
        let file = try read(path, rank: 3)
        return (file.dimensions[0], file.dimensions[1], file.dimensions[2], file.values)
    }

    /// Reads a labels file (magic 2049): one byte per item.
    public static func readLabels(_ path: String) throws -> [UInt8] {
        try read(path, rank: 1).values
    }

    /// Parses the (decompressed) bytes of an IDX file; errors name it `name`.
    public static func parse(_ bytes: [UInt8], rank: Int? = nil, name: String) throws -> Contents {
        guard bytes.count >= 4 else { throw DataError("\(name): \(bytes.count) bytes are too short for an IDX header (4-byte magic number)") }
        let magic = bigEndianUInt32(bytes, at: 0)
        guard bytes[0] == 0, bytes[1] == 0 else { throw DataError("\(name) is not an IDX file (magic \(hex(magic)) does not start with two zero bytes)") }
        guard bytes[2] == 0x08 else {
            throw DataError("\(name): IDX element type \(hex(bytes[2])) (\(typeName(bytes[2]))) is not supported; Loupe reads unsigned bytes (type 0x08)")
        }
        let fileRank = Int(bytes[3])
        if let rank, fileRank != rank {
            throw DataError("\(name): magic \(hex(magic)) is a \(fileRank)-dimensional file, expected \(rank) dimensions (magic \(hex(0x0800 + UInt32(rank))))")
        }
        guard fileRank > 0 else { throw DataError("\(name): IDX file with no dimensions (magic \(hex(magic)))") }
        let dataStart = 4 + 4 * fileRank
        guard bytes.count >= dataStart else {
            throw DataError("\(name): truncated IDX header (\(fileRank) dimensions need \(dataStart) bytes, the file has \(bytes.count))")
        }
        let dimensions = (0..<fileRank).map { Int(bigEndianUInt32(bytes, at: 4 + 4 * $0)) }
        var needed = 1
        for d in dimensions {
            let (product, overflow) = needed.multipliedReportingOverflow(by: d)
            guard !overflow else { throw DataError("\(name): IDX dimensions \(dimensions) have more elements than an Int can count") }
            needed = product
        }
        let available = bytes.count - dataStart
        guard available == needed else {
            throw DataError("\(name): IDX dimensions \(dimensions) need \(needed) bytes of data, the file has \(available)\(available < needed ? " (truncated)" : "")")
        }
        return Contents(dimensions: dimensions, values: [UInt8](bytes[dataStart...]))
    }

    private static func bigEndianUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    private static func hex<T: FixedWidthInteger>(_ value: T) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, T.bitWidth / 4 - digits.count)) + digits
    }

    private static func typeName(_ code: UInt8) -> String {
        switch code {
        case 0x09: return "signed byte"
        case 0x0B: return "int16"
        case 0x0C: return "int32"
        case 0x0D: return "float32"
        case 0x0E: return "float64"
        default: return "unknown"
        }
    }
}
