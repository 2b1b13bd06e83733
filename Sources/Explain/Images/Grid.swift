/// Where a grid cell's label goes.
public enum LabelPlacement: Sendable {
    case above, below
}

/// The images of `cells` laid out row by row, `columns` to a row, as one RGB image, each with its
/// label drawn in the built-in 5x7 font at `labelScale`, centred in a strip above or below it.
///
/// Layout: every cell is as wide and tall as the largest image (smaller images are centred in it);
/// `padding` pixels of `background` surround every cell. The label strip is
/// `(7 + 2) * labelScale` pixels tall (text plus `labelScale` above and below), and absent when all
/// labels are empty. So the grid is `c * cellWidth + (c + 1) * padding` wide and
/// `r * (cellHeight + strip) + (r + 1) * padding` tall, with `c = min(columns, cells.count)` and
/// `r = ceil(cells.count / columns)`. A label wider than its cell is cut to fit and ends in "..".
/// Gray images are replicated to RGB; alpha is dropped.
public func grid(_ cells: [(image: Image, label: String)], columns: Int, padding: Int = 4,
                 labels placement: LabelPlacement = .below, labelScale: Int = 1,
                 background: (r: UInt8, g: UInt8, b: UInt8) = (255, 255, 255),
                 textColor: (r: UInt8, g: UInt8, b: UInt8) = (0, 0, 0)) throws -> Image {
    guard !cells.isEmpty else { throw ImageError("grid: no images") }
    guard columns > 0, padding >= 0, labelScale > 0 else {
        throw ImageError("grid: columns \(columns) and label scale \(labelScale) must be positive, padding \(padding) not negative")
    }
    let cellWidth = cells.map(\.image.width).max()!, cellHeight = cells.map(\.image.height).max()!
    let strip = cells.allSatisfy { $0.label.isEmpty } ? 0 : (BitmapFont.glyphHeight + 2) * labelScale
    let usedColumns = min(columns, cells.count), rows = (cells.count + columns - 1) / columns
    let width = usedColumns * cellWidth + (usedColumns + 1) * padding
    let height = rows * (cellHeight + strip) + (rows + 1) * padding
    var fill = [UInt8](repeating: 0, count: width * height * 3)
    for p in stride(from: 0, to: fill.count, by: 3) { (fill[p], fill[p + 1], fill[p + 2]) = background }
    var canvas = try Image(width: width, height: height, channels: 3, pixels: fill)
    for (index, cell) in cells.enumerated() {
        let left = padding + (index % columns) * (cellWidth + padding)
        let top = padding + (index / columns) * (cellHeight + strip + padding)
        let imageTop = placement == .above ? top + strip : top
        let image = try cell.image.converted(channels: 3)
        let x0 = left + (cellWidth - image.width) / 2, y0 = imageTop + (cellHeight - image.height) / 2
        for y in 0..<image.height {
            let source = y * image.width * 3, target = ((y0 + y) * width + x0) * 3
            canvas.pixels.replaceSubrange(target..<(target + image.width * 3), with: image.pixels[source..<(source + image.width * 3)])
        }
        let label = fitted(cell.label, width: cellWidth, scale: labelScale)
        let textWidth = Image.textSize(label, scale: labelScale).width
        let stripTop = placement == .above ? top : top + cellHeight
        canvas.draw(text: label, x: left + (cellWidth - textWidth) / 2, y: stripTop + labelScale, scale: labelScale, color: textColor)
    }
    return canvas
}

/// `label`, cut to the characters that fit in `width` pixels and ending in ".." when cut.
private func fitted(_ label: String, width: Int, scale: Int) -> String {
    let fits = (width + scale) / (BitmapFont.advance * scale)
    guard label.count > fits else { return label }
    return fits > 2 ? String(label.prefix(fits - 2)) + ".." : String(label.prefix(fits))
}
