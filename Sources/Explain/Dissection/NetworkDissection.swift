import CLBackend
import Foundation
import Graph

/// Network Dissection (Bau et al. 2017; METHODS.md "Dissection") as five passes over a Broden
/// dataset, each reduced on the device and merged as exact integer counts:
///
/// - passes 0-3 select each unit's threshold `T_k`, the `r`-th largest of all its activation values
///   with `r = ceil(quantile * count)` (quantile 0.005: the top 0.5%), by radix selection on the
///   values' order keys, 8 bits per pass (`DissectionBackend.accumulateRadixHistogram`): no pass
///   holds more than a 256-bin histogram per unit, and the threshold is exact, not approximate;
/// - pass 4 counts, per unit and concept, the pixels of the upsampled, thresholded maps that carry
///   the concept's label, and per unit and category the masked pixels of the images annotated for
///   that category (`accumulateConceptCounts`), and keeps each unit's top images by peak activation.
///
/// A pass over part of the images gives a `DissectionPartial`; the partials of any split of the
/// images merge (`DissectionState.merging`) into the state the whole dataset gives, exactly, so
/// shards (processes, machines or devices) can each run a pass over their images.
public struct DissectionSettings: Codable, Equatable, Sendable {
    public var layers: [String]
    public var quantile: Double = 0.005
    public var iouThreshold: Double = 0.04
    /// Images kept per unit for the report (highest peak activation first).
    public var topImages: Int = 4
    public var normalization: String = "unit"
    public init(layers: [String]) { self.layers = layers }
}

/// One image's score in a unit's top list; ties order by image index.
public struct ImageScore: Codable, Equatable, Sendable {
    public var image: Int
    public var score: Float
    static func ranked(_ a: ImageScore, _ b: ImageScore) -> Bool { a.score != b.score ? a.score > b.score : a.image < b.image }
}

/// What the passes so far established.
public struct DissectionState: Codable, Equatable, Sendable {
    public struct Layer: Codable, Equatable, Sendable {
        public var name: String
        public var units: Int
        /// Values per unit over the dataset (non-NaN), known after pass 0.
        public var total: Int64 = 0
        /// Key bits decided so far, and each unit's rank still to find among the matching values.
        public var prefixes: [UInt32]
        public var ranks: [Int64] = []
        /// After pass 3.
        public var thresholds: [Float] = []
        /// After pass 4: `[units, bins]` with bins = labels, then one pseudo-label per category.
        public var counts: [Int64] = []
        public var top: [[ImageScore]] = []
    }
    public var settings: DissectionSettings
    /// 0...3: the next radix pass; 4: the counting pass; 5: done.
    public var pass: Int = 0
    public var images: Int
    public var layers: [Layer]
    /// Pixels carrying each label, over the dataset (image-level labels count every pixel).
    public var labelPixels: [Int64] = []

    public var isComplete: Bool { pass == 5 }
    public static let passes = 5
    static func shift(ofPass pass: Int) -> Int { 24 - 8 * pass }

    public init(settings: DissectionSettings, images: Int, layers: [(name: String, units: Int)]) {
        self.settings = settings
        self.images = images
        self.layers = layers.map { Layer(name: $0.name, units: $0.units, prefixes: [UInt32](repeating: 0, count: $0.units)) }
    }

    /// The state after `partials` (one per shard, together covering every image once) of the current pass.
    public func merging(_ partials: [DissectionPartial]) throws -> DissectionState {
        guard !isComplete else { throw DataError("dissection: every pass is already merged") }
        guard !partials.isEmpty else { throw DataError("dissection: no partial results to merge") }
        for p in partials where p.pass != pass || p.settings != settings || p.counts.count != layers.count || p.images != images {
            throw DataError("dissection: a partial result is of pass \(p.pass + 1) of \(p.images) images, expected pass \(pass + 1) of \(images) images with the same settings")
        }
        let covered = partials.map(\.imageRange.count).reduce(0, +)
        let starts = Set(partials.map(\.imageRange.lowerBound))
        guard covered == images, starts.count == partials.count else {
            throw DataError("dissection: the partial results cover \(covered) images (\(partials.count) shards), the dataset has \(images)")
        }
        var next = self
        for l in layers.indices {
            var counts = [Int64](repeating: 0, count: partials[0].counts[l].count)
            for p in partials {
                guard p.counts[l].count == counts.count else { throw DataError("dissection: partial results disagree on layer \(layers[l].name)'s count size") }
                for i in counts.indices { counts[i] += p.counts[l][i] }
            }
            var layer = next.layers[l]
            if pass < 4 {
                let shift = Self.shift(ofPass: pass)
                if pass == 0 {
                    layer.total = (0..<256).reduce(0) { $0 + counts[$1] }
                    let rank = max(1, Int64((settings.quantile * Double(layer.total)).rounded(.up)))
                    layer.ranks = (0..<layer.units).map { k in min(rank, (0..<256).reduce(0) { $0 + counts[k * 256 + $1] }) }
                }
                for k in 0..<layer.units where layer.ranks[k] > 0 {
                    var remaining = layer.ranks[k]
                    for digit in stride(from: 255, through: 0, by: -1) {
                        let c = counts[k * 256 + digit]
                        if remaining <= c {
                            layer.prefixes[k] |= UInt32(digit) << shift
                            break
                        }
                        remaining -= c
                    }
                    layer.ranks[k] = remaining
                }
                if pass == 3 {
                    layer.thresholds = (0..<layer.units).map { layer.ranks[$0] > 0 ? DissectionKey.value(layer.prefixes[$0]) : .infinity }
                }
            } else {
                layer.counts = counts
                layer.top = (0..<layer.units).map { k in
                    Array(partials.flatMap { $0.top[l][k] }.sorted(by: ImageScore.ranked).prefix(settings.topImages))
                }
            }
            next.layers[l] = layer
        }
        if pass == 4 {
            next.labelPixels = [Int64](repeating: 0, count: partials[0].labelPixels.count)
            for p in partials { for i in p.labelPixels.indices { next.labelPixels[i] += p.labelPixels[i] } }
        }
        next.pass += 1
        return next
    }
}

/// One pass's counts over a range of images.
public struct DissectionPartial: Codable, Equatable, Sendable {
    public var settings: DissectionSettings
    public var pass: Int
    public var images: Int
    public var imageRange: Range<Int>
    /// Per layer: pass 0-3 `[units, 256]` radix bins; pass 4 `[units, bins]` concept counts.
    public var counts: [[Int64]]
    public var top: [[[ImageScore]]] = []
    public var labelPixels: [Int64] = []
}

/// The images of shard `index` (0-based) of `count`: contiguous, sizes differing by at most one.
public func shardRange(_ index: Int, of count: Int, images: Int) -> Range<Int> {
    (images * index / count)..<(images * (index + 1) / count)
}

/// Runs dissection passes of a model over a Broden dataset on a `DissectionBackend`.
public final class Dissector {
    public let dataset: BrodenDataset
    public let settings: DissectionSettings
    let graph: Graph
    let backend: any DissectionBackend
    let batch: Int
    let layerValues: [ValueID]
    private var executors: [Int: Executor] = [:]
    private var parameters: [ValueID: Tensor]?

    /// `graph` is built for batch `batch` (its input `[batch, C, H, W]`); other batch sizes are rebuilt from it.
    public init(graph: Graph, backend: Backend, dataset: BrodenDataset, settings: DissectionSettings) throws {
        guard let backend = backend as? any DissectionBackend else { throw GraphError("dissection: backend \(backend.name) has no dissection kernels") }
        guard let input = graph.inputs.first, graph[input].shape.rank == 4 else { throw GraphError("dissection: the model needs one [N, C, H, W] image input") }
        guard !settings.layers.isEmpty else { throw GraphError("dissection: no layers given") }
        guard settings.quantile > 0 && settings.quantile < 1 else { throw GraphError("dissection: quantile \(settings.quantile) is not in (0, 1)") }
        guard ["unit", "imagenet"].contains(settings.normalization) else { throw GraphError("dissection: unknown normalization '\(settings.normalization)': unit or imagenet") }
        layerValues = try settings.layers.map { name in
            guard let v = graph.value(named: name) else {
                let names = graph.nodes.flatMap(\.outputs).filter { graph[$0].shape.rank == 4 }.map { graph[$0].name }
                throw GraphError("dissection: the model has no value '\(name)'; 4-D values: \(names.joined(separator: ", "))")
            }
            guard graph[v].shape.rank == 4 else { throw GraphError("dissection: layer '\(name)' is \(graph[v].shape), not an [N, C, H, W] map") }
            return v
        }
        self.graph = graph
        self.backend = backend
        self.dataset = dataset
        self.settings = settings
        self.batch = graph[input].shape[0]
    }

    public var inputShape: Shape { graph[graph.inputs[0]].shape }

    public func initialState() -> DissectionState {
        DissectionState(settings: settings, images: dataset.count, layers: zip(settings.layers, layerValues).map { ($0, graph[$1].shape[1]) })
    }

    /// Label bins of the counting pass: every label number, then one pseudo-label per category.
    var bins: Int { dataset.labels.count + dataset.categories.count }

    func executor(batch n: Int) throws -> Executor {
        if let e = executors[n] { return e }
        let e = try Executor(n == batch ? graph : graph.withBatch(n), on: backend, parameters: parameters)
        if parameters == nil { parameters = e.parameters }
        executors[n] = e
        return e
    }

    /// The model inputs of images `indices`, resized to the model's input and normalized.
    public func inputs(_ indices: [Int]) throws -> HostTensor {
        let s = inputShape
        let normalization: Normalization = settings.normalization == "imagenet" ? .imagenet : .unit
        let values = try indices.flatMap { i in
            try dataset.image(at: i).resized(width: s[3], height: s[2]).tensor(channels: s[1], normalization: normalization).values
        }
        return try HostTensor(shape: [indices.count, s[1], s[2], s[3]], values: values)
    }

    /// The layers' maps for images `indices` (on the device).
    func forward(_ indices: [Int]) throws -> [Tensor] {
        let e = try executor(batch: indices.count)
        let x = try inputs(indices)
        let pass = try e.forward([e.graph.inputs[0]: try backend.tensor(x.values, shape: x.shape)], retaining: Set(layerValues),
                                 until: layerValues.max { (e.graph.producer[$0] ?? -1) < (e.graph.producer[$1] ?? -1) })
        return try layerValues.map { v in
            guard let t = pass[v] else { throw GraphError("dissection: layer '\(graph[v].name)' was not computed") }
            return t
        }
    }

    /// Pass `state.pass` over the images in `range`; `progress` gets the images done after each batch.
    public func run(_ state: DissectionState, images range: Range<Int>, progress: (Int) -> Void = { _ in }) throws -> DissectionPartial {
        guard !state.isComplete else { throw DataError("dissection: every pass is already done") }
        guard state.settings == settings, state.images == dataset.count else {
            throw DataError("dissection: the state was made for \(state.images) images and layers \(state.settings.layers.joined(separator: ",")); this run has \(dataset.count) images and layers \(settings.layers.joined(separator: ","))")
        }
        let counting = state.pass == 4
        let binCount = counting ? bins : 256
        let counts = try state.layers.map { try backend.tensor(ints: [Int32](repeating: 0, count: $0.units * binCount * 2), shape: [$0.units * binCount * 2]) }
        let prefixes = try state.layers.map { try backend.tensor(ints: $0.prefixes.map { Int32(bitPattern: $0) }, shape: [$0.units]) }
        let thresholds = counting ? try state.layers.map { try backend.tensor($0.thresholds, shape: [$0.units]) } : []
        var top = state.layers.map { [[ImageScore]](repeating: [], count: $0.units) }
        var labelPixels = [Int64](repeating: 0, count: counting ? dataset.labels.count : 0)
        let planeSize = dataset.maskHeight * dataset.maskWidth
        var done = 0
        for start in stride(from: range.lowerBound, to: range.upperBound, by: batch) {
            let indices = Array(start..<min(start + batch, range.upperBound))
            let maps = try forward(indices)
            if counting {
                let annotations = try indices.map { try dataset.annotation(at: $0) }
                let planes = max(1, annotations.map(\.planes.count).max() ?? 0)
                let q = max(1, annotations.map { $0.imageLabels.count + $0.categories.count }.max() ?? 0)
                var pixelLabels = [Int32](repeating: 0, count: indices.count * planes * planeSize)
                var imageLabels = [Int32](repeating: 0, count: indices.count * q)
                for (n, a) in annotations.enumerated() {
                    for (p, plane) in a.planes.enumerated() {
                        pixelLabels.replaceSubrange(((n * planes + p) * planeSize)..<((n * planes + p + 1) * planeSize), with: plane)
                        for label in plane where label > 0 { labelPixels[Int(label)] += 1 }
                    }
                    let whole = a.imageLabels + a.categories.map { Int32(dataset.labels.count + $0) }
                    for (j, label) in whole.enumerated() { imageLabels[n * q + j] = label }
                    for label in a.imageLabels { labelPixels[Int(label)] += Int64(planeSize) }
                }
                let pixelTensor = try backend.tensor(ints: pixelLabels, shape: [indices.count, planes, dataset.maskHeight, dataset.maskWidth])
                let imageTensor = try backend.tensor(ints: imageLabels, shape: [indices.count, q])
                for (l, map) in maps.enumerated() {
                    try backend.accumulateConceptCounts(activations: map, thresholds: thresholds[l], pixelLabels: pixelTensor,
                                                        imageLabels: imageTensor, bins: binCount, counts: counts[l])
                    // Peak activation per (image, unit): [batch, units] values, not maps, come back.
                    let peaks = try backend.read(try backend.globalMaxPool(map).output)
                    let units = state.layers[l].units
                    for k in 0..<units {
                        let candidates = top[l][k] + indices.enumerated().map { ImageScore(image: $0.element, score: peaks[$0.offset * units + k]) }
                        top[l][k] = Array(candidates.filter { !$0.score.isNaN }.sorted(by: ImageScore.ranked).prefix(settings.topImages))
                    }
                }
            } else {
                for (l, map) in maps.enumerated() {
                    try backend.accumulateRadixHistogram(activations: map, prefixes: prefixes[l], shift: DissectionState.shift(ofPass: state.pass),
                                                         counts: counts[l])
                }
            }
            done += indices.count
            progress(done)
        }
        return DissectionPartial(settings: settings, pass: state.pass, images: dataset.count, imageRange: range,
                                 counts: try counts.map { DissectionKey.counts(fromPairs: try backend.readInts($0)) },
                                 top: counting ? top : [], labelPixels: labelPixels)
    }

    /// Every pass over every image in this process: the single-process dissection.
    public func runAll(progress: (_ pass: Int, _ done: Int) -> Void = { _, _ in }) throws -> DissectionState {
        var state = initialState()
        while !state.isComplete {
            let pass = state.pass
            state = try state.merging([run(state, images: 0..<dataset.count) { progress(pass, $0) }])
        }
        return state
    }

    /// Unit `unit`'s map of `layer` for image `image`, upsampled (bilinear) to `height x width` on the host, for pictures.
    public func upsampledMap(layer: Int, unit: Int, image: Int, width: Int, height: Int) throws -> [Float] {
        let map = try forward([image])[layer]
        let (_, _, h, w) = try map.shape.nchw(for: "dissection")
        let plane = Array(try backend.read(map)[(unit * h * w)..<((unit + 1) * h * w)])
        return resampleBilinear(plane, width: w, height: h, channels: 1, toWidth: width, toHeight: height)
    }
}
