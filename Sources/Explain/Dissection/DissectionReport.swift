import Foundation

extension DissectionResults {
    /// One self-contained HTML page (images inline, as `htmlReport` does): the per-layer table and,
    /// for the `topUnits` detectors of highest IoU, each unit's top images masked as in Bau et al.:
    /// the region where the upsampled map exceeds the unit's threshold at full brightness, the rest
    /// darkened to 25%.
    public func html(dissector: Dissector, state: DissectionState, topUnits: Int) throws -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
                .replacingOccurrences(of: "\"", with: "&quot;")
        }
        var page = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Network Dissection</title><style>"
            + "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
            + "img{image-rendering:pixelated;margin:2px}.unit{margin:1em 0}</style></head><body><h1>Network Dissection</h1>"
            + "<p>\(state.images) images of \(esc(dissector.dataset.directory)); threshold: top \(state.settings.quantile * 100)% of each unit's activations; detector: IoU &gt; \(state.settings.iouThreshold).</p><table><tr>"
        let categories = layers.first?.detectorsByCategory.map(\.category) ?? []
        page += (["layer", "units", "detectors"] + categories + ["unique concepts"]).map { "<th>\(esc($0))</th>" }.joined() + "</tr>"
        for l in layers {
            page += "<tr><td>\(esc(l.layer))</td><td>\(l.units)</td><td>\(l.detectors)</td>" + l.detectorsByCategory.map { "<td>\($0.count)</td>" }.joined()
                + "<td>\(l.uniqueConcepts)</td></tr>"
        }
        page += "</table><h2>Top units</h2>"
        let best = units.filter(\.isDetector).sorted { $0.iou != $1.iou ? $0.iou > $1.iou : ($0.layer, $0.unit) < ($1.layer, $1.unit) }.prefix(topUnits)
        if best.isEmpty { page += "<p>No unit exceeds the IoU threshold.</p>" }
        for u in best {
            guard let layer = state.settings.layers.firstIndex(of: u.layer) else { continue }
            page += "<div class=\"unit\"><b>\(esc(u.layer)) unit \(u.unit)</b>: \(esc(u.concept)) (\(esc(u.category))), IoU \(String(format: "%.3f", u.iou))<br>"
            for i in u.topImages {
                let image = try dissector.dataset.image(at: i).converted(channels: 3)
                let map = try dissector.upsampledMap(layer: layer, unit: u.unit, image: i, width: image.width, height: image.height)
                var pixels = image.pixels
                for p in 0..<(image.width * image.height) where !(map[p] > u.threshold) {
                    for c in 0..<3 { pixels[p * 3 + c] /= 4 }
                }
                let masked = try Image(width: image.width, height: image.height, channels: 3, pixels: pixels)
                let scale = max(1, 128 / max(image.width, 1))
                page += "<img alt=\"image \(i)\" width=\"\(image.width * scale)\" height=\"\(image.height * scale)\" src=\"data:image/png;base64,\(try pngData(masked).base64EncodedString())\">"
            }
            page += "</div>"
        }
        return page + "</body></html>\n"
    }
}
