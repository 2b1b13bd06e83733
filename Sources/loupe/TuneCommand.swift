import ArgumentParser
import CLBackend
import Foundation
import Graph

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tune every convolution of a model ahead of time: time each variant once per shape and direction, keep the winners.",
        discussion: """
            Runs the model forward (and backward to its input and every parameter) on random data with the \
            convolution tuner in tune mode: each (shape, direction) not tuned before has every candidate variant \
            timed, and the winner is stored next to the kernel cache, where every later run on this device \
            finds it. Prints the winners per layer and direction; a second run times nothing. Directions name \
            the convolution passes as the device runs them: a transposed convolution's forward is a \
            backward-data pass. With --held-weights the model's weights are held constant, as activation             maximization and inversion hold them: each variant's packed or transformed weights are made once             and reused, so the winners (stored apart from the others) can differ.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Batch size to tune for.") var batch: Int = 1
    @Option(help: "Comma-separated passes to tune: forward, backward (both backward passes), backward-data, backward-filter.")
    var directions: String = "forward,backward"
    @Flag(help: "Tune with the weights held constant, as `maximize` and `invert` run (training re-derives them every step).")
    var heldWeights = false

    func run() throws {
        try reportingErrors {
            let wanted = try Self.parseDirections(directions)
            guard batch > 0 else { throw ValidationError("--batch must be positive, got \(batch)") }
            let graph = try modelOptions.load(batch: batch)
            guard let backend = try deviceOption.backend() as? OpenCLBackend else {
                throw ValidationError("loupe tune needs an OpenCL device (--device opencl:N); the reference backend has nothing to tune")
            }
            let tuner = backend.convTuner
            tuner.mode = .tune
            tuner.tunedDirections = wanted
            let exec = try Executor(graph, on: backend)
            var layer = ""
            var rows: [(layer: String, choice: ConvTuner.Choice)] = []
            exec.nodeObserver = { node, _ in layer = node.name }
            tuner.observer = { event in
                switch event {
                case .timing(let direction, let input, let weight, let candidates):
                    printError("loupe tune: [\(tuner.tuningsRun + 1)] \(layer) \(direction.rawValue) \(input) * \(weight): timing \(candidates) variants")
                case .chose(let choice):
                    if wanted.contains(choice.direction) { rows.append((layer, choice)) }
                }
            }
            var feeds: [ValueID: Tensor] = [:]
            for input in graph.inputs {
                let shape = graph[input].shape
                feeds[input] = try backend.tensor((0..<shape.count).map { _ in Float.random(in: 0...1) }, shape: shape)
            }
            let backward = !wanted.isDisjoint(with: [.backwardData, .backwardFilter])
            try backend.holdingConstant(heldWeights ? Array(exec.parameters.values) : []) {
                let pass = try exec.forward(feeds, forBackward: backward)
                if backward {
                    var seeds: [ValueID: Tensor] = [:]
                    for output in graph.outputs { seeds[output] = try backend.full(graph[output].shape, value: 1) }
                    _ = try exec.backward(pass, seeds: seeds, targets: Set(graph.inputs + graph.parameters))
                }
                try backend.synchronize()
            }
            print(Self.table(rows))
            let fromCache = rows.filter { $0.choice.source == .stored }.count
            print("\(tuner.tuningsRun) shapes timed, \(fromCache) convolutions from stored winners"
                  + (tuner.fileURL.map { "; winners in \($0.path)" } ?? "; kernel cache disabled, winners not kept"))
        }
    }

    static func parseDirections(_ text: String) throws -> Set<ConvDirection> {
        var set: Set<ConvDirection> = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            switch part {
            case "forward": set.insert(.forward)
            case "backward": set.formUnion([.backwardData, .backwardFilter])
            case "backward-data": set.insert(.backwardData)
            case "backward-filter": set.insert(.backwardFilter)
            default: throw ValidationError("--directions: unknown direction '\(part)' (forward, backward, backward-data, backward-filter)")
            }
        }
        guard !set.isEmpty else { throw ValidationError("--directions: give at least one of forward, backward, backward-data, backward-filter") }
        return set
    }

    static func table(_ rows: [(layer: String, choice: ConvTuner.Choice)]) -> String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
        var lines = [pad("layer", 20) + pad("direction", 17) + pad("input * weight", 34) + pad("variant", 14) + pad("weights", 9) + pad("ms", 10) + pad("GFLOP/s", 9) + "from"]
        for (layer, c) in rows {
            let ms = c.seconds.map { String(format: "%.3f", $0 * 1e3) } ?? "-"
            let rate = c.seconds.map { String(format: "%.1f", c.flops / $0 / 1e9) } ?? "-"
            lines.append(pad(layer, 20) + pad(c.direction.rawValue, 17) + pad("\(c.input) * \(c.weight)", 34) + pad(c.variant.description, 14)
                         + pad(c.held ? "held" : "-", 9) + pad(ms, 10) + pad(rate, 9) + c.source.rawValue)
        }
        return lines.joined(separator: "\n")
    }
}
