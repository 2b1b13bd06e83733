import CLBackend
import Graph

/// Cluttered Fashion-MNIST, a localization benchmark in the manner of cluttered MNIST (Mnih et al.
/// 2014): each sample is one Fashion-MNIST item, scaled by a random factor and placed at a random
/// position on a larger black canvas, with small crops of other items scattered around it as clutter.
/// Every sample records the object's ground-truth box and mask, so that attribution maps can be
/// scored (pointing game, CAM's box IoU) against known object pixels.
///
/// Generation, for each sample in turn, from one `SeededGenerator(seed:)`:
/// 1. an item `i` of the source, uniformly; the sample's label is the item's;
/// 2. a scale `s` uniform in `scaleRange`; the item is resampled bilinearly to `n x n`,
///    `n = round(28 s)` (`scaled(item:side:)`);
/// 3. its top-left corner uniform over the positions that keep it wholly on the canvas;
/// 4. `mask` = the canvas pixels where the scaled item is above `maskThreshold` (strictly), and
///    `box` = the tight half-open bounding box of the mask (an item with no pixel above the
///    threshold is an error);
/// 5. `clutterCount` patches, each a `clutterSize` square crop at a uniform offset in a uniformly
///    drawn item other than `i`, at a uniform position wholly on the canvas. A position is redrawn
///    (up to `placementAttempts` times) while it would raise the number of box pixels covered by
///    any patch — the union, not the sum — above `maxClutterCoverage * box.area`.
///
/// Rendering composites with the maximum: canvas = max(scaled item, patches), so clutter never
/// dims the object, and the object's pixels are at least its own values. Images are rendered when
/// asked for (`batch`, `masks`), so a large set costs only its layout in memory. The same seed,
/// source and configuration give identical samples, and a longer set starts with a shorter one.
public struct ClutteredFashionMNIST: LabeledImageDataset, Sendable {
    public struct Configuration: Hashable, Sendable {
        /// Side of the square canvas in pixels.
        public var canvasSize: Int
        /// The factors the 28x28 item is scaled by, drawn uniformly.
        public var scaleRange: ClosedRange<Float>
        /// Clutter patches per sample.
        public var clutterCount: Int
        /// Side of a square clutter patch, at most 28 and at most the canvas side.
        public var clutterSize: Int
        /// The largest fraction of the object's box that clutter may cover, in [0, 1].
        public var maxClutterCoverage: Float
        /// A scaled item's pixel belongs to the object mask when it is above this, in [0, 1).
        public var maskThreshold: Float

        public init(canvasSize: Int = 84, scaleRange: ClosedRange<Float> = 1...2, clutterCount: Int = 4,
                    clutterSize: Int = 8, maxClutterCoverage: Float = 0.1, maskThreshold: Float = 0.1) {
            self.canvasSize = canvasSize
            self.scaleRange = scaleRange
            self.clutterCount = clutterCount
            self.clutterSize = clutterSize
            self.maxClutterCoverage = maxClutterCoverage
            self.maskThreshold = maskThreshold
        }
    }

    /// A box in canvas pixels, half-open: columns `x0..<x1`, rows `y0..<y1`.
    public struct Box: Hashable, Sendable {
        public var x0: Int, y0: Int, x1: Int, y1: Int
        public init(x0: Int, y0: Int, x1: Int, y1: Int) { self.x0 = x0; self.y0 = y0; self.x1 = x1; self.y1 = y1 }
        public var width: Int { x1 - x0 }
        public var height: Int { y1 - y0 }
        public var area: Int { width * height }
        public func contains(x: Int, y: Int) -> Bool { x >= x0 && x < x1 && y >= y0 && y < y1 }
    }

    /// One clutter patch: the `clutterSize` square of source item `item` at column `sourceX`, row
    /// `sourceY`, pasted with its top-left corner at canvas column `x`, row `y`.
    public struct Patch: Hashable, Sendable {
        public var item: Int, sourceX: Int, sourceY: Int, x: Int, y: Int
    }

    /// The layout of one sample: source item `item` scaled to `side x side` with its top-left corner
    /// at canvas column `x`, row `y`; the mask's bounding `box`; the clutter.
    public struct Sample: Hashable, Sendable {
        public var item: Int, label: Int32, side: Int, x: Int, y: Int
        public var box: Box
        public var clutter: [Patch]
    }

    /// Redraws allowed per clutter patch before generation gives up on the configuration.
    public static let placementAttempts = 1000

    public let source: FashionMNIST
    public let configuration: Configuration
    public let seed: UInt64
    public let samples: [Sample]

    /// Generates the layout of `count` samples from `source` (see the type's documentation).
    public init(source: FashionMNIST, count: Int, seed: UInt64, configuration: Configuration = .init()) throws {
        let c = configuration
        let largest = max(1, Int((Float(FashionMNIST.side) * c.scaleRange.upperBound).rounded()))
        guard count >= 0 else { throw DataError("cluttered Fashion-MNIST: count \(count) is negative") }
        guard c.scaleRange.lowerBound > 0 else { throw DataError("cluttered Fashion-MNIST: scale range \(c.scaleRange) must be positive") }
        guard largest <= c.canvasSize else {
            throw DataError("cluttered Fashion-MNIST: an item scaled by \(c.scaleRange.upperBound) (\(largest) px) does not fit the \(c.canvasSize) px canvas")
        }
        let largestPatch = min(FashionMNIST.side, c.canvasSize)
        guard c.clutterCount >= 0, (1...largestPatch).contains(c.clutterSize) else {
            throw DataError("cluttered Fashion-MNIST: \(c.clutterCount) clutter patches of \(c.clutterSize) px; the count must be >= 0 and the size in 1...\(largestPatch) (the item and the canvas side)")
        }
        guard (0...1).contains(c.maxClutterCoverage), (0..<1).contains(c.maskThreshold) else {
            throw DataError("cluttered Fashion-MNIST: clutter coverage \(c.maxClutterCoverage) must be in [0, 1] and mask threshold \(c.maskThreshold) in [0, 1)")
        }
        guard source.count >= (c.clutterCount > 0 ? 2 : 1) || count == 0 else {
            throw DataError("cluttered Fashion-MNIST: the source has \(source.count) items; objects with clutter from other items need at least 2")
        }
        self.source = source
        self.configuration = c
        self.seed = seed
        var rng = SeededGenerator(seed: seed)
        var samples: [Sample] = []
        samples.reserveCapacity(count)
        for index in 0..<count {
            let item = Int.random(in: 0..<source.count, using: &rng)
            let side = max(1, Int((Float(FashionMNIST.side) * Float.random(in: c.scaleRange, using: &rng)).rounded()))
            let x = Int.random(in: 0...(c.canvasSize - side), using: &rng), y = Int.random(in: 0...(c.canvasSize - side), using: &rng)
            let box = try Self.maskBox(Self.scaled(source, item: item, side: side), side: side, x: x, y: y,
                                       threshold: c.maskThreshold, sample: index, item: item)
            let clutter = try Self.placeClutter(around: box, avoiding: item, in: source, c, &rng, sample: index)
            samples.append(Sample(item: item, label: source.labels[item], side: side, x: x, y: y, box: box, clutter: clutter))
        }
        self.samples = samples
    }

    public var count: Int { samples.count }
    public var imageShape: Shape { [1, configuration.canvasSize, configuration.canvasSize] }
    public var classes: Int { source.classes }
    public var classNames: [String] { source.classNames }
    /// The objects' ground-truth boxes, one per sample.
    public var boxes: [Box] { samples.map(\.box) }

    public func batch(_ indices: [Int]) -> (images: [Float], labels: [Int32]) {
        let size = configuration.canvasSize
        var images = [Float](repeating: 0, count: indices.count * size * size)
        images.withUnsafeMutableBufferPointer { out in
            source.pixels.withUnsafeBufferPointer { bytes in
                for (n, i) in indices.enumerated() {
                    let s = samples[i], canvas = n * size * size, item = Self.scaled(source, item: s.item, side: s.side)
                    for r in 0..<s.side {
                        for col in 0..<s.side { out[canvas + (s.y + r) * size + s.x + col] = item[r * s.side + col] }
                    }
                    for p in s.clutter {
                        for r in 0..<configuration.clutterSize {
                            for col in 0..<configuration.clutterSize {
                                let value = Float(bytes[Self.pixelOffset(p.item, row: p.sourceY + r, column: p.sourceX + col)]) / 255
                                let at = canvas + (p.y + r) * size + p.x + col
                                out[at] = max(out[at], value)
                            }
                        }
                    }
                }
            }
        }
        return (images, indices.map { samples[$0].label })
    }

    /// The object masks of the samples at `indices`, concatenated: `canvasSize * canvasSize` values
    /// each, rows top to bottom; true where the scaled item is above `maskThreshold`.
    public func masks(_ indices: [Int]) -> [Bool] {
        let size = configuration.canvasSize
        var masks = [Bool](repeating: false, count: indices.count * size * size)
        for (n, i) in indices.enumerated() {
            let s = samples[i], item = Self.scaled(source, item: s.item, side: s.side)
            for r in 0..<s.side {
                for col in 0..<s.side where item[r * s.side + col] > configuration.maskThreshold {
                    masks[n * size * size + (s.y + r) * size + s.x + col] = true
                }
            }
        }
        return masks
    }

    /// Source item `item` (bytes / 255) resampled bilinearly to `side x side` with the half-pixel
    /// rule of `BilinearResize(alignCorners: false)` (PyTorch's `align_corners=False`):
    /// `src = max(0, (dst + 0.5) * 28 / side - 0.5)`, blending `floor(src)` and the next pixel
    /// (clamped to the last) with weight `src - floor(src)`, weights in Float64.
    public static func scaled(_ source: FashionMNIST, item: Int, side: Int) -> [Float] {
        let from = FashionMNIST.side
        let taps = (0..<side).map { dst -> (Int, Int, Double) in
            let src = max(0, (Double(dst) + 0.5) * Double(from) / Double(side) - 0.5)
            let i0 = Int(src.rounded(.down))
            return (i0, min(i0 + 1, from - 1), src - Double(i0))
        }
        var out = [Float](repeating: 0, count: side * side)
        source.pixels.withUnsafeBufferPointer { bytes in
            func pixel(_ r: Int, _ c: Int) -> Double { Double(bytes[pixelOffset(item, row: r, column: c)]) / 255 }
            for (r, (r0, r1, wr)) in taps.enumerated() {
                for (c, (c0, c1, wc)) in taps.enumerated() {
                    let top = pixel(r0, c0) * (1 - wc) + pixel(r0, c1) * wc
                    let bottom = pixel(r1, c0) * (1 - wc) + pixel(r1, c1) * wc
                    out[r * side + c] = Float(top * (1 - wr) + bottom * wr)
                }
            }
        }
        return out
    }

    private static func pixelOffset(_ item: Int, row: Int, column: Int) -> Int {
        (item * FashionMNIST.side + row) * FashionMNIST.side + column
    }

    /// The tight half-open box around the scaled item's pixels above `threshold`, in canvas pixels.
    private static func maskBox(_ item: [Float], side: Int, x: Int, y: Int, threshold: Float, sample: Int, item index: Int) throws -> Box {
        var (x0, y0, x1, y1) = (Int.max, Int.max, Int.min, Int.min)
        for r in 0..<side {
            for c in 0..<side where item[r * side + c] > threshold {
                (x0, y0, x1, y1) = (min(x0, c), min(y0, r), max(x1, c + 1), max(y1, r + 1))
            }
        }
        guard x1 > x0 else {
            throw DataError("cluttered Fashion-MNIST: sample \(sample)'s item \(index) has no pixel above the mask threshold \(threshold)")
        }
        return Box(x0: x + x0, y0: y + y0, x1: x + x1, y1: y + y1)
    }

    /// Where `start..<start + length` meets `lower..<upper` along one axis (empty when they do not meet).
    private static func span(_ start: Int, _ length: Int, _ lower: Int, _ upper: Int) -> Range<Int> {
        let from = max(start, lower)
        return from..<max(from, min(start + length, upper))
    }

    private static func placeClutter(around box: Box, avoiding object: Int, in source: FashionMNIST, _ c: Configuration,
                                     _ rng: inout SeededGenerator, sample: Int) throws -> [Patch] {
        let allowed = Int((c.maxClutterCoverage * Float(box.area)).rounded(.down))
        var covered = [Bool](repeating: false, count: box.area), coveredCount = 0
        var patches: [Patch] = []
        for k in 0..<c.clutterCount {
            let drawn = Int.random(in: 0..<(source.count - 1), using: &rng)
            let item = drawn >= object ? drawn + 1 : drawn
            let sx = Int.random(in: 0...(FashionMNIST.side - c.clutterSize), using: &rng)
            let sy = Int.random(in: 0...(FashionMNIST.side - c.clutterSize), using: &rng)
            var placed = false
            for _ in 0..<placementAttempts {
                let x = Int.random(in: 0...(c.canvasSize - c.clutterSize), using: &rng)
                let y = Int.random(in: 0...(c.canvasSize - c.clutterSize), using: &rng)
                let overlap = (Self.span(x, c.clutterSize, box.x0, box.x1), Self.span(y, c.clutterSize, box.y0, box.y1))
                let fresh = overlap.1.reduce(0) { sum, r in
                    sum + overlap.0.filter { !covered[(r - box.y0) * box.width + $0 - box.x0] }.count
                }
                guard coveredCount + fresh <= allowed else { continue }
                for r in overlap.1 { for col in overlap.0 { covered[(r - box.y0) * box.width + col - box.x0] = true } }
                coveredCount += fresh
                patches.append(Patch(item: item, sourceX: sx, sourceY: sy, x: x, y: y))
                placed = true
                break
            }
            guard placed else {
                throw DataError("cluttered Fashion-MNIST: sample \(sample): no place for clutter patch \(k) in \(placementAttempts) tries that keeps coverage of the \(box.width)x\(box.height) box within \(c.maxClutterCoverage); use a larger canvas, fewer or smaller patches, or a higher coverage")
            }
        }
        return patches
    }
}
