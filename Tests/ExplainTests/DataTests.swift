import CLBackend
import Explain
import Foundation
import XCTest

/// Runs `python3 -c script args...`; skips the calling test when python3 is missing, and fails
/// with the script's standard error when it fails.
private func runPython(_ script: String, _ arguments: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", script] + arguments
    let err = Pipe()
    p.standardError = err
    do { try p.run() } catch { throw XCTSkip("python3 not available") }
    let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    if p.terminationStatus == 127 { throw XCTSkip("python3 not available") }
    guard p.terminationStatus == 0 else { throw DataTestFailure(description: "python3 exited with status \(p.terminationStatus): \(errors)") }
}

private struct DataTestFailure: Error, CustomStringConvertible { let description: String }

/// Fashion-MNIST's test split, loaded once for every test that needs items. `make test` installs
/// the Debian package (`make deps`); only without it, where it cannot be installed, do they skip.
private let fashionTestSplit = Result { try FashionMNIST(split: .test) }

private func skipUnlessFashionMNISTIsInstalled() throws {
    guard FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory) else {
        throw XCTSkip("dataset-fashion-mnist is not installed and this test does not install it; run make deps (make test does)")
    }
}

private func fashionTestItems() throws -> FashionMNIST {
    try skipUnlessFashionMNISTIsInstalled()
    return try fashionTestSplit.get()
}

final class DataTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    /// gzips each `NAME` in `names` to `NAME.gz` with Python's gzip module at `level`.
    private func pythonGzip(_ names: [String], level: Int = 9) throws {
        try runPython("""
            import gzip, sys
            for p in sys.argv[2:]:
                with open(p, 'rb') as f, gzip.open(p + '.gz', 'wb', compresslevel=int(sys.argv[1])) as g: g.write(f.read())
            """, [String(level)] + names.map(path))
    }

    // MARK: gzip

    func testGzipReadsWhatPythonWrites() throws {
        var rng = SystemRandomNumberGenerator()
        let contents: [String: [UInt8]] = [
            "empty": [],
            "one": [42],
            "random": (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &rng) },
            // Compresses about 1000:1, so one input chunk inflates to several output chunks.
            "long": [UInt8]((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 / 4096) }),
        ]
        for (name, bytes) in contents { _ = try write(bytes, name) }
        for level in [1, 9] {
            try pythonGzip(Array(contents.keys), level: level)
            for (name, bytes) in contents {
                XCTAssertEqual(try Gzip.decompress(contentsOf: path(name + ".gz")), bytes, "\(name), level \(level)")
            }
        }
        // Concatenated members decompress to the concatenated contents, as gunzip does.
        let members = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path("one.gz")))) + [UInt8](Data(contentsOf: URL(fileURLWithPath: path("random.gz"))))
        XCTAssertEqual(try Gzip.decompress(members, name: "members"), contents["one"]! + contents["random"]!)
    }

    func testGzipRefusesTruncatedAndCorruptFiles() throws {
        let bytes = [UInt8]((0..<50_000).map { UInt8(truncatingIfNeeded: $0 * 7 / 3) })
        _ = try write(bytes, "data")
        try pythonGzip(["data"])
        let gz = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path("data.gz"))))
        func refusal(_ damaged: [UInt8], _ name: String) -> String {
            do {
                let file = try write(damaged, name)
                _ = try Gzip.decompress(contentsOf: file)
                return "accepted"
            } catch { return "\(error)" }
        }
        // Cut in the header, in the deflate data, in the CRC and in the length trailer.
        for keep in [0, 5, gz.count / 2, gz.count - 6, gz.count - 1] {
            let why = refusal(Array(gz[0..<keep]), "cut\(keep).gz")
            XCTAssertTrue(why.contains("cut\(keep).gz") && why.contains("truncated"), why)
            XCTAssertFalse(why.contains("\n"), why)
        }
        func flipped(_ i: Int) -> [UInt8] { var d = gz; d[i] ^= 0xff; return d }
        let expected = [(0, "incorrect header check"), (gz.count - 8, "incorrect data check"), (gz.count - 2, "incorrect length check")]
        for (i, reason) in expected {
            let why = refusal(flipped(i), "flip\(i).gz")
            XCTAssertTrue(why.contains("flip\(i).gz") && why.contains("corrupt") && why.contains(reason), why)
        }
        let middle = refusal(flipped(gz.count / 2), "middle.gz")
        XCTAssertTrue(middle.contains("middle.gz") && middle != "accepted", middle)
        let trailing = refusal(gz + [1, 2, 3], "trailing.gz")
        XCTAssertTrue(trailing.contains("trailing.gz") && trailing.contains("3 bytes of trailing data"), trailing)
        XCTAssertThrowsError(try Gzip.decompress(contentsOf: path("missing.gz"))) { XCTAssertTrue("\($0)".contains("no such file"), "\($0)") }
    }

    // MARK: IDX

    private func idx(_ magic: [UInt8], _ dims: [UInt32], _ data: [UInt8]) -> [UInt8] {
        magic + dims.flatMap { d in withUnsafeBytes(of: d.bigEndian) { [UInt8]($0) } } + data
    }

    func testIDXReadsHandWrittenFilesPlainAndGzipped() throws {
        let pixels = (0..<24).map { UInt8($0 * 10) }
        _ = try write(idx([0, 0, 8, 3], [2, 3, 4], pixels), "images")
        _ = try write(idx([0, 0, 8, 1], [5], [9, 0, 3, 255, 1]), "labels")
        try pythonGzip(["images", "labels"])
        for suffix in ["", ".gz"] {
            let images = try IDX.readImages(path("images" + suffix))
            XCTAssertEqual(images.count, 2); XCTAssertEqual(images.rows, 3); XCTAssertEqual(images.columns, 4)
            XCTAssertEqual(images.pixels, pixels)
            XCTAssertEqual(try IDX.readLabels(path("labels" + suffix)), [9, 0, 3, 255, 1])
        }
        let empty = try IDX.parse(idx([0, 0, 8, 2], [2, 0], []), name: "empty")
        XCTAssertEqual(empty.dimensions, [2, 0]); XCTAssertEqual(empty.values, [])
        XCTAssertEqual(IDX.imagesMagic, 2051)
        XCTAssertEqual(IDX.labelsMagic, 2049)
    }

    func testIDXRefusesBadMagicWrongDimensionsAndTruncation() throws {
        let cases: [(bytes: [UInt8], rank: Int?, reason: String)] = [
            ([0, 0, 8], nil, "too short"),
            (idx([1, 0, 8, 1], [1], [0]), nil, "not an IDX file"),
            (idx([0, 0, 0x0D, 1], [1], [0, 0, 0, 0]), nil, "float32"),
            (idx([0, 0, 8, 1], [3], [1, 2, 3]), 3, "1-dimensional file, expected 3"),
            (idx([0, 0, 8, 3], [1, 2, 2], [1, 2, 3, 4]), 1, "3-dimensional file, expected 1"),
            (idx([0, 0, 8, 0], [], []), nil, "no dimensions"),
            (Array(idx([0, 0, 8, 3], [1, 2, 2], [])[0..<10]), 3, "truncated IDX header"),
            (idx([0, 0, 8, 3], [1, 2, 2], [1, 2, 3]), 3, "need 4 bytes of data, the file has 3 (truncated)"),
            (idx([0, 0, 8, 1], [2], [1, 2, 3]), 1, "need 2 bytes of data, the file has 3"),
            (idx([0, 0, 8, 3], [.max, .max, .max], []), 3, "more elements than an Int can count"),
        ]
        for (i, c) in cases.enumerated() {
            let file = try write(c.bytes, "bad\(i)")
            XCTAssertThrowsError(try IDX.read(file, rank: c.rank)) {
                XCTAssertTrue("\($0)".contains("bad\(i)") && "\($0)".contains(c.reason), "case \(i): \($0)")
            }
        }
    }

    // MARK: Fashion-MNIST

    func testFashionMNISTSplitsAreCompleteAndBalanced() throws {
        try skipUnlessFashionMNISTIsInstalled()
        for (split, count) in [(FashionMNIST.Split.train, 60_000), (.test, 10_000)] {
            let start = Date()
            let data = try FashionMNIST(split: split)
            print("Fashion-MNIST \(split.rawValue): \(data.count) images in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
            XCTAssertEqual(data.count, count)
            XCTAssertEqual(data.imageShape, [1, 28, 28])
            XCTAssertEqual(data.classNames, ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"])
            var perClass = [Int](repeating: 0, count: 10)
            for label in data.labels { perClass[Int(label)] += 1 }
            XCTAssertEqual(perClass, Array(repeating: count / 10, count: 10), split.rawValue)
            // Every 30th image (2000 and 333 of them, the last included): values byte / 255, the whole [0, 1] used.
            let indices = Array(stride(from: count - 1, through: 0, by: -30))
            let batch = data.batch(indices)
            XCTAssertEqual(batch.labels, indices.map { data.labels[$0] })
            XCTAssertEqual(batch.images.count, indices.count * 784)
            XCTAssertEqual(batch.images.min(), 0)
            XCTAssertEqual(batch.images.max(), 1)
            XCTAssertEqual(batch.images[400], Float(data.pixels[(count - 1) * 784 + 400]) / 255)
        }
    }

    func testFashionMNISTMissingFilesSayWhatToInstall() {
        XCTAssertThrowsError(try FashionMNIST(split: .train, directory: path("nowhere"))) {
            XCTAssertTrue("\($0)".contains("train-images-idx3-ubyte.gz") && "\($0)".contains("dataset-fashion-mnist") && "\($0)".contains("make deps"), "\($0)")
        }
        XCTAssertThrowsError(try FashionMNIST(pixels: [0], labels: [0]))
        XCTAssertThrowsError(try FashionMNIST(pixels: [UInt8](repeating: 0, count: 784), labels: [10]))
    }

    // MARK: Cluttered Fashion-MNIST

    func testScaledItemsMatchTheReferenceBilinearResize() throws {
        let source = try fashionTestItems()
        let item = source.batch([3]).images.map(Double.init)
        for side in [14, 28, 37, 56] {
            // Both compute in Float64 and round once to Float32: they agree to float32 rounding.
            let expected = Reference.resizeBilinearForward(BilinearResize(height: side, width: side), input: item, inputShape: [1, 1, 28, 28])
            let got = ClutteredFashionMNIST.scaled(source, item: 3, side: side)
            XCTAssertEqual(got.count, expected.count)
            XCTAssertLessThanOrEqual(zip(got, expected).map { abs(Double($0) - $1) }.max()!, 1e-6, "side \(side)")
        }
    }

    func testClutteredSamplesKeepTheirInvariants() throws {
        let source = try fashionTestItems()
        let configurations = [ClutteredFashionMNIST.Configuration(),
                              .init(canvasSize: 112, scaleRange: 1...2.5, clutterCount: 8, maxClutterCoverage: 0.2, maskThreshold: 0.2)]
        for c in configurations {
            let data = try ClutteredFashionMNIST(source: source, count: 60, seed: 11, configuration: c)
            let s = c.canvasSize
            XCTAssertEqual(data.imageShape, [1, s, s])
            let indices = Array(0..<data.count)
            let (images, labels) = data.batch(indices)
            let masks = data.masks(indices)
            for (n, sample) in data.samples.enumerated() {
                XCTAssertEqual(labels[n], source.labels[sample.item])
                let sides = Int((28 * c.scaleRange.lowerBound).rounded())...Int((28 * c.scaleRange.upperBound).rounded())
                XCTAssertTrue(sides.contains(sample.side), "side \(sample.side)")
                XCTAssertTrue(sample.x >= 0 && sample.y >= 0 && sample.x + sample.side <= s && sample.y + sample.side <= s, "object off the canvas: \(sample)")
                // Independently: the scaled item from the reference resize, placed; the expected mask and composite.
                let item = Reference.resizeBilinearForward(BilinearResize(height: sample.side, width: sample.side),
                                                           input: source.batch([sample.item]).images.map(Double.init), inputShape: [1, 1, 28, 28])
                var placed = [Double](repeating: 0, count: s * s)
                for r in 0..<sample.side { for col in 0..<sample.side { placed[(sample.y + r) * s + sample.x + col] = item[r * sample.side + col] } }
                var composite = placed.map(Float.init)
                var clutterCovers = [Bool](repeating: false, count: s * s)
                for p in sample.clutter {
                    XCTAssertNotEqual(p.item, sample.item)
                    XCTAssertTrue(p.x >= 0 && p.y >= 0 && p.x + c.clutterSize <= s && p.y + c.clutterSize <= s)
                    let crop = source.batch([p.item]).images
                    for r in 0..<c.clutterSize {
                        for col in 0..<c.clutterSize {
                            let at = (p.y + r) * s + p.x + col
                            composite[at] = max(composite[at], crop[(p.sourceY + r) * 28 + p.sourceX + col])
                            clutterCovers[at] = true
                        }
                    }
                }
                let box = sample.box
                var (rows, columns) = (Set<Int>(), Set<Int>())
                for at in 0..<(s * s) {
                    let (x, y) = (at % s, at / s), mask = masks[n * s * s + at]
                    // Mask == placed item above threshold, except within float32 rounding of it.
                    if abs(placed[at] - Double(c.maskThreshold)) > 1e-6 { XCTAssertEqual(mask, placed[at] > Double(c.maskThreshold), "sample \(n) at \(x),\(y)") }
                    if mask { XCTAssertTrue(box.contains(x: x, y: y), "sample \(n): mask pixel \(x),\(y) outside \(box)"); rows.insert(y); columns.insert(x) }
                    XCTAssertEqual(images[n * s * s + at], composite[at], accuracy: 1e-6, "sample \(n) at \(x),\(y)")
                }
                // The box is tight: the mask reaches each of its edges.
                XCTAssertEqual([rows.min(), rows.max(), columns.min(), columns.max()], [box.y0, box.y1 - 1, box.x0, box.x1 - 1], "sample \(n)")
                let covered = (box.y0..<box.y1).reduce(0) { sum, y in sum + (box.x0..<box.x1).filter { clutterCovers[y * s + $0] }.count }
                XCTAssertLessThanOrEqual(Float(covered), c.maxClutterCoverage * Float(box.area), "sample \(n)")
                XCTAssertEqual(sample.clutter.count, c.clutterCount)
            }
        }
    }

    func testClutteredGenerationIsDeterministicPerSeed() throws {
        let source = try fashionTestItems()
        let a = try ClutteredFashionMNIST(source: source, count: 40, seed: 5)
        let b = try ClutteredFashionMNIST(source: source, count: 40, seed: 5)
        let other = try ClutteredFashionMNIST(source: source, count: 40, seed: 6)
        let longer = try ClutteredFashionMNIST(source: source, count: 80, seed: 5)
        let indices = Array(0..<40)
        XCTAssertEqual(a.samples, b.samples)
        XCTAssertEqual(a.batch(indices).images, b.batch(indices).images)
        XCTAssertEqual(a.masks(indices), b.masks(indices))
        XCTAssertEqual(a.boxes, b.boxes)
        XCTAssertEqual(Array(longer.samples[0..<40]), a.samples)
        XCTAssertNotEqual(a.samples, other.samples)
        XCTAssertNotEqual(a.batch(indices).images, other.batch(indices).images)
    }

    func testClutteredRefusesImpossibleConfigurations() throws {
        let source = try FashionMNIST(pixels: [UInt8](repeating: 200, count: 2 * 784), labels: [0, 1])
        typealias C = ClutteredFashionMNIST.Configuration
        let cases: [(C, String)] = [
            (C(canvasSize: 50, scaleRange: 1...2), "does not fit"),
            (C(scaleRange: 0...1), "must be positive"),
            (C(clutterSize: 29), "size in 1...28"),
            (C(canvasSize: 20, scaleRange: 0.5...0.7, clutterSize: 21), "size in 1...20"),
            (C(maxClutterCoverage: 1.5), "coverage"),
            (C(maskThreshold: 1), "mask threshold"),
            // A patch as large as the canvas always covers the whole box.
            (C(canvasSize: 28, scaleRange: 1...1, clutterCount: 1, clutterSize: 28, maxClutterCoverage: 0), "no place for clutter patch 0"),
        ]
        for (c, reason) in cases {
            XCTAssertThrowsError(try ClutteredFashionMNIST(source: source, count: 3, seed: 1, configuration: c)) {
                XCTAssertTrue("\($0)".contains(reason), "\($0)")
            }
        }
        let blank = try FashionMNIST(pixels: [UInt8](repeating: 0, count: 2 * 784), labels: [0, 1])
        XCTAssertThrowsError(try ClutteredFashionMNIST(source: blank, count: 1, seed: 1)) { XCTAssertTrue("\($0)".contains("no pixel above"), "\($0)") }
        XCTAssertThrowsError(try ClutteredFashionMNIST(source: try FashionMNIST(pixels: [UInt8](repeating: 9, count: 784), labels: [0]), count: 1, seed: 1)) {
            XCTAssertTrue("\($0)".contains("at least 2"), "\($0)")
        }
    }
}
