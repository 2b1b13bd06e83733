import CLBackend
import Foundation
import Graph

/// How 8-bit pixels become model inputs: `(p / 255 - mean[c]) / std[c]` per channel `c`.
public enum Normalization: Equatable, Sendable {
    /// [0, 1]: `p / 255` (mean 0, std 1).
    case unit
    /// torchvision's ImageNet constants: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225);
    /// three channels only.
    case imagenet
    /// One mean and std per channel, or one of each for all channels.
    case custom(mean: [Float], std: [Float])

    /// The per-channel mean and std for a `channels`-channel tensor.
    func meanAndStd(channels: Int) throws -> (mean: [Float], std: [Float]) {
        let (mean, std): ([Float], [Float])
        switch self {
        case .unit: (mean, std) = ([0], [1])
        case .imagenet: (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        case .custom(let m, let s): (mean, std) = (m, s)
        }
        func perChannel(_ v: [Float], _ name: String) throws -> [Float] {
            if v.count == 1 { return Array(repeating: v[0], count: channels) }
            guard v.count == channels else {
                throw ImageError("normalization: \(v.count) \(name) values for a \(channels)-channel tensor (give \(channels == 1 ? "1" : "1 or \(channels)"))")
            }
            return v
        }
        let perMean = try perChannel(mean, "mean"), perStd = try perChannel(std, "std")
        guard perMean.allSatisfy(\.isFinite), perStd.allSatisfy({ $0.isFinite && $0 != 0 }) else {
            throw ImageError("normalization: means must be finite and stds finite and non-zero, got mean \(mean) std \(std)")
        }
        return (perMean, perStd)
    }
}

extension Image {
    /// The image resized to `width x height` by plain bilinear interpolation with half-pixel
    /// centres: output pixel `x` samples input `max(0, (x + 0.5) * in / out - 0.5)`, the rule of
    /// the graph's `BilinearResize` (PyTorch `align_corners=False`, OpenCV `INTER_LINEAR`).
    /// Not area-aware: each output blends at most 4 inputs, so shrinking by more than 2x skips
    /// pixels and can alias (torchvision's PIL and `antialias=True` paths filter first and differ).
    /// Values round to the nearest integer; the same size is the identity.
    public func resized(width newWidth: Int, height newHeight: Int) throws -> Image {
        guard newWidth > 0, newHeight > 0 else { throw ImageError("resize: size \(newWidth)x\(newHeight) must be positive") }
        if newWidth == width && newHeight == height { return self }
        let values = resampleBilinear(pixels.map(Float.init), width: width, height: height, channels: channels,
                                      toWidth: newWidth, toHeight: newHeight)
        return try Image(width: newWidth, height: newHeight, channels: channels, pixels: values.map(byte))
    }

    /// The image resized so that its shorter side is `shorterSide`, keeping the aspect ratio;
    /// the longer side is `floor(shorterSide * long / short)`, torchvision's `Resize(int)` rule.
    public func resized(shorterSide: Int) throws -> Image {
        guard shorterSide > 0 else { throw ImageError("resize: shorter side \(shorterSide) must be positive") }
        let (short, long) = (min(width, height), max(width, height))
        let newLong = shorterSide * long / short
        return width <= height ? try resized(width: shorterSide, height: newLong)
                               : try resized(width: newLong, height: shorterSide)
    }

    /// The central `width x height` region. The offsets are `(size - crop) / 2` rounded half to
    /// even, as torchvision's `CenterCrop` computes them; a crop larger than the image is refused.
    public func centerCropped(width cropWidth: Int, height cropHeight: Int) throws -> Image {
        guard cropWidth > 0, cropHeight > 0, cropWidth <= width, cropHeight <= height else {
            throw ImageError("center crop: \(cropWidth)x\(cropHeight) does not fit in the \(width)x\(height) image")
        }
        let left = Int((Double(width - cropWidth) / 2).rounded(.toNearestOrEven))
        let top = Int((Double(height - cropHeight) / 2).rounded(.toNearestOrEven))
        var out: [UInt8] = []
        out.reserveCapacity(cropWidth * cropHeight * channels)
        for y in top..<(top + cropHeight) {
            let start = (y * width + left) * channels
            out += pixels[start..<(start + cropWidth * channels)]
        }
        return try Image(width: cropWidth, height: cropHeight, channels: channels, pixels: out)
    }

    /// The image with `channels` channels (1, 3 or 4). Gray to colour replicates the gray value;
    /// colour to gray is ITU-R 601 luminance `(19595 R + 38470 G + 7471 B + 2^15) >> 16`, exactly
    /// PIL's `convert("L")` (weights 0.299, 0.587, 0.114); alpha is dropped, or added opaque.
    public func converted(channels wanted: Int) throws -> Image {
        guard [1, 3, 4].contains(wanted) else { throw ImageError("convert: \(wanted) channels; 1, 3 or 4 are supported") }
        if wanted == channels { return self }
        var out = [UInt8](repeating: 255, count: width * height * wanted)
        for i in 0..<(width * height) {
            let p = i * channels
            let rgb: (UInt8, UInt8, UInt8) = channels == 1 ? (pixels[p], pixels[p], pixels[p]) : (pixels[p], pixels[p + 1], pixels[p + 2])
            let o = i * wanted
            if wanted == 1 {
                out[o] = luminance(rgb.0, rgb.1, rgb.2)
            } else {
                (out[o], out[o + 1], out[o + 2]) = rgb
            }
        }
        return try Image(width: width, height: height, channels: wanted, pixels: out)
    }

    /// The image as a float tensor of shape `[C, H, W]` (planar, C order), normalized by
    /// `normalization`. `channels` (default: the image's) is what the model takes; the image is
    /// converted first by `converted(channels:)`, so a gray image feeds an RGB model and an RGB
    /// image a 1-channel model.
    public func tensor(channels wanted: Int? = nil, normalization: Normalization = .unit) throws -> HostTensor {
        let image = try converted(channels: wanted ?? channels)
        let c = image.channels, plane = width * height
        let (mean, std) = try normalization.meanAndStd(channels: c)
        var values = [Float](repeating: 0, count: c * plane)
        for i in 0..<plane {
            for k in 0..<c { values[k * plane + i] = (Float(image.pixels[i * c + k]) / 255 - mean[k]) / std[k] }
        }
        return try HostTensor(shape: Shape([c, height, width]), values: values)
    }

    /// The inverse of `tensor(channels:normalization:)`: a `[C, H, W]` or `[1, C, H, W]` tensor
    /// (C = 1, 3 or 4) denormalized, scaled by 255, rounded and clamped to 0...255 (NaN becomes 0),
    /// for writing visualizations of inputs and their perturbations.
    public init(tensor: HostTensor, normalization: Normalization = .unit) throws {
        var dims = tensor.shape.dims
        if dims.count == 4 && dims[0] == 1 { dims.removeFirst() }
        guard dims.count == 3 else { throw ImageError("image from tensor: shape \(tensor.shape) is not [C, H, W] or [1, C, H, W]") }
        let (c, h, w) = (dims[0], dims[1], dims[2])
        guard [1, 3, 4].contains(c) else { throw ImageError("image from tensor: \(c) channels; 1, 3 or 4 are supported") }
        let (mean, std) = try normalization.meanAndStd(channels: c)
        let plane = h * w
        var pixels = [UInt8](repeating: 0, count: c * plane)
        for i in 0..<plane {
            for k in 0..<c { pixels[i * c + k] = byte((tensor.values[k * plane + i] * std[k] + mean[k]) * 255) }
        }
        try self.init(width: w, height: h, channels: c, pixels: pixels)
    }
}

/// ITU-R 601 luminance in PIL's 16-bit fixed point (see `Image.converted(channels:)`).
func luminance(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
    let weighted: UInt32 = 19595 * UInt32(r) + 38470 * UInt32(g)
    return UInt8((weighted + 7471 * UInt32(b) + 32768) >> 16)
}

/// `v` rounded to the nearest byte, clamped to 0...255; NaN becomes 0.
func byte(_ v: Float) -> UInt8 {
    v.isNaN ? 0 : UInt8(min(max(v, 0), 255).rounded())
}

/// Bilinear resampling of an interleaved `width x height x channels` float image, by the rule of
/// `Image.resized(width:height:)`. Separable: per output column and row, the two source indices
/// and the weight of the second.
func resampleBilinear(_ values: [Float], width: Int, height: Int, channels: Int, toWidth: Int, toHeight: Int) -> [Float] {
    func taps(from inLength: Int, to outLength: Int) -> [(i0: Int, i1: Int, lambda: Float)] {
        (0..<outLength).map { dst in
            let src = max(0, (Double(dst) + 0.5) * Double(inLength) / Double(outLength) - 0.5)
            let i0 = Int(src.rounded(.down))
            return (i0, min(i0 + 1, inLength - 1), Float(src - Double(i0)))
        }
    }
    let rows = taps(from: height, to: toHeight), cols = taps(from: width, to: toWidth)
    var out = [Float](repeating: 0, count: toWidth * toHeight * channels)
    for (y, r) in rows.enumerated() {
        let row0 = r.i0 * width, row1 = r.i1 * width
        for (x, c) in cols.enumerated() {
            for k in 0..<channels {
                let top = values[(row0 + c.i0) * channels + k] * (1 - c.lambda) + values[(row0 + c.i1) * channels + k] * c.lambda
                let bottom = values[(row1 + c.i0) * channels + k] * (1 - c.lambda) + values[(row1 + c.i1) * channels + k] * c.lambda
                out[(y * toWidth + x) * channels + k] = top * (1 - r.lambda) + bottom * r.lambda
            }
        }
    }
    return out
}
