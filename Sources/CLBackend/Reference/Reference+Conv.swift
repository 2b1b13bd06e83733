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
