// The activation-maximization step on the device: VGG16 and ResNet-50 at 224x224, batch 1 and 8,
// class-logit objective, Fourier parameterization with colour decorrelation, jitter, random scale
// and rotation, total variation and Adam — every step forward through the whole network and
// backward to the image (no weight gradients). Reports steps/s, GFLOP/s (2 x the forward FLOPs
// per image: forward plus backward-data) and the peak device memory.
//
//   swift run -c release SynthesisBench [--device opencl:N] [--steps S] [--batches 1,8] [--models vgg16,resnet50] [--profile]
//
// Both runs hold the weights (Synthesizer.holdingWeights), so the timed steps reuse the packed and
// transformed weights made in the warm-up, as every step but the first of a real run does.
//
// --profile runs one more step with every kernel waited for and timed, and prints the kernels
// that took the most time (name, global size, launches, ms, share of the step).
import BenchSupport
import CLBackend
import Explain
import Foundation
import Graph

var arguments = BenchArguments(tool: "SynthesisBench")
@MainActor func fail(_ message: String) -> Never { arguments.fail(message) }
let profiling = arguments.flag("--profile")
let deviceFlag = arguments.option("--device")
let steps = arguments.integer("--steps", 3)
let batches = (arguments.option("--batches") ?? "1,8").split(separator: ",").compactMap { Int($0) }
let models = (arguments.option("--models") ?? "vgg16,resnet50").split(separator: ",").map { name -> ZooModel in
    guard let m = ZooModel(rawValue: String(name)) else { fail("unknown model '\(name)'") }
    return m
}
arguments.finish(usage: "SynthesisBench [--device opencl:N] [--steps S] [--batches 1,8] [--models vgg16,resnet50] [--profile]")
let backend = arguments.backend(deviceFlag)
print("device: \(backend.name), \(steps) timed steps after one warm-up step")
print("| model | batch | s/step | steps/s | GFLOP/s | peak MiB |")
print("|---|---|---|---|---|---|")
do {
    for model in models {
        let graph = try model.build(batch: 1, inputSize: 224, seed: 1, randomize: true)
        let synthesizer = try Synthesizer(graph: graph, backend: backend)
        let logits = graph[graph.outputs[0]].name
        for batch in batches {
            var options = SynthesisOptions()
            options.totalVariationWeight = 1e-3
            options.mean = [0.485, 0.456, 0.406]
            options.std = [0.229, 0.224, 0.225]
            options.reportEvery = 1 << 20
            let terms = (0..<batch).map { [ObjectiveTerm(layer: logits, .channelMean($0))] }
            // Held weights: their packed and Winograd forms are made in the warm-up step and reused, as
            // in every step but the first of a real run.
            let result = try synthesizer.holdingWeights { () throws -> SynthesisResult in
                options.steps = 1
                _ = try synthesizer.maximize(terms, options: options)   // compiles kernels for these sizes
                backend.releaseCachedBuffers()
                backend.resetPeakMemory()
                options.steps = steps
                return try synthesizer.maximize(terms, options: options)
            }
            let perStep = result.seconds / Double(steps)
            let flops = 2 * Double(graph.forwardFLOPs) * Double(batch)
            print(String(format: "| %@ | %d | %.2f | %.3f | %.1f | %.0f |", model.rawValue, batch, perStep, 1 / perStep,
                         flops / perStep / 1e9, Double(backend.peakMemoryBytes) / 1_048_576))
            if profiling {
                options.steps = 1
                backend.resetKernelProfile()
                backend.profilesKernels = true
                let profiled = try synthesizer.holdingWeights { () throws -> SynthesisResult in
                    _ = try synthesizer.maximize(terms, options: options)
                    backend.resetKernelProfile()
                    return try synthesizer.maximize(terms, options: options)
                }
                backend.profilesKernels = false
                let rows = backend.kernelProfile.sorted { $0.value.seconds > $1.value.seconds }
                let total = rows.reduce(0) { $0 + $1.value.seconds }
                var byName: [String: Double] = [:]
                for (k, v) in rows { byName[k.name, default: 0] += v.seconds }
                print(String(format: "\nprofile of one %@ batch-%d step: %.2f s in kernels of %.2f s (serialized)", model.rawValue, batch, total, profiled.seconds))
                print("| kernel | ms | share |")
                print("|---|---:|---:|")
                for (name, s) in byName.sorted(by: { $0.value > $1.value }).prefix(25) {
                    print(String(format: "| %@ | %.1f | %.1f%% |", name, s * 1000, 100 * s / total))
                }
                print("\n| kernel | global | launches | ms | share |")
                print("|---|---|---:|---:|---:|")
                for (k, v) in rows.prefix(40) {
                    print(String(format: "| %@ | %@ | %d | %.1f | %.1f%% |", k.name, k.global.map(String.init).joined(separator: "x"), v.launches,
                                 v.seconds * 1000, 100 * v.seconds / total))
                }
                print("")
            }
        }
    }
} catch { fail("\(error)") }
