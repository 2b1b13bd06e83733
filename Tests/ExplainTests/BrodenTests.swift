import Foundation
import Graph
import XCTest
@testable import Explain

/// The Broden reader on the concept generator's output, and on broken copies of it.
final class BrodenTests: XCTestCase {
    static func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "loupe-broden-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static var garments: FashionMNIST? {
        FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory) ? try? FashionMNIST(split: .test) : nil
    }

    /// The reader returns, image by image, exactly the scenes the generator composed (recomposed
    /// here from the same seed): pixels, both mask planes and the texture label.
    func testReaderRoundTripsGeneratedDataset() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let garments = Self.garments
        try ConceptDataset.generate(into: dir, count: 12, size: 32, seed: 7, garments: garments)
        let data = try BrodenDataset(directory: dir)
        XCTAssertEqual(data.count, 12)
        XCTAssertEqual(data.categories, ["color", "object", "texture"])
        XCTAssertEqual(data.imageLevel, [false, false, true])
        XCTAssertEqual(data.labels.map(\.name), ["-"] + ConceptDataset.labelNames.map(\.name))
        XCTAssertEqual(data.labels[1].category, 0)
        XCTAssertEqual(data.labels[Int(ConceptDataset.shapeLabel(0))].name, "circle")
        XCTAssertEqual(data.labels[Int(ConceptDataset.shapeLabel(0))].category, 1)
        XCTAssertEqual(data.maskHeight, 32)
        var rng = SeededGenerator(seed: 7)
        var textures = 0
        for i in 0..<data.count {
            let scene = try ConceptDataset.compose(size: 32, garments: garments, rng: &rng)
            XCTAssertEqual(try data.image(at: i), scene.image)
            let a = try data.annotation(at: i)
            XCTAssertEqual(a.planes, [scene.color, scene.object])
            XCTAssertEqual(a.imageLabels, scene.texture.map { [$0] } ?? [])
            XCTAssertEqual(a.categories, scene.texture == nil ? [0, 1] : [0, 1, 2])
            textures += scene.texture == nil ? 0 : 1
            XCTAssertTrue(scene.object.contains { $0 > 0 }, "image \(i) has no object")
        }
        XCTAssertGreaterThan(textures, 0)
        XCTAssertThrowsError(try ConceptDataset.generate(into: dir, count: 1, size: 32, seed: 1, garments: nil)) {
            XCTAssertTrue("\($0)".contains("--overwrite"), "\($0)")
        }
    }

    /// Labels above 255 use the green channel: R + 256 * G.
    /// `ConceptClassification` draws the scenes `generate` writes for the same seed (no garments),
    /// and labels each with its object mask's shape and the colour mask's label on the shape.
    func testConceptClassificationMatchesGeneratedScenes() throws {
        let dir = NSTemporaryDirectory() + "loupe-concept-classes-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ConceptDataset.generate(into: dir, count: 9, size: 32, seed: 4, garments: nil)
        let written = try BrodenDataset(directory: dir)
        let task = try ConceptClassification(count: 9, size: 32, seed: 4)
        XCTAssertEqual(task.classes, 24)
        XCTAssertEqual(task.imageShape, [3, 32, 32])
        let (images, labels) = task.batch(Array(0..<9))
        for n in 0..<9 {
            let image = try written.image(at: n).tensor(channels: 3).values
            XCTAssertEqual(Array(images[(n * 3072)..<((n + 1) * 3072)]), image, "image \(n)")
            let a = try written.annotation(at: n)
            let colours = a.planes[0], objects = a.planes[1]
            let p = try XCTUnwrap(objects.firstIndex { $0 > 0 })
            let shape = written.labels[Int(objects[p])].name, colour = written.labels[Int(colours[p])].name
            XCTAssertEqual(task.classNames[Int(labels[n])], "\(colour) \(shape)", "image \(n)")
        }
        XCTAssertThrowsError(try ConceptClassification(count: 0, size: 32, seed: 1))
    }

    func testMaskLabelsUseRedAndGreen() throws {
        let mask = try ConceptDataset.maskImage([0, 1, 255, 256, 300], width: 5, height: 1)
        XCTAssertEqual(mask.pixels, [0, 0, 0, 1, 0, 0, 255, 0, 0, 0, 1, 0, 44, 1, 0])
    }

    func testMalformedDatasetsGiveOneLineErrors() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ConceptDataset.generate(into: dir, count: 3, size: 16, seed: 1, garments: nil)
        let index = try String(contentsOfFile: dir + "/index.csv", encoding: .utf8)
        let labels = try String(contentsOfFile: dir + "/label.csv", encoding: .utf8)
        func expectError(_ file: String, _ text: String, mentions: String, line: UInt = #line) throws {
            let original = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            try text.write(toFile: dir + "/" + file, atomically: true, encoding: .utf8)
            defer { try? original.write(toFile: dir + "/" + file, atomically: true, encoding: .utf8) }
            do {
                let data = try BrodenDataset(directory: dir)
                for i in 0..<data.count { _ = try data.annotation(at: i) }
                XCTFail("no error for \(mentions)", line: line)
            } catch {
                let message = "\(error)"
                XCTAssertTrue(message.contains(mentions), message, line: line)
                XCTAssertFalse(message.contains("\n"), message, line: line)
            }
        }
        var lines = index.split(separator: "\n").map(String.init)
        lines[1] += ",extra"
        try expectError("index.csv", lines.joined(separator: "\n"), mentions: "index.csv line 2: 10 fields, the header has 9")
        try expectError("index.csv", index.replacingOccurrences(of: "image,split", with: "picture,split"), mentions: "lacks column(s) image")
        try expectError("label.csv", labels.replacingOccurrences(of: "color(", with: "colour("), mentions: "category 'colour' is not in category.csv")
        try expectError("label.csv", labels.replacingOccurrences(of: "\n2,", with: "\n7,"), mentions: "label 7 out of order")
        try expectError("index.csv", index + "\"concepts/x.png,train,16,16,16,16,,,\n", mentions: "unterminated quoted field")
        try expectError("index.csv", index.replacingOccurrences(of: ",16,16,16,16,", with: ",16,16,8,8,"), mentions: "mask is 16x16, index.csv says 8x8")
        try FileManager.default.removeItem(atPath: dir + "/images/concepts/000001_object.png")
        try expectError("index.csv", index, mentions: "cannot read PNG \(dir)/images/concepts/000001_object.png")
        XCTAssertThrowsError(try BrodenDataset(directory: dir + "/missing")) { XCTAssertTrue("\($0)".contains("category.csv: no such file"), "\($0)") }
    }
}
