import Foundation
import Graph

/// An axis-aligned box in pixels, half-open: columns `x0..<x1`, rows `y0..<y1`.
public struct Box: Equatable, Sendable, CustomStringConvertible {
    public var x0: Int, y0: Int, x1: Int, y1: Int
    public init(x0: Int, y0: Int, x1: Int, y1: Int) { self.x0 = x0; self.y0 = y0; self.x1 = x1; self.y1 = y1 }
    public var area: Int { max(0, x1 - x0) * max(0, y1 - y0) }
    public var description: String { "[\(x0), \(y0), \(x1), \(y1))" }

    /// Intersection over union; 0 when both are empty.
    public func iou(_ other: Box) -> Double {
        let inter = Box(x0: max(x0, other.x0), y0: max(y0, other.y0), x1: min(x1, other.x1), y1: min(y1, other.y1)).area
        let union = area + other.area - inter
        return union > 0 ? Double(inter) / Double(union) : 0
    }
}

/// Localization metrics of attribution maps at image resolution.
public enum Localization {
    /// The box around the largest 8-connected component of the pixels whose value is at least
    /// `threshold` times the map's maximum (the CAM paper's protocol uses 0.2). Nil for a map whose
    /// maximum is not positive (nothing to localize).
    public static func box(of map: AttributionMap, threshold: Float = 0.2) -> Box? {
        guard let top = map.values.max(), top > 0 else { return nil }
        let (h, w) = (map.height, map.width)
        let on = map.values.map { $0 >= threshold * top }
        var label = [Int](repeating: -1, count: h * w)
        var best: (size: Int, box: Box)? = nil
        var stack: [Int] = []
        for start in 0..<(h * w) where on[start] && label[start] < 0 {
            var size = 0
            var b = Box(x0: w, y0: h, x1: 0, y1: 0)
            label[start] = start
            stack.append(start)
            while let p = stack.popLast() {
                size += 1
                let (y, x) = (p / w, p % w)
                b = Box(x0: min(b.x0, x), y0: min(b.y0, y), x1: max(b.x1, x + 1), y1: max(b.y1, y + 1))
                for dy in -1...1 { for dx in -1...1 where dy != 0 || dx != 0 {
                    let (yy, xx) = (y + dy, x + dx)
                    guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                    let q = yy * w + xx
                    if on[q] && label[q] < 0 { label[q] = start; stack.append(q) }
                } }
            }
            if size > best?.size ?? 0 { best = (size, b) }
        }
        return best?.box
    }

    /// CAM-paper box localization: correct when the map's box has IoU >= `minimumIoU` with the truth.
    public static func boxCorrect(_ map: AttributionMap, truth: Box, threshold: Float = 0.2, minimumIoU: Double = 0.5) -> Bool {
        box(of: map, threshold: threshold).map { $0.iou(truth) >= minimumIoU } ?? false
    }

    /// The pointing game (Zhang et al. 2016): a hit when the map's maximum lies on the object's mask
    /// or within `tolerance` pixels of it (15 px at 224x224 in the original; scale it with the image).
    /// Ties for the maximum take the first in row-major order.
    public static func pointingHit(_ map: AttributionMap, mask: [Bool], tolerance: Int) -> Bool {
        precondition(mask.count == map.values.count, "pointingHit: mask and map sizes differ")
        guard let top = map.values.indices.max(by: { map.values[$0] < map.values[$1] || (map.values[$0] == map.values[$1] && $0 > $1) }) else { return false }
        let (y, x) = (top / map.width, top % map.width)
        for yy in max(0, y - tolerance)...min(map.height - 1, y + tolerance) {
            for xx in max(0, x - tolerance)...min(map.width - 1, x + tolerance) where mask[yy * map.width + xx] {
                let (dy, dx) = (yy - y, xx - x)
                if dy * dy + dx * dx <= tolerance * tolerance { return true }
            }
        }
        return false
    }

    /// A centred isotropic Gaussian map (standard deviation `sigmaFraction` of the shorter side): the
    /// centre-bias baseline every localization table should include.
    public static func centredGaussian(height: Int, width: Int, sigmaFraction: Double = 0.25) -> AttributionMap {
        let sigma = sigmaFraction * Double(min(height, width))
        let (cy, cx) = (Double(height) / 2, Double(width) / 2)
        var v = [Float](repeating: 0, count: height * width)
        for y in 0..<height { for x in 0..<width {
            let dy = Double(y) + 0.5 - cy, dx = Double(x) + 0.5 - cx
            v[y * width + x] = Float(exp(-(dy * dy + dx * dx) / (2 * sigma * sigma)))
        } }
        return AttributionMap(height: height, width: width, values: v)
    }

    /// A uniform random map: the chance baseline.
    public static func randomMap(height: Int, width: Int, seed: UInt64) -> AttributionMap {
        var rng = SeededGenerator(seed: seed)
        return AttributionMap(height: height, width: width, values: (0..<(height * width)).map { _ in Float.random(in: 0..<1, using: &rng) })
    }
}

/// Spearman's rank correlation, ties given their average rank; NaN when either side is constant.
public func spearmanCorrelation(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "spearmanCorrelation: \(a.count) vs \(b.count) values")
    func ranks(_ v: [Float]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j { r[order[k]] = rank }
            i = j + 1
        }
        return r
    }
    let (ra, rb) = (ranks(a), ranks(b))
    let n = Double(a.count)
    let (ma, mb) = (ra.reduce(0, +) / n, rb.reduce(0, +) / n)
    var cov = 0.0, va = 0.0, vb = 0.0
    for (x, y) in zip(ra, rb) {
        cov += (x - ma) * (y - mb)
        va += (x - ma) * (x - ma)
        vb += (y - mb) * (y - mb)
    }
    return va > 0 && vb > 0 ? cov / (va * vb).squareRoot() : .nan
}
