import ArgumentParser
import CLBackend
import Explain
import Foundation
import Graph

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score explanation methods on cluttered Fashion-MNIST: pointing game, box localization, deletion / insertion AUC, model randomization, with centred-Gaussian and random baselines.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Methods, comma-separated (default: all that the model supports).") var methods: String?
    @Option(help: "Cluttered canvas size; a zoo model is built for it.") var canvas: Int = 84
    @Option(help: "Images for the localization metrics.") var count: Int = 64
    @Option(help: "Images for deletion / insertion.") var faithfulnessCount: Int = 16
    @Option(help: "Images for the randomization check.") var randomizationCount: Int = 4
    @Option(help: "Seed of the cluttered set and the baselines.") var seed: UInt64 = 0
    @Option(help: "SmoothGrad samples.") var samples: Int = 16
    @Option(help: "Integrated Gradients steps.") var steps: Int = 16
    @Option(help: "Also write the table as markdown to this file.") var markdown: String?
    @Option(help: "Also save the first cluttered test images as PNG files in this folder (e.g. to explain them).") var saveImages: String?
    @Option(help: "How many images --save-images writes.") var saveCount: Int = 8
    @Flag(help: "Replace existing --markdown and --save-images files.") var overwrite = false

    func run() throws {
        try reportingErrors {
            let isZoo = ZooModel(rawValue: modelOptions.model.lowercased()) != nil
            let graph = try ModelSource.load(modelOptions.model, batch: 1, inputSize: isZoo ? (modelOptions.inputSize ?? canvas) : nil,
                                             weights: modelOptions.weights, seed: modelOptions.initSeed)
            let explainer = try Explainer(Executor(graph, on: deviceOption.backend()))
            if let markdown, !overwrite, FileManager.default.fileExists(atPath: markdown) {
                throw GraphError("\(markdown) exists; not overwriting it (pass --overwrite)")
            }
            let test = try FashionMNIST(split: .test)
            let data = try ClutteredFashionMNIST(source: test, count: count, seed: seed,
                                                 configuration: .init(canvasSize: explainer.imageShape[1]))
            if let dir = saveImages {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let k = min(saveCount, data.count)
                let (pixels, labels) = data.batch(Array(0..<k))
                let side = explainer.imageShape[1]
                for i in 0..<k {
                    let bytes = pixels[(i * side * side)..<((i + 1) * side * side)].map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }
                    let name = "cluttered\(i)-\(test.classNames[Int(labels[i])].replacingOccurrences(of: "/", with: "-").replacingOccurrences(of: " ", with: "-")).png"
                    try writePNG(Image(width: side, height: side, channels: 1, pixels: bytes), to: (dir as NSString).appendingPathComponent(name), overwrite: overwrite)
                }
                printError("loupe: saved \(k) cluttered test images to \(dir)/")
            }
            var chosen: [ExplanationMethod]
            if let methods {
                chosen = try methods.split(separator: ",").map { name in
                    guard let m = ExplanationMethod(rawValue: String(name)) else {
                        throw GraphError("unknown method '\(name)': \(ExplanationMethod.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    return m
                }
            } else {
                chosen = ExplanationMethod.allCases
                if (try? explainer.camStructure()) == nil { chosen.removeAll { $0 == .cam } }
            }
            var settings = ExplanationMethod.Settings()
            settings.samples = samples
            settings.steps = steps
            settings.seed = seed
            settings.patch = max(4, explainer.imageShape[1] / 8)
            settings.stride = settings.patch   // non-overlapping windows keep occlusion to (S / patch)^2 passes per image
            var plan = EvaluationPlan()
            plan.localizationImages = count
            plan.faithfulnessImages = faithfulnessCount
            plan.randomizationImages = randomizationCount
            plan.seed = seed
            let start = Date()
            let rows = try explainer.evaluate(chosen, on: data, settings: settings, plan: plan) { printError("loupe: evaluating \($0)...") }
            let table = markdownTable(rows)
            print("Cluttered Fashion-MNIST, \(count) test images on a \(explainer.imageShape[1])x\(explainer.imageShape[2]) canvas (seed \(seed)), true classes, \(explainer.backend.name):\n")
            print(table)
            printError(String(format: "loupe: evaluated in %.1f s", Date().timeIntervalSince(start)))
            if let markdown { try table.write(toFile: markdown, atomically: true, encoding: .utf8) }
        }
    }
}
