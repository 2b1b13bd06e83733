import CLBackend
import Foundation

/// The update a trainer applies after each mini-batch; the descriptor's learning rate is the base
/// rate that the schedule scales.
public enum Optimizer: Sendable, Equatable {
    case sgd(SGDMomentum)
    case adam(Adam)

    public var learningRate: Float {
        switch self {
        case .sgd(let op): return op.learningRate
        case .adam(let op): return op.learningRate
        }
    }

    /// The same optimizer at another learning rate.
    public func withLearningRate(_ rate: Float) -> Optimizer {
        switch self {
        case .sgd(var op):
            op.learningRate = rate
            return .sgd(op)
        case .adam(var op):
            op.learningRate = rate
            return .adam(op)
        }
    }
}

/// How the learning rate moves from the optimizer's base rate over training.
public enum LearningRateSchedule: Sendable, Equatable {
    /// The base rate throughout.
    case constant
    /// The base rate times `gamma` after every `every` epochs (PyTorch's `StepLR`), updated per epoch.
    case step(every: Int, gamma: Float)
    /// Cosine annealing from the base rate to 0 over all of training (Loshchilov & Hutter 2017,
    /// without restarts), updated per step: `base * (1 + cos(pi * t / T)) / 2` for step `t` of `T`.
    case cosine

    /// The rate for step `step` (from 0) of epoch `epoch` (from 0).
    public func rate(base: Float, epoch: Int, step: Int, stepsPerEpoch: Int, epochs: Int) -> Float {
        switch self {
        case .constant:
            return base
        case .step(let every, let gamma):
            return base * Float(pow(Double(gamma), Double(epoch / max(every, 1))))
        case .cosine:
            let total = max(epochs * stepsPerEpoch, 1), t = epoch * stepsPerEpoch + step
            return Float(Double(base) * (1 + cos(Double.pi * Double(t) / Double(total))) / 2)
        }
    }
}

public struct TrainingConfiguration: Sendable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    public var optimizer: Optimizer
    public var schedule: LearningRateSchedule
    /// Seeds the shuffling of the training set (a fresh permutation each epoch).
    public var seed: UInt64
    /// Report progress (and read the running loss and accuracy back) every this many steps; 0 never
    /// reports during an epoch, only at its end.
    public var logEvery: Int
    /// Evaluation batch size; `nil` uses `batchSize`.
    public var evaluationBatchSize: Int?

    public init(epochs: Int, batchSize: Int, optimizer: Optimizer, schedule: LearningRateSchedule = .constant, seed: UInt64 = 0,
                logEvery: Int = 50, evaluationBatchSize: Int? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.optimizer = optimizer
        self.schedule = schedule
        self.seed = seed
        self.logEvery = logEvery
        self.evaluationBatchSize = evaluationBatchSize
    }
}

/// Where training stands, reported every `logEvery` steps and at the end of each epoch.
public struct TrainingProgress: Sendable, Equatable {
    /// From 1.
    public var epoch: Int
    public var epochs: Int
    /// Steps done in this epoch, from 1.
    public var step: Int
    public var stepsPerEpoch: Int
    /// Mean cross-entropy over the images of this epoch so far.
    public var loss: Double
    /// Fraction of this epoch's images so far that the model (as it was at each image's step) classified right.
    public var accuracy: Double
    /// Training throughput of this epoch so far (wall clock, host batching included).
    public var imagesPerSecond: Double
    /// The learning rate of the last step.
    public var learningRate: Float
    public var isEpochEnd: Bool { step == stepsPerEpoch }
}

/// Accuracy and mean loss of a model over a dataset.
public struct Evaluation: Sendable, Equatable {
    public var accuracy: Double
    /// Mean cross-entropy per image.
    public var loss: Double
    public var count: Int
}

/// Mini-batch training of a classifier with cross-entropy, on the executor's device.
///
/// The model is any graph with one input, the image batch `[N, C, H, W]`, and one output, the
/// logits `[N, K]`. Graph batch sizes are fixed, so the trainer runs executors of the same graph
/// rebuilt for the training batch, the last partial batch and the evaluation batch
/// (`Graph.withBatch`), all sharing the given executor's parameter tensors, which the optimizer
/// updates in place. Optimizer state (SGD velocity, Adam moments) lives on the device, one tensor per
/// parameter per moment.
///
/// **Host reads.** A step enqueues the forward pass, the loss gradient (`1/N` per row through
/// `crossEntropyBackward`, the gradient of the batch mean), backward, the optimizer updates and
/// the batch's loss sum and correct count added to device-side epoch totals; it writes the batch
/// to the device and reads nothing. The host reads one `[1, 2]` tensor (the totals) each time it
/// reports progress, every `logEvery` steps and at each epoch's end, once per `evaluate` call, and
/// each parameter once in `copyParametersToGraph`.
///
/// **Determinism.** Every kernel is deterministic and the shuffle is seeded, so the same graph,
/// configuration and seed give bit-identical weights on the same device.
///
/// **BatchNorm** stays in inference form: scale and shift are trained, the running statistics
/// (parameters named `*running_mean`, `*running_var`) are held fixed. Dropout is the identity.
public final class Trainer {
    public let executor: Executor
    public let configuration: TrainingConfiguration
    public var backend: Backend { executor.backend }
    /// Epochs completed.
    public private(set) var epoch = 0
    /// Optimizer steps taken (Adam's `t`).
    public private(set) var stepCount = 0
    /// The learning rate the next step uses.
    public private(set) var learningRate: Float
    /// The parameters the optimizer updates.
    public let trainableParameters: [ValueID]

    private let input: ValueID, logits: ValueID
    private let classes: Int
    private var optimizerState: [ValueID: [Tensor]] = [:]
    private var executors: [Int: Executor] = [:]
    /// `1/n` per row (the loss gradient) and ones per row (for the predicted one-hot), per batch size.
    private var rowConstants: [Int: (meanGradient: Tensor, ones: Tensor)] = [:]
    private var shuffler: SeededGenerator
    /// Loss sum and correct count of the current epoch, `[1, 2]`, on the device.
    private var epochTotals: Tensor?

    public init(_ executor: Executor, configuration: TrainingConfiguration) throws {
        let g = executor.graph
        guard g.inputs.count == 1, g.outputs.count == 1, g[g.inputs[0]].shape.rank == 4, g[g.outputs[0]].shape.rank == 2 else {
            throw GraphError("training needs a graph with one image input [N, C, H, W] and one logits output [N, K]; this one has inputs \(g.inputs.map { g[$0].shape }) and outputs \(g.outputs.map { g[$0].shape })")
        }
        guard configuration.epochs > 0, configuration.batchSize > 0, (configuration.evaluationBatchSize ?? 1) > 0 else {
            throw GraphError("training: epochs and batch sizes must be positive, got \(configuration.epochs) epochs, batch \(configuration.batchSize)")
        }
        if case .step(let every, _) = configuration.schedule, every <= 0 {
            throw GraphError("training: a step schedule needs a positive period, got \(every)")
        }
        self.executor = executor
        self.configuration = configuration
        input = g.inputs[0]
        logits = g.outputs[0]
        classes = g[logits].shape[1]
        learningRate = configuration.optimizer.learningRate
        shuffler = SeededGenerator(seed: configuration.seed)
        trainableParameters = g.parameters.filter { !(g[$0].name.hasSuffix("running_mean") || g[$0].name.hasSuffix("running_var")) }
        executors[g[input].shape[0]] = executor
        let moments: Int
        switch configuration.optimizer {
        case .sgd: moments = 1
        case .adam: moments = 2
        }
        for p in trainableParameters {
            optimizerState[p] = try (0..<moments).map { _ in try executor.backend.full(g[p].shape, value: 0) }
        }
    }

    /// The executor for batch size `n`, sharing the parameters.
    private func executor(batch n: Int) throws -> Executor {
        if let e = executors[n] { return e }
        let e = try Executor(executor.graph.withBatch(n), on: backend, parameters: executor.parameters)
        executors[n] = e
        return e
    }

    private func constants(batch n: Int) throws -> (meanGradient: Tensor, ones: Tensor) {
        if let c = rowConstants[n] { return c }
        let c = (try backend.full([n], value: 1 / Float(n)), try backend.full([n, 1, 1, 1], value: 1))
        rowConstants[n] = c
        return c
    }

    /// Uploads a batch: images, int32 labels and their one-hot rows.
    private func upload(_ batch: (images: [Float], labels: [Int32]), on exec: Executor) throws -> (images: Tensor, labels: Tensor, oneHot: Tensor) {
        let n = batch.labels.count
        var oneHot = [Float](repeating: 0, count: n * classes)
        for (i, label) in batch.labels.enumerated() where label >= 0 && Int(label) < classes { oneHot[i * classes + Int(label)] = 1 }
        return (try backend.tensor(batch.images, shape: exec.graph[input].shape), try backend.tensor(ints: batch.labels, shape: [n]),
                try backend.tensor(oneHot, shape: [n, classes]))
    }

    /// `[1, 2]`: the batch's loss sum and its number of correct predictions, computed on the device.
    /// The prediction is the first largest logit (max pooling over the class axis picks it, its
    /// backward scatters a 1 there); the correct count is that one-hot dotted with the labels'.
    private func statistics(logits y: Tensor, labels: Tensor, oneHot: Tensor) throws -> (losses: Tensor, totals: Tensor) {
        let n = y.shape[0], k = y.shape[1]
        let losses = try backend.crossEntropy(y, labels: labels)
        let lossSum = try backend.biasGradient(losses.reshaped(to: [n, 1]))
        let rows = try y.reshaped(to: [n, 1, 1, k])
        let argmax = MaxPool2D(window: Window2D(kernel: (1, k)))
        let (_, switches) = try backend.maxPool2d(rows, argmax)
        let predicted = try backend.maxPool2dBackward(constants(batch: n).ones, switches: switches, inputShape: rows.shape, argmax)
        let correct = try backend.linear(predicted.reshaped(to: [1, n * k]), weight: oneHot.reshaped(to: [1, n * k]))
        return (losses, try backend.concatChannels([lossSum.reshaped(to: [1, 1]), correct]))
    }

    private func accumulate(_ totals: Tensor, into sum: Tensor?) throws -> Tensor {
        try sum.map { try backend.add($0, totals) } ?? totals
    }

    /// One optimizer step on a batch of any size at the current learning rate.
    /// Enqueues only: no host read.
    public func step(images: [Float], labels: [Int32]) throws {
        guard !labels.isEmpty else { throw GraphError("training: an empty batch") }
        let exec = try executor(batch: labels.count)
        let batch = try upload((images, labels), on: exec)
        let pass = try exec.forward([input: batch.images], forBackward: true)
        let y = pass[logits]!
        let seed = try backend.crossEntropyBackward(constants(batch: labels.count).meanGradient, logits: y, labels: batch.labels)
        epochTotals = try accumulate(statistics(logits: y, labels: batch.labels, oneHot: batch.oneHot).totals, into: epochTotals)
        let grads = try exec.backward(pass, seeds: [logits: seed], targets: Set(trainableParameters))
        stepCount += 1
        let optimizer = configuration.optimizer.withLearningRate(learningRate)
        for p in trainableParameters {
            guard let g = grads[p], let param = executor.parameters[p], let state = optimizerState[p] else { continue }
            switch optimizer {
            case .sgd(let op): try backend.step(op, parameter: param, gradient: g, velocity: state[0])
            case .adam(let op): try backend.step(op, step: stepCount, parameter: param, gradient: g, firstMoment: state[0], secondMoment: state[1])
            }
        }
    }

    /// The loss sum and correct count so far this epoch (one host read).
    private func readEpochTotals() throws -> (loss: Double, correct: Double) {
        guard let totals = epochTotals else { return (0, 0) }
        let v = try backend.read(totals)
        return (Double(v[0]), Double(v[1]))
    }

    /// One pass over `dataset` in a fresh seeded order, in batches of `batchSize` (the last one
    /// smaller when the size does not divide the count). Calls `progress` every `logEvery` steps and
    /// at the end; returns the epoch's final progress.
    @discardableResult
    public func trainEpoch(_ dataset: LabeledImageDataset, progress: ((TrainingProgress) -> Void)? = nil) throws -> TrainingProgress {
        try checkShape(dataset)
        guard dataset.count > 0 else { throw GraphError("training: the dataset is empty") }
        guard epoch < configuration.epochs else { throw GraphError("training: all \(configuration.epochs) epochs are done") }
        var order = Array(0..<dataset.count)
        order.shuffle(using: &shuffler)
        let size = configuration.batchSize
        let steps = (order.count + size - 1) / size
        epochTotals = nil
        let start = Date()
        var seen = 0
        var report = TrainingProgress(epoch: epoch + 1, epochs: configuration.epochs, step: 0, stepsPerEpoch: steps, loss: 0, accuracy: 0,
                                      imagesPerSecond: 0, learningRate: learningRate)
        for s in 0..<steps {
            learningRate = configuration.schedule.rate(base: configuration.optimizer.learningRate, epoch: epoch, step: s,
                                                       stepsPerEpoch: steps, epochs: configuration.epochs)
            let indices = Array(order[(s * size)..<min((s + 1) * size, order.count)])
            let batch = dataset.batch(indices)
            try step(images: batch.images, labels: batch.labels)
            seen += indices.count
            let last = s == steps - 1
            if last || (configuration.logEvery > 0 && (s + 1) % configuration.logEvery == 0) {
                let (loss, correct) = try readEpochTotals()
                report.step = s + 1
                report.loss = loss / Double(seen)
                report.accuracy = correct / Double(seen)
                report.imagesPerSecond = Double(seen) / max(Date().timeIntervalSince(start), 1e-9)
                report.learningRate = learningRate
                progress?(report)
            }
        }
        epoch += 1
        return report
    }

    /// Trains the remaining epochs, then copies the trained parameters into the graph.
    /// `afterEpoch` runs after each epoch with its final progress (e.g. to save a checkpoint: call
    /// `copyParametersToGraph` first).
    public func train(_ dataset: LabeledImageDataset, progress: ((TrainingProgress) -> Void)? = nil,
                      afterEpoch: ((TrainingProgress) throws -> Void)? = nil) throws {
        while epoch < configuration.epochs {
            let summary = try trainEpoch(dataset, progress: progress)
            try afterEpoch?(summary)
        }
        try copyParametersToGraph()
    }

    /// Accuracy and mean cross-entropy over `dataset` in inference mode, in batches of the
    /// evaluation batch size (one host read at the end).
    public func evaluate(_ dataset: LabeledImageDataset) throws -> Evaluation {
        try checkShape(dataset)
        guard dataset.count > 0 else { throw GraphError("evaluation: the dataset is empty") }
        let size = configuration.evaluationBatchSize ?? configuration.batchSize
        var totals: Tensor?
        for start in stride(from: 0, to: dataset.count, by: size) {
            let indices = Array(start..<min(start + size, dataset.count))
            let exec = try executor(batch: indices.count)
            let batch = try upload(dataset.batch(indices), on: exec)
            let pass = try exec.forward([input: batch.images])
            totals = try accumulate(statistics(logits: pass[logits]!, labels: batch.labels, oneHot: batch.oneHot).totals, into: totals)
        }
        let v = try backend.read(totals!)
        return Evaluation(accuracy: Double(v[1]) / Double(dataset.count), loss: Double(v[0]) / Double(dataset.count), count: dataset.count)
    }

    /// Reads the device parameters into the graph's `parameterValues`, so that `ONNX.write` and
    /// `Graph.namedWeights` save the trained weights (one host read per parameter).
    public func copyParametersToGraph() throws {
        for p in executor.graph.parameters { executor.graph.parameterValues[p] = try backend.read(executor.parameters[p]!) }
    }

    private func checkShape(_ dataset: LabeledImageDataset) throws {
        let g = executor.graph, want = Shape(Array(g[input].shape.dims.dropFirst()))
        guard dataset.imageShape == want else {
            throw GraphError("training: the dataset's images are \(dataset.imageShape); the model's input '\(g[input].name)' takes \(want)")
        }
        guard dataset.classes <= classes else {
            throw GraphError("training: the dataset has \(dataset.classes) classes; the model's output '\(g[logits].name)' has \(classes) logits")
        }
    }
}
