import CLBackend
import Graph
import XCTest

/// Receptive fields against hand computation and the published figures for VGG16 and AlexNet.
final class ReceptiveFieldTests: XCTestCase {
    private typealias Axis = ReceptiveField.Axis

    /// A 16x16 input through conv 3x3 (pad 1), conv 3x3 stride 2 (pad 1), conv 3x3 dilation 2
    /// (pad 2), max pool 2x2/2, transposed conv 4x4 stride 2 (pad 1). By hand, (size, jump, start):
    /// (3, 1, 0.5); (3 + 2*1, 2, 0.5 + (1-1)*1) = (5, 2, 0.5); (5 + 4*2, 2, 0.5 + (2-2)*2) = (13, 2, 0.5);
    /// (13 + 1*2, 4, 0.5 + (0.5-0)*2) = (15, 4, 1.5); transposed: jump 4/2 = 2, size 15 + 3*2 = 21,
    /// start 1.5 + (1 - 1.5)*2 = 0.5. Every value is a multiple of 1/2, exact in Double.
    func testHandComputedStack() throws {
        let g = Graph()
        var rng = SeededGenerator(seed: 1)
        let x = try g.input("x", shape: [1, 2, 16, 16])
        let a = try g.conv(x, 4, kernel: 3, padding: 1, name: "a", rng: &rng)
        let r = try g.relu(a, name: "r")
        let b = try g.conv(r, 4, kernel: 3, stride: 2, padding: 1, name: "b", rng: &rng)
        let c = try g.conv(b, 4, kernel: 3, padding: 2, dilation: 2, name: "c", rng: &rng)
        let p = try g.maxPool(c, kernel: 2, stride: 2, name: "p")
        let w = try g.parameter("t.weight", shape: [4, 3, 4, 4], values: Array(repeating: 0, count: 192))
        let t = try g.apply(.convTranspose2d(ConvTranspose2D(window: Window2D(kernel: 4, stride: 2, padding: 1))), [p, w], name: "t")
        XCTAssertEqual(g[t].shape, [1, 3, 8, 8])
        let fields = receptiveFields(of: g)
        XCTAssertNil(fields[w], "parameters have no field")
        let expected: [(ValueID, Axis)] = [
            (x, Axis(size: 1, jump: 1, start: 0.5)), (a, Axis(size: 3, jump: 1, start: 0.5)), (r, Axis(size: 3, jump: 1, start: 0.5)),
            (b, Axis(size: 5, jump: 2, start: 0.5)), (c, Axis(size: 13, jump: 2, start: 0.5)), (p, Axis(size: 15, jump: 4, start: 1.5)),
            (t, Axis(size: 21, jump: 2, start: 0.5)),
        ]
        for (v, axis) in expected {
            XCTAssertEqual(fields[v]?.height, axis, g[v].name)
            XCTAssertEqual(fields[v]?.width, axis, g[v].name)
        }
        XCTAssertEqual(fields[g.value(named: "p:1")!], fields[p], "switches share the pooled field")
    }

    /// Height and width apart: a 5x1 conv (pad 2, 0) with stride (1, 2), then a global average pool
    /// over the 12x6 map: height 5 + 11*1 = 16 centred at 0.5 + 5.5 = 6; width 1 + 5*2 = 11, jump 2,
    /// centred at 0.5 + 2.5*2 = 5.5. A linear layer on the flattened map covers the same.
    func testAxesSeparatelyAndGlobalOps() throws {
        let g = Graph()
        var rng = SeededGenerator(seed: 2)
        let x = try g.input("x", shape: [1, 1, 12, 12])
        let a = try g.conv(x, 2, kernel: (5, 1), stride: (1, 2), padding: (2, 0), name: "a", rng: &rng)
        let gap = try g.apply(.globalAvgPool, [a], name: "gap")
        let fc = try g.linear(try g.apply(.flatten, [a], name: "flat"), 3, name: "fc", rng: &rng)
        let fields = receptiveFields(of: g)
        XCTAssertEqual(fields[a]?.height, Axis(size: 5, jump: 1, start: 0.5))
        XCTAssertEqual(fields[a]?.width, Axis(size: 1, jump: 2, start: 0.5))
        XCTAssertEqual(fields[g.value(named: "flat")!], fields[a], "flatten is pointwise")
        for v in [gap, fc] {
            XCTAssertEqual(fields[v]?.height.size, 16)
            XCTAssertEqual(fields[v]?.height.start, 6)
            XCTAssertEqual(fields[v]?.width.size, 11)
            XCTAssertEqual(fields[v]?.width.start, 5.5)
        }
    }

    /// Padding 2 on top and 1 on the left moves the starts to 0.5 - 2 = -1.5 and 0.5 - 1 = -0.5; a
    /// nearest resize doubling the 6x5 map halves the jump and keeps size and start.
    func testPaddingAndNearestResize() throws {
        let g = Graph()
        let x = try g.input("x", shape: [1, 1, 4, 4])
        let p = try g.apply(.pad(ConstantPad2D(top: 2, left: 1, bottom: 0, right: 0)), [x], name: "p")
        let r = try g.apply(.resizeNearest(NearestResize(height: 12, width: 10)), [p], name: "r")
        let fields = receptiveFields(of: g)
        XCTAssertEqual(fields[p], ReceptiveField(height: Axis(size: 1, jump: 1, start: -1.5), width: Axis(size: 1, jump: 1, start: -0.5)))
        XCTAssertEqual(fields[r], ReceptiveField(height: Axis(size: 1, jump: 0.5, start: -1.5), width: Axis(size: 1, jump: 0.5, start: -0.5)))
    }

    /// A sum of a 3x3 branch and a 1x1 branch, and a concat of a 5x5 and a 3x3 branch, take the
    /// larger field: 3 and 5.
    func testMergesTakeTheLargestField() throws {
        let g = Graph()
        var rng = SeededGenerator(seed: 3)
        let x = try g.input("x", shape: [1, 2, 8, 8])
        let k3 = try g.conv(x, 2, kernel: 3, padding: 1, name: "k3", rng: &rng)
        let k1 = try g.conv(x, 2, kernel: 1, name: "k1", rng: &rng)
        let k5 = try g.conv(x, 2, kernel: 5, padding: 2, name: "k5", rng: &rng)
        let sum = try g.apply(.add, [k1, k3], name: "sum")
        let cat = try g.apply(.concat, [k3, k5], name: "cat")
        let fields = receptiveFields(of: g)
        XCTAssertEqual(fields[sum], ReceptiveField(height: Axis(size: 3, jump: 1, start: 0.5), width: Axis(size: 3, jump: 1, start: 0.5)))
        XCTAssertEqual(fields[cat]?.height.size, 5)
    }

    /// Published: VGG16 conv5_3 196, pool5 212; torchvision AlexNet conv5 163, pool5 195. VGG's
    /// "same" convs keep the start and each 2x2 pool adds half its input jump: 0.5 + 0.5 + 1 + 2 + 4 = 8
    /// at conv5_3, 16 at pool5.
    func testVGG16AndAlexNet() throws {
        let vgg = try ZooModel.vgg16.build(randomize: false)
        let vggFields = receptiveFields(of: vgg)
        XCTAssertEqual(vggFields[vgg.value(named: "conv5_3")!]?.height, Axis(size: 196, jump: 16, start: 8))
        XCTAssertEqual(vggFields[vgg.value(named: "relu5_3")!]?.width.size, 196)
        XCTAssertEqual(vggFields[vgg.value(named: "pool5")!]?.height, Axis(size: 212, jump: 32, start: 16))
        let alexnet = try ZooModel.alexnet.build(randomize: false)
        let alexFields = receptiveFields(of: alexnet)
        XCTAssertEqual(alexFields[alexnet.value(named: "conv5")!]?.height.size, 163)
        XCTAssertEqual(alexFields[alexnet.value(named: "conv5")!]?.height.jump, 16)
        XCTAssertEqual(alexFields[alexnet.value(named: "pool5")!]?.width.size, 195)
        XCTAssertEqual(alexFields[alexnet.value(named: "pool5")!]?.width.jump, 32)
    }
}
