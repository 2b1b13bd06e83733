import CLBackend
import Foundation
import Graph
import XCTest

/// Every zoo model, forward and backward to the input, on the OpenCL device against the reference.
final class ZooConformanceTests: XCTestCase {
    /// Deep stacks of float32 kernels against the Float64-accumulated reference: each layer adds
    /// ~1e-7 relative error; 1e-4 over the logits and the input gradient covers 100+ layers with
    /// margin and still fails any wrong layer (errors of order 1).
    static let bound = 1e-4

    /// Forward on both backends; then backward to the input on both from the same forward pass
    /// (the OpenCL pass copied to the reference), so the comparison checks the backward kernels
    /// rather than ReLU / max-pool decisions that float32 rounding can flip near a threshold (one
    /// such flip in a late layer moves the gradient over that unit's whole receptive field).
    func check(_ model: ZooModel) throws {
        guard let entry = try enumerateDevices().first else { throw XCTSkip("no OpenCL device on this machine") }
        let cl = try OpenCLBackend(device: entry), reference = ReferenceBackend()
        let graph = try model.build(batch: 1, seed: UInt64.random(in: 0...1_000_000))
        let x = graph.inputs[0], logits = graph.outputs[0]
        let input = (0..<graph[x].shape.count).map { _ in Float.random(in: -1...1) }
        let cot = (0..<graph[logits].shape.count).map { _ in Float.random(in: -1...1) }
        let start = Date()
        let clExec = try Executor(graph, on: cl), refExec = try Executor(graph, on: reference)
        let clPass = try clExec.forward([x: cl.tensor(input, shape: graph[x].shape)], forBackward: true)
        let refForward = try reference.read(refExec.forward([x: reference.tensor(input, shape: graph[x].shape)])[logits]!)
        let clGrad = try cl.read(clExec.backward(clPass, seeds: [logits: cl.tensor(cot, shape: graph[logits].shape)], targets: [x])[x]!)
        let refPass = try clPass.copied(from: cl, to: reference)
        let refGrad = try reference.read(refExec.backward(refPass, seeds: [logits: reference.tensor(cot, shape: graph[logits].shape)], targets: [x])[x]!)
        let fwd = relativeError(try cl.read(clPass[logits]!), refForward)
        let bwd = relativeError(clGrad, refGrad)
        print(String(format: "zoo %@ %@: forward %.2e, backward to input %.2e (%.1f s)", model.rawValue, "\(graph[x].shape)", fwd, bwd, Date().timeIntervalSince(start)))
        XCTAssertLessThan(fwd, Self.bound, "\(model.rawValue) forward")
        XCTAssertLessThan(bwd, Self.bound, "\(model.rawValue) backward to the input")
    }

    func testLeNet5() throws { try check(.lenet5) }
    func testGAPNet() throws { try check(.gapnet) }
    func testFashionCNN() throws { try check(.fashioncnn) }
    func testAlexNet() throws { try check(.alexnet) }
    func testZFNet() throws { try check(.zfnet) }
    func testNiN() throws { try check(.nin) }
    func testGoogLeNet() throws { try check(.googlenet) }
    func testResNet18() throws { try check(.resnet18) }
    func testResNet50() throws { try check(.resnet50) }
    func testDenseNet121() throws { try check(.densenet121) }
    func testVGG16() throws { try check(.vgg16) }
    func testVGG19() throws { try check(.vgg19) }
}
