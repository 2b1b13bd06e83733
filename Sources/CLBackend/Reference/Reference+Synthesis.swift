import Foundation

// The synthesis ops in Float64, straight from their definitions (SynthesisOps.swift). The random
// parameters come from `SynthesisRandom`, the generator the kernels use.

extension Reference {
    /// Image `n` rolled by its drawn shift (negated when `inverse`).
    public static func randomRoll(_ op: RandomRoll, _ draw: RandomDraw, inverse: Bool, input: [Double], shape: Shape) -> [Double] {
        let per = shape.count / max(shape[0], 1)
        let planeShape: Shape = [1, shape[1], shape[2], shape[3]]
        return (0..<shape[0]).flatMap { n -> [Double] in
            let (dy, dx) = op.shift(draw, image: n)
            let image = Array(input[n * per..<(n + 1) * per])
            return roll(shiftH: inverse ? -dy : dy, shiftW: inverse ? -dx : dx, input: image, shape: planeShape)
        }
    }

    /// The bilinear taps `(output, input, weight)` of image `n`'s warp within one plane.
    static func affineTaps(_ op: RandomAffine, _ draw: RandomDraw, image n: Int, h: Int, w: Int) -> [(Int, Int, Double)] {
        let (s, a) = op.parameters(draw, image: n)
        let (cosA, sinA, invS) = (cos(Double(a)), sin(Double(a)), 1 / Double(s))
        let (cy, cx) = (Double(h - 1) / 2, Double(w - 1) / 2)
        var taps: [(Int, Int, Double)] = []
        for oy in 0..<h {
            for ox in 0..<w {
                let (dy, dx) = (Double(oy) - cy, Double(ox) - cx)
                let sy = cy + (cosA * dy - sinA * dx) * invS, sx = cx + (sinA * dy + cosA * dx) * invS
                let (y0, x0) = (Int(sy.rounded(.down)), Int(sx.rounded(.down)))
                let (fy, fx) = (sy - Double(y0), sx - Double(x0))
                for (y, wy) in [(y0, 1 - fy), (y0 + 1, fy)] where (0..<h).contains(y) {
                    for (x, wx) in [(x0, 1 - fx), (x0 + 1, fx)] where (0..<w).contains(x) {
                        taps.append((oy * w + ox, y * w + x, wy * wx))
                    }
                }
            }
        }
        return taps
    }

    public static func randomAffineForward(_ op: RandomAffine, _ draw: RandomDraw, input: [Double], shape: Shape) -> [Double] {
        affineApply(op, draw, input, shape, transposed: false)
    }

    public static func randomAffineBackward(_ op: RandomAffine, _ draw: RandomDraw, outputGrad: [Double], shape: Shape) -> [Double] {
        affineApply(op, draw, outputGrad, shape, transposed: true)
    }

    private static func affineApply(_ op: RandomAffine, _ draw: RandomDraw, _ x: [Double], _ shape: Shape, transposed: Bool) -> [Double] {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        var out = [Double](repeating: 0, count: x.count)
        for b in 0..<n {
            let taps = affineTaps(op, draw, image: b, h: h, w: w)
            for ch in 0..<c {
                let base = (b * c + ch) * h * w
                for (o, i, weight) in taps {
                    if transposed { out[base + i] += weight * x[base + o] } else { out[base + o] += weight * x[base + i] }
                }
            }
        }
        return out
    }

    /// `exp(2 pi i k m / n)` as (cos, sin).
    private static func twiddle(_ k: Int, _ m: Int, _ n: Int) -> (Double, Double) {
        let a = 2 * Double.pi * Double((k * m) % n) / Double(n)
        return (cos(a), sin(a))
    }

    /// numpy's `irfft2` of the scaled spectrum, one plane at a time.
    public static func fourierImageForward(_ op: FourierImage, spectrum: [Double], spectrumShape: Shape) -> [Double] {
        let (h, w, wf) = (op.height, op.width, op.spectrumWidth)
        let planes = spectrumShape[0] * spectrumShape[1]
        var out = [Double](repeating: 0, count: planes * h * w)
        for p in 0..<planes {
            let s = p * h * 2 * wf
            for y in 0..<h {
                var t = [(Double, Double)](repeating: (0, 0), count: wf)
                for kx in 0..<wf {
                    for ky in 0..<h {
                        let sc = op.scale(ky: ky, kx: kx), (c, sn) = twiddle(ky, y, h)
                        let (re, im) = (sc * spectrum[s + (ky * wf + kx) * 2], sc * spectrum[s + (ky * wf + kx) * 2 + 1])
                        t[kx].0 += re * c - im * sn
                        t[kx].1 += re * sn + im * c
                    }
                }
                for x in 0..<w {
                    out[(p * h + y) * w + x] = (0..<wf).reduce(0.0) { acc, kx in
                        let a: Double = kx == 0 || 2 * kx == w ? 1 : 2
                        let (c, sn) = twiddle(kx, x, w)
                        return acc + a * (t[kx].0 * c - t[kx].1 * sn)
                    } / Double(h * w)
                }
            }
        }
        return out
    }

    /// The adjoint of `fourierImageForward`: `ds[ky, kx] = d<g, x>/dS[ky, kx]`, written from the
    /// forward's sum as the coefficient of each spectrum entry.
    public static func fourierImageBackward(_ op: FourierImage, outputGrad: [Double], imageShape: Shape) -> [Double] {
        let (h, w, wf) = (op.height, op.width, op.spectrumWidth)
        let planes = imageShape[0] * imageShape[1]
        var ds = [Double](repeating: 0, count: planes * h * 2 * wf)
        for p in 0..<planes {
            // dT[y, kx] = a / (H W) sum_x g[y, x] (cos, -sin).
            var dt = [(Double, Double)](repeating: (0, 0), count: h * wf)
            for y in 0..<h {
                for kx in 0..<wf {
                    let a: Double = (kx == 0 || 2 * kx == w ? 1 : 2) / Double(h * w)
                    for x in 0..<w {
                        let (c, sn) = twiddle(kx, x, w), g = outputGrad[(p * h + y) * w + x]
                        dt[y * wf + kx].0 += a * g * c
                        dt[y * wf + kx].1 -= a * g * sn
                    }
                }
            }
            for ky in 0..<h {
                for kx in 0..<wf {
                    var (re, im) = (0.0, 0.0)
                    for y in 0..<h {
                        let (c, sn) = twiddle(ky, y, h), (gr, gi) = dt[y * wf + kx]
                        re += gr * c + gi * sn
                        im += gi * c - gr * sn
                    }
                    let sc = op.scale(ky: ky, kx: kx)
                    ds[p * h * 2 * wf + (ky * wf + kx) * 2] = sc * re
                    ds[p * h * 2 * wf + (ky * wf + kx) * 2 + 1] = sc * im
                }
            }
        }
        return ds
    }

    public static func colorSigmoidForward(matrix m: [Double], input z: [Double], shape: Shape) -> [Double] {
        let (c, plane) = (shape[1], shape[2] * shape[3])
        return z.indices.map { i in
            let ch = (i / plane) % c, base = i - ch * plane
            let v = (0..<c).reduce(0.0) { $0 + m[ch * c + $1] * z[base + $1 * plane] }
            return 1 / (1 + exp(-v))
        }
    }

    public static func colorSigmoidBackward(matrix m: [Double], output y: [Double], outputGrad g: [Double], shape: Shape) -> [Double] {
        let (c, plane) = (shape[1], shape[2] * shape[3])
        return y.indices.map { i in
            let ch = (i / plane) % c, base = i - ch * plane
            return (0..<c).reduce(0.0) { acc, k in
                let yk = y[base + k * plane]
                return acc + m[k * c + ch] * g[base + k * plane] * yk * (1 - yk)
            }
        }
    }

    // MARK: Gram diversity

    /// The Gram matrices `G_n[r, s] = sum_p A[n, r, p] A[n, s, p]` of `[N, C, P]` features, their
    /// pairwise dot products `dots[i * N + j] = <G_i, G_j>` and norms `max(sqrt(dots[i, i]), 1e-5)`.
    static func grams(_ a: [Double], n: Int, c: Int, p: Int) -> (g: [Double], dots: [Double], norms: [Double]) {
        var g = [Double](repeating: 0, count: n * c * c)
        for b in 0..<n {
            for r in 0..<c {
                for s in 0..<c { g[(b * c + r) * c + s] = (0..<p).reduce(0.0) { $0 + a[(b * c + r) * p + $1] * a[(b * c + s) * p + $1] } }
            }
        }
        let cc = c * c
        var dots = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { dots[i * n + j] = (0..<cc).reduce(0.0) { $0 + g[i * cc + $1] * g[j * cc + $1] } } }
        let norms = (0..<n).map { max(dots[$0 * n + $0], 1e-10).squareRoot() }
        return (g, dots, norms)
    }

    /// `D = (1 / N) sum_{i != j} <G_i, G_j> / (|G_i| |G_j|)`.
    public static func gramDiversityForward(input: [Double], n: Int, c: Int, p: Int) -> Double {
        let (_, dots, norms) = grams(input, n: n, c: c, p: p)
        var d = 0.0
        for i in 0..<n { for j in 0..<n where j != i { d += dots[i * n + j] / (norms[i] * norms[j]) } }
        return d / Double(n)
    }

    /// With `S = sum_m g_m`: `dD/dg_n = (2 / N)(S - g_n)`; through the normalization
    /// `dD/dG_n = (2 / N)(S - <S, g_n> g_n) / |G_n|` (where the norm is clamped, just `/ |G_n|`);
    /// through `G_n = A_n A_n^T`, `dD/dA_n = 2 (dD/dG_n) A_n`.
    public static func gramDiversityBackward(input a: [Double], n: Int, c: Int, p: Int, outputGrad: Double) -> [Double] {
        let (g, dots, norms) = grams(a, n: n, c: c, p: p)
        let cc = c * c
        var sum = [Double](repeating: 0, count: cc)
        for m in 0..<n { for k in 0..<cc { sum[k] += g[m * cc + k] / norms[m] } }
        var da = [Double](repeating: 0, count: a.count)
        for b in 0..<n {
            let clamped = dots[b * n + b] <= 1e-10
            let cosines = clamped ? 1 : (0..<n).reduce(0.0) { $0 + dots[b * n + $1] / (norms[b] * norms[$1]) }
            let u = (0..<cc).map { k in 2 * outputGrad / Double(n) / norms[b] * (sum[k] - cosines * g[b * cc + k] / norms[b]) }
            for r in 0..<c {
                for q in 0..<p { da[(b * c + r) * p + q] = 2 * (0..<c).reduce(0.0) { $0 + u[r * c + $1] * a[(b * c + $1) * p + q] } }
            }
        }
        return da
    }
}

extension ReferenceBackend {
    private func gramLayout(_ t: Tensor) -> (n: Int, c: Int, p: Int) {
        (t.shape[0], t.shape[1], t.shape.rank == 4 ? t.shape[2] * t.shape[3] : 1)
    }

    public func gramDiversityForward(input: Tensor, output: Tensor) throws {
        let (n, c, p) = gramLayout(input)
        try store([Reference.gramDiversityForward(input: doubles(input, "gramDiversity"), n: n, c: c, p: p)], into: output, "gramDiversity")
    }

    public func gramDiversityBackward(input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "gramDiversityBackward", (n, c, p) = gramLayout(input)
        try store(Reference.gramDiversityBackward(input: doubles(input, name), n: n, c: c, p: p, outputGrad: doubles(outputGrad, name)[0]),
                  into: inputGrad, name)
    }

    public func randomRollForward(_ op: RandomRoll, _ draw: RandomDraw, inverse: Bool, input: Tensor, output: Tensor) throws {
        try store(Reference.randomRoll(op, draw, inverse: inverse, input: doubles(input, "randomRoll"), shape: input.shape), into: output, "randomRoll")
    }

    public func randomAffineForward(_ op: RandomAffine, _ draw: RandomDraw, input: Tensor, output: Tensor) throws {
        try store(Reference.randomAffineForward(op, draw, input: doubles(input, "randomAffine"), shape: input.shape), into: output, "randomAffine")
    }

    public func randomAffineBackward(_ op: RandomAffine, _ draw: RandomDraw, outputGrad: Tensor, inputGrad: Tensor) throws {
        try store(Reference.randomAffineBackward(op, draw, outputGrad: doubles(outputGrad, "randomAffineBackward"), shape: outputGrad.shape),
                  into: inputGrad, "randomAffineBackward")
    }

    public func fourierImageForward(_ op: FourierImage, spectrum: Tensor, output: Tensor) throws {
        try store(Reference.fourierImageForward(op, spectrum: doubles(spectrum, "fourierImage"), spectrumShape: spectrum.shape), into: output, "fourierImage")
    }

    public func fourierImageBackward(_ op: FourierImage, outputGrad: Tensor, spectrumGrad: Tensor) throws {
        try store(Reference.fourierImageBackward(op, outputGrad: doubles(outputGrad, "fourierImageBackward"), imageShape: outputGrad.shape),
                  into: spectrumGrad, "fourierImageBackward")
    }

    public func colorSigmoidForward(matrix: Tensor, input: Tensor, output: Tensor) throws {
        try store(Reference.colorSigmoidForward(matrix: doubles(matrix, "colorSigmoid"), input: doubles(input, "colorSigmoid"), shape: input.shape),
                  into: output, "colorSigmoid")
    }

    public func colorSigmoidBackward(matrix: Tensor, output: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "colorSigmoidBackward"
        try store(Reference.colorSigmoidBackward(matrix: doubles(matrix, name), output: doubles(output, name),
                                                 outputGrad: doubles(outputGrad, name), shape: output.shape), into: inputGrad, name)
    }
}
