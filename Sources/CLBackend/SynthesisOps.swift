import Foundation

// Ops for activation maximization and inversion: random transforms drawn on the device from
// (seed, step), and Lucid's Fourier image parameterization. Kernels in the "Synthesis" block of
// Kernels.cl, dispatch in OpenCL+Synthesis.swift, reference in Reference/Reference+Synthesis.swift.

/// The counter-based generator the synthesis kernels use (`synth_bits` in Kernels.cl): draw `k` of
/// image stream `stream` at step `step` of run `seed` is a pure function of the four, so the
/// device draws transform parameters itself and the reference draws the same ones.
public enum SynthesisRandom {
    static func mix(_ v: UInt32) -> UInt32 {
        var x = v
        x ^= x >> 16; x = x &* 0x7feb_352d; x ^= x >> 15; x = x &* 0x846c_a68b; x ^= x >> 16
        return x
    }

    public static func bits(seed: UInt32, step: UInt32, stream: UInt32, k: UInt32) -> UInt32 {
        mix(seed ^ mix(step ^ mix(stream ^ mix(k &+ 0x9e37_79b9))))
    }

    /// Uniform in `[0, 1)` with 24 bits (exactly the kernel's float).
    public static func uniform(seed: UInt32, step: UInt32, stream: UInt32, k: UInt32) -> Float {
        Float(bits(seed: seed, step: step, stream: stream, k: k) >> 8) * (1 / 16_777_216)
    }

    /// A uniform integer in `[-m, m]`, in integer arithmetic as the kernel computes it.
    public static func shift(seed: UInt32, step: UInt32, stream: UInt32, k: UInt32, max m: Int) -> Int {
        let u = UInt64(bits(seed: seed, step: step, stream: stream, k: k) >> 8)
        return Int((u * UInt64(2 * m + 1)) >> 24) - m
    }
}

/// Where the random draws of one call come from: image `n` of the batch uses stream
/// `firstStream + n`, so image `n` of a batched run draws what a single run with
/// `firstStream + n` draws. Seeds and steps are 31-bit (they travel as kernel ints).
public struct RandomDraw: Hashable, Sendable {
    public var seed: Int, step: Int, firstStream: Int
    public init(seed: Int, step: Int, firstStream: Int = 0) { self.seed = seed; self.step = step; self.firstStream = firstStream }

    func validate(_ op: String, batch: Int) throws {
        let limit = Int(Int32.max)
        guard (0...limit).contains(seed), (0...limit).contains(step), firstStream >= 0, firstStream + batch <= limit else {
            throw ShapeError("\(op): seed \(seed), step \(step) and streams \(firstStream)..<\(firstStream + batch) must lie in 0...\(limit)")
        }
    }
    func stream(_ n: Int) -> UInt32 { UInt32(firstStream + n) }
}

/// Jitter: a cyclic shift of each image by `(dy, dx)`, both uniform integers in
/// `[-maxShift, maxShift]` drawn from draws 0 and 1. Its backward is the inverse shift
/// (the jitter "undone after").
public struct RandomRoll: Hashable, Sendable {
    public var maxShift: Int
    public init(maxShift: Int) { self.maxShift = maxShift }

    /// The shift of image `n` (the kernel draws the same).
    public func shift(_ draw: RandomDraw, image n: Int) -> (dy: Int, dx: Int) {
        let (s, t, r) = (UInt32(draw.seed), UInt32(draw.step), draw.stream(n))
        return (SynthesisRandom.shift(seed: s, step: t, stream: r, k: 0, max: maxShift),
                SynthesisRandom.shift(seed: s, step: t, stream: r, k: 1, max: maxShift))
    }
}

/// Transformation robustness: a random scale `s` uniform in `scale` (draw 2) and rotation `a`
/// uniform in `[-maxDegrees, maxDegrees]` (draw 3) about the image centre `c = ((H-1)/2, (W-1)/2)`.
/// Output `o` samples the input bilinearly at `c + R(a) (o - c) / s`; taps outside read 0.
/// Linear in the image; its backward is the adjoint, a gather.
public struct RandomAffine: Hashable, Sendable {
    public var scale: ClosedRange<Float>, maxDegrees: Float
    public init(scale: ClosedRange<Float>, maxDegrees: Float) { self.scale = scale; self.maxDegrees = maxDegrees }
    var maxRadians: Float { maxDegrees * .pi / 180 }

    /// Scale and angle (radians) of image `n`.
    public func parameters(_ draw: RandomDraw, image n: Int) -> (scale: Float, angle: Float) {
        let (s, t, r) = (UInt32(draw.seed), UInt32(draw.step), draw.stream(n))
        let u2 = SynthesisRandom.uniform(seed: s, step: t, stream: r, k: 2)
        let u3 = SynthesisRandom.uniform(seed: s, step: t, stream: r, k: 3)
        return (scale.lowerBound + u2 * (scale.upperBound - scale.lowerBound), (2 * u3 - 1) * maxRadians)
    }

    func validate() throws {
        guard scale.lowerBound > 0, scale.upperBound < 16 else { throw ShapeError("randomAffine: scale range \(scale) must lie in (0, 16)") }
        guard maxDegrees >= 0, maxDegrees <= 180 else { throw ShapeError("randomAffine: max rotation \(maxDegrees) degrees must lie in [0, 180]") }
    }
}

/// Lucid's Fourier parameterization of an `[N, C, H, W]` image (before colour): a spectrum
/// `[N, C, H, W/2 + 1]` of complex numbers stored as `[N, C, H, 2 (W/2 + 1)]` (re, im), scaled by
/// `sqrt(H W) / 4 / max(f, 1 / max(H, W))^decay` (f the frequency in cycles per pixel), then
/// numpy's `irfft2` (normalized by `1 / (H W)`). Linear; the backward is its adjoint.
public struct FourierImage: Hashable, Sendable {
    public var height: Int, width: Int, decay: Float
    public init(height: Int, width: Int, decay: Float = 1) { self.height = height; self.width = width; self.decay = decay }
    public var spectrumWidth: Int { width / 2 + 1 }

    public func spectrumShape(batch n: Int, channels c: Int) -> Shape { [n, c, height, 2 * spectrumWidth] }

    /// The scale of frequency `(ky, kx)` (the kernel's `synth_spectrum_scale`).
    public func scale(ky: Int, kx: Int) -> Double {
        let fy = Double(2 * ky < height ? ky : ky - height) / Double(height), fx = Double(kx) / Double(width)
        let f = max((fy * fy + fx * fx).squareRoot(), 1 / Double(max(height, width)))
        return Double(height * width).squareRoot() / 4 / pow(f, Double(decay))
    }

    func imageShape(spectrum: Shape) throws -> Shape {
        guard height > 0, width > 0 else { throw ShapeError("fourierImage: size \(height)x\(width) must be positive") }
        guard spectrum.rank == 4, spectrum[2] == height, spectrum[3] == 2 * spectrumWidth else {
            throw ShapeError("fourierImage: a \(height)x\(width) image needs a spectrum [N, C, \(height), \(2 * spectrumWidth)], got \(spectrum)")
        }
        return [spectrum[0], spectrum[1], height, width]
    }
}

/// ImageNet's colour correlation (Lucid's `color_correlation_svd_sqrt`), divided by its largest
/// column norm: the `[3, 3]` matrix that decorrelates RGB in the Fourier parameterization.
public let imageNetColorDecorrelation: [Float] = {
    let m: [Double] = [0.26, 0.09, 0.02, 0.27, 0.00, -0.05, 0.27, -0.09, 0.03]
    let maxNorm = (0..<3).map { c in (0..<3).reduce(0.0) { $0 + m[$1 * 3 + c] * m[$1 * 3 + c] }.squareRoot() }.max()!
    return m.map { Float($0 / maxNorm) }
}()

extension Backend {
    private func requireSynthesisImages(_ t: Tensor, _ op: String) throws {
        guard t.shape.rank == 4, t.dtype == .float32 else { throw ShapeError("\(op): expected a float32 NCHW tensor, got \(t)") }
    }

    public func randomRoll(_ input: Tensor, _ op: RandomRoll, _ draw: RandomDraw, inverse: Bool = false) throws -> Tensor {
        try requireSynthesisImages(input, "randomRoll")
        try draw.validate("randomRoll", batch: input.shape[0])
        guard op.maxShift >= 0, op.maxShift < 1 << 20 else { throw ShapeError("randomRoll: max shift \(op.maxShift) must lie in [0, 2^20)") }
        let y = try makeTensor(input.shape, dtype: .float32)
        try randomRollForward(op, draw, inverse: inverse, input: input, output: y)
        return y
    }

    public func randomAffine(_ input: Tensor, _ op: RandomAffine, _ draw: RandomDraw) throws -> Tensor {
        try requireSynthesisImages(input, "randomAffine")
        try draw.validate("randomAffine", batch: input.shape[0])
        try op.validate()
        let y = try makeTensor(input.shape, dtype: .float32)
        try randomAffineForward(op, draw, input: input, output: y)
        return y
    }

    public func randomAffineBackward(_ outputGrad: Tensor, _ op: RandomAffine, _ draw: RandomDraw) throws -> Tensor {
        try requireSynthesisImages(outputGrad, "randomAffineBackward")
        try draw.validate("randomAffineBackward", batch: outputGrad.shape[0])
        try op.validate()
        let dx = try makeTensor(outputGrad.shape, dtype: .float32)
        try randomAffineBackward(op, draw, outputGrad: outputGrad, inputGrad: dx)
        return dx
    }

    public func fourierImage(_ spectrum: Tensor, _ op: FourierImage) throws -> Tensor {
        let y = try makeTensor(op.imageShape(spectrum: spectrum.shape), dtype: .float32)
        try fourierImageForward(op, spectrum: spectrum, output: y)
        return y
    }

    public func fourierImageBackward(_ outputGrad: Tensor, _ op: FourierImage) throws -> Tensor {
        guard outputGrad.shape.rank == 4, outputGrad.shape[2] == op.height, outputGrad.shape[3] == op.width else {
            throw ShapeError("fourierImageBackward: expected an [N, C, \(op.height), \(op.width)] gradient, got \(outputGrad.shape)")
        }
        let ds = try makeTensor(op.spectrumShape(batch: outputGrad.shape[0], channels: outputGrad.shape[1]), dtype: .float32)
        try fourierImageBackward(op, outputGrad: outputGrad, spectrumGrad: ds)
        return ds
    }

    private func checkColor(_ input: Tensor, _ matrix: Tensor, _ op: String) throws {
        try requireSynthesisImages(input, op)
        let c = input.shape[1]
        guard matrix.shape == [c, c] else { throw ShapeError("\(op): a \(c)-channel image needs a [\(c), \(c)] colour matrix, got \(matrix.shape)") }
    }

    /// `output[c] = sigmoid(sum_c' matrix[c, c'] input[c'])` at every pixel.
    public func colorSigmoid(_ input: Tensor, matrix: Tensor) throws -> Tensor {
        try checkColor(input, matrix, "colorSigmoid")
        let y = try makeTensor(input.shape, dtype: .float32)
        try colorSigmoidForward(matrix: matrix, input: input, output: y)
        return y
    }

    /// Backward from the forward *output*.
    public func colorSigmoidBackward(_ outputGrad: Tensor, output: Tensor, matrix: Tensor) throws -> Tensor {
        try checkColor(output, matrix, "colorSigmoidBackward")
        guard outputGrad.shape == output.shape else { throw ShapeError("colorSigmoidBackward: gradient \(outputGrad.shape) and output \(output.shape) differ") }
        let dz = try makeTensor(output.shape, dtype: .float32)
        try colorSigmoidBackward(matrix: matrix, output: output, outputGrad: outputGrad, inputGrad: dz)
        return dz
    }

    /// The `(N, C, P)` of a batch of feature maps `[N, C, H, W]` (P = H W) or vectors `[N, K]` (P = 1).
    private func gramLayout(_ t: Tensor, _ op: String) throws -> (n: Int, c: Int, p: Int) {
        guard t.dtype == .float32, [2, 4].contains(t.shape.rank), t.shape[0] >= 1, t.count > 0 else {
            throw ShapeError("\(op): expected float32 [N, C, H, W] or [N, K] features, got \(t)")
        }
        return (t.shape[0], t.shape[1], t.shape.rank == 4 ? t.shape[2] * t.shape[3] : 1)
    }

    /// Lucid's diversity term of a batch: with `G_n = A_n A_n^T` the Gram matrix of image n's
    /// `[C, HW]` features and `g_n = G_n / ||G_n||_F` (norm at least 1e-5),
    /// `D = (1 / N) sum_{i != j} <g_i, g_j>`, the mean over images of their summed cosine
    /// similarity to the others. `[1]`; 0 for one image. Minimizing it pushes the images' styles apart.
    public func gramDiversity(_ input: Tensor) throws -> Tensor {
        _ = try gramLayout(input, "gramDiversity")
        let y = try makeTensor([1], dtype: .float32)
        try gramDiversityForward(input: input, output: y)
        return y
    }

    /// The gradient of `outputGrad[0] * D` with respect to the features.
    public func gramDiversityBackward(_ outputGrad: Tensor, input: Tensor) throws -> Tensor {
        _ = try gramLayout(input, "gramDiversityBackward")
        guard outputGrad.shape == [1] else { throw ShapeError("gramDiversityBackward: the gradient of D must be [1], got \(outputGrad.shape)") }
        let dx = try makeTensor(input.shape, dtype: .float32)
        // One image has no pairs: D is 0 whatever the features, so its gradient is exactly 0.
        if input.shape[0] == 1 { try fill(dx, value: 0) } else { try gramDiversityBackward(input: input, outputGrad: outputGrad, inputGrad: dx) }
        return dx
    }
}
