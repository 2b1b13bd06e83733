/// The two device reductions of Network Dissection (Bau et al. 2017), on both backends. Counts are
/// exact integers (int64, stored as little-endian pairs of int32 in an int32 tensor of twice the
/// element count), so they add across batches, shards and devices to the same totals in any order.
/// No atomics: each work-group owns one unit (and one range of bins) and keeps one private
/// histogram row per work-item in local memory, folded in a fixed order at the end.
///
/// Kernels: `Sources/Kernels.cl`, block "Network Dissection". Dispatch: `OpenCL+Dissection.swift`.
/// Reference: `Reference/Reference+Dissection.swift`.
public protocol DissectionBackend: Backend {
    /// One radix-select pass of the streaming per-unit quantile. For every value `x` of unit `k`
    /// (channel `k` of the `[N, K, H, W]` `activations`) whose order key (`DissectionKey.key`)
    /// agrees with `prefixes[k]` on the bits above `shift + 8`, adds one to bin
    /// `(key >> shift) & 255` of unit `k` in `counts` (`[K, 256]` int64 pairs, accumulated, not
    /// cleared). `shift` is 24, 16, 8 or 0; at 24 every value takes part. NaNs are skipped.
    func accumulateRadixHistogram(activations: Tensor, prefixes: Tensor, shift: Int, counts: Tensor) throws

    /// Intersection counts of thresholded, upsampled unit maps with concept labels. For unit `k`
    /// and image `n`, `S = bilinear upsample of activations[n, k]` to the labels' `H' x W'`
    /// (half-pixel centres, `BilinearResize(alignCorners: false)`, evaluated in float32 without
    /// contraction, identically on both backends) and `M = S > thresholds[k]`. Then for every
    /// pixel of `M`, bin `pixelLabels[n, p, y, x]` gains one for each plane `p`, and for each
    /// `imageLabels[n, q]` (labels that hold at every pixel: scene and texture labels, and the
    /// pseudo-labels that mark which categories image `n` is annotated for) that bin gains one.
    /// Labels outside `1..<bins` are ignored. `counts` is `[K, bins]` int64 pairs, accumulated.
    /// Strictly above the threshold, as NetDissect's tally compares: for continuous activations
    /// the same as METHODS.md's `S >= T`, but a ReLU unit whose top 0.5% includes zeros (T = 0)
    /// does not claim every pixel of every image.
    func accumulateConceptCounts(activations: Tensor, thresholds: Tensor, pixelLabels: Tensor, imageLabels: Tensor,
                                 bins: Int, counts: Tensor) throws
}

/// The order-preserving map from float32 to uint32 the quantile passes select on: for non-NaN
/// `a < b` (with -0 < +0), `key(a) < key(b)`; `value(key(x)) == x` bit for bit.
public enum DissectionKey {
    public static func key(_ x: Float) -> UInt32 {
        let bits = x.bitPattern
        return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
    }

    public static func value(_ key: UInt32) -> Float {
        Float(bitPattern: key & 0x8000_0000 != 0 ? key & 0x7FFF_FFFF : ~key)
    }

    /// Int64 counts from an int32 tensor's elements holding little-endian pairs.
    public static func counts(fromPairs ints: [Int32]) -> [Int64] {
        stride(from: 0, to: ints.count - 1, by: 2).map { Int64(UInt32(bitPattern: ints[$0])) | (Int64(ints[$0 + 1]) << 32) }
    }
}

/// Shape checks shared by both backends' dissection primitives.
enum DissectionShapes {
    static func check(radix activations: Tensor, prefixes: Tensor, shift: Int, counts: Tensor) throws -> (n: Int, k: Int, plane: Int) {
        let (n, k, h, w) = try activations.shape.nchw(for: "accumulateRadixHistogram")
        guard activations.dtype == .float32, prefixes.dtype == .int32, prefixes.count == k, counts.dtype == .int32,
              counts.count == k * 256 * 2 else {
            throw ShapeError("accumulateRadixHistogram: activations \(activations.shape) need int32 prefixes [\(k)] and int32 counts of \(k * 512) elements, got \(prefixes) and \(counts)")
        }
        guard [0, 8, 16, 24].contains(shift) else { throw ShapeError("accumulateRadixHistogram: shift \(shift) is not 0, 8, 16 or 24") }
        return (n, k, h * w)
    }

    static func check(concepts activations: Tensor, thresholds: Tensor, pixelLabels: Tensor, imageLabels: Tensor, bins: Int,
                      counts: Tensor) throws -> (n: Int, k: Int, h: Int, w: Int, planes: Int, lh: Int, lw: Int, q: Int) {
        let (n, k, h, w) = try activations.shape.nchw(for: "accumulateConceptCounts")
        guard pixelLabels.shape.rank == 4, pixelLabels.shape[0] == n, pixelLabels.dtype == .int32 else {
            throw ShapeError("accumulateConceptCounts: pixel labels must be int32 [\(n), planes, H, W], got \(pixelLabels)")
        }
        guard imageLabels.shape.rank == 2, imageLabels.shape[0] == n, imageLabels.dtype == .int32 else {
            throw ShapeError("accumulateConceptCounts: image labels must be int32 [\(n), Q], got \(imageLabels)")
        }
        guard activations.dtype == .float32, thresholds.dtype == .float32, thresholds.count == k, bins > 0,
              counts.dtype == .int32, counts.count == k * bins * 2 else {
            throw ShapeError("accumulateConceptCounts: \(k) units need float32 thresholds [\(k)] and int32 counts of \(k * bins * 2) elements, got \(thresholds) and \(counts)")
        }
        return (n, k, h, w, pixelLabels.shape[1], pixelLabels.shape[2], pixelLabels.shape[3], imageLabels.shape[1])
    }
}
