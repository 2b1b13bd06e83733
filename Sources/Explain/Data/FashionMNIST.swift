import CLBackend
import Foundation
import Graph

/// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28x28 gray images of clothing in 10 classes,
/// 60,000 for training and 10,000 for testing, 6,000 and 1,000 per class. Read from the IDX files
/// of the Debian package `dataset-fashion-mnist`; pixels are the files' bytes scaled to [0, 1]
/// (`byte / 255`), one channel: `imageShape == [1, 28, 28]`.
public struct FashionMNIST: LabeledImageDataset, Sendable {
    public enum Split: String, Sendable, CaseIterable {
        case train, test

        /// The IDX files' base names (the Debian package gzips them: `NAME.gz`).
        var fileNames: (images: String, labels: String) {
            switch self {
            case .train: return ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
            case .test: return ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
            }
        }
    }

    /// Where `dataset-fashion-mnist` installs the files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    public static let side = 28
    public static let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    /// The images' bytes, `count * 28 * 28` of them, image after image, rows top to bottom.
    public let pixels: [UInt8]
    public let labels: [Int32]

    /// Loads `split` from `directory`, taking `NAME.gz` or else the uncompressed `NAME`.
    public init(split: Split, directory: String = FashionMNIST.defaultDirectory) throws {
        let (imagesFile, labelsFile) = try (Self.locate(split.fileNames.images, in: directory, split),
                                            Self.locate(split.fileNames.labels, in: directory, split))
        let images = try IDX.readImages(imagesFile)
        guard images.rows == Self.side, images.columns == Self.side else {
            throw DataError("\(imagesFile): images are \(images.rows)x\(images.columns), Fashion-MNIST's are \(Self.side)x\(Self.side)")
        }
        let labels = try IDX.readLabels(labelsFile)
        guard labels.count == images.count else {
            throw DataError("\(labelsFile): \(labels.count) labels for the \(images.count) images of \(imagesFile)")
        }
        try self.init(pixels: images.pixels, labels: labels.map(Int32.init))
    }

    /// A dataset of 28x28 byte images and their labels in `0..<10` (subsets, synthetic items).
    public init(pixels: [UInt8], labels: [Int32]) throws {
        guard pixels.count == labels.count * Self.side * Self.side else {
            throw DataError("Fashion-MNIST: \(pixels.count) bytes are not \(labels.count) images of \(Self.side)x\(Self.side)")
        }
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= Self.names.count }) {
            throw DataError("Fashion-MNIST: label \(bad) is outside 0..<\(Self.names.count)")
        }
        self.pixels = pixels
        self.labels = labels
    }

    private static func locate(_ name: String, in directory: String, _ split: Split) throws -> String {
        let base = URL(fileURLWithPath: directory).appendingPathComponent(name).path
        if let found = [base + ".gz", base].first(where: { FileManager.default.fileExists(atPath: $0) }) { return found }
        throw DataError("Fashion-MNIST \(split.rawValue) split: \(base).gz not found; install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist, or run make deps)")
    }

    public var count: Int { labels.count }
    public var imageShape: Shape { [1, Self.side, Self.side] }
    public var classes: Int { Self.names.count }
    public var classNames: [String] { Self.names }

    public func batch(_ indices: [Int]) -> (images: [Float], labels: [Int32]) {
        let per = Self.side * Self.side
        var images = [Float](repeating: 0, count: indices.count * per)
        images.withUnsafeMutableBufferPointer { out in
            pixels.withUnsafeBufferPointer { bytes in
                for (n, i) in indices.enumerated() {
                    for p in 0..<per { out[n * per + p] = Float(bytes[i * per + p]) / 255 }
                }
            }
        }
        return (images, indices.map { labels[$0] })
    }
}
