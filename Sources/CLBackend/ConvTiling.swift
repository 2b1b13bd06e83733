/// Register and local-memory tiling of the convolution kernels, compiled in as `-D` macros.
///
/// Each work-item computes `outputsPerItem` output channels (conv forward), input channels
/// (backward-data) or filter rows (backward-filter) for one spatial position, so the loaded input
/// value is reused `outputsPerItem` times from registers. Work-items along dimension 0 cover
/// `groupWidth` neighbouring columns: on CPU devices (PoCL) that is the axis the work-group
/// vectorizer turns into SIMD lanes, on GPUs it makes loads coalesce.
/// `stagesWeightsInLocalMemory` copies each work-group's weight tile into local memory once per
/// input channel, which pays only where local memory is real on-chip memory.
public struct ConvTiling: Hashable, Sendable, CustomStringConvertible {
    public var outputsPerItem: Int
    public var groupWidth: Int
    public var groupHeight: Int
    public var stagesWeightsInLocalMemory: Bool

    public init(outputsPerItem: Int, groupWidth: Int, groupHeight: Int, stagesWeightsInLocalMemory: Bool) {
        self.outputsPerItem = outputsPerItem
        self.groupWidth = groupWidth
        self.groupHeight = groupHeight
        self.stagesWeightsInLocalMemory = stagesWeightsInLocalMemory
    }

    /// CPU-like devices: no real local memory, wide SIMD across dimension 0.
    public static let cpu = ConvTiling(outputsPerItem: 8, groupWidth: 16, groupHeight: 1, stagesWeightsInLocalMemory: false)
    /// GPU-like devices: 64-item work-groups (16 x 4), weights staged in local memory.
    public static let gpu = ConvTiling(outputsPerItem: 8, groupWidth: 16, groupHeight: 4, stagesWeightsInLocalMemory: true)

    /// The tile set for a device, chosen from its features.
    public static func choose(for profile: DeviceProfile) -> ConvTiling {
        var t = profile.hasDedicatedLocalMemory ? gpu : cpu
        // Keep work-groups within what the device allows.
        while t.groupWidth * t.groupHeight > profile.maxWorkGroupSize && t.groupHeight > 1 { t.groupHeight /= 2 }
        while t.groupWidth * t.groupHeight > profile.maxWorkGroupSize && t.groupWidth > 1 { t.groupWidth /= 2 }
        return t
    }

    var buildOptions: String {
        "-DCONV_TILE=\(outputsPerItem) -DCONV_WG_W=\(groupWidth) -DCONV_WG_H=\(groupHeight) -DCONV_LOCAL_WEIGHTS=\(stagesWeightsInLocalMemory ? 1 : 0)"
    }

    public var description: String {
        "\(outputsPerItem) outputs/item, work-group \(groupWidth)x\(groupHeight), weights \(stagesWeightsInLocalMemory ? "staged in local memory" : "read from global memory")"
    }
}
