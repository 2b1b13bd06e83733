import CLBackend
import Foundation
import Graph

extension Explainer {
    /// The layer `A`, and the linear layer's weights `w[class, channel]`, of a model that ends
    /// `A -> global average pool -> (flatten / dropout / identity)* -> linear -> logits`.
    public func camStructure() throws -> (layer: ValueID, weights: [Float], channels: Int) {
        guard let p = graph.producer[logits], case .linear = graph.nodes[p].op else {
            throw ExplainError("CAM needs a model whose logits come from a linear layer after global average pooling; '\(graph[logits].name)' is not a linear layer's output")
        }
        let fc = graph.nodes[p]
        var v = fc.inputs[0]
        while let q = graph.producer[v] {
            switch graph.nodes[q].op {
            case .flatten, .dropout, .identity, .reshape:
                v = graph.nodes[q].inputs[0]
                continue
            case .globalAvgPool:
                let layer = graph.nodes[q].inputs[0]
                guard let w = graph.parameterValues[fc.inputs[1]], graph[fc.inputs[1]].kind == .parameter else {
                    throw ExplainError("CAM needs the linear layer's weights to be parameters of the model")
                }
                return (layer, w, graph[layer].shape[1])
            default:
                break
            }
            break
        }
        throw ExplainError("CAM needs global average pooling right before the last linear layer (the CAM architecture); this model has '\(graph.nodes[graph.producer[v] ?? p].op.name)' there — use Grad-CAM instead")
    }

    /// Class Activation Maps (Zhou et al. 2016): `M_c(i, j) = sum_k w[c, k] A_k(i, j)` at the
    /// layer before global average pooling, at that layer's resolution (no bias, no ReLU).
    public func cam(_ images: HostTensor, classes: [Int]) throws -> [AttributionMap] {
        let n = try checkImages(images)
        try checkClasses(classes, count: n)
        let (layer, w, k) = try camStructure()
        let exec = try executor(batch: n)
        let pass = try exec.forward([input: backend.tensor(images.values, shape: images.shape)], retaining: [layer])
        let a = try backend.read(pass[layer]!)
        let s = graph[layer].shape
        let z = s[2] * s[3]
        return zip(perImage(a, exec.graph[layer].shape), classes).map { act, c in
            var m = [Float](repeating: 0, count: z)
            let base = act.startIndex
            for ch in 0..<k {
                let wk = w[c * k + ch]
                for p in 0..<z { m[p] += wk * act[base + ch * z + p] }
            }
            return AttributionMap(height: s[2], width: s[3], values: m)
        }
    }

    /// How the gradient-weighted CAM variants turn a layer's activation `A` and gradient `G`
    /// (both `K x Z` for one image) into a map.
    public enum GradientCAMRule: String, Sendable, CaseIterable {
        /// Grad-CAM (Selvaraju et al. 2017): `ReLU(sum_k mean_ij(G_k) A_k)`.
        case gradCAM
        /// Grad-CAM++ (Chattopadhyay et al. 2018), exponential-score closed form:
        /// `alpha_kij = G^2 / (2 G^2 + sum_ab A_kab G^3)`, `w_k = sum_ij alpha_kij ReLU(G_kij)`, `ReLU(sum_k w_k A_k)`.
        case gradCAMPlusPlus
        /// LayerCAM (Jiang et al. 2021): `ReLU(sum_k ReLU(G_kij) A_kij)`.
        case layerCAM
    }

    /// Grad-CAM, Grad-CAM++ or LayerCAM for `classes` at `layer` (default: the last feature map),
    /// at the layer's resolution.
    public func gradientCAM(_ images: HostTensor, classes: [Int], layer: ValueID? = nil, rule: GradientCAMRule = .gradCAM) throws -> [AttributionMap] {
        let n = try checkImages(images)
        try checkClasses(classes, count: n)
        let layer = try layer ?? lastConvolutionalLayer()
        let r = try activationAndGradient(backend.tensor(images.values, shape: images.shape), classes: classes, layer: layer, wantInput: false)
        guard let aT = r.activation, let gT = r.gradient else {
            throw ExplainError("the class scores do not depend on layer '\(graph[layer].name)'")
        }
        let a = try backend.read(aT), g = try backend.read(gT)
        let s = graph[layer].shape
        let (k, z) = (s[1], s[2] * s[3])
        return zip(perImage(a, aT.shape), perImage(g, gT.shape)).map { act, grad in
            let (ab, gb) = (act.startIndex, grad.startIndex)
            var m = [Float](repeating: 0, count: z)
            for ch in 0..<k {
                switch rule {
                case .gradCAM:
                    var mean: Float = 0
                    for p in 0..<z { mean += grad[gb + ch * z + p] }
                    mean /= Float(z)
                    for p in 0..<z { m[p] += mean * act[ab + ch * z + p] }
                case .gradCAMPlusPlus:
                    var sumA: Float = 0
                    for p in 0..<z { sumA += act[ab + ch * z + p] }
                    var wk: Float = 0
                    for p in 0..<z {
                        let gv = grad[gb + ch * z + p]
                        let g2 = gv * gv, g3 = g2 * gv
                        let denom = 2 * g2 + sumA * g3
                        let alpha = denom != 0 ? g2 / denom : 0
                        wk += alpha * max(gv, 0)
                    }
                    for p in 0..<z { m[p] += wk * act[ab + ch * z + p] }
                case .layerCAM:
                    for p in 0..<z { m[p] += max(grad[gb + ch * z + p], 0) * act[ab + ch * z + p] }
                }
            }
            return AttributionMap(height: s[2], width: s[3], values: m.map { max($0, 0) })
        }
    }

    /// Eigen-CAM: the projection of each position's activation vector on the first principal
    /// component of the layer's `Z x K` activation matrix, **centred** (each channel's mean over
    /// positions removed, as pytorch-grad-cam does). Class-agnostic. The component's sign is chosen
    /// so the map correlates positively with the mean activation over channels.
    public func eigenCAM(_ images: HostTensor, layer: ValueID? = nil) throws -> [AttributionMap] {
        let n = try checkImages(images)
        let layer = try layer ?? lastConvolutionalLayer()
        let exec = try executor(batch: n)
        let pass = try exec.forward([input: backend.tensor(images.values, shape: images.shape)], retaining: [layer])
        let a = try backend.read(pass[layer]!)
        let s = graph[layer].shape
        let (k, z) = (s[1], s[2] * s[3])
        return perImage(a, exec.graph[layer].shape).map { act in
            let b = act.startIndex
            // X (Z x K), centred per channel. The projection on the first principal component is
            // X v, v the top eigenvector of the K x K matrix X^T X, found by power iteration.
            var x = [Double](repeating: 0, count: z * k)
            for ch in 0..<k {
                var mean = 0.0
                for p in 0..<z { mean += Double(act[b + ch * z + p]) }
                mean /= Double(z)
                for p in 0..<z { x[p * k + ch] = Double(act[b + ch * z + p]) - mean }
            }
            var cov = [Double](repeating: 0, count: k * k)
            for p in 0..<z {
                let row = p * k
                for i in 0..<k where x[row + i] != 0 {
                    let xi = x[row + i]
                    for j in 0..<k { cov[i * k + j] += xi * x[row + j] }
                }
            }
            var v = (0..<k).map { 1.0 + Double($0 % 7) * 1e-3 }
            for _ in 0..<200 {
                var next = [Double](repeating: 0, count: k)
                for i in 0..<k { for j in 0..<k { next[i] += cov[i * k + j] * v[j] } }
                let norm = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
                guard norm > 0 else { break }
                v = next.map { $0 / norm }
            }
            let u = (0..<z).map { p in (0..<k).reduce(0.0) { $0 + x[p * k + $1] * v[$1] } }
            var meanMap = [Double](repeating: 0, count: z)
            for ch in 0..<k { for p in 0..<z { meanMap[p] += Double(act[b + ch * z + p]) } }
            let sign: Double = zip(u, meanMap).reduce(0) { $0 + $1.0 * $1.1 } < 0 ? -1 : 1
            return AttributionMap(height: s[2], width: s[3], values: u.map { Float(sign * $0) })
        }
    }

    /// Score-CAM (Wang et al. 2020): each channel's activation, upsampled and min-max normalized
    /// to [0, 1], masks the input; `s_k = p_c(x * M_k) - p_c(0)`, and the map is
    /// `ReLU(sum_k softmax(s)_k A_k)`. Forward passes only, `maxBatch` masked images at a time.
    public func scoreCAM(_ images: HostTensor, classes: [Int], layer: ValueID? = nil, maxBatch: Int = 32) throws -> [AttributionMap] {
        let n = try checkImages(images)
        try checkClasses(classes, count: n)
        let layer = try layer ?? lastConvolutionalLayer()
        let exec = try executor(batch: n)
        let pass = try exec.forward([input: backend.tensor(images.values, shape: images.shape)], retaining: [layer])
        let aT = pass[layer]!
        let a = try backend.read(aT)
        let s = graph[layer].shape
        let (k, z) = (s[1], s[2] * s[3])
        let (c, h, w) = (imageShape[0], imageShape[1], imageShape[2])
        let masks = try backend.read(backend.resizeBilinear(aT.reshaped(to: [n * k, 1, s[2], s[3]]), BilinearResize(height: h, width: w)))
        let baseline = try probabilities(HostTensor(shape: images.shape, values: Array(repeating: 0, count: images.values.count)))
        var maps: [AttributionMap] = []
        for i in 0..<n {
            let image = images.values[(i * c * h * w)..<((i + 1) * c * h * w)]
            var scores = [Float](repeating: 0, count: k)
            var start = 0
            while start < k {
                let count = min(max(maxBatch, 1), k - start)
                var batch = [Float](repeating: 0, count: count * c * h * w)
                for j in 0..<count {
                    let m = masks[((i * k + start + j) * h * w)..<((i * k + start + j + 1) * h * w)]
                    let lo = m.min() ?? 0, hi = m.max() ?? 0
                    let scale: Float = hi > lo ? 1 / (hi - lo) : 0
                    for ch in 0..<c { for p in 0..<(h * w) {
                        batch[(j * c + ch) * h * w + p] = image[image.startIndex + ch * h * w + p] * (m[m.startIndex + p] - lo) * scale
                    } }
                }
                let probs = try probabilities(HostTensor(shape: [count, c, h, w], values: batch))
                for j in 0..<count { scores[start + j] = probs[j][classes[i]] - baseline[i][classes[i]] }
                start += count
            }
            let top = scores.max() ?? 0
            let e = scores.map { Foundation.exp($0 - top) }
            let total = e.reduce(0, +)
            var m = [Float](repeating: 0, count: z)
            for ch in 0..<k {
                let wk = e[ch] / total
                for p in 0..<z { m[p] += wk * a[(i * k + ch) * z + p] }
            }
            maps.append(AttributionMap(height: s[2], width: s[3], values: m.map { max($0, 0) }))
        }
        return maps
    }
}
