import ArgumentParser
import CLBackend
import Explain
import Foundation
import Graph

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a classifier with cross-entropy on the device, saving an ONNX checkpoint after each epoch.",
        discussion: """
            Data: --data fashion-mnist (the Debian package dataset-fashion-mnist; its test split is the test set); \
            --data cluttered-fashion-mnist (the same items placed at random position and scale on a --canvas square among \
            clutter, --train-count canvases from the training split and --test-count from the test split, as loupe evaluate \
            draws them); --data concepts (concept scenes of make-concepts without garments, --canvas pixels square, labelled \
            with the shape and its colour, 24 classes, --train-count and --test-count of them); --data DIR \
            reads DIR/train_x.npy, train_y.npy and, when present, test_x.npy, test_y.npy; or give the files with --images, \
            --labels, --test-images, --test-labels. Images are float32 [N, C, H, W] (or [N, H, W]); labels are float32 class \
            ids. Zoo models are built for the data's image size and class count.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "fashion-mnist, cluttered-fashion-mnist, concepts, or a directory of train_x.npy, train_y.npy[, test_x.npy, test_y.npy].") var data: String?
    @Option(help: "Canvas side (with --data cluttered-fashion-mnist: default 84; concepts: 64).") var canvas: Int?
    @Option(help: "Generated training images (with --data cluttered-fashion-mnist or concepts).") var trainCount: Int = 60000
    @Option(help: "Generated test images (with --data cluttered-fashion-mnist or concepts).") var testCount: Int = 10000
    @Option(help: "Training images (.npy).") var images: String?
    @Option(help: "Training labels (.npy, float32 class ids).") var labels: String?
    @Option(help: "Test images (.npy), evaluated after each epoch.") var testImages: String?
    @Option(help: "Test labels (.npy).") var testLabels: String?
    @Option(help: "Epochs.") var epochs: Int = 10
    @Option(help: "Mini-batch size.") var batch: Int = 64
    @Option(help: "Base learning rate.") var lr: Float = 0.01
    @Option(help: "sgd (with momentum) or adam.") var optimizer: String = "sgd"
    @Option(help: "SGD momentum.") var momentum: Float = 0.9
    @Option(help: "Weight decay (L2, added to the gradient).") var weightDecay: Float = 0
    @Option(help: "constant, step:EVERY:GAMMA (times GAMMA every EVERY epochs) or cosine (to 0 over training, per step).")
    var schedule: String = "constant"
    @Option(help: "Seed of the shuffling (a fresh order each epoch); --init-seed seeds zoo weights.") var seed: UInt64 = 0
    @Option(help: "Report progress every this many steps.") var logEvery: Int = 20
    @Option(help: "Where to write the trained model (.onnx), replaced after each epoch.") var out: String
    @Flag(help: "Replace --out if it exists.") var overwrite = false

    func run() throws {
        try reportingErrors {
            if !overwrite && FileManager.default.fileExists(atPath: out) { throw GraphError("\(out) exists; not overwriting it (pass --overwrite)") }
            let (train, test) = try loadData()
            let graph = try loadModel(for: train)
            let trainer = try Trainer(Executor(graph, on: deviceOption.backend()), configuration: try trainingConfiguration())
            printError("loupe: training \(modelOptions.model) (\(graph.trainableParameterCount) parameters) on \(train.count) images, "
                       + "\(trainer.backend.name)")
            let bar = ProgressLine()
            try trainer.train(train, progress: bar.show) { epoch in
                let started = Date()
                try trainer.copyParametersToGraph()
                try writeAtomically(graph, to: out)
                var line = String(format: "epoch %d/%d: loss %.4f, accuracy %.2f%%, %.0f images/s", epoch.epoch, epoch.epochs, epoch.loss,
                                  100 * epoch.accuracy, epoch.imagesPerSecond)
                if let test {
                    let result = try trainer.evaluate(test)
                    line += String(format: "; test loss %.4f, accuracy %.2f%%", result.loss, 100 * result.accuracy)
                }
                bar.finish(line + String(format: "; checkpoint %@ (%.1f s)", out, Date().timeIntervalSince(started)))
            }
            if let test {
                let result = try trainer.evaluate(test)
                print(String(format: "test accuracy %.2f%% (%d images), mean loss %.4f", 100 * result.accuracy, result.count, result.loss))
            }
            print("wrote \(out)")
        }
    }

    private func trainingConfiguration() throws -> TrainingConfiguration {
        let opt: Optimizer
        switch optimizer.lowercased() {
        case "sgd": opt = .sgd(SGDMomentum(learningRate: lr, momentum: momentum, weightDecay: weightDecay))
        case "adam": opt = .adam(Adam(learningRate: lr, weightDecay: weightDecay))
        default: throw GraphError("unknown --optimizer '\(optimizer)': sgd or adam")
        }
        return TrainingConfiguration(epochs: epochs, batchSize: batch, optimizer: opt, schedule: try parseSchedule(schedule), seed: seed,
                                     logEvery: logEvery)
    }

    private func loadData() throws -> (train: any LabeledImageDataset, test: (any LabeledImageDataset)?) {
        var paths = (images: images, labels: labels, testImages: testImages, testLabels: testLabels)
        if let data {
            guard images == nil, labels == nil, testImages == nil, testLabels == nil else {
                throw GraphError("give either --data or --images/--labels files, not both")
            }
            if data.lowercased() == "fashion-mnist" { return (try FashionMNIST(split: .train), try FashionMNIST(split: .test)) }
            let generated = ["cluttered-fashion-mnist", "concepts"].contains(data.lowercased())
            if generated {
                guard trainCount > 0, testCount >= 0 else { throw GraphError("--train-count must be positive and --test-count not negative") }
            }
            if data.lowercased() == "concepts" {
                // Seeds apart from make-concepts' default (0), so a dissection dataset is not a training draw.
                let train = try ConceptClassification(count: trainCount, size: canvas ?? 64, seed: 2_000_001)
                return (train, testCount == 0 ? nil : try ConceptClassification(count: testCount, size: canvas ?? 64, seed: 2_000_002))
            }
            if data.lowercased() == "cluttered-fashion-mnist" {
                let configuration = ClutteredFashionMNIST.Configuration(canvasSize: canvas ?? 84)
                // Seeds apart from loupe evaluate's default (0, on the test split) so the two never share a layout.
                let train = try ClutteredFashionMNIST(source: try FashionMNIST(split: .train), count: trainCount, seed: 1_000_001, configuration: configuration)
                let test = testCount == 0 ? nil
                    : try ClutteredFashionMNIST(source: try FashionMNIST(split: .test), count: testCount, seed: 1_000_002, configuration: configuration)
                return (train, test)
            }
            let dir = URL(fileURLWithPath: data)
            paths = (dir.appendingPathComponent("train_x.npy").path, dir.appendingPathComponent("train_y.npy").path, nil, nil)
            let (x, y) = (dir.appendingPathComponent("test_x.npy").path, dir.appendingPathComponent("test_y.npy").path)
            if FileManager.default.fileExists(atPath: x) && FileManager.default.fileExists(atPath: y) { (paths.testImages, paths.testLabels) = (x, y) }
        }
        guard let trainImages = paths.images, let trainLabels = paths.labels else {
            throw GraphError("give the training data: --data fashion-mnist, --data DIR, or --images x.npy with --labels y.npy")
        }
        guard (paths.testImages == nil) == (paths.testLabels == nil) else { throw GraphError("give --test-images and --test-labels together") }
        let trainSet = try readDataset(images: trainImages, labels: trainLabels)
        let testSet = try paths.testImages.map { try readDataset(images: $0, labels: paths.testLabels!, classes: trainSet.classes) }
        if let testSet, testSet.imageShape != trainSet.imageShape {
            throw GraphError("test images are \(testSet.imageShape), training images \(trainSet.imageShape)")
        }
        return (trainSet, testSet)
    }

    /// Zoo models are built for the data's image size and class count; files keep their own shapes.
    private func loadModel(for data: any LabeledImageDataset) throws -> Graph {
        if let zoo = ZooModel(rawValue: modelOptions.model.lowercased()), !FileManager.default.fileExists(atPath: modelOptions.model) {
            guard data.imageShape[1] == data.imageShape[2] else { throw GraphError("zoo models take square images; the data's are \(data.imageShape)") }
            let graph = try zoo.build(batch: 1, inputSize: data.imageShape[1], classes: data.classes, seed: modelOptions.initSeed,
                                      randomize: modelOptions.weights == nil)
            if let weights = modelOptions.weights {
                try graph.loadWeights(weights.lowercased().hasSuffix(".onnx") ? ONNX.initializers(contentsOf: weights) : Safetensors.read(weights).tensors)
            }
            return graph
        }
        return try modelOptions.load(batch: 1)
    }
}

/// `constant`, `step:EVERY:GAMMA` or `cosine`.
func parseSchedule(_ text: String) throws -> LearningRateSchedule {
    let parts = text.lowercased().split(separator: ":").map(String.init)
    switch parts.first {
    case "constant" where parts.count == 1: return .constant
    case "cosine" where parts.count == 1: return .cosine
    case "step" where parts.count == 3:
        guard let every = Int(parts[1]), every > 0, let gamma = Float(parts[2]), gamma > 0 else {
            throw GraphError("--schedule step:EVERY:GAMMA needs a positive epoch count and factor, got '\(text)'")
        }
        return .step(every: every, gamma: gamma)
    default:
        throw GraphError("unknown --schedule '\(text)': constant, step:EVERY:GAMMA or cosine")
    }
}

/// Images `[N, C, H, W]` (or `[N, H, W]`, one channel) and float class ids `[N]` from `.npy` files.
func readDataset(images: String, labels: String, classes: Int? = nil) throws -> InMemoryDataset {
    let (shape, values) = try NPY.read(images)
    guard shape.count == 3 || shape.count == 4, shape.allSatisfy({ $0 > 0 }) else {
        throw GraphError("\(images) has shape \(Shape(shape)); images must be [N, C, H, W] or [N, H, W]")
    }
    let (labelShape, labelValues) = try NPY.read(labels)
    guard labelShape == [shape[0]] else { throw GraphError("\(labels) has shape \(Shape(labelShape)); \(images) needs [\(shape[0])] labels") }
    let ids = try labelValues.map { v -> Int32 in
        guard v >= 0, v < 65536, v == v.rounded() else { throw GraphError("\(labels): label \(v) is not a class id (a non-negative integer)") }
        return Int32(v)
    }
    let imageShape = Shape(shape.count == 4 ? Array(shape.dropFirst()) : [1, shape[1], shape[2]])
    return try InMemoryDataset(images: values, labels: ids, imageShape: imageShape, classes: classes ?? Int(ids.max()!) + 1)
}

/// Writes the ONNX model next to `path` and renames it over `path`, so a reader never sees half a file.
func writeAtomically(_ graph: Graph, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp").path
    try ONNX.write(graph, to: temp, overwrite: true)
    guard rename(temp, path) == 0 else {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(atPath: temp)
        throw GraphError("cannot move the checkpoint to \(path): \(reason)")
    }
}

/// Training progress on standard error: a bar redrawn in place (carriage return) on a terminal;
/// elsewhere (a log file, a pipe, a batch job) a plain line at most once a minute, and the line per epoch.
final class ProgressLine {
    private let interactive = isatty(2) == 1
    private var drawn = false
    private var lastLogged = Date()
    /// Seconds between plain lines when standard error is not a terminal.
    static let logInterval: TimeInterval = 60

    func show(_ p: TrainingProgress) {
        let stats = String(format: "%d/%d  loss %.4f  acc %.2f%%  %.0f img/s  lr %.3g", p.step, p.stepsPerEpoch, p.loss, 100 * p.accuracy,
                           p.imagesPerSecond, p.learningRate)
        guard interactive else {
            guard Date().timeIntervalSince(lastLogged) >= Self.logInterval else { return }
            lastLogged = Date()
            printError(String(format: "epoch %d/%d: step ", p.epoch, p.epochs) + stats)
            return
        }
        let width = 24, filled = width * p.step / max(p.stepsPerEpoch, 1)
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        printError(String(format: "\repoch %d/%d [%@] ", p.epoch, p.epochs, bar) + stats + "\u{1B}[K", newline: false)
        drawn = true
    }

    /// Ends the epoch with `line` (replacing the bar on a terminal).
    func finish(_ line: String) {
        printError((drawn ? "\r\u{1B}[K" : "") + line)
        drawn = false
    }
}
