import Foundation

/// Geometry shared by convolutions and pools: kernel size, stride, dilation and per-side padding.
///
/// Output size along one axis (the PyTorch/ONNX rule):
/// `floor((n + padBegin + padEnd - dilation*(k-1) - 1) / stride) + 1`, with `ceil` in ceil mode,
/// where a last window that would start entirely in the end padding is dropped.
public struct Window2D: Hashable, Sendable {
    public var kernelH: Int, kernelW: Int
    public var strideH: Int, strideW: Int
    public var dilationH: Int, dilationW: Int
    public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
    public var ceilMode: Bool

    public init(kernel: (Int, Int), stride: (Int, Int) = (1, 1), dilation: (Int, Int) = (1, 1),
                padding: (top: Int, left: Int, bottom: Int, right: Int) = (0, 0, 0, 0), ceilMode: Bool = false) {
        (kernelH, kernelW) = kernel
        (strideH, strideW) = stride
        (dilationH, dilationW) = dilation
        (padTop, padLeft, padBottom, padRight) = padding
        self.ceilMode = ceilMode
    }

    /// Square convenience: `k x k` kernel, the same stride and padding on every side.
    public init(kernel k: Int, stride s: Int = 1, padding p: Int = 0, dilation d: Int = 1, ceilMode: Bool = false) {
        self.init(kernel: (k, k), stride: (s, s), dilation: (d, d), padding: (p, p, p, p), ceilMode: ceilMode)
    }

    func validate(_ op: String) throws {
        guard kernelH > 0, kernelW > 0 else { throw ShapeError("\(op): kernel must be positive, got \(kernelH)x\(kernelW)") }
        guard strideH > 0, strideW > 0 else { throw ShapeError("\(op): stride must be positive, got \(strideH)x\(strideW)") }
        guard dilationH > 0, dilationW > 0 else { throw ShapeError("\(op): dilation must be positive, got \(dilationH)x\(dilationW)") }
        guard min(padTop, padLeft, padBottom, padRight) >= 0 else {
            throw ShapeError("\(op): padding must be non-negative, got (\(padTop), \(padLeft), \(padBottom), \(padRight))")
        }
    }

    static func outputLength(_ n: Int, kernel k: Int, stride s: Int, dilation d: Int,
                             padBegin pb: Int, padEnd pe: Int, ceilMode: Bool) -> Int {
        let span = n + pb + pe - d * (k - 1) - 1
        guard span >= 0 else { return 0 }
        var out = (ceilMode ? (span + s - 1) / s : span / s) + 1
        // The last window must start inside the input or the begin padding.
        if ceilMode && (out - 1) * s >= n + pb { out -= 1 }
        return out
    }

    /// Output height and width for an `h x w` input; throws when the window does not fit.
    public func outputSize(h: Int, w: Int, op: String) throws -> (h: Int, w: Int) {
        try validate(op)
        let oh = Self.outputLength(h, kernel: kernelH, stride: strideH, dilation: dilationH,
                                   padBegin: padTop, padEnd: padBottom, ceilMode: ceilMode)
        let ow = Self.outputLength(w, kernel: kernelW, stride: strideW, dilation: dilationW,
                                   padBegin: padLeft, padEnd: padRight, ceilMode: ceilMode)
        guard oh > 0, ow > 0 else {
            throw ShapeError("\(op): a \(kernelH)x\(kernelW) window (dilation \(dilationH)x\(dilationW)) does not fit a \(h)x\(w) input padded by (\(padTop), \(padLeft), \(padBottom), \(padRight))")
        }
        return (oh, ow)
    }
}

/// 2-D convolution (cross-correlation, as every framework computes it). Weight layout
/// `[outChannels, inChannels/groups, kernelH, kernelW]`.
public struct Conv2D: Hashable, Sendable {
    public var window: Window2D
    public var groups: Int

    public init(window: Window2D, groups: Int = 1) {
        self.window = window
        self.groups = groups
    }

    /// Checks input and weight shapes and returns the output shape `[N, O, OH, OW]`.
    public func outputShape(input: Shape, weight: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError("conv2d: input must be NCHW, got \(input)") }
        guard weight.rank == 4 else { throw ShapeError("conv2d: weight must be [O, C/groups, kH, kW], got \(weight)") }
        guard groups > 0 else { throw ShapeError("conv2d: groups must be positive, got \(groups)") }
        let (c, o) = (input[1], weight[0])
        guard c % groups == 0, o % groups == 0 else {
            throw ShapeError("conv2d: input channels \(c) and output channels \(o) must both be divisible by groups \(groups)")
        }
        guard weight[1] == c / groups else {
            throw ShapeError("conv2d: weight \(weight) expects \(weight[1] * groups) input channels with groups \(groups), input \(input) has \(c)")
        }
        guard weight[2] == window.kernelH, weight[3] == window.kernelW else {
            throw ShapeError("conv2d: weight \(weight) has a \(weight[2])x\(weight[3]) kernel, the op says \(window.kernelH)x\(window.kernelW)")
        }
        let (oh, ow) = try window.outputSize(h: input[2], w: input[3], op: "conv2d")
        return [input[0], o, oh, ow]
    }
}

/// Transposed ("fractionally strided") convolution: exactly the backward-data of the `Conv2D` with
/// the same parameters. Weight layout `[inChannels, outChannels/groups, kernelH, kernelW]`
/// (PyTorch/ONNX). Output size `(n-1)*s - padBegin - padEnd + d*(k-1) + outputPadding + 1`.
public struct ConvTranspose2D: Hashable, Sendable {
    public var window: Window2D
    public var groups: Int
    public var outputPaddingH: Int, outputPaddingW: Int

    public init(window: Window2D, groups: Int = 1, outputPadding: (Int, Int) = (0, 0)) {
        self.window = window
        self.groups = groups
        (outputPaddingH, outputPaddingW) = outputPadding
    }

    /// The convolution whose backward-data this op is.
    public var adjointConv: Conv2D { Conv2D(window: Window2D(kernel: (window.kernelH, window.kernelW),
                                                              stride: (window.strideH, window.strideW),
                                                              dilation: (window.dilationH, window.dilationW),
                                                              padding: (window.padTop, window.padLeft, window.padBottom, window.padRight)),
                                            groups: groups) }

    public func outputShape(input: Shape, weight: Shape) throws -> Shape {
        let w = window
        try w.validate("convTranspose2d")
        guard input.rank == 4, weight.rank == 4 else {
            throw ShapeError("convTranspose2d: input must be NCHW and weight [C, O/groups, kH, kW], got \(input) and \(weight)")
        }
        guard groups > 0, input[1] % groups == 0 else {
            throw ShapeError("convTranspose2d: input channels \(input[1]) must be divisible by groups \(groups)")
        }
        guard weight[0] == input[1] else {
            throw ShapeError("convTranspose2d: weight \(weight) expects \(weight[0]) input channels, input \(input) has \(input[1])")
        }
        guard weight[2] == w.kernelH, weight[3] == w.kernelW else {
            throw ShapeError("convTranspose2d: weight \(weight) has a \(weight[2])x\(weight[3]) kernel, the op says \(w.kernelH)x\(w.kernelW)")
        }
        guard !w.ceilMode else { throw ShapeError("convTranspose2d: ceil mode does not apply to a transposed convolution") }
        guard outputPaddingH >= 0, outputPaddingW >= 0,
              outputPaddingH < max(w.strideH, w.dilationH), outputPaddingW < max(w.strideW, w.dilationW) else {
            throw ShapeError("convTranspose2d: output padding (\(outputPaddingH), \(outputPaddingW)) must be non-negative and smaller than the stride or the dilation")
        }
        let oh = (input[2] - 1) * w.strideH - w.padTop - w.padBottom + w.dilationH * (w.kernelH - 1) + outputPaddingH + 1
        let ow = (input[3] - 1) * w.strideW - w.padLeft - w.padRight + w.dilationW * (w.kernelW - 1) + outputPaddingW + 1
        guard oh > 0, ow > 0 else { throw ShapeError("convTranspose2d: padding leaves an empty \(oh)x\(ow) output for input \(input)") }
        let out: Shape = [input[0], weight[1] * groups, oh, ow]
        // The adjoint conv must map the output back to exactly the input's size.
        let back = try adjointConv.window.outputSize(h: oh, w: ow, op: "convTranspose2d")
        guard back.h == input[2], back.w == input[3] else {
            throw ShapeError("convTranspose2d: output \(out) does not convolve back to input \(input) with these parameters")
        }
        return out
    }
}

/// Max pooling over a window. Records the argmax of each window ("switches") as an index into the
/// input plane (`h * W + w`); ties go to the first maximum in row-major scan order (PyTorch's rule).
/// Padding never wins: padded positions count as minus infinity.
public struct MaxPool2D: Hashable, Sendable {
    public var window: Window2D
    public init(window: Window2D) { self.window = window }

    public func outputShape(input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError("maxPool2d: input must be NCHW, got \(input)") }
        let w = window
        guard w.padTop * 2 <= w.kernelH, w.padLeft * 2 <= w.kernelW, w.padBottom * 2 <= w.kernelH, w.padRight * 2 <= w.kernelW else {
            throw ShapeError("maxPool2d: padding (\(w.padTop), \(w.padLeft), \(w.padBottom), \(w.padRight)) must be at most half the kernel \(w.kernelH)x\(w.kernelW)")
        }
        guard input[2] * input[3] < (1 << 31) else { throw ShapeError("maxPool2d: input plane \(input) too large for 32-bit switches") }
        let (oh, ow) = try w.outputSize(h: input[2], w: input[3], op: "maxPool2d")
        return [input[0], input[1], oh, ow]
    }

    /// Global max pooling is max pooling with the whole plane as its window.
    public static func global(for input: Shape) -> MaxPool2D {
        MaxPool2D(window: Window2D(kernel: (input.rank == 4 ? input[2] : 1, input.rank == 4 ? input[3] : 1)))
    }
}

/// Average pooling. With `countIncludePad` the divisor is the window clipped to the padded input
/// (PyTorch's rule, also in ceil mode); without, the number of real input elements under it.
public struct AvgPool2D: Hashable, Sendable {
    public var window: Window2D
    public var countIncludePad: Bool
    public init(window: Window2D, countIncludePad: Bool = true) {
        self.window = window
        self.countIncludePad = countIncludePad
    }

    public func outputShape(input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError("avgPool2d: input must be NCHW, got \(input)") }
        guard window.dilationH == 1, window.dilationW == 1 else { throw ShapeError("avgPool2d: dilation is not defined for average pooling") }
        let w = window
        guard w.padTop * 2 <= w.kernelH, w.padLeft * 2 <= w.kernelW, w.padBottom * 2 <= w.kernelH, w.padRight * 2 <= w.kernelW else {
            throw ShapeError("avgPool2d: padding (\(w.padTop), \(w.padLeft), \(w.padBottom), \(w.padRight)) must be at most half the kernel \(w.kernelH)x\(w.kernelW)")
        }
        let (oh, ow) = try window.outputSize(h: input[2], w: input[3], op: "avgPool2d")
        return [input[0], input[1], oh, ow]
    }

    /// Global average pooling is average pooling with the whole plane as its window.
    public static func global(for input: Shape) -> AvgPool2D {
        AvgPool2D(window: Window2D(kernel: (input.rank == 4 ? input[2] : 1, input.rank == 4 ? input[3] : 1)))
    }
}

/// Pointwise activations.
public enum Activation: Hashable, Sendable {
    case relu
    case leakyRelu(slope: Float)
}

/// How a backward pass treats a ReLU with forward input `z` and incoming gradient `g`.
public enum ReLUBackwardRule: String, Hashable, Sendable, CaseIterable {
    /// `g * [z > 0]` — the true gradient.
    case standard
    /// `g * [z > 0] * [g > 0]` — guided backpropagation (Springenberg et al. 2015).
    case guided
    /// `g * [g > 0]`, the forward mask ignored — DeconvNet (Zeiler & Fergus 2014).
    case deconvnet
}

/// Local response normalization across channels (AlexNet), the ONNX form:
/// `y_c = x_c / (k + alpha/size * sum_{c' in window(c)} x_{c'}^2)^beta`, window
/// `[c - floor((size-1)/2), c + ceil((size-1)/2)]` clipped to the channels. PyTorch's
/// `nn.LocalResponseNorm` uses the same window for odd `size` and its mirror image for even `size`.
public struct LocalResponseNorm: Hashable, Sendable {
    public var size: Int, alpha: Float, beta: Float, k: Float
    public init(size: Int, alpha: Float = 1e-4, beta: Float = 0.75, k: Float = 1) {
        self.size = size; self.alpha = alpha; self.beta = beta; self.k = k
    }
    func validate() throws {
        guard size > 0 else { throw ShapeError("localResponseNorm: size must be positive, got \(size)") }
        guard k > 0 else { throw ShapeError("localResponseNorm: k must be positive, got \(k)") }
    }
}

/// Bilinear resize of each plane. `alignCorners == false` is the half-pixel rule
/// (PyTorch's default, ONNX `half_pixel`): `src = (dst + 0.5) * in/out - 0.5`, clamped at 0.
public struct BilinearResize: Hashable, Sendable {
    public var height: Int, width: Int, alignCorners: Bool
    public init(height: Int, width: Int, alignCorners: Bool = false) {
        self.height = height; self.width = width; self.alignCorners = alignCorners
    }
}

/// Nearest-neighbour resize of each plane: ONNX `Resize` with mode `nearest`, coordinate
/// transformation `asymmetric` and nearest mode `floor`. Along one axis output `dst` reads input
/// `src = min(floor(dst * in / out), in - 1)`, computed exactly in integers; for `dst < out` the
/// quotient is already below `in`, so the clamp never binds.
public struct NearestResize: Hashable, Sendable {
    public var height: Int, width: Int
    public init(height: Int, width: Int) { self.height = height; self.width = width }

    /// The input index output `dst` reads along an axis of `inLength` resized to `outLength`.
    public static func source(of dst: Int, inLength: Int, outLength: Int) -> Int { dst * inLength / outLength }

    /// Checks the input and returns `[N, C, height, width]`. The kernels compute `(in + 1) * out`
    /// in 32-bit ints, so that product must fit.
    public func outputShape(input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError("resizeNearest: expected an NCHW tensor, got \(input)") }
        guard height > 0, width > 0 else { throw ShapeError("resizeNearest: target size \(height)x\(width) must be positive") }
        guard input[2] > 0, input[3] > 0 else { throw ShapeError("resizeNearest: cannot resize the empty planes of \(input)") }
        guard (input[2] + 1) * height <= Int(Int32.max), (input[3] + 1) * width <= Int(Int32.max) else {
            throw ShapeError("resizeNearest: resizing \(input) to \(height)x\(width) overflows 32-bit index arithmetic")
        }
        return [input[0], input[1], height, width]
    }
}

/// Constant padding of each plane (ONNX `Pad`, mode `constant`, on the two spatial axes):
/// `[N, C, H, W] -> [N, C, H + top + bottom, W + left + right]`. Output `(y, x)` copies input
/// `(y - top, x - left)` where that lies inside the input and holds `value` elsewhere. A negative
/// pad crops that many rows or columns from its side, as ONNX allows; the output must stay non-empty.
public struct ConstantPad2D: Hashable, Sendable {
    public var top: Int, left: Int, bottom: Int, right: Int
    public var value: Float
    public init(top: Int, left: Int, bottom: Int, right: Int, value: Float = 0) {
        self.top = top; self.left = left; self.bottom = bottom; self.right = right; self.value = value
    }

    /// The same pad on every side.
    public init(_ pad: Int, value: Float = 0) { self.init(top: pad, left: pad, bottom: pad, right: pad, value: value) }

    public func outputShape(input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError("pad2d: input must be NCHW, got \(input)") }
        let (oh, ow) = (input[2] + top + bottom, input[3] + left + right)
        guard oh > 0, ow > 0 else {
            throw ShapeError("pad2d: padding (top \(top), left \(left), bottom \(bottom), right \(right)) leaves an empty \(oh)x\(ow) output for input \(input)")
        }
        return [input[0], input[1], oh, ow]
    }
}

/// Total variation per image, summed over channels:
/// `TV_beta(x) = sum_ij ((x[i,j+1] - x[i,j])^2 + (x[i+1,j] - x[i,j])^2)^(beta/2)`, with a difference
/// that would leave the image taken as 0 (replicated border). `beta >= 1`; where a term is 0 its
/// gradient is taken as 0.
public struct TotalVariation: Hashable, Sendable {
    public var beta: Float
    public init(beta: Float = 2) { self.beta = beta }
}

/// Gaussian blur of each plane, separable, radius `ceil(3 sigma)`; the kernel is renormalized over
/// the taps that fall inside the image, so borders keep their brightness.
public struct GaussianBlur: Hashable, Sendable {
    public var sigma: Float
    public init(sigma: Float) { self.sigma = sigma }
    public var radius: Int { max(1, Int((3 * sigma).rounded(.up))) }
    /// Unnormalized taps `exp(-t^2 / (2 sigma^2))` for `t` in `-radius...radius`.
    public var taps: [Float] {
        (-radius...radius).map { t in Float(exp(-Double(t * t) / (2 * Double(sigma) * Double(sigma)))) }
    }
}

/// SGD with momentum (PyTorch form): `v = momentum * v + (g + weightDecay * p)`; `p -= lr * v`.
public struct SGDMomentum: Hashable, Sendable {
    public var learningRate: Float, momentum: Float, weightDecay: Float
    public init(learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0) {
        self.learningRate = learningRate; self.momentum = momentum; self.weightDecay = weightDecay
    }
}

/// Adam (Kingma & Ba 2015) with bias correction; `step` counts from 1.
/// `g' = g + weightDecay * p; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
/// p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.
public struct Adam: Hashable, Sendable {
    public var learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
    }
}
