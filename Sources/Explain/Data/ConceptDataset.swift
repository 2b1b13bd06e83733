import CLBackend
import Foundation
import Graph

/// A generator of concept-annotated images in the Broden format (`BrodenDataset`), for
/// dissecting models where Broden itself is not at hand. Each `size x size` image has:
///
/// - two colour regions (the background split at a random row or column): a neutral gray one of
///   60..80% of the image and one of a palette colour — pixel labels in the `color` category (the
///   coloured regions stay small enough that a unit's top 0.5% can reach IoU 0.04 with them);
/// - with probability 2/3 a texture over the whole background (stripes, checks or dots, drawn by
///   darkening the pattern to 45%) — an image-level label in the `texture` category;
/// - one object — pixel labels in the `object` category: a filled shape (circle, square, triangle)
///   in a third colour (its pixels are also labelled with that colour), or, when Fashion-MNIST is
///   given, with probability 1/2 a garment scaled to 1/2..3/4 of the image, drawn in light gray
///   where its Fashion-MNIST intensity exceeds 0.3 (no colour label).
///
/// Images and masks (same size) are PNGs under `images/concepts/`. Deterministic in `seed`.
public enum ConceptDataset {
    public static let colors: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("red", (220, 30, 30)), ("green", (30, 170, 40)), ("blue", (30, 60, 220)), ("yellow", (235, 220, 40)),
        ("cyan", (40, 210, 220)), ("magenta", (210, 40, 200)), ("orange", (245, 140, 20)), ("purple", (110, 40, 160)),
        ("gray", (128, 128, 128)),
    ]
    /// The palette colours a region or shape can take (all but the neutral gray, the last).
    static var vivid: Int { colors.count - 1 }
    /// Class ids `generate` returns: the shape, then the garments (shapes.count + garment class).
    public static var classCount: Int { shapes.count + FashionMNIST.names.count }
    public static let textures = ["stripes", "checks", "dots"]
    public static let shapes = ["circle", "square", "triangle"]
    public static let categories = ["color", "object", "texture"]

    /// Label numbers: colours from 1, then textures, shapes and the Fashion-MNIST garments.
    static var labelNames: [(name: String, category: Int)] {
        colors.map { ($0.name, 0) } + textures.map { ($0, 2) } + shapes.map { ($0, 1) }
            + FashionMNIST.names.map { ($0.lowercased().replacingOccurrences(of: "/", with: "-"), 1) }
    }
    static func colorLabel(_ i: Int) -> Int32 { Int32(1 + i) }
    static func textureLabel(_ i: Int) -> Int32 { Int32(1 + colors.count + i) }
    static func shapeLabel(_ i: Int) -> Int32 { Int32(1 + colors.count + textures.count + i) }
    static func garmentLabel(_ i: Int) -> Int32 { Int32(1 + colors.count + textures.count + shapes.count + i) }

    /// Writes `count` images into `directory` (created; existing files are replaced only with
    /// `overwrite`). `garments` supplies Fashion-MNIST images (nil: shapes only). `progress` is
    /// called after each image with the number written.
    /// Returns one class id per image (see `classCount`): what `make-concepts --npy` writes as
    /// training labels, so a model learns to find and tell apart the object.
    @discardableResult
    public static func generate(into directory: String, count: Int, size: Int, seed: UInt64, garments: FashionMNIST?,
                                overwrite: Bool = false, progress: (Int) -> Void = { _ in }) throws -> [Int32] {
        guard count > 0 else { throw DataError("make-concepts: --count must be positive, got \(count)") }
        guard size >= 16 && size <= 1024 else { throw DataError("make-concepts: --size must be in 16...1024, got \(size)") }
        let fm = FileManager.default
        if !overwrite && fm.fileExists(atPath: directory + "/index.csv") {
            throw DataError("make-concepts: \(directory)/index.csv exists; pass --overwrite to replace the dataset")
        }
        do {
            try fm.createDirectory(atPath: directory + "/images/concepts", withIntermediateDirectories: true)
        } catch {
            throw DataError("make-concepts: cannot create \(directory)/images/concepts: \(error.localizedDescription)")
        }
        var rng = SeededGenerator(seed: seed)
        let names = labelNames
        var frequency = [Int](repeating: 0, count: names.count + 1), pixels = [Int](repeating: 0, count: names.count + 1)
        var index = "image,split,ih,iw,sh,sw,color,object,texture\n"
        var classes: [Int32] = []
        for n in 0..<count {
            let scene = try compose(size: size, garments: garments, rng: &rng)
            classes.append(scene.classID)
            let stem = String(format: "concepts/%06d", n)
            try writePNG(scene.image, to: "\(directory)/images/\(stem).png", overwrite: true)
            try writePNG(try maskImage(scene.color, width: size, height: size), to: "\(directory)/images/\(stem)_color.png", overwrite: true)
            try writePNG(try maskImage(scene.object, width: size, height: size), to: "\(directory)/images/\(stem)_object.png", overwrite: true)
            for label in Set(scene.color + scene.object) where label > 0 { frequency[Int(label)] += 1 }
            for label in scene.color + scene.object where label > 0 { pixels[Int(label)] += 1 }
            if let t = scene.texture { frequency[Int(t)] += 1; pixels[Int(t)] += size * size }
            let split = n % 10 == 9 ? "val" : "train"
            index += "\(stem).png,\(split),\(size),\(size),\(size),\(size),\(stem)_color.png,\(stem)_object.png,\(scene.texture.map(String.init) ?? "")\n"
            progress(n + 1)
        }
        var labels = "number,name,category,frequency,coverage,syns\n"
        for (i, label) in names.enumerated() {
            let number = i + 1
            let coverage = frequency[number] == 0 ? 0 : Double(pixels[number]) / Double(frequency[number] * size * size)
            labels += "\(number),\(label.name),\(categories[label.category])(\(frequency[number])),\(frequency[number]),\(String(format: "%.4f", coverage)),\n"
        }
        var categoryCSV = "name,first,last,count,frequency\n"
        for (c, name) in categories.enumerated() {
            let members = names.indices.filter { names[$0].category == c }.map { $0 + 1 }
            let annotated = c == 2 ? members.reduce(0) { $0 + frequency[$1] } : count
            categoryCSV += "\(name),\(members.min()!),\(members.max()!),\(members.count),\(annotated)\n"
        }
        for (file, text) in [("index.csv", index), ("label.csv", labels), ("category.csv", categoryCSV)] {
            do {
                try text.write(toFile: "\(directory)/\(file)", atomically: true, encoding: .utf8)
            } catch {
                throw DataError("make-concepts: cannot write \(directory)/\(file): \(error.localizedDescription)")
            }
        }
        return classes
    }

    struct Scene {
        var image: Image
        var color: [Int32], object: [Int32]
        var texture: Int32?
        var classID: Int32
        /// The filled shape's palette colour (nil for a garment).
        var objectColor: Int?
    }

    static func compose(size: Int, garments: FashionMNIST?, rng: inout SeededGenerator) throws -> Scene {
        var rgb = [UInt8](repeating: 0, count: size * size * 3)
        var color = [Int32](repeating: 0, count: size * size), object = [Int32](repeating: 0, count: size * size)
        func paint(_ p: Int, _ c: Int, scale: Float = 1) {
            let v = colors[c].rgb
            rgb[p * 3] = UInt8(Float(v.0) * scale)
            rgb[p * 3 + 1] = UInt8(Float(v.1) * scale)
            rgb[p * 3 + 2] = UInt8(Float(v.2) * scale)
            color[p] = colorLabel(c)
        }
        // Background: neutral gray, and a region of a vivid colour beyond a split at 60..80% along a random axis.
        var palette = Array(0..<vivid).shuffled(using: &rng)
        let (first, second, third) = (vivid, palette.removeFirst(), palette.removeFirst())
        let vertical = Bool.random(using: &rng)
        let split = Int.random(in: (size * 6 / 10)...(size * 8 / 10), using: &rng)
        let texture = Int.random(in: 0..<3, using: &rng) < 2 ? Int.random(in: 0..<textures.count, using: &rng) : nil
        let period = max(4, size / 8), phase = Int.random(in: 0..<period, using: &rng)
        for y in 0..<size {
            for x in 0..<size {
                let onPattern: Bool
                switch texture {
                case 0?: onPattern = ((vertical ? y : x) + phase) % period < period / 2
                case 1?: onPattern = (((x + phase) / (period / 2 + 1)) + ((y + phase) / (period / 2 + 1))) % 2 == 0
                case 2?:
                    let (dx, dy) = ((x + phase) % period - period / 2, (y + phase) % period - period / 2)
                    onPattern = dx * dx + dy * dy <= (period / 4) * (period / 4)
                default: onPattern = false
                }
                paint(y * size + x, (vertical ? x : y) < split ? first : second, scale: onPattern ? 0.45 : 1)
            }
        }
        // One object: a garment (when given, half the time) or a filled shape in a third colour.
        var classID = Int32(0)
        var objectColor: Int?
        if let garments, Bool.random(using: &rng) {
            let item = Int.random(in: 0..<garments.count, using: &rng)
            let side = Int.random(in: (size / 2)...(size * 3 / 4), using: &rng)
            let (ox, oy) = (Int.random(in: 0...(size - side), using: &rng), Int.random(in: 0...(size - side), using: &rng))
            let label = garmentLabel(Int(garments.labels[item]))
            classID = Int32(shapes.count) + garments.labels[item]
            let s = FashionMNIST.side
            for y in 0..<side {
                for x in 0..<side {
                    let v = Float(garments.pixels[item * s * s + (y * s / side) * s + x * s / side]) / 255
                    guard v > 0.3 else { continue }
                    let p = (oy + y) * size + ox + x
                    let gray = UInt8(150 + 105 * v)
                    (rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2]) = (gray, gray, gray)
                    color[p] = 0
                    object[p] = label
                }
            }
        } else {
            let shape = Int.random(in: 0..<shapes.count, using: &rng)
            classID = Int32(shape)
            objectColor = third
            let side = Int.random(in: (size / 4)...(size / 2), using: &rng)
            let (ox, oy) = (Int.random(in: 0...(size - side), using: &rng), Int.random(in: 0...(size - side), using: &rng))
            for y in 0..<side {
                for x in 0..<side {
                    let (u, v) = ((Float(x) + 0.5) / Float(side), (Float(y) + 0.5) / Float(side))
                    let inside: Bool
                    switch shape {
                    case 0: inside = (u - 0.5) * (u - 0.5) + (v - 0.5) * (v - 0.5) <= 0.25
                    case 1: inside = true
                    default: inside = abs(u - 0.5) <= v / 2
                    }
                    guard inside else { continue }
                    let p = (oy + y) * size + ox + x
                    paint(p, third)
                    object[p] = shapeLabel(shape)
                }
            }
        }
        let image = try Image(width: size, height: size, channels: 3, pixels: rgb)
        return Scene(image: image, color: color, object: object, texture: texture.map(textureLabel), classID: classID,
                     objectColor: objectColor)
    }

    /// Labels as an RGB mask PNG: R = label % 256, G = label / 256.
    static func maskImage(_ labels: [Int32], width: Int, height: Int) throws -> Image {
        var pixels = [UInt8](repeating: 0, count: labels.count * 3)
        for (p, label) in labels.enumerated() {
            pixels[p * 3] = UInt8(label % 256)
            pixels[p * 3 + 1] = UInt8(label / 256)
        }
        return try Image(width: width, height: height, channels: 3, pixels: pixels)
    }
}

/// A classification task on `ConceptDataset` scenes (shapes only, no garments) that needs both of
/// its planted concept kinds: the class of an image is its shape and that shape's colour,
/// `shape * 8 + colour` over the 3 shapes and 8 palette colours (24 classes; the colour regions of
/// the background are distractors, never the class). Scenes are drawn in order from one
/// `SeededGenerator(seed:)`, exactly as `ConceptDataset.generate` draws them with no garments, and
/// held in memory as bytes (3 x size x size per image); `batch` gives RGB in [0, 1] (`byte / 255`).
public struct ConceptClassification: LabeledImageDataset, Sendable {
    public let count: Int
    public let size: Int
    private let pixels: [UInt8]
    public let labels: [Int32]

    public init(count: Int, size: Int, seed: UInt64) throws {
        guard count > 0 else { throw DataError("concept classification: count must be positive, got \(count)") }
        guard size >= 16 && size <= 1024 else { throw DataError("concept classification: size must be in 16...1024, got \(size)") }
        var rng = SeededGenerator(seed: seed)
        var pixels = [UInt8](), labels = [Int32]()
        pixels.reserveCapacity(count * 3 * size * size)
        for _ in 0..<count {
            let scene = try ConceptDataset.compose(size: size, garments: nil, rng: &rng)
            guard let colour = scene.objectColor else { throw DataError("concept classification: a scene without a shape") }
            labels.append(scene.classID * Int32(ConceptDataset.vivid) + Int32(colour))
            pixels += scene.image.pixels
        }
        self.count = count
        self.size = size
        self.pixels = pixels
        self.labels = labels
    }

    public var imageShape: Shape { [3, size, size] }
    public var classes: Int { ConceptDataset.shapes.count * ConceptDataset.vivid }
    public var classNames: [String] {
        ConceptDataset.shapes.flatMap { shape in ConceptDataset.colors.prefix(ConceptDataset.vivid).map { "\($0.name) \(shape)" } }
    }

    public func batch(_ indices: [Int]) -> (images: [Float], labels: [Int32]) {
        let plane = size * size
        var images = [Float](repeating: 0, count: indices.count * 3 * plane)
        for (n, i) in indices.enumerated() {
            for p in 0..<plane {
                for c in 0..<3 { images[(n * 3 + c) * plane + p] = Float(pixels[(i * plane + p) * 3 + c]) / 255 }
            }
        }
        return (images, indices.map { labels[$0] })
    }
}
