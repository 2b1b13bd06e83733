import CPNG
import CZlib
import Foundation

/// An 8-bit image, rows top to bottom, channels interleaved: 1 (gray), 3 (RGB) or 4 (RGBA).
public struct Image: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0 else { throw ImageError("image: size \(width)x\(height) must be positive") }
        guard [1, 3, 4].contains(channels) else { throw ImageError("image: \(channels) channels; 1 (gray), 3 (RGB) or 4 (RGBA) are supported") }
        guard pixels.count == width * height * channels else {
            throw ImageError("image: \(pixels.count) bytes do not fill \(width)x\(height)x\(channels)")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }
}

/// An image that cannot be read or written; names the file and the cause.
public struct ImageError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ d: String) { description = d }
}

private func pngFormat(channels: Int) -> UInt32 {
    // PNG_FORMAT_GRAY / _RGB / _RGBA, spelled with the flags Swift imports from png.h.
    switch channels {
    case 1: return 0
    case 3: return UInt32(PNG_FORMAT_FLAG_COLOR)
    default: return UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
    }
}

private func message(_ image: inout png_image) -> String {
    withUnsafeBytes(of: &image.message) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// Writes `image` as an 8-bit PNG through libpng's simplified API, with `text` as uncompressed
/// UTF-8 `iTXt` chunks (keyword, value) right after the header, so that viewers and
/// `pngTextChunks` show how the picture was made. Keywords are 1 to 79 printable Latin-1
/// characters without leading, trailing or double spaces, as the PNG specification asks.
/// Refuses to replace an existing file unless `overwrite` is set.
public func writePNG(_ image: Image, to path: String, overwrite: Bool = false, text: [(keyword: String, value: String)] = []) throws {
    if !overwrite && FileManager.default.fileExists(atPath: path) {
        throw ImageError("\(path) exists; not overwriting it (pass overwrite to replace it)")
    }
    for (keyword, _) in text {
        let bytes = Array(keyword.utf8)
        guard (1...79).contains(bytes.count), bytes.allSatisfy({ (32...126).contains($0) }), !keyword.hasPrefix(" "), !keyword.hasSuffix(" "),
              !keyword.contains("  ") else {
            throw ImageError("cannot write PNG \(path): text keyword '\(keyword)' must be 1-79 printable ASCII characters without outer or double spaces")
        }
    }
    var png = png_image()
    png.version = UInt32(PNG_IMAGE_VERSION)
    png.width = UInt32(image.width)
    png.height = UInt32(image.height)
    png.format = pngFormat(channels: image.channels)
    defer { png_image_free(&png) }
    let stride = Int32(image.width * image.channels)
    var size = 0
    let sized = image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, nil, &size, 0, $0.baseAddress, stride, nil) }
    guard sized != 0 else { throw ImageError("cannot write PNG \(path): \(message(&png))") }
    var bytes = [UInt8](repeating: 0, count: size)
    let ok = bytes.withUnsafeMutableBytes { out in
        image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, out.baseAddress, &size, 0, $0.baseAddress, stride, nil) }
    }
    guard ok != 0 else { throw ImageError("cannot write PNG \(path): \(message(&png))") }
    bytes.removeSubrange(size...)
    // Signature (8) + IHDR (4 length + 4 type + 13 data + 4 CRC) = 33 bytes; text chunks follow it.
    let chunks = text.flatMap { pngChunk("iTXt", Array($0.keyword.utf8) + [0, 0, 0, 0, 0] + Array($0.value.utf8)) }
    bytes.insert(contentsOf: chunks, at: 33)
    do { try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw ImageError("cannot write PNG \(path): \(error.localizedDescription)")
    }
}

/// One PNG chunk: big-endian length, type, data, CRC-32 of type and data.
private func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let typeBytes = Array(type.utf8)
    let body = typeBytes + data
    let crc = body.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
    func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    return be(UInt32(data.count)) + body + be(crc)
}

/// The text chunks of a PNG file in file order: `tEXt` (Latin-1) and uncompressed `iTXt` (UTF-8),
/// as (keyword, value). Compressed text chunks are skipped. Throws for a file that is not a PNG or
/// whose chunk structure is cut short.
public func pngTextChunks(_ path: String) throws -> [(keyword: String, value: String)] {
    guard let data = FileManager.default.contents(atPath: path) else { throw ImageError("cannot read PNG \(path): no such file or not readable") }
    let bytes = [UInt8](data)
    guard bytes.count >= 8, bytes.prefix(8).elementsEqual([137, 80, 78, 71, 13, 10, 26, 10]) else { throw ImageError("\(path) is not a PNG file") }
    var result: [(keyword: String, value: String)] = []
    var at = 8
    while at + 12 <= bytes.count {
        let length = bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
        let type = String(decoding: bytes[at + 4..<at + 8], as: UTF8.self)
        guard at + 12 + length <= bytes.count else { throw ImageError("\(path): PNG chunk \(type) runs past the end of the file") }
        let body = Array(bytes[at + 8..<at + 8 + length])
        if type == "IEND" { break }
        if type == "tEXt", let nul = body.firstIndex(of: 0) {
            result.append((String(decoding: body[..<nul], as: UTF8.self), String(body[(nul + 1)...].map { Character(Unicode.Scalar($0)) })))
        } else if type == "iTXt", let nul = body.firstIndex(of: 0), nul + 2 < body.count, body[nul + 1] == 0 {
            // keyword \0, compression flag (0), method, language tag \0, translated keyword \0, text
            let rest = body[(nul + 3)...]
            if let language = rest.firstIndex(of: 0), let translated = body[(language + 1)...].firstIndex(of: 0) {
                result.append((String(decoding: body[..<nul], as: UTF8.self), String(decoding: body[(translated + 1)...], as: UTF8.self)))
            }
        }
        at += 12 + length
    }
    return result
}

/// Reads a PNG of any bit depth or colour type, converted to 8-bit with `channels` channels
/// (1, 3 or 4; default: 3 for colour files, 1 for gray, 4 when the file has alpha).
public func readPNG(_ path: String, channels wanted: Int? = nil) throws -> Image {
    var png = png_image()
    png.version = UInt32(PNG_IMAGE_VERSION)
    guard png_image_begin_read_from_file(&png, path) != 0 else {
        let why = message(&png)
        png_image_free(&png)
        throw ImageError("cannot read PNG \(path): \(why.isEmpty ? "not a readable PNG file" : why)")
    }
    defer { png_image_free(&png) }
    let hasAlpha = png.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
    let isColour = png.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
    let channels = wanted ?? (hasAlpha ? 4 : isColour ? 3 : 1)
    guard [1, 3, 4].contains(channels) else { throw ImageError("readPNG: \(channels) channels; 1, 3 or 4 are supported") }
    png.format = pngFormat(channels: channels)
    let (w, h) = (Int(png.width), Int(png.height))
    var pixels = [UInt8](repeating: 0, count: w * h * channels)
    let ok = pixels.withUnsafeMutableBytes { buf in
        png_image_finish_read(&png, nil, buf.baseAddress, Int32(w * channels), nil)
    }
    guard ok != 0 else { throw ImageError("cannot decode PNG \(path): \(message(&png))") }
    return try Image(width: w, height: h, channels: channels, pixels: pixels)
}
