import CLBackend
import Foundation
import Graph

/// How an input gradient `[C, H, W]` becomes one `H x W` map.
public enum ChannelReduction: String, Sendable, CaseIterable {
    /// `max_c |g_c|` — Simonyan et al. 2013.
    case maxAbs
    /// `mean_c |g_c|`.
    case meanAbs
    /// `max_c g_c` (signed).
    case max
    /// `sum_c g_c` (signed; keeps Integrated Gradients' completeness).
    case sum

    func reduce(_ g: ArraySlice<Float>, channels: Int, plane: Int) -> [Float] {
        let b = g.startIndex
        return (0..<plane).map { p in
            let values = (0..<channels).map { g[b + $0 * plane + p] }
            switch self {
            case .maxAbs: return values.map(abs).max() ?? 0
            case .meanAbs: return values.map(abs).reduce(0, +) / Float(channels)
            case .max: return values.max() ?? 0
            case .sum: return values.reduce(0, +)
            }
        }
    }
}

extension Explainer {
    /// The gradient of each image's class score w.r.t. the input, `[N, C, H, W]` on the host,
    /// with the ReLU backward rule `rule` (standard: vanilla gradient; guided: guided
    /// backpropagation; deconvnet: DeconvNet), `maxBatch` images per device pass.
    public func inputGradients(_ images: HostTensor, classes: [Int], rule: ReLUBackwardRule = .standard, maxBatch: Int = 32) throws -> [Float] {
        let n = try checkImages(images)
        try checkClasses(classes, count: n)
        let per = imageShape.count
        var out: [Float] = []
        out.reserveCapacity(n * per)
        var start = 0
        while start < n {
            let count = min(max(maxBatch, 1), n - start)
            let x = try backend.tensor(Array(images.values[(start * per)..<((start + count) * per)]), shape: Shape([count] + imageShape.dims))
            let r = try activationAndGradient(x, classes: Array(classes[start..<(start + count)]), layer: nil, wantInput: true, rule: rule)
            guard let g = r.inputGradient else { throw ExplainError("the class scores do not depend on the input") }
            out += try backend.read(g)
            start += count
        }
        return out
    }

    /// Gradient saliency (Simonyan et al. 2013) and its backprop modifiers: `rule` standard
    /// (vanilla), guided (guided backpropagation) or deconvnet, reduced over colour channels.
    public func saliency(_ images: HostTensor, classes: [Int], rule: ReLUBackwardRule = .standard,
                         reduction: ChannelReduction = .maxAbs, maxBatch: Int = 32) throws -> [AttributionMap] {
        let g = try inputGradients(images, classes: classes, rule: rule, maxBatch: maxBatch)
        return reduced(g, reduction)
    }

    func reduced(_ g: [Float], _ reduction: ChannelReduction) -> [AttributionMap] {
        let (c, h, w) = (imageShape[0], imageShape[1], imageShape[2])
        return perImage(g, Shape([g.count / imageShape.count] + imageShape.dims)).map {
            AttributionMap(height: h, width: w, values: reduction.reduce($0, channels: c, plane: h * w))
        }
    }

    /// Guided Grad-CAM (Selvaraju et al. 2017): guided-backpropagation saliency times the
    /// Grad-CAM map upsampled to the input.
    public func guidedGradCAM(_ images: HostTensor, classes: [Int], layer: ValueID? = nil, maxBatch: Int = 32) throws -> [AttributionMap] {
        let guided = try saliency(images, classes: classes, rule: .guided, maxBatch: maxBatch)
        let cams = try upsampled(gradientCAM(images, classes: classes, layer: layer))
        return zip(guided, cams).map { g, c in AttributionMap(height: g.height, width: g.width, values: zip(g.values, c.values).map(*)) }
    }

    /// SmoothGrad (Smilkov et al. 2017): the input gradient averaged over `samples` copies of each
    /// image with Gaussian noise of standard deviation `noiseLevel * (max - min)` of that image,
    /// then reduced over channels. The noisy copies run as batches of `maxBatch`.
    public func smoothGrad(_ images: HostTensor, classes: [Int], samples: Int = 50, noiseLevel: Float = 0.15,
                           rule: ReLUBackwardRule = .standard, reduction: ChannelReduction = .maxAbs,
                           seed: UInt64 = 0, maxBatch: Int = 32) throws -> [AttributionMap] {
        let n = try checkImages(images)
        try checkClasses(classes, count: n)
        guard samples > 0, noiseLevel >= 0 else { throw ExplainError("SmoothGrad needs samples > 0 and noise level >= 0, got \(samples) and \(noiseLevel)") }
        var rng = SeededGenerator(seed: seed)
        let per = imageShape.count
        var mean = [Float](repeating: 0, count: n * per)
        for i in 0..<n {
            let x = images.values[(i * per)..<((i + 1) * per)]
            let sigma = noiseLevel * ((x.max() ?? 0) - (x.min() ?? 0))
            var noisy: [Float] = []
            noisy.reserveCapacity(samples * per)
            for _ in 0..<samples { for v in x { noisy.append(v + sigma * rng.normal()) } }
            let g = try inputGradients(HostTensor(shape: Shape([samples] + imageShape.dims), values: noisy),
                                       classes: Array(repeating: classes[i], count: samples), rule: rule, maxBatch: maxBatch)
            for s in 0..<samples { for p in 0..<per { mean[i * per + p] += g[s * per + p] / Float(samples) } }
        }
        return reduced(mean, reduction)
    }

    /// Integrated Gradients (Sundararajan et al. 2017): `(x - x') * mean_{k=1..steps} grad(x' + k/steps (x - x'))`
    /// (right Riemann sum), baseline `x'` zero unless given; all steps of an image run as batches of
    /// `maxBatch`. Returns the raw `[N, C, H, W]` attributions; completeness: their sum approaches
    /// `y_c(x) - y_c(x')` as `steps` grows.
    public func integratedGradients(_ images: HostTensor, classes: [Int], baseline: HostTensor? = nil,
                                    steps: Int = 32, maxBatch: Int = 32) throws -> [Float] {
        let n = try checkImages(images)
        try checkClasses(classes, count: n)
        guard steps > 0 else { throw ExplainError("Integrated Gradients needs steps > 0, got \(steps)") }
        if let baseline, baseline.shape != images.shape { throw ExplainError("the baseline \(baseline.shape) must match the images \(images.shape)") }
        let per = imageShape.count
        var out = [Float](repeating: 0, count: n * per)
        for i in 0..<n {
            let x = Array(images.values[(i * per)..<((i + 1) * per)])
            let x0 = baseline.map { Array($0.values[(i * per)..<((i + 1) * per)]) } ?? Array(repeating: 0, count: per)
            var path: [Float] = []
            path.reserveCapacity(steps * per)
            for k in 1...steps {
                let t = Float(k) / Float(steps)
                for p in 0..<per { path.append(x0[p] + t * (x[p] - x0[p])) }
            }
            let g = try inputGradients(HostTensor(shape: Shape([steps] + imageShape.dims), values: path),
                                       classes: Array(repeating: classes[i], count: steps), maxBatch: maxBatch)
            for p in 0..<per {
                var sum: Float = 0
                for k in 0..<steps { sum += g[k * per + p] }
                out[i * per + p] = (x[p] - x0[p]) * sum / Float(steps)
            }
        }
        return out
    }

    /// Occlusion sensitivity (Zeiler & Fergus 2014): a `patch x patch` square of `fill` slides with
    /// `stride`; each pixel's value is the mean drop of the class probability over the windows
    /// covering it. The occluded copies run as batches of `maxBatch` (forward only).
    public func occlusion(_ images: HostTensor, classes: [Int], patch: Int = 8, stride step: Int = 4, fill: Float = 0,
                          maxBatch: Int = 32) throws -> [AttributionMap] {
        let n = try checkImages(images)
        try checkClasses(classes, count: n)
        let (c, h, w) = (imageShape[0], imageShape[1], imageShape[2])
        guard patch > 0, step > 0, patch <= min(h, w) else { throw ExplainError("occlusion patch \(patch) and stride \(step) must be positive and fit the \(h)x\(w) image") }
        let ys = Array(stride(from: 0, through: h - patch, by: step)), xs = Array(stride(from: 0, through: w - patch, by: step))
        let windows = ys.flatMap { y in xs.map { (y, $0) } }
        let reference = try probabilities(images)
        var maps: [AttributionMap] = []
        let per = c * h * w
        for i in 0..<n {
            let x = images.values[(i * per)..<((i + 1) * per)]
            var drop = [Float](repeating: 0, count: h * w), cover = [Float](repeating: 0, count: h * w)
            var start = 0
            while start < windows.count {
                let count = min(max(maxBatch, 1), windows.count - start)
                var batch = [Float](); batch.reserveCapacity(count * per)
                for j in 0..<count {
                    var copy = Array(x)
                    let (y0, x0) = windows[start + j]
                    for ch in 0..<c { for yy in y0..<(y0 + patch) { for xx in x0..<(x0 + patch) { copy[(ch * h + yy) * w + xx] = fill } } }
                    batch += copy
                }
                let probs = try probabilities(HostTensor(shape: [count, c, h, w], values: batch))
                for j in 0..<count {
                    let d = reference[i][classes[i]] - probs[j][classes[i]]
                    let (y0, x0) = windows[start + j]
                    for yy in y0..<(y0 + patch) { for xx in x0..<(x0 + patch) { drop[yy * w + xx] += d; cover[yy * w + xx] += 1 } }
                }
                start += count
            }
            maps.append(AttributionMap(height: h, width: w, values: zip(drop, cover).map { $1 > 0 ? $0 / $1 : 0 }))
        }
        return maps
    }

    /// DeconvNet projection (Zeiler & Fergus 2014) of one unit back to pixel space: the unit's
    /// activation alone as the top signal (all other activations of the layer zeroed), taken down
    /// through max unpooling with the recorded switches, rectification (the deconvnet ReLU rule) and
    /// transposed filters. `position` nil takes the whole channel's map as the signal. Returns
    /// `[N, C, H, W]` projections.
    public func deconvProjection(_ images: HostTensor, layer: ValueID, channel: Int, position: (y: Int, x: Int)? = nil) throws -> [Float] {
        let n = try checkImages(images)
        let s = graph[layer].shape
        guard s.rank == 4, (0..<s[1]).contains(channel) else { throw ExplainError("layer '\(graph[layer].name)' \(s) has no channel \(channel)") }
        if let position, !(0..<s[2]).contains(position.y) || !(0..<s[3]).contains(position.x) {
            throw ExplainError("layer '\(graph[layer].name)' \(s) has no position (\(position.y), \(position.x))")
        }
        let exec = try executor(batch: n)
        let pass = try exec.forward([input: backend.tensor(images.values, shape: images.shape)], forBackward: true, retaining: [layer], until: layer)
        let a = try backend.read(pass[layer]!)
        let z = s[2] * s[3]
        var signal = [Float](repeating: 0, count: a.count)
        for i in 0..<n {
            let base = (i * s[1] + channel) * z
            if let position {
                signal[base + position.y * s[3] + position.x] = a[base + position.y * s[3] + position.x]
            } else {
                for p in 0..<z { signal[base + p] = a[base + p] }
            }
        }
        let seed = try backend.tensor(signal, shape: exec.graph[layer].shape)
        guard let g = try exec.backward(pass, seeds: [layer: seed], targets: [input], rule: .deconvnet)[input] else {
            throw ExplainError("layer '\(graph[layer].name)' does not depend on the input")
        }
        return try backend.read(g)
    }
}
