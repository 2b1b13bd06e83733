import CLBackend
import Graph
import XCTest

/// The zoo's architectures against published parameter counts (torchvision's, for the models it
/// has), output shapes, state-dict names and seeded initialization. Count and shape tests build with
/// `randomize: false`, which skips drawing VGG's 138M random weights.
final class ZooTests: XCTestCase {
    /// torchvision's `sum(p.numel() for p in model.parameters())`, which leaves out BatchNorm running
    /// statistics (buffers), hence `trainableParameterCount`. The others are derived in `ZooModel`'s
    /// documentation: e.g. LeNet-5 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706; GAP net
    /// (1*9+1)*32 + (32*9+1)*32 + (32*9+1)*64 + (64*9+1)*128 + (128+1)*10 = 103,210; Fashion CNN
    /// (9+1)*16 + (16*9+1)*32 + (1568+1)*10 = 20,490; clutter net (9+1)*16 + (16*9+1)*32 + (32*9+1)*48
    /// + (48*9+1)*96 + (96+1)*10 = 61,210; concept net (27+1)*16 + (16*9+1)*32 + (32*9+1)*64
    /// + (64*9+1)*64 + (64+1)*24 = 62,072.
    private let expectedCounts: [ZooModel: Int] = [
        .vgg16: 138_357_544, .vgg19: 143_667_240, .alexnet: 61_100_840, .resnet18: 11_689_512,
        .resnet50: 25_557_032, .densenet121: 7_978_856, .googlenet: 6_624_904,
        .lenet5: 61_706, .zfnet: 62_357_608, .nin: 7_595_176, .gapnet: 103_210,
        .fashioncnn: 20_490, .clutternet: 61_210, .conceptnet: 62_072,
    ]

    func testParameterCountsAndOutputShapesAtBatch2() throws {
        for model in ZooModel.allCases {
            let g = try model.build(batch: 2, randomize: false)
            XCTAssertEqual(g.trainableParameterCount, expectedCounts[model], "\(model)")
            XCTAssertEqual(g.inputs.map { g[$0].name }, ["input"], "\(model)")
            XCTAssertEqual(g[g.inputs[0]].shape, [2, model.inputChannels, model.defaultInputSize, model.defaultInputSize], "\(model)")
            XCTAssertEqual(g.outputs.count, 1, "\(model)")
            XCTAssertEqual(g[g.outputs[0]].shape, [2, model.defaultClasses], "\(model)")
            if model.inputChannels == 3 && model != .conceptnet { XCTAssertEqual(model.defaultClasses, 1000, "\(model)") }
        }
    }

    /// Parameter names and shapes as in torchvision's state dicts, so converted weights load by name.
    func testTorchvisionStateDictNamesAndShapes() throws {
        let expected: [ZooModel: [String: Shape]] = [
            .vgg16: ["features.0.weight": [64, 3, 3, 3], "features.28.bias": [512], "classifier.0.weight": [4096, 25088],
                     "classifier.3.weight": [4096, 4096], "classifier.6.bias": [1000]],
            .alexnet: ["features.0.weight": [64, 3, 11, 11], "features.3.weight": [192, 64, 5, 5], "features.10.weight": [256, 256, 3, 3],
                       "classifier.1.weight": [4096, 9216], "classifier.4.bias": [4096], "classifier.6.weight": [1000, 4096]],
            .resnet18: ["conv1.weight": [64, 3, 7, 7], "bn1.running_mean": [64], "layer1.0.conv1.weight": [64, 64, 3, 3],
                        "layer2.0.downsample.0.weight": [128, 64, 1, 1], "layer2.0.downsample.1.running_var": [128],
                        "layer4.1.bn2.weight": [512], "fc.weight": [1000, 512]],
            .resnet50: ["layer1.0.downsample.0.weight": [256, 64, 1, 1], "layer2.0.conv2.weight": [128, 128, 3, 3],
                        "layer4.2.conv3.weight": [2048, 512, 1, 1], "layer4.2.bn3.bias": [2048], "fc.weight": [1000, 2048]],
            .densenet121: ["features.conv0.weight": [64, 3, 7, 7], "features.norm0.bias": [64],
                           "features.denseblock1.denselayer1.norm1.weight": [64], "features.denseblock1.denselayer1.conv1.weight": [128, 64, 1, 1],
                           "features.denseblock1.denselayer6.conv2.weight": [32, 128, 3, 3], "features.transition1.conv.weight": [128, 256, 1, 1],
                           "features.denseblock4.denselayer16.norm1.running_var": [992], "features.norm5.running_mean": [1024],
                           "classifier.weight": [1000, 1024]],
            .googlenet: ["conv1.conv.weight": [64, 3, 7, 7], "conv1.bn.weight": [64], "conv3.bn.running_var": [192],
                         "inception3a.branch1.conv.weight": [64, 192, 1, 1], "inception3a.branch3.1.conv.weight": [32, 16, 3, 3],
                         "inception3a.branch4.1.bn.bias": [32], "inception5b.branch2.1.conv.weight": [384, 192, 3, 3], "fc.weight": [1000, 1024]],
        ]
        for (model, parameters) in expected {
            let g = try model.build(randomize: false)
            for (name, shape) in parameters {
                guard let v = g.value(named: name) else { XCTFail("\(model): no parameter '\(name)'"); continue }
                XCTAssertEqual(g[v].kind, .parameter, "\(model) \(name)")
                XCTAssertEqual(g[v].shape, shape, "\(model) \(name)")
            }
        }
        // Whole state dicts without num_batches_tracked: ResNet-18 has 20 convs, 20 BatchNorms (4
        // entries each) and fc: 20 + 80 + 2 = 102. DenseNet-121 has 120 convs, 121 BatchNorms and
        // the classifier: 120 + 484 + 2 = 606.
        XCTAssertEqual(try ZooModel.resnet18.build(randomize: false).parameters.count, 102)
        XCTAssertEqual(try ZooModel.densenet121.build(randomize: false).parameters.count, 606)
    }

    func testLayerNamesAndBatchNormEpsilons() throws {
        func producer(_ g: Graph, _ name: String) -> Node? { g.value(named: name).flatMap { g.producer[$0] }.map { g.nodes[$0] } }
        let vgg = try ZooModel.vgg16.build(randomize: false)
        for name in ["conv1_1", "conv5_3"] { guard case .conv2d = producer(vgg, name)?.op else { return XCTFail("VGG16 \(name)") } }
        for name in ["pool1", "pool5"] { guard case .maxPool2d = producer(vgg, name)?.op else { return XCTFail("VGG16 \(name)") } }
        XCTAssertEqual(vgg[vgg.value(named: "pool5")!].shape, [1, 512, 7, 7])
        XCTAssertNil(vgg.value(named: "avgpool"), "the adaptive pool is the identity at 224")
        XCTAssertEqual(vgg[vgg.outputs[0]].name, "fc8")

        let googlenet = try ZooModel.googlenet.build(randomize: false)
        XCTAssertEqual(producer(googlenet, "conv1.bn")?.op, .batchNorm(epsilon: 1e-3))
        XCTAssertEqual(producer(googlenet, "inception4e.branch2.1.bn")?.op, .batchNorm(epsilon: 1e-3))
        XCTAssertEqual(producer(googlenet, "inception3a")?.op, .concat)
        XCTAssertEqual(googlenet[googlenet.value(named: "inception5b")!].shape, [1, 1024, 7, 7])
        let resnet = try ZooModel.resnet50.build(randomize: false)
        XCTAssertEqual(producer(resnet, "bn1")?.op, .batchNorm(epsilon: 1e-5))
        XCTAssertEqual(producer(resnet, "layer4.2")?.op, .activation(.relu))
        XCTAssertEqual(resnet[resnet.value(named: "layer4.2")!].shape, [1, 2048, 7, 7])
        let densenet = try ZooModel.densenet121.build(randomize: false)
        XCTAssertEqual(producer(densenet, "features.denseblock2.denselayer1.norm2")?.op, .batchNorm(epsilon: 1e-5))
        XCTAssertEqual(densenet[densenet.value(named: "features.norm5")!].shape, [1, 1024, 7, 7])
        let zfnet = try ZooModel.zfnet.build(randomize: false)
        XCTAssertEqual(zfnet[zfnet.value(named: "conv1")!].shape, [1, 96, 110, 110])
        XCTAssertEqual(zfnet[zfnet.value(named: "norm1")!].shape, [1, 96, 55, 55])
        XCTAssertEqual(zfnet[zfnet.value(named: "norm2")!].shape, [1, 256, 13, 13])
        XCTAssertEqual(zfnet[zfnet.value(named: "pool5")!].shape, [1, 256, 6, 6])
        let gapnet = try ZooModel.gapnet.build(randomize: false)
        XCTAssertEqual(gapnet[gapnet.value(named: "relu4")!].shape, [1, 128, 14, 14])
        XCTAssertEqual(producer(gapnet, "gap")?.op, .globalAvgPool)
        let clutternet = try ZooModel.clutternet.build(randomize: false)
        XCTAssertEqual(clutternet[clutternet.value(named: "relu4")!].shape, [1, 96, 11, 11])
    }

    func testOtherInputSizesAndClassCounts() throws {
        let lenet = try ZooModel.lenet5.build(inputSize: 28, randomize: false)
        XCTAssertEqual(lenet[lenet.value(named: "c1")!].shape, [1, 6, 28, 28], "C1 pads 28x28 by 2")
        XCTAssertEqual(lenet[lenet.value(named: "c5")!].shape, [1, 120, 1, 1])
        XCTAssertEqual(lenet.trainableParameterCount, 61_706)
        let resnet = try ZooModel.resnet18.build(batch: 3, inputSize: 64, classes: 10, randomize: false)
        XCTAssertEqual(resnet[resnet.outputs[0]].shape, [3, 10])
        let nin = try ZooModel.nin.build(classes: 10, randomize: false)
        XCTAssertEqual(nin[nin.outputs[0]].shape, [1, 10])
        XCTAssertEqual(nin[nin.value(named: "cccp8_relu")!].shape, [1, 10, 6, 6])
        // VGG's pool5 at 100x100 is 3x3, which an adaptive pool to 7x7 does not split evenly.
        XCTAssertThrowsError(try ZooModel.vgg16.build(inputSize: 100, randomize: false))
        XCTAssertThrowsError(try ZooModel.gapnet.build(batch: 0))
    }

    func testSeededInitialization() throws {
        let a = try ZooModel.lenet5.build(seed: 7), b = try ZooModel.lenet5.build(seed: 7), c = try ZooModel.lenet5.build(seed: 8)
        func values(_ g: Graph, _ name: String) -> [Float] { g.parameterValues[g.value(named: name)!]! }
        for name in ["c1.weight", "c5.weight", "output.weight"] {
            XCTAssertEqual(values(a, name), values(b, name), name)
            XCTAssertNotEqual(values(a, name), values(c, name), name)
        }
        XCTAssertTrue(values(a, "f6.bias").allSatisfy { $0 == 0 })
        // He before a ReLU: std sqrt(2 / fanIn), fanIn 16*5*5 for C5. 48,000 samples put the sample
        // std within about 0.3% of it; 3% is ten standard errors.
        let c5 = values(a, "c5.weight").map(Double.init)
        let std = (c5.reduce(0) { $0 + $1 * $1 } / Double(c5.count)).squareRoot()
        XCTAssertEqual(std, (2.0 / 400).squareRoot(), accuracy: 0.03 * (2.0 / 400).squareRoot())
        // Glorot on the classifier: uniform within sqrt(6 / (84 + 10)).
        let bound = Float((6.0 / 94).squareRoot())
        let output = values(a, "output.weight")
        XCTAssertTrue(output.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(output.map(abs).max()!, 0.9 * bound)
        let zero = try ZooModel.resnet18.build(randomize: false)
        XCTAssertTrue(zero.parameterValues[zero.value(named: "layer1.0.conv1.weight")!]!.allSatisfy { $0 == 0 })
        XCTAssertTrue(zero.parameterValues[zero.value(named: "bn1.running_var")!]!.allSatisfy { $0 == 1 })
    }

    /// The graphs run: small or shrunk models forward on the reference backend give finite logits of
    /// the right shape (ceil-mode pools, LRN, concatenations and residual sums included). The larger
    /// ones run with zero weights (`randomize: false`): a debug build draws about 2M He weights a
    /// second, and what is checked here is that every op executes at these shapes.
    func testSmallModelsRunOnTheReferenceBackend() throws {
        let runs: [(ZooModel, inputSize: Int?, randomize: Bool)] = [
            (.lenet5, nil, true), (.lenet5, 28, true), (.gapnet, nil, true), (.fashioncnn, nil, true), (.clutternet, nil, true), (.conceptnet, nil, true), (.zfnet, 64, false), (.nin, 64, false),
            (.resnet18, 32, false), (.resnet50, 32, false), (.googlenet, 32, false), (.densenet121, 32, false),
        ]
        var rng = SeededGenerator(seed: 11)
        for (model, size, randomize) in runs {
            let g = try model.build(batch: 2, inputSize: size, classes: 7, seed: 3, randomize: randomize)
            let input = g[g.inputs[0]].shape
            let image = try HostTensor(shape: input, values: (0..<input.count).map { _ in Float.random(in: 0...1, using: &rng) })
            let logits = try Executor(g, on: ReferenceBackend()).infer([g.inputs[0]: image])[g.outputs[0]]!
            XCTAssertEqual(logits.shape, [2, 7], "\(model)")
            XCTAssertTrue(logits.values.allSatisfy(\.isFinite), "\(model)")
            if randomize { XCTAssertNotEqual(logits.values.min(), logits.values.max(), "\(model)") }
        }
    }
}
