// Kernel benchmark: median time, GFLOP/s and fraction of the measured peak for the layers that
// dominate VGG16 and ResNet-50, forward, backward-data and backward-weights.
//
//   swift run -c release KernelBench [--device opencl:N] [--repeats R] [--no-write] [--tune [--tiled]]
//
// Convolution rows marked "held" run with the weight held constant (Backend.holdingConstant).
// Convolutions run the variant the tuner picks: with --tune each conv row first times every
// candidate variant (printed) and the row is the winner; without it, a stored winner or the heuristic.
// --tiled adds the GPU-like tiled variants to the candidates on devices without on-chip local memory.
//
// Prints a markdown table, writes it into Benchmarks/RESULTS.md (between the kernel-bench
// markers) and the raw rows to Benchmarks/kernels.json.
import BenchSupport
import CLBackend
import Foundation

struct Row: Codable {
    var layer: String
    var direction: String
    var shape: String
    /// The convolution variant that ran ("" for other ops).
    var variant: String
    var medianMilliseconds: Double
    /// The first call, which on some platforms (PoCL) includes compiling the kernel for its work-group size.
    var firstCallMilliseconds: Double
    var gflops: Double
    var fractionOfPeak: Double
    var gigabytesPerSecond: Double
}

struct Report: Codable {
    var device: String
    var tiling: String
    var peakGFLOPS: Double
    var coldStartSeconds: Double
    var warmStartSeconds: Double
    var warmStartWasCacheHit: Bool
    var repeats: Int
    var rows: [Row]
}

var arguments = BenchArguments(tool: "KernelBench")
@MainActor func fail(_ message: String) -> Never { arguments.fail(message) }
let deviceFlag = arguments.option("--device")
let repeats = arguments.integer("--repeats", 7)
let write = !arguments.flag("--no-write")
let tune = arguments.flag("--tune")
let tiled = arguments.flag("--tiled")
arguments.finish(usage: "KernelBench [--device opencl:N] [--repeats R] [--no-write] [--tune [--tiled]]")
let entry = arguments.device(deviceFlag)

// Start-up: the normal kernel cache (a hit from the second run on), then a cold compile into an empty cache.
let backend: OpenCLBackend
let coldSeconds: Double
do {
    backend = try OpenCLBackend(device: entry)
    if tune { backend.convTuner.mode = .tune }
    if tiled { backend.convTuner.timesTiledVariants = true }
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-cold-\(ProcessInfo.processInfo.processIdentifier)")
    defer { try? FileManager.default.removeItem(at: tmp) }
    coldSeconds = try OpenCLBackend(device: entry, cache: ProgramCache(environment: [ProgramCache.locationVariable: tmp.path])).buildReport.seconds
} catch { fail("\(error)") }
print("device: \(backend.name), tiling: \(backend.convTiling)")
print("start-up: this run \(backend.buildReport); without Loupe's cache \(String(format: "%.3f", coldSeconds)) s (the platform's own cache, e.g. PoCL's, may still hit)")

let peak: Double
do { peak = try backend.measurePeakGFLOPS() } catch { fail("\(error)") }
print(String(format: "measured peak: %.1f GFLOP/s (fma_peak)", peak))

@MainActor func random(_ shape: Shape) throws -> Tensor {
    try backend.tensor((0..<shape.count).map { _ in Float.random(in: -1...1) }, shape: shape)
}

/// Wall time of the first run of `body`, and the median of the next `repeats` (each run ends with a synchronize).
@MainActor func timings(_ body: () throws -> Void) throws -> (first: Double, median: Double) {
    let first = Date()
    try body()
    try backend.synchronize()
    let firstSeconds = Date().timeIntervalSince(first)
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = Date()
        try body()
        try backend.synchronize()
        times.append(Date().timeIntervalSince(start))
    }
    return (firstSeconds, times.sorted()[times.count / 2])
}

var rows: [Row] = []
@MainActor func record(_ layer: String, _ direction: String, _ shape: String, flops: Double, bytes: Double, conv: Bool = false,
                       _ body: () throws -> Void) throws {
    let tuned = backend.convTuner.tuningsRun
    let (first, t) = try timings(body)
    if conv && backend.convTuner.tuningsRun > tuned {
        print("  tuned \(layer) \(direction): " + backend.convTuner.lastTimings.map { "\($0.variant) \(String(format: "%.2f", $0.seconds * 1e3)) ms" }.joined(separator: ", "))
    }
    let variant = conv ? backend.convTuner.lastChoice.map { "\($0)" } ?? "" : ""
    let row = Row(layer: layer, direction: direction, shape: shape, variant: variant, medianMilliseconds: t * 1e3, firstCallMilliseconds: first * 1e3,
                  gflops: flops / t / 1e9, fractionOfPeak: flops / t / 1e9 / peak, gigabytesPerSecond: bytes / t / 1e9)
    rows.append(row)
    print(layer.padding(toLength: 28, withPad: " ", startingAt: 0) + direction.padding(toLength: 21, withPad: " ", startingAt: 0)
          + variant.padding(toLength: 13, withPad: " ", startingAt: 0)
          + String(format: "%9.3f ms %8.2f GFLOP/s %6.1f%% of peak %7.2f GB/s  (first call %.1f ms)",
                   row.medianMilliseconds, row.gflops, row.fractionOfPeak * 100, row.gigabytesPerSecond, row.firstCallMilliseconds))
}

@MainActor func benchConv(_ layer: String, input: Shape, outChannels: Int, _ op: Conv2D) throws {
    let w = op.window
    let wShape: Shape = [outChannels, input[1] / op.groups, w.kernelH, w.kernelW]
    let yShape = try op.outputShape(input: input, weight: wShape)
    let x = try random(input), weight = try random(wShape), bias = try random([outChannels]), dy = try random(yShape)
    let flops = 2.0 * Double(yShape.count) * Double(wShape[1] * w.kernelH * w.kernelW)
    let shape = "\(input) -> \(yShape)"
    let bytes = 4.0 * Double(input.count + yShape.count + wShape.count)
    try record(layer, "forward", shape, flops: flops, bytes: bytes, conv: true) { _ = try backend.conv2d(x, weight: weight, bias: bias, op) }
    try record(layer, "backward-data", shape, flops: flops, bytes: bytes, conv: true) { _ = try backend.conv2dBackwardData(dy, weight: weight, inputShape: input, op) }
    try record(layer, "backward-weights", shape, flops: flops, bytes: bytes, conv: true) { _ = try backend.conv2dBackwardFilter(x, outputGrad: dy, weightShape: wShape, op) }
    // Weights held constant, as in activation maximization and inversion: packed and transformed
    // weights are made in the first call and reused (tuned apart from the rows above).
    try backend.holdingConstant([weight]) {
        try record(layer, "forward, held", shape, flops: flops, bytes: bytes, conv: true) { _ = try backend.conv2d(x, weight: weight, bias: bias, op) }
        try record(layer, "backward-data, held", shape, flops: flops, bytes: bytes, conv: true) {
            _ = try backend.conv2dBackwardData(dy, weight: weight, inputShape: input, op)
        }
    }
}

@MainActor func benchConvTranspose(_ layer: String, input: Shape, outChannels: Int, _ op: ConvTranspose2D) throws {
    let w = op.window
    let wShape: Shape = [input[1], outChannels / op.groups, w.kernelH, w.kernelW]
    let yShape = try op.outputShape(input: input, weight: wShape)
    let x = try random(input), weight = try random(wShape), dy = try random(yShape)
    let flops = 2.0 * Double(input.count) * Double(wShape[1] * w.kernelH * w.kernelW)
    let shape = "\(input) -> \(yShape)"
    let bytes = 4.0 * Double(input.count + yShape.count + wShape.count)
    try record(layer, "forward", shape, flops: flops, bytes: bytes) { _ = try backend.convTranspose2d(x, weight: weight, op) }
    try record(layer, "backward-data", shape, flops: flops, bytes: bytes) { _ = try backend.convTranspose2dBackwardData(dy, weight: weight, inputShape: input, op) }
    try record(layer, "backward-weights", shape, flops: flops, bytes: bytes) { _ = try backend.convTranspose2dBackwardFilter(x, outputGrad: dy, weightShape: wShape, op) }
}

/// Pools count one flop per window element visited.
@MainActor func benchMaxPool(_ layer: String, input: Shape, _ op: MaxPool2D) throws {
    let x = try random(input)
    let (y, switches) = try backend.maxPool2d(x, op)
    let flops = Double(y.count * op.window.kernelH * op.window.kernelW)
    let bytes = 4.0 * Double(input.count + 2 * y.count)
    try record(layer, "forward", "\(input) -> \(y.shape)", flops: flops, bytes: bytes) { _ = try backend.maxPool2d(x, op) }
    try record(layer, "backward-data", "\(input) -> \(y.shape)", flops: flops, bytes: bytes) {
        _ = try backend.maxPool2dBackward(y, switches: switches, inputShape: input, op)
    }
}

@MainActor func benchAvgPool(_ layer: String, input: Shape, _ op: AvgPool2D) throws {
    let x = try random(input)
    let y = try backend.avgPool2d(x, op)
    let flops = Double(y.count * op.window.kernelH * op.window.kernelW)
    let bytes = 4.0 * Double(input.count + y.count)
    try record(layer, "forward", "\(input) -> \(y.shape)", flops: flops, bytes: bytes) { _ = try backend.avgPool2d(x, op) }
    try record(layer, "backward-data", "\(input) -> \(y.shape)", flops: flops, bytes: bytes) { _ = try backend.avgPool2dBackward(y, inputShape: input, op) }
}

do {
    try benchConv("VGG16 conv1_2", input: [1, 64, 224, 224], outChannels: 64, Conv2D(window: Window2D(kernel: 3, padding: 1)))
    try benchConv("VGG16 conv3_1", input: [1, 128, 56, 56], outChannels: 256, Conv2D(window: Window2D(kernel: 3, padding: 1)))
    try benchConv("VGG16 conv5_1", input: [1, 512, 14, 14], outChannels: 512, Conv2D(window: Window2D(kernel: 3, padding: 1)))
    try benchConv("ResNet-50 1x1 64->256", input: [1, 64, 56, 56], outChannels: 256, Conv2D(window: Window2D(kernel: 1)))
    try benchConv("gapnet conv2, batch 64", input: [64, 32, 28, 28], outChannels: 32, Conv2D(window: Window2D(kernel: 3, padding: 1)))
    try benchConv("gapnet conv4, batch 64", input: [64, 64, 14, 14], outChannels: 128, Conv2D(window: Window2D(kernel: 3, padding: 1)))
    try benchConv("3x3 stride 2 128->128", input: [1, 128, 56, 56], outChannels: 128, Conv2D(window: Window2D(kernel: 3, stride: 2, padding: 1)))
    try benchConv("3x3 dilation 2 256->256", input: [1, 256, 28, 28], outChannels: 256, Conv2D(window: Window2D(kernel: 3, padding: 2, dilation: 2)))
    try benchConvTranspose("transposed 4x4 s2 256->128", input: [1, 256, 14, 14], outChannels: 128,
                           ConvTranspose2D(window: Window2D(kernel: 4, stride: 2, padding: 1)))
    try benchMaxPool("max pool 2x2 s2", input: [1, 64, 224, 224], MaxPool2D(window: Window2D(kernel: 2, stride: 2)))
    try benchAvgPool("avg pool 3x3 s1 p1", input: [1, 256, 56, 56], AvgPool2D(window: Window2D(kernel: 3, padding: 1)))
    try benchAvgPool("global avg pool", input: [1, 2048, 7, 7], AvgPool2D.global(for: [1, 2048, 7, 7]))
} catch { fail("\(error)") }

let report = Report(device: backend.name, tiling: "\(backend.convTiling)", peakGFLOPS: peak, coldStartSeconds: coldSeconds,
                    warmStartSeconds: backend.buildReport.seconds, warmStartWasCacheHit: backend.buildReport.cacheHit, repeats: repeats, rows: rows)

var md = "<!-- kernel-bench:begin -->\n## Kernels (`make bench`)\n\n"
md += "Device: \(report.device); tiling: \(report.tiling). Measured peak \(String(format: "%.1f", peak)) GFLOP/s (`fma_peak`). "
md += "Median of \(repeats) runs after a first call, batch 1, float32. Program start-up: this run \(String(format: "%.3f", report.warmStartSeconds)) s "
md += "(\(report.warmStartWasCacheHit ? "Loupe kernel-cache hit" : "cache miss, compiled")), without Loupe's cache \(String(format: "%.3f", coldSeconds)) s. "
md += "Pools count one flop per window element. \"first ms\" is the first call, which on PoCL includes compiling the kernel "
md += "for its work-group size (PoCL caches that too, in ~/.cache/pocl).\n\n"
md += "| layer | direction | shape | variant | median ms | GFLOP/s | % of peak | GB/s | first ms |\n|---|---|---|---|---:|---:|---:|---:|---:|\n"
for r in rows {
    md += "| \(r.layer) | \(r.direction) | \(r.shape) | \(r.variant) | \(String(format: "%.3f", r.medianMilliseconds)) | \(String(format: "%.2f", r.gflops)) | "
    md += "\(String(format: "%.1f", r.fractionOfPeak * 100)) | \(String(format: "%.2f", r.gigabytesPerSecond)) | \(String(format: "%.1f", r.firstCallMilliseconds)) |\n"
}
md += "<!-- kernel-bench:end -->\n"
print("\n" + md)

if write {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    let resultsURL = root.appendingPathComponent("RESULTS.md")
    var results = (try? String(contentsOf: resultsURL, encoding: .utf8)) ?? "# Benchmark results\n\n"
    if let begin = results.range(of: "<!-- kernel-bench:begin -->"), let end = results.range(of: "<!-- kernel-bench:end -->\n") {
        results.replaceSubrange(begin.lowerBound..<end.upperBound, with: md)
    } else {
        results += "\n" + md
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do {
        try results.write(to: resultsURL, atomically: true, encoding: .utf8)
        try encoder.encode(report).write(to: root.appendingPathComponent("kernels.json"))
        print("wrote \(resultsURL.path) and kernels.json")
    } catch { fail("cannot write results: \(error)") }
}
