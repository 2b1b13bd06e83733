import ArgumentParser
import CLBackend
import Explain
import Foundation
import Graph

/// What a dissection job needs besides its state: written with every shard's partial and every
/// merged state, so that `--merge` can render the report without being told the model again.
struct DissectionJob: Codable {
    var model: String
    var weights: String?
    var dataset: String
    var batch: Int
    var state: DissectionState
    var partial: DissectionPartial?
}

struct Dissect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Network Dissection: label each unit of the given layers with its best concept of a Broden-format dataset.",
        discussion: """
            One process: loupe dissect MODEL --dataset DIR --layers a,b --out OUT.
            Sharded (n processes, machines or devices): each pass (5 in all) runs as n shards, then a merge:
              loupe dissect MODEL --dataset DIR --layers a,b --shard i/n --out parts [--state merged/state-after-passK.json]
              loupe dissect --merge parts --out merged
            The merge after the last pass writes the same outputs as one process, exactly.
            --net2vec also trains Net2Vec (Fong & Vedaldi 2018) per layer and pixel-level concept on the dataset's train images \
            and scores it on its val images against the best single unit: net2vec.csv, and a table in summary.txt.
            """)

    @Argument(help: "A zoo model name or an .onnx file (not with --merge).") var model: String?
    @Option(help: "Weights to load by parameter name: a .safetensors or .onnx file.") var weights: String?
    @Option(help: "A dataset in the Broden format (index.csv, label.csv, category.csv, images/).") var dataset: String?
    @Option(help: "Comma-separated layer (value) names, e.g. conv3,conv4 (see `loupe info`).") var layers: String?
    @Option(help: "Output folder.") var out: String = "loupe-dissect"
    @Option(help: "Run one pass over shard i of n (i in 1...n), writing a partial result.") var shard: String?
    @Option(help: "The merged state-after-passK.json to continue from (shards of passes after the first).") var state: String?
    @Option(parsing: .upToNextOption, help: "Partial results (partial-*.json files, or folders of them) to merge.") var merge: [String] = []
    @Option(help: "Images per forward pass.") var batch: Int = 16
    @Option(help: "Fraction of each unit's activations above its threshold.") var quantile: Double = 0.005
    @Option(help: "Input normalization: unit ([0, 1]) or imagenet.") var normalize: String = "unit"
    @Option(help: "Detectors shown in the HTML page.") var topUnits: Int = 12
    @Flag(help: "Also train and score Net2Vec concept embeddings (after the last pass).") var net2vec = false
    @Option(help: "Net2Vec training epochs over the train images.") var net2vecEpochs: Int = 10
    @Option(help: "Net2Vec Adam learning rate.") var net2vecLr: Float = 0.01
    @OptionGroup var deviceOption: DeviceOption
    @Flag(help: "Replace output files that exist.") var overwrite = false

    func run() throws {
        try reportingErrors {
            guard net2vecEpochs >= 1, net2vecLr > 0 else { throw ValidationError("--net2vec-epochs and --net2vec-lr must be positive") }
            if !merge.isEmpty { return try runMerge() }
            guard let model else { throw ValidationError("give a MODEL (or --merge PARTS...)") }
            guard let dataset else { throw ValidationError("--dataset DIR is required") }
            guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
            let backend = try deviceOption.backend()
            let data = try BrodenDataset(directory: dataset)
            var job: DissectionJob
            if let state {
                job = try readJob(state)
                guard job.partial == nil else { throw GraphError("\(state) is a shard's partial result; give a merged state-after-passK.json") }
                guard job.model == model, job.dataset == dataset else {
                    throw GraphError("\(state) is a dissection of \(job.model) on \(job.dataset), not \(model) on \(dataset)")
                }
            } else {
                guard let layers else { throw ValidationError("--layers a,b is required") }
                var settings = DissectionSettings(layers: layers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                settings.quantile = quantile
                settings.normalization = normalize
                job = DissectionJob(model: model, weights: weights, dataset: dataset, batch: batch,
                                    state: DissectionState(settings: settings, images: 0, layers: []))
            }
            let dissector = try makeDissector(job, backend: backend, data: data)
            if state == nil { job.state = dissector.initialState() }
            if let shard {
                let (i, n) = try parseShard(shard)
                let range = shardRange(i - 1, of: n, images: data.count)
                let pass = job.state.pass
                let progress = Progress(total: range.count, label: "pass \(pass + 1)/\(DissectionState.passes) shard \(i)/\(n)")
                job.partial = try dissector.run(job.state, images: range) { progress.update($0) }
                let path = (out as NSString).appendingPathComponent("partial-pass\(pass + 1)-shard\(i)of\(n).json")
                try writeJob(job, to: path)
                print("wrote \(path) (pass \(pass + 1) of \(DissectionState.passes), images \(range.lowerBound)..<\(range.upperBound))")
                return
            }
            let progress = ProgressByPass(images: data.count)
            let final = try dissector.runAll { pass, done in progress.update(pass: pass, done: done) }
            job.state = final
            try finish(job, dissector: dissector, data: data)
        }
    }

    func runMerge() throws {
        var files: [String] = []
        for p in merge {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { throw GraphError("\(p): no such file or folder") }
            if isDir.boolValue {
                files += try FileManager.default.contentsOfDirectory(atPath: p).sorted().filter { $0.hasPrefix("partial-") && $0.hasSuffix(".json") }
                    .map { (p as NSString).appendingPathComponent($0) }
            } else {
                files.append(p)
            }
        }
        let jobs = try files.map(readJob)
        guard let first = jobs.first else { throw GraphError("--merge: no partial-*.json files found in \(merge.joined(separator: " "))") }
        for (file, job) in zip(files, jobs) {
            guard job.partial != nil else { throw GraphError("\(file) is not a shard's partial result") }
            guard job.state == first.state, job.model == first.model, job.dataset == first.dataset else {
                throw GraphError("\(file) continues a different state than \(files[0]) (another pass, model or dataset)")
            }
        }
        var merged = first
        merged.partial = nil
        merged.state = try first.state.merging(jobs.map { $0.partial! })
        if !merged.state.isComplete {
            let path = (out as NSString).appendingPathComponent("state-after-pass\(merged.state.pass).json")
            try writeJob(merged, to: path)
            print("merged \(jobs.count) shards of pass \(first.state.pass + 1) of \(DissectionState.passes) into \(path); next: run the shards again with --state \(path)")
            return
        }
        let backend = try deviceOption.backend()
        let data = try BrodenDataset(directory: merged.dataset)
        try finish(merged, dissector: try makeDissector(merged, backend: backend, data: data), data: data)
    }

    func makeDissector(_ job: DissectionJob, backend: Backend, data: BrodenDataset) throws -> Dissector {
        let graph = try ModelSource.load(job.model, batch: job.batch, weights: job.weights)
        return try Dissector(graph: graph, backend: backend, dataset: data, settings: job.state.settings)
    }

    /// Writes state.json, units.csv, summary.txt and index.html (and with --net2vec net2vec.csv), and prints the table.
    func finish(_ job: DissectionJob, dissector: Dissector, data: BrodenDataset) throws {
        let results = try DissectionResults(state: job.state, dataset: data)
        let names = ["state.json", "units.csv", "summary.txt", "index.html"] + (net2vec ? ["net2vec.csv"] : [])
        let outputs = names.map { (out as NSString).appendingPathComponent($0) }
        if !overwrite, let existing = outputs.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            throw GraphError("\(existing) exists; pass --overwrite to replace it")
        }
        var summary = results.table
        if net2vec {
            var settings = Net2VecSettings()
            settings.epochs = net2vecEpochs
            settings.learningRate = net2vecLr
            let fitted = try Net2Vec(dissector: dissector, state: job.state, settings: settings).run { printError("loupe: " + $0) }
            try write(Net2VecResult.csv(fitted), to: outputs[4])
            summary += "\n" + Net2VecResult.table(fitted)
        }
        try writeJob(job, to: outputs[0], replacing: true)
        try write(results.csv, to: outputs[1])
        try write(summary, to: outputs[2])
        try write(try results.html(dissector: dissector, state: job.state, topUnits: topUnits), to: outputs[3])
        print(summary, terminator: "")
        print("wrote " + outputs.dropFirst().joined(separator: ", "))
    }

    func parseShard(_ text: String) throws -> (Int, Int) {
        let parts = text.split(separator: "/").map { Int($0) }
        guard parts.count == 2, let i = parts[0], let n = parts[1], n >= 1, (1...n).contains(i) else {
            throw ValidationError("--shard must be i/n with 1 <= i <= n, got '\(text)'")
        }
        return (i, n)
    }

    func readJob(_ path: String) throws -> DissectionJob {
        guard let data = FileManager.default.contents(atPath: path) else { throw GraphError("cannot read \(path): no such file") }
        do {
            return try JSONDecoder().decode(DissectionJob.self, from: data)
        } catch {
            throw GraphError("\(path) is not a dissection state or partial result: \(error.localizedDescription)")
        }
    }

    func writeJob(_ job: DissectionJob, to path: String, replacing: Bool = false) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try write(String(decoding: try encoder.encode(job), as: UTF8.self), to: path, replacing: replacing)
    }

    func write(_ text: String, to path: String, replacing: Bool = true) throws {
        if !replacing && !overwrite && FileManager.default.fileExists(atPath: path) {
            throw GraphError("\(path) exists; pass --overwrite to replace it")
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw GraphError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// A progress bar per dissection pass.
final class ProgressByPass {
    let images: Int
    private var current: (pass: Int, bar: Progress)?
    init(images: Int) { self.images = images }
    func update(pass: Int, done: Int) {
        if current?.pass != pass { current = (pass, Progress(total: images, label: "pass \(pass + 1)/\(DissectionState.passes)")) }
        current!.bar.update(done)
    }
}

struct MakeConcepts: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-concepts",
        abstract: "Write a concept-annotated dataset in the Broden format: colour regions, textures, shapes and Fashion-MNIST garments, with pixel masks.")

    @Argument(help: "Output folder.") var directory: String
    @Option(help: "Images to write.") var count: Int = 1000
    @Option(help: "Image (and mask) side in pixels.") var size: Int = 64
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Fashion-MNIST folder for the garments.") var fashionMnist: String = FashionMNIST.defaultDirectory
    @Flag(help: "Shapes only: no Fashion-MNIST garments.") var noGarments = false
    @Flag(help: "Also write train_x.npy (gray, [N, 1, S, S] in [0, 1]) and train_y.npy (class: the shape 0-2, or 3 + the garment's class) for loupe train --data DIR.")
    var npy = false
    @Flag(help: "Replace a dataset that exists.") var overwrite = false

    func run() throws {
        try reportingErrors {
            let garments = noGarments ? nil : try FashionMNIST(split: .train, directory: fashionMnist)
            let progress = Progress(total: count, label: "make-concepts")
            let classes = try ConceptDataset.generate(into: directory, count: count, size: size, seed: seed, garments: garments,
                                                      overwrite: overwrite) { done in
                if done == count || done % max(1, count / 20) == 0 { progress.update(done) }
            }
            if npy {
                let data = try BrodenDataset(directory: directory)
                let pixels = try (0..<count).flatMap { try data.image(at: $0).tensor(channels: 1).values }
                try NPY.write(pixels, shape: [count, 1, size, size], to: directory + "/train_x.npy", overwrite: overwrite)
                try NPY.write(classes.map(Float.init), shape: [count], to: directory + "/train_y.npy", overwrite: overwrite)
            }
            print("wrote \(count) images of \(size)x\(size) with colour, object and texture masks to \(directory)")
        }
    }
}
