import CLBackend
import Foundation
import Graph
import XCTest
@testable import Explain

/// Activation maximization and inversion on the trained Fashion-MNIST models (Models/), on the
/// OpenCL device: class visualizations the model believes, inversions that reconstruct, batched
/// runs equal to single runs, and a loop that reads the device only when it reports.
final class SynthesisTests: XCTestCase {
    private static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Models").standardized.path

    private func device() throws -> OpenCLBackend {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        return try OpenCLBackend(device: entry)
    }

    private func model(_ name: String) throws -> Graph { try ONNX.importGraph(contentsOf: "\(Self.models)/\(name).onnx") }

    /// The defaults `loupe maximize` uses on Fashion-MNIST, fewer steps.
    static func classOptions(steps: Int) -> SynthesisOptions {
        var o = SynthesisOptions()
        o.steps = steps
        o.reportEvery = 8
        o.parameterization = .fourier(decay: 1)
        o.optimizer = .adam(learningRate: 0.05)
        o.jitter = 1
        o.affine = RandomAffine(scale: 0.95...1.05, maxDegrees: 5)
        return o
    }

    func testClassVisualizationsAreConfidentAndTheLogitRises() throws {
        let be = try device()
        let g = try model("fashioncnn")
        let s = try Synthesizer(graph: g, backend: be)
        let terms = (0..<10).map { [ObjectiveTerm(layer: "fc", .channelMean($0))] }
        let result = try s.maximize(terms, options: Self.classOptions(steps: 64))
        if let path = ProcessInfo.processInfo.environment["LOUPE_SAMPLE_AM"] {
            let cells = try (0..<10).map { k in
                (image: try Image(tensor: HostTensor(shape: [1, 28, 28], values: Array(result.images.values[(k * 784)..<((k + 1) * 784)]))),
                 label: FashionMNIST.names[k])
            }
            try writePNG(grid(cells, columns: 5), to: path, overwrite: true)
        }
        // The model's own probabilities for the images, from an independent forward pass.
        let exec = try Executor(g.withBatch(10), on: be)
        let logits = try be.read(exec.forward([exec.graph.inputs[0]: be.tensor(result.images.values, shape: [10, 1, 28, 28])]).values[exec.graph.outputs[0]]!)
        for k in 0..<10 {
            let row = logits[(k * 10)..<((k + 1) * 10)], top = row.max()!
            let p = exp(row[k * 10 + k] - top) / row.reduce(0) { $0 + exp($1 - top) }
            XCTAssertGreaterThan(p, 0.9, "class \(FashionMNIST.names[k]): p = \(p)")
        }
        // Rising in expectation: the mean logit over the run's report steps rises overall, and on most intervals.
        let h = result.history.map(\.objective)
        XCTAssertGreaterThan(h.last!, h.first! + 5, "\(h)")
        let rises = zip(h, h.dropFirst()).filter { $1 > $0 }.count
        XCTAssertGreaterThanOrEqual(rises * 4, (h.count - 1) * 3, "the logit fell on more than a quarter of the intervals: \(h)")
    }

    func testInversionReconstructsConv1AndTheErrorGrowsWithDepth() throws {
        let be = try device()
        let s = try Synthesizer(graph: model("gapnet"), backend: be)
        let data = try FashionMNIST(split: .test)
        let image = try HostTensor(shape: [1, 1, 28, 28], values: data.pixels[0..<784].map { Float($0) / 255 })
        var o = SynthesisOptions()
        o.steps = 150
        o.reportEvery = 150
        o.parameterization = .pixels
        o.optimizer = .adam(learningRate: 0.05)
        o.jitter = 0
        o.affine = nil
        o.totalVariationWeight = 1e-4
        var errors: [Float] = []
        for layer in ["conv1", "conv3", "conv4"] {
            let result = try s.invert(layer: layer, target: s.features(of: image, layer: layer), options: o)
            errors.append(result.objectives[0])
        }
        XCTAssertLessThan(errors[0], 0.1, "conv1 normalized error \(errors)")
        XCTAssertLessThan(errors[0], errors[1], "\(errors)")
        XCTAssertLessThan(errors[1], errors[2], "\(errors)")
    }

    func testBatchedUnitsEqualSingleRunsWithTheSameSeeds() throws {
        let be = try device()
        let s = try Synthesizer(graph: model("gapnet"), backend: be)
        var o = Self.classOptions(steps: 12)
        o.seed = 9
        o.totalVariationWeight = 1e-3
        let terms = (0..<8).map { [ObjectiveTerm(layer: "conv3", .channelMean($0))] }
        let batched = try s.maximize(terms, options: o)
        for k in 0..<8 {
            var single = o
            single.firstStream = k
            let one = try s.maximize([terms[k]], options: single)
            let slice = Array(batched.images.values[(k * 784)..<((k + 1) * 784)])
            // The conv kernels sum each output in an order independent of the batch size.
            XCTAssertLessThan(zip(slice, one.images.values).map { abs($0 - $1) }.max()!, 1e-5, "unit \(k)")
            XCTAssertEqual(batched.objectives[k], one.objectives[0], accuracy: 1e-3 * max(1, abs(one.objectives[0])))
        }
    }

    /// The whole loop (Fourier image, roll, warp, forward, backward, TV, Adam) reads the device
    /// once per layer at each report step and once for the final images, nothing else.
    func testTheLoopReadsOnlyWhenItReports() throws {
        let be = try device()
        let s = try Synthesizer(graph: model("fashioncnn"), backend: be)
        var o = Self.classOptions(steps: 40)
        o.reportEvery = 10
        o.totalVariationWeight = 1e-3
        let before = be.hostReads
        var reports = 0
        let terms = [[ObjectiveTerm(layer: "fc", .channelMean(3)), ObjectiveTerm(layer: "conv2", .layerL2, weight: 0.1)]]
        _ = try s.maximize(terms, options: o) { _ in
            reports += 1
            XCTAssertEqual(be.hostReads, before + 2 * reports, "reads at report \(reports)")
        }
        XCTAssertEqual(reports, 5, "steps 1, 10, 20, 30, 40")
        XCTAssertEqual(be.hostReads, before + 2 * reports + 1)
    }

    /// Lucid's diversity term: four images of one unit from different starts. With the term, the
    /// Gram-matrix cosines between the images' features (measured by an independent forward pass
    /// of the final images) fall well below the plain run's, and the unit stays strongly driven.
    func testDiversityPushesTheBatchApart() throws {
        let be = try device()
        let g = try model("fashioncnn")
        let s = try Synthesizer(graph: g, backend: be)
        var o = Self.classOptions(steps: 48)
        o.seed = 4
        let terms = Array(repeating: [ObjectiveTerm(layer: "conv2", .channelMean(5))], count: 4)
        let plain = try s.maximize(terms, options: o)
        o.diversityWeight = 0.5
        o.diversityLayer = "relu2"
        let diverse = try s.maximize(terms, options: o)
        let exec = try Executor(g.withBatch(4), on: be)
        let relu2 = exec.graph.value(named: "relu2")!
        func measured(_ r: SynthesisResult) throws -> Float {
            let pass = try exec.forward([exec.graph.inputs[0]: be.tensor(r.images.values, shape: r.images.shape)], retaining: [relu2], until: relu2)
            return try be.read(be.gramDiversity(pass[relu2]!))[0]
        }
        let (dPlain, dDiverse) = (try measured(plain), try measured(diverse))
        let (oPlain, oDiverse) = (plain.objectives.reduce(0, +) / 4, diverse.objectives.reduce(0, +) / 4)
        print("diversity D (max 3): plain \(dPlain), with the term \(dDiverse); objective \(oPlain) vs \(oDiverse)")
        XCTAssertNotNil(diverse.diversity)
        XCTAssertNil(plain.diversity)
        XCTAssertLessThan(dDiverse, dPlain - 0.3, "D: plain \(dPlain), diverse \(dDiverse)")
        XCTAssertGreaterThan(oDiverse, 0.5 * oPlain, "objective: plain \(oPlain), diverse \(oDiverse)")
    }

    /// Images `mean + 3 a u1 + b u2 + small noise` (a, b standard normal, u1 and u2 orthonormal):
    /// the fitted prior's two components are u1 and u2 (up to sign) with sigmas 3 and 1.
    func testPCAPriorRecoversAPlantedSubspace() throws {
        let d = 16, m = 600
        var u1 = (0..<d).map { Float(sin(Double($0) * 0.7)) }, u2 = (0..<d).map { Float(cos(Double($0) * 1.9)) }
        let n1 = u1.reduce(0) { $0 + $1 * $1 }.squareRoot()
        u1 = u1.map { $0 / n1 }
        let dot = zip(u1, u2).reduce(0) { $0 + $1.0 * $1.1 }
        u2 = zip(u2, u1).map { $0 - dot * $1 }
        let n2 = u2.reduce(0) { $0 + $1 * $1 }.squareRoot()
        u2 = u2.map { $0 / n2 }
        var rng = SystemRandomNumberGenerator()
        func normal() -> Float {
            let (a, b) = (Float.random(in: 1e-7...1, using: &rng), Float.random(in: 0...1, using: &rng))
            return (-2 * log(a)).squareRoot() * cos(2 * .pi * b)
        }
        var values: [Float] = []
        for _ in 0..<m {
            let (a, b) = (normal(), normal())
            values += (0..<d).map { 0.5 + 3 * a * u1[$0] + b * u2[$0] + 0.01 * normal() }
        }
        let prior = try PCAPrior.fit(images: HostTensor(shape: [m, 1, 4, 4], values: values), components: 2, backend: device())
        XCTAssertEqual(prior.sigmas[0], 3, accuracy: 0.3)
        XCTAssertEqual(prior.sigmas[1], 1, accuracy: 0.12)
        for (j, u) in [u1, u2].enumerated() {
            let column = (0..<d).map { prior.basis[$0 * 2 + j] / prior.sigmas[j] }
            XCTAssertGreaterThan(abs(zip(column, u).reduce(0) { $0 + $1.0 * $1.1 }), 0.99, "component \(j)")
        }
        XCTAssertEqual(prior.mean.reduce(0, +) / Float(d), 0.5, accuracy: 0.05)
        // The Rayleigh-Ritz step's Jacobi solver on a closed form: [[2, 1, 0], [1, 2, 0], [0, 0, 5]]
        // has eigenvalues 1, 3, 5 with (1, -1, 0) / sqrt 2 for 1.
        let (eigenvalues, vectors) = PCAPrior.symmetricEigen([2, 1, 0, 1, 2, 0, 0, 0, 5], size: 3)
        XCTAssertEqual(eigenvalues.sorted().map { ($0 * 1e9).rounded() / 1e9 }, [1, 3, 5])
        let one = eigenvalues.firstIndex { abs($0 - 1) < 1e-9 }!
        XCTAssertEqual(abs(vectors[0 * 3 + one] - vectors[1 * 3 + one]), 2.0.squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(vectors[2 * 3 + one], 0, accuracy: 1e-9)
    }

    /// Through a PCA prior fitted to training images, each class visualization of fashioncnn is
    /// one the model is sure of (p > 0.9) and one gapnet, trained separately with another
    /// architecture, also assigns to the class: a machine stand-in for "recognizable", which the
    /// Fourier images (confident for fashioncnn, but not garments) mostly fail.
    func testPCAClassVisualizationsAreRecognizedByAnotherModel() throws {
        let be = try device()
        let (g, other) = (try model("fashioncnn"), try model("gapnet"))
        let data = try FashionMNIST(split: .train)
        let examples = try HostTensor(shape: [2000, 1, 28, 28], values: data.batch(Array(0..<2000)).images)
        var o = SynthesisOptions()
        o.parameterization = .pca(try PCAPrior.fit(images: examples, components: 32, backend: be))
        (o.steps, o.jitter, o.affine, o.l2Decay) = (128, 0, nil, 0.01)
        let terms = (0..<10).map { [ObjectiveTerm(layer: "fc", .channelMean($0))] }
        let pca = try Synthesizer(graph: g, backend: be).maximize(terms, options: o)
        let fourier = try Synthesizer(graph: g, backend: be).maximize(terms, options: Self.classOptions(steps: 128))
        func probabilities(_ model: Graph, _ r: SynthesisResult) throws -> [[Float]] {
            let exec = try Executor(model.withBatch(10), on: be)
            let logits = try be.read(exec.forward([exec.graph.inputs[0]: be.tensor(r.images.values, shape: [10, 1, 28, 28])]).values[exec.graph.outputs[0]]!)
            return (0..<10).map { k in
                let row = Array(logits[(k * 10)..<((k + 1) * 10)]), top = row.max()!
                let e = row.map { exp($0 - top) }, sum = e.reduce(0, +)
                return e.map { $0 / sum }
            }
        }
        let own = try probabilities(g, pca)
        for k in 0..<10 { XCTAssertGreaterThan(own[k][k], 0.9, "fashioncnn on its \(FashionMNIST.names[k])") }
        func agreed(_ r: SynthesisResult) throws -> Int {
            try probabilities(other, r).enumerated().filter { k, p in p.firstIndex(of: p.max()!) == k }.count
        }
        let (pcaAgreed, fourierAgreed) = (try agreed(pca), try agreed(fourier))
        print("gapnet recognizes \(pcaAgreed)/10 PCA-prior class images and \(fourierAgreed)/10 Fourier ones")
        XCTAssertGreaterThanOrEqual(pcaAgreed, 8)
        XCTAssertGreaterThan(pcaAgreed, fourierAgreed)
    }

    func testBadObjectivesAreRefusedByName() throws {
        let s = try Synthesizer(graph: model("fashioncnn"), backend: ReferenceBackend())
        XCTAssertThrowsError(try s.check(ObjectiveTerm(layer: "conv9", .channelMean(0)))) { XCTAssertTrue("\($0)".contains("conv9"), "\($0)") }
        XCTAssertThrowsError(try s.check(ObjectiveTerm(layer: "conv2", .channelMean(32)))) { XCTAssertTrue("\($0)".contains("32 channels"), "\($0)") }
        XCTAssertThrowsError(try s.check(ObjectiveTerm(layer: "conv2", .unit(channel: 0, y: 14, x: 0)))) { XCTAssertTrue("\($0)".contains("outside"), "\($0)") }
    }

    func testPerturbationsKeepTheNorm() {
        let f: [Float] = (0..<200).map { _ in Float.random(in: -1...2) }
        let norm = { (v: [Float]) in v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        let b = FeaturePerturbation.binarized.apply(f, images: 2, seed: 1), d = FeaturePerturbation.dropout.apply(f, images: 2, seed: 1)
        for i in 0..<2 {
            let r = (i * 100)..<((i + 1) * 100)
            XCTAssertEqual(norm(Array(b[r])), norm(Array(f[r])), accuracy: 1e-3)
            XCTAssertEqual(norm(Array(d[r])), norm(Array(f[r])), accuracy: 1e-3)
            XCTAssertEqual(Set(b[r].map(abs)).count, 1, "binarized magnitudes are equal")
            XCTAssertTrue(zip(b[r], f[r]).allSatisfy { ($0 > 0) == ($1 > 0) }, "binarization keeps the signs")
            let zeros = d[r].filter { $0 == 0 }.count
            XCTAssertTrue((25...75).contains(zeros), "dropout zeroed \(zeros) of 100")
        }
    }
}
