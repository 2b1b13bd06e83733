import CLBackend
import Foundation
import Graph
import XCTest

/// The executor on both backends, and reverse-mode autodiff against finite differences.
final class ExecutorTests: XCTestCase {
    private func openCL() throws -> OpenCLBackend {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        return try OpenCLBackend(device: entry)
    }

    private func random(_ n: Int, _ rng: inout SeededGenerator) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } }

    /// conv -> ReLU -> max pool -> grouped conv -> batch norm -> ReLU -> concat(avg pool, bilinear resize) -> flatten -> linear -> log-softmax.
    private func smallNet(seed: UInt64, smooth: Bool = false) throws -> (Graph, ValueID, ValueID) {
        var rng = SeededGenerator(seed: seed)
        let g = Graph()
        let x = try g.input("x", shape: [2, 3, 12, 10])
        let act: GraphOp = smooth ? .identity : .activation(.relu)
        var h = try g.conv(x, 6, kernel: 3, padding: 1, name: "conv1", rng: &rng)
        h = try g.apply(act, [h], name: "act1")
        h = smooth ? try g.avgPool(h, kernel: 2, stride: 2, name: "pool1") : try g.maxPool(h, kernel: 2, stride: 2, name: "pool1")
        h = try g.conv(h, 8, kernel: 3, stride: 1, padding: 1, groups: 2, name: "conv2", rng: &rng)
        h = try g.batchNorm(h, name: "bn2")
        h = try g.apply(act, [h], name: "act2")
        let a = try g.avgPool(h, kernel: 3, stride: 2, padding: 1, countIncludePad: false, name: "pool2a")
        let m = try g.apply(.resizeBilinear(BilinearResize(height: 3, width: 3)), [h], name: "pool2b")
        h = try g.apply(.concat, [a, m], name: "cat")
        h = try g.apply(.flatten, [h], name: "flat")
        let logits = try g.linear(h, 5, name: "fc", rng: &rng)
        let p = try g.apply(.softmax(log: true), [logits], name: "logp")
        g.markOutput(p)
        for v in g.parameters where g[v].name.hasPrefix("bn2") {
            g.parameterValues[v] = g[v].name.hasSuffix("running_var") ? (0..<8).map { _ in Float.random(in: 0.5...2, using: &rng) } : random(8, &rng)
        }
        return (g, x, p)
    }

    func testForwardMatchesAcrossBackendsAndInferenceFreesActivations() throws {
        let (g, x, p) = try smallNet(seed: UInt64.random(in: 0...1000))
        var rng = SeededGenerator(seed: 7)
        let input = random(2 * 3 * 12 * 10, &rng)
        var results: [[Float]] = []
        for backend in [ReferenceBackend() as Backend, try openCL()] {
            let exec = try Executor(g, on: backend)
            let pass = try exec.forward([x: backend.tensor(input, shape: g[x].shape)])
            XCTAssertEqual(Set(pass.values.keys), [p], "an inference pass should hold only the outputs")
            results.append(try backend.read(pass[p]!))
        }
        XCTAssertLessThan(relativeError(results[1], results[0]), 1e-5)
    }

    /// Autodiff on a smooth net (identity activations, average pooling: no kinks for the
    /// differences to cross; the op-level backward passes are checked in Float64 elsewhere) against central differences of the
    /// scalar <seed, output> on the reference backend. Float32 storage limits the differences to
    /// about 1e-3 relative at eps = 1e-2, hence the bound.
    func testGradientsMatchFiniteDifferences() throws {
        let (g, x, p) = try smallNet(seed: 11, smooth: true)
        let be = ReferenceBackend()
        let exec = try Executor(g, on: be)
        var rng = SeededGenerator(seed: UInt64.random(in: 0...1000))
        let input = random(g[x].shape.count, &rng), seed = random(g[p].shape.count, &rng)
        let conv1 = g.value(named: "conv1.weight")!, fcBias = g.value(named: "fc.bias")!, mid = g.value(named: "conv2")!
        let pass = try exec.forward([x: be.tensor(input, shape: g[x].shape)], forBackward: true)
        let grads = try exec.backward(pass, seeds: [p: be.tensor(seed, shape: g[p].shape)], targets: [x, conv1, fcBias, mid])
        XCTAssertEqual(Set(grads.keys), [x, conv1, fcBias, mid])

        func objective(input: [Float], conv1Weights: [Float]? = nil) throws -> Double {
            if let w = conv1Weights { try exec.setParameter(conv1, values: w) }
            let y = try be.read(exec.forward([x: be.tensor(input, shape: g[x].shape)])[p]!)
            return zip(y, seed).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let eps: Float = 1e-2
        let dx = try be.read(grads[x]!)
        for i in (0..<8).map({ _ in Int.random(in: 0..<input.count) }) {
            var plus = input, minus = input
            plus[i] += eps
            minus[i] -= eps
            let fd = (try objective(input: plus) - objective(input: minus)) / Double(2 * eps)
            XCTAssertEqual(Double(dx[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "d/dx[\(i)]")
        }
        let w0 = g.parameterValues[conv1]!
        let dw = try be.read(grads[conv1]!)
        for i in (0..<6).map({ _ in Int.random(in: 0..<w0.count) }) {
            var plus = w0, minus = w0
            plus[i] += eps
            minus[i] -= eps
            let fd = (try objective(input: input, conv1Weights: plus) - objective(input: input, conv1Weights: minus)) / Double(2 * eps)
            XCTAssertEqual(Double(dw[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "d/dconv1.weight[\(i)]")
        }
        try exec.setParameter(conv1, values: w0)
    }

    func testGradientsMatchAcrossBackendsForEveryRule() throws {
        let (g, x, p) = try smallNet(seed: 5)
        var rng = SeededGenerator(seed: UInt64.random(in: 0...1000))
        let input = random(g[x].shape.count, &rng), seed = random(g[p].shape.count, &rng)
        let conv2 = g.value(named: "conv2")!
        for rule in ReLUBackwardRule.allCases {
            var results: [[[Float]]] = []
            for backend in [ReferenceBackend() as Backend, try openCL()] {
                let exec = try Executor(g, on: backend)
                let pass = try exec.forward([x: backend.tensor(input, shape: g[x].shape)], forBackward: true)
                let grads = try exec.backward(pass, seeds: [p: backend.tensor(seed, shape: g[p].shape)], targets: [x, conv2], rule: rule)
                results.append([try backend.read(grads[x]!), try backend.read(grads[conv2]!)])
            }
            XCTAssertLessThan(relativeError(results[1][0], results[0][0]), 1e-5, "\(rule) d/dx")
            XCTAssertLessThan(relativeError(results[1][1], results[0][1]), 1e-5, "\(rule) d/dconv2")
        }
    }

    /// x -> ReLU -> linear: the three rules give, at the input, g * [x > 0], g * [x > 0] * [g > 0]
    /// and g * [g > 0] with g = W^T seed — their definitions, computed here by hand.
    func testReluRulesFollowTheirDefinitions() throws {
        var rng = SeededGenerator(seed: UInt64.random(in: 0...1000))
        let g = Graph()
        let x = try g.input("x", shape: [1, 16])
        let r = try g.relu(x, name: "relu")
        let y = try g.linear(r, 4, bias: false, name: "fc", rng: &rng)
        g.markOutput(y)
        let be = ReferenceBackend()
        let exec = try Executor(g, on: be)
        let input = random(16, &rng), seed = random(4, &rng)
        let w = g.parameterValues[g.value(named: "fc.weight")!]!
        let upstream = (0..<16).map { i in (0..<4).reduce(Float(0)) { $0 + w[$1 * 16 + i] * seed[$1] } }
        let pass = try exec.forward([x: be.tensor(input, shape: [1, 16])], forBackward: true)
        for rule in ReLUBackwardRule.allCases {
            let dx = try be.read(exec.backward(pass, seeds: [y: be.tensor(seed, shape: [1, 4])], targets: [x], rule: rule)[x]!)
            let expected = zip(input, upstream).map { z, u -> Float in
                switch rule {
                case .standard: return z > 0 ? u : 0
                case .guided: return z > 0 && u > 0 ? u : 0
                case .deconvnet: return u > 0 ? u : 0
                }
            }
            XCTAssertLessThan(relativeError(dx, expected), 1e-6, "\(rule)")
        }
    }

    /// An optimization loop (forward, backward to the input, total variation, Adam) runs 100
    /// iterations with no host read; the one read at the end is the only one.
    func testIterationsStayOnTheDevice() throws {
        let (g, x, p) = try smallNet(seed: 3)
        let be = try openCL()
        let exec = try Executor(g, on: be)
        var rng = SeededGenerator(seed: 1)
        let image = try be.tensor(random(g[x].shape.count, &rng), shape: g[x].shape)
        let seed = try be.tensor(random(g[p].shape.count, &rng), shape: g[p].shape)
        let m = try be.full(g[x].shape, value: 0), v = try be.full(g[x].shape, value: 0)
        let adam = Adam(learningRate: 0.01)
        let before = be.hostReads
        for step in 1...100 {
            let pass = try exec.forward([x: image], forBackward: true)
            let dx = try exec.backward(pass, seeds: [p: seed], targets: [x])[x]!
            let tv = try be.totalVariationBackward(be.full([g[x].shape[0]], value: 0.01), input: image, TotalVariation(beta: 2))
            try be.step(adam, step: step, parameter: image, gradient: be.add(dx, tv), firstMoment: m, secondMoment: v)
        }
        XCTAssertEqual(be.hostReads, before, "the loop read device memory uninvited")
        _ = try be.read(image)
        XCTAssertEqual(be.hostReads, before + 1)
    }

    func testInconsistentShapesNameTheNodeOpAndShapes() throws {
        var rng = SeededGenerator(seed: 0)
        let g = Graph()
        let x = try g.input("x", shape: [1, 3, 8, 8])
        let w = try g.parameter("w", shape: [4, 5, 3, 3], values: Array(repeating: 0, count: 180))
        XCTAssertThrowsError(try g.apply(.conv2d(Conv2D(window: Window2D(kernel: 3))), [x, w], name: "bad_conv")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("bad_conv") && text.contains("Conv2D") && text.contains("[1x3x8x8]") && text.contains("[4x5x3x3]"), text)
        }
        let flat = try g.apply(.flatten, [x], name: "flat")
        XCTAssertThrowsError(try g.linear(x, 10, name: "fc_on_image", rng: &rng)) { XCTAssertTrue("\($0)".contains("fc_on_image"), "\($0)") }
        XCTAssertNoThrow(try g.linear(flat, 10, name: "fc", rng: &rng))
        XCTAssertThrowsError(try g.apply(.add, [x, flat], name: "bad_add")) { XCTAssertTrue("\($0)".contains("bad_add"), "\($0)") }
        XCTAssertThrowsError(try g.input("x", shape: [1])) { XCTAssertTrue("\($0)".contains("used twice"), "\($0)") }
        let exec = try Executor(g, on: ReferenceBackend())
        XCTAssertThrowsError(try exec.forward([:])) { XCTAssertTrue("\($0)".contains("no tensor fed for input 'x'"), "\($0)") }
    }

    /// A batch that does not fit the device's memory budget is split and still gives the same
    /// outputs and input gradients as the unsplit run.
    func testBatchesThatDoNotFitAreSplit() throws {
        let (small, _, _) = try smallNet(seed: 9)
        let g = try small.withBatch(8)
        let x = g.inputs[0], p = g.outputs[0], conv2 = g.value(named: "conv2")!
        XCTAssertEqual(g[x].shape, [8, 3, 12, 10])
        XCTAssertEqual(g[p].shape, [8, 5])
        var rng = SeededGenerator(seed: UInt64.random(in: 0...1000))
        let input = try HostTensor(shape: g[x].shape, values: random(g[x].shape.count, &rng))
        let cot = try HostTensor(shape: g[conv2].shape, values: random(g[conv2].shape.count, &rng))
        let be = try openCL()
        let exec = try Executor(g, on: be)
        let whole = try exec.infer([x: input])[p]!
        let wholeGrad = try exec.inputGradient([x: input], at: conv2, cotangent: cot, target: x)
        be.releaseCachedBuffers()
        be.memoryBudgetBytes = be.memoryInUseBytes + 4 * 8 * 6 * 12 * 10   // about two images' worth of activations
        let split = try exec.infer([x: input])[p]!
        let splitGrad = try exec.inputGradient([x: input], at: conv2, cotangent: cot, target: x)
        XCTAssertGreaterThan(exec.splitCount, 0, "the budget did not force a split")
        XCTAssertEqual(split.shape, whole.shape)
        XCTAssertLessThan(relativeError(split.values, whole.values), 1e-6)
        XCTAssertLessThan(relativeError(splitGrad.values, wholeGrad.values), 1e-6)
        be.memoryBudgetBytes = be.memoryInUseBytes + 16
        XCTAssertThrowsError(try exec.infer([x: input])) { XCTAssertTrue(isOutOfDeviceMemory($0), "\($0)") }
    }
}
