import Explain
import Foundation
import XCTest

final class PNGTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testRoundTripGrayRGBAndRGBA() throws {
        for channels in [1, 3, 4] {
            let (w, h) = (13, 7)
            let pixels = (0..<(w * h * channels)).map { _ in UInt8.random(in: 0...255) }
            let image = try Image(width: w, height: h, channels: channels, pixels: pixels)
            let path = dir.appendingPathComponent("i\(channels).png").path
            try writePNG(image, to: path)
            // The file is a PNG whose IHDR says 13 x 7 (big-endian width and height at bytes 16-23).
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertEqual(Array(bytes[0..<8]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            XCTAssertEqual(Array(bytes[16..<24]), [0, 0, 0, 13, 0, 0, 0, 7])
            XCTAssertEqual(try readPNG(path), image, "\(channels) channels")
        }
    }

    func testGrayFileReadAsRGBReplicatesTheChannel() throws {
        let image = try Image(width: 2, height: 1, channels: 1, pixels: [10, 200])
        let path = dir.appendingPathComponent("g.png").path
        try writePNG(image, to: path)
        XCTAssertEqual(try readPNG(path, channels: 3).pixels, [10, 10, 10, 200, 200, 200])
    }

    func testUnreadableFilesAndOverwritesAreRefused() throws {
        let junk = dir.appendingPathComponent("junk.png").path
        try Data("definitely not a png".utf8).write(to: URL(fileURLWithPath: junk))
        XCTAssertThrowsError(try readPNG(junk)) { XCTAssertTrue("\($0)".contains("junk.png"), "\($0)") }
        XCTAssertThrowsError(try readPNG(dir.appendingPathComponent("missing.png").path))
        let image = try Image(width: 1, height: 1, channels: 1, pixels: [1])
        try writePNG(image, to: junk, overwrite: true)
        XCTAssertThrowsError(try writePNG(image, to: junk)) { XCTAssertTrue("\($0)".contains("not overwriting"), "\($0)") }
        XCTAssertThrowsError(try Image(width: 2, height: 2, channels: 2, pixels: [0, 0, 0, 0, 0, 0, 0, 0]))
    }
}
