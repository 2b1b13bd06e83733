import Foundation

/// Normalizations and classifier heads.
extension Reference {
    // MARK: Local response normalization

    /// The channels summed for channel `c`: `[c - floor((size-1)/2), c + ceil((size-1)/2)]` clipped to `[0, channels)`.
    /// This is ONNX's window; PyTorch's, `[c - floor(size/2), c + floor((size-1)/2)]`, is the same for odd `size`
    /// and mirrored for even `size`.
    static func lrnWindow(_ c: Int, size: Int, channels: Int) -> Range<Int> {
        max(0, c - (size - 1) / 2)..<min(channels, c + size / 2 + 1)
    }

    /// Calls `body(i, j)` for every element `i` and every element `j` in `i`'s channel window
    /// (same image and position), with flat NCHW indices.
    static func forEachLRNPair(_ op: LocalResponseNorm, shape: Shape, _ body: (_ i: Int, _ j: Int) -> Void) {
        let (n, c, h, w) = shape.validNCHW
        let plane = h * w
        for b in 0..<n {
            for ch in 0..<c {
                for other in lrnWindow(ch, size: op.size, channels: c) {
                    for p in 0..<plane { body((b * c + ch) * plane + p, (b * c + other) * plane + p) }
                }
            }
        }
    }

    /// `D_c = k + alpha/size * sum_{c' in window(c)} x_{c'}^2` for every element.
    static func lrnDenominators(_ op: LocalResponseNorm, input: [Double], shape: Shape) -> [Double] {
        var sums = [Double](repeating: 0, count: input.count)
        forEachLRNPair(op, shape: shape) { i, j in sums[i] += input[j] * input[j] }
        return sums.map { Double(op.k) + Double(op.alpha) / Double(op.size) * $0 }
    }

    /// `y_c = x_c / D_c^beta` (see `LocalResponseNorm`).
    public static func localResponseNormForward(_ op: LocalResponseNorm, input: [Double], shape: Shape) -> [Double] {
        let d = lrnDenominators(op, input: input, shape: shape)
        return input.indices.map { input[$0] * pow(d[$0], -Double(op.beta)) }
    }

    /// `dx_j = g_j D_j^-beta - (2 alpha beta / size) x_j * sum over c with j in window(c) of g_c x_c D_c^(-beta-1)`.
    public static func localResponseNormBackward(_ op: LocalResponseNorm, input: [Double], shape: Shape, outputGrad: [Double]) -> [Double] {
        let d = lrnDenominators(op, input: input, shape: shape)
        let beta = Double(op.beta)
        let factor = 2 * Double(op.alpha) * beta / Double(op.size)
        var inputGrad = input.indices.map { outputGrad[$0] * pow(d[$0], -beta) }
        forEachLRNPair(op, shape: shape) { c, j in
            inputGrad[j] -= factor * input[j] * outputGrad[c] * input[c] * pow(d[c], -beta - 1)
        }
        return inputGrad
    }

    // MARK: Batch normalization (inference)

    /// `y = scale[c] * (x - mean[c]) / sqrt(variance[c] + epsilon) + shift[c]`.
    public static func batchNormForward(epsilon: Double, input: [Double], shape: Shape, scale: [Double], shift: [Double],
                                        mean: [Double], variance: [Double]) -> [Double] {
        let (_, c, h, w) = shape.validNCHW
        return input.indices.map { i in
            let ch = (i / (h * w)) % c
            return scale[ch] * (input[i] - mean[ch]) / (variance[ch] + epsilon).squareRoot() + shift[ch]
        }
    }

    /// Gradients of `batchNormForward` with the statistics held fixed:
    /// `dx = dy * scale / sqrt(var + eps)`, `dscale[c] = sum dy * (x - mean) / sqrt(var + eps)`, `dshift[c] = sum dy`.
    public static func batchNormBackward(epsilon: Double, input: [Double], shape: Shape, outputGrad: [Double], scale: [Double],
                                         mean: [Double], variance: [Double]) -> (input: [Double], scale: [Double], shift: [Double]) {
        let (_, c, h, w) = shape.validNCHW
        let invStd = variance.map { 1 / ($0 + epsilon).squareRoot() }
        var inputGrad = [Double](repeating: 0, count: input.count)
        var scaleGrad = [Double](repeating: 0, count: c)
        for i in input.indices {
            let ch = (i / (h * w)) % c
            inputGrad[i] = outputGrad[i] * scale[ch] * invStd[ch]
            scaleGrad[ch] += outputGrad[i] * (input[i] - mean[ch]) * invStd[ch]
        }
        return (inputGrad, scaleGrad, channelSum(outputGrad, shape: shape))
    }

    // MARK: Softmax and cross-entropy over the rows of [N, K]

    /// The rows of a `[N, K]` array (a rank-4 shape is read as `[N, C*H*W]`).
    static func rows(_ values: [Double], shape: Shape) -> [ArraySlice<Double>] {
        let k = shape.count / max(shape[0], 1)
        return (0..<shape[0]).map { values[($0 * k)..<(($0 + 1) * k)] }
    }

    /// `log sum exp(row)`, computed as `m + log sum exp(row - m)` with `m` the row maximum.
    static func logSumExp(_ row: ArraySlice<Double>) -> Double {
        let m = row.max() ?? 0
        return m + log(row.reduce(0) { $0 + exp($1 - m) })
    }

    /// Softmax `exp(x - lse(x))` or log-softmax `x - lse(x)` of each row.
    public static func softmaxForward(log: Bool, input: [Double], shape: Shape) -> [Double] {
        rows(input, shape: shape).flatMap { row in
            let lse = logSumExp(row)
            return row.map { log ? $0 - lse : exp($0 - lse) }
        }
    }

    /// From the forward output `y`: softmax `dx = y * (dy - sum(dy * y))`; log-softmax `dx = dy - exp(y) * sum(dy)`.
    public static func softmaxBackward(log: Bool, output: [Double], outputGrad: [Double], shape: Shape) -> [Double] {
        zip(rows(output, shape: shape), rows(outputGrad, shape: shape)).flatMap { y, dy in
            if log {
                let total = dy.reduce(0, +)
                return zip(y, dy).map { $1 - exp($0) * total }
            }
            let dot = zip(y, dy).reduce(0) { $0 + $1.0 * $1.1 }
            return zip(y, dy).map { $0 * ($1 - dot) }
        }
    }

    /// `losses[n] = lse(logits[n]) - logits[n][labels[n]] = -log softmax(logits[n])[labels[n]]`.
    public static func crossEntropyForward(logits: [Double], shape: Shape, labels: [Int32]) -> [Double] {
        zip(rows(logits, shape: shape), labels).map { row, label in
            logSumExp(row) - row[row.startIndex + Int(label)]
        }
    }

    /// `logitsGrad[n] = lossGrad[n] * (softmax(logits[n]) - onehot(labels[n]))`.
    public static func crossEntropyBackward(logits: [Double], shape: Shape, labels: [Int32], lossGrad: [Double]) -> [Double] {
        let probabilities = softmaxForward(log: false, input: logits, shape: shape)
        let k = shape.count / max(shape[0], 1)
        return probabilities.indices.map { i in
            let (n, j) = i.quotientAndRemainder(dividingBy: k)
            return lossGrad[n] * (probabilities[i] - (j == Int(labels[n]) ? 1 : 0))
        }
    }
}
