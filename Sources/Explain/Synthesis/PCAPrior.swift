import CLBackend
import Foundation
import Graph

/// A linear image prior learned from example images: their mean and top principal components,
/// each scaled by its standard deviation, so an image is `mean + sum_k z_k sigma_k u_k` and
/// `z ~ N(0, I)` is the data's own Gaussian. Activation maximization through it (the `.pca`
/// parameterization) searches only images in the span of the data's main modes of variation:
/// the learned-prior idea of Nguyen et al. 2016 (deep generator networks) with a linear generator,
/// which is enough on small domains like Fashion-MNIST to give images a person recognizes.
public struct PCAPrior: Sendable, Hashable {
    /// `[C, H, W]` of the images.
    public let imageShape: Shape
    /// `C * H * W` values.
    public let mean: [Float]
    /// `[C * H * W, k]`, column j = `sigma_j u_j` (the `linear` weight layout: `[out, in]`).
    public let basis: [Float]
    /// The standard deviation `sigma_j` along each component, largest first.
    public let sigmas: [Float]
    public var components: Int { sigmas.count }

    public init(imageShape: Shape, mean: [Float], basis: [Float], sigmas: [Float]) throws {
        let d = imageShape.count
        guard imageShape.rank == 3, mean.count == d, !sigmas.isEmpty, basis.count == d * sigmas.count else {
            throw SynthesisError("a PCA prior needs a [C, H, W] shape, \(d) mean values and a [\(d), k] basis")
        }
        (self.imageShape, self.mean, self.basis, self.sigmas) = (imageShape, mean, basis, sigmas)
    }

    /// Fits the prior to `images` (`[M, C, H, W]`, values in [0, 1]): the mean and the top
    /// `components` eigenvectors of the centred images' covariance `X^T X / (M - 1)` by subspace
    /// iteration (`iterations` products with the covariance, each two `linear`s on the device;
    /// Gram-Schmidt on the host), ordered by the Rayleigh quotients `q^T C q`. Memory: the images
    /// twice on the device, never the `[d, d]` covariance.
    public static func fit(images: HostTensor, components k: Int, backend be: Backend, iterations: Int = 40) throws -> PCAPrior {
        guard images.shape.rank == 4 else { throw SynthesisError("PCA prior: images must be [M, C, H, W], got \(images.shape)") }
        let m = images.shape[0], d = images.values.count / max(m, 1)
        guard m >= 2 else { throw SynthesisError("PCA prior: needs at least 2 images, got \(m)") }
        guard k >= 1, k <= min(d, m - 1) else { throw SynthesisError("PCA prior: \(k) components, but \(m) images of \(d) values allow 1...\(min(d, m - 1))") }
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<m { for p in 0..<d { mean[p] += Double(images.values[i * d + p]) } }
        mean = mean.map { $0 / Double(m) }
        // The centred images X [m, d] uploaded once and X^T [d, m] transposed on the device; C Q^T = X^T X Q^T / (m - 1) is two
        // `linear` products, Q X^T [k, m] then (Q X^T) X [k, d], so C itself ([d, d]) is never formed.
        var centred = images.values
        for i in 0..<m { for p in 0..<d { centred[i * d + p] -= Float(mean[p]) } }
        let x = try be.tensor(centred, shape: [m, d]), xT = try be.transpose(x)
        func timesCovariance(_ q: [Float], rows: Int) throws -> [Float] {
            try be.read(be.linear(be.linear(be.tensor(q, shape: [rows, d]), weight: x), weight: xT)).map { $0 / Float(m - 1) }
        }
        // Subspace iteration on the rows of Q [r, d], r = k plus a few more for faster convergence,
        // then Rayleigh-Ritz: the eigenvectors of Q C Q^T rotate Q onto the top eigenvectors.
        let r = min(k + 8, d, m - 1)
        var q = (0..<(r * d)).map { j in Float(sin(Double(j) * 12.9898 + 78.233) * 43758.5453).truncatingRemainder(dividingBy: 1) }
        orthonormalize(&q, rows: r, length: d)
        for _ in 0..<iterations {
            q = try timesCovariance(q, rows: r)
            orthonormalize(&q, rows: r, length: d)
        }
        let cq = try timesCovariance(q, rows: r)
        var small = [Double](repeating: 0, count: r * r)
        for i in 0..<r {
            for j in 0..<r {
                var v = 0.0
                for p in 0..<d { v += Double(q[i * d + p]) * Double(cq[j * d + p]) }
                small[i * r + j] = v
            }
        }
        for i in 0..<r { for j in 0..<i { (small[i * r + j], small[j * r + i]) = ((small[i * r + j] + small[j * r + i]) / 2, (small[i * r + j] + small[j * r + i]) / 2) } }
        let (values, vectors) = symmetricEigen(small, size: r)
        let order = (0..<r).sorted { values[$0] > values[$1] }.prefix(k)
        let sigmas = order.map { Float(max(0, values[$0]).squareRoot()) }
        var basis = [Float](repeating: 0, count: d * k)
        for (j, e) in order.enumerated() {
            for p in 0..<d {
                var v = 0.0
                for i in 0..<r { v += vectors[i * r + e] * Double(q[i * d + p]) }
                basis[p * k + j] = sigmas[j] * Float(v)
            }
        }
        return try PCAPrior(imageShape: Shape(Array(images.shape.dims.dropFirst())), mean: mean.map(Float.init), basis: basis, sigmas: sigmas)
    }

    /// Modified Gram-Schmidt on the rows of `q` (`[rows, length]`), in Float64.
    static func orthonormalize(_ q: inout [Float], rows: Int, length: Int) {
        var v = q.map(Double.init)
        for r in 0..<rows {
            for s in 0..<r {
                let dot = (0..<length).reduce(0.0) { $0 + v[r * length + $1] * v[s * length + $1] }
                for p in 0..<length { v[r * length + p] -= dot * v[s * length + p] }
            }
            let norm = max((0..<length).reduce(0.0) { $0 + v[r * length + $1] * v[r * length + $1] }.squareRoot(), 1e-30)
            for p in 0..<length { v[r * length + p] /= norm }
        }
        q = v.map(Float.init)
    }

    /// Cyclic Jacobi on a symmetric `[size, size]` matrix: its eigenvalues and the eigenvectors as
    /// the columns of `vectors`.
    static func symmetricEigen(_ matrix: [Double], size n: Int) -> (values: [Double], vectors: [Double]) {
        var a = matrix
        var v = (0..<(n * n)).map { $0 % (n + 1) == 0 ? 1.0 : 0.0 }
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in 0..<n where j != i { off += a[i * n + j] * a[i * n + j] } }
            if off < 1e-22 * max(1, (0..<n).reduce(0.0) { $0 + a[$1 * n + $1] * a[$1 * n + $1] }) { break }
            for p in 0..<n {
                for q in (p + 1)..<max(n, p + 1) where abs(a[p * n + q]) > 1e-300 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let (akp, akq) = (a[k * n + p], a[k * n + q])
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let (apk, aqk) = (a[p * n + k], a[q * n + k])
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let (vkp, vkq) = (v[k * n + p], v[k * n + q])
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0 * n + $0] }, v)
    }
}
