import CLBackend

/// Classic CNNs as graphs, inference form (dropout is the identity, BatchNorm uses running
/// statistics). Every graph has one input `"input"` `[batch, channels, size, size]` and marks its
/// logits (before softmax) as its output.
///
/// Models torchvision has (AlexNet, VGG16/19, GoogLeNet, ResNet-18/50, DenseNet-121) follow its
/// architecture exactly and name their parameters as its state dicts do, so converted weights load by
/// name; nodes carry the layer names users expect. The others are:
/// - **LeNet-5** (LeCun et al. 1998), 1x32x32, 10 classes: C1 6@5x5, S2 2x2 average pool, C3 16@5x5
///   with full connectivity to S2 (the paper's sparse table is not used), S4, C5 120@5x5 (a conv,
///   1x1 output at 32x32), F6 84, output 10 (a linear layer where the paper has RBF units); ReLU
///   where the paper has scaled tanh, and S2/S4 without the paper's trainable coefficient and bias.
///   A smaller input (28x28 MNIST) is zero-padded in C1 up to 32 (padding 2 for 28).
///   Parameters: C1 6*(1*25)+6 = 156, C3 16*(6*25)+16 = 2,416, C5 120*(16*25)+120 = 48,120,
///   F6 84*120+84 = 10,164, output 10*84+10 = 850; 61,706 in all.
/// - **ZFNet** (Zeiler & Fergus 2014, Fig. 3), 3x224x224: conv1 96@7x7 stride 2 (padding 1 gives the
///   paper's 110x110), ReLU, 3x3/2 max pool, LRN; conv2 256@5x5 stride 2, ReLU, pool, LRN; conv3-5
///   384, 384, 256 @3x3; pool5 3x3/2; fc6, fc7 4096 with dropout; fc8. Pools in ceil mode give the
///   paper's 55, 13 and 6. LRN uses AlexNet's constants (size 5, alpha 1e-4, beta 0.75, k 2).
///   62,357,608 parameters.
/// - **NiN** (Lin et al. 2014), ImageNet form as the authors released it (Caffe model zoo),
///   3x224x224: conv1 96@11x11/4 -> cccp1 96 -> cccp2 96 -> 3x3/2 max pool; conv2 256@5x5 ->
///   cccp3, cccp4 256 -> pool; conv3 384@3x3 -> cccp5, cccp6 384 -> pool -> dropout; conv4 1024@3x3 ->
///   cccp7 1024 -> cccp8 classes -> global average pool, every conv followed by ReLU (so the logits
///   are non-negative, as in the release); pools in ceil mode (Caffe's rule: 54, 27, 13, 6).
///   7,595,176 parameters.
/// - **GAP net**, a CAM-style (Zhou et al. 2016) classifier for 1x28x28 Fashion-MNIST: conv1 32,
///   conv2 32 (3x3, padding 1, ReLU), 2x2 max pool, conv3 64, conv4 128 (the CAM layer, 14x14, ReLU
///   output `relu4`), global average pool, fc to 10. 103,210 parameters.
/// - **Fashion CNN**, a small classifier for 1x28x28 Fashion-MNIST, sized so that an epoch trains in
///   about a minute on a CPU OpenCL device: conv1 16, conv2 32 (3x3, padding 1, ReLU), each followed
///   by a 2x2 max pool, flatten (32x7x7), fc to 10. Parameters: conv1 16*9+16 = 160, conv2
///   32*(16*9)+32 = 4,640, fc 10*1568+10 = 15,690; 20,490 in all.
/// - **Clutter net**, the CAM-style classifier for 1x84x84 cluttered Fashion-MNIST canvases (items
///   of 28 to 56 px among clutter): conv1 16, pool, conv2 32, pool, conv3 48, ceil-mode pool, conv4
///   96 (the CAM layer, 11x11, ReLU output `relu4`), global average pool, fc to 10. 61,210 parameters.
/// - **Concept net**, an RGB classifier for 3x64x64 concept scenes (`ConceptClassification`: which
///   shape in which colour, 24 classes), the model that Network Dissection's tests dissect: conv1 16,
///   pool, conv2 32, pool, conv3 64, pool, conv4 64 (8x8, ReLU output `relu4`), global average pool,
///   fc to 24. 62,072 parameters.
///
/// Node names: VGG `conv1_1 ... conv5_3`, `relu1_1 ...`, `pool1 ... pool5`, `fc6 fc7 fc8` (parameters
/// `features.N.*`, `classifier.N.*`); AlexNet `conv1 ... conv5`, `pool1 pool2 pool5`, `fc6 fc7 fc8`.
/// Models named after their torchvision modules use the module path as the node name; an op with no
/// module of its own (a functional ReLU, concat, flatten) is named after the module whose output it
/// is, e.g. GoogLeNet's BasicConv2d ReLU is `inception3a.branch1` and a ResNet block's final ReLU
/// is `layer4.1` (the output of `layer4` in ResNet-18). torchvision reuses one ReLU module inside a
/// ResNet block; here the inner ones are `.relu1` (and `.relu2` in a bottleneck), the sum `.add`.
/// torchvision's GoogLeNet `transform_input` (re-normalizing inputs) is not part of the graph, and
/// its auxiliary heads are left out.
///
/// Adaptive average pools (VGG to 7x7, AlexNet to 6x6) are the identity at 224 and are left out
/// there; other input sizes need a feature map that is a multiple of that size.
///
/// Initialization (seeded by `seed`): He for conv and linear layers followed by a ReLU (directly, or
/// through BatchNorm, a residual sum or a dense concatenation), Glorot for the others (the
/// classifiers); biases 0; BatchNorm identity statistics.
public enum ZooModel: String, CaseIterable, Sendable {
    case lenet5, alexnet, zfnet, vgg16, vgg19, googlenet, resnet18, resnet50, densenet121, nin, gapnet, fashioncnn, clutternet, conceptnet

    /// The models for 1-channel images with 10 classes (MNIST-like data).
    private var isGrayscale: Bool { self == .lenet5 || self == .gapnet || self == .fashioncnn || self == .clutternet }

    public var inputChannels: Int { isGrayscale ? 1 : 3 }

    public var defaultInputSize: Int {
        switch self {
        case .lenet5: return 32
        case .gapnet, .fashioncnn: return 28
        case .clutternet: return 84
        case .conceptnet: return 64
        default: return 224
        }
    }

    /// 10 for the grayscale models, 24 for `conceptnet` (shape x colour), 1000 (ImageNet) for the rest.
    public var defaultClasses: Int { isGrayscale ? 10 : self == .conceptnet ? 24 : 1000 }

    /// Builds the model's graph with seeded random weights. With `randomize: false` every weight is 0
    /// instead, which skips drawing (VGG19 has 143M weights) for work on shapes, counts and structure.
    public func build(batch: Int = 1, inputSize: Int? = nil, classes: Int? = nil, seed: UInt64 = 0,
                      randomize: Bool = true) throws -> Graph {
        let size = inputSize ?? defaultInputSize, classes = classes ?? defaultClasses
        guard batch > 0, size > 0, classes > 0 else {
            throw GraphError("\(rawValue): batch, input size and classes must be positive, got \(batch), \(size), \(classes)")
        }
        var b = ZooBuilder(seed: seed, randomize: randomize)
        let x = try b.graph.input("input", shape: [batch, inputChannels, size, size])
        let logits: ValueID
        switch self {
        case .lenet5: logits = try b.leNet5(x, classes: classes)
        case .alexnet: logits = try b.alexNet(x, classes: classes)
        case .zfnet: logits = try b.zfNet(x, classes: classes)
        case .vgg16: logits = try b.vgg(x, convsPerStage: [2, 2, 3, 3, 3], classes: classes)
        case .vgg19: logits = try b.vgg(x, convsPerStage: [2, 2, 4, 4, 4], classes: classes)
        case .googlenet: logits = try b.googLeNet(x, classes: classes)
        case .resnet18: logits = try b.resNet(x, bottleneck: false, blocksPerStage: [2, 2, 2, 2], classes: classes)
        case .resnet50: logits = try b.resNet(x, bottleneck: true, blocksPerStage: [3, 4, 6, 3], classes: classes)
        case .densenet121: logits = try b.denseNet(x, blocksPerStage: [6, 12, 24, 16], classes: classes)
        case .nin: logits = try b.networkInNetwork(x, classes: classes)
        case .gapnet: logits = try b.gapNet(x, classes: classes)
        case .fashioncnn: logits = try b.fashionCNN(x, classes: classes)
        case .clutternet: logits = try b.clutterNet(x, classes: classes)
        case .conceptnet: logits = try b.conceptNet(x, classes: classes)
        }
        b.graph.markOutput(logits)
        return b.graph
    }
}

/// One graph under construction with its seeded generator; layer helpers pick the initialization.
private struct ZooBuilder {
    let graph = Graph()
    private var rng: SeededGenerator
    private let randomize: Bool

    init(seed: UInt64, randomize: Bool) {
        rng = SeededGenerator(seed: seed)
        self.randomize = randomize
    }

    private func initialization(_ wanted: Initialization) -> Initialization { randomize ? wanted : .constant(0) }

    /// Every conv in the zoo feeds a ReLU (directly or through BatchNorm, a sum or a concatenation): He.
    mutating func conv(_ x: ValueID, _ out: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
                       name: String, parameters: String? = nil) throws -> ValueID {
        try graph.conv(x, out, kernel: kernel, stride: stride, padding: padding, bias: bias,
                       initialization: initialization(.he), name: name, parameterPrefix: parameters, rng: &rng)
    }

    mutating func linear(_ x: ValueID, _ out: Int, initialization: Initialization, name: String, parameters: String? = nil) throws -> ValueID {
        try graph.linear(x, out, initialization: self.initialization(initialization), name: name, parameterPrefix: parameters, rng: &rng)
    }

    /// conv -> ReLU, the ReLU named `reluName`.
    mutating func convReLU(_ x: ValueID, _ out: Int, kernel: Int, stride: Int = 1, padding: Int = 0, name: String,
                           parameters: String? = nil, reluName: String) throws -> ValueID {
        try graph.relu(try conv(x, out, kernel: kernel, stride: stride, padding: padding, name: name, parameters: parameters), name: reluName)
    }

    func flatten(_ x: ValueID) throws -> ValueID { try graph.apply(.flatten, [x], name: "flatten") }

    func globalAvgPool(_ x: ValueID, name: String) throws -> ValueID { try graph.apply(.globalAvgPool, [x], name: name) }

    /// PyTorch's `AdaptiveAvgPool2d(size)` where it is a plain pool: the identity when the map is
    /// already `size x size`, else non-overlapping windows of `H/size x W/size`.
    func adaptiveAvgPool(_ x: ValueID, to size: Int, name: String) throws -> ValueID {
        let s = graph[x].shape
        if s[2] == size && s[3] == size { return x }
        guard s[2] % size == 0, s[3] % size == 0 else {
            throw GraphError("node '\(name)' (adaptive average pool to \(size)x\(size)): input \(s) does not split into equal windows; choose an input size that gives a multiple of \(size)")
        }
        let k = (s[2] / size, s[3] / size)
        return try graph.apply(.avgPool2d(AvgPool2D(window: Window2D(kernel: k, stride: k))), [x], name: name)
    }

    /// fc6 -> ReLU -> fc7 -> ReLU -> fc8 with dropout, the AlexNet/VGG/ZFNet classifier; `dropoutFirst`
    /// puts each dropout before its linear layer (AlexNet) rather than after the ReLU (VGG).
    /// `parameters` gives the three linear layers' parameter prefixes.
    mutating func fullyConnectedClassifier(_ x: ValueID, classes: Int, dropoutFirst: Bool, parameters: [String?]) throws -> ValueID {
        var h = try flatten(x)
        for (i, layer) in [6, 7].enumerated() {
            if dropoutFirst { h = try graph.apply(.dropout, [h], name: "drop\(layer)") }
            h = try graph.relu(try linear(h, 4096, initialization: .he, name: "fc\(layer)", parameters: parameters[i]), name: "relu\(layer)")
            if !dropoutFirst { h = try graph.apply(.dropout, [h], name: "drop\(layer)") }
        }
        return try linear(h, classes, initialization: .glorot, name: "fc8", parameters: parameters[2])
    }

    // MARK: - Models

    mutating func leNet5(_ x: ValueID, classes: Int) throws -> ValueID {
        let padding = max(0, (32 - graph[x].shape[2] + 1) / 2)
        var h = try convReLU(x, 6, kernel: 5, padding: padding, name: "c1", reluName: "relu1")
        h = try graph.avgPool(h, kernel: 2, stride: 2, name: "s2")
        h = try convReLU(h, 16, kernel: 5, name: "c3", reluName: "relu3")
        h = try graph.avgPool(h, kernel: 2, stride: 2, name: "s4")
        h = try convReLU(h, 120, kernel: 5, name: "c5", reluName: "relu5")
        h = try graph.relu(try linear(try flatten(h), 84, initialization: .he, name: "f6"), name: "relu6")
        return try linear(h, classes, initialization: .glorot, name: "output")
    }

    mutating func alexNet(_ x: ValueID, classes: Int) throws -> ValueID {
        var h = try convReLU(x, 64, kernel: 11, stride: 4, padding: 2, name: "conv1", parameters: "features.0", reluName: "relu1")
        h = try graph.maxPool(h, kernel: 3, stride: 2, name: "pool1")
        h = try convReLU(h, 192, kernel: 5, padding: 2, name: "conv2", parameters: "features.3", reluName: "relu2")
        h = try graph.maxPool(h, kernel: 3, stride: 2, name: "pool2")
        for (i, (width, index)) in [(384, 6), (256, 8), (256, 10)].enumerated() {
            h = try convReLU(h, width, kernel: 3, padding: 1, name: "conv\(i + 3)", parameters: "features.\(index)", reluName: "relu\(i + 3)")
        }
        h = try graph.maxPool(h, kernel: 3, stride: 2, name: "pool5")
        h = try adaptiveAvgPool(h, to: 6, name: "avgpool")
        return try fullyConnectedClassifier(h, classes: classes, dropoutFirst: true, parameters: ["classifier.1", "classifier.4", "classifier.6"])
    }

    mutating func zfNet(_ x: ValueID, classes: Int) throws -> ValueID {
        let lrn = GraphOp.localResponseNorm(LocalResponseNorm(size: 5, alpha: 1e-4, beta: 0.75, k: 2))
        var h = try convReLU(x, 96, kernel: 7, stride: 2, padding: 1, name: "conv1", reluName: "relu1")
        h = try graph.apply(lrn, [try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "pool1")], name: "norm1")
        h = try convReLU(h, 256, kernel: 5, stride: 2, name: "conv2", reluName: "relu2")
        h = try graph.apply(lrn, [try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "pool2")], name: "norm2")
        for (i, width) in [384, 384, 256].enumerated() {
            h = try convReLU(h, width, kernel: 3, padding: 1, name: "conv\(i + 3)", reluName: "relu\(i + 3)")
        }
        h = try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "pool5")
        return try fullyConnectedClassifier(h, classes: classes, dropoutFirst: false, parameters: [nil, nil, nil])
    }

    /// torchvision's VGG without BatchNorm: 3x3 convs (padding 1) in five stages of 64, 128, 256,
    /// 512, 512 channels, each stage ending in a 2x2 max pool; `features.N` counts every module.
    mutating func vgg(_ x: ValueID, convsPerStage: [Int], classes: Int) throws -> ValueID {
        var h = x, module = 0
        for (stage, (convs, width)) in zip(convsPerStage, [64, 128, 256, 512, 512]).enumerated() {
            for i in 1...convs {
                h = try convReLU(h, width, kernel: 3, padding: 1, name: "conv\(stage + 1)_\(i)", parameters: "features.\(module)",
                                 reluName: "relu\(stage + 1)_\(i)")
                module += 2
            }
            h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool\(stage + 1)")
            module += 1
        }
        h = try adaptiveAvgPool(h, to: 7, name: "avgpool")
        return try fullyConnectedClassifier(h, classes: classes, dropoutFirst: false, parameters: ["classifier.0", "classifier.3", "classifier.6"])
    }

    /// torchvision's BasicConv2d: conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU named `name`.
    mutating func basicConv(_ x: ValueID, _ out: Int, kernel: Int, stride: Int = 1, padding: Int = 0, name: String) throws -> ValueID {
        let c = try conv(x, out, kernel: kernel, stride: stride, padding: padding, bias: false, name: "\(name).conv")
        return try graph.relu(try graph.batchNorm(c, epsilon: 1e-3, name: "\(name).bn"), name: name)
    }

    /// torchvision's Inception block; its "5x5" branch uses a 3x3 conv, as torchvision does.
    mutating func inception(_ x: ValueID, _ ch1x1: Int, _ ch3x3red: Int, _ ch3x3: Int, _ ch5x5red: Int, _ ch5x5: Int,
                            _ poolProj: Int, name: String) throws -> ValueID {
        let b1 = try basicConv(x, ch1x1, kernel: 1, name: "\(name).branch1")
        let b2 = try basicConv(try basicConv(x, ch3x3red, kernel: 1, name: "\(name).branch2.0"), ch3x3, kernel: 3, padding: 1, name: "\(name).branch2.1")
        let b3 = try basicConv(try basicConv(x, ch5x5red, kernel: 1, name: "\(name).branch3.0"), ch5x5, kernel: 3, padding: 1, name: "\(name).branch3.1")
        let pool = try graph.maxPool(x, kernel: 3, stride: 1, padding: 1, ceilMode: true, name: "\(name).branch4.0")
        let b4 = try basicConv(pool, poolProj, kernel: 1, name: "\(name).branch4.1")
        return try graph.apply(.concat, [b1, b2, b3, b4], name: name)
    }

    mutating func googLeNet(_ x: ValueID, classes: Int) throws -> ValueID {
        var h = try basicConv(x, 64, kernel: 7, stride: 2, padding: 3, name: "conv1")
        h = try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "maxpool1")
        h = try basicConv(h, 64, kernel: 1, name: "conv2")
        h = try basicConv(h, 192, kernel: 3, padding: 1, name: "conv3")
        h = try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "maxpool2")
        h = try inception(h, 64, 96, 128, 16, 32, 32, name: "inception3a")
        h = try inception(h, 128, 128, 192, 32, 96, 64, name: "inception3b")
        h = try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "maxpool3")
        h = try inception(h, 192, 96, 208, 16, 48, 64, name: "inception4a")
        h = try inception(h, 160, 112, 224, 24, 64, 64, name: "inception4b")
        h = try inception(h, 128, 128, 256, 24, 64, 64, name: "inception4c")
        h = try inception(h, 112, 144, 288, 32, 64, 64, name: "inception4d")
        h = try inception(h, 256, 160, 320, 32, 128, 128, name: "inception4e")
        h = try graph.maxPool(h, kernel: 2, stride: 2, ceilMode: true, name: "maxpool4")
        h = try inception(h, 256, 160, 320, 32, 128, 128, name: "inception5a")
        h = try inception(h, 384, 192, 384, 48, 128, 128, name: "inception5b")
        h = try graph.apply(.dropout, [try flatten(try globalAvgPool(h, name: "avgpool"))], name: "dropout")
        return try linear(h, classes, initialization: .glorot, name: "fc")
    }

    /// A torchvision ResNet block (BasicBlock, or Bottleneck v1.5 with the stride on the 3x3 conv),
    /// its final ReLU named `name`.
    mutating func residualBlock(_ x: ValueID, planes: Int, stride: Int, bottleneck: Bool, name: String) throws -> ValueID {
        let outChannels = bottleneck ? planes * 4 : planes
        var h = x
        let convs: [(width: Int, kernel: Int, stride: Int, padding: Int)] = bottleneck ? [(planes, 1, 1, 0), (planes, 3, stride, 1), (outChannels, 1, 1, 0)] : [(planes, 3, stride, 1), (planes, 3, 1, 1)]
        for (i, (width, kernel, s, padding)) in convs.enumerated() {
            h = try conv(h, width, kernel: kernel, stride: s, padding: padding, bias: false, name: "\(name).conv\(i + 1)")
            h = try graph.batchNorm(h, name: "\(name).bn\(i + 1)")
            if i < convs.count - 1 { h = try graph.relu(h, name: "\(name).relu\(i + 1)") }
        }
        var shortcut = x
        if stride != 1 || graph[x].shape[1] != outChannels {
            shortcut = try conv(x, outChannels, kernel: 1, stride: stride, bias: false, name: "\(name).downsample.0")
            shortcut = try graph.batchNorm(shortcut, name: "\(name).downsample.1")
        }
        return try graph.relu(try graph.apply(.add, [h, shortcut], name: "\(name).add"), name: name)
    }

    mutating func resNet(_ x: ValueID, bottleneck: Bool, blocksPerStage: [Int], classes: Int) throws -> ValueID {
        var h = try conv(x, 64, kernel: 7, stride: 2, padding: 3, bias: false, name: "conv1")
        h = try graph.relu(try graph.batchNorm(h, name: "bn1"), name: "relu")
        h = try graph.maxPool(h, kernel: 3, stride: 2, padding: 1, name: "maxpool")
        for (stage, blocks) in blocksPerStage.enumerated() {
            for block in 0..<blocks {
                h = try residualBlock(h, planes: 64 << stage, stride: stage > 0 && block == 0 ? 2 : 1, bottleneck: bottleneck,
                                      name: "layer\(stage + 1).\(block)")
            }
        }
        return try linear(try flatten(try globalAvgPool(h, name: "avgpool")), classes, initialization: .glorot, name: "fc")
    }

    /// BatchNorm -> ReLU -> conv (no bias), the pre-activation unit of DenseNet's layers and transitions.
    mutating func normReLUConv(_ x: ValueID, _ out: Int, kernel: Int, padding: Int = 0, name: String, suffix: String) throws -> ValueID {
        let h = try graph.relu(try graph.batchNorm(x, name: "\(name).norm\(suffix)"), name: "\(name).relu\(suffix)")
        return try conv(h, out, kernel: kernel, padding: padding, bias: false, name: "\(name).conv\(suffix)")
    }

    /// torchvision's DenseNet (growth rate 32, bottleneck width 4 x 32, 64 initial features,
    /// transitions halving the channels); each dense layer reads the concatenation of the block's
    /// input and every earlier layer's output, as torchvision's memory-hungry path does.
    mutating func denseNet(_ x: ValueID, blocksPerStage: [Int], classes: Int) throws -> ValueID {
        let growth = 32
        var h = try conv(x, 64, kernel: 7, stride: 2, padding: 3, bias: false, name: "features.conv0")
        h = try graph.relu(try graph.batchNorm(h, name: "features.norm0"), name: "features.relu0")
        h = try graph.maxPool(h, kernel: 3, stride: 2, padding: 1, name: "features.pool0")
        for (stage, layers) in blocksPerStage.enumerated() {
            let block = "features.denseblock\(stage + 1)"
            var features = [h]
            for j in 1...layers {
                let layer = "\(block).denselayer\(j)"
                var input = h
                if features.count > 1 { input = try graph.apply(.concat, features, name: "\(layer).concat") }
                let bottleneck = try normReLUConv(input, 4 * growth, kernel: 1, name: layer, suffix: "1")
                features.append(try normReLUConv(bottleneck, growth, kernel: 3, padding: 1, name: layer, suffix: "2"))
            }
            h = try graph.apply(.concat, features, name: block)
            if stage < blocksPerStage.count - 1 {
                let transition = "features.transition\(stage + 1)"
                h = try normReLUConv(h, graph[h].shape[1] / 2, kernel: 1, name: transition, suffix: "")
                h = try graph.avgPool(h, kernel: 2, stride: 2, name: "\(transition).pool")
            }
        }
        h = try graph.relu(try graph.batchNorm(h, name: "features.norm5"), name: "relu")
        return try linear(try flatten(try globalAvgPool(h, name: "avgpool")), classes, initialization: .glorot, name: "classifier")
    }

    /// An mlpconv block: a spatial conv and two 1x1 "cccp" convs, each followed by a ReLU `<layer>_relu`.
    mutating func mlpConv(_ x: ValueID, _ widths: [Int], kernel: Int, stride: Int = 1, padding: Int = 0, names: [String]) throws -> ValueID {
        var h = try convReLU(x, widths[0], kernel: kernel, stride: stride, padding: padding, name: names[0], reluName: "\(names[0])_relu")
        for (width, name) in zip(widths.dropFirst(), names.dropFirst()) {
            h = try convReLU(h, width, kernel: 1, name: name, reluName: "\(name)_relu")
        }
        return h
    }

    mutating func networkInNetwork(_ x: ValueID, classes: Int) throws -> ValueID {
        var h = try mlpConv(x, [96, 96, 96], kernel: 11, stride: 4, names: ["conv1", "cccp1", "cccp2"])
        h = try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "pool1")
        h = try mlpConv(h, [256, 256, 256], kernel: 5, padding: 2, names: ["conv2", "cccp3", "cccp4"])
        h = try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "pool2")
        h = try mlpConv(h, [384, 384, 384], kernel: 3, padding: 1, names: ["conv3", "cccp5", "cccp6"])
        h = try graph.apply(.dropout, [try graph.maxPool(h, kernel: 3, stride: 2, ceilMode: true, name: "pool3")], name: "drop")
        h = try mlpConv(h, [1024, 1024, classes], kernel: 3, padding: 1, names: ["conv4", "cccp7", "cccp8"])
        return try flatten(try globalAvgPool(h, name: "pool4"))
    }

    mutating func gapNet(_ x: ValueID, classes: Int) throws -> ValueID {
        var h = try convReLU(x, 32, kernel: 3, padding: 1, name: "conv1", reluName: "relu1")
        h = try convReLU(h, 32, kernel: 3, padding: 1, name: "conv2", reluName: "relu2")
        h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool1")
        h = try convReLU(h, 64, kernel: 3, padding: 1, name: "conv3", reluName: "relu3")
        h = try convReLU(h, 128, kernel: 3, padding: 1, name: "conv4", reluName: "relu4")
        return try linear(try flatten(try globalAvgPool(h, name: "gap")), classes, initialization: .glorot, name: "fc")
    }

    /// The CAM-style net for cluttered Fashion-MNIST canvases (84x84, items of 28 to 56 px): two
    /// conv+pool stages, a third conv and a ceil-mode pool, then the CAM layer `relu4` at 11x11 (a
    /// 38 px receptive field, 8 px per cell), global average pool and fc. 20.3M multiply-adds per
    /// image (1.0M + 8.1M + 6.1M + 5.0M), about 2.9k per input pixel against `gapnet`'s 32.5k.
    mutating func clutterNet(_ x: ValueID, classes: Int) throws -> ValueID {
        var h = try convReLU(x, 16, kernel: 3, padding: 1, name: "conv1", reluName: "relu1")
        h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool1")
        h = try convReLU(h, 32, kernel: 3, padding: 1, name: "conv2", reluName: "relu2")
        h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool2")
        h = try convReLU(h, 48, kernel: 3, padding: 1, name: "conv3", reluName: "relu3")
        h = try graph.maxPool(h, kernel: 2, stride: 2, ceilMode: true, name: "pool3")
        h = try convReLU(h, 96, kernel: 3, padding: 1, name: "conv4", reluName: "relu4")
        return try linear(try flatten(try globalAvgPool(h, name: "gap")), classes, initialization: .glorot, name: "fc")
    }

    /// The RGB net for dissection's concept scenes (`ConceptClassification`, 64x64: the shape and
    /// its colour): three conv+pool stages and `relu4` at 8x8 (8 px per cell), global average pool,
    /// fc. 13.6M multiply-adds per image (1.8M + 4.7M + 4.7M + 2.4M).
    mutating func conceptNet(_ x: ValueID, classes: Int) throws -> ValueID {
        var h = try convReLU(x, 16, kernel: 3, padding: 1, name: "conv1", reluName: "relu1")
        h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool1")
        h = try convReLU(h, 32, kernel: 3, padding: 1, name: "conv2", reluName: "relu2")
        h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool2")
        h = try convReLU(h, 64, kernel: 3, padding: 1, name: "conv3", reluName: "relu3")
        h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool3")
        h = try convReLU(h, 64, kernel: 3, padding: 1, name: "conv4", reluName: "relu4")
        return try linear(try flatten(try globalAvgPool(h, name: "gap")), classes, initialization: .glorot, name: "fc")
    }

    mutating func fashionCNN(_ x: ValueID, classes: Int) throws -> ValueID {
        var h = try convReLU(x, 16, kernel: 3, padding: 1, name: "conv1", reluName: "relu1")
        h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool1")
        h = try convReLU(h, 32, kernel: 3, padding: 1, name: "conv2", reluName: "relu2")
        h = try graph.maxPool(h, kernel: 2, stride: 2, name: "pool2")
        return try linear(try flatten(h), classes, initialization: .glorot, name: "fc")
    }
}
