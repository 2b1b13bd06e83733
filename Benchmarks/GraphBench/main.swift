// Whole-model benchmark: VGG16 and ResNet-50 at 224x224, batch 1 and 8, on an OpenCL device —
// forward (inference: activations freed as they go), forward + backward to the input (the
// activation-maximization / saliency step) and forward + backward with weight gradients (a
// training step), with the peak device memory of each.
//
//   swift run -c release GraphBench [--device opencl:N] [--repeats R] [--batches 1,8] [--models vgg16,resnet50] [--no-write]
import BenchSupport
import CLBackend
import Foundation
import Graph

var arguments = BenchArguments(tool: "GraphBench")
@MainActor func fail(_ message: String) -> Never { arguments.fail(message) }
let deviceFlag = arguments.option("--device")
let repeats = arguments.integer("--repeats", 3)
let batches = (arguments.option("--batches") ?? "1,8").split(separator: ",").compactMap { Int($0) }
let models = (arguments.option("--models") ?? "vgg16,resnet50").split(separator: ",").map { name -> ZooModel in
    guard let m = ZooModel(rawValue: String(name)) else { fail("unknown model '\(name)'") }
    return m
}
let write = !arguments.flag("--no-write")
arguments.finish(usage: "GraphBench [--device opencl:N] [--repeats R] [--batches 1,8] [--models vgg16,resnet50] [--no-write]")
let backend = arguments.backend(deviceFlag)
print("device: \(backend.name)")

struct Row {
    var model: String, batch: Int, mode: String, seconds: Double, gflops: Double, peakBytes: Int
}
var rows: [Row] = []

@MainActor func measure(_ body: () throws -> Void) throws -> (seconds: Double, peak: Int) {
    try body()   // the first run also compiles kernels for their work-group sizes
    try backend.synchronize()
    backend.releaseCachedBuffers()
    backend.resetPeakMemory()
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = Date()
        try body()
        try backend.synchronize()
        times.append(Date().timeIntervalSince(start))
    }
    return (times.sorted()[times.count / 2], backend.peakMemoryBytes)
}

for model in models {
    for batch in batches {
        do {
            let graph = try model.build(batch: batch)
            let exec = try Executor(graph, on: backend)
            let x = graph.inputs[0], logits = graph.outputs[0]
            let image = try backend.tensor((0..<graph[x].shape.count).map { _ in Float.random(in: -1...1) }, shape: graph[x].shape)
            let seed = try backend.full(graph[logits].shape, value: 1)
            let forwardFLOPs = Double(graph.forwardFLOPs)
            let modes: [(String, Double, () throws -> Void)] = [
                ("forward", forwardFLOPs, { _ = try exec.forward([x: image]) }),
                ("forward + backward to input", 2 * forwardFLOPs, {
                    let pass = try exec.forward([x: image], forBackward: true)
                    _ = try exec.backward(pass, seeds: [logits: seed], targets: [x])
                }),
                ("forward + backward with weight gradients", 3 * forwardFLOPs, {
                    let pass = try exec.forward([x: image], forBackward: true)
                    _ = try exec.backward(pass, seeds: [logits: seed], targets: Set(graph.parameters).union([x]))
                }),
            ]
            for (mode, work, body) in modes {
                let (seconds, peak) = try measure(body)
                rows.append(Row(model: model.rawValue, batch: batch, mode: mode, seconds: seconds, gflops: work / seconds / 1e9, peakBytes: peak))
                print("\(model.rawValue) batch \(batch) \(mode): \(String(format: "%.3f", seconds)) s, \(String(format: "%.1f", work / seconds / 1e9)) GFLOP/s, peak device memory \(String(format: "%.0f", Double(peak) / 1_048_576)) MiB")
            }
        } catch { fail("\(model.rawValue) batch \(batch): \(error)") }
    }
}

var md = "<!-- graph-bench:begin -->\n## Whole models (`swift run -c release GraphBench`)\n\n"
md += "Device: \(backend.name). 224x224 inputs, random weights, median of \(repeats) runs after a first run. "
md += "GFLOP/s counts 2 flops per multiply-add of the convolutions and linear layers, forward x1, "
md += "backward to the input x2, with weight gradients x3. Peak device memory includes the weights and pooled buffers.\n\n"
md += "| model | batch | pass | median s | GFLOP/s | peak device memory MiB |\n|---|---:|---|---:|---:|---:|\n"
for r in rows {
    md += "| \(r.model) | \(r.batch) | \(r.mode) | \(String(format: "%.3f", r.seconds)) | \(String(format: "%.1f", r.gflops)) | \(String(format: "%.0f", Double(r.peakBytes) / 1_048_576)) |\n"
}
md += "<!-- graph-bench:end -->\n"
print("\n" + md)
if write {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("RESULTS.md")
    var results = (try? String(contentsOf: url, encoding: .utf8)) ?? "# Benchmark results\n\n"
    if let begin = results.range(of: "<!-- graph-bench:begin -->"), let end = results.range(of: "<!-- graph-bench:end -->\n") {
        results.replaceSubrange(begin.lowerBound..<end.upperBound, with: md)
    } else {
        results += "\n" + md
    }
    do { try results.write(to: url, atomically: true, encoding: .utf8) } catch { fail("cannot write \(url.path): \(error)") }
    print("wrote \(url.path)")
}
