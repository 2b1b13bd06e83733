/// `image` with a heatmap of the row-major `width x height` `map` blended over it:
/// `(1 - alpha) * image + alpha * heatmap`, per channel, rounded; RGB out (a gray image is
/// replicated, alpha is dropped). The map is scaled to [0, 1] first, by `range` or min-max over the
/// map as `heatmap` does, then resized to the image by bilinear interpolation with half-pixel
/// centres (`Image.resized`'s rule), then coloured, so every overlay colour is one of the
/// colormap's. `alpha` 0 gives the image, 1 the heatmap.
public func overlay(_ map: [Float], width: Int, height: Int, on image: Image, colormap: Colormap = .jet,
                    range: ClosedRange<Float>? = nil, alpha: Float = 0.5) throws -> Image {
    guard (0...1).contains(alpha) else { throw ImageError("overlay: alpha \(alpha) is outside [0, 1]") }
    var unit = try unitScaled(map, width: width, height: height, range: range)
    if width != image.width || height != image.height {
        unit = resampleBilinear(unit, width: width, height: height, channels: 1, toWidth: image.width, toHeight: image.height)
    }
    let heat = try colorized(unit, width: image.width, height: image.height, colormap: colormap)
    let base = try image.converted(channels: 3)
    let pixels = zip(base.pixels, heat.pixels).map { b, h in byte((1 - alpha) * Float(b) + alpha * Float(h)) }
    return try Image(width: image.width, height: image.height, channels: 3, pixels: pixels)
}
