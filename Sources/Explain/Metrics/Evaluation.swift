import CLBackend
import Foundation
import Graph

/// One row of the method x metric table.
public struct EvaluationRow: Sendable {
    public var method: String
    /// Pointing-game accuracy over the localization images.
    public var pointing: Double
    /// CAM-paper box localization accuracy (20% threshold, largest component, IoU >= 0.5).
    public var box: Double
    /// Mean deletion AUC (lower is better) and insertion AUC (higher is better).
    public var deletion: Double
    public var insertion: Double
    /// Mean Spearman correlation with the original maps after randomizing the whole model top-down
    /// (lower means the map depends on the weights); nil for the baselines.
    public var randomization: Double?
    /// Seconds per image of the method itself.
    public var secondsPerImage: Double?
}

/// How much of the cluttered test set each metric uses.
public struct EvaluationPlan: Sendable {
    public var localizationImages = 64
    public var faithfulnessImages = 16
    public var faithfulnessSteps = 8
    public var randomizationImages = 4
    /// Pointing tolerance in pixels (15 at 224x224 in the original; scaled to the canvas by default).
    public var tolerance: Int? = nil
    public var seed: UInt64 = 0
    public init() {}
}

extension Explainer {
    /// The metrics table on a localization dataset with ground-truth boxes and masks, for each
    /// method and for the centred-Gaussian and random baselines. Targets are the true classes.
    public func evaluate(_ methods: [ExplanationMethod], on data: ClutteredFashionMNIST, settings: ExplanationMethod.Settings,
                         plan: EvaluationPlan = .init(), progress: (String) -> Void = { _ in }) throws -> [EvaluationRow] {
        let (h, w) = (imageShape[1], imageShape[2])
        guard data.imageShape == imageShape else { throw ExplainError("the dataset's images are \(data.imageShape); the model takes \(imageShape)") }
        let n = min(plan.localizationImages, data.count)
        guard n > 0 else { throw ExplainError("the dataset is empty") }
        let indices = Array(0..<n)
        let (pixels, labels) = data.batch(indices)
        let images = try HostTensor(shape: [n, imageShape[0], h, w], values: pixels)
        let classes = labels.map(Int.init)
        let masks = data.masks(indices)
        let boxes = indices.map { data.samples[$0].box }
        let tolerance = plan.tolerance ?? max(1, Int((15.0 * Double(w) / 224.0).rounded()))
        let nf = min(plan.faithfulnessImages, n)

        func score(_ name: String, _ maps: [AttributionMap], seconds: Double?, randomization: Double?) throws -> EvaluationRow {
            var hits = 0, correct = 0
            for (i, m) in maps.enumerated() {
                if Localization.pointingHit(m, mask: Array(masks[(i * h * w)..<((i + 1) * h * w)]), tolerance: tolerance) { hits += 1 }
                if Localization.boxCorrect(m, truth: boxes[i]) { correct += 1 }
            }
            var del = 0.0, ins = 0.0
            for i in 0..<nf {
                let one = try HostTensor(shape: [1, imageShape[0], h, w], values: Array(pixels[(i * h * w * imageShape[0])..<((i + 1) * h * w * imageShape[0])]))
                let r = try deletionInsertion(one, class: classes[i], map: maps[i], steps: plan.faithfulnessSteps)
                del += r.deletion
                ins += r.insertion
            }
            return EvaluationRow(method: name, pointing: Double(hits) / Double(n), box: Double(correct) / Double(n),
                                 deletion: del / Double(nf), insertion: ins / Double(nf), randomization: randomization, secondsPerImage: seconds)
        }

        var rows: [EvaluationRow] = []
        let nr = min(plan.randomizationImages, n)
        let sanityImages = try HostTensor(shape: [nr, imageShape[0], h, w], values: Array(pixels[0..<(nr * imageShape.count)]))
        for method in methods {
            progress(method.rawValue)
            let start = Date()
            let maps = try method.run(self, images: images, classes: classes, settings: settings)
            let seconds = Date().timeIntervalSince(start) / Double(n)
            let cascade = try cascadingRandomization(seed: plan.seed) { e in
                try method.run(e, images: sanityImages, classes: Array(classes[0..<nr]), settings: settings)
            }
            rows.append(try score(method.rawValue, maps, seconds: seconds, randomization: cascade.last?.correlation))
        }
        progress("baselines")
        rows.append(try score("baseline: centred Gaussian", Array(repeating: Localization.centredGaussian(height: h, width: w), count: n),
                              seconds: nil, randomization: nil))
        rows.append(try score("baseline: random", (0..<n).map { Localization.randomMap(height: h, width: w, seed: plan.seed &+ UInt64($0)) },
                              seconds: nil, randomization: nil))
        return rows
    }
}

/// The table as markdown.
public func markdownTable(_ rows: [EvaluationRow]) -> String {
    var s = "| method | pointing game | box loc. (IoU>=0.5) | deletion AUC (lower) | insertion AUC (higher) | randomization rho (lower) | ms / image |\n"
    s += "|---|---:|---:|---:|---:|---:|---:|\n"
    for r in rows {
        s += "| \(r.method) | \(String(format: "%.3f", r.pointing)) | \(String(format: "%.3f", r.box)) | \(String(format: "%.3f", r.deletion)) | "
        s += "\(String(format: "%.3f", r.insertion)) | \(r.randomization.map { String(format: "%.3f", $0) } ?? "-") | "
        s += "\(r.secondsPerImage.map { String(format: "%.1f", $0 * 1000) } ?? "-") |\n"
    }
    return s
}
