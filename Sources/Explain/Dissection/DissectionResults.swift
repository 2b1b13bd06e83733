import Foundation

/// The labels Network Dissection gives a completed `DissectionState`: per unit its best concept
/// by IoU, `IoU_{k,c} = I / (A + L - I)` with `I` the masked pixels labelled `c`, `A` the masked
/// pixels of images annotated for `c`'s category and `L` the pixels labelled `c`, all summed over
/// the dataset; the unit is a detector when that IoU exceeds the threshold (0.04).
public struct DissectionResults: Sendable {
    public struct Unit: Sendable, Equatable {
        public var layer: String
        public var unit: Int
        public var concept: String
        public var category: String
        public var iou: Double
        public var isDetector: Bool
        public var threshold: Float
        public var topImages: [Int]
    }

    public struct LayerSummary: Sendable, Equatable {
        public var layer: String
        public var units: Int
        public var detectors: Int
        /// Detectors per category, in the dataset's category order.
        public var detectorsByCategory: [(category: String, count: Int)]
        public var uniqueConcepts: Int
        public static func == (a: LayerSummary, b: LayerSummary) -> Bool {
            a.layer == b.layer && a.units == b.units && a.detectors == b.detectors && a.uniqueConcepts == b.uniqueConcepts
                && a.detectorsByCategory.map(\.category) == b.detectorsByCategory.map(\.category) && a.detectorsByCategory.map(\.count) == b.detectorsByCategory.map(\.count)
        }
    }

    public var units: [Unit]
    public var layers: [LayerSummary]

    /// IoU of unit `k` of `layer` for every label number (0 for label 0).
    public static func ious(_ layer: DissectionState.Layer, unit k: Int, state: DissectionState, dataset: BrodenDataset) -> [Double] {
        let labels = dataset.labels.count, bins = labels + dataset.categories.count
        return (0..<labels).map { c in
            guard c > 0 else { return 0 }
            let intersection = layer.counts[k * bins + c]
            let masked = layer.counts[k * bins + labels + dataset.labels[c].category]
            let union = masked + state.labelPixels[c] - intersection
            return union > 0 ? Double(intersection) / Double(union) : 0
        }
    }

    public init(state: DissectionState, dataset: BrodenDataset) throws {
        guard state.isComplete else { throw DataError("dissection: results need all \(DissectionState.passes) passes; \(state.pass) are merged") }
        guard state.labelPixels.count == dataset.labels.count else {
            throw DataError("dissection: the state has \(state.labelPixels.count) labels, the dataset \(dataset.labels.count)")
        }
        units = []
        layers = []
        for layer in state.layers {
            var found: [Unit] = []
            for k in 0..<layer.units {
                let iou = Self.ious(layer, unit: k, state: state, dataset: dataset)
                let best = iou.indices.dropFirst().max { iou[$0] < iou[$1] || (iou[$0] == iou[$1] && $0 > $1) } ?? 0
                let label = dataset.labels[best]
                found.append(Unit(layer: layer.name, unit: k, concept: label.name, category: dataset.categories[label.category], iou: iou[best],
                                  isDetector: iou[best] > state.settings.iouThreshold, threshold: layer.thresholds[k],
                                  topImages: layer.top[k].map(\.image)))
            }
            let detectors = found.filter(\.isDetector)
            layers.append(LayerSummary(layer: layer.name, units: layer.units, detectors: detectors.count,
                                       detectorsByCategory: dataset.categories.map { c in (c, detectors.filter { $0.category == c }.count) },
                                       uniqueConcepts: Set(detectors.map(\.concept)).count))
            units += found
        }
    }

    /// `layer,unit,concept,category,iou,detector,threshold` per unit.
    public var csv: String {
        "layer,unit,concept,category,iou,detector,threshold\n" + units.map {
            "\($0.layer),\($0.unit),\(csvField($0.concept)),\($0.category),\(String(format: "%.6f", $0.iou)),\($0.isDetector ? 1 : 0),\($0.threshold)"
        }.joined(separator: "\n") + "\n"
    }

    /// The per-layer table: units, detectors, detectors per category, unique concepts.
    public var table: String {
        let categories = layers.first?.detectorsByCategory.map(\.category) ?? []
        let header = ["layer", "units", "detectors"] + categories + ["unique"]
        let rows = layers.map { l in [l.layer, "\(l.units)", "\(l.detectors)"] + l.detectorsByCategory.map { "\($0.count)" } + ["\(l.uniqueConcepts)"] }
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == 0 ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[i] - c.count) + c }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }

    private func csvField(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
}
