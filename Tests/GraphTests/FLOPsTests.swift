import CLBackend
import Graph
import XCTest

/// Forward FLOPs (2 per multiply-add) against hand counts and the published figures.
final class FLOPsTests: XCTestCase {
    /// Batch 2, 3->8 conv 3x3 (pad 1) on 10x10: 2 * (2*8*10*10 outputs) * (3*3*3) = 86,400.
    /// Transposed conv 8->4, 2x2 stride 2: 2 * (2*8*10*10 inputs) * (4*2*2) = 51,200.
    /// Linear to 5 on the flattened 4x20x20 = 1600 features: 2 * (2*5 outputs) * 1600 = 32,000.
    /// The ReLU, the pool and the flatten count 0.
    func testHandCounts() throws {
        let g = Graph()
        var rng = SeededGenerator(seed: 4)
        let x = try g.input("x", shape: [2, 3, 10, 10])
        let c = try g.relu(try g.conv(x, 8, kernel: 3, padding: 1, name: "c", rng: &rng), name: "r")
        let w = try g.parameter("t.weight", shape: [8, 4, 2, 2], values: Array(repeating: 0, count: 128))
        let t = try g.apply(.convTranspose2d(ConvTranspose2D(window: Window2D(kernel: 2, stride: 2))), [c, w], name: "t")
        let p = try g.maxPool(t, kernel: 1, stride: 1, name: "p")
        try g.linear(try g.apply(.flatten, [p], name: "flat"), 5, name: "fc", rng: &rng)
        XCTAssertEqual(g.nodes.indices.map { g.forwardFLOPs(ofNode: $0) }, [86_400, 0, 51_200, 0, 0, 32_000])
        XCTAssertEqual(g.forwardFLOPs, 169_600)
    }

    /// Published at 224x224, batch 1: VGG16 30.9 G, ResNet-50 8.2 G; within 2%, the rounding of the
    /// published figures plus the ops left out.
    func testVGG16AndResNet50() throws {
        XCTAssertEqual(Double(try ZooModel.vgg16.build(randomize: false).forwardFLOPs), 30.9e9, accuracy: 0.02 * 30.9e9)
        XCTAssertEqual(Double(try ZooModel.resnet50.build(randomize: false).forwardFLOPs), 8.2e9, accuracy: 0.02 * 8.2e9)
    }
}
