import CLBackend

/// The receptive field of a value: the region of the graph's input that one of its elements
/// depends on, along height and width separately, in input pixels.
///
/// Coordinates put input pixel `i` on `[i, i + 1]`, so its centre is `i + 0.5`. Through a conv or
/// pool with kernel `k`, stride `s`, dilation `d` and leading padding `p` (Araujo et al., "Computing
/// Receptive Fields of Convolutional Neural Networks", Distill 2019):
///
///     jump_l  = jump_{l-1} * s
///     size_l  = size_{l-1} + d(k - 1) * jump_{l-1}
///     start_l = start_{l-1} + (d(k - 1) / 2 - p) * jump_{l-1}
///
/// from `jump = 1, size = 1, start = 0.5` at the input. Padding moves the fields but does not shrink
/// them: `size` counts padded positions too.
public struct ReceptiveField: Hashable, Sendable {
    public struct Axis: Hashable, Sendable, CustomStringConvertible {
        /// Extent, in input pixels, of the input region one element depends on.
        public var size: Double
        /// Distance, in input pixels, between the fields of neighbouring elements (the effective stride).
        public var jump: Double
        /// Centre of the first element's field, in input pixel coordinates.
        public var start: Double

        public init(size: Double, jump: Double, start: Double) {
            self.size = size; self.jump = jump; self.start = start
        }

        /// One input pixel.
        public static let pixel = Axis(size: 1, jump: 1, start: 0.5)

        public var description: String { "size \(size), jump \(jump), start \(start)" }

        /// Through a sliding window (conv, pool), `padBegin` the padding before the first element.
        func window(kernel k: Int, stride s: Int, dilation d: Int, padBegin p: Int) -> Axis {
            let span = Double(d * (k - 1))
            return Axis(size: size + span * jump, jump: jump * Double(s), start: start + (span / 2 - Double(p)) * jump)
        }

        /// Through a transposed window (transposed conv, max unpool). Output `o` takes input `i` with
        /// weight tap `t` when `o = i*s - p + d*t`, so the inputs reaching `o` lie in
        /// `[(o + p - d(k-1)) / s, (o + p) / s]`: an interval of `d(k-1)/s` input steps, centred at
        /// `(o + p - d(k-1)/2) / s`. Hence `jump = jump_{l-1} / s`,
        /// `size = size_{l-1} + d(k-1) * jump`, `start = start_{l-1} + (p - d(k-1)/2) * jump` — the
        /// exact inverse of `window` for jump and start. Only the integer positions in that interval
        /// contribute, so `size` is an upper bound, exact when `s` divides `d(k-1)` (a 4x4 stride-2
        /// kernel reaches 2 inputs, not the 2.5 the bound says).
        func transposedWindow(kernel k: Int, stride s: Int, dilation d: Int, padBegin p: Int) -> Axis {
            let span = Double(d * (k - 1)), j = jump / Double(s)
            return Axis(size: size + span * j, jump: j, start: start + (Double(p) - span / 2) * j)
        }

        /// Through a nearest-neighbour resize from `n` to `m` positions: output `o` reads input
        /// `floor(o n / m)`, one input, so the size is kept; output 0 reads input 0, so the start is
        /// kept; the jump is the average step `n / m` (the floor makes single steps uneven).
        func nearestResize(from n: Int, to m: Int) -> Axis {
            Axis(size: size, jump: jump * Double(n) / Double(m), start: start)
        }

        /// Through constant padding of `p` positions before the first (negative `p` crops): output `o`
        /// is input `o - p`, or the constant, which depends on no input.
        func padded(before p: Int) -> Axis {
            Axis(size: size, jump: jump, start: start - Double(p) * jump)
        }

        /// Through a bilinear resize from `n` to `m` positions: output `o` samples input position
        /// `src(o)` and interpolates its two neighbours (one input step), with `src(o) = (o + 0.5) n/m - 0.5`
        /// (half-pixel) or `o (n-1)/(m-1)` (align corners). Clamping at the borders is ignored.
        func resize(from n: Int, to m: Int, alignCorners: Bool) -> Axis {
            let scale = alignCorners ? (m > 1 ? Double(n - 1) / Double(m - 1) : 0) : Double(n) / Double(m)
            let first = alignCorners ? 0 : 0.5 * scale - 0.5
            return Axis(size: size + jump, jump: jump * scale, start: start + first * jump)
        }
    }

    public var height: Axis
    public var width: Axis

    public init(height: Axis, width: Axis) {
        self.height = height; self.width = width
    }

    /// The field of an input pixel.
    public static let pixel = ReceptiveField(height: .pixel, width: .pixel)

    func window(_ w: Window2D) -> ReceptiveField {
        ReceptiveField(height: height.window(kernel: w.kernelH, stride: w.strideH, dilation: w.dilationH, padBegin: w.padTop),
                       width: width.window(kernel: w.kernelW, stride: w.strideW, dilation: w.dilationW, padBegin: w.padLeft))
    }

    func transposedWindow(_ w: Window2D) -> ReceptiveField {
        ReceptiveField(height: height.transposedWindow(kernel: w.kernelH, stride: w.strideH, dilation: w.dilationH, padBegin: w.padTop),
                       width: width.transposedWindow(kernel: w.kernelW, stride: w.strideW, dilation: w.dilationW, padBegin: w.padLeft))
    }

    /// Over the whole `h x w` grid of positions (global pools, and linear layers over flattened maps).
    func whole(_ grid: (h: Int, w: Int)) -> ReceptiveField {
        window(Window2D(kernel: (grid.h, grid.w), stride: (grid.h, grid.w)))
    }
}

/// The receptive field of every input and computed value of `graph` (parameters have none).
///
/// - Pointwise ops (activations, BatchNorm, dropout, identity, LRN — which mixes channels, not
///   positions —, flatten, reshape, transpose) keep their input's field: each output element
///   depends on one position of the input. Padding keeps the size and moves the start.
/// - Global pools, and `linear` and `softmax` over a flattened map, cover that map's whole grid.
/// - Merges (`add`, `axpby`, `concat`) take the largest field over their operands, per axis (size,
///   with that operand's jump and start). The zoo's branches all agree on jump and start.
/// - A max pool's switches share its output's field; a max unpool is a transposed window with the
///   pool's geometry.
public func receptiveFields(of graph: Graph) -> [ValueID: ReceptiveField] {
    var fields: [ValueID: ReceptiveField] = [:]
    // The positions each value's elements stand for: a map's height and width, or, for [N, K] values,
    // the map they were flattened from (1x1 once a linear layer has mixed every position).
    var grids: [ValueID: (h: Int, w: Int)] = [:]
    func grid(of shape: Shape) -> (h: Int, w: Int) { shape.rank == 4 ? (shape[2], shape[3]) : (1, 1) }
    for v in graph.inputs {
        fields[v] = .pixel
        grids[v] = grid(of: graph[v].shape)
    }
    for node in graph.nodes {
        let operands = node.inputs.filter { fields[$0] != nil }
        guard let first = operands.first, let x = fields[first], let xGrid = grids[first] else { continue }
        var outGrid: (h: Int, w: Int)? = nil
        let field: ReceptiveField
        switch node.op {
        case .conv2d(let c): field = x.window(c.window)
        case .convTranspose2d(let c): field = x.transposedWindow(c.window)
        case .maxPool2d(let p): field = x.window(p.window)
        case .maxUnpool2d(let p, _): field = x.transposedWindow(p.window)
        case .avgPool2d(let p): field = x.window(p.window)
        case .globalAvgPool, .globalMaxPool: field = x.whole(xGrid)
        case .linear, .softmax:
            field = x.whole(xGrid)
            outGrid = (1, 1)
        case .resizeNearest(let r):
            field = ReceptiveField(height: x.height.nearestResize(from: xGrid.h, to: r.height),
                                   width: x.width.nearestResize(from: xGrid.w, to: r.width))
        case .pad(let p):
            field = ReceptiveField(height: x.height.padded(before: p.top), width: x.width.padded(before: p.left))
        case .resizeBilinear(let r):
            field = ReceptiveField(height: x.height.resize(from: xGrid.h, to: r.height, alignCorners: r.alignCorners),
                                   width: x.width.resize(from: xGrid.w, to: r.width, alignCorners: r.alignCorners))
        case .add, .axpby, .concat:
            let all = operands.compactMap { fields[$0] }
            field = ReceptiveField(height: all.map(\.height).max { $0.size < $1.size } ?? x.height,
                                   width: all.map(\.width).max { $0.size < $1.size } ?? x.width)
        case .activation, .batchNorm, .dropout, .identity, .localResponseNorm:
            field = x
        case .flatten, .reshape, .transpose:
            field = x
            outGrid = xGrid
        }
        for out in node.outputs {
            fields[out] = field
            let shape = graph[out].shape
            grids[out] = shape.rank == 4 ? grid(of: shape) : outGrid ?? xGrid
        }
    }
    return fields
}
