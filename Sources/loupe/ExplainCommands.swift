import ArgumentParser
import CLBackend
import Explain
import Foundation
import Graph

/// The options every explanation command shares.
struct ExplainOptions: ParsableArguments {
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var deviceOption: DeviceOption
    @Argument(help: "PNG or JPEG images, or folders of them.") var images: [String] = []
    @Option(help: "Explain this class for every image (default: the top predicted classes).") var `class`: Int?
    @Option(help: "Explain each image's K most probable classes.") var top: Int = 1
    @Option(help: "The layer for the CAM family (see `loupe info`).") var layer: String?
    @Option(help: "Output folder.") var out: String = "loupe-out"
    @Option(help: "Device memory to plan batches for, e.g. 512M or 2G (default: the device's memory).") var memBudget: String?
    @Option(help: "Seed of the stochastic methods (SmoothGrad).") var seed: UInt64 = 0
    @Option(help: "Input normalization: unit ([0, 1]) or imagenet (default: imagenet for RGB models, unit otherwise).") var normalize: String?
    @Option(help: "Colormap: jet, viridis, inferno or gray.") var colormap: String = "jet"
    @Option(help: "Heatmap opacity over the image, 0...1.") var alpha: Float = 0.5
    @Option(help: "SmoothGrad samples.") var samples: Int = 50
    @Option(help: "Integrated Gradients steps.") var steps: Int = 32
    @Option(help: "Occlusion patch size (pixels).") var patch: Int = 8
    @Option(help: "Occlusion stride (pixels).") var stride: Int = 4
    @Flag(help: "Replace output files that exist.") var overwrite = false
}

/// Parses `512M`, `2G`, `1048576`.
func parseBytes(_ text: String) throws -> Int {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased()
    let units: [(String, Int)] = [("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)]
    for (suffix, scale) in units where t.hasSuffix(suffix) || t.hasSuffix(suffix + "B") || t.hasSuffix(suffix + "IB") {
        let number = t.prefix { $0.isNumber || $0 == "." }
        if let v = Double(number), v > 0 { return Int(v * Double(scale)) }
    }
    if let v = Int(t), v > 0 { return v }
    throw GraphError("--mem-budget '\(text)' is not a size like 512M or 2G")
}

/// Every image file named, folders expanded (one level, sorted).
func imageFiles(_ paths: [String]) throws -> [String] {
    var files: [String] = []
    for p in paths {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { throw GraphError("\(p): no such file or folder") }
        if isDir.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: p).sorted()
            files += names.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.map { (p as NSString).appendingPathComponent($0) }
        } else {
            files.append(p)
        }
    }
    guard !files.isEmpty else { throw GraphError("no PNG or JPEG images given") }
    return files
}

/// A one-line progress bar on standard error (a line per update when it is not a terminal).
struct Progress {
    let total: Int
    let label: String
    let start = Date()
    func update(_ done: Int) {
        let width = 30, filled = total > 0 ? width * done / total : width
        let rate = Double(done) / max(Date().timeIntervalSince(start), 1e-9)
        let line = "\(label) [" + String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled) + "] \(done)/\(total)"
            + String(format: " %.2f images/s", rate)
        if isatty(2) != 0 { printError("\u{1B}[2K\r" + line, newline: done == total) } else { printError(line) }
    }
}


/// Runs one method over images in batches and writes, per image and class, an overlay PNG, the
/// raw map as `.npy` and a JSON sidecar with everything needed to reproduce it.
func runExplanation(_ method: ExplanationMethod, _ o: ExplainOptions) throws {
    try reportingErrors {
        guard let colormap = Colormap(rawValue: o.colormap) else { throw GraphError("unknown --colormap '\(o.colormap)': jet, viridis, inferno or gray") }
        guard o.top >= 1 else { throw GraphError("--top must be at least 1") }
        let files = try imageFiles(o.images)
        let graph = try o.modelOptions.load(batch: 1)
        let backend = try o.deviceOption.backend()
        if let budget = o.memBudget, let cl = backend as? OpenCLBackend { cl.memoryBudgetBytes = try parseBytes(budget) }
        let explainer = try Explainer(Executor(graph, on: backend))
        let (c, h, w) = (explainer.imageShape[0], explainer.imageShape[1], explainer.imageShape[2])
        let normalization: Normalization
        switch o.normalize ?? (c == 3 ? "imagenet" : "unit") {
        case "unit": normalization = .unit
        case "imagenet": normalization = .imagenet
        case let other: throw GraphError("unknown --normalize '\(other)': unit or imagenet")
        }
        // Batches sized from the memory budget: a forward+backward keeps about every activation.
        let perImage = graph.values.filter { $0.kind == .computed && $0.dtype == .float32 }.reduce(0) { $0 + $1.shape.count } * 4 * 2
        let budget = (backend as? OpenCLBackend)?.memoryBudgetBytes ?? (4 << 30)
        let weights = graph.parameterCount * 4
        let maxBatch = max(1, min(64, (budget - weights) / max(perImage, 1) / 2))
        var settings = ExplanationMethod.Settings()
        settings.layer = o.layer
        settings.samples = o.samples
        settings.steps = o.steps
        settings.patch = o.patch
        settings.stride = o.stride
        settings.seed = o.seed
        settings.maxBatch = maxBatch
        try FileManager.default.createDirectory(atPath: o.out, withIntermediateDirectories: true)
        let modelHash = FileManager.default.contents(atPath: o.modelOptions.model).map { String(fnv1a64([UInt8]($0)), radix: 16) }
            ?? "zoo:\(o.modelOptions.model):init-seed\(o.modelOptions.initSeed)"
        let progress = Progress(total: files.count, label: method.rawValue)
        var done = 0
        for chunk in stride(from: 0, to: files.count, by: maxBatch).map({ Array(files[$0..<min($0 + maxBatch, files.count)]) }) {
            let originals = try chunk.map { try readImage($0) }
            let inputs = try originals.map { try $0.resized(width: w, height: h).tensor(channels: c, normalization: normalization) }
            let batch = try HostTensor(shape: [inputs.count, c, h, w], values: inputs.flatMap(\.values))
            let probs = try explainer.probabilities(batch)
            let targets: [[Int]] = probs.map { p in
                if let k = o.class { return [k] }
                return Array(p.indices.sorted { p[$0] > p[$1] }.prefix(o.top))
            }
            for rank in 0..<targets[0].count {
                let classes = targets.map { $0[rank] }
                let maps = try method.run(explainer, images: batch, classes: classes, settings: settings)
                for (i, file) in chunk.enumerated() {
                    let stem = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
                    let base = (o.out as NSString).appendingPathComponent("\(stem).\(method.rawValue).class\(classes[i])")
                    let shown = try originals[i].resized(width: w, height: h)
                    let sidecar: [String: Any] = [
                        "image": file, "model": o.modelOptions.model, "model_hash": modelHash, "weights": o.modelOptions.weights ?? NSNull(),
                        "method": method.rawValue, "citation": method.citation, "class": classes[i], "probability": Double(probs[i][classes[i]]),
                        "layer": o.layer ?? NSNull(), "device": backend.name, "normalization": o.normalize ?? (c == 3 ? "imagenet" : "unit"),
                        "input_size": [c, h, w], "map_size": [maps[i].height, maps[i].width], "colormap": o.colormap, "alpha": Double(o.alpha),
                        "samples": o.samples, "steps": o.steps, "patch": o.patch, "stride": o.stride, "seed": o.seed, "max_batch": maxBatch,
                    ]
                    let json = try JSONSerialization.data(withJSONObject: sidecar, options: [.prettyPrinted, .sortedKeys])
                    if !o.overwrite && FileManager.default.fileExists(atPath: base + ".json") { throw GraphError("\(base).json exists; not overwriting it (pass --overwrite)") }
                    // The PNG carries the sidecar too (iTXt "loupe"), so a copied picture still says how it was made.
                    let compact = try JSONSerialization.data(withJSONObject: sidecar, options: [.sortedKeys])
                    try writePNG(overlay(maps[i].values, width: maps[i].width, height: maps[i].height, on: shown, colormap: colormap, alpha: o.alpha),
                                 to: base + ".png", overwrite: o.overwrite,
                                 text: [("Software", "Loupe"), ("Description", "\(method.rawValue) map of class \(classes[i]) for \(file)"),
                                        ("loupe", String(decoding: compact, as: UTF8.self))])
                    try NPY.write(maps[i].values, shape: [maps[i].height, maps[i].width], to: base + ".npy", overwrite: o.overwrite)
                    try json.write(to: URL(fileURLWithPath: base + ".json"))
                }
            }
            done += chunk.count
            progress.update(done)
        }
        print("wrote \(files.count * targets(o)) maps to \(o.out)/ (PNG overlay with the parameters in its text, .npy map, .json sidecar each)")
    }
}

private func targets(_ o: ExplainOptions) -> Int { o.class != nil ? 1 : o.top }

/// One subcommand per method, all sharing `ExplainOptions`.
protocol MethodCommand: ParsableCommand {
    static var method: ExplanationMethod { get }
    var options: ExplainOptions { get }
}

extension MethodCommand {
    func run() throws { try runExplanation(Self.method, options) }
}

struct CAMCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "cam", abstract: "Class Activation Maps (Zhou et al. 2016), for GAP models.")
    static let method = ExplanationMethod.cam
    @OptionGroup var options: ExplainOptions
}
struct GradCAMCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "gradcam", abstract: "Grad-CAM (Selvaraju et al. 2017) at any conv layer.")
    static let method = ExplanationMethod.gradcam
    @OptionGroup var options: ExplainOptions
}
struct GradCAMPlusPlusCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "gradcampp", abstract: "Grad-CAM++ (Chattopadhyay et al. 2018).")
    static let method = ExplanationMethod.gradcampp
    @OptionGroup var options: ExplainOptions
}
struct LayerCAMCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "layercam", abstract: "LayerCAM (Jiang et al. 2021).")
    static let method = ExplanationMethod.layercam
    @OptionGroup var options: ExplainOptions
}
struct EigenCAMCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "eigencam", abstract: "Eigen-CAM: the first principal component of a layer's activations.")
    static let method = ExplanationMethod.eigencam
    @OptionGroup var options: ExplainOptions
}
struct ScoreCAMCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "scorecam", abstract: "Score-CAM (Wang et al. 2020), forward passes only.")
    static let method = ExplanationMethod.scorecam
    @OptionGroup var options: ExplainOptions
}
struct SaliencyCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "saliency", abstract: "Vanilla gradient saliency (Simonyan et al. 2013).")
    static let method = ExplanationMethod.saliency
    @OptionGroup var options: ExplainOptions
}
struct GuidedCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "guided", abstract: "Guided backpropagation (Springenberg et al. 2015).")
    static let method = ExplanationMethod.guided
    @OptionGroup var options: ExplainOptions
}
struct DeconvCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "deconv", abstract: "DeconvNet saliency (Zeiler & Fergus 2014).")
    static let method = ExplanationMethod.deconvnet
    @OptionGroup var options: ExplainOptions
}
struct GuidedGradCAMCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "guidedgradcam", abstract: "Guided Grad-CAM: guided backpropagation times Grad-CAM.")
    static let method = ExplanationMethod.guidedgradcam
    @OptionGroup var options: ExplainOptions
}
struct SmoothGradCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "smoothgrad", abstract: "SmoothGrad (Smilkov et al. 2017), noise samples as batches.")
    static let method = ExplanationMethod.smoothgrad
    @OptionGroup var options: ExplainOptions
}
struct IntegratedGradientsCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "ig", abstract: "Integrated Gradients (Sundararajan et al. 2017), path steps as batches.")
    static let method = ExplanationMethod.integratedgradients
    @OptionGroup var options: ExplainOptions
}
struct OcclusionCommand: MethodCommand {
    static let configuration = CommandConfiguration(commandName: "occlusion", abstract: "Occlusion sensitivity (Zeiler & Fergus 2014), windows as batches.")
    static let method = ExplanationMethod.occlusion
    @OptionGroup var options: ExplainOptions
}

let explanationCommands: [ParsableCommand.Type] = [
    CAMCommand.self, GradCAMCommand.self, GradCAMPlusPlusCommand.self, LayerCAMCommand.self, EigenCAMCommand.self, ScoreCAMCommand.self,
    SaliencyCommand.self, GuidedCommand.self, DeconvCommand.self, GuidedGradCAMCommand.self, SmoothGradCommand.self,
    IntegratedGradientsCommand.self, OcclusionCommand.self,
]
