import Foundation

/// Image-space ops: resizing, padding, regularizers, blur and jitter.
extension Reference {
    // MARK: Bilinear resize

    /// For each output coordinate along one axis, the two input coordinates it blends and the
    /// weight `lambda` of the second. Half-pixel: `src = max(0, (dst + 0.5) * in/out - 0.5)`;
    /// align corners: `src = dst * (in-1)/(out-1)` (0 when `out == 1`). Then `i0 = floor(src)`,
    /// `i1 = min(i0 + 1, in - 1)`, `lambda = src - i0`.
    static func bilinearSamples(from inLength: Int, to outLength: Int, alignCorners: Bool) -> [(i0: Int, i1: Int, lambda: Double)] {
        (0..<outLength).map { dst in
            let src: Double
            if alignCorners {
                src = outLength == 1 ? 0 : Double(dst) * Double(inLength - 1) / Double(outLength - 1)
            } else {
                src = max(0, (Double(dst) + 0.5) * Double(inLength) / Double(outLength) - 0.5)
            }
            let i0 = Int(src.rounded(.down))
            return (i0, min(i0 + 1, inLength - 1), src - Double(i0))
        }
    }

    /// Bilinear resize of an `h x w` plane to `op.height x op.width` as a plane map (four taps per output).
    static func bilinearMap(_ op: BilinearResize, h: Int, w: Int) -> PlaneMap {
        let rows = bilinearSamples(from: h, to: op.height, alignCorners: op.alignCorners)
        let cols = bilinearSamples(from: w, to: op.width, alignCorners: op.alignCorners)
        var entries: [PlaneMap.Entry] = []
        for (y, r) in rows.enumerated() {
            for (x, c) in cols.enumerated() {
                for (iy, wy) in [(r.i0, 1 - r.lambda), (r.i1, r.lambda)] {
                    for (ix, wx) in [(c.i0, 1 - c.lambda), (c.i1, c.lambda)] {
                        entries.append(.init(out: y * op.width + x, input: iy * w + ix, weight: wy * wx))
                    }
                }
            }
        }
        return PlaneMap(inputSize: h * w, outputSize: op.height * op.width, entries: entries)
    }

    /// Bilinear resize of every plane to `op.height x op.width` (sampling rule in `bilinearSamples`).
    public static func resizeBilinearForward(_ op: BilinearResize, input: [Double], inputShape: Shape) -> [Double] {
        bilinearMap(op, h: inputShape[2], w: inputShape[3]).apply(input)
    }

    /// The adjoint of `resizeBilinearForward`.
    public static func resizeBilinearBackward(_ op: BilinearResize, outputGrad: [Double], inputShape: Shape) -> [Double] {
        bilinearMap(op, h: inputShape[2], w: inputShape[3]).applyTransposed(outputGrad)
    }

    // MARK: Nearest resize

    /// Nearest resize of an `h x w` plane as a plane map: output `(y, x)` copies input
    /// `(source(y), source(x))` with weight 1 (rule in `NearestResize.source`).
    static func nearestMap(_ op: NearestResize, h: Int, w: Int) -> PlaneMap {
        var entries: [PlaneMap.Entry] = []
        for y in 0..<op.height {
            let iy = NearestResize.source(of: y, inLength: h, outLength: op.height)
            for x in 0..<op.width {
                let ix = NearestResize.source(of: x, inLength: w, outLength: op.width)
                entries.append(.init(out: y * op.width + x, input: iy * w + ix, weight: 1))
            }
        }
        return PlaneMap(inputSize: h * w, outputSize: op.height * op.width, entries: entries)
    }

    public static func resizeNearestForward(_ op: NearestResize, input: [Double], inputShape: Shape) -> [Double] {
        nearestMap(op, h: inputShape[2], w: inputShape[3]).apply(input)
    }

    /// The adjoint of `resizeNearestForward`: each input pixel sums the gradient of its copies.
    public static func resizeNearestBackward(_ op: NearestResize, outputGrad: [Double], inputShape: Shape) -> [Double] {
        nearestMap(op, h: inputShape[2], w: inputShape[3]).applyTransposed(outputGrad)
    }

    // MARK: Constant pad

    /// The copying part of `op` on an `h x w` plane as a plane map: output `(y, x)` takes input
    /// `(y - top, x - left)` with weight 1 where that lies inside the input. Outputs without an
    /// entry are padding.
    static func padMap(_ op: ConstantPad2D, h: Int, w: Int) -> PlaneMap {
        let (oh, ow) = (h + op.top + op.bottom, w + op.left + op.right)
        var entries: [PlaneMap.Entry] = []
        for y in 0..<oh where (0..<h).contains(y - op.top) {
            for x in 0..<ow where (0..<w).contains(x - op.left) {
                entries.append(.init(out: y * ow + x, input: (y - op.top) * w + x - op.left, weight: 1))
            }
        }
        return PlaneMap(inputSize: h * w, outputSize: oh * ow, entries: entries)
    }

    /// Every plane padded with `op.value` (or cropped, where a pad is negative).
    public static func pad2dForward(_ op: ConstantPad2D, input: [Double], inputShape: Shape) -> [Double] {
        let map = padMap(op, h: inputShape[2], w: inputShape[3])
        var copied = [Bool](repeating: false, count: map.outputSize)
        for e in map.entries { copied[e.out] = true }
        return map.apply(input).enumerated().map { i, v in copied[i % map.outputSize] ? v : Double(op.value) }
    }

    /// The adjoint of `pad2dForward` in its input (the pad value is a constant).
    public static func pad2dBackward(_ op: ConstantPad2D, outputGrad: [Double], inputShape: Shape) -> [Double] {
        padMap(op, h: inputShape[2], w: inputShape[3]).applyTransposed(outputGrad)
    }

    // MARK: Total variation

    /// One term of `TV_beta`: pixel `here` of `image`, with its right and lower neighbours where
    /// they exist (a missing neighbour makes that difference 0).
    struct TVTerm {
        var image: Int, here: Int, right: Int?, below: Int?
        func differences(_ x: [Double]) -> (dx: Double, dy: Double) {
            (right.map { x[$0] - x[here] } ?? 0, below.map { x[$0] - x[here] } ?? 0)
        }
    }

    static func tvTerms(shape: Shape) -> [TVTerm] {
        let (n, c, h, w) = shape.validNCHW
        var terms: [TVTerm] = []
        for b in 0..<n {
            for ch in 0..<c {
                for i in 0..<h {
                    for j in 0..<w {
                        let here = ((b * c + ch) * h + i) * w + j
                        terms.append(TVTerm(image: b, here: here, right: j + 1 < w ? here + 1 : nil, below: i + 1 < h ? here + w : nil))
                    }
                }
            }
        }
        return terms
    }

    /// `output[n] = sum over c, i, j of (dx^2 + dy^2)^(beta/2)` for image n (see `TotalVariation`).
    public static func totalVariationForward(_ op: TotalVariation, input: [Double], shape: Shape) -> [Double] {
        var output = [Double](repeating: 0, count: shape[0])
        for term in tvTerms(shape: shape) {
            let (dx, dy) = term.differences(input)
            output[term.image] += pow(dx * dx + dy * dy, Double(op.beta) / 2)
        }
        return output
    }

    /// Each term `s^(beta/2)`, `s = dx^2 + dy^2`, contributes `outputGrad[n] * beta * s^(beta/2 - 1)`
    /// times `dx` to its right neighbour, `dy` to its lower one and `-(dx + dy)` to itself; a term
    /// with `s = 0` contributes nothing.
    public static func totalVariationBackward(_ op: TotalVariation, input: [Double], shape: Shape, outputGrad: [Double]) -> [Double] {
        let beta = Double(op.beta)
        var inputGrad = [Double](repeating: 0, count: input.count)
        for term in tvTerms(shape: shape) {
            let (dx, dy) = term.differences(input)
            let s = dx * dx + dy * dy
            guard s > 0 else { continue }
            let coefficient = outputGrad[term.image] * beta * pow(s, beta / 2 - 1)
            if let right = term.right { inputGrad[right] += coefficient * dx }
            if let below = term.below { inputGrad[below] += coefficient * dy }
            inputGrad[term.here] -= coefficient * (dx + dy)
        }
        return inputGrad
    }

    // MARK: Lp norm

    /// `output[n] = sum |x|^p` over image n.
    public static func lpNormForward(p: Double, input: [Double], shape: Shape) -> [Double] {
        let perImage = shape.count / max(shape[0], 1)
        return (0..<shape[0]).map { n in input[(n * perImage)..<((n + 1) * perImage)].reduce(0) { $0 + pow(abs($1), p) } }
    }

    /// `dx = outputGrad[n] * p * |x|^(p-1) * sign(x)`, 0 at `x = 0`.
    public static func lpNormBackward(p: Double, input: [Double], shape: Shape, outputGrad: [Double]) -> [Double] {
        let perImage = shape.count / max(shape[0], 1)
        return input.indices.map { i in
            let x = input[i]
            return x == 0 ? 0 : outputGrad[i / perImage] * p * pow(abs(x), p - 1) * (x > 0 ? 1 : -1)
        }
    }

    // MARK: Gaussian blur

    /// One renormalized 1-D pass over an `h x w` plane, along columns (`vertical`) or rows:
    /// `out[i] = sum_t k[t] in[i + t] / Z(i)`, `Z(i)` the sum of the taps with `i + t` inside the line.
    static func blurPassMap(_ op: GaussianBlur, h: Int, w: Int, vertical: Bool) -> PlaneMap {
        let taps = op.taps.map(Double.init)
        let radius = op.radius
        let (length, lines) = vertical ? (h, w) : (w, h)
        func index(_ line: Int, _ i: Int) -> Int { vertical ? i * w + line : line * w + i }
        var entries: [PlaneMap.Entry] = []
        for line in 0..<lines {
            for i in 0..<length {
                let inside = (-radius...radius).filter { (0..<length).contains(i + $0) }
                let z = inside.reduce(0) { $0 + taps[$1 + radius] }
                for t in inside {
                    entries.append(.init(out: index(line, i), input: index(line, i + t), weight: taps[t + radius] / z))
                }
            }
        }
        return PlaneMap(inputSize: h * w, outputSize: h * w, entries: entries)
    }

    /// Separable blur of every plane: the horizontal pass, then the vertical pass.
    public static func gaussianBlurForward(_ op: GaussianBlur, input: [Double], shape: Shape) -> [Double] {
        let (h, w) = (shape[2], shape[3])
        let horizontal = blurPassMap(op, h: h, w: w, vertical: false).apply(input)
        return blurPassMap(op, h: h, w: w, vertical: true).apply(horizontal)
    }

    /// The exact adjoint of `gaussianBlurForward`: the vertical pass transposed, then the horizontal
    /// pass transposed (`dIn[j] = sum_i dOut[i] k[j - i] / Z(i)` along each axis).
    public static func gaussianBlurBackward(_ op: GaussianBlur, outputGrad: [Double], shape: Shape) -> [Double] {
        let (h, w) = (shape[2], shape[3])
        let vertical = blurPassMap(op, h: h, w: w, vertical: true).applyTransposed(outputGrad)
        return blurPassMap(op, h: h, w: w, vertical: false).applyTransposed(vertical)
    }

    // MARK: Roll

    /// Cyclic shift of each plane: `output[h, w] = input[(h - shiftH) mod H, (w - shiftW) mod W]`.
    public static func roll(shiftH: Int, shiftW: Int, input: [Double], shape: Shape) -> [Double] {
        let (h, w) = (shape[2], shape[3])
        func wrap(_ i: Int, _ n: Int) -> Int { ((i % n) + n) % n }
        return input.indices.map { i in
            let (plane, offset) = i.quotientAndRemainder(dividingBy: h * w)
            let (y, x) = offset.quotientAndRemainder(dividingBy: w)
            return input[plane * h * w + wrap(y - shiftH, h) * w + wrap(x - shiftW, w)]
        }
    }
}
