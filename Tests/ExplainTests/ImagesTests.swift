import CLBackend
import Explain
import Foundation
import Graph
import XCTest

final class ImagesTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-images-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A random image with some smooth structure, so that JPEG has edges and gradients to code.
    private func randomImage(width: Int, height: Int, channels: Int) throws -> Image {
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                for k in 0..<channels {
                    let smooth = (x * 255 / max(width - 1, 1) + y * 97 + k * 60) % 256
                    pixels.append(UInt8((smooth + Int.random(in: 0...40)) % 256))
                }
            }
        }
        return try Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    // MARK: JPEG, against libjpeg-turbo's own tools

    /// Runs a libjpeg-turbo tool; skips the test when it is not installed (`make test-deps` installs it).
    private func runTool(_ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardError = Pipe()
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus == 127 { throw XCTSkip("\(arguments[0]) is missing: apt-get install libjpeg-turbo-progs") }
        XCTAssertEqual(p.terminationStatus, 0, arguments.joined(separator: " "))
    }

    /// Writes `image` (1 or 3 channels) as binary PGM / PPM.
    private func writePNM(_ image: Image, to path: String) throws {
        let header = "\(image.channels == 1 ? "P5" : "P6")\n\(image.width) \(image.height)\n255\n"
        try (Data(header.utf8) + Data(image.pixels)).write(to: URL(fileURLWithPath: path))
    }

    /// Reads the binary PGM / PPM that `djpeg -pnm` writes (maxval 255, no comments).
    private func readPNM(_ path: String) throws -> Image {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var fields: [String] = [], i = 0
        while fields.count < 4 {
            while bytes[i] == 0x20 || bytes[i] == 0x0A { i += 1 }
            var field = ""
            while bytes[i] != 0x20 && bytes[i] != 0x0A { field.append(Character(UnicodeScalar(bytes[i]))); i += 1 }
            fields.append(field)
        }
        XCTAssertEqual(fields[3], "255")
        return try Image(width: Int(fields[1])!, height: Int(fields[2])!, channels: fields[0] == "P5" ? 1 : 3,
                         pixels: Array(bytes[(i + 1)...]))
    }

    func testJPEGDecodeMatchesDjpegExactly() throws {
        // Odd sizes exercise partial MCUs; 4:2:0, 4:4:4, progressive and gray cover libjpeg's paths.
        let cases: [(channels: Int, options: [String])] = [
            (3, ["-quality", "85"]), (3, ["-quality", "95", "-sample", "1x1"]),
            (3, ["-quality", "75", "-progressive"]), (1, ["-quality", "90", "-grayscale"]),
        ]
        for (n, c) in cases.enumerated() {
            let source = try randomImage(width: 37, height: 23, channels: c.channels)
            let (pnm, jpeg, decoded) = (path("s\(n).pnm"), path("s\(n).jpg"), path("d\(n).pnm"))
            try writePNM(source, to: pnm)
            try runTool(["cjpeg"] + c.options + ["-outfile", jpeg, pnm])
            try runTool(["djpeg", "-pnm", "-outfile", decoded, jpeg])
            let expected = try readPNM(decoded)
            let image = try readJPEG(jpeg)
            XCTAssertEqual(image.channels, c.channels, "\(c.options)")
            XCTAssertEqual(image, expected, "\(c.options)")
            XCTAssertEqual(try readImage(jpeg), expected, "readImage dispatches on the magic bytes")
        }
    }

    func testCorruptTruncatedAndUnknownFilesAreOneLineErrors() throws {
        let source = try randomImage(width: 40, height: 30, channels: 3)
        try writePNM(source, to: path("s.ppm"))
        try runTool(["cjpeg", "-outfile", path("good.jpg"), path("s.ppm")])
        let good = try Data(contentsOf: URL(fileURLWithPath: path("good.jpg")))
        var damagedHeader = good
        damagedHeader.replaceSubrange(4..<64, with: Data(repeating: 0x5A, count: 60))
        let files: [(name: String, bytes: Data)] = [
            ("truncated.jpg", good.prefix(good.count / 2)),
            ("headeronly.jpg", good.prefix(3)),
            ("damaged.jpg", damagedHeader),
            ("notes.txt", Data("just some text".utf8)),
            ("empty.png", Data()),
            ("truncated.png", Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13])),
        ]
        for file in files {
            try file.bytes.write(to: URL(fileURLWithPath: path(file.name)))
            XCTAssertThrowsError(try readImage(path(file.name)), file.name) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(file.name), message)
                XCTAssertFalse(message.contains("\n"), message)
            }
        }
        XCTAssertThrowsError(try readJPEG(path("truncated.jpg"))) { XCTAssertTrue("\($0)".contains("Premature end"), "\($0)") }
        XCTAssertThrowsError(try readImage(path("notes.txt"))) { XCTAssertTrue("\($0)".contains("not a PNG or JPEG"), "\($0)") }
        XCTAssertThrowsError(try readImage(path("missing.jpg"))) { XCTAssertTrue("\($0)".contains("no such file"), "\($0)") }
        XCTAssertThrowsError(try readImage(dir.path)) { XCTAssertTrue("\($0)".contains("directory"), "\($0)") }
        XCTAssertThrowsError(try readJPEG(path("missing.jpg"))) { XCTAssertTrue("\($0)".contains("missing.jpg"), "\($0)") }
    }

    /// Text chunks sit after the header with valid CRCs: libpng (which checks them) still reads the
    /// pixels, Python's zlib.crc32 agrees with every chunk's CRC, and the text reads back in order.
    func testPNGTextChunksRoundTrip() throws {
        let image = try Image(width: 5, height: 3, channels: 3, pixels: (0..<45).map { UInt8($0 * 5) })
        let path = dir.appendingPathComponent("text.png").path
        let text = [(keyword: "Software", value: "Loupe"), (keyword: "loupe", value: #"{"method":"cam","path":"café/ü.png"}"#)]
        try writePNG(image, to: path, text: text)
        XCTAssertEqual(try readPNG(path), image)
        let back = try pngTextChunks(path)
        XCTAssertEqual(back.map(\.keyword), ["Software", "loupe"])
        XCTAssertEqual(back.map(\.value), text.map(\.value))
        let script = """
            import struct, sys, zlib
            b = open(sys.argv[1], 'rb').read(); i = 8; types = []
            while i < len(b):
                n, t = struct.unpack('>I4s', b[i:i + 8]); crc, = struct.unpack('>I', b[i + 8 + n:i + 12 + n])
                assert crc == zlib.crc32(b[i + 4:i + 8 + n]), t
                types.append(t.decode()); i += 12 + n
            print(','.join(types))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let types = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(types.hasPrefix("IHDR,iTXt,iTXt,"), types)
        XCTAssertTrue(types.hasSuffix("IEND"), types)
        XCTAssertThrowsError(try writePNG(image, to: path + "2", text: [(keyword: "", value: "x")]))
        XCTAssertThrowsError(try writePNG(image, to: path, text: text), "existing file kept")
    }

    func testReadImageReadsPNGs() throws {
        let image = try randomImage(width: 5, height: 4, channels: 4)
        try writePNG(image, to: path("a.png"))
        XCTAssertEqual(try readImage(path("a.png")), image)
    }

    // MARK: Preprocessing

    func testResizeIdentitiesAndConstants() throws {
        let image = try randomImage(width: 17, height: 11, channels: 3)
        XCTAssertEqual(try image.resized(width: 17, height: 11), image)
        let constant = try Image(width: 9, height: 7, channels: 3, pixels: (0..<(9 * 7)).flatMap { _ in [200, 13, 77] as [UInt8] })
        for (w, h) in [(31, 5), (4, 3), (1, 1), (9, 40)] {
            let resized = try constant.resized(width: w, height: h)
            XCTAssertEqual(resized.width, w)
            XCTAssertEqual(resized.height, h)
            XCTAssertEqual(resized.pixels, (0..<(w * h)).flatMap { _ in [200, 13, 77] as [UInt8] }, "\(w)x\(h)")
        }
    }

    func testResizeUsesTheGraphsBilinearRule() throws {
        // Same half-pixel rule as BilinearResize's reference; bytes round the reference's doubles,
        // and Float against Double arithmetic may move a value sitting on .5 by one.
        let image = try randomImage(width: 13, height: 9, channels: 1)
        for (w, h) in [(20, 5), (6, 17), (26, 18)] {
            let expected = Reference.resizeBilinearForward(BilinearResize(height: h, width: w), input: image.pixels.map(Double.init),
                                                           inputShape: [1, 1, 9, 13])
            let got = try image.resized(width: w, height: h).pixels
            for (g, e) in zip(got, expected) { XCTAssertEqual(Double(g), e, accuracy: 0.5 + 1e-3, "\(w)x\(h)") }
        }
        // Doubling a 2-pixel row: samples at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to the last).
        let row = try Image(width: 2, height: 1, channels: 1, pixels: [0, 200])
        XCTAssertEqual(try row.resized(width: 4, height: 1).pixels, [0, 50, 150, 200])
    }

    func testShorterSideAndCenterCrop() throws {
        let image = try randomImage(width: 300, height: 200, channels: 3)
        let small = try image.resized(shorterSide: 100)
        XCTAssertEqual([small.width, small.height], [150, 100])
        let tall = try randomImage(width: 3, height: 7, channels: 1).resized(shorterSide: 2)
        XCTAssertEqual([tall.width, tall.height], [2, 4], "floor(2 * 7 / 3)")
        // Pixel value = x + 10 y, so a crop's first pixel names its offset; (7 - 4) / 2 = 1.5 rounds to 2,
        // (6 - 1) / 2 = 2.5 to 2, as Python's round in torchvision.
        let indexed = try Image(width: 7, height: 6, channels: 1, pixels: (0..<42).map { UInt8($0 % 7 + 10 * ($0 / 7)) })
        let crop = try indexed.centerCropped(width: 4, height: 1)
        XCTAssertEqual(crop.pixels, [22, 23, 24, 25])
        XCTAssertEqual(try indexed.centerCropped(width: 7, height: 6), indexed)
        XCTAssertThrowsError(try indexed.centerCropped(width: 8, height: 2))
    }

    func testChannelConversions() throws {
        let gray = try Image(width: 2, height: 1, channels: 1, pixels: [10, 250])
        XCTAssertEqual(try gray.converted(channels: 3).pixels, [10, 10, 10, 250, 250, 250])
        XCTAssertEqual(try gray.converted(channels: 4).pixels, [10, 10, 10, 255, 250, 250, 250, 255])
        // PIL's convert("L"): red 76, green 150, blue 29, white 255.
        let rgb = try Image(width: 4, height: 1, channels: 3, pixels: [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
        XCTAssertEqual(try rgb.converted(channels: 1).pixels, [76, 150, 29, 255])
        let rgba = try Image(width: 1, height: 1, channels: 4, pixels: [1, 2, 3, 4])
        XCTAssertEqual(try rgba.converted(channels: 3).pixels, [1, 2, 3])
    }

    func testTensorNormalizationAndRoundTrip() throws {
        let image = try randomImage(width: 6, height: 5, channels: 3)
        let tensor = try image.tensor(normalization: .imagenet)
        XCTAssertEqual(tensor.shape, [3, 5, 6])
        // Channel 2 of pixel (x 4, y 3), planar: (p / 255 - 0.406) / 0.225; float error well under 1e-5.
        let p = Float(image.pixels[(3 * 6 + 4) * 3 + 2])
        XCTAssertEqual(tensor.values[2 * 30 + 3 * 6 + 4], (p / 255 - 0.406) / 0.225, accuracy: 1e-5)
        for normalization in [Normalization.unit, .imagenet, .custom(mean: [0.5], std: [0.25])] {
            let values = try image.tensor(normalization: normalization)
            XCTAssertEqual(try Image(tensor: values, normalization: normalization), image, "\(normalization)")
            let batched = try HostTensor(shape: [1, 3, 5, 6], values: values.values)
            XCTAssertEqual(try Image(tensor: batched, normalization: normalization), image)
        }
        let unit = try image.tensor()
        XCTAssertTrue(unit.values.allSatisfy { (0...1).contains($0) })
        // Gray replicated for an RGB model; RGB to luminance for a 1-channel one.
        let gray = try Image(width: 2, height: 1, channels: 1, pixels: [0, 255])
        XCTAssertEqual(try gray.tensor(channels: 3).values, [0, 1, 0, 1, 0, 1])
        XCTAssertEqual(try image.tensor(channels: 1).values, try image.converted(channels: 1).tensor().values)
        XCTAssertThrowsError(try gray.tensor(normalization: .imagenet)) { XCTAssertTrue("\($0)".contains("3 mean values for a 1-channel tensor"), "\($0)") }
        XCTAssertThrowsError(try image.tensor(normalization: .custom(mean: [0], std: [0])))
        // Out of range and NaN values clamp.
        let wild = try HostTensor(shape: [1, 1, 3], values: [-2, .nan, 7])
        XCTAssertEqual(try Image(tensor: wild).pixels, [0, 0, 255])
    }

    // MARK: Colormaps and heatmaps

    func testColormapAnchorsMatchMatplotlibAndJet() {
        func rgb(_ c: (r: UInt8, g: UInt8, b: UInt8)) -> [UInt8] { [c.r, c.g, c.b] }
        XCTAssertEqual(rgb(Colormap.viridis[0]), [68, 1, 84])
        XCTAssertEqual(rgb(Colormap.viridis[128]), [33, 145, 140])
        XCTAssertEqual(rgb(Colormap.viridis[255]), [253, 231, 37])
        XCTAssertEqual(rgb(Colormap.inferno[0]), [0, 0, 4])
        XCTAssertEqual(rgb(Colormap.inferno[128]), [188, 55, 84])
        XCTAssertEqual(rgb(Colormap.inferno[255]), [252, 255, 164])
        XCTAssertEqual(rgb(Colormap.jet[0]), [0, 0, 128])
        XCTAssertEqual(rgb(Colormap.jet[255]), [128, 0, 0])
        // Entry 64: blue saturated, green 382.5 - |256 - 510| = 128.5 rounded up; 191 mirrors it.
        XCTAssertEqual(rgb(Colormap.jet[64]), [0, 129, 255])
        XCTAssertEqual(rgb(Colormap.jet[191]), [255, 129, 0])
        XCTAssertEqual(rgb(Colormap.jet.color(at: 0.25)), rgb(Colormap.jet[64]), "floor(0.25 * 256)")
        XCTAssertEqual(rgb(Colormap.gray.color(at: 1)), [255, 255, 255])
        XCTAssertEqual(rgb(Colormap.gray.color(at: -3)), [0, 0, 0])
        XCTAssertEqual(rgb(Colormap.viridis.color(at: .nan)), [68, 1, 84])
    }

    func testHeatmapOfARampWalksTheColormapInOrder() throws {
        let ramp = (0..<256).map { Float($0) * 0.37 - 20 }
        // Pixel i of the ramp is entry i of the table: the colour index rises with the value.
        for colormap in Colormap.allCases {
            let image = try heatmap(ramp, width: 256, height: 1, colormap: colormap)
            XCTAssertEqual(image.channels, 3)
            for i in 0..<256 {
                let c = colormap[i]
                XCTAssertEqual(Array(image.pixels[(3 * i)..<(3 * i + 3)]), [c.r, c.g, c.b], "\(colormap) \(i)")
            }
        }
        let constant = try heatmap([Float](repeating: 3, count: 6), width: 3, height: 2, colormap: .viridis)
        XCTAssertEqual(constant.pixels, (0..<6).flatMap { _ in [68, 1, 84] as [UInt8] })
        let ranged = try heatmap([-5, 0, 0.5, 1, 9], width: 5, height: 1, colormap: .gray, range: 0...1)
        XCTAssertEqual(ranged.pixels.enumerated().filter { $0.offset % 3 == 0 }.map(\.element), [0, 0, 128, 255, 255])
        XCTAssertThrowsError(try heatmap([0, .nan], width: 2, height: 1)) { XCTAssertTrue("\($0)".contains("non-finite"), "\($0)") }
        XCTAssertThrowsError(try heatmap([0, 1], width: 3, height: 1))
        XCTAssertThrowsError(try heatmap([0, 1], width: 2, height: 1, range: 1...1))
    }

    func testOverlayAlphaEndsAndUpsampling() throws {
        let image = try randomImage(width: 8, height: 6, channels: 3)
        let map = (0..<48).map { _ in Float.random(in: -1...1) }
        XCTAssertEqual(try overlay(map, width: 8, height: 6, on: image, alpha: 0), image)
        XCTAssertEqual(try overlay(map, width: 8, height: 6, on: image, colormap: .inferno, alpha: 1),
                       try heatmap(map, width: 8, height: 6, colormap: .inferno))
        let gray = try randomImage(width: 8, height: 6, channels: 1)
        XCTAssertEqual(try overlay(map, width: 8, height: 6, on: gray, alpha: 0), try gray.converted(channels: 3))
        // A 2x2 map, low on the left and high on the right, upsampled to 8x6: the outer columns keep
        // the ends of the colormap, and every pixel is a colormap colour (the map is resized, not the colours).
        let halves = try overlay([0, 1, 0, 1], width: 2, height: 2, on: image, colormap: .jet, alpha: 1)
        let jet = (0..<256).map { Colormap.jet[$0] }.map { [$0.r, $0.g, $0.b] }
        for y in 0..<6 {
            XCTAssertEqual(Array(halves.pixels[(y * 8 * 3)..<(y * 8 * 3 + 3)]), jet[0])
            XCTAssertEqual(Array(halves.pixels[((y * 8 + 7) * 3)..<((y * 8 + 7) * 3 + 3)]), jet[255])
        }
        for i in 0..<48 { XCTAssertTrue(jet.contains(Array(halves.pixels[(3 * i)..<(3 * i + 3)]))) }
        let half = try overlay(map, width: 8, height: 6, on: image, alpha: 0.5)
        let heat = try heatmap(map, width: 8, height: 6)
        for i in 0..<half.pixels.count {
            XCTAssertEqual(Double(half.pixels[i]), (Double(image.pixels[i]) + Double(heat.pixels[i])) / 2, accuracy: 0.5 + 1e-6)
        }
        XCTAssertThrowsError(try overlay(map, width: 8, height: 6, on: image, alpha: 1.5))
    }

    // MARK: Grids and labels

    private func solid(_ width: Int, _ height: Int, _ value: UInt8) throws -> Image {
        try Image(width: width, height: height, channels: 3, pixels: [UInt8](repeating: value, count: width * height * 3))
    }

    /// The ink pixels (pure black) of `image` in the rectangle, as (x, y) relative to its corner.
    private func ink(_ image: Image, x: Int, y: Int, width: Int, height: Int) -> Set<[Int]> {
        var found: Set<[Int]> = []
        for py in y..<(y + height) {
            for px in x..<(x + width) where image.pixels[((py * image.width + px) * 3)..<((py * image.width + px) * 3 + 3)].allSatisfy({ $0 == 0 }) {
                found.insert([px - x, py - y])
            }
        }
        return found
    }

    func testGridLayoutAndLabelPlacement() throws {
        let cells = try (0..<5).map { (image: try solid(20, 10, UInt8(100 + $0 * 20)), label: $0 == 0 ? "I" : "cell \($0)") }
        let below = try grid(cells, columns: 3, padding: 4)
        // 3 columns, 2 rows; label strip 9 pixels.
        XCTAssertEqual([below.width, below.height, below.channels], [3 * 20 + 4 * 4, 2 * (10 + 9) + 3 * 4, 3])
        // Cell 4 (row 1, column 1) holds its image at (28, 27).
        XCTAssertEqual(Array(below.pixels[((27 * below.width + 28) * 3)..<((27 * below.width + 28) * 3 + 3)]), [180, 180, 180])
        // "I" in cell 0: 5 wide, centred at x 4 + 7 = 11, one pixel into the strip below the image (y 15).
        // Its glyph: a bar on the middle column, serifs on the columns either side of it, top and bottom.
        var letterI: Set<[Int]> = [[1, 0], [3, 0], [1, 6], [3, 6]]
        for row in 0..<7 { letterI.insert([2, row]) }
        XCTAssertEqual(ink(below, x: 4, y: 14, width: 20, height: 9), Set(letterI.map { [$0[0] + 7, $0[1] + 1] }))
        let above = try grid(cells, columns: 3, padding: 4, labels: .above, labelScale: 2)
        XCTAssertEqual(above.height, 2 * (10 + 18) + 3 * 4)
        // At scale 2 "I" is 10 wide at x 4 + 5, y 4 + 2, each font pixel a 2x2 square; the image starts below the strip.
        let scaled = Set(letterI.flatMap { p in [[0, 0], [1, 0], [0, 1], [1, 1]].map { [2 * p[0] + $0[0] + 5, 2 * p[1] + $0[1] + 2] } })
        XCTAssertEqual(ink(above, x: 4, y: 4, width: 20, height: 18), scaled)
        XCTAssertEqual(Array(above.pixels[((22 * above.width + 4) * 3)..<((22 * above.width + 4) * 3 + 3)]), [100, 100, 100])
        // No labels, no strip; smaller images are centred in the cell; the background fills the rest.
        let mixed = try grid([(image: try solid(6, 4, 50), label: ""), (image: try solid(2, 2, 9), label: "")], columns: 2, padding: 1)
        XCTAssertEqual([mixed.width, mixed.height], [2 * 6 + 3, 4 + 2])
        // Cell 1 spans x 8..<14; its 2x2 image sits at x 8 + 2, y 1 + 1.
        XCTAssertEqual(mixed.pixels[((2 * mixed.width + 10) * 3)], 9)
        XCTAssertEqual(mixed.pixels[((2 * mixed.width + 9) * 3)], 255)
        XCTAssertEqual(mixed.pixels[((1 * mixed.width + 10) * 3)], 255)
        XCTAssertThrowsError(try grid([], columns: 2))
        XCTAssertThrowsError(try grid(cells, columns: 0))
    }

    func testLongLabelsAreCutToTheirCell() throws {
        let cells = try [(image: solid(20, 8, 90), label: "a label far too long"), (image: solid(20, 8, 90), label: "ok")]
        let image = try grid(cells, columns: 2, padding: 2)
        // 20 pixels fit 3 glyphs: "a.." - so no ink strays past the cell into the padding or the next cell.
        let strip = ink(image, x: 0, y: 10, width: image.width, height: 9)
        XCTAssertFalse(strip.isEmpty)
        XCTAssertTrue(strip.allSatisfy { (2..<22).contains($0[0]) || (24..<44).contains($0[0]) }, "\(strip.sorted { $0[0] < $1[0] })")
        var alone = try solid(17, 7, 255)
        alone.draw(text: "a..", x: 0, y: 0, color: (0, 0, 0))
        let cut = ink(image, x: 2 + (20 - 17) / 2, y: 11, width: 17, height: 7)
        XCTAssertEqual(cut, ink(alone, x: 0, y: 0, width: 17, height: 7))
        XCTAssertEqual(Image.textSize("a..").width, 17)
    }

    /// Writes a sample grid of overlays with every printable ASCII character in its labels; set
    /// LOUPE_SAMPLE_GRID to a PNG path to keep it for a look.
    func testSampleGridWritesAndReadsBack() throws {
        let (w, h) = (96, 72)
        var base: [UInt8] = []
        for y in 0..<h {
            for x in 0..<w {
                let inDisc = (x - 60) * (x - 60) + (y - 30) * (y - 30) < 300
                base += inDisc ? [220, 200, 40] : [UInt8(x * 2), UInt8(80 + y), 160]
            }
        }
        let photo = try Image(width: w, height: h, channels: 3, pixels: base)
        let map = (0..<(12 * 9)).map { i -> Float in
            let (x, y) = (Float(i % 12) - 7.5, Float(i / 12) - 3.75)
            return exp(-(x * x + y * y) / 6)
        }
        var cells: [(image: Image, label: String)] = [(photo, "input 96x72")]
        for colormap in Colormap.allCases {
            cells.append((try overlay(map, width: 12, height: 9, on: photo, colormap: colormap, alpha: 0.6), "\(colormap) a=0.6"))
        }
        cells.append((try heatmap(map, width: 12, height: 9, colormap: .viridis).resized(width: w, height: h), "raw map"))
        let ascii = (32...126).map { String(UnicodeScalar(UInt8($0))) }.joined()
        for start in stride(from: 0, to: ascii.count, by: 16) {
            let label = String(ascii.dropFirst(start).prefix(16))
            cells.append((try heatmap((0..<w).map(Float.init), width: w, height: 1, colormap: .inferno).resized(width: w, height: 24), label))
        }
        let sheet = try grid(cells, columns: 4, padding: 6, labelScale: 1)
        let out = ProcessInfo.processInfo.environment["LOUPE_SAMPLE_GRID"] ?? path("grid.png")
        try writePNG(sheet, to: out, overwrite: true)
        XCTAssertEqual(try readImage(out), sheet)
    }
}
