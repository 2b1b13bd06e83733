import Foundation

/// One image's row of an HTML report.
public struct ReportEntry {
    public var title: String
    public var input: Image
    /// Top predictions: class name and probability.
    public var predictions: [(name: String, probability: Float)]
    /// Per method: the method's name, its heatmap and its overlay on the input.
    public var maps: [(method: String, heatmap: Image, overlay: Image)]

    public init(title: String, input: Image, predictions: [(name: String, probability: Float)], maps: [(method: String, heatmap: Image, overlay: Image)]) {
        self.title = title
        self.input = input
        self.predictions = predictions
        self.maps = maps
    }
}

/// PNG bytes of an image (through a temporary file: libpng's simplified API writes files).
func pngData(_ image: Image) throws -> Data {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-report-\(UUID().uuidString).png")
    defer { try? FileManager.default.removeItem(at: url) }
    try writePNG(image, to: url.path)
    return try Data(contentsOf: url)
}

private func escaped(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

/// One self-contained HTML page (images inline as base64 PNGs, no external files): per image,
/// the input, its top predictions, and each method's heatmap and overlay side by side.
public func htmlReport(title: String, subtitle: String, entries: [ReportEntry], pixelScale: Int = 4) throws -> String {
    func img(_ image: Image, _ alt: String) throws -> String {
        "<img alt=\"\(escaped(alt))\" width=\"\(image.width * pixelScale)\" height=\"\(image.height * pixelScale)\" src=\"data:image/png;base64,\(try pngData(image).base64EncodedString())\">"
    }
    var html = """
    <!DOCTYPE html>
    <html lang="en"><head><meta charset="utf-8"><title>\(escaped(title))</title>
    <style>
    body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
    h1 { font-size: 20px; margin-bottom: 4px; } .sub { color: #666; margin-bottom: 20px; }
    table { border-collapse: collapse; margin-bottom: 28px; }
    td, th { padding: 6px 8px; text-align: center; vertical-align: top; font-size: 13px; }
    th { font-weight: 600; border-bottom: 1px solid #ccc; }
    img { image-rendering: pixelated; display: block; margin: 2px auto; }
    .pred { text-align: left; white-space: nowrap; }
    </style></head><body>
    <h1>\(escaped(title))</h1><div class="sub">\(escaped(subtitle))</div>

    """
    for entry in entries {
        html += "<h2 style=\"font-size:16px\">\(escaped(entry.title))</h2><table><tr><th>input</th><th>predictions</th>"
        for m in entry.maps { html += "<th>\(escaped(m.method))</th>" }
        html += "</tr><tr><td>\(try img(entry.input, "input"))</td><td class=\"pred\">"
        html += entry.predictions.map { "\(escaped($0.name)): \(String(format: "%.1f%%", $0.probability * 100))" }.joined(separator: "<br>")
        html += "</td>"
        for m in entry.maps { html += "<td>\(try img(m.heatmap, m.method + " map"))\(try img(m.overlay, m.method + " overlay"))</td>" }
        html += "</tr></table>\n"
    }
    return html + "</body></html>\n"
}
