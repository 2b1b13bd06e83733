import Explain
import Foundation
import XCTest

/// The `loupe` executable end to end: outputs written, and bad input refused with one line and exit code 2.
final class CLITests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func loupe(_ args: [String]) throws -> (code: Int32, out: String, err: String) { try runLoupe(args, in: dir) }

    /// A float32 `.npy` written by hand (header per the NumPy format spec), independent of Loupe's writer.
    private func writeNPY(_ name: String, shape: [Int], values: [Float]) throws {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))\(shape.count == 1 ? "," : "")), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)] + Array(header.utf8)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: dir.appendingPathComponent(name))
    }

    /// `loupe evaluate` on the shipped cluttered-canvas model prints the method x metric table with
    /// both baselines, saves the canvases it scored, and refuses to replace its outputs unasked.
    func testEvaluatePrintsTheTableWithBaselines() throws {
        let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Models/clutternet.onnx").path
        let args = ["evaluate", model, "--methods", "cam,saliency", "--count", "4", "--faithfulness-count", "1", "--randomization-count", "1",
                    "--markdown", "m.md", "--save-images", "canvases", "--save-count", "2"]
        let r = try loupe(args)
        XCTAssertEqual(r.code, 0, r.err)
        for row in ["cam", "saliency", "baseline: centred Gaussian", "baseline: random"] { XCTAssertTrue(r.out.contains(row), "\(row) in \(r.out)") }
        let table = try String(contentsOf: dir.appendingPathComponent("m.md"), encoding: .utf8)
        XCTAssertEqual(table.split(separator: "\n").filter { $0.hasPrefix("| ") }.count, 5, table)  // header + 2 methods + 2 baselines
        let saved = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("canvases").path)
        XCTAssertEqual(saved.count, 2)
        XCTAssertEqual(try readPNG(dir.appendingPathComponent("canvases/\(saved[0])").path).width, 84)
        let again = try loupe(args)
        XCTAssertEqual(again.code, 2)
        XCTAssertTrue(again.err.contains("m.md exists"), again.err)
        XCTAssertEqual(try loupe(args + ["--overwrite"]).code, 0)
    }

    func testRunAndGradWriteTheirOutputs() throws {
        try writeNPY("x.npy", shape: [2, 1, 28, 28], values: (0..<1568).map { _ in Float.random(in: 0...1) })
        let run = try loupe(["run", "gapnet", "--input", "x.npy", "--output", "relu4=cam.npy", "--output", "logits.npy", "--device", "reference"])
        XCTAssertEqual(run.code, 0, run.err)
        XCTAssertTrue(run.out.contains("relu4 [2x128x14x14]") && run.out.contains("fc [2x10]"), run.out)
        let grad = try loupe(["grad", "gapnet", "--input", "x.npy", "--unit", "fc:3", "--relu", "guided", "--output", "dx.npy"])
        XCTAssertEqual(grad.code, 0, grad.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("dx.npy").path))
        let info = try loupe(["info", "vgg16"])
        XCTAssertEqual(info.code, 0, info.err)
        XCTAssertTrue(info.out.contains("138357544 trainable") && info.out.contains("size 196.0"), info.out)
    }

    /// Every explanation command writes an overlay PNG, the raw map and a sidecar per image.
    func testExplanationCommandsWriteMapsAndSidecars() throws {
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("imgs"), withIntermediateDirectories: true)
        let image = try Explain.Image(width: 40, height: 32, channels: 1, pixels: (0..<1280).map { _ in UInt8.random(in: 0...255) })
        for i in 0..<3 { try writePNG(image, to: dir.appendingPathComponent("imgs/im\(i).png").path) }
        for method in ["cam", "gradcam", "gradcampp", "layercam", "eigencam", "scorecam", "saliency", "guided", "deconv",
                       "guidedgradcam", "smoothgrad", "ig", "occlusion"] {
            let r = try loupe([method, "gapnet", "imgs", "--out", "out", "--samples", "4", "--steps", "4", "--class", "3"])
            XCTAssertEqual(r.code, 0, "\(method): \(r.err)")
            for i in 0..<3 {
                let base = dir.appendingPathComponent("out/im\(i).\(method == "deconv" ? "deconvnet" : method == "ig" ? "integratedgradients" : method).class3").path
                let map = try readPNG(base + ".png")
                XCTAssertEqual([map.width, map.height], [28, 28], method)
                let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + ".json"))) as? [String: Any]
                XCTAssertEqual(json?["class"] as? Int, 3, method)
                XCTAssertTrue(FileManager.default.fileExists(atPath: base + ".npy"), method)
                // The PNG's own text carries the same record as the sidecar.
                let text = try pngTextChunks(base + ".png")
                let record = try text.first { $0.keyword == "loupe" }.map { try JSONSerialization.jsonObject(with: Data($0.value.utf8)) as? NSDictionary }
                XCTAssertEqual(record ?? nil, json.map { NSDictionary(dictionary: $0) }, method)
            }
        }
        let report = try loupe(["report", "gapnet", "imgs", "--methods", "gradcam,saliency", "--out", "report.html"])
        XCTAssertEqual(report.code, 0, report.err)
        let html = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
        // Per image: the input plus a heatmap and an overlay per method, all inline.
        XCTAssertEqual(html.components(separatedBy: "src=\"data:image/png;base64,").count - 1, 3 * (1 + 2 * 2))
        XCTAssertTrue(html.contains("<th>gradcam</th>") && html.hasSuffix("</html>\n"))
        let again = try loupe(["gradcam", "gapnet", "imgs", "--out", "out", "--class", "3"])
        XCTAssertEqual(again.code, 2)
        XCTAssertTrue(again.err.contains("not overwriting"), again.err)
        let notGAP = try loupe(["cam", "lenet5", "imgs", "--out", "out2"])
        XCTAssertEqual(notGAP.code, 2)
        XCTAssertTrue(notGAP.err.contains("global average pooling"), notGAP.err)
    }

    /// Two classes of 28x28 images (bright left or right half): `train` writes a checkpoint per
    /// epoch (one stderr line each, not a TTY), prints the test accuracy, and the model runs.
    func testTrainWritesAModelThatRuns() throws {
        let n = 48
        var images: [Float] = [], labels: [Float] = []
        for i in 0..<n {
            for _ in 0..<28 { for x in 0..<28 { images.append((x < 14) == (i % 2 == 0) ? 1 : Float.random(in: 0..<0.3)) } }
            labels.append(Float(i % 2))
        }
        try writeNPY("x.npy", shape: [n, 1, 28, 28], values: images)
        try writeNPY("y.npy", shape: [n], values: labels)
        let train = try loupe(["train", "fashioncnn", "--images", "x.npy", "--labels", "y.npy", "--test-images", "x.npy", "--test-labels", "y.npy",
                               "--epochs", "2", "--batch", "16", "--lr", "0.01", "--optimizer", "adam", "--schedule", "step:1:0.5", "--out", "m.onnx"])
        XCTAssertEqual(train.code, 0, train.err)
        XCTAssertEqual(train.err.split(separator: "\n").filter { $0.hasPrefix("epoch ") }.count, 2, train.err)
        XCTAssertTrue(train.out.contains("test accuracy"), train.out)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["m.onnx", "x.npy", "y.npy"])
        try writeNPY("one.npy", shape: [1, 1, 28, 28], values: Array(images[0..<784]))
        let run = try loupe(["run", "m.onnx", "--input", "one.npy", "--output", "logits.npy"])
        XCTAssertEqual(run.code, 0, run.err)
        let again = try loupe(["train", "fashioncnn", "--images", "x.npy", "--labels", "y.npy", "--out", "m.onnx"])
        XCTAssertEqual(again.code, 2)
        XCTAssertTrue(again.err.contains("not overwriting"), again.err)
        let badSchedule = try loupe(["train", "fashioncnn", "--images", "x.npy", "--labels", "y.npy", "--schedule", "linear", "--out", "n.onnx"])
        XCTAssertEqual(badSchedule.code, 2)
        XCTAssertTrue(badSchedule.err.contains("unknown --schedule 'linear'"), badSchedule.err)
    }

    func testBadInputGivesOneLineAndExitCodeTwo() throws {
        try writeNPY("x.npy", shape: [1, 1, 28, 28], values: Array(repeating: 0, count: 784))
        try writeNPY("wrong.npy", shape: [1, 3, 28, 28], values: Array(repeating: 0, count: 2352))
        try Data("\u{08}\u{01}garbage that is not a protobuf".utf8).write(to: dir.appendingPathComponent("broken.onnx"))
        let cases: [([String], String)] = [
            (["run", "broken.onnx", "--input", "x.npy", "--output", "y.npy"], "broken.onnx"),
            (["run", "gapnet", "--output", "y.npy"], "missing input"),
            (["run", "gapnet", "--input", "wrong.npy", "--output", "y.npy"], "wrong.npy has shape"),
            (["run", "gapnet", "--input", "absent.npy", "--output", "y.npy"], "absent.npy"),
            (["grad", "gapnet", "--input", "x.npy", "--unit", "nosuch:0", "--output", "dx.npy"], "no layer 'nosuch'"),
            (["info", "no-such-model"], "unknown model"),
        ]
        for (args, expected) in cases {
            let r = try loupe(args)
            XCTAssertEqual(r.code, 2, "\(args): \(r.err)")
            let lines = r.err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(expected), "\(args): \(r.err)")
        }
        try writeNPY("y.npy", shape: [1], values: [42])
        let refused = try loupe(["run", "gapnet", "--input", "x.npy", "--output", "y.npy"])
        XCTAssertEqual(refused.code, 2)
        XCTAssertTrue(refused.err.contains("not overwriting"), refused.err)
    }

    func testMaximizeAndInvertWriteGridsAndRefuseBadObjectives() throws {
        let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Models/fashioncnn.onnx").standardized.path
        let ok = try loupe(["maximize", model, "--units", "conv2:0-2", "--steps", "4", "--out", "am", "--json", "am.json", "--device", "opencl:0"])
        XCTAssertEqual(ok.code, 0, ok.err)
        for f in ["am/conv2.unit0.png", "am/conv2.unit2.png", "am/conv2.grid.png", "am.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), f)
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("am.json"))) as! [String: Any]
        XCTAssertEqual(summary["steps"] as? Int, 4)
        XCTAssertEqual((summary["final_objective"] as? [Double])?.count, 3)
        let copies = try loupe(["maximize", model, "--units", "conv2:1", "--copies", "3", "--diversity", "0.5", "--diversity-layer", "relu2",
                                "--steps", "4", "--out", "copies", "--json", "copies.json", "--device", "opencl:0"])
        XCTAssertEqual(copies.code, 0, copies.err)
        for f in ["copies/conv2.unit1.copy0.png", "copies/conv2.unit1.copy2.png", "copies/conv2.grid.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), f)
        }
        let diverse = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("copies.json"))) as! [String: Any]
        XCTAssertEqual((diverse["final_objective"] as? [Double])?.count, 3)
        XCTAssertTrue((0...2).contains(diverse["diversity"] as? Double ?? -1), "\(diverse)")
        let again = try loupe(["maximize", model, "--units", "conv2:0-2", "--steps", "4", "--out", "am", "--device", "opencl:0"])
        XCTAssertEqual(again.code, 2)
        XCTAssertTrue(again.err.contains("exists"), again.err)
        let cases: [([String], String)] = [
            (["maximize", model, "--units", "conv9:0"], "conv9"),
            (["maximize", model, "--units", "conv2:40"], "out of range"),
            (["maximize", model, "--units", "conv2:0-3+fc:0-1"], "different lengths"),
            (["maximize", model, "--units", "conv2:1", "--diversity", "1"], "--copies"),
            (["maximize", model, "--units", "conv2:1", "--copies", "2", "--diversity", "1", "--diversity-layer", "relu7"], "relu7"),
            (["invert", model, "missing.png", "--layer", "conv1"], "missing.png"),
        ]
        for (args, needle) in cases {
            let r = try loupe(args + ["--steps", "2", "--device", "opencl:0"])
            XCTAssertEqual(r.code, 2, "\(args)")
            XCTAssertTrue(r.err.contains(needle) && r.err.split(separator: "\n").count == 1, "\(args): \(r.err)")
        }
        var pixels = [UInt8](repeating: 0, count: 28 * 28)
        for i in 300..<500 { pixels[i] = 200 }
        try writePNG(Image(width: 28, height: 28, channels: 1, pixels: pixels), to: dir.appendingPathComponent("x.png").path)
        let inv = try loupe(["invert", model, "x.png", "--layer", "conv1,pool2", "--steps", "8", "--out", "inv", "--device", "opencl:0"])
        XCTAssertEqual(inv.code, 0, inv.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("inv/x.invert.grid.png").path), inv.err)
        XCTAssertTrue(inv.err.contains("pool2 normalized error"), inv.err)
    }

    /// `loupe tune` on gapnet (4 convs, each forward, backward-data and backward-filter, and fc's
    /// weight gradient: 13 shapes; at batch 2 fc's forward and backward-data run on the dense row
    /// kernels, which have no variants) times each shape once and prints its winner; a second run on the same cache times
    /// nothing and prints the same winners and times, read from the stored file.
    func testTuneStoresWinnersAndASecondRunTimesNothing() throws {
        let env = ["LOUPE_KERNEL_CACHE": dir.appendingPathComponent("cache").path]
        let args = ["tune", "gapnet", "--batch", "2", "--device", "opencl:0"]
        let first = try runLoupe(args, in: dir, environment: env)
        XCTAssertEqual(first.code, 0, first.err)
        XCTAssertTrue(first.out.contains("13 shapes timed, 0 convolutions from stored winners"), first.out)
        XCTAssertTrue(first.err.contains("conv4 backward-filter") && first.err.contains("timing"), first.err)
        let second = try runLoupe(args, in: dir, environment: env)
        XCTAssertEqual(second.code, 0, second.err)
        XCTAssertTrue(second.out.contains("0 shapes timed, 13 convolutions from stored winners"), second.out)
        XCTAssertFalse(second.err.contains("timing"), second.err)
        // The same rows (layer, direction, shapes, variant, ms, GFLOP/s), only the source column differs.
        func rows(_ out: String, source: String) -> [String] {
            out.split(separator: "\n").filter { $0.hasSuffix(" " + source) }.map { String($0.dropLast(source.count)) }
        }
        let timed = rows(first.out, source: "timed")
        XCTAssertEqual(timed.count, 13, first.out)
        XCTAssertEqual(timed, rows(second.out, source: "stored"))
        // Held weights are tuned apart: the 4 forward and 4 backward-data shapes again, the 5 weight gradients stored.
        let held = try runLoupe(args + ["--held-weights"], in: dir, environment: env)
        XCTAssertEqual(held.code, 0, held.err)
        XCTAssertTrue(held.out.contains("8 shapes timed, 5 convolutions from stored winners"), held.out)
        XCTAssertEqual(rows(held.out, source: "timed").filter { $0.contains(" held ") }.count, 8, held.out)
        for (bad, needle) in [(["--directions", "sideways"], "sideways"), (["--device", "reference"], "OpenCL device")] {
            let r = try runLoupe(["tune", "gapnet"] + bad, in: dir, environment: env)
            XCTAssertEqual(r.code, 2, r.out)
            XCTAssertTrue(r.err.contains(needle) && r.err.split(separator: "\n").count == 1, r.err)
        }
    }
}
