import CPNG
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

/// Writes `image` as an 8-bit PNG through libpng's simplified API.
/// Refuses to replace an existing file unless `overwrite` is set.
public func writePNG(_ image: Image, to path: String, overwrite: Bool = false) throws {
    if !overwrite && FileManager.default.fileExists(atPath: path) {
        throw ImageError("\(path) exists; not overwriting it (pass overwrite to replace it)")
    }
    var png = png_image()
    png.version = UInt32(PNG_IMAGE_VERSION)
    png.width = UInt32(image.width)
    png.height = UInt32(image.height)
    png.format = pngFormat(channels: image.channels)
    let ok = image.pixels.withUnsafeBytes { buf in
        png_image_write_to_file(&png, path, 0, buf.baseAddress, Int32(image.width * image.channels), nil)
    }
    defer { png_image_free(&png) }
    guard ok != 0 else { throw ImageError("cannot write PNG \(path): \(message(&png))") }
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
