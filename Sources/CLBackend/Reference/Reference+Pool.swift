/// Max and average pooling, plane by plane over the `N * C` planes of an NCHW tensor.
extension Reference {
    /// The pooled shape `[N, C, OH, OW]`; the geometry is assumed valid.
    public static func poolOutputShape(_ window: Window2D, inputShape: Shape) -> Shape {
        let (oh, ow) = window.outputLengths(h: inputShape[2], w: inputShape[3])
        return [inputShape[0], inputShape[1], oh, ow]
    }

    /// Each window's maximum and its position `h * W + w` in the input plane. Ties go to the first
    /// maximum in the window's row-major scan; padded positions never win (they are not scanned).
    public static func maxPool2dForward(_ op: MaxPool2D, input: [Double], inputShape: Shape) -> (output: [Double], switches: [Int32]) {
        let (n, c, h, w) = inputShape.validNCHW
        let outPlane = poolOutputShape(op.window, inputShape: inputShape).count / max(n * c, 1)
        var output = [Double](repeating: -.infinity, count: n * c * outPlane)
        var switches = [Int32](repeating: -1, count: output.count)
        let taps = op.window.taps(h: h, w: w)
        for p in 0..<(n * c) {
            for tap in taps where input[p * h * w + tap.input] > output[p * outPlane + tap.out] {
                output[p * outPlane + tap.out] = input[p * h * w + tap.input]
                switches[p * outPlane + tap.out] = Int32(tap.input)
            }
        }
        return (output, switches)
    }

    /// `inputGrad[p] = sum of outputGrad[o] over the windows o whose switch is p`: the max-pool
    /// gradient, and max unpooling when `outputGrad` holds the pooled values.
    public static func maxPool2dBackward(outputGrad: [Double], switches: [Int32], inputShape: Shape) -> [Double] {
        let (n, c, h, w) = inputShape.validNCHW
        let outPlane = switches.count / max(n * c, 1)
        var inputGrad = [Double](repeating: 0, count: inputShape.count)
        for p in 0..<(n * c) {
            for o in 0..<outPlane {
                inputGrad[p * h * w + Int(switches[p * outPlane + o])] += outputGrad[p * outPlane + o]
            }
        }
        return inputGrad
    }

    /// `output[n, c, o] = input[n, c, switches[n, c, o]]`: the adjoint of max unpooling.
    public static func gatherSwitches(input: [Double], inputShape: Shape, switches: [Int32]) -> [Double] {
        let (n, c, h, w) = inputShape.validNCHW
        let outPlane = switches.count / max(n * c, 1)
        return switches.indices.map { i in input[(i / outPlane) * h * w + Int(switches[i])] }
    }

    /// Average pooling as a plane map: output `(oy, ox)` is the sum of its in-image taps divided by
    /// the PyTorch divisor. With `countIncludePad` the divisor is the window clipped to the padded
    /// input, `(min(hs + kH, H + padBottom) - hs) * (min(ws + kW, W + padRight) - ws)` with
    /// `hs = oy*strideH - padTop` (possibly negative); without, the number of in-image taps.
    static func avgPoolMap(_ op: AvgPool2D, h: Int, w: Int) -> PlaneMap {
        let win = op.window
        let (oh, ow) = win.outputLengths(h: h, w: w)
        let taps = win.taps(h: h, w: w)
        var divisors = [Double](repeating: 0, count: oh * ow)
        if op.countIncludePad {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let (hs, ws) = (oy * win.strideH - win.padTop, ox * win.strideW - win.padLeft)
                    let rows = min(hs + win.kernelH, h + win.padBottom) - hs
                    let cols = min(ws + win.kernelW, w + win.padRight) - ws
                    divisors[oy * ow + ox] = Double(rows * cols)
                }
            }
        } else {
            for tap in taps { divisors[tap.out] += 1 }
        }
        return PlaneMap(inputSize: h * w, outputSize: oh * ow,
                        entries: taps.map { .init(out: $0.out, input: $0.input, weight: 1 / divisors[$0.out]) })
    }

    /// Average pooling (divisor rule in `avgPoolMap`).
    public static func avgPool2dForward(_ op: AvgPool2D, input: [Double], inputShape: Shape) -> [Double] {
        avgPoolMap(op, h: inputShape[2], w: inputShape[3]).apply(input)
    }

    /// The adjoint of `avgPool2dForward`: each output gradient spread over its taps, over the divisor.
    public static func avgPool2dBackward(_ op: AvgPool2D, outputGrad: [Double], inputShape: Shape) -> [Double] {
        avgPoolMap(op, h: inputShape[2], w: inputShape[3]).applyTransposed(outputGrad)
    }
}
