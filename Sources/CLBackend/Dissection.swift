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

    /// Net2Vec's (Fong & Vedaldi 2018) weighted per-pixel binary cross-entropy. `logits` `u` is
    /// `[N, C, H, W]` on the label grid of `pixelLabels` (`[N, P, H, W]`); concept `c` is label
    /// `concepts[c]` (int32 `[C]`), present (`y = 1`) at a pixel where any plane holds it.
    /// `weights` `[N, C, 2]` gives image `n`'s positive and negative weight `w+, w-` for concept
    /// `c`. Writes `loss = w+ y softplus(-u) + w- (1 - y) softplus(u)` (that is
    /// `-w+ y log s - w- (1 - y) log(1 - s)` with `s = sigmoid(u)`) and its derivative
    /// `gradient = w+ y (s - 1) + w- (1 - y) s`, both `[N, C, H, W]`, overwritten. Float32 on the
    /// device, Double in the reference; they agree to float32 rounding of exp and log1p.
    func net2vecLoss(logits: Tensor, pixelLabels: Tensor, concepts: Tensor, weights: Tensor, loss: Tensor, gradient: Tensor) throws

    /// Net2Vec's set-IoU counts: for concept `c`, over the images `n` with `annotated[n, c] != 0`
    /// (int32 `[N, C]`), adds to `counts` (`[C, 3]` int64 pairs, accumulated) the pixels with
    /// `u > 0` (the mask `sigmoid(u) > 1/2`) that carry the concept, the pixels with `u > 0`, and the
    /// pixels that carry the concept. Exact integers: the two backends agree exactly.
    func accumulateNet2VecCounts(logits: Tensor, pixelLabels: Tensor, concepts: Tensor, annotated: Tensor, counts: Tensor) throws
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
    static func check(net2vec logits: Tensor, pixelLabels: Tensor, concepts: Tensor, _ op: String) throws -> (n: Int, c: Int, planes: Int, plane: Int) {
        let (n, c, h, w) = try logits.shape.nchw(for: op)
        guard logits.dtype == .float32, pixelLabels.dtype == .int32, pixelLabels.shape.rank == 4, pixelLabels.shape[0] == n,
              pixelLabels.shape[2] == h, pixelLabels.shape[3] == w else {
            throw ShapeError("\(op): logits \(logits) need int32 pixel labels [\(n), planes, \(h), \(w)], got \(pixelLabels)")
        }
        guard concepts.dtype == .int32, concepts.shape == [c] else { throw ShapeError("\(op): \(c) concepts need int32 labels [\(c)], got \(concepts)") }
        return (n, c, pixelLabels.shape[1], h * w)
    }

    static func check(net2vecLoss logits: Tensor, pixelLabels: Tensor, concepts: Tensor, weights: Tensor, loss: Tensor,
                      gradient: Tensor) throws -> (n: Int, c: Int, planes: Int, plane: Int) {
        let s = try check(net2vec: logits, pixelLabels: pixelLabels, concepts: concepts, "net2vecLoss")
        guard weights.dtype == .float32, weights.shape == [s.n, s.c, 2] else {
            throw ShapeError("net2vecLoss: weights must be float32 [\(s.n), \(s.c), 2], got \(weights)")
        }
        guard loss.dtype == .float32, gradient.dtype == .float32, loss.shape == logits.shape, gradient.shape == logits.shape else {
            throw ShapeError("net2vecLoss: loss \(loss) and gradient \(gradient) must be float32 \(logits.shape)")
        }
        return s
    }

    static func check(net2vecCounts logits: Tensor, pixelLabels: Tensor, concepts: Tensor, annotated: Tensor,
                      counts: Tensor) throws -> (n: Int, c: Int, planes: Int, plane: Int) {
        let s = try check(net2vec: logits, pixelLabels: pixelLabels, concepts: concepts, "accumulateNet2VecCounts")
        guard annotated.dtype == .int32, annotated.shape == [s.n, s.c], counts.dtype == .int32, counts.count == s.c * 3 * 2 else {
            throw ShapeError("accumulateNet2VecCounts: \(s.c) concepts of \(s.n) images need int32 annotated [\(s.n), \(s.c)] and int32 counts of \(s.c * 6) elements, got \(annotated) and \(counts)")
        }
        return s
    }

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
