import CLBackend
import Foundation
import Graph
import XCTest

/// The executor's fusions (conv + bias + ReLU forward; ReLU backward inside the next conv's
/// backward-data) give the unfused results and are the paths actually run.
final class ExecutorFusionTests: XCTestCase {
    /// gapnet: conv1 relu1 conv2 relu2 pool1 conv3 relu3 conv4 relu4 gap fc. Every conv is read only
    /// by its ReLU (4 fused forwards); relu1 and relu3 are read only by a conv (2 fused backwards),
    /// relu2 (read by the pool) and relu4 (read by the GAP) keep their own backward.
    func testGAPNetFusedEqualsUnfusedAndTheReference() throws {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        let cl = try OpenCLBackend(device: entry), reference = ReferenceBackend()
        let graph = try ZooModel.gapnet.build(batch: 2, seed: 3)
        let x = graph.inputs[0], logits = graph.outputs[0]
        let input = (0..<graph[x].shape.count).map { _ in Float.random(in: 0...1) }
        let cot = (0..<graph[logits].shape.count).map { _ in Float.random(in: -1...1) }
        let targets = Set([x] + graph.parameters)

        func run(_ be: Backend, fuses: Bool, rule: ReLUBackwardRule)
            throws -> (exec: Executor, logits: [Float], grads: [ValueID: [Float]], launches: [String: Int]) {
            let exec = try Executor(graph, on: be, fuses: fuses)
            let before = (be as? OpenCLBackend)?.launchCounts ?? [:]
            let pass = try exec.forward([x: be.tensor(input, shape: graph[x].shape)], forBackward: true)
            let grads = try exec.backward(pass, seeds: [logits: be.tensor(cot, shape: graph[logits].shape)], targets: targets, rule: rule)
            let after = (be as? OpenCLBackend)?.launchCounts ?? [:]
            let launches = after.merging(before) { $0 - $1 }
            return (exec, try be.read(pass[logits]!), try grads.mapValues { try be.read($0) }, launches)
        }

        for rule in [ReLUBackwardRule.standard, .guided] {
            let fused = try run(cl, fuses: true, rule: rule), plain = try run(cl, fuses: false, rule: rule)
            XCTAssertEqual(fused.exec.fusedForwardCount, 4)
            XCTAssertEqual(fused.exec.fusedBackwardCount, 2)
            XCTAssertEqual(plain.exec.fusedForwardCount + plain.exec.fusedBackwardCount, 0)
            // The fused forward runs no ReLU kernel, the fused backward two ReLU backwards instead of four.
            XCTAssertEqual(fused.launches["activation_fwd"] ?? 0, 0, "\(fused.launches)")
            XCTAssertEqual(plain.launches["activation_fwd"] ?? 0, 4)
            XCTAssertEqual(fused.launches["activation_bwd"] ?? 0, 2)
            XCTAssertEqual(plain.launches["activation_bwd"] ?? 0, 4)
            // Same variants, same sums: fusion moves the ReLU into the epilogue and changes no value.
            XCTAssertEqual(fused.logits, plain.logits, "\(rule) logits")
            XCTAssertEqual(Set(fused.grads.keys), targets)
            for v in targets { XCTAssertEqual(fused.grads[v], plain.grads[v], "\(rule) gradient of \(graph[v].name)") }

            // Against the reference (fused there too): within float32 rounding of a few layers.
            guard rule == .standard else { continue }
            let ref = try run(reference, fuses: true, rule: rule)
            XCTAssertEqual(ref.exec.fusedBackwardCount, 2)
            XCTAssertLessThan(relativeError(fused.logits, ref.logits), 1e-4, "\(rule) logits vs reference")
            for v in [x] + graph.parameters {
                XCTAssertLessThan(relativeError(fused.grads[v]!, ref.grads[v]!), 1e-4, "\(rule) gradient of \(graph[v].name) vs reference")
            }
        }
    }

    /// A pass that keeps a conv's output (an explanation's layer, a stop value) does not fuse that
    /// conv, so the value is there; backward through it still matches.
    func testRetainedConvOutputIsNotFused() throws {
        let be = ReferenceBackend()
        let graph = try ZooModel.fashioncnn.build(batch: 1, seed: 5)
        let x = graph.inputs[0], conv2 = graph.value(named: "conv2")!
        let exec = try Executor(graph, on: be)
        let input = try be.tensor((0..<784).map { _ in Float.random(in: 0...1) }, shape: graph[x].shape)
        let pass = try exec.forward([x: input], forBackward: true, retaining: [conv2])
        XCTAssertNotNil(pass[conv2])
        XCTAssertEqual(exec.fusedForwardCount, 1, "conv1 + relu1 fused, conv2 kept")
        let stop = try exec.forward([x: input], until: conv2)
        XCTAssertEqual(exec.fusedForwardCount, 2, "conv1 + relu1 fused again, conv2 is the stop value")
        XCTAssertEqual(try be.read(stop[conv2]!), try be.read(pass[conv2]!))
    }

    /// One conv -> batch norm (no ReLU, so no threshold can flip): the folded convolution's output
    /// and image gradient equal the separate ops' within float32 rounding.
    func testFoldedConvBatchNormEqualsTheSeparateOps() throws {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        let be = try OpenCLBackend(device: entry)
        let g = Graph()
        let x = try g.input("x", shape: [2, 5, 9, 8])
        let w = try g.parameter("w", shape: [7, 5, 3, 3], values: (0..<315).map { _ in Float.random(in: -0.5...0.5) })
        let b = try g.parameter("b", shape: [7], values: (0..<7).map { _ in Float.random(in: -0.5...0.5) })
        let c = try g.apply(.conv2d(Conv2D(window: Window2D(kernel: 3, stride: 2, padding: 1))), [x, w, b], name: "conv")
        let y = try g.batchNorm(c, epsilon: 1e-3, name: "bn")
        for (suffix, range) in [("weight", Float(0.5)...1.5), ("bias", -0.3...0.3), ("running_mean", -0.3...0.3), ("running_var", 0.5...1.5)] as [(String, ClosedRange<Float>)] {
            g.parameterValues[g.value(named: "bn.\(suffix)")!] = (0..<7).map { _ in Float.random(in: range) }
        }
        g.markOutput(y)
        let input = try be.tensor((0..<g[x].shape.count).map { _ in Float.random(in: -1...1) }, shape: g[x].shape)
        let seed = try be.tensor((0..<g[y].shape.count).map { _ in Float.random(in: -1...1) }, shape: g[y].shape)
        let plain = try Executor(g, on: be), folded = try Executor(g, on: be, parameters: plain.parameters, foldsBatchNorm: true)
        let p = try plain.forward([x: input], forBackward: true), f = try folded.forward([x: input], forBackward: true)
        XCTAssertEqual(folded.foldedBatchNormCount, 1)
        XCTAssertLessThan(relativeError(try be.read(f[y]!), try be.read(p[y]!)), 1e-5)
        let gp = try plain.backward(p, seeds: [y: seed], targets: [x])[x]!, gf = try folded.backward(f, seeds: [y: seed], targets: [x])[x]!
        XCTAssertLessThan(relativeError(try be.read(gf), try be.read(gp)), 1e-5)
    }

    /// ResNet-18 with non-trivial batch-norm statistics: every conv -> batch norm pair (20: the stem,
    /// two per block, three downsamples) folds into one convolution, the 9 followed by a ReLU into
    /// one conv + bias + ReLU; logits and the gradient to the image (standard and guided rules)
    /// match the unfolded executor, no batch-norm backward runs, and asking for a folded layer's
    /// weight gradient is refused by name.
    func testFoldedBatchNormsMatchTheUnfoldedGraph() throws {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        let be = try OpenCLBackend(device: entry)
        let graph = try ZooModel.resnet18.build(batch: 2, inputSize: 64, seed: 3, randomize: true)
        for node in graph.nodes {
            guard case .batchNorm = node.op else { continue }
            let c = graph[node.inputs[1]].shape[0]
            for (slot, range) in [(1, Float(0.5)...1.5), (2, -0.2...0.2), (3, -0.2...0.2), (4, 0.5...1.5)] as [(Int, ClosedRange<Float>)] {
                graph.parameterValues[node.inputs[slot]] = (0..<c).map { _ in Float.random(in: range) }
            }
        }
        let x = graph.inputs[0], logits = graph.outputs[0]
        let input = try be.tensor((0..<graph[x].shape.count).map { _ in Float.random(in: 0...1) }, shape: graph[x].shape)
        let seed = try be.tensor((0..<graph[logits].shape.count).map { _ in Float.random(in: -1...1) }, shape: graph[logits].shape)
        let plain = try Executor(graph, on: be)
        let folded = try Executor(graph, on: be, parameters: plain.parameters, foldsBatchNorm: true)
        for rule in [ReLUBackwardRule.standard, .guided] {
            let p = try plain.forward([x: input], forBackward: true), f = try folded.forward([x: input], forBackward: true)
            XCTAssertLessThan(relativeError(try be.read(f[logits]!), try be.read(p[logits]!)), 1e-5, "logits")
            let before = be.launchCounts
            let gf = try folded.backward(f, seeds: [logits: seed], targets: [x], rule: rule)[x]!
            let launched = be.launchCounts.merging(before) { $0 - $1 }
            let gp = try plain.backward(p, seeds: [logits: seed], targets: [x], rule: rule)[x]!
            // The folded forward rounds differently, so a ReLU input or a max-pool tie within rounding of
            // its threshold can go the other way and change that unit's gradient (one such flip gave
            // 6e-3): a loose bound here, the tight one in the single-block test below.
            let error = relativeError(try be.read(gf), try be.read(gp))
            print("folded vs unfolded image gradient (\(rule)): relative error \(error)")
            XCTAssertLessThan(error, 0.05, "\(rule) gradient to the image")
            XCTAssertEqual(launched["batch_norm_bwd_data"] ?? 0, 0, "a folded batch norm ran its backward")
        }
        // Held weights: a write to one is seen through its fold and the fold's packing.
        try be.holdingConstant(Array(plain.parameters.values)) {
            let before = try be.read(folded.forward([x: input])[logits]!)
            XCTAssertEqual(try be.read(folded.forward([x: input])[logits]!), before, "reused folded weights changed the logits")
            let w = graph.value(named: "layer2.0.conv1.weight")!
            try plain.setParameter(w, values: (0..<graph[w].shape.count).map { _ in Float.random(in: -0.1...0.1) })
            let changed = try be.read(folded.forward([x: input])[logits]!), reference = try be.read(plain.forward([x: input])[logits]!)
            XCTAssertNotEqual(changed, before)
            XCTAssertLessThan(relativeError(changed, reference), 1e-5, "a written weight was not seen through its fold")
        }
        XCTAssertEqual(folded.foldedBatchNormCount, 2 * 20 + 3 * 20)
        XCTAssertEqual(folded.fusedForwardCount, 2 * 9 + 3 * 9)
        let f = try folded.forward([x: input], forBackward: true)
        XCTAssertNil(f[graph.value(named: "layer1.0.conv1")!], "the folded conv's own output was made")
        let weight = graph.value(named: "layer1.0.conv1.weight")!
        XCTAssertThrowsError(try folded.backward(f, seeds: [logits: seed], targets: [x, weight])) { error in
            XCTAssertTrue("\(error)".contains("layer1.0.conv1") && "\(error)".contains("foldsBatchNorm: false"), "\(error)")
        }
    }
}
