import CLBackend
import Foundation
import Graph
import XCTest

/// Training on a small separable dataset on OpenCL, one step against a hand-computed update on
/// the reference, determinism, host reads and checkpoints.
final class TrainingTests: XCTestCase {
    private func openCL() throws -> OpenCLBackend {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        return try OpenCLBackend(device: entry)
    }

    /// `count` 1x8x8 images of 4 classes: class c has its quadrant c (row-major) at brightness
    /// 1 over uniform noise in [0, 0.6), the rest noise only.
    private func quadrants(_ count: Int, seed: UInt64) throws -> InMemoryDataset {
        var rng = SeededGenerator(seed: seed)
        var images: [Float] = [], labels: [Int32] = []
        for i in 0..<count {
            let c = i % 4
            for y in 0..<8 {
                for x in 0..<8 {
                    let inside = (y / 4) * 2 + x / 4 == c
                    images.append((inside ? 1 : 0) + Float.random(in: 0..<0.6, using: &rng))
                }
            }
            labels.append(Int32(c))
        }
        return try InMemoryDataset(images: images, labels: labels, imageShape: [1, 8, 8], classes: 4)
    }

    /// conv 4@3x3 -> ReLU -> 2x2 max pool -> flatten -> linear 4, at batch 1 (the trainer rebuilds it per batch size).
    private func tinyNet(seed: UInt64) throws -> Graph {
        var rng = SeededGenerator(seed: seed)
        let g = Graph()
        let x = try g.input("input", shape: [1, 1, 8, 8])
        var h = try g.relu(try g.conv(x, 4, kernel: 3, padding: 1, name: "conv", rng: &rng), name: "relu")
        h = try g.apply(.flatten, [try g.maxPool(h, kernel: 2, stride: 2, name: "pool")], name: "flatten")
        g.markOutput(try g.linear(h, 4, name: "fc", rng: &rng))
        return g
    }

    private func trained(_ optimizer: Optimizer, schedule: LearningRateSchedule = .constant, epochs: Int = 4, seed: UInt64 = 7,
                         data: InMemoryDataset, on be: Backend, progress: ((TrainingProgress) -> Void)? = nil) throws -> Trainer {
        let trainer = try Trainer(Executor(tinyNet(seed: 1), on: be),
                                  configuration: TrainingConfiguration(epochs: epochs, batchSize: 32, optimizer: optimizer, schedule: schedule,
                                                                       seed: seed, logEvery: 3, evaluationBatchSize: 64))
        try trainer.train(data, progress: progress)
        return trainer
    }

    /// 300 images (the last of 10 batches has 12), 4 epochs: both optimizers separate the classes
    /// of fresh data, and the epoch loss falls.
    func testSGDMomentumAndAdamLearnTheQuadrants() throws {
        let be = try openCL()
        let dataSeed = UInt64.random(in: 0...UInt64.max)
        let train = try quadrants(300, seed: dataSeed), test = try quadrants(200, seed: dataSeed &+ 1)
        for optimizer in [Optimizer.sgd(SGDMomentum(learningRate: 0.05, momentum: 0.9)), .adam(Adam(learningRate: 0.01))] {
            var epochLosses: [Double] = []
            var reports: [TrainingProgress] = []
            let trainer = try trained(optimizer, data: train, on: be) { p in
                reports.append(p)
                if p.isEpochEnd { epochLosses.append(p.loss) }
            }
            XCTAssertEqual(reports.map(\.step), Array(repeating: [3, 6, 9, 10], count: 4).flatMap { $0 }, "\(optimizer)")
            XCTAssertEqual(epochLosses.count, 4)
            XCTAssertLessThan(epochLosses.last!, epochLosses.first! * 0.5, "\(optimizer), data seed \(dataSeed): losses \(epochLosses)")
            let result = try trainer.evaluate(test)
            XCTAssertEqual(result.count, 200)
            XCTAssertGreaterThan(result.accuracy, 0.95, "\(optimizer), data seed \(dataSeed): \(result)")
            XCTAssertLessThan(result.loss, epochLosses.first!, "\(optimizer)")
        }
    }

    /// A linear model `logits = X W^T + b` on the reference backend: the gradient of the mean
    /// cross-entropy is `dW = G^T X`, `db = sum_n G` with `G = (softmax(logits) - onehot) / N`,
    /// computed here in Double. Two SGD-momentum steps (so the velocity carries) with weight decay,
    /// and one Adam step, match the formulas of `SGDMomentum` and `Adam`.
    /// Tolerance 1e-5 relative: float32 storage of a few dozen terms per element.
    func testStepsMatchHandComputedUpdates() throws {
        let (n, features, classes) = (6, 4, 3)
        let g = Graph()
        let x = try g.input("input", shape: [1, 1, 2, 2])
        var rng = SeededGenerator(seed: UInt64.random(in: 0...UInt64.max))
        let h = try g.apply(.flatten, [x], name: "flatten")
        g.markOutput(try g.linear(h, classes, name: "fc", rng: &rng))
        let (w, b) = (g.value(named: "fc.weight")!, g.value(named: "fc.bias")!)
        g.parameterValues[b] = (0..<classes).map { _ in Float.random(in: -0.5...0.5) }
        let images = (0..<(n * features)).map { _ in Float.random(in: -1...1) }
        let labels = (0..<n).map { _ in Int32.random(in: 0..<Int32(classes)) }

        func gradient(_ weight: [Double], _ bias: [Double]) -> (w: [Double], b: [Double]) {
            var dw = [Double](repeating: 0, count: classes * features), db = [Double](repeating: 0, count: classes)
            for i in 0..<n {
                let z = (0..<classes).map { k in bias[k] + (0..<features).reduce(0.0) { $0 + weight[k * features + $1] * Double(images[i * features + $1]) } }
                let m = z.max()!, e = z.map { Foundation.exp($0 - m) }, sum = e.reduce(0, +)
                for k in 0..<classes {
                    let gk = (e[k] / sum - (Int(labels[i]) == k ? 1 : 0)) / Double(n)
                    db[k] += gk
                    for f in 0..<features { dw[k * features + f] += gk * Double(images[i * features + f]) }
                }
            }
            return (dw, db)
        }
        let w0 = g.parameterValues[w]!.map(Double.init), b0 = g.parameterValues[b]!.map(Double.init)

        let sgd = SGDMomentum(learningRate: 0.3, momentum: 0.9, weightDecay: 0.01)
        var p = (w: w0, b: b0), v = (w: [Double](repeating: 0, count: w0.count), b: [Double](repeating: 0, count: b0.count))
        for _ in 0..<2 {
            let grad = gradient(p.w, p.b)
            for i in p.w.indices {
                v.w[i] = Double(sgd.momentum) * v.w[i] + grad.w[i] + Double(sgd.weightDecay) * p.w[i]
                p.w[i] -= Double(sgd.learningRate) * v.w[i]
            }
            for i in p.b.indices {
                v.b[i] = Double(sgd.momentum) * v.b[i] + grad.b[i] + Double(sgd.weightDecay) * p.b[i]
                p.b[i] -= Double(sgd.learningRate) * v.b[i]
            }
        }
        let adam = Adam(learningRate: 0.05, weightDecay: 0.1)
        func adamStep(_ p: [Double], _ grad: [Double]) -> [Double] {
            zip(p, grad).map { p, g in
                let g2 = g + Double(adam.weightDecay) * p
                let m = (1 - Double(adam.beta1)) * g2 / (1 - Double(adam.beta1)), s = (1 - Double(adam.beta2)) * g2 * g2 / (1 - Double(adam.beta2))
                return p - Double(adam.learningRate) * m / (s.squareRoot() + Double(adam.epsilon))
            }
        }
        let grad0 = gradient(w0, b0)
        let adamExpected = (w: adamStep(w0, grad0.w), b: adamStep(b0, grad0.b))

        for (optimizer, steps, expected) in [(Optimizer.sgd(sgd), 2, p), (.adam(adam), 1, adamExpected)] {
            let be = ReferenceBackend()
            let trainer = try Trainer(Executor(g, on: be), configuration: TrainingConfiguration(epochs: 1, batchSize: n, optimizer: optimizer))
            for _ in 0..<steps { try trainer.step(images: images, labels: labels) }
            XCTAssertEqual(trainer.stepCount, steps)
            let gotW = try be.read(trainer.executor.parameters[w]!), gotB = try be.read(trainer.executor.parameters[b]!)
            XCTAssertLessThan(relativeError(gotW, expected.w.map(Float.init)), 1e-5, "\(optimizer) weight")
            XCTAssertLessThan(relativeError(gotB, expected.b.map(Float.init)), 1e-5, "\(optimizer) bias")
        }
    }

    /// Same graph, configuration and seed: bit-identical weights (deterministic kernels, seeded
    /// shuffle); another shuffle seed gives other weights.
    func testSameSeedGivesIdenticalWeights() throws {
        let be = try openCL()
        let data = try quadrants(100, seed: UInt64.random(in: 0...UInt64.max))
        let optimizer = Optimizer.adam(Adam(learningRate: 0.01, weightDecay: 1e-4))
        let weights = try [7, 7, 8].map { seed in
            try trained(optimizer, schedule: .cosine, epochs: 2, seed: UInt64(seed), data: data, on: be).executor.graph.namedWeights()
        }
        XCTAssertEqual(weights[0], weights[1])
        XCTAssertNotEqual(weights[0], weights[2])
    }

    /// Steps read nothing back; an epoch reads the running totals once per report; evaluation once.
    func testHostReadsAreOnlyTheReportedTotals() throws {
        let be = try openCL()
        let data = try quadrants(64, seed: UInt64.random(in: 0...UInt64.max))
        for (logEvery, reads) in [(0, 1), (3, 3)] {
            let trainer = try Trainer(Executor(tinyNet(seed: 2), on: be),
                                      configuration: TrainingConfiguration(epochs: 1, batchSize: 8, optimizer: .sgd(SGDMomentum(learningRate: 0.01)),
                                                                           logEvery: logEvery))
            let batch = data.batch(Array(0..<8))
            let before = be.hostReads
            for _ in 0..<20 { try trainer.step(images: batch.images, labels: batch.labels) }
            XCTAssertEqual(be.hostReads, before, "steps read device memory")
            try trainer.trainEpoch(data)
            XCTAssertEqual(be.hostReads, before + reads, "an epoch of 8 steps reporting every \(logEvery)")
            _ = try trainer.evaluate(data)
            XCTAssertEqual(be.hostReads, before + reads + 1, "evaluation")
        }
    }

    /// The trained model written as ONNX imports to a graph whose logits equal the trainer's.
    /// Tolerance 1e-6 relative: the same kernels on the same weights (only the import's node
    /// structure may differ).
    func testCheckpointReimportsWithTheTrainedLogits() throws {
        let be = try openCL()
        let data = try quadrants(96, seed: UInt64.random(in: 0...UInt64.max))
        let trainer = try trained(.sgd(SGDMomentum(learningRate: 0.05)), epochs: 1, data: data, on: be)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-train-\(UUID().uuidString).onnx").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ONNX.write(trainer.executor.graph, to: path)
        let imported = try ONNX.importGraph(contentsOf: path).withBatch(16)
        let trainedAt16 = try Executor(trainer.executor.graph.withBatch(16), on: be, parameters: trainer.executor.parameters)
        let images = try HostTensor(shape: [16, 1, 8, 8], values: data.batch(Array(0..<16)).images)
        let want = try trainedAt16.infer([trainedAt16.graph.inputs[0]: images])[trainedAt16.graph.outputs[0]]!
        let reimported = try Executor(imported, on: be)
        let got = try reimported.infer([imported.inputs[0]: images])[imported.outputs[0]]!
        XCTAssertEqual(got.shape, [16, 4])
        XCTAssertLessThan(relativeError(got.values, want.values), 1e-6)
    }

    func testSchedules() {
        let step = LearningRateSchedule.step(every: 2, gamma: 0.1)
        for (epoch, want) in zip(0..., [1, 1, 0.1, 0.1, 0.01] as [Float]) {
            XCTAssertEqual(step.rate(base: 1, epoch: epoch, step: 5, stepsPerEpoch: 10, epochs: 5), want, accuracy: 1e-7)
        }
        let cosine = LearningRateSchedule.cosine
        XCTAssertEqual(cosine.rate(base: 2, epoch: 0, step: 0, stepsPerEpoch: 10, epochs: 2), 2)
        XCTAssertEqual(cosine.rate(base: 2, epoch: 1, step: 0, stepsPerEpoch: 10, epochs: 2), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.rate(base: 2, epoch: 1, step: 9, stepsPerEpoch: 10, epochs: 2), Float(1 + cos(Double.pi * 19 / 20)), accuracy: 1e-6)
        XCTAssertEqual(LearningRateSchedule.constant.rate(base: 0.3, epoch: 9, step: 9, stepsPerEpoch: 10, epochs: 10), 0.3)
    }
}
