import CLBackend
import Foundation
import Graph

/// One term of an activation-maximization objective on one image of the batch, on a layer's
/// activation `A` (an NCHW feature map, or `[N, K]` logits where a "channel" is a class):
/// a unit `A[c, y, x]`, a channel's mean, or DeepDream's `||A||^2 / (2 |A|)` of the whole layer.
public struct ObjectiveTerm: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case unit(channel: Int, y: Int, x: Int)
        case channelMean(Int)
        case layerL2
    }
    public var layer: String, kind: Kind, weight: Float
    public init(layer: String, _ kind: Kind, weight: Float = 1) { self.layer = layer; self.kind = kind; self.weight = weight }
}

/// How the image is parameterized: pixels in [0, 1]; Lucid's Fourier spectrum with 1/f^decay
/// scaling, colour decorrelation (3 channels) and a sigmoid; or the coefficients `z` of a PCA
/// prior learned from example images, `clamp(mean + basis z, 0, 1)` (L2 decay on `z` is the
/// prior's Gaussian).
public enum ImageParameterization: Hashable, Sendable {
    case pixels
    case fourier(decay: Float)
    case pca(PCAPrior)
}

public enum SynthesisOptimizer: Hashable, Sendable {
    case adam(learningRate: Float)
    case sgd(learningRate: Float, momentum: Float)
}

/// Everything a synthesis run can vary. Regularizer weights of 0 turn them off.
public struct SynthesisOptions: Sendable {
    public var steps = 128
    public var optimizer = SynthesisOptimizer.adam(learningRate: 0.05)
    public var parameterization = ImageParameterization.fourier(decay: 1)
    /// Jitter: a random roll by up to this many pixels each step, undone on the gradient.
    public var jitter = 2
    /// Random scale and rotation each step (nil: none).
    public var affine: RandomAffine? = RandomAffine(scale: 0.95...1.05, maxDegrees: 5)
    public var totalVariationWeight: Float = 0, totalVariationBeta: Float = 2
    /// Mahendran & Vedaldi's `lambda_alpha ||x||_alpha^alpha` on the model input.
    public var alphaNormWeight: Float = 0, alpha: Float = 6
    /// Pixels and PCA coefficients: `x <- (1 - l2Decay) x` after each step. Pixels only: a Gaussian
    /// blur every `blurEvery` steps (0: never), and clipping to [0, 1].
    public var l2Decay: Float = 0, blurEvery = 0, blurSigma: Float = 0.5
    /// Runs with the same seed (and streams) draw the same initial images and transforms.
    public var seed = 0
    /// Image n of the batch uses random stream `firstStream + n`.
    public var firstStream = 0
    /// Read the objective back every this many steps (and at the last step) for progress.
    public var reportEvery = 16
    /// Per-channel mean and std between the [0, 1] image and the model input.
    public var mean: [Float] = [0], std: [Float] = [1]
    /// Pixels: the noise start is `initialGray + initialNoise * N(0, 1)`, clipped to [0, 1]. PCA:
    /// the coefficients start at `initialNoise * N(0, 1)`, near the examples' mean image.
    public var initialGray: Float = 0.5, initialNoise: Float = 0.1
    /// Start from these images (`[N, C, H, W]` in [0, 1], pixels only) instead of noise.
    public var start: HostTensor?
    /// Lucid's diversity term: maximization subtracts `diversityWeight * D` of the batch's Gram
    /// matrices at `diversityLayer` (default: the first objective term's layer), pushing the
    /// images apart. 0 (or a batch of one): off.
    public var diversityWeight: Float = 0
    public var diversityLayer: String?
    public init() {}
}

/// What a report step saw: the step, the loss being minimized and the objective per image.
public struct SynthesisProgress: Sendable {
    public let step: Int, steps: Int, loss: Float, objectives: [Float]
}

public struct SynthesisResult: Sendable {
    /// `[N, C, H, W]` in [0, 1].
    public let images: HostTensor
    /// The objective of each image at the last step (inversion: the normalized error).
    public let objectives: [Float]
    /// `(step, mean objective)` at each report step.
    public let history: [(step: Int, objective: Float)]
    public let steps: Int, seconds: Double
    /// The batch's diversity `D` (see `Backend.gramDiversity`) at the last report, when the run had the term.
    public var diversity: Float? = nil
    public var stepsPerSecond: Double { seconds > 0 ? Double(steps) / seconds : 0 }
}

public struct SynthesisError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Activation maximization and network inversion on one graph with one image input. Every step
/// (parameterization, transforms drawn on the device from (seed, step), forward to the deepest
/// layer the objective reads, backward to the image, regularizers, optimizer) only enqueues;
/// the host reads the objective every `reportEvery` steps and the images at the end.
public final class Synthesizer {
    public let graph: Graph
    public let backend: Backend
    private let parameters: [ValueID: Tensor]

    public init(graph: Graph, backend: Backend) throws {
        guard graph.inputs.count == 1, graph[graph.inputs[0]].shape.rank == 4 else {
            throw SynthesisError("synthesis needs a model with one NCHW image input")
        }
        self.graph = graph
        self.backend = backend
        parameters = try Executor(graph, on: backend).parameters
    }

    /// The image size `(C, H, W)` of the model input.
    public var imageShape: (c: Int, h: Int, w: Int) {
        let s = graph[graph.inputs[0]].shape
        return (s[1], s[2], s[3])
    }

    /// A layer by name, with a message that lists how to find the names.
    public func layer(_ name: String) throws -> ValueID {
        guard let v = graph.value(named: name), graph[v].kind != .parameter else {
            throw SynthesisError("the model has no layer '\(name)'; see `loupe info` for its layers")
        }
        guard [2, 4].contains(graph[v].shape.rank) else { throw SynthesisError("layer '\(name)' is \(graph[v].shape), not [N, C, H, W] or [N, K]") }
        return v
    }

    /// Checks a term against its layer: channel and position in range.
    public func check(_ term: ObjectiveTerm) throws {
        let s = graph[try layer(term.layer)].shape
        let (c, h, w) = (s[1], s.rank == 4 ? s[2] : 1, s.rank == 4 ? s[3] : 1)
        switch term.kind {
        case .unit(let ch, let y, let x):
            guard (0..<c).contains(ch) else { throw SynthesisError("channel \(ch) is out of range for layer '\(term.layer)' with \(c) channels") }
            guard (0..<h).contains(y), (0..<w).contains(x) else {
                throw SynthesisError("position (\(y), \(x)) is outside layer '\(term.layer)' of \(h)x\(w)")
            }
        case .channelMean(let ch):
            guard (0..<c).contains(ch) else { throw SynthesisError("channel \(ch) is out of range for layer '\(term.layer)' with \(c) channels") }
        case .layerL2: break
        }
    }

    /// Runs `body` with the model's weights held constant on the backend (`Backend.holdingConstant`):
    /// every `maximize` and `invert` inside it reuses the packed and transformed weights made by the
    /// first, where each call on its own makes them once (benchmarks use this to time steady steps).
    public func holdingWeights<T>(_ body: () throws -> T) throws -> T {
        try backend.holdingConstant(Array(parameters.values), body)
    }

    // MARK: Activation maximization

    /// Maximizes `sum of terms[n]` for image n of a batch of `terms.count` images.
    public func maximize(_ terms: [[ObjectiveTerm]], options: SynthesisOptions,
                         progress: ((SynthesisProgress) -> Void)? = nil) throws -> SynthesisResult {
        guard !terms.isEmpty, terms.allSatisfy({ !$0.isEmpty }) else { throw SynthesisError("every image needs at least one objective term") }
        for t in terms.joined() { try check(t) }
        let n = terms.count
        let g = try graph.withBatch(n)
        let layers = Set(terms.joined().map(\.layer)).sorted().map { g.value(named: $0)! }
        // The diversity term's layer and its constant gradient seed (the loss adds +w D).
        var diversity: (layer: ValueID, seed: Tensor)?
        if options.diversityWeight != 0 && n > 1 {
            let name = options.diversityLayer ?? terms[0][0].layer
            _ = try layer(name)
            diversity = (g.value(named: name)!, try backend.full([1], value: options.diversityWeight))
        }
        var lastDiversity: Float?
        // Linear terms: one constant cotangent per layer, uploaded once; the objective is <seed, A>.
        var linear: [ValueID: [Float]] = [:]
        var l2Weights: [ValueID: [Float]] = [:]
        for (i, imageTerms) in terms.enumerated() {
            for t in imageTerms {
                let v = g.value(named: t.layer)!
                let s = g[v].shape, per = s.count / n
                let (h, w) = (s.rank == 4 ? s[2] : 1, s.rank == 4 ? s[3] : 1)
                switch t.kind {
                case .unit(let c, let y, let x):
                    linear[v, default: [Float](repeating: 0, count: s.count)][i * per + (c * h + y) * w + x] += t.weight
                case .channelMean(let c):
                    for p in 0..<(h * w) { linear[v, default: [Float](repeating: 0, count: s.count)][i * per + c * h * w + p] += t.weight / Float(h * w) }
                case .layerL2:
                    l2Weights[v, default: [Float](repeating: 0, count: n)][i] += t.weight / Float(per)
                }
            }
        }
        var deviceSeeds: [ValueID: Tensor] = [:]
        for (v, values) in linear { deviceSeeds[v] = try backend.tensor(values.map { -$0 }, shape: g[v].shape) }
        // DeepDream: the cotangent of -w ||A||^2 / 2 is -w A, per image.
        var l2Scale: [ValueID: Tensor] = [:]
        for (v, weights) in l2Weights { l2Scale[v] = try backend.tensor(weights.map { -$0 }, shape: [n]) }
        let objective: (Executor.Pass) throws -> [Float] = { pass in
            if let d = diversity { lastDiversity = try self.backend.read(self.backend.gramDiversity(pass[d.layer]!))[0] }
            var total = [Float](repeating: 0, count: n)
            for v in layers {
                let a = try self.backend.read(pass[v]!), per = a.count / n
                for i in 0..<n {
                    let slice = a[(i * per)..<((i + 1) * per)]
                    if let s = linear[v] { total[i] += zip(slice, s[(i * per)..<((i + 1) * per)]).reduce(0) { $0 + $1.0 * $1.1 } }
                    if let w = l2Weights[v]?[i], w != 0 { total[i] += w * slice.reduce(0) { $0 + $1 * $1 } / 2 }
                }
            }
            return total
        }
        let retained = diversity.map { d in layers.contains(d.layer) ? layers : layers + [d.layer] } ?? layers
        var result = try optimize(graph: g, layers: retained, options: options, lossSign: -1, objective: objective) { pass in
            var cotangents = deviceSeeds
            for (v, scale) in l2Scale {
                let term = try self.perImageScaled(pass[v]!, scale)
                cotangents[v] = try cotangents[v].map { try self.backend.add($0, term) } ?? term
            }
            if let d = diversity {
                let term = try self.backend.gramDiversityBackward(d.seed, input: pass[d.layer]!)
                cotangents[d.layer] = try cotangents[d.layer].map { try self.backend.add($0, term) } ?? term
            }
            return cotangents
        } progress: { progress?($0) }
        result.diversity = lastDiversity
        return result
    }

    // MARK: Inversion

    /// The features `Phi0` of `layer` for `images` (`[N, C, H, W]`, already normalized as the
    /// model expects).
    public func features(of images: HostTensor, layer name: String) throws -> [Float] {
        let v = try layer(name)
        let g = try graph.withBatch(images.shape[0])
        let exec = try Executor(g, on: backend, parameters: parameters, foldsBatchNorm: true)
        let x = try backend.tensor(images.values, shape: images.shape)
        return try backend.read(exec.forward([g.inputs[0]: x], retaining: [v], until: v)[v]!)
    }

    /// Mahendran & Vedaldi: minimizes `||Phi(x) - Phi0||^2 / ||Phi0||^2` plus the options'
    /// alpha-norm and TV terms. `target` holds `Phi0` for each image of the batch (any values:
    /// the features of an image, or a perturbation of them). The result's objectives are the
    /// normalized errors `||Phi(x*) - Phi0|| / ||Phi0||`.
    public func invert(layer name: String, target: [Float], options: SynthesisOptions,
                       progress: ((SynthesisProgress) -> Void)? = nil) throws -> SynthesisResult {
        let v0 = try layer(name)
        let per = graph[v0].shape.count / graph[v0].shape[0]
        guard !target.isEmpty, target.count % per == 0 else {
            throw SynthesisError("inversion target has \(target.count) values, not a multiple of layer '\(name)''s \(per)")
        }
        let n = target.count / per
        let g = try graph.withBatch(n)
        let v = g.value(named: name)!
        let phi0 = try backend.tensor(target, shape: g[v].shape)
        let norms = (0..<n).map { i in max(target[(i * per)..<((i + 1) * per)].reduce(0) { $0 + $1 * $1 }, 1e-12) }
        // The cotangent of sum_n ||A_n - Phi0_n||^2 / ||Phi0_n||^2 is 2 (A_n - Phi0_n) / ||Phi0_n||^2.
        let scale = try backend.tensor(norms.map { 2 / $0 }, shape: [n])
        let objective: (Executor.Pass) throws -> [Float] = { pass in
            let a = try self.backend.read(pass[v]!)
            return (0..<n).map { i in
                let d = (i * per..<(i + 1) * per).reduce(Float(0)) { $0 + (a[$1] - target[$1]) * (a[$1] - target[$1]) }
                return (d / norms[i]).squareRoot()
            }
        }
        return try optimize(graph: g, layers: [v], options: options, lossSign: 1, objective: objective) { pass in
            [v: try self.perImageScaled(self.backend.axpby(alpha: 1, pass[v]!, beta: -1, phi0), scale)]
        } progress: { progress?($0) }
    }

    /// `t[n] * scales[n]` for each image n: an inference batch norm over the view `[1, N, per, 1]`,
    /// whose channels are the images.
    private func perImageScaled(_ t: Tensor, _ scales: Tensor) throws -> Tensor {
        let n = t.shape[0], eps: Float = 1e-5
        let view = try t.reshaped(to: [1, n, t.count / n, 1])
        let y = try backend.batchNorm(view, scale: scales, shift: backend.full([n], value: 0), mean: backend.full([n], value: 0),
                                      variance: backend.full([n], value: 1 - eps), epsilon: eps)
        return try y.reshaped(to: t.shape)
    }

    // MARK: The loop

    private func optimize(graph g: Graph, layers: [ValueID], options o: SynthesisOptions, lossSign: Float,
                          objective: (Executor.Pass) throws -> [Float], cotangents: (Executor.Pass) throws -> [ValueID: Tensor],
                          progress: (SynthesisProgress) -> Void) throws -> SynthesisResult {
        // The weights never change while the image is optimized: the backend keeps their packed
        // and transformed forms for the whole run instead of remaking them every step.
        try backend.holdingConstant(Array(parameters.values)) {
            try optimizeHoldingWeights(graph: g, layers: layers, options: o, lossSign: lossSign, objective: objective,
                                       cotangents: cotangents, progress: progress)
        }
    }

    private func optimizeHoldingWeights(graph g: Graph, layers: [ValueID], options o: SynthesisOptions, lossSign: Float,
                                        objective: (Executor.Pass) throws -> [Float], cotangents: (Executor.Pass) throws -> [ValueID: Tensor],
                                        progress: (SynthesisProgress) -> Void) throws -> SynthesisResult {
        let be = backend
        let input = g.inputs[0]
        let shape = g[input].shape
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        guard o.steps > 0, o.reportEvery > 0 else { throw SynthesisError("steps (\(o.steps)) and the report interval (\(o.reportEvery)) must be positive") }
        guard o.seed >= 0, o.seed <= Int(Int32.max) else { throw SynthesisError("seed \(o.seed) must lie in 0...\(Int32.max)") }
        let exec = try Executor(g, on: be, parameters: parameters, foldsBatchNorm: true)
        let deepest = layers.max { (g.producer[$0] ?? -1) < (g.producer[$1] ?? -1) }!
        let mean = try perChannel(o.mean, c, "mean"), std = try perChannel(o.std, c, "std")
        let normalize = zip(mean, std).contains { $0 != 0 || $1 != 1 }
        // The normalization (x - mean) / std as an inference batch norm with variance 1 - eps.
        let eps: Float = 1e-5
        let bnScale = try be.tensor(std.map { 1 / $0 }, shape: [c]), bnShift = try be.full([c], value: 0)
        let bnMean = try be.tensor(mean, shape: [c]), bnVariance = try be.full([c], value: 1 - eps)

        // The parameter and its image in [0, 1].
        let fourier: FourierImage?
        let param: Tensor
        var colorMatrix: Tensor?
        var pca: (basis: Tensor, mean: Tensor, k: Int)?
        switch o.parameterization {
        case .pca(let prior):
            guard o.start == nil else { throw SynthesisError("a start image needs the pixel parameterization") }
            guard prior.imageShape == [c, h, w] else { throw SynthesisError("the PCA prior's images are \(prior.imageShape), the model takes [\(c), \(h), \(w)]") }
            fourier = nil
            pca = (try be.tensor(prior.basis, shape: [c * h * w, prior.components]), try be.tensor(prior.mean, shape: [c * h * w]), prior.components)
            param = try be.tensor(initialValues(count: n * prior.components, n: n, o) { o.initialNoise * $0 }, shape: [n, prior.components])
        case .pixels:
            fourier = nil
            if let start = o.start {
                guard start.shape == shape else { throw SynthesisError("start images are \(start.shape), the model takes \(shape)") }
                param = try be.tensor(start.values, shape: shape)
            } else {
                param = try be.tensor(initialValues(count: shape.count, n: n, o) { min(1, max(0, o.initialGray + o.initialNoise * $0)) }, shape: shape)
            }
        case .fourier(let decay):
            guard o.start == nil else { throw SynthesisError("a start image needs the pixel parameterization") }
            let op = FourierImage(height: h, width: w, decay: decay)
            fourier = op
            let s = op.spectrumShape(batch: n, channels: c)
            param = try be.tensor(initialValues(count: s.count, n: n, o) { 0.01 * $0 }, shape: s)
            colorMatrix = try be.tensor(c == 3 ? imageNetColorDecorrelation : identity(c), shape: [c, c])
        }
        let m1 = try be.full(param.shape, value: 0), m2 = try be.full(param.shape, value: 0)
        let tvSeed = try be.full([n], value: lossSign.magnitude * o.totalVariationWeight)
        let alphaSeed = try be.full([n], value: o.alphaNormWeight)
        let roll = RandomRoll(maxShift: o.jitter)

        // The PCA image before its clamp (the clamp's backward needs it).
        var unclamped: Tensor?
        func image() throws -> Tensor {
            if let pca {
                let x = try be.linear(param, weight: pca.basis, bias: pca.mean).reshaped(to: shape)
                unclamped = x
                return try be.clamp(x, min: 0, max: 1)
            }
            guard let fourier else { return param }
            return try be.colorSigmoid(be.fourierImage(param, fourier), matrix: colorMatrix!)
        }

        var history: [(step: Int, objective: Float)] = []
        var last: [Float] = []
        let start = Date()
        for step in 1...o.steps {
            let draw = RandomDraw(seed: o.seed, step: step, firstStream: o.firstStream)
            let x01 = try image()
            var x = normalize ? try be.batchNorm(x01, scale: bnScale, shift: bnShift, mean: bnMean, variance: bnVariance, epsilon: eps) : x01
            if o.jitter > 0 { x = try be.randomRoll(x, roll, draw) }
            if let affine = o.affine { x = try be.randomAffine(x, affine, draw) }
            let pass = try exec.forward([input: x], forBackward: true, retaining: Set(layers), until: deepest)
            if step % o.reportEvery == 0 || step == o.steps || step == 1 {
                last = try objective(pass)
                let meanObjective = last.reduce(0, +) / Float(n)
                history.append((step, meanObjective))
                progress(SynthesisProgress(step: step, steps: o.steps, loss: lossSign * meanObjective, objectives: last))
            }
            var grad = try exec.backward(pass, seeds: cotangents(pass), targets: [input])[input] ?? be.full(shape, value: 0)
            if let affine = o.affine { grad = try be.randomAffineBackward(grad, affine, draw) }
            if o.jitter > 0 { grad = try be.randomRoll(grad, roll, draw, inverse: true) }
            if o.alphaNormWeight > 0 {
                let xs = normalize ? try be.batchNorm(x01, scale: bnScale, shift: bnShift, mean: bnMean, variance: bnVariance, epsilon: eps) : x01
                grad = try be.add(grad, be.lpNormBackward(alphaSeed, input: xs, p: o.alpha))
            }
            if normalize {
                grad = try be.batchNormBackward(grad, input: x01, scale: bnScale, mean: bnMean, variance: bnVariance, epsilon: eps,
                                               parameters: false).input
            }
            if o.totalVariationWeight > 0 {
                grad = try be.add(grad, be.totalVariationBackward(tvSeed, input: x01, TotalVariation(beta: o.totalVariationBeta)))
            }
            if let fourier {
                grad = try be.fourierImageBackward(be.colorSigmoidBackward(grad, output: x01, matrix: colorMatrix!), fourier)
            }
            if let pca {
                let dx = try be.clampBackward(grad, input: unclamped!, min: 0, max: 1)
                grad = try be.linearBackwardData(dx.reshaped(to: [n, c * h * w]), weight: pca.basis)
            }
            switch o.optimizer {
            case .adam(let lr): try be.step(Adam(learningRate: lr), step: step, parameter: param, gradient: grad, firstMoment: m1, secondMoment: m2)
            case .sgd(let lr, let momentum): try be.step(SGDMomentum(learningRate: lr, momentum: momentum), parameter: param, gradient: grad, velocity: m1)
            }
            if pca != nil, o.l2Decay > 0 { try be.axpby(alpha: 1 - o.l2Decay, param, beta: 0, param, output: param) }
            if fourier == nil && pca == nil {
                if o.l2Decay > 0 { try be.axpby(alpha: 1 - o.l2Decay, param, beta: 0, param, output: param) }
                if o.blurEvery > 0 && step % o.blurEvery == 0 {
                    let blurred = try be.gaussianBlur(param, GaussianBlur(sigma: o.blurSigma))
                    try be.axpby(alpha: 1, blurred, beta: 0, blurred, output: param)
                }
                try be.clampForward(min: 0, max: 1, input: param, output: param)
            }
        }
        let final = try HostTensor(shape: shape, values: be.read(image()))
        return SynthesisResult(images: final, objectives: last, history: history, steps: o.steps, seconds: Date().timeIntervalSince(start))
    }

    /// Seeded standard normals (Box-Muller over `SynthesisRandom`), image `i` from stream
    /// `firstStream + i`, so a batched run starts where the single runs do.
    private func initialValues(count: Int, n: Int, _ o: SynthesisOptions, _ transform: (Float) -> Float) -> [Float] {
        let per = count / n
        return (0..<count).map { j in
            let (i, k) = j.quotientAndRemainder(dividingBy: per)
            let stream = UInt32(o.firstStream + i), seed = UInt32(o.seed)
            let u1 = max(SynthesisRandom.uniform(seed: seed, step: UInt32.max, stream: stream, k: UInt32(2 * k)), 1e-7)
            let u2 = SynthesisRandom.uniform(seed: seed, step: UInt32.max, stream: stream, k: UInt32(2 * k + 1))
            return transform((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
        }
    }

    private func perChannel(_ v: [Float], _ c: Int, _ name: String) throws -> [Float] {
        if v.count == 1 { return Array(repeating: v[0], count: c) }
        guard v.count == c else { throw SynthesisError("\(v.count) \(name) values for a \(c)-channel model input") }
        return v
    }

    private func identity(_ c: Int) -> [Float] { (0..<(c * c)).map { $0 % (c + 1) == 0 ? 1 : 0 } }
}

/// Dosovitskiy & Brox's feature perturbations, both keeping each image's Euclidean norm.
public enum FeaturePerturbation: String, CaseIterable, Sendable {
    case none, binarized, dropout

    /// `features` of `n` images; dropout zeroes half of each image's features (seeded) and rescales.
    public func apply(_ features: [Float], images n: Int, seed: Int) -> [Float] {
        let per = features.count / max(n, 1)
        return (0..<n).flatMap { i -> [Float] in
            let f = Array(features[(i * per)..<((i + 1) * per)])
            let norm = f.reduce(0) { $0 + $1 * $1 }.squareRoot()
            switch self {
            case .none: return f
            case .binarized:
                let magnitude = norm / Float(per).squareRoot()
                return f.map { $0 > 0 ? magnitude : ($0 < 0 ? -magnitude : 0) }
            case .dropout:
                let kept = f.enumerated().map { k, v in
                    SynthesisRandom.uniform(seed: UInt32(seed), step: 0, stream: UInt32(i), k: UInt32(k)) < 0.5 ? v : 0
                }
                let keptNorm = kept.reduce(0) { $0 + $1 * $1 }.squareRoot()
                return keptNorm > 0 ? kept.map { $0 * norm / keptNorm } : kept
            }
        }
    }
}
