import Foundation
import XCTest

/// `loupe make-concepts` and `loupe dissect` end to end: 3 shards per pass and merges give
/// byte-identical outputs to one process; bad input is one line and exit code 2.
final class DissectCLITests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-dissect-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func loupe(_ args: [String]) throws -> (code: Int32, out: String, err: String) { try runLoupe(args, in: dir) }

    private func contents(_ path: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent(path)) }

    func testShardedDissectionEqualsSingleProcess() throws {
        let made = try loupe(["make-concepts", "data", "--count", "24", "--size", "28", "--seed", "2", "--no-garments"])
        XCTAssertEqual(made.code, 0, made.err)
        let common = ["--dataset", "data", "--layers", "relu1,relu2", "--batch", "5", "--device", "reference"]
        let single = try loupe(["dissect", "fashioncnn"] + common + ["--out", "single"])
        XCTAssertEqual(single.code, 0, single.err)
        XCTAssertTrue(single.out.contains("layer  units  detectors"), single.out)
        XCTAssertTrue(single.err.contains("pass 5/5"), single.err)
        for pass in 1...5 {
            for shard in 1...3 {
                let state = pass > 1 ? ["--state", "merged/state-after-pass\(pass - 1).json"] : []
                let r = try loupe(["dissect", "fashioncnn"] + common + ["--out", "parts\(pass)", "--shard", "\(shard)/3"] + state)
                XCTAssertEqual(r.code, 0, r.err)
            }
            let m = try loupe(["dissect", "--merge", "parts\(pass)", "--out", "merged", "--device", "reference"])
            XCTAssertEqual(m.code, 0, m.err)
        }
        for file in ["units.csv", "summary.txt", "state.json", "index.html"] {
            XCTAssertEqual(try contents("merged/" + file), try contents("single/" + file), file)
        }
        let csv = String(decoding: try contents("single/units.csv"), as: UTF8.self)
        XCTAssertEqual(csv.split(separator: "\n").count, 1 + 16 + 32)

        // Refusals: one line, exit 2.
        let again = try loupe(["dissect", "fashioncnn"] + common + ["--out", "single"])
        XCTAssertEqual(again.code, 2)
        XCTAssertTrue(again.err.contains("exists; pass --overwrite"), again.err)
        let missing = try loupe(["dissect", "--merge", "parts1", "parts1", "--out", "twice", "--device", "reference"])
        XCTAssertEqual(missing.code, 2, missing.err)
        let layer = try loupe(["dissect", "fashioncnn", "--dataset", "data", "--layers", "conv9", "--device", "reference"])
        XCTAssertEqual(layer.code, 2)
        XCTAssertTrue(layer.err.contains("no value 'conv9'"), layer.err)
        XCTAssertEqual(layer.err.split(separator: "\n").count, 1, layer.err)
        let shard = try loupe(["dissect", "fashioncnn", "--dataset", "data", "--layers", "relu1", "--shard", "4/3"])
        XCTAssertNotEqual(shard.code, 0)
        let nodata = try loupe(["dissect", "fashioncnn", "--dataset", "nothing", "--layers", "relu1", "--device", "reference"])
        XCTAssertEqual(nodata.code, 2)
        XCTAssertTrue(nodata.err.contains("nothing/category.csv"), nodata.err)
    }

    /// `loupe train conceptnet --data concepts` trains the RGB concept net, and `loupe dissect
    /// --net2vec` adds net2vec.csv and a Net2Vec table to the summary.
    func testConceptTrainingAndNet2Vec() throws {
        let trained = try loupe(["train", "conceptnet", "--data", "concepts", "--canvas", "32", "--train-count", "64", "--test-count", "16",
                                 "--epochs", "1", "--batch", "16", "--optimizer", "adam", "--lr", "0.002", "--out", "cn.onnx"])
        XCTAssertEqual(trained.code, 0, trained.err)
        XCTAssertTrue(trained.out.contains("test accuracy") && trained.out.contains("(16 images)"), trained.out)
        XCTAssertEqual(try loupe(["make-concepts", "data", "--count", "30", "--size", "32", "--seed", "3", "--no-garments"]).code, 0)
        let r = try loupe(["dissect", "cn.onnx", "--dataset", "data", "--layers", "relu3,relu4", "--batch", "10", "--net2vec",
                           "--net2vec-epochs", "2", "--out", "out"])
        XCTAssertEqual(r.code, 0, r.err)
        let rows = String(decoding: try contents("out/net2vec.csv"), as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(rows.first, "layer,concept,category,best_unit,unit_iou,net2vec_iou,training_loss")
        XCTAssertEqual(Set(rows.dropFirst().map { $0.split(separator: ",")[0] }), ["relu3", "relu4"])
        XCTAssertTrue(rows.contains { $0.hasPrefix("relu4,circle,object,") }, rows.joined(separator: "\n"))
        XCTAssertTrue(String(decoding: try contents("out/summary.txt"), as: UTF8.self).contains("Net2Vec (held-out set IoU"))
        let epochs = try loupe(["dissect", "cn.onnx", "--dataset", "data", "--layers", "relu4", "--net2vec", "--net2vec-epochs", "0"])
        XCTAssertEqual(epochs.code, 2)
        XCTAssertEqual(epochs.err.split(separator: "\n").count, 1, epochs.err)
    }
}
