// Network Dissection throughput: ResNet-18 (zoo, random weights) at 224x224, layer4 (`layer4.1`, the last
// block's output, 512 units at 7x7), over a generated concept dataset with 224x224 masks. Times
// every pass of `Dissector.runAll` (4 quantile passes, 1 counting pass) and prints images/s for the
// whole dissection and per pass. Release build:
//   swift run -c release DissectBench [--device opencl:N] [--images N] [--batch B] [--mask S]
import BenchSupport
import CLBackend
import Explain
import Foundation
import Graph

var arguments = BenchArguments(tool: "DissectBench")
let images = arguments.integer("--images", 32), batch = arguments.integer("--batch", 8), mask = arguments.integer("--mask", 112, minimum: 16)
let deviceFlag = arguments.option("--device")
arguments.finish(usage: "DissectBench [--device opencl:N] [--images N] [--batch B] [--mask S]")
@MainActor func fail(_ message: String) -> Never { arguments.fail(message) }

do {
    let backend = arguments.backend(deviceFlag)
    print("device: \(backend.name)")
    let dir = NSTemporaryDirectory() + "loupe-dissectbench-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // Images and masks at the mask size; the dissector resizes images to the model's 224x224.
    try ConceptDataset.generate(into: dir, count: images, size: mask, seed: 1, garments: nil)
    let data = try BrodenDataset(directory: dir)
    let graph = try ZooModel.resnet18.build(batch: batch, inputSize: 224, seed: 1)
    var settings = DissectionSettings(layers: ["layer4.1"])
    settings.normalization = "imagenet"
    let dissector = try Dissector(graph: graph, backend: backend, dataset: data, settings: settings)
    // Warm-up: one batch of the first pass compiles the kernels' work-group variants.
    _ = try dissector.run(dissector.initialState(), images: 0..<min(batch, images))
    try backend.synchronize()
    var state = dissector.initialState()
    var seconds: [Double] = []
    while !state.isComplete {
        let start = Date()
        let partial = try dissector.run(state, images: 0..<images)
        state = try state.merging([partial])
        seconds.append(Date().timeIntervalSince(start))
    }
    let total = seconds.reduce(0, +)
    print("device: \(backend.name)")
    print("resnet18 layer4 (512 units, 7x7) at 224x224, \(images) images, batch \(batch), masks \(mask)x\(mask), \(data.labels.count - 1) concepts")
    for (p, s) in seconds.enumerated() {
        print(String(format: "  pass %d (%@): %.2f s, %.2f images/s", p + 1, p < 4 ? "quantile" : "counts", s, Double(images) / s))
    }
    print(String(format: "dissection: %.2f s, %.2f images/s (all 5 passes)", total, Double(images) / total))
    let results = try DissectionResults(state: state, dataset: data)
    print(results.table, terminator: "")
} catch {
    fail("\(error)")
}
