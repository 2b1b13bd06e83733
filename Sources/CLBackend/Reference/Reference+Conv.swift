/// Convolution as one list of taps: forward, backward-data and backward-filter are the same
/// triple loop read three ways, so they are adjoint by construction.
extension Reference {
    /// The output shape `[N, O, OH, OW]` of a conv; shapes are assumed valid.
    public static func conv2dOutputShape(_ op: Conv2D, inputShape: Shape, weightShape: Shape) -> Shape {
        let (oh, ow) = op.window.outputLengths(h: inputShape[2], w: inputShape[3])
        return [inputShape[0], weightShape[0], oh, ow]
    }

    /// Calls `body(out, input, weight)` with flat indices for every product
    /// `output[n, o, oy, ox] += input[n, g*C/G + ci, iy, ix] * weight[o, ci, ky, kx]` of a grouped
    /// conv, where `g = o / (O/G)` and `(iy, ix)` is tap `(ky, kx)` of window `(oy, ox)`.
    static func forEachConvProduct(_ op: Conv2D, inputShape: Shape, weightShape: Shape,
                                   _ body: (_ out: Int, _ input: Int, _ weight: Int) -> Void) {
        let (n, c, h, w) = inputShape.validNCHW
        let o = weightShape[0]
        let (inPerGroup, outPerGroup) = (c / op.groups, o / op.groups)
        let (oh, ow) = op.window.outputLengths(h: h, w: w)
        let kernelSize = op.window.kernelH * op.window.kernelW
        let taps = op.window.taps(h: h, w: w)
        for b in 0..<n {
            for oc in 0..<o {
                let group = oc / outPerGroup
                for ci in 0..<inPerGroup {
                    let outBase = (b * o + oc) * oh * ow
                    let inBase = (b * c + group * inPerGroup + ci) * h * w
                    let weightBase = (oc * inPerGroup + ci) * kernelSize
                    for tap in taps { body(outBase + tap.out, inBase + tap.input, weightBase + tap.kernel) }
                }
            }
        }
    }

    /// `y[n, o] = bias[o] + sum over ci, ky, kx of x[n, g*C/G + ci, oy*s - p + ky*d, ...] * w[o, ci, ky, kx]`
    /// (cross-correlation; padded positions read 0).
    public static func conv2dForward(_ op: Conv2D, input: [Double], inputShape: Shape,
                                     weight: [Double], weightShape: Shape, bias: [Double]?) -> [Double] {
        let outShape = conv2dOutputShape(op, inputShape: inputShape, weightShape: weightShape)
        var output = [Double](repeating: 0, count: outShape.count)
        forEachConvProduct(op, inputShape: inputShape, weightShape: weightShape) { o, i, k in
            output[o] += input[i] * weight[k]
        }
        return bias.map { biasAdd(output, shape: outShape, bias: $0) } ?? output
    }

    /// The gradient w.r.t. the input, `dx = J_x^T dy`; also the transposed conv's forward.
    public static func conv2dBackwardData(_ op: Conv2D, outputGrad: [Double], weight: [Double],
                                          weightShape: Shape, inputShape: Shape) -> [Double] {
        var inputGrad = [Double](repeating: 0, count: inputShape.count)
        forEachConvProduct(op, inputShape: inputShape, weightShape: weightShape) { o, i, k in
            inputGrad[i] += outputGrad[o] * weight[k]
        }
        return inputGrad
    }

    /// The gradient w.r.t. the weight, `dw[o, ci, ky, kx] = sum of dy[n, o, oy, ox] * x[...]` over the
    /// products that use it. The bias gradient is `channelSum(dy)`.
    public static func conv2dBackwardFilter(_ op: Conv2D, input: [Double], inputShape: Shape,
                                            outputGrad: [Double], weightShape: Shape) -> [Double] {
        var weightGrad = [Double](repeating: 0, count: weightShape.count)
        forEachConvProduct(op, inputShape: inputShape, weightShape: weightShape) { o, i, k in
            weightGrad[k] += outputGrad[o] * input[i]
        }
        return weightGrad
    }
}

extension Reference {
    /// Winograd F(2x2, 3x3) (Lavin & Gray 2016) from its definition: per 2x2 output tile,
    /// `Y = A^T [(G g G^T) .* (B^T d B)] A` summed over input channels, with the matrices below; the
    /// algorithm the `wino_*` kernels run, in Float64. Equals `conv2dForward` for a 3x3, stride-1,
    /// dilation-1, one-group `op` up to rounding (tested), which checks the matrices independently of OpenCL.
    public static func conv2dWinograd2x2(_ op: Conv2D, input: [Double], inputShape: Shape, weight: [Double], weightShape: Shape) -> [Double] {
        let bt: [[Double]] = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        let g: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        let at: [[Double]] = [[1, 1, 1, 0], [0, 1, -1, -1]]
        func mul(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
            a.map { row in (0..<b[0].count).map { j in zip(row, b).reduce(0) { $0 + $1.0 * $1.1[j] } } }
        }
        func transpose(_ a: [[Double]]) -> [[Double]] { (0..<a[0].count).map { j in a.map { $0[j] } } }
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let o = weightShape[0]
        let out = conv2dOutputShape(op, inputShape: inputShape, weightShape: weightShape)
        let (oh, ow) = (out[2], out[3])
        let u = (0..<o).map { k in (0..<c).map { ch in
            mul(mul(g, (0..<3).map { i in (0..<3).map { j in weight[((k * c + ch) * 3 + i) * 3 + j] } }), transpose(g))
        } }
        var y = [Double](repeating: 0, count: out.count)
        for img in 0..<n {
            for th in 0..<(oh + 1) / 2 {
                for tw in 0..<(ow + 1) / 2 {
                    let v = (0..<c).map { ch in
                        mul(mul(bt, (0..<4).map { i in (0..<4).map { j -> Double in
                            let r = 2 * th - op.window.padTop + i, q = 2 * tw - op.window.padLeft + j
                            return r >= 0 && r < h && q >= 0 && q < w ? input[((img * c + ch) * h + r) * w + q] : 0
                        } }), transpose(bt))
                    }
                    for k in 0..<o {
                        var m = [[Double]](repeating: [Double](repeating: 0, count: 4), count: 4)
                        for ch in 0..<c { for i in 0..<4 { for j in 0..<4 { m[i][j] += u[k][ch][i][j] * v[ch][i][j] } } }
                        let tile = mul(mul(at, m), transpose(at))
                        for i in 0..<2 where 2 * th + i < oh {
                            for j in 0..<2 where 2 * tw + j < ow { y[((img * o + k) * oh + 2 * th + i) * ow + 2 * tw + j] = tile[i][j] }
                        }
                    }
                }
            }
        }
        return y
    }
}
