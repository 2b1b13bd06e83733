/// Host memory for the reference backend: a float32 tensor's elements in `floats`, an int32
/// tensor's in `ints` (the other array stays empty).
final class HostStorage: TensorStorage {
    var floats: [Float]
    var ints: [Int32]
    init(floats: [Float] = [], ints: [Int32] = []) {
        self.floats = floats
        self.ints = ints
    }
    var byteCount: Int { floats.count * MemoryLayout<Float>.size + ints.count * MemoryLayout<Int32>.size }
}

/// The oracle backend: each primitive widens its float32 inputs to `Double`, calls the matching
/// `Reference` function and rounds the result once into the caller's output tensor. Synchronous,
/// sequential and deterministic; the only error against exact arithmetic is `Double` round-off plus
/// the final rounding to `Float` (half an ulp).
///
/// Shapes are checked once more here (op geometry, element counts, index ranges), so a bad call
/// throws a `ShapeError` naming the op instead of trapping.
public final class ReferenceBackend: Backend {
    public let name = "reference"
    public var poisonsNewTensors = false

    public init() {}

    // MARK: Storage access

    private func host(_ tensor: Tensor, _ op: String, as dtype: DType) throws -> HostStorage {
        guard let storage = tensor.storage as? HostStorage else {
            throw ShapeError("\(op): \(tensor) does not live on the reference backend")
        }
        guard tensor.dtype == dtype else { throw ShapeError("\(op): \(tensor) must be \(dtype)") }
        let held = dtype == .float32 ? storage.floats.count : storage.ints.count
        guard held == tensor.count else {
            throw ShapeError("\(op): \(tensor) has storage for \(held) elements, its shape needs \(tensor.count)")
        }
        return storage
    }

    func doubles(_ tensor: Tensor, _ op: String) throws -> [Double] {
        try host(tensor, op, as: .float32).floats.map(Double.init)
    }

    private func ints(_ tensor: Tensor, _ op: String) throws -> [Int32] {
        try host(tensor, op, as: .int32).ints
    }

    func store(_ values: [Double], into tensor: Tensor, _ op: String) throws {
        let storage = try host(tensor, op, as: .float32)
        try requireCount(tensor, values.count, op)
        storage.floats = values.map(Float.init)
    }

    private func requireCount(_ tensor: Tensor, _ expected: Int, _ op: String) throws {
        guard tensor.count == expected else {
            throw ShapeError("\(op): \(tensor) has \(tensor.count) elements, expected \(expected)")
        }
    }

    /// Throws unless every switch indexes the `h x w` input plane.
    private func requireSwitches(_ switches: [Int32], plane: Int, _ op: String) throws {
        if let bad = switches.first(where: { $0 < 0 || Int($0) >= plane }) {
            throw ShapeError("\(op): switch \(bad) lies outside an input plane of \(plane) elements")
        }
    }

    // MARK: Tensors

    public func makeTensor(_ shape: Shape, dtype: DType) throws -> Tensor {
        guard shape.dims.allSatisfy({ $0 >= 0 }) else { throw ShapeError("makeTensor: negative dimension in \(shape)") }
        let storage = switch dtype {
        case .float32: HostStorage(floats: Array(repeating: poisonsNewTensors ? .nan : 0, count: shape.count))
        case .int32: HostStorage(ints: Array(repeating: poisonsNewTensors ? .min : 0, count: shape.count))
        }
        return Tensor(shape: shape, dtype: dtype, storage: storage)
    }

    public func write(_ values: [Float], to tensor: Tensor) throws {
        let storage = try host(tensor, "write", as: .float32)
        try requireCount(tensor, values.count, "write")
        storage.floats = values
    }

    public func write(_ values: [Int32], to tensor: Tensor) throws {
        let storage = try host(tensor, "write", as: .int32)
        try requireCount(tensor, values.count, "write")
        storage.ints = values
    }

    public func read(_ tensor: Tensor) throws -> [Float] { try host(tensor, "read", as: .float32).floats }
    public func readInts(_ tensor: Tensor) throws -> [Int32] { try host(tensor, "readInts", as: .int32).ints }
    public func synchronize() throws {}

    // MARK: Elementwise and data movement

    public func fill(_ tensor: Tensor, value: Float) throws {
        try store(Array(repeating: Double(value), count: tensor.count), into: tensor, "fill")
    }

    public func axpby(alpha: Float, _ x: Tensor, beta: Float, _ y: Tensor, output: Tensor) throws {
        try requireCount(y, x.count, "axpby")
        try store(Reference.axpby(alpha: Double(alpha), try doubles(x, "axpby"), beta: Double(beta), try doubles(y, "axpby")),
                  into: output, "axpby")
    }

    public func biasAdd(_ input: Tensor, bias: Tensor, output: Tensor) throws {
        try requireCount(bias, try input.shape.nchw(for: "biasAdd").c, "biasAdd")
        try store(Reference.biasAdd(try doubles(input, "biasAdd"), shape: input.shape, bias: try doubles(bias, "biasAdd")),
                  into: output, "biasAdd")
    }

    public func channelSum(_ input: Tensor, output: Tensor) throws {
        _ = try input.shape.nchw(for: "channelSum")
        try store(Reference.channelSum(try doubles(input, "channelSum"), shape: input.shape), into: output, "channelSum")
    }

    public func copyChannels(from src: Tensor, srcOffset: Int, to dst: Tensor, dstOffset: Int, channels: Int) throws {
        let op = "copyChannels"
        let (s, d) = (try src.shape.nchw(for: op), try dst.shape.nchw(for: op))
        guard s.n == d.n, s.h * s.w == d.h * d.w else {
            throw ShapeError("\(op): \(src) and \(dst) differ in batch or plane size")
        }
        guard channels >= 0, srcOffset >= 0, dstOffset >= 0, srcOffset + channels <= s.c, dstOffset + channels <= d.c else {
            throw ShapeError("\(op): channels \(srcOffset)..<\(srcOffset + channels) of \(src) into \(dstOffset)..<\(dstOffset + channels) of \(dst) are out of range")
        }
        var values = try doubles(dst, op)
        Reference.copyChannels(from: try doubles(src, op), srcShape: src.shape, srcOffset: srcOffset,
                               to: &values, dstShape: dst.shape, dstOffset: dstOffset, channels: channels)
        try store(values, into: dst, op)
    }

    public func transpose2d(input: Tensor, output: Tensor) throws {
        let name = "transpose2d"
        guard input.shape.rank == 2 else { throw ShapeError("\(name): expected an [R, C] matrix, got \(input.shape)") }
        let (rows, columns) = (input.shape[0], input.shape[1])
        try store(Reference.transpose(try doubles(input, name), rows: rows, columns: columns), into: output, name)
    }

    /// The reference derives nothing from weights, so there is nothing to keep.
    public func holdingConstant<T>(_ tensors: [Tensor], _ body: () throws -> T) throws -> T { try body() }

    public func derived(from sources: [Tensor], _ name: String, _ make: () throws -> Tensor) throws -> Tensor { try make() }

    // MARK: Fully connected

    private func denseShapes(_ rows: Tensor, _ weight: Tensor, _ out: Tensor, _ op: String) throws -> (n: Int, i: Int, o: Int) {
        guard rows.shape.rank == 2, weight.shape.rank == 2, out.shape.rank == 2, rows.shape[0] == out.shape[0] else {
            throw ShapeError("\(op): expected [N, *] rows, an [O, I] weight and [N, *] results, got \(rows.shape), \(weight.shape), \(out.shape)")
        }
        return (rows.shape[0], weight.shape[1], weight.shape[0])
    }

    public func denseForward(input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws {
        let (n, i, o) = try denseShapes(input, weight, output, "dense")
        guard input.shape[1] == i, output.shape[1] == o else { throw ShapeError("dense: \(input.shape) x \(weight.shape)^T -> \(output.shape)") }
        if let bias { try requireCount(bias, o, "dense") }
        try store(Reference.dense(try doubles(input, "dense"), rows: n, weight: try doubles(weight, "dense"), outputs: o,
                                  bias: try bias.map { try doubles($0, "dense") }), into: output, "dense")
    }

    public func denseBackwardData(outputGrad: Tensor, weight: Tensor, inputGrad: Tensor) throws {
        let (n, i, o) = try denseShapes(outputGrad, weight, inputGrad, "denseBackwardData")
        guard outputGrad.shape[1] == o, inputGrad.shape[1] == i else {
            throw ShapeError("denseBackwardData: \(outputGrad.shape) x \(weight.shape) -> \(inputGrad.shape)")
        }
        try store(Reference.denseBackwardData(try doubles(outputGrad, "denseBackwardData"), rows: n, weight: try doubles(weight, "denseBackwardData"),
                                              inputs: i), into: inputGrad, "denseBackwardData")
    }

    // MARK: Convolution

    public func conv2dForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws {
        let outShape = try op.outputShape(input: input.shape, weight: weight.shape)
        try requireCount(output, outShape.count, "conv2d")
        if let bias { try requireCount(bias, outShape[1], "conv2d") }
        let result = Reference.conv2dForward(op, input: try doubles(input, "conv2d"), inputShape: input.shape,
                                             weight: try doubles(weight, "conv2d"), weightShape: weight.shape,
                                             bias: try bias.map { try doubles($0, "conv2d") })
        try store(result, into: output, "conv2d")
    }

    public func conv2dBackwardData(_ op: Conv2D, outputGrad: Tensor, weight: Tensor, inputGrad: Tensor) throws {
        let name = "conv2dBackwardData"
        try requireCount(outputGrad, try op.outputShape(input: inputGrad.shape, weight: weight.shape).count, name)
        let result = Reference.conv2dBackwardData(op, outputGrad: try doubles(outputGrad, name), weight: try doubles(weight, name),
                                                  weightShape: weight.shape, inputShape: inputGrad.shape)
        try store(result, into: inputGrad, name)
    }

    public func conv2dBiasReLUForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, output: Tensor) throws {
        let name = "conv2dBiasReLU"
        let outShape = try op.outputShape(input: input.shape, weight: weight.shape)
        try requireCount(output, outShape.count, name)
        if let bias { try requireCount(bias, outShape[1], name) }
        let z = Reference.conv2dForward(op, input: try doubles(input, name), inputShape: input.shape,
                                        weight: try doubles(weight, name), weightShape: weight.shape, bias: try bias.map { try doubles($0, name) })
        try store(Reference.activationForward(.relu, input: z), into: output, name)
    }

    public func conv2dBackwardDataReLU(_ op: Conv2D, rule: ReLUBackwardRule, outputGrad: Tensor, weight: Tensor, reluOutput: Tensor,
                                       inputGrad: Tensor) throws {
        let name = "conv2dBackwardDataReLU"
        try requireCount(outputGrad, try op.outputShape(input: inputGrad.shape, weight: weight.shape).count, name)
        try requireCount(reluOutput, inputGrad.count, name)
        let g = Reference.conv2dBackwardData(op, outputGrad: try doubles(outputGrad, name), weight: try doubles(weight, name),
                                             weightShape: weight.shape, inputShape: inputGrad.shape)
        try store(Reference.activationBackward(.relu, rule: rule, input: try doubles(reluOutput, name), outputGrad: g), into: inputGrad, name)
    }

    public func conv2dBackwardFilter(_ op: Conv2D, input: Tensor, outputGrad: Tensor, weightGrad: Tensor) throws {
        let name = "conv2dBackwardFilter"
        try requireCount(outputGrad, try op.outputShape(input: input.shape, weight: weightGrad.shape).count, name)
        let result = Reference.conv2dBackwardFilter(op, input: try doubles(input, name), inputShape: input.shape,
                                                    outputGrad: try doubles(outputGrad, name), weightShape: weightGrad.shape)
        try store(result, into: weightGrad, name)
    }

    // MARK: Pooling

    public func maxPool2dForward(_ op: MaxPool2D, input: Tensor, output: Tensor, switches: Tensor) throws {
        let outShape = try op.outputShape(input: input.shape)
        try requireCount(output, outShape.count, "maxPool2d")
        let switchStorage = try host(switches, "maxPool2d", as: .int32)
        try requireCount(switches, outShape.count, "maxPool2d")
        let result = Reference.maxPool2dForward(op, input: try doubles(input, "maxPool2d"), inputShape: input.shape)
        try store(result.output, into: output, "maxPool2d")
        switchStorage.ints = result.switches
    }

    public func maxPool2dBackward(_ op: MaxPool2D, outputGrad: Tensor, switches: Tensor, inputGrad: Tensor) throws {
        let name = "maxPool2dBackward"
        let outShape = try op.outputShape(input: inputGrad.shape)
        try requireCount(outputGrad, outShape.count, name)
        try requireCount(switches, outShape.count, name)
        let indices = try ints(switches, name)
        try requireSwitches(indices, plane: inputGrad.shape[2] * inputGrad.shape[3], name)
        let result = Reference.maxPool2dBackward(outputGrad: try doubles(outputGrad, name), switches: indices, inputShape: inputGrad.shape)
        try store(result, into: inputGrad, name)
    }

    public func gatherSwitches(_ op: MaxPool2D, input: Tensor, switches: Tensor, output: Tensor) throws {
        let name = "gatherSwitches"
        let outShape = try op.outputShape(input: input.shape)
        try requireCount(output, outShape.count, name)
        try requireCount(switches, outShape.count, name)
        let indices = try ints(switches, name)
        try requireSwitches(indices, plane: input.shape[2] * input.shape[3], name)
        try store(Reference.gatherSwitches(input: try doubles(input, name), inputShape: input.shape, switches: indices), into: output, name)
    }

    public func avgPool2dForward(_ op: AvgPool2D, input: Tensor, output: Tensor) throws {
        try requireCount(output, try op.outputShape(input: input.shape).count, "avgPool2d")
        try store(Reference.avgPool2dForward(op, input: try doubles(input, "avgPool2d"), inputShape: input.shape), into: output, "avgPool2d")
    }

    public func avgPool2dBackward(_ op: AvgPool2D, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "avgPool2dBackward"
        try requireCount(outputGrad, try op.outputShape(input: inputGrad.shape).count, name)
        try store(Reference.avgPool2dBackward(op, outputGrad: try doubles(outputGrad, name), inputShape: inputGrad.shape), into: inputGrad, name)
    }

    // MARK: Activations and normalization

    public func activationForward(_ activation: Activation, input: Tensor, output: Tensor) throws {
        try store(Reference.activationForward(activation, input: try doubles(input, "activation")), into: output, "activation")
    }

    public func activationBackward(_ activation: Activation, rule: ReLUBackwardRule, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "activationBackward"
        try requireCount(outputGrad, input.count, name)
        let result = Reference.activationBackward(activation, rule: rule, input: try doubles(input, name), outputGrad: try doubles(outputGrad, name))
        try store(result, into: inputGrad, name)
    }

    public func localResponseNormForward(_ op: LocalResponseNorm, input: Tensor, output: Tensor) throws {
        try op.validate()
        _ = try input.shape.nchw(for: "localResponseNorm")
        try store(Reference.localResponseNormForward(op, input: try doubles(input, "localResponseNorm"), shape: input.shape),
                  into: output, "localResponseNorm")
    }

    public func localResponseNormBackward(_ op: LocalResponseNorm, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "localResponseNormBackward"
        try op.validate()
        _ = try input.shape.nchw(for: name)
        try requireCount(outputGrad, input.count, name)
        let result = Reference.localResponseNormBackward(op, input: try doubles(input, name), shape: input.shape,
                                                         outputGrad: try doubles(outputGrad, name))
        try store(result, into: inputGrad, name)
    }

    /// Checks that each per-channel tensor has one element per channel of `input`.
    private func requirePerChannel(_ tensors: [Tensor], of input: Tensor, _ op: String) throws {
        let c = try input.shape.nchw(for: op).c
        for tensor in tensors { try requireCount(tensor, c, op) }
    }

    public func batchNormForward(epsilon: Float, input: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, variance: Tensor, output: Tensor) throws {
        let name = "batchNorm"
        try requirePerChannel([scale, shift, mean, variance], of: input, name)
        let result = Reference.batchNormForward(epsilon: Double(epsilon), input: try doubles(input, name), shape: input.shape,
                                                scale: try doubles(scale, name), shift: try doubles(shift, name),
                                                mean: try doubles(mean, name), variance: try doubles(variance, name))
        try store(result, into: output, name)
    }

    public func batchNormBackward(epsilon: Float, input: Tensor, outputGrad: Tensor, scale: Tensor, mean: Tensor, variance: Tensor,
                                  inputGrad: Tensor, scaleGrad: Tensor?, shiftGrad: Tensor?) throws {
        let name = "batchNormBackward"
        try requirePerChannel([scale, mean, variance] + [scaleGrad, shiftGrad].compactMap { $0 }, of: input, name)
        try requireCount(outputGrad, input.count, name)
        let grads = Reference.batchNormBackward(epsilon: Double(epsilon), input: try doubles(input, name), shape: input.shape,
                                                outputGrad: try doubles(outputGrad, name), scale: try doubles(scale, name),
                                                mean: try doubles(mean, name), variance: try doubles(variance, name))
        try store(grads.input, into: inputGrad, name)
        if let scaleGrad { try store(grads.scale, into: scaleGrad, name) }
        if let shiftGrad { try store(grads.shift, into: shiftGrad, name) }
    }

    // MARK: Classifier heads

    public func softmaxForward(log: Bool, input: Tensor, output: Tensor) throws {
        _ = try input.shape.nchw(for: "softmax")
        try store(Reference.softmaxForward(log: log, input: try doubles(input, "softmax"), shape: input.shape), into: output, "softmax")
    }

    public func softmaxBackward(log: Bool, output: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "softmaxBackward"
        _ = try output.shape.nchw(for: name)
        try requireCount(outputGrad, output.count, name)
        let result = Reference.softmaxBackward(log: log, output: try doubles(output, name), outputGrad: try doubles(outputGrad, name), shape: output.shape)
        try store(result, into: inputGrad, name)
    }

    /// The labels of `logits` (`[N, K]`), checked to be one per row and in `0..<K`.
    private func classLabels(_ labels: Tensor, for logits: Tensor, _ op: String) throws -> [Int32] {
        let (n, k, h, w) = try logits.shape.nchw(for: op)
        try requireCount(labels, n, op)
        let values = try ints(labels, op)
        if let bad = values.first(where: { $0 < 0 || Int($0) >= k * h * w }) {
            throw ShapeError("\(op): label \(bad) is not a class of \(logits)")
        }
        return values
    }

    public func crossEntropyForward(logits: Tensor, labels: Tensor, losses: Tensor) throws {
        let name = "crossEntropy"
        let classes = try classLabels(labels, for: logits, name)
        try store(Reference.crossEntropyForward(logits: try doubles(logits, name), shape: logits.shape, labels: classes), into: losses, name)
    }

    public func crossEntropyBackward(logits: Tensor, labels: Tensor, lossGrad: Tensor, logitsGrad: Tensor) throws {
        let name = "crossEntropyBackward"
        let classes = try classLabels(labels, for: logits, name)
        try requireCount(lossGrad, logits.shape[0], name)
        let result = Reference.crossEntropyBackward(logits: try doubles(logits, name), shape: logits.shape, labels: classes,
                                                    lossGrad: try doubles(lossGrad, name))
        try store(result, into: logitsGrad, name)
    }

    // MARK: Image-space ops

    /// The `(n, c, h, w)` of an image tensor, which must be rank 4.
    private func image(_ tensor: Tensor, _ op: String) throws -> (n: Int, c: Int, h: Int, w: Int) {
        guard tensor.shape.rank == 4 else { throw ShapeError("\(op): expected an NCHW image tensor, got \(tensor.shape)") }
        return try tensor.shape.nchw(for: op)
    }

    /// Checks that `output` holds `input`'s planes at `op`'s size.
    private func requireResize(_ op: BilinearResize, input: Tensor, output: Tensor, _ name: String) throws {
        let (n, c, h, w) = try image(input, name)
        guard op.height > 0, op.width > 0, h > 0, w > 0 else {
            throw ShapeError("\(name): cannot resize \(input.shape) to \(op.height)x\(op.width)")
        }
        try requireCount(output, n * c * op.height * op.width, name)
    }

    public func resizeBilinearForward(_ op: BilinearResize, input: Tensor, output: Tensor) throws {
        let name = "resizeBilinear"
        try requireResize(op, input: input, output: output, name)
        try store(Reference.resizeBilinearForward(op, input: try doubles(input, name), inputShape: input.shape), into: output, name)
    }

    public func resizeBilinearBackward(_ op: BilinearResize, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "resizeBilinearBackward"
        try requireResize(op, input: inputGrad, output: outputGrad, name)
        try store(Reference.resizeBilinearBackward(op, outputGrad: try doubles(outputGrad, name), inputShape: inputGrad.shape), into: inputGrad, name)
    }

    public func resizeNearestForward(_ op: NearestResize, input: Tensor, output: Tensor) throws {
        let name = "resizeNearest"
        try requireCount(output, try op.outputShape(input: input.shape).count, name)
        try store(Reference.resizeNearestForward(op, input: try doubles(input, name), inputShape: input.shape), into: output, name)
    }

    public func resizeNearestBackward(_ op: NearestResize, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "resizeNearestBackward"
        try requireCount(outputGrad, try op.outputShape(input: inputGrad.shape).count, name)
        try store(Reference.resizeNearestBackward(op, outputGrad: try doubles(outputGrad, name), inputShape: inputGrad.shape), into: inputGrad, name)
    }

    public func pad2dForward(_ op: ConstantPad2D, input: Tensor, output: Tensor) throws {
        let name = "pad2d"
        try requireCount(output, try op.outputShape(input: input.shape).count, name)
        try store(Reference.pad2dForward(op, input: try doubles(input, name), inputShape: input.shape), into: output, name)
    }

    public func pad2dBackward(_ op: ConstantPad2D, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "pad2dBackward"
        try requireCount(outputGrad, try op.outputShape(input: inputGrad.shape).count, name)
        try store(Reference.pad2dBackward(op, outputGrad: try doubles(outputGrad, name), inputShape: inputGrad.shape), into: inputGrad, name)
    }

    public func totalVariationForward(_ op: TotalVariation, input: Tensor, output: Tensor) throws {
        let name = "totalVariation"
        try requireCount(output, try image(input, name).n, name)
        try store(Reference.totalVariationForward(op, input: try doubles(input, name), shape: input.shape), into: output, name)
    }

    public func totalVariationBackward(_ op: TotalVariation, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "totalVariationBackward"
        try requireCount(outputGrad, try image(input, name).n, name)
        let result = Reference.totalVariationBackward(op, input: try doubles(input, name), shape: input.shape, outputGrad: try doubles(outputGrad, name))
        try store(result, into: inputGrad, name)
    }

    public func lpNormForward(p: Float, input: Tensor, output: Tensor) throws {
        let name = "lpNorm"
        try requireCount(output, try input.shape.nchw(for: name).n, name)
        try store(Reference.lpNormForward(p: Double(p), input: try doubles(input, name), shape: input.shape), into: output, name)
    }

    public func lpNormBackward(p: Float, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "lpNormBackward"
        try requireCount(outputGrad, try input.shape.nchw(for: name).n, name)
        let result = Reference.lpNormBackward(p: Double(p), input: try doubles(input, name), shape: input.shape, outputGrad: try doubles(outputGrad, name))
        try store(result, into: inputGrad, name)
    }

    private func requireBlur(_ op: GaussianBlur, _ tensor: Tensor, _ name: String) throws {
        _ = try image(tensor, name)
        guard op.sigma > 0, op.sigma.isFinite else { throw ShapeError("\(name): sigma must be positive, got \(op.sigma)") }
    }

    public func gaussianBlurForward(_ op: GaussianBlur, input: Tensor, output: Tensor) throws {
        let name = "gaussianBlur"
        try requireBlur(op, input, name)
        try store(Reference.gaussianBlurForward(op, input: try doubles(input, name), shape: input.shape), into: output, name)
    }

    public func gaussianBlurBackward(_ op: GaussianBlur, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "gaussianBlurBackward"
        try requireBlur(op, outputGrad, name)
        try store(Reference.gaussianBlurBackward(op, outputGrad: try doubles(outputGrad, name), shape: outputGrad.shape), into: inputGrad, name)
    }

    public func roll(shiftH: Int, shiftW: Int, input: Tensor, output: Tensor) throws {
        _ = try image(input, "roll")
        try store(Reference.roll(shiftH: shiftH, shiftW: shiftW, input: try doubles(input, "roll"), shape: input.shape), into: output, "roll")
    }

    public func clampForward(min: Float, max: Float, input: Tensor, output: Tensor) throws {
        try store(Reference.clampForward(min: Double(min), max: Double(max), input: try doubles(input, "clamp")), into: output, "clamp")
    }

    public func clampBackward(min: Float, max: Float, input: Tensor, outputGrad: Tensor, inputGrad: Tensor) throws {
        let name = "clampBackward"
        try requireCount(outputGrad, input.count, name)
        let result = Reference.clampBackward(min: Double(min), max: Double(max), input: try doubles(input, name), outputGrad: try doubles(outputGrad, name))
        try store(result, into: inputGrad, name)
    }

    // MARK: Optimizers

    public func sgdMomentumStep(_ op: SGDMomentum, parameter: Tensor, gradient: Tensor, velocity: Tensor) throws {
        let name = "sgdMomentumStep"
        for tensor in [gradient, velocity] { try requireCount(tensor, parameter.count, name) }
        var (p, v) = (try doubles(parameter, name), try doubles(velocity, name))
        Reference.sgdMomentumStep(op, parameter: &p, gradient: try doubles(gradient, name), velocity: &v)
        try store(p, into: parameter, name)
        try store(v, into: velocity, name)
    }

    public func adamStep(_ op: Adam, step: Int, parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor) throws {
        let name = "adamStep"
        guard step >= 1 else { throw ShapeError("\(name): step counts from 1, got \(step)") }
        for tensor in [gradient, firstMoment, secondMoment] { try requireCount(tensor, parameter.count, name) }
        var (p, m, v) = (try doubles(parameter, name), try doubles(firstMoment, name), try doubles(secondMoment, name))
        Reference.adamStep(op, step: step, parameter: &p, gradient: try doubles(gradient, name), firstMoment: &m, secondMoment: &v)
        try store(p, into: parameter, name)
        try store(m, into: firstMoment, name)
        try store(v, into: secondMoment, name)
    }
}
