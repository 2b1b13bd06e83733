/// A place where tensors live and ops run. Two conformers: `OpenCLBackend` (the fast path) and
/// `ReferenceBackend` (plain Swift, the oracle). Conformance tests hold them together.
///
/// The requirements below are the *primitives*: outputs are allocated by the caller and shapes are
/// already checked. Callers use the validating, allocating API in `Backend+Ops.swift`.
/// Every primitive is deterministic: no float atomics, reductions in a fixed order.
/// Nothing but `read`, `readInts` and `synchronize` blocks; everything else may only enqueue.
public protocol Backend: AnyObject {
    /// A human-readable name, e.g. `opencl:0 (pthread-skylake)` or `reference`.
    var name: String { get }
    /// When set, every tensor made afterwards starts filled with NaN (int32: `Int32.min`), so an
    /// element an op forgets to write shows up in a comparison.
    var poisonsNewTensors: Bool { get set }

    func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor
    func write(_ values: [Float], to tensor: Tensor) throws
    func write(_ values: [Int32], to tensor: Tensor) throws
    func read(_ tensor: Tensor) throws -> [Float]
    func readInts(_ tensor: Tensor) throws -> [Int32]
    func synchronize() throws
    /// Runs `body` with `tensors` (a model's weights) taken as constant: a backend may keep what it
    /// derives from them (packed or transformed weights) until `body` returns, instead of deriving
    /// it on every call. Writing one of them through `write` drops everything kept (what was derived
    /// from it may have been derived from in turn); nothing inside `body` may change them with a kernel.
    func holdingConstant<T>(_ tensors: [Tensor], _ body: () throws -> T) throws -> T
    /// `make()`, kept (inside `holdingConstant`) while every tensor of `sources` is held, so later
    /// calls with the same sources and `name` get the same tensor; otherwise just `make()`.
    func derived(from sources: [Tensor], _ name: String, _ make: () throws -> Tensor) throws -> Tensor

    // MARK: Elementwise and data movement
    func fill(_ tensor: Tensor, value: Float) throws
    /// `output = alpha * x + beta * y` elementwise (residual add, gradient accumulation, scaling).
    func axpby(alpha: Float, _ x: Tensor, beta: Float, _ y: Tensor, output: Tensor) throws
    /// `output[n, c, h, w] = input[n, c, h, w] + bias[c]`.
    func biasAdd(_ input: Tensor, bias: Tensor, output: Tensor) throws
    /// `output[c] = sum over n, h, w of input[n, c, h, w]` (bias gradients; rank-2 input is `[N, C]`).
    func channelSum(_ input: Tensor, output: Tensor) throws
    /// Copies `channels` channels of every image: `dst[n, dstOffset + i] = src[n, srcOffset + i]`.
    /// Concat forward (one call per input) and its backward (one call per input gradient).
    func copyChannels(from src: Tensor, srcOffset: Int, to dst: Tensor, dstOffset: Int, channels: Int) throws
    /// `output[c, r] = input[r, c]` for an `[R, C]` input and a `[C, R]` output.
    func transpose2d(input: Tensor, output: Tensor) throws

    // MARK: Convolution
    /// Fully connected: `output [N, O] = input [N, I] weight [O, I]^T + bias [O]`.
    func denseForward(input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws
    /// `inputGrad [N, I] = outputGrad [N, O] weight [O, I]`.
    func denseBackwardData(outputGrad: Tensor, weight: Tensor, inputGrad: Tensor) throws
    func conv2dForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws
    func conv2dBackwardData(_ op: Conv2D, outputGrad: Tensor, weight: Tensor, inputGrad: Tensor) throws
    func conv2dBackwardFilter(_ op: Conv2D, input: Tensor, outputGrad: Tensor, weightGrad: Tensor) throws
    /// `output = max(0, conv2d(input) + bias)`: a convolution followed only by a ReLU, in one pass.
    func conv2dBiasReLUForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws
    /// Backward-data of a convolution whose input is the output `reluOutput` of a ReLU, followed by
    /// that ReLU's backward under `rule`, in one pass. `reluOutput > 0` exactly where the ReLU's
    /// input is, so the ReLU's output serves as its mask.
    func conv2dBackwardDataReLU(_ op: Conv2D, rule: ReLUBackwardRule, outputGrad: Tensor, weight: Tensor, reluOutput: Tensor,
                                inputGrad: Tensor) throws

    // MARK: Pooling
    /// `switches` (int32, the output's shape) gets each window's argmax as `h * W + w` in the input plane.
    func maxPool2dForward(_ op: MaxPool2D, input: Tensor, output: Tensor, switches: Tensor) throws
    /// `inputGrad[p] = sum of outputGrad[o] over the windows o whose switch is p` (a gather).
    /// With `outputGrad` = pooled values this is max unpooling.
    func maxPool2dBackward(_ op: MaxPool2D, outputGrad: Tensor, switches: Tensor, inputGrad: Tensor) throws
    /// `output[n, c, o] = input[n, c, switches[n, c, o]]`: the backward of max unpooling.
    func gatherSwitches(_ op: MaxPool2D, input: Tensor, switches: Tensor, output: Tensor) throws
    func avgPool2dForward(_ op: AvgPool2D, input: Tensor, output: Tensor) throws
    func avgPool2dBackward(_ op: AvgPool2D, outputGrad: Tensor, inputGrad: Tensor) throws

    // MARK: Activations and normalization
    func activationForward(_ activation: Activation, input: Tensor, output: Tensor) throws
    /// `rule` applies to ReLU; leaky ReLU always uses its true gradient.
    func activationBackward(_ activation: Activation, rule: ReLUBackwardRule, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws
    func localResponseNormForward(_ op: LocalResponseNorm, input: Tensor, output: Tensor) throws
    func localResponseNormBackward(_ op: LocalResponseNorm, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws
    /// Inference batch norm: `y = scale[c] * (x - mean[c]) / sqrt(variance[c] + epsilon) + shift[c]`.
    func batchNormForward(epsilon: Float, input: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor, output: Tensor) throws
    /// The scale and shift gradients are computed only where a tensor is given for them.
    func batchNormBackward(epsilon: Float, input: Tensor, outputGrad: Tensor, scale: Tensor, mean: Tensor, variance: Tensor,
                           inputGrad: Tensor, scaleGrad: Tensor?, shiftGrad: Tensor?) throws

    // MARK: Classifier heads ([N, K] rows)
    func softmaxForward(log: Bool, input: Tensor, output: Tensor) throws
    /// Takes the forward *output* `y`: softmax `dx = y * (dy - sum(dy * y))`; log-softmax `dx = dy - exp(y) * sum(dy)`.
    func softmaxBackward(log: Bool, output: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws
    /// `losses[n] = -log softmax(logits[n])[labels[n]]` (labels int32).
    func crossEntropyForward(logits: Tensor, labels: Tensor, losses: Tensor) throws
    /// `logitsGrad[n] = lossGrad[n] * (softmax(logits[n]) - onehot(labels[n]))`.
    func crossEntropyBackward(logits: Tensor, labels: Tensor, lossGrad: Tensor, logitsGrad: Tensor) throws

    // MARK: Image-space ops
    func resizeBilinearForward(_ op: BilinearResize, input: Tensor, output: Tensor) throws
    func resizeBilinearBackward(_ op: BilinearResize, outputGrad: Tensor, inputGrad: Tensor) throws
    func resizeNearestForward(_ op: NearestResize, input: Tensor, output: Tensor) throws
    /// `inputGrad[i] = sum of outputGrad[o]` over the outputs `o` that read input `i` (a gather).
    func resizeNearestBackward(_ op: NearestResize, outputGrad: Tensor, inputGrad: Tensor) throws
    func pad2dForward(_ op: ConstantPad2D, input: Tensor, output: Tensor) throws
    /// `inputGrad` = `outputGrad` cropped back to the input; 0 where the pad cropped the input away.
    func pad2dBackward(_ op: ConstantPad2D, outputGrad: Tensor, inputGrad: Tensor) throws
    /// `output[n]` = total variation of image n (summed over its channels).
    func totalVariationForward(_ op: TotalVariation, input: Tensor, output: Tensor) throws
    func totalVariationBackward(_ op: TotalVariation, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws
    /// `output[n] = sum |x|^p` over image n (the p-th power of the Lp norm), `p >= 1`.
    func lpNormForward(p: Float, input: Tensor, output: Tensor) throws
    func lpNormBackward(p: Float, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws
    func gaussianBlurForward(_ op: GaussianBlur, input: Tensor, output: Tensor) throws
    func gaussianBlurBackward(_ op: GaussianBlur, outputGrad: Tensor, inputGrad: Tensor) throws
    /// Cyclic shift of each plane: `output[h, w] = input[(h - shiftH) mod H, (w - shiftW) mod W]`.
    func roll(shiftH: Int, shiftW: Int, input: Tensor, output: Tensor) throws
    func clampForward(min: Float, max: Float, input: Tensor, output: Tensor) throws
    /// Passes the gradient where `min <= x <= max`, zero elsewhere.
    func clampBackward(min: Float, max: Float, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws

    // MARK: Optimizers (update in place)
    func sgdMomentumStep(_ op: SGDMomentum, parameter: Tensor, gradient: Tensor, velocity: Tensor) throws
    func adamStep(_ op: Adam, step: Int, parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor) throws

    // MARK: Synthesis (SynthesisOps.swift): random transforms drawn from (seed, step), Fourier images
    /// Rolls image n by `op.shift(draw, image: n)`, or by its negative when `inverse`.
    func randomRollForward(_ op: RandomRoll, _ draw: RandomDraw, inverse: Bool, input: Tensor, output: Tensor) throws
    func randomAffineForward(_ op: RandomAffine, _ draw: RandomDraw, input: Tensor, output: Tensor) throws
    /// The adjoint of the warp, a gather over the outputs that tap each input pixel.
    func randomAffineBackward(_ op: RandomAffine, _ draw: RandomDraw, outputGrad: Tensor, inputGrad: Tensor) throws
    func fourierImageForward(_ op: FourierImage, spectrum: Tensor, output: Tensor) throws
    func fourierImageBackward(_ op: FourierImage, outputGrad: Tensor, spectrumGrad: Tensor) throws
    func colorSigmoidForward(matrix: Tensor, input: Tensor, output: Tensor) throws
    func colorSigmoidBackward(matrix: Tensor, output: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws
    /// Lucid's diversity of a batch of feature maps (`gramDiversity` in SynthesisOps.swift): `output` is `[1]`.
    func gramDiversityForward(input: Tensor, output: Tensor) throws
    func gramDiversityBackward(input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws
}

