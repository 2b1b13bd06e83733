import Foundation

/// The oracle: every op computed in `Double` on flat NCHW arrays with explicit shapes, by direct
/// loops from the definition. Sequential and deterministic; accuracy is that of `Double`
/// arithmetic (no fast paths, no reassociation beyond the loop order written here).
///
/// Functions assume their shapes were validated (`Conv2D.outputShape(input:weight:)` and friends);
/// `ReferenceBackend` checks them before calling in. Rank-2 `[N, K]` shapes are read as
/// `[N, K, 1, 1]` wherever an op accepts them.
public enum Reference {}

// MARK: - Shared helpers

extension Shape {
    /// `(n, c, h, w)`, with a rank-2 `[N, K]` shape read as `(N, K, 1, 1)`; the rank is assumed valid.
    var validNCHW: (n: Int, c: Int, h: Int, w: Int) {
        rank == 2 ? (dims[0], dims[1], 1, 1) : (dims[0], dims[1], dims[2], dims[3])
    }
}

/// One tap of a sliding window: output position `out`, kernel position `kernel` and input position
/// `input`, each a row-major index into its own plane.
struct WindowTap {
    var out: Int, kernel: Int, input: Int
}

extension Window2D {
    /// Output height and width for an `h x w` input; the geometry is assumed valid.
    func outputLengths(h: Int, w: Int) -> (h: Int, w: Int) {
        (Self.outputLength(h, kernel: kernelH, stride: strideH, dilation: dilationH,
                           padBegin: padTop, padEnd: padBottom, ceilMode: ceilMode),
         Self.outputLength(w, kernel: kernelW, stride: strideW, dilation: dilationW,
                           padBegin: padLeft, padEnd: padRight, ceilMode: ceilMode))
    }

    /// Every tap that lands inside an `h x w` input: tap `(ky, kx)` of output `(oy, ox)` reads input
    /// `(oy*strideH - padTop + ky*dilationH, ox*strideW - padLeft + kx*dilationW)`. Padded taps are
    /// left out. Order: outputs row-major, and within one output the kernel taps row-major, so a
    /// scan of one window visits it in row-major order.
    func taps(h: Int, w: Int) -> [WindowTap] {
        let (oh, ow) = outputLengths(h: h, w: w)
        var taps: [WindowTap] = []
        for oy in 0..<oh {
            for ox in 0..<ow {
                for ky in 0..<kernelH {
                    let iy = oy * strideH - padTop + ky * dilationH
                    guard iy >= 0, iy < h else { continue }
                    for kx in 0..<kernelW {
                        let ix = ox * strideW - padLeft + kx * dilationW
                        guard ix >= 0, ix < w else { continue }
                        taps.append(WindowTap(out: oy * ow + ox, kernel: ky * kernelW + kx, input: iy * w + ix))
                    }
                }
            }
        }
        return taps
    }
}

/// A linear map from one plane to another, given as sparse matrix entries
/// `y[out] += weight * x[input]` and applied to every plane of a tensor alike. Its adjoint (the
/// backward pass) is the transposed map, applied by `applyTransposed`.
struct PlaneMap {
    struct Entry {
        var out: Int, input: Int, weight: Double
    }
    var inputSize: Int, outputSize: Int
    var entries: [Entry]

    /// `y = A x` plane by plane; `x.count` is a multiple of `inputSize`.
    func apply(_ x: [Double]) -> [Double] {
        let planes = x.count / max(inputSize, 1)
        var y = [Double](repeating: 0, count: planes * outputSize)
        for p in 0..<planes {
            for e in entries {
                y[p * outputSize + e.out] += e.weight * x[p * inputSize + e.input]
            }
        }
        return y
    }

    /// `x = A^T y` plane by plane; `y.count` is a multiple of `outputSize`.
    func applyTransposed(_ y: [Double]) -> [Double] {
        let planes = y.count / max(outputSize, 1)
        var x = [Double](repeating: 0, count: planes * inputSize)
        for p in 0..<planes {
            for e in entries {
                x[p * inputSize + e.input] += e.weight * y[p * outputSize + e.out]
            }
        }
        return x
    }
}

// MARK: - Elementwise and data movement

extension Reference {
    /// `alpha * x + beta * y` elementwise.
    public static func axpby(alpha: Double, _ x: [Double], beta: Double, _ y: [Double]) -> [Double] {
        zip(x, y).map { alpha * $0 + beta * $1 }
    }

    /// `output[n, c, h, w] = input[n, c, h, w] + bias[c]`.
    public static func biasAdd(_ input: [Double], shape: Shape, bias: [Double]) -> [Double] {
        let (_, c, h, w) = shape.validNCHW
        return input.indices.map { input[$0] + bias[($0 / (h * w)) % c] }
    }

    /// `y[n, o] = bias[o] + sum_i x[n, i] w[o, i]`.
    public static func dense(_ x: [Double], rows n: Int, weight w: [Double], outputs o: Int, bias: [Double]?) -> [Double] {
        let k = x.count / max(n, 1)
        var y = [Double](repeating: 0, count: n * o)
        for r in 0..<n {
            for j in 0..<o { y[r * o + j] = (0..<k).reduce(bias?[j] ?? 0) { $0 + x[r * k + $1] * w[j * k + $1] } }
        }
        return y
    }

    /// `dx[n, i] = sum_o dy[n, o] w[o, i]`: the adjoint of `dense` in its input.
    public static func denseBackwardData(_ dy: [Double], rows n: Int, weight w: [Double], inputs k: Int) -> [Double] {
        let o = dy.count / max(n, 1)
        var dx = [Double](repeating: 0, count: n * k)
        for r in 0..<n {
            for i in 0..<k { dx[r * k + i] = (0..<o).reduce(0.0) { $0 + dy[r * o + $1] * w[$1 * k + i] } }
        }
        return dx
    }

    /// `output[c] = sum over n, h, w of input[n, c, h, w]`: the adjoint of `biasAdd` in the bias.
    public static func channelSum(_ input: [Double], shape: Shape) -> [Double] {
        let (_, c, h, w) = shape.validNCHW
        var sums = [Double](repeating: 0, count: c)
        for i in input.indices { sums[(i / (h * w)) % c] += input[i] }
        return sums
    }

    /// `dst[n, dstOffset + i] = src[n, srcOffset + i]` for `i < channels`; the rest of `dst` is kept.
    public static func copyChannels(from src: [Double], srcShape: Shape, srcOffset: Int,
                                    to dst: inout [Double], dstShape: Shape, dstOffset: Int, channels: Int) {
        let (n, srcC, h, w) = srcShape.validNCHW
        let dstC = dstShape.validNCHW.c
        let plane = h * w
        for b in 0..<n {
            for i in 0..<channels {
                for p in 0..<plane {
                    dst[(b * dstC + dstOffset + i) * plane + p] = src[(b * srcC + srcOffset + i) * plane + p]
                }
            }
        }
    }

    /// `output[c, r] = input[r, c]`: an `[rows, columns]` matrix transposed.
    public static func transpose(_ input: [Double], rows: Int, columns: Int) -> [Double] {
        (0..<(rows * columns)).map { i in
            let (c, r) = i.quotientAndRemainder(dividingBy: rows)
            return input[r * columns + c]
        }
    }

    /// ReLU `max(x, 0)`, or leaky ReLU `x > 0 ? x : slope * x`.
    public static func activationForward(_ activation: Activation, input: [Double]) -> [Double] {
        switch activation {
        case .relu: return input.map { $0 > 0 ? $0 : 0 }
        case .leakyRelu(let slope): return input.map { $0 > 0 ? $0 : Double(slope) * $0 }
        }
    }

    /// The backward rule at a ReLU with forward input `z` and incoming gradient `g` (see
    /// `ReLUBackwardRule`); leaky ReLU always returns its true gradient `g * (z > 0 ? 1 : slope)`.
    public static func activationBackward(_ activation: Activation, rule: ReLUBackwardRule,
                                          input: [Double], outputGrad: [Double]) -> [Double] {
        zip(input, outputGrad).map { z, g in
            switch (activation, rule) {
            case (.leakyRelu(let slope), _): return z > 0 ? g : Double(slope) * g
            case (.relu, .standard): return z > 0 ? g : 0
            case (.relu, .guided): return z > 0 && g > 0 ? g : 0
            case (.relu, .deconvnet): return g > 0 ? g : 0
            }
        }
    }

    /// `min(max(x, lower), upper)` elementwise.
    public static func clampForward(min lower: Double, max upper: Double, input: [Double]) -> [Double] {
        input.map { Swift.min(Swift.max($0, lower), upper) }
    }

    /// The gradient passes where `lower <= x <= upper` and is zero elsewhere.
    public static func clampBackward(min lower: Double, max upper: Double, input: [Double], outputGrad: [Double]) -> [Double] {
        zip(input, outputGrad).map { x, g in x >= lower && x <= upper ? g : 0 }
    }
}

// MARK: - Optimizers

extension Reference {
    /// SGD with momentum (PyTorch form): `v = momentum * v + (g + weightDecay * p)`; `p -= lr * v`.
    public static func sgdMomentumStep(_ op: SGDMomentum, parameter: inout [Double], gradient: [Double], velocity: inout [Double]) {
        let (lr, mu, wd) = (Double(op.learningRate), Double(op.momentum), Double(op.weightDecay))
        for i in parameter.indices {
            velocity[i] = mu * velocity[i] + (gradient[i] + wd * parameter[i])
            parameter[i] -= lr * velocity[i]
        }
    }

    /// Adam with bias correction, `step` counting from 1 (formula in `Adam`).
    public static func adamStep(_ op: Adam, step: Int, parameter: inout [Double], gradient: [Double],
                                firstMoment: inout [Double], secondMoment: inout [Double]) {
        let (lr, b1, b2) = (Double(op.learningRate), Double(op.beta1), Double(op.beta2))
        let (eps, wd) = (Double(op.epsilon), Double(op.weightDecay))
        let correction1 = 1 - pow(b1, Double(step))
        let correction2 = 1 - pow(b2, Double(step))
        for i in parameter.indices {
            let g = gradient[i] + wd * parameter[i]
            firstMoment[i] = b1 * firstMoment[i] + (1 - b1) * g
            secondMoment[i] = b2 * secondMoment[i] + (1 - b2) * g * g
            parameter[i] -= lr * (firstMoment[i] / correction1) / ((secondMoment[i] / correction2).squareRoot() + eps)
        }
    }
}
