import CLBackend

/// A labelled image dataset held in host memory: `count` images of shape `imageShape` (C, H, W),
/// float32 in C order, with integer class labels in `0..<classes`.
public protocol LabeledImageDataset {
    var count: Int { get }
    /// `[C, H, W]` of one image.
    var imageShape: Shape { get }
    var classes: Int { get }
    /// Human-readable class names, `classes` of them.
    var classNames: [String] { get }
    /// The images at `indices`, concatenated (`indices.count * C * H * W` values), and their labels.
    func batch(_ indices: [Int]) -> (images: [Float], labels: [Int32])
}

/// A dataset whose images and labels are arrays in memory (tests, small synthetic sets).
public struct InMemoryDataset: LabeledImageDataset, Sendable {
    public let images: [Float]
    public let labels: [Int32]
    public let imageShape: Shape
    public let classes: Int
    public let classNames: [String]

    public init(images: [Float], labels: [Int32], imageShape: Shape, classes: Int, classNames: [String]? = nil) throws {
        guard imageShape.rank == 3, imageShape.count > 0, images.count == labels.count * imageShape.count else {
            throw GraphError("dataset: \(images.count) values are not \(labels.count) images of \(imageShape)")
        }
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= classes }) {
            throw GraphError("dataset: label \(bad) is outside 0..<\(classes)")
        }
        let names = classNames ?? (0..<classes).map { "class \($0)" }
        guard names.count == classes else { throw GraphError("dataset: \(names.count) class names for \(classes) classes") }
        self.images = images
        self.labels = labels
        self.imageShape = imageShape
        self.classes = classes
        self.classNames = names
    }

    public var count: Int { labels.count }

    public func batch(_ indices: [Int]) -> (images: [Float], labels: [Int32]) {
        let per = imageShape.count
        var out: [Float] = []
        out.reserveCapacity(indices.count * per)
        for i in indices { out += images[(i * per)..<((i + 1) * per)] }
        return (out, indices.map { labels[$0] })
    }
}
