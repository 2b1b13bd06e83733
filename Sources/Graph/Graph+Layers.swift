import CLBackend
import Foundation

/// SplitMix64: a small, fast, seedable generator, so a model's random initialization is
/// reproducible from its seed on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal sample (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(Double.random(in: 0..<1, using: &self), 1e-300), u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

/// How a layer's weights start.
public enum Initialization: Sendable {
    /// He et al. 2015: normal with std sqrt(2 / fanIn) — for layers followed by ReLU.
    case he
    /// Glorot & Bengio 2010: uniform in +-sqrt(6 / (fanIn + fanOut)).
    case glorot
    /// Every element equal.
    case constant(Float)

    func values(count: Int, fanIn: Int, fanOut: Int, _ rng: inout SeededGenerator) -> [Float] {
        switch self {
        case .he:
            let std = (2 / Float(max(fanIn, 1))).squareRoot()
            return (0..<count).map { _ in rng.normal() * std }
        case .glorot:
            let a = (6 / Float(max(fanIn + fanOut, 1))).squareRoot()
            return (0..<count).map { _ in Float.random(in: -a...a, using: &rng) }
        case .constant(let v):
            return Array(repeating: v, count: count)
        }
    }
}

/// Layer-building conveniences: each creates its parameters (named `PREFIX.weight`, `PREFIX.bias`,
/// as PyTorch state dicts name them, where `PREFIX` is `parameterPrefix` or else the node's name)
/// and one node, and returns the node's output. A separate prefix lets a node carry the layer name
/// users expect (`conv5_3`) while its parameters keep a framework's state-dict names (`features.28`).
extension Graph {
    @discardableResult
    public func conv(_ x: ValueID, _ outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                     padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true,
                     initialization: Initialization = .he, name: String, parameterPrefix: String? = nil,
                     rng: inout SeededGenerator) throws -> ValueID {
        let prefix = parameterPrefix ?? name
        let c = self[x].shape.rank == 4 ? self[x].shape[1] : 0
        guard groups > 0, c % groups == 0 else { throw GraphError("node '\(name)' (Conv2D): \(c) input channels are not divisible by groups \(groups)") }
        let wShape: Shape = [outChannels, c / groups, kernel.0, kernel.1]
        let fanIn = (c / groups) * kernel.0 * kernel.1, fanOut = outChannels / max(groups, 1) * kernel.0 * kernel.1
        let w = try parameter("\(prefix).weight", shape: wShape, values: initialization.values(count: wShape.count, fanIn: fanIn, fanOut: fanOut, &rng))
        var ins = [x, w]
        if bias { ins.append(try parameter("\(prefix).bias", shape: [outChannels], values: Array(repeating: 0, count: outChannels))) }
        let op = Conv2D(window: Window2D(kernel: kernel, stride: stride, dilation: dilation,
                                         padding: (padding.0, padding.1, padding.0, padding.1)), groups: groups)
        return try apply(.conv2d(op), ins, name: name)
    }

    /// Square convenience for `conv`.
    @discardableResult
    public func conv(_ x: ValueID, _ outChannels: Int, kernel k: Int, stride s: Int = 1, padding p: Int = 0, dilation d: Int = 1,
                     groups: Int = 1, bias: Bool = true, initialization: Initialization = .he, name: String,
                     parameterPrefix: String? = nil, rng: inout SeededGenerator) throws -> ValueID {
        try conv(x, outChannels, kernel: (k, k), stride: (s, s), padding: (p, p), dilation: (d, d), groups: groups, bias: bias,
                 initialization: initialization, name: name, parameterPrefix: parameterPrefix, rng: &rng)
    }

    @discardableResult
    public func linear(_ x: ValueID, _ outFeatures: Int, bias: Bool = true, initialization: Initialization = .glorot,
                       name: String, parameterPrefix: String? = nil, rng: inout SeededGenerator) throws -> ValueID {
        let prefix = parameterPrefix ?? name
        guard self[x].shape.rank == 2 else { throw GraphError("node '\(name)' (Linear): input must be [N, in], got \(self[x].shape); flatten first") }
        let inFeatures = self[x].shape[1]
        let w = try parameter("\(prefix).weight", shape: [outFeatures, inFeatures],
                              values: initialization.values(count: outFeatures * inFeatures, fanIn: inFeatures, fanOut: outFeatures, &rng))
        var ins = [x, w]
        if bias { ins.append(try parameter("\(prefix).bias", shape: [outFeatures], values: Array(repeating: 0, count: outFeatures))) }
        return try apply(.linear, ins, name: name)
    }

    /// Inference batch norm with identity statistics (scale 1, shift 0, mean 0, variance 1) until weights are loaded.
    @discardableResult
    public func batchNorm(_ x: ValueID, epsilon: Float = 1e-5, name: String, parameterPrefix: String? = nil) throws -> ValueID {
        let prefix = parameterPrefix ?? name
        let c = self[x].shape.rank >= 2 ? self[x].shape[1] : 0
        let scale = try parameter("\(prefix).weight", shape: [c], values: Array(repeating: 1, count: c))
        let shift = try parameter("\(prefix).bias", shape: [c], values: Array(repeating: 0, count: c))
        let mean = try parameter("\(prefix).running_mean", shape: [c], values: Array(repeating: 0, count: c))
        let variance = try parameter("\(prefix).running_var", shape: [c], values: Array(repeating: 1, count: c))
        return try apply(.batchNorm(epsilon: epsilon), [x, scale, shift, mean, variance], name: name)
    }

    @discardableResult
    public func relu(_ x: ValueID, name: String) throws -> ValueID { try apply(.activation(.relu), [x], name: name) }

    @discardableResult
    public func maxPool(_ x: ValueID, kernel k: Int, stride s: Int, padding p: Int = 0, ceilMode: Bool = false, name: String) throws -> ValueID {
        try add(.maxPool2d(MaxPool2D(window: Window2D(kernel: k, stride: s, padding: p, ceilMode: ceilMode))), [x], name: name)[0]
    }

    @discardableResult
    public func avgPool(_ x: ValueID, kernel k: Int, stride s: Int, padding p: Int = 0, countIncludePad: Bool = true,
                        ceilMode: Bool = false, name: String) throws -> ValueID {
        try apply(.avgPool2d(AvgPool2D(window: Window2D(kernel: k, stride: s, padding: p, ceilMode: ceilMode), countIncludePad: countIncludePad)), [x], name: name)
    }
}
