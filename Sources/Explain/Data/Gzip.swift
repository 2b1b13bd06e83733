import CZlib

/// gzip data (RFC 1952), decompressed whole in memory by zlib's `inflate`. Concatenated members
/// (what `cat a.gz b.gz` makes, and what gunzip accepts) give the concatenation of their contents;
/// a truncated stream, a failing CRC or length check, and any other bytes after the last member are
/// refused with a one-line `DataError` naming the file.
public enum Gzip {
    /// Input and output pass through zlib in pieces of this many bytes (`z_stream` counts in `UInt32`).
    static let chunkSize = 1 << 20

    /// Whether `bytes` start with the gzip magic number `1f 8b`.
    public static func isCompressed(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// The decompressed contents of the gzip file at `path`.
    public static func decompress(contentsOf path: String) throws -> [UInt8] {
        try decompress(readDataFile(path), name: path)
    }

    /// The decompressed contents of `compressed`; errors name it `name` (its file).
    ///
    /// The corresponding C function is `inflate`, set up by `inflateInit2` with `windowBits = 15 + 32`:
    /// a 32 KiB window, and 32 to detect the gzip (or zlib) header automatically.
    public static func decompress(_ compressed: [UInt8], name: String) throws -> [UInt8] {
        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { throw DataError("\(name): zlib's inflateInit2 failed (\(statusName(initStatus)))") }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        out.reserveCapacity(sizeHint(compressed))
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        try compressed.withUnsafeBufferPointer { input in
            var handedOver = 0
            while true {
                if stream.avail_in == 0 && handedOver < input.count {
                    let n = min(chunkSize, input.count - handedOver)
                    // zlib never writes through next_in; its header just lacks the const.
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + handedOver)
                    stream.avail_in = UInt32(n)
                    handedOver += n
                }
                var status: Int32 = Z_OK
                let produced = chunk.withUnsafeMutableBufferPointer { buffer -> Int in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = UInt32(buffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return buffer.count - Int(stream.avail_out)
                }
                out.append(contentsOf: chunk[0..<produced])
                let unread = input.count - handedOver + Int(stream.avail_in)
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    if unread == 0 { return }
                    let next = input.count - unread
                    guard unread >= 2, input[next] == 0x1f, input[next + 1] == 0x8b else {
                        throw DataError("\(name): \(unread) bytes of trailing data after the gzip stream")
                    }
                    inflateReset(&stream)
                case Z_BUF_ERROR where unread == 0:
                    throw DataError("\(name): truncated gzip data (the file ends inside the compressed stream)")
                case Z_DATA_ERROR:
                    let why = stream.msg.map { String(cString: $0) } ?? "invalid deflate data"
                    throw DataError("\(name): corrupt gzip data (\(why))")
                case Z_NEED_DICT:
                    throw DataError("\(name): corrupt gzip data (a zlib stream that needs a preset dictionary)")
                default:
                    throw DataError("\(name): zlib's inflate failed (\(statusName(status)))")
                }
            }
        }
        return out
    }

    /// The decompressed size that a single-member file's trailer (ISIZE, the size modulo 2^32)
    /// announces; only a capacity hint, capped at 64 times the compressed size so that a damaged
    /// trailer cannot ask for an absurd allocation (the output grows past the hint as needed).
    private static func sizeHint(_ compressed: [UInt8]) -> Int {
        guard compressed.count >= 18 else { return 0 }
        let isize = compressed[(compressed.count - 4)...].reversed().reduce(0) { $0 << 8 | Int($1) }
        return min(isize, compressed.count * 64)
    }

    private static func statusName(_ status: Int32) -> String {
        switch status {
        case Z_STREAM_ERROR: return "Z_STREAM_ERROR"
        case Z_DATA_ERROR: return "Z_DATA_ERROR"
        case Z_MEM_ERROR: return "Z_MEM_ERROR, out of memory"
        case Z_BUF_ERROR: return "Z_BUF_ERROR"
        case Z_VERSION_ERROR: return "Z_VERSION_ERROR, zlib.h and libz differ"
        default: return "status \(status)"
        }
    }
}
