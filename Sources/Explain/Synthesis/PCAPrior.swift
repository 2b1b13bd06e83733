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

    /// Fits the prior to `images` (`[M, C, H, W]`, values in [0, 1]): the mean, the covariance
    /// `X^T X / (M - 1)` of the centred images formed on the device (one `linear`), and its top
    /// `components` eigenvectors by subspace iteration (`iterations` products `C Q` on the device,
    /// Gram-Schmidt on the host), ordered by the Rayleigh quotients `q^T C q`.
    public static func fit(images: HostTensor, components k: Int, backend be: Backend, iterations: Int = 40) throws -> PCAPrior {
        guard images.shape.rank == 4 else { throw SynthesisError("PCA prior: images must be [M, C, H, W], got \(images.shape)") }
        let m = images.shape[0], d = images.values.count / max(m, 1)
        guard m >= 2 else { throw SynthesisError("PCA prior: needs at least 2 images, got \(m)") }
        guard k >= 1, k <= min(d, m - 1) else { throw SynthesisError("PCA prior: \(k) components, but \(m) images of \(d) values allow 1...\(min(d, m - 1))") }
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<m { for p in 0..<d { mean[p] += Double(images.values[i * d + p]) } }
        mean = mean.map { $0 / Double(m) }
        // X^T as [d, m] (centred); covariance = linear(X^T, weight: X^T) / (m - 1) = [d, d].
        var xt = [Float](repeating: 0, count: d * m)
        for i in 0..<m { for p in 0..<d { xt[p * m + i] = images.values[i * d + p] - Float(mean[p]) } }
        let xtDevice = try be.tensor(xt, shape: [d, m])
        let product = try be.linear(xtDevice, weight: xtDevice)
        let covariance = try be.axpby(alpha: 1 / Float(m - 1), product, beta: 0, product)
        // Subspace iteration: Q [k, d] rows; Q C = (C Q^T)^T since C is symmetric.
        var q = (0..<(k * d)).map { j in Float(sin(Double(j) * 12.9898 + 78.233) * 43758.5453).truncatingRemainder(dividingBy: 1) }
        orthonormalize(&q, rows: k, length: d)
        for _ in 0..<iterations {
            q = try be.read(be.linear(be.tensor(q, shape: [k, d]), weight: covariance))
            orthonormalize(&q, rows: k, length: d)
        }
        let cq = try be.read(be.linear(be.tensor(q, shape: [k, d]), weight: covariance))
        var variances = [Double](repeating: 0, count: k)
        for r in 0..<k {
            var v = 0.0
            for p in 0..<d { v += Double(q[r * d + p]) * Double(cq[r * d + p]) }
            variances[r] = max(0, v)
        }
        let order = (0..<k).sorted { variances[$0] > variances[$1] }
        let sigmas = order.map { Float(variances[$0].squareRoot()) }
        var basis = [Float](repeating: 0, count: d * k)
        for (j, r) in order.enumerated() { for p in 0..<d { basis[p * k + j] = sigmas[j] * q[r * d + p] } }
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
}
