import ArgumentParser
import CLBackend
import Explain
import Foundation
import Graph

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one self-contained HTML page: each input, its predictions, and every method's map and overlay side by side.")
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var deviceOption: DeviceOption
    @Argument(help: "PNG or JPEG images, or folders of them.") var images: [String] = []
    @Option(help: "Methods, comma-separated (default: all that the model supports).") var methods: String?
    @Option(help: "Explain this class (default: the top prediction).") var `class`: Int?
    @Option(help: "Class names, comma-separated, for the predictions column.") var classNames: String?
    @Option(help: "Input normalization: unit or imagenet (default: imagenet for RGB models, unit otherwise).") var normalize: String?
    @Option(help: "The HTML file to write.") var out: String = "loupe-report.html"
    @Flag(help: "Replace the report if it exists.") var overwrite = false

    func run() throws {
        try reportingErrors {
            if !overwrite && FileManager.default.fileExists(atPath: out) { throw GraphError("\(out) exists; not overwriting it (pass --overwrite)") }
            let files = try imageFiles(images)
            let graph = try modelOptions.load(batch: 1)
            let explainer = try Explainer(Executor(graph, on: deviceOption.backend()))
            let (c, h, w) = (explainer.imageShape[0], explainer.imageShape[1], explainer.imageShape[2])
            let normalization: Normalization = (normalize ?? (c == 3 ? "imagenet" : "unit")) == "imagenet" ? .imagenet : .unit
            var chosen = ExplanationMethod.allCases
            if let methods { chosen = try methods.split(separator: ",").map { n in
                guard let m = ExplanationMethod(rawValue: String(n)) else { throw GraphError("unknown method '\(n)'") }
                return m
            } } else if (try? explainer.camStructure()) == nil { chosen.removeAll { $0 == .cam } }
            let names = classNames.map { $0.split(separator: ",").map(String.init) } ?? (0..<explainer.classes).map { "class \($0)" }
            guard names.count == explainer.classes else { throw GraphError("\(names.count) class names for \(explainer.classes) classes") }
            var settings = ExplanationMethod.Settings()
            settings.samples = 16
            settings.steps = 16
            var entries: [ReportEntry] = []
            let progress = Progress(total: files.count, label: "report")
            for (k, file) in files.enumerated() {
                let shown = try readImage(file).resized(width: w, height: h)
                let x = try shown.tensor(channels: c, normalization: normalization)
                let batch = try HostTensor(shape: [1, c, h, w], values: x.values)
                let p = try explainer.probabilities(batch)[0]
                let top = p.indices.sorted { p[$0] > p[$1] }
                let target = self.class ?? top[0]
                var maps: [(String, Image, Image)] = []
                for method in chosen {
                    let m = try method.run(explainer, images: batch, classes: [target], settings: settings)[0]
                    maps.append((method.rawValue, try heatmap(m.values, width: m.width, height: m.height),
                                 try overlay(m.values, width: m.width, height: m.height, on: shown)))
                }
                entries.append(ReportEntry(title: "\((file as NSString).lastPathComponent) — explaining \(names[target])", input: shown,
                                           predictions: top.prefix(3).map { (names[$0], p[$0]) }, maps: maps))
                progress.update(k + 1)
            }
            let html = try htmlReport(title: "Loupe report: \(modelOptions.model)",
                                      subtitle: "\(files.count) images, \(chosen.count) methods, \(explainer.backend.name)", entries: entries)
            try html.write(toFile: out, atomically: true, encoding: .utf8)
            print("wrote \(out)")
        }
    }
}
