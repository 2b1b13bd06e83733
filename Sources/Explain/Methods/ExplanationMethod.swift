import CLBackend
import Foundation
import Graph

/// Every method by name, with the settings a run needs, so tools can run any of them alike.
public enum ExplanationMethod: String, CaseIterable, Sendable {
    case cam, gradcam, gradcampp, layercam, eigencam, scorecam
    case saliency, guided, deconvnet, guidedgradcam, smoothgrad, integratedgradients, occlusion

    /// What the user may set; methods ignore what does not apply to them.
    public struct Settings: Sendable, Codable, Equatable {
        /// Layer for the CAM family (default: the last feature map; CAM: the one before pooling).
        public var layer: String?
        public var reduction: String = ChannelReduction.maxAbs.rawValue
        public var samples: Int = 50
        public var noiseLevel: Float = 0.15
        public var steps: Int = 32
        public var patch: Int = 8
        public var stride: Int = 4
        public var fill: Float = 0
        public var seed: UInt64 = 0
        /// Images (or expanded samples, masks, windows) per device pass.
        public var maxBatch: Int = 32
        public init() {}
    }

    /// The maps for `images` and their target `classes`, upsampled to the input's resolution.
    public func run(_ explainer: Explainer, images: HostTensor, classes: [Int], settings s: Settings) throws -> [AttributionMap] {
        let layer = try s.layer.map { try explainer.featureMap(named: $0) }
        guard let reduction = ChannelReduction(rawValue: s.reduction) else {
            throw ExplainError("unknown channel reduction '\(s.reduction)': \(ChannelReduction.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let maps: [AttributionMap]
        switch self {
        case .cam: maps = try explainer.cam(images, classes: classes)
        case .gradcam: maps = try explainer.gradientCAM(images, classes: classes, layer: layer, rule: .gradCAM)
        case .gradcampp: maps = try explainer.gradientCAM(images, classes: classes, layer: layer, rule: .gradCAMPlusPlus)
        case .layercam: maps = try explainer.gradientCAM(images, classes: classes, layer: layer, rule: .layerCAM)
        case .eigencam: maps = try explainer.eigenCAM(images, layer: layer)
        case .scorecam: maps = try explainer.scoreCAM(images, classes: classes, layer: layer, maxBatch: s.maxBatch)
        case .saliency: maps = try explainer.saliency(images, classes: classes, rule: .standard, reduction: reduction, maxBatch: s.maxBatch)
        case .guided: maps = try explainer.saliency(images, classes: classes, rule: .guided, reduction: reduction, maxBatch: s.maxBatch)
        case .deconvnet: maps = try explainer.saliency(images, classes: classes, rule: .deconvnet, reduction: reduction, maxBatch: s.maxBatch)
        case .guidedgradcam: maps = try explainer.guidedGradCAM(images, classes: classes, layer: layer, maxBatch: s.maxBatch)
        case .smoothgrad:
            maps = try explainer.smoothGrad(images, classes: classes, samples: s.samples, noiseLevel: s.noiseLevel,
                                            reduction: reduction, seed: s.seed, maxBatch: s.maxBatch)
        case .integratedgradients:
            let a = try explainer.integratedGradients(images, classes: classes, steps: s.steps, maxBatch: s.maxBatch)
            maps = explainer.reduced(a, reduction == .maxAbs ? .sum : reduction)
        case .occlusion:
            maps = try explainer.occlusion(images, classes: classes, patch: s.patch, stride: s.stride, fill: s.fill, maxBatch: s.maxBatch)
        }
        return try explainer.upsampled(maps)
    }

    /// The paper each method comes from, for reports and sidecars.
    public var citation: String {
        switch self {
        case .cam: return "Zhou et al. 2016"
        case .gradcam: return "Selvaraju et al. 2017"
        case .gradcampp: return "Chattopadhyay et al. 2018"
        case .layercam: return "Jiang et al. 2021"
        case .eigencam: return "Muhammad & Yeasin 2020"
        case .scorecam: return "Wang et al. 2020"
        case .saliency: return "Simonyan et al. 2013"
        case .guided: return "Springenberg et al. 2015"
        case .deconvnet: return "Zeiler & Fergus 2014"
        case .guidedgradcam: return "Selvaraju et al. 2017"
        case .smoothgrad: return "Smilkov et al. 2017"
        case .integratedgradients: return "Sundararajan et al. 2017"
        case .occlusion: return "Zeiler & Fergus 2014"
        }
    }
}
