import ArgumentParser
import CLBackend
import Explain
import Foundation
import Graph

/// The optimization options `maximize` and `invert` share.
struct SynthesisArguments: ParsableArguments {
    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Optimization steps.") var steps: Int = 256
    @Option(help: "adam or sgd (with momentum 0.9).") var optimizer: String = "adam"
    @Option(help: "Learning rate.") var lr: Float = 0.05
    @Option(help: "Image parameterization: fourier (Lucid's, decorrelated colour, sigmoid), pixels, or pca (a linear prior fitted to --prior's images).") var param: String?
    @Option(help: "--param pca: the example images, fashion-mnist (its training split) or a folder of PNG/JPEG images.") var prior: String?
    @Option(help: "--param pca: principal components kept.") var components: Int = 32
    @Option(help: "--param pca: use at most this many example images.") var priorCount: Int = 6000
    @Option(help: "Fourier spectrum decay: amplitudes scale as 1/f^decay.") var decay: Float = 1
    @Option(help: "Jitter: random roll by up to this many pixels per step (0: none).") var jitter: Int?
    @Option(help: "Random scale range per step, LO-HI (e.g. 0.95-1.05), or none.") var scale: String?
    @Option(help: "Random rotation per step, up to this many degrees.") var rotate: Float?
    @Option(help: "Total-variation weight.") var tv: Float?
    @Option(help: "Total-variation exponent beta.") var tvBeta: Float = 2
    @Option(help: "Pixels only: L2 decay per step, x <- (1 - decay) x.") var l2: Float = 0
    @Option(help: "Pixels only: Gaussian blur every this many steps (0: never).") var blurEvery: Int = 0
    @Option(help: "Sigma of that blur.") var blurSigma: Float = 0.5
    @Option(help: "Pixels only: the noise start's gray level.") var initGray: Float = 0.5
    @Option(help: "Pixels only: the noise start's standard deviation.") var initNoise: Float = 0.1
    @Option(help: "Seed of the initial image and the random transforms.") var seed: Int = 0
    @Option(help: "Read the objective back for the progress bar every this many steps.") var reportEvery: Int = 8
    @Option(help: "Input normalization: unit ([0, 1]) or imagenet (default: imagenet for RGB models, unit otherwise).") var normalize: String?
    @Option(help: "Device memory budget, e.g. 512M or 2G (default: the device's memory).") var memBudget: String?
    @Option(help: "Output folder.") var out: String = "loupe-out"
    @Option(help: "Write a JSON summary (final objective, steps, time, steps/s) here.") var json: String?
    @Option(help: "Enlarge written PNGs by this integer factor (nearest neighbour).") var pngScale: Int = 1
    @Flag(help: "Replace output files that exist.") var overwrite = false

    func options(channels c: Int, fourierDefault: Bool) throws -> SynthesisOptions {
        var o = SynthesisOptions()
        guard steps > 0 else { throw GraphError("--steps must be positive, got \(steps)") }
        guard reportEvery > 0 else { throw GraphError("--report-every must be positive, got \(reportEvery)") }
        guard lr > 0 else { throw GraphError("--lr must be positive, got \(lr)") }
        guard pngScale >= 1, pngScale <= 32 else { throw GraphError("--png-scale must lie in 1...32, got \(pngScale)") }
        o.steps = steps
        o.reportEvery = reportEvery
        switch optimizer {
        case "adam": o.optimizer = .adam(learningRate: lr)
        case "sgd": o.optimizer = .sgd(learningRate: lr, momentum: 0.9)
        default: throw GraphError("unknown --optimizer '\(optimizer)': adam or sgd")
        }
        switch param ?? (fourierDefault ? "fourier" : "pixels") {
        case "fourier": o.parameterization = .fourier(decay: decay)
        case "pixels", "pca": o.parameterization = .pixels  // pca: fitPrior sets the prior
        case let other: throw GraphError("unknown --param '\(other)': fourier, pixels or pca")
        }
        o.jitter = jitter ?? (fourierDefault ? 2 : 0)
        guard o.jitter >= 0 else { throw GraphError("--jitter must not be negative, got \(o.jitter)") }
        let scaleRange: ClosedRange<Float>?
        switch scale ?? (fourierDefault ? "0.95-1.05" : "none") {
        case "none": scaleRange = nil
        case let text:
            let parts = text.split(separator: "-").compactMap { Float($0) }
            guard parts.count == 2, parts[0] > 0, parts[0] <= parts[1] else { throw GraphError("--scale '\(text)' is not a range LO-HI like 0.95-1.05, or none") }
            scaleRange = parts[0]...parts[1]
        }
        let degrees = rotate ?? (fourierDefault ? 5 : 0)
        o.affine = scaleRange != nil || degrees > 0 ? RandomAffine(scale: scaleRange ?? 1...1, maxDegrees: degrees) : nil
        o.totalVariationWeight = tv ?? 0
        o.totalVariationBeta = tvBeta
        o.l2Decay = l2
        o.blurEvery = blurEvery
        o.blurSigma = blurSigma
        o.seed = seed
        o.initialGray = initGray
        o.initialNoise = initNoise
        switch normalize ?? (c == 3 ? "imagenet" : "unit") {
        case "unit": (o.mean, o.std) = ([0], [1])
        case "imagenet": (o.mean, o.std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        case let other: throw GraphError("unknown --normalize '\(other)': unit or imagenet")
        }
        return o
    }

    /// For `--param pca`: fits the prior to `--prior`'s images on `backend` and sets it.
    func fitPrior(into o: inout SynthesisOptions, backend: Backend, imageShape: (c: Int, h: Int, w: Int)) throws {
        guard param == "pca" else {
            if prior != nil { throw GraphError("--prior needs --param pca") }
            return
        }
        guard let prior else { throw GraphError("--param pca needs --prior fashion-mnist or --prior DIR (a folder of example images)") }
        guard priorCount >= 2 else { throw GraphError("--prior-count must be at least 2, got \(priorCount)") }
        let (c, h, w) = imageShape
        var values: [Float] = []
        var m = 0
        if prior == "fashion-mnist" {
            guard (c, h, w) == (1, 28, 28) else { throw GraphError("--prior fashion-mnist gives 1x28x28 images; the model takes \(c)x\(h)x\(w)") }
            let data = try FashionMNIST(split: .train)
            m = min(priorCount, data.count)
            values = data.batch(Array(0..<m)).images
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: prior, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw GraphError("--prior '\(prior)' is neither fashion-mnist nor a folder of images")
            }
            let files = try FileManager.default.contentsOfDirectory(atPath: prior)
                .filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted().prefix(priorCount)
            for f in files {
                let path = (prior as NSString).appendingPathComponent(f)
                values += try readImage(path).resized(width: w, height: h).tensor(channels: c, normalization: .unit).values
            }
            m = files.count
            guard m >= 2 else { throw GraphError("--prior '\(prior)' holds \(m) PNG/JPEG images; the PCA prior needs at least 2") }
        }
        printError("loupe: fitting a \(components)-component PCA prior to \(m) images of \(prior)")
        let fitted = try PCAPrior.fit(images: HostTensor(shape: [m, c, h, w], values: values), components: components, backend: backend)
        o.parameterization = .pca(fitted)
    }

    func backend() throws -> Backend {
        let backend = try deviceOption.backend()
        if let memBudget, let cl = backend as? OpenCLBackend { cl.memoryBudgetBytes = try parseBytes(memBudget) }
        return backend
    }

    /// Image n of `images` (`[N, C, H, W]` in [0, 1]) as a PNG image, enlarged by `--png-scale`.
    func image(_ images: HostTensor, _ n: Int) throws -> Image {
        let (c, h, w) = (images.shape[1], images.shape[2], images.shape[3])
        let per = c * h * w
        let small = try Image(tensor: HostTensor(shape: [c, h, w], values: Array(images.values[(n * per)..<((n + 1) * per)])))
        return pngScale == 1 ? small : try small.resizedNearest(by: pngScale)
    }

    func writeFile(_ data: Data, to path: String) throws {
        if !overwrite && FileManager.default.fileExists(atPath: path) { throw GraphError("\(path) exists; not overwriting it (pass --overwrite)") }
        try data.write(to: URL(fileURLWithPath: path))
    }

    func writeJSON(_ summary: [String: Any]) throws {
        guard let json else { return }
        try writeFile(JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]), to: json)
    }
}

extension Image {
    /// Each pixel repeated `factor` times along both axes.
    func resizedNearest(by factor: Int) throws -> Image {
        var pixels = [UInt8](repeating: 0, count: width * factor * height * factor * channels)
        for y in 0..<(height * factor) {
            for x in 0..<(width * factor) {
                for k in 0..<channels { pixels[(y * width * factor + x) * channels + k] = self.pixels[((y / factor) * width + x / factor) * channels + k] }
            }
        }
        return try Image(width: width * factor, height: height * factor, channels: channels, pixels: pixels)
    }
}

/// The progress of a synthesis run on standard error: a bar redrawn with `\r` on a terminal, a
/// plain line per report otherwise.
final class SynthesisProgressBar {
    private let interactive = isatty(2) == 1
    private let label: String
    private let start = Date()
    init(_ label: String) { self.label = label }

    func show(_ p: SynthesisProgress, objective name: String) {
        let width = 24, filled = width * p.step / max(p.steps, 1)
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let mean = p.objectives.reduce(0, +) / Float(max(p.objectives.count, 1))
        let rate = Double(p.step) / max(Date().timeIntervalSince(start), 1e-9)
        let text = String(format: "%@ [%@] %d/%d  loss %.4g  %@ %.4g  %.2f steps/s", label, bar, p.step, p.steps, p.loss, name, mean, rate)
        if interactive { printError("\r" + text + "\u{1B}[K", newline: p.step == p.steps) } else { printError(text) }
    }
}

struct Maximize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Activation maximization: images that maximize units, channels, class logits or a layer's L2 (DeepDream).",
        discussion: """
        --units takes terms joined by '+', each LAYER:CHANNELS[*WEIGHT] (CHANNELS a number or a range A-B: one image per \
        channel, all in one batch; on a logits layer a channel is a class) or LAYER[*WEIGHT] alone for DeepDream's L2 of the \
        layer. Example: --units conv5_1:0-15, --units fc:0-9, --units 'conv4:3*0.5+fc:2'.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The objective (see below).") var units: String
    @Option(help: "Maximize the unit at this position Y,X of each channel instead of the channel's mean.") var position: String?
    @Option(help: "Start from this image (PNG or JPEG; pixel parameterization) instead of noise.") var start: String?
    @Option(help: "Comma-separated names for the channels in grid labels (e.g. the classes).") var classNames: String?
    @Option(help: "Images per objective, from different random starts (one grid row each).") var copies: Int = 1
    @Option(help: "Weight of Lucid's diversity term (D, the summed Gram-matrix cosines between the batch's images, lies in [0, N-1]; start near the objective's size).") var diversity: Float = 0
    @Option(help: "Layer of the diversity term (default: the objective's layer).") var diversityLayer: String?
    @OptionGroup var synthesis: SynthesisArguments

    func run() throws {
        try reportingErrors {
            let graph = try modelOptions.load(batch: 1)
            let backend = try synthesis.backend()
            let synthesizer = try Synthesizer(graph: graph, backend: backend)
            let (c, h, w) = synthesizer.imageShape
            var options = try synthesis.options(channels: c, fourierDefault: start == nil)
            try synthesis.fitPrior(into: &options, backend: backend, imageShape: (c, h, w))
            guard copies >= 1, copies <= 256 else { throw GraphError("--copies must lie in 1...256, got \(copies)") }
            guard diversity >= 0 else { throw GraphError("--diversity must not be negative, got \(diversity)") }
            let (single, layer, unitChannels) = try objective(synthesizer)
            if diversity > 0 && copies == 1 && single.count == 1 {
                throw GraphError("--diversity needs more than one image: pass --copies N or a channel range")
            }
            if let diversityLayer { _ = try synthesizer.layer(diversityLayer) }
            options.diversityWeight = diversity
            options.diversityLayer = diversityLayer
            let terms = single.flatMap { Array(repeating: $0, count: copies) }
            let channels = unitChannels.flatMap { Array(repeating: $0, count: copies) }
            if let start {
                let image = try readImage(start).resized(width: w, height: h).tensor(channels: c, normalization: .unit)
                options.start = try HostTensor(shape: [terms.count, c, h, w], values: Array(repeating: image.values, count: terms.count).flatMap { $0 })
            }
            let bar = SynthesisProgressBar("maximize \(synthesis.steps) steps, \(terms.count) images")
            let result = try synthesizer.maximize(terms, options: options) { bar.show($0, objective: "objective") }
            try FileManager.default.createDirectory(atPath: synthesis.out, withIntermediateDirectories: true)
            let names = classNames?.split(separator: ",").map(String.init)
            var cells: [(image: Image, label: String)] = []
            for (i, ch) in channels.enumerated() {
                let image = try synthesis.image(result.images, i)
                let copy = copies > 1 ? ".copy\(i % copies)" : ""
                let base = (synthesis.out as NSString).appendingPathComponent("\(layer).unit\(ch)\(copy)")
                try writePNG(image, to: base + ".png", overwrite: synthesis.overwrite)
                cells.append((image, names.flatMap { ch < $0.count ? $0[ch] : nil } ?? "\(layer):\(ch)"))
            }
            let gridPath = (synthesis.out as NSString).appendingPathComponent("\(layer).grid.png")
            try writePNG(grid(cells, columns: copies > 1 ? copies : min(8, cells.count)), to: gridPath, overwrite: synthesis.overwrite)
            printError("loupe: \(terms.count) images in \(synthesis.out), grid \(gridPath); "
                       + String(format: "%.1f s, %.3f steps/s", result.seconds, result.stepsPerSecond)
                       + (result.diversity.map { String(format: ", diversity %.3f", $0) } ?? ""))
            try synthesis.writeJSON([
                "command": "maximize", "model": modelOptions.model, "units": units, "device": backend.name,
                "final_objective": result.objectives.map(Double.init), "steps": result.steps, "seconds": result.seconds,
                "steps_per_second": result.stepsPerSecond, "seed": synthesis.seed, "grid": gridPath, "copies": copies,
                "diversity_weight": Double(diversity), "diversity": result.diversity.map { Double($0) as Any } ?? NSNull(),
                "history": result.history.map { ["step": $0.step, "objective": Double($0.objective)] },
            ])
        }
    }

    /// The per-image terms, the first ranged layer (for file names) and its channels.
    private func objective(_ s: Synthesizer) throws -> ([[ObjectiveTerm]], String, [Int]) {
        let pos: (Int, Int)? = try position.map { text in
            let p = text.split(separator: ",").compactMap { Int($0) }
            guard p.count == 2 else { throw GraphError("--position '\(text)' is not Y,X") }
            return (p[0], p[1])
        }
        var parts: [(layer: String, channels: [Int]?, weight: Float)] = []
        for raw in units.split(separator: "+").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let weightSplit = raw.split(separator: "*", maxSplits: 1).map(String.init)
            guard let head = weightSplit.first, !head.isEmpty else { throw GraphError("--units '\(units)' has an empty term") }
            let weight = try weightSplit.count == 2 ? Float(weightSplit[1]).orThrow("weight '\(weightSplit[1])' in --units is not a number") : 1
            let fields = head.split(separator: ":", maxSplits: 1).map(String.init)
            _ = try s.layer(fields[0])
            if fields.count == 1 { parts.append((fields[0], nil, weight)); continue }
            let range = fields[1].split(separator: "-").map { Int($0) }
            guard [1, 2].contains(range.count), range.allSatisfy({ $0 != nil }), range.first!! <= range.last!! else {
                throw GraphError("channels '\(fields[1])' in --units are not a number or a range A-B")
            }
            parts.append((fields[0], Array(range.first!!...range.last!!), weight))
        }
        let counts = Set(parts.compactMap { $0.channels?.count }.filter { $0 > 1 })
        guard counts.count <= 1 else { throw GraphError("the channel ranges in --units have different lengths \(counts.sorted())") }
        let n = counts.first ?? 1
        let terms: [[ObjectiveTerm]] = try (0..<n).map { i in
            try parts.map { part in
                guard let ch = part.channels else { return ObjectiveTerm(layer: part.layer, .layerL2, weight: part.weight) }
                let k = ch.count == 1 ? ch[0] : ch[i]
                let term = ObjectiveTerm(layer: part.layer, pos.map { .unit(channel: k, y: $0.0, x: $0.1) } ?? .channelMean(k), weight: part.weight)
                try s.check(term)
                return term
            }
        }
        let named = parts.first { $0.channels != nil } ?? parts[0]
        return (terms, named.layer, named.channels.map { $0.count == 1 ? Array(repeating: $0[0], count: n) : $0 } ?? Array(0..<n))
    }
}

extension Optional {
    func orThrow(_ message: String) throws -> Wrapped {
        guard let v = self else { throw GraphError(message) }
        return v
    }
}

struct Invert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Network inversion (Mahendran & Vedaldi 2015): reconstruct an image from a layer's features; error per layer and a grid.")

    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "The image (PNG or JPEG) whose features are inverted.") var image: String
    @Option(help: "Layers to invert (repeat, or comma-separated); one reconstruction each.") var layer: [String]
    @Option(help: "Feature perturbation (Dosovitskiy & Brox): none, binarized or dropout.") var perturb: String = "none"
    @Option(help: "Alpha-norm exponent.") var alpha: Float = 6
    @Option(help: "Alpha-norm weight (lambda_alpha).") var alphaWeight: Float = 1e-5
    @OptionGroup var synthesis: SynthesisArguments

    func run() throws {
        try reportingErrors {
            guard let perturbation = FeaturePerturbation(rawValue: perturb) else { throw GraphError("unknown --perturb '\(perturb)': none, binarized or dropout") }
            let layers = layer.flatMap { $0.split(separator: ",").map(String.init) }
            guard !layers.isEmpty else { throw GraphError("give at least one --layer") }
            let graph = try modelOptions.load(batch: 1)
            let backend = try synthesis.backend()
            let synthesizer = try Synthesizer(graph: graph, backend: backend)
            for l in layers { _ = try synthesizer.layer(l) }
            let (c, h, w) = synthesizer.imageShape
            var options = try synthesis.options(channels: c, fourierDefault: false)
            try synthesis.fitPrior(into: &options, backend: backend, imageShape: (c, h, w))
            options.alpha = alpha
            options.alphaNormWeight = alphaWeight
            if synthesis.tv == nil { options.totalVariationWeight = 1e-4 }
            let original = try readImage(image).resized(width: w, height: h)
            let x01 = try original.tensor(channels: c, normalization: .unit)
            let mean = options.mean.count == 1 ? Array(repeating: options.mean[0], count: c) : options.mean
            let std = options.std.count == 1 ? Array(repeating: options.std[0], count: c) : options.std
            let normalized = try HostTensor(shape: [1, c, h, w], values: x01.values.enumerated().map { i, v in (v - mean[i / (h * w)]) / std[i / (h * w)] })
            try FileManager.default.createDirectory(atPath: synthesis.out, withIntermediateDirectories: true)
            let stem = ((image as NSString).lastPathComponent as NSString).deletingPathExtension
            var cells: [(image: Image, label: String)] = [(try synthesis.image(HostTensor(shape: [1, c, h, w], values: x01.values), 0), "original")]
            var rows: [[String: Any]] = []
            for l in layers {
                let target = perturbation.apply(try synthesizer.features(of: normalized, layer: l), images: 1, seed: synthesis.seed)
                let bar = SynthesisProgressBar("invert \(l)")
                let result = try synthesizer.invert(layer: l, target: target, options: options) { bar.show($0, objective: "error") }
                let error = result.objectives[0]
                let picture = try synthesis.image(result.images, 0)
                let base = (synthesis.out as NSString).appendingPathComponent("\(stem).invert.\(l)\(perturbation == .none ? "" : "." + perturb)")
                try writePNG(picture, to: base + ".png", overwrite: synthesis.overwrite)
                cells.append((picture, String(format: "%@ %.3f", l, error)))
                printError(String(format: "loupe: %@ normalized error %.4f, %.1f s, %.3f steps/s", l, error, result.seconds, result.stepsPerSecond))
                rows.append(["layer": l, "normalized_error": Double(error), "steps": result.steps, "seconds": result.seconds,
                             "steps_per_second": result.stepsPerSecond])
            }
            let gridPath = (synthesis.out as NSString).appendingPathComponent("\(stem).invert.grid.png")
            try writePNG(grid(cells, columns: min(8, cells.count)), to: gridPath, overwrite: synthesis.overwrite)
            printError("loupe: grid \(gridPath)")
            try synthesis.writeJSON(["command": "invert", "model": modelOptions.model, "image": image, "perturbation": perturb,
                                     "device": backend.name, "layers": rows, "grid": gridPath, "seed": synthesis.seed,
                                     "final_objective": rows.map { $0["normalized_error"]! }, "steps": synthesis.steps])
        }
    }
}
