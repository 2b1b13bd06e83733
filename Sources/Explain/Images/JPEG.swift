import CJPEG
import Foundation

/// Reads a JPEG through libjpeg-turbo: 1 channel for grayscale files, 3 (RGB) for colour files.
/// CMYK files are refused. A truncated or corrupt file is an error, never a partly gray image:
/// libjpeg's warnings about corrupt data end the decode like its errors do. Decoding uses
/// libjpeg's defaults (integer slow DCT, fancy upsampling), the same as `djpeg`.
/// The corresponding C function is `loupe_jpeg_decode` (Sources/CJPEG).
public func readJPEG(_ path: String) throws -> Image {
    var (width, height, channels): (Int32, Int32, Int32) = (0, 0, 0)
    var pixels: UnsafeMutablePointer<UInt8>?
    var reason = [CChar](repeating: 0, count: 256)
    let status = loupe_jpeg_decode(path, &width, &height, &channels, &pixels, &reason, reason.count)
    guard status == 0, let pixels else {
        let why = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw ImageError("cannot read JPEG \(path): \(why)")
    }
    defer { loupe_jpeg_free(pixels) }
    let count = Int(width) * Int(height) * Int(channels)
    return try Image(width: Int(width), height: Int(height), channels: Int(channels),
                     pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
}

/// Reads a PNG or a JPEG, told apart by the file's first bytes (not its name). PNGs keep their
/// channels (gray 1, colour 3, with alpha 4); JPEGs are 1 or 3 channels (see `readJPEG`).
/// Anything else, and any unreadable or corrupt file, is a one-line `ImageError` naming the file.
public func readImage(_ path: String) throws -> Image {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue {
        throw ImageError("cannot read image \(path): it is a directory")
    }
    guard let handle = FileHandle(forReadingAtPath: path) else {
        let exists = FileManager.default.fileExists(atPath: path)
        throw ImageError("cannot read image \(path): \(exists ? "permission denied" : "no such file")")
    }
    let head = [UInt8]((try? handle.read(upToCount: 8)) ?? Data())
    try? handle.close()
    if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try readPNG(path) }
    if head.starts(with: [0xFF, 0xD8, 0xFF]) { return try readJPEG(path) }
    let shown = head.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
    throw ImageError("cannot read image \(path): not a PNG or JPEG file (it starts with \(head.isEmpty ? "nothing: the file is empty" : shown))")
}
