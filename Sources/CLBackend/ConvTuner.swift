import Foundation

/// Chooses the convolution variant per (device, shape, direction), and remembers the choice on disk.
///
/// `mode == .tune`: the first time a (shape, direction) is seen, every candidate variant is timed on
/// the call's own tensors (one warm-up run, then the fastest of three synchronized runs) and the
/// winner is stored next to the program cache (`<hash>.tuning.json` in `ProgramCache.directory`, keyed
/// like the program: platform, device, driver, build options and kernel source). Later runs, in any
/// process, read the winner and time nothing (`tuningsRun` counts the timings done). `mode ==
/// .heuristic` (the default) never times: it uses a stored winner when there is one, else a fixed
/// rule. Every variant computes the same sums (the conformance tests run each one), so the choice
/// changes speed and rounding order only, never the contract.
public final class ConvTuner {
    public enum Mode: Sendable { case heuristic, tune }

    public var mode: Mode = .heuristic
    /// Whether `.tune` mode times the GPU-like tiled variants too: by default only where local
    /// memory is on-chip (benchmarks may turn it on anywhere to measure them).
    public var timesTiledVariants: Bool
    /// The directions `.tune` mode times; the others take a stored winner or the heuristic.
    public var tunedDirections = Set(ConvDirection.allCases)
    /// Forces one variant per direction where it applies (tests use this to run every variant).
    public var forced: [ConvDirection: ConvVariant] = [:]
    /// Called before a (shape, direction) is timed and after every choice (`loupe tune` reports these).
    public var observer: ((Event) -> Void)?
    /// How many (shape, direction) pairs this tuner has timed.
    public private(set) var tuningsRun = 0
    /// The variant of the latest choice (of the outer call, where a variant runs an inner convolution).
    public internal(set) var lastChoice: ConvVariant?
    /// The candidates' times (seconds) of the latest tuning, fastest first (benchmarks print them).
    public private(set) var lastTimings: [(variant: ConvVariant, seconds: Double)] = []
    public let fileURL: URL?
    private let deviceKey: String
    private var choices: [String: String]
    private var seconds: [String: Double]
    /// The heuristic's GEMM kernels use float16 vectors per work-item: right for CPU-like devices only.
    /// Devices without them have on-chip local memory, where the tiled variants are candidates too.
    private let wideVectors: Bool
    private let maxWorkGroupSize: Int

    init(cache: ProgramCache, deviceKey: String, wideVectors: Bool, maxWorkGroupSize: Int) {
        self.deviceKey = deviceKey
        self.wideVectors = wideVectors
        self.maxWorkGroupSize = maxWorkGroupSize
        timesTiledVariants = !wideVectors
        fileURL = cache.directory?.appendingPathComponent(String(fnv1a64(Array(deviceKey.utf8)), radix: 16) + ".tuning.json")
        choices = [:]
        seconds = [:]
        if let url = fileURL, let data = try? Data(contentsOf: url),
           let file = try? JSONDecoder().decode(TuningFile.self, from: data), file.deviceKey == deviceKey {
            choices = file.choices
            seconds = file.seconds ?? [:]
        }
    }

    private struct TuningFile: Codable {
        var deviceKey: String
        var choices: [String: String]
        /// The winner's time in seconds, by key (absent in files from before it was recorded).
        var seconds: [String: Double]?
    }

    /// Where a choice came from.
    public enum Source: String, Sendable { case forced, stored, timed, heuristic }

    /// One choice of a variant for one convolution call.
    public struct Choice: Sendable {
        public var direction: ConvDirection
        public var op: Conv2D
        /// The convolution's input and weight shapes (for backward-data, the shape of the input gradient).
        public var input: Shape, weight: Shape
        /// Whether the weights were held constant (see `key`).
        public var held: Bool
        public var variant: ConvVariant
        public var source: Source
        /// The variant's measured time: from this tuning, or stored by an earlier one; nil if never timed.
        public var seconds: Double?

        /// Floating-point operations of the pass, 2 per multiply-add (the same count in every direction).
        public var flops: Double {
            guard let out = try? op.outputShape(input: input, weight: weight) else { return 0 }
            return 2 * Double(out.count) * Double(weight[1] * weight[2] * weight[3])
        }
    }

    public enum Event: Sendable {
        /// About to time every candidate of this call's (shape, direction).
        case timing(direction: ConvDirection, input: Shape, weight: Shape, candidates: Int)
        case chose(Choice)
    }

    /// The stored winners, `direction|input|weight|geometry` to variant name.
    public var storedChoices: [String: String] { choices }

    /// `held`: the weights are held constant (`Backend.holdingConstant`), so a variant's packed or
    /// transformed weights are made once, not timed per call; such calls are tuned separately.
    static func key(_ direction: ConvDirection, _ op: Conv2D, input: Shape, weight: Shape, held: Bool = false) -> String {
        let w = op.window
        return "\(direction.rawValue)|\(input)|\(weight)|s\(w.strideH),\(w.strideW) p\(w.padTop),\(w.padLeft),\(w.padBottom),\(w.padRight) "
            + "d\(w.dilationH),\(w.dilationW) g\(op.groups)" + (held ? " held" : "")
    }

    /// The variant to run: forced, else stored, else timed (tune mode), else the heuristic.
    func variant(_ direction: ConvDirection, _ op: Conv2D, input: Shape, weight: Shape, held: Bool = false,
                 time: (ConvVariant) throws -> Double) throws -> ConvVariant {
        let (v, source, time) = try choose(direction, op, input: input, weight: weight, held: held, time: time)
        lastChoice = v
        observer?(.chose(Choice(direction: direction, op: op, input: input, weight: weight, held: held, variant: v, source: source, seconds: time)))
        return v
    }

    private func choose(_ direction: ConvDirection, _ op: Conv2D, input: Shape, weight: Shape, held: Bool,
                        time: (ConvVariant) throws -> Double) throws -> (ConvVariant, Source, Double?) {
        // Anything that can compute the pass may be forced (tests run the tiled set on any device).
        if let f = forced[direction], ConvVariant.candidates(direction, op, maxWorkGroupSize: maxWorkGroupSize).contains(f) { return (f, .forced, nil) }
        let candidates = ConvVariant.candidates(direction, op, localMemory: timesTiledVariants, maxWorkGroupSize: maxWorkGroupSize)
        let key = Self.key(direction, op, input: input, weight: weight, held: held)
        if let name = choices[key], let v = ConvVariant(name), candidates.contains(v) { return (v, .stored, seconds[key]) }
        guard mode == .tune, tunedDirections.contains(direction), candidates.count > 1 else {
            return (wideVectors ? Self.heuristic(direction, op, input: input, weight: weight, candidates) : .direct, .heuristic, nil)
        }
        observer?(.timing(direction: direction, input: input, weight: weight, candidates: candidates.count))
        lastTimings = try candidates.map { ($0, try time($0)) }.sorted { $0.seconds < $1.seconds }
        let best = lastTimings[0]
        tuningsRun += 1
        choices[key] = best.variant.description
        seconds[key] = best.seconds
        save()
        return (best.variant, .timed, best.seconds)
    }

    /// Untuned choice on CPU-like devices: Winograd for 3x3 stride-1 layers with at least 64 input and output
    /// channels (it won every such VGG16 forward when tuned on PoCL, see Benchmarks/RESULTS.md), strided ones
    /// as stride-1 ones on the stride phases (`phased`, which beat the direct kernels on ResNet-50's), else the 8x3 GEMM
    /// block where it applies; for backward-filter enough slices to give about 256 work-items.
    static func heuristic(_ direction: ConvDirection, _ op: Conv2D, input: Shape, weight: Shape, _ candidates: [ConvVariant]) -> ConvVariant {
        guard candidates.count > 1 else { return .direct }
        switch direction {
        case .forward, .backwardData:
            if candidates.contains(.winograd) && weight[0] >= 64 && weight[1] >= 64 { return .winograd }
            if candidates.contains(.phased) { return .phased }
            return candidates.contains(.gemm(rows: 8, vectors: 3)) ? .gemm(rows: 8, vectors: 3) : .direct
        case .backwardFilter:
            let items = weight[1] * ((weight[2] * weight[3] + 2) / 3) * op.groups * ((weight[0] / op.groups + 7) / 8)
            let want = (256 + items - 1) / items
            return .filter(rows: 8, taps: 3, slices: ConvVariant.filterSlices.first { $0 >= want } ?? ConvVariant.filterSlices.last!)
        }
    }

    private func save() {
        guard let url = fileURL, let data = try? JSONEncoder().encode(TuningFile(deviceKey: deviceKey, choices: choices, seconds: seconds)) else { return }
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = url.appendingPathExtension("tmp\(ProcessInfo.processInfo.processIdentifier)")
        guard (try? data.write(to: tmp)) != nil else { return }
        if rename(tmp.path, url.path) != 0 { try? FileManager.default.removeItem(at: tmp) }
    }
}
