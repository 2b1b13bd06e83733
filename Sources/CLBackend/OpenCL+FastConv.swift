// Fast convolutions (issue 7): the implicit-GEMM kernels `conv_gemm_*` of Kernels.cl behind the
// conv primitives, one variant per (shape, direction) chosen by `ConvTuner`.

/// The convolution pass a variant computes.
public enum ConvDirection: String, Codable, Sendable, CaseIterable {
    case forward, backwardData = "backward-data", backwardFilter = "backward-filter"
}

/// One way to compute a convolution pass.
///
/// `direct`: the tiled direct kernels (`conv2d_fwd`, `conv2d_bwd_data`, `conv2d_bwd_filter`), any geometry.
/// `gemm`: `conv_gemm_<rows>x<vectors>` on the zero-padded flat grid (stride 1): `rows` output
/// channels x `vectors` float16 pixel vectors per work-item. `filter`: `conv_gemm_filter_<rows>x<taps>`
/// split into `slices` partial sums and reduced in a fixed order (stride 1). `tiled`:
/// `conv_tiled_<rows>x<columns>`, the GPU-like tile set: 64 x 64 work-group tiles staged in local
/// memory, `rows` output channels x `columns` pixels per work-item (forward of any geometry;
/// backward-data at stride 1). A tuner candidate only where local memory is on-chip. `winograd`:
/// F(2x2, 3x3), input and weight transforms, 16 GEMMs over the input channels, output transform.
public enum ConvVariant: Hashable, Sendable, CustomStringConvertible {
    case direct
    case gemm(rows: Int, vectors: Int)
    case filter(rows: Int, taps: Int, slices: Int)
    case tiled(rows: Int, columns: Int)
    /// Winograd F(2x2, 3x3): `wino_*` kernels (3x3, stride 1, dilation 1, one group; backward-data
    /// with the rotated weights where the pads allow, as for `gemm`).
    case winograd
    /// A strided convolution (equal strides, dilation 1, one group) as a stride-1 one on the input
    /// split into its stride phases (`s2d_*` kernels, space-to-depth), which the tuner's choice for
    /// that stride-1 shape computes.
    case phased

    /// Register blocks compiled into Kernels.cl (`CONV_GEMM(M, NV)`, `CONV_GEMM_FILTER(MO, TK)`, `CONV_TILED(RM, RN)`).
    public static let gemmBlocks = [(8, 3), (12, 2), (6, 4), (4, 2)]
    public static let filterBlocks = [(8, 3), (4, 3), (6, 4)]
    public static let filterSlices = [1, 4, 16]
    public static let tiledBlocks = [(4, 4), (8, 4), (8, 8)]

    public var description: String {
        switch self {
        case .direct: return "direct"
        case .gemm(let m, let nv): return "gemm\(m)x\(nv)"
        case .filter(let m, let t, let s): return "filter\(m)x\(t)s\(s)"
        case .tiled(let m, let n): return "tiled\(m)x\(n)"
        case .winograd: return "winograd2x2"
        case .phased: return "phased"
        }
    }

    /// Parses `description`; nil for anything else (a cache entry from another version is ignored).
    public init?(_ text: String) {
        if text == "direct" { self = .direct; return }
        if text == "winograd2x2" { self = .winograd; return }
        if text == "phased" { self = .phased; return }
        func ints(_ body: Substring) -> [Int]? {
            let parts = body.split(whereSeparator: { $0 == "x" || $0 == "s" }).map { Int($0) }
            return parts.contains(where: { $0 == nil }) ? nil : parts.map { $0! }
        }
        if text.hasPrefix("gemm"), let v = ints(text.dropFirst(4)), v.count == 2, Self.gemmBlocks.contains(where: { $0 == (v[0], v[1]) }) {
            self = .gemm(rows: v[0], vectors: v[1])
        } else if text.hasPrefix("tiled"), let v = ints(text.dropFirst(5)), v.count == 2, Self.tiledBlocks.contains(where: { $0 == (v[0], v[1]) }) {
            self = .tiled(rows: v[0], columns: v[1])
        } else if text.hasPrefix("filter"), let v = ints(text.dropFirst(6)), v.count == 3,
                  Self.filterBlocks.contains(where: { $0 == (v[0], v[1]) }), v[2] >= 1 {
            self = .filter(rows: v[0], taps: v[1], slices: v[2])
        } else {
            return nil
        }
    }

    /// The variants that can compute `direction` of `op`, the direct kernels first; the tiled ones
    /// only with `localMemory` (the tuner's candidates on devices whose local memory is on-chip) and
    /// whose work-group of (64 / columns) x (64 / rows) items fits `maxWorkGroupSize`.
    public static func candidates(_ direction: ConvDirection, _ op: Conv2D, localMemory: Bool = true,
                                  maxWorkGroupSize: Int = .max) -> [ConvVariant] {
        let flat = FlatGrid.applies(direction, op)
        let tiled = localMemory && (direction == .forward || (direction == .backwardData && flat))
        var list: [ConvVariant] = [.direct]
        switch direction {
        case .forward, .backwardData: if flat { list += gemmBlocks.map { .gemm(rows: $0.0, vectors: $0.1) } }
        case .backwardFilter: if flat { list += filterBlocks.flatMap { b in filterSlices.map { .filter(rows: b.0, taps: b.1, slices: $0) } } }
        }
        if tiled { list += tiledBlocks.filter { (64 / $0.1) * (64 / $0.0) <= maxWorkGroupSize }.map { .tiled(rows: $0.0, columns: $0.1) } }
        if direction != .backwardFilter && flat && winogradApplies(op) { list.append(.winograd) }
        if direction != .backwardFilter && phasedApplies(op) { list.append(.phased) }
        return list
    }

    /// Equal strides above 1 (at most 4: up to 16 phases), dilation 1, one group.
    static func phasedApplies(_ op: Conv2D) -> Bool {
        let w = op.window
        return w.strideH == w.strideW && w.strideH > 1 && w.strideH <= 4 && w.dilationH == 1 && w.dilationW == 1 && op.groups == 1
    }

    /// 3x3 kernel, stride 1, dilation 1, one group.
    static func winogradApplies(_ op: Conv2D) -> Bool {
        let w = op.window
        return w.kernelH == 3 && w.kernelW == 3 && w.strideH == 1 && w.strideW == 1 && w.dilationH == 1 && w.dilationW == 1 && op.groups == 1
    }
}

/// The zero-padded flat layout the GEMM kernels read (see the banner in Kernels.cl).
struct FlatGrid {
    /// Padded width and the plane stride of the padded buffer; `outputs` flat positions are computed.
    let width: Int, plane: Int, outputPlane: Int
    let padTop: Int, padLeft: Int

    /// A multiple of every GEMM variant's pixel tile (16 * vectors: 32, 48 or 64).
    static let tileMultiple = 192

    /// Stride 1 only; backward-data also needs each pad at most the kernel's extent (the padded
    /// output gradient then has non-negative pads).
    static func applies(_ direction: ConvDirection, _ op: Conv2D) -> Bool {
        let w = op.window
        guard w.strideH == 1, w.strideW == 1 else { return false }
        if direction == .backwardData {
            let eh = (w.kernelH - 1) * w.dilationH, ew = (w.kernelW - 1) * w.dilationW
            return w.padTop <= eh && w.padBottom <= eh && w.padLeft <= ew && w.padRight <= ew
        }
        return true
    }

    /// Grid for an input of `inputH x inputW` padded by (top, left, right), producing `outH` rows.
    init(op: Conv2D, inputW: Int, outH: Int, padTop: Int, padLeft: Int, padRight: Int) {
        let w = op.window
        width = inputW + padLeft + padRight
        let m = Self.tileMultiple
        outputPlane = (outH * width + m - 1) / m * m
        plane = outputPlane + (w.kernelH - 1) * w.dilationH * width + (w.kernelW - 1) * w.dilationW
        self.padTop = padTop
        self.padLeft = padLeft
    }
}

extension OpenCLBackend {
    /// One work-item per work-group: each already owns a whole register tile, and a fixed local size
    /// lets PoCL compile each kernel once instead of once per launch shape.
    static let gemmLocal = [1, 1, 1]

    /// Copies `[N, C, H, W]` into the padded flat grid `[N, C, grid.plane]`.
    private func padToGrid(_ x: Tensor, _ grid: FlatGrid, plane: Int? = nil) throws -> Tensor {
        let s = x.shape
        let plane = plane ?? grid.plane
        let xp = try makeTensor([s[0] * s[1] * plane], dtype: .float32)
        try launch("conv_gemm_pad", global: [plane, s[0] * s[1]], local: [64, 1],
                   arguments: [.tensor(x), .tensor(xp), .int(s[0] * s[1]), .int(s[2]), .int(s[3]), .int(grid.width),
                               .int(grid.padTop), .int(grid.padLeft), .int(plane)])
        return xp
    }

    private func packWeights(_ weight: Tensor, _ op: Conv2D, rows m: Int, flip: Bool) throws -> Tensor {
        let ws = weight.shape
        let (og, cg, k) = (ws[0] / op.groups, ws[1], ws[2] * ws[3])
        let rowCount = flip ? cg : og, red = flip ? og : cg
        let count = op.groups * ((rowCount + m - 1) / m) * red * k * m
        return try derivedWeight(weight, "pack \(m) flip \(flip) groups \(op.groups)") {
            let wp = try makeTensor([count], dtype: .float32)
            try launch("conv_gemm_pack", global: [red, op.groups * ((rowCount + m - 1) / m)], local: [min(red, 16), 1],
                       arguments: [.tensor(weight), .tensor(wp), .int(og), .int(cg), .int(k), .int(op.groups), .int(m), .int(flip ? 1 : 0)])
            return wp
        }
    }

    /// `conv_gemm_<m>x<nv>` from the padded `source` [N, red * G, H', W'] into `output` [N, rows * G, OH, OW],
    /// with `epilogue` applied to each output (see `ConvEpilogue`).
    private func gemm(_ op: Conv2D, rows m: Int, vectors nv: Int, source: Tensor, grid: FlatGrid, packed: Tensor,
                      reduction: Int, bias: Tensor?, epilogue: ConvEpilogue, output: Tensor, fallback: Tensor) throws {
        let (n, cout, oh, ow) = (output.shape[0], output.shape[1], output.shape[2], output.shape[3])
        let g = op.groups, rowsPerGroup = cout / g, w = op.window
        let tilesQ = (oh * grid.width + 16 * nv - 1) / (16 * nv)
        try launch("conv_gemm_\(m)x\(nv)", global: [tilesQ, g * ((rowsPerGroup + m - 1) / m), n], local: Self.gemmLocal,
                   arguments: [.tensor(source), .tensor(packed), .tensor(bias ?? fallback), .int(bias == nil ? 0 : 1), .int(epilogue.code),
                               .tensor(epilogue.mask ?? fallback), .tensor(output), .int(reduction), .int(reduction * g), .int(rowsPerGroup), .int(cout), .int(g),
                               .int(w.kernelH), .int(w.kernelW), .int(w.dilationH), .int(w.dilationW), .int(grid.width),
                               .int(grid.plane), .int(oh), .int(ow)])
    }

    func gemmForward(_ op: Conv2D, rows m: Int, vectors nv: Int, input: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, output: Tensor) throws {
        let w = op.window
        let grid = FlatGrid(op: op, inputW: input.shape[3], outH: output.shape[2], padTop: w.padTop, padLeft: w.padLeft, padRight: w.padRight)
        let xp = try padToGrid(input, grid)
        let wp = try packWeights(weight, op, rows: m, flip: false)
        try gemm(op, rows: m, vectors: nv, source: xp, grid: grid, packed: wp, reduction: weight.shape[1],
                 bias: bias, epilogue: relu ? .relu : .none, output: output, fallback: weight)
    }

    /// dx = (output gradient padded by the kernel extent minus the pads) correlated with the
    /// transposed, 180-degree-rotated weights: a stride-1 convolution. With `mask`, each input
    /// gradient is gated by the ReLU backward rule with the mask (the ReLU output feeding the conv).
    func gemmBackwardData(_ op: Conv2D, rows m: Int, vectors nv: Int, outputGrad: Tensor, weight: Tensor,
                          mask: ReLUMask?, inputGrad: Tensor) throws {
        let w = op.window
        let eh = (w.kernelH - 1) * w.dilationH, ew = (w.kernelW - 1) * w.dilationW
        let grid = FlatGrid(op: op, inputW: outputGrad.shape[3], outH: inputGrad.shape[2],
                            padTop: eh - w.padTop, padLeft: ew - w.padLeft, padRight: ew - w.padRight)
        let dyp = try padToGrid(outputGrad, grid)
        let wp = try packWeights(weight, op, rows: m, flip: true)
        try gemm(op, rows: m, vectors: nv, source: dyp, grid: grid, packed: wp, reduction: weight.shape[0] / op.groups,
                 bias: nil, epilogue: mask.map { .mask($0.output, $0.rule) } ?? .none, output: inputGrad, fallback: weight)
    }

    /// `conv_tiled_<m>x<n>`: `output` = conv(`input`, `weight`) with the geometry given explicitly.
    private func tiled(rows m: Int, columns n: Int, input: Tensor, weight: Tensor, bias: Tensor?, epilogue: ConvEpilogue, output: Tensor,
                       kernel: (h: Int, w: Int), stride: (h: Int, w: Int), pad: (top: Int, left: Int), dilation: (h: Int, w: Int), groups: Int) throws {
        let xs = input.shape, ys = output.shape
        let tile = 64, og = ys[1] / groups
        let pixels = ys[0] * ys[2] * ys[3]
        try launch("conv_tiled_\(m)x\(n)", global: [(pixels + tile - 1) / tile * (tile / n), groups * ((og + tile - 1) / tile) * (tile / m)],
                   local: [tile / n, tile / m],
                   arguments: [.tensor(input), .tensor(weight), .tensor(bias ?? weight), .int(bias == nil ? 0 : 1), .int(epilogue.code),
                               .tensor(epilogue.mask ?? weight), .tensor(output), .int(xs[0]), .int(xs[1]), .int(xs[2]), .int(xs[3]),
                               .int(ys[1]), .int(ys[2]), .int(ys[3]), .int(kernel.h), .int(kernel.w), .int(stride.h), .int(stride.w),
                               .int(pad.top), .int(pad.left), .int(dilation.h), .int(dilation.w), .int(groups)])
    }

    func tiledForward(_ op: Conv2D, rows m: Int, columns n: Int, input: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, output: Tensor) throws {
        let w = op.window
        try tiled(rows: m, columns: n, input: input, weight: weight, bias: bias, epilogue: relu ? .relu : .none, output: output,
                  kernel: (w.kernelH, w.kernelW), stride: (w.strideH, w.strideW), pad: (w.padTop, w.padLeft),
                  dilation: (w.dilationH, w.dilationW), groups: op.groups)
    }

    /// Stride 1: dx = the output gradient correlated with the transposed, rotated weights (packed
    /// with one row per block, i.e. as a plain `[C, O / G, KH, KW]` weight), padded by extent - pad.
    func tiledBackwardData(_ op: Conv2D, rows m: Int, columns n: Int, outputGrad: Tensor, weight: Tensor, mask: ReLUMask?, inputGrad: Tensor) throws {
        let w = op.window, ws = weight.shape
        let flipped = try packWeights(weight, op, rows: 1, flip: true).reshaped(to: [ws[1] * op.groups, ws[0] / op.groups, ws[2], ws[3]])
        try tiled(rows: m, columns: n, input: outputGrad, weight: flipped, bias: nil, epilogue: mask.map { .mask($0.output, $0.rule) } ?? .none,
                  output: inputGrad, kernel: (w.kernelH, w.kernelW), stride: (1, 1),
                  pad: ((w.kernelH - 1) * w.dilationH - w.padTop, (w.kernelW - 1) * w.dilationW - w.padLeft),
                  dilation: (w.dilationH, w.dilationW), groups: op.groups)
    }

    /// The Winograd transform `U` `[16, ceil(O / 8) * 8, C]` of `weight` [O, C, 3, 3].
    /// With `flip`, of the backward-data weight: `weight` [C, O, 3, 3] transposed and rotated.
    private func winogradWeights(_ weight: Tensor, flip: Bool = false) throws -> Tensor {
        let (o, c) = flip ? (weight.shape[1], weight.shape[0]) : (weight.shape[0], weight.shape[1]), blocks = (o + 7) / 8
        let u = try makeTensor([16 * blocks * 8 * c], dtype: .float32)
        try launch("wino_weight_transform", global: [c, blocks * 8], local: [min(c, 16), 1],
                   arguments: [.tensor(weight), .tensor(u), .int(o), .int(c), .int(flip ? 1 : 0)])
        return u
    }

    /// Winograd F(2x2, 3x3) of `input` [N, C, H, W] into `output` [N, O, OH, OW] for pads (top,
    /// left); bottom and right follow from the output size. `u` is `winogradWeights` of the
    /// [O, C, 3, 3] weight.
    private func winograd(input: Tensor, u: Tensor, bias: Tensor?, epilogue: ConvEpilogue, output: Tensor, padTop: Int, padLeft: Int) throws {
        let xs = input.shape, ys = output.shape
        let (c, o) = (xs[1], ys[1])
        let th = (ys[2] + 1) / 2, tw = (ys[3] + 1) / 2
        let tiles = ys[0] * th * tw, padded = (tiles + 47) / 48 * 48, blocks = (o + 7) / 8
        let v = try makeTensor([16 * c * padded], dtype: .float32)
        let m = try makeTensor([16 * o * padded], dtype: .float32)
        try launch("wino_input_transform", global: [padded / 16, c], local: [3, 1],
                   arguments: [.tensor(input), .tensor(v), .int(xs[0]), .int(c), .int(xs[2]), .int(xs[3]), .int(padTop), .int(padLeft),
                               .int(th), .int(tw), .int(padded)])
        try launch("wino_gemm", global: [padded / 48, blocks, 16], local: Self.gemmLocal,
                   arguments: [.tensor(u), .tensor(v), .tensor(m), .int(o), .int(c), .int(padded)])
        try launch("wino_output_transform", global: [padded / 16, o], local: [3, 1],
                   arguments: [.tensor(m), .tensor(bias ?? u), .int(bias == nil ? 0 : 1), .int(epilogue.code), .tensor(epilogue.mask ?? u),
                               .tensor(output), .int(ys[0]), .int(o), .int(ys[2]), .int(ys[3]), .int(th), .int(tw), .int(padded)])
    }

    func winogradForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, output: Tensor) throws {
        let u = try derivedWeight(weight, "winograd") { try winogradWeights(weight) }
        try winograd(input: input, u: u, bias: bias, epilogue: relu ? .relu : .none, output: output,
                     padTop: op.window.padTop, padLeft: op.window.padLeft)
    }

    /// dx = Winograd of the output gradient with the transposed, rotated weights, pads 2 - pad.
    func winogradBackwardData(_ op: Conv2D, outputGrad: Tensor, weight: Tensor, mask: ReLUMask?, inputGrad: Tensor) throws {
        let u = try derivedWeight(weight, "winograd flip") { try winogradWeights(weight, flip: true) }
        try winograd(input: outputGrad, u: u, bias: nil, epilogue: mask.map { .mask($0.output, $0.rule) } ?? .none,
                     output: inputGrad, padTop: 2 - op.window.padTop, padLeft: 2 - op.window.padLeft)
    }

    /// The stride-1 problem a strided convolution becomes (see `ConvVariant.phased`).
    private struct Phases {
        let s: Int, ph: Int, pw: Int, ka: Int, kb: Int, u: Int, v: Int
        var inner: Conv2D { Conv2D(window: Window2D(kernel: (ka, kb))) }
        var geometry: [KernelArg] { [.int(s), .int(ph), .int(pw)] }

        init(_ op: Conv2D, output: Shape) {
            let w = op.window
            s = w.strideH
            ph = min(s, w.kernelH)
            pw = min(s, w.kernelW)
            ka = (w.kernelH + s - 1) / s
            kb = (w.kernelW + s - 1) / s
            u = output[2] + ka - 1
            v = output[3] + kb - 1
        }
    }

    private func phasedWeights(_ weight: Tensor, _ p: Phases) throws -> Tensor {
        let ws = weight.shape
        return try derivedWeight(weight, "phased \(p.s)") {
            let t = try makeTensor([ws[0], p.ph * p.pw * ws[1], p.ka, p.kb], dtype: .float32)
            try launchElementwise("s2d_weights", count: t.count, [.tensor(weight), .tensor(t), .int(ws[1]), .int(ws[2]), .int(ws[3])]
                                  + p.geometry + [.int(p.ka), .int(p.kb)])
            return t
        }
    }

    private func phasedArgs(_ op: Conv2D, _ x: Shape, _ p: Phases) -> [KernelArg] {
        [.int(x[1]), .int(x[2]), .int(x[3])] + p.geometry + [.int(op.window.padTop), .int(op.window.padLeft), .int(p.u), .int(p.v)]
    }

    func phasedForward(_ op: Conv2D, input: Tensor, weight: Tensor, bias: Tensor?, relu: Bool, output: Tensor) throws {
        let p = Phases(op, output: output.shape), xs = input.shape
        let split = try makeTensor([xs[0], p.ph * p.pw * xs[1], p.u, p.v], dtype: .float32)
        try launchElementwise("s2d_input", count: split.count, [.tensor(input), .tensor(split)] + phasedArgs(op, xs, p))
        let w = try phasedWeights(weight, p)
        let outer = convTuner.lastChoice
        defer { convTuner.lastChoice = outer }
        if relu {
            try conv2dBiasReLUForward(p.inner, input: split, weight: w, bias: bias, output: output)
        } else {
            try conv2dForward(p.inner, input: split, weight: w, bias: bias, output: output)
        }
    }

    func phasedBackwardData(_ op: Conv2D, outputGrad: Tensor, weight: Tensor, mask: ReLUMask?, inputGrad: Tensor) throws {
        let p = Phases(op, output: outputGrad.shape), xs = inputGrad.shape
        let w = try phasedWeights(weight, p)
        let split = try makeTensor([xs[0], p.ph * p.pw * xs[1], p.u, p.v], dtype: .float32)
        let outer = convTuner.lastChoice
        try conv2dBackwardData(p.inner, outputGrad: outputGrad, weight: w, inputGrad: split)
        convTuner.lastChoice = outer
        try launchElementwise("s2d_input_bwd", count: inputGrad.count, [.tensor(split), .tensor(inputGrad)] + phasedArgs(op, xs, p))
        if let mask { try activationBackward(.relu, rule: mask.rule, input: mask.output, outputGrad: inputGrad, inputGrad: inputGrad) }
    }

    func gemmBackwardFilter(_ op: Conv2D, rows mo: Int, taps tk: Int, slices: Int, input: Tensor, outputGrad: Tensor, weightGrad: Tensor) throws {
        let w = op.window, xs = input.shape, ys = outputGrad.shape, ws = weightGrad.shape
        let grid = FlatGrid(op: op, inputW: xs[3], outH: ys[2], padTop: w.padTop, padLeft: w.padLeft, padRight: w.padRight)
        let xp = try padToGrid(input, grid)
        // dy on the same grid: no pads on the top and left, zeros in the columns past OW.
        let dyGrid = FlatGrid(op: op, inputW: ys[3], outH: ys[2], padTop: 0, padLeft: 0, padRight: grid.width - ys[3])
        let dyp = try padToGrid(outputGrad, dyGrid, plane: grid.outputPlane)
        let g = op.groups, og = ws[0] / g, cg = ws[1], k = ws[2] * ws[3]
        let steps = xs[0] * grid.outputPlane / 16
        let s = max(1, min(slices, steps))
        let per = (steps + s - 1) / s
        let count = weightGrad.count
        let part = s == 1 ? weightGrad : try makeTensor([s * count], dtype: .float32)
        try launch("conv_gemm_filter_\(mo)x\(tk)", global: [cg * ((k + tk - 1) / tk), g * ((og + mo - 1) / mo), s], local: Self.gemmLocal,
                   arguments: [.tensor(xp), .tensor(dyp), .tensor(part), .int(xs[0]), .int(xs[1]), .int(ys[1]), .int(g),
                               .int(w.kernelH), .int(w.kernelW), .int(w.dilationH), .int(w.dilationW), .int(grid.width),
                               .int(grid.plane), .int(grid.outputPlane), .int(per)])
        if s > 1 {
            try launch("conv_gemm_filter_reduce", global: [count], local: [64], arguments: [.tensor(part), .tensor(weightGrad), .int(count), .int(s)])
        }
    }
}

/// What the GEMM kernel does to each output after the bias (`CONV_EPI_*` in Kernels.cl).
enum ConvEpilogue {
    case none, relu
    /// Gate by the ReLU backward rule, with `mask` (the output's shape) as the ReLU's forward value.
    case mask(Tensor, ReLUBackwardRule)

    var code: Int {
        switch self {
        case .none: return 0
        case .relu: return 1
        case .mask(_, let rule): return 2 + rule.kernelCode
        }
    }

    var mask: Tensor? { if case .mask(let t, _) = self { return t } else { return nil } }
}

/// The ReLU whose backward is fused into a convolution's backward-data.
struct ReLUMask {
    var output: Tensor
    var rule: ReLUBackwardRule
}

extension ReLUBackwardRule {
    /// The `RELU_*` code of Kernels.cl.
    var kernelCode: Int {
        switch self {
        case .standard: return 0
        case .guided: return 1
        case .deconvnet: return 2
        }
    }
}
