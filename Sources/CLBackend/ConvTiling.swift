/// Register and local-memory tiling of the convolution kernels, compiled in as `-D` macros.
///
/// Each work-item computes `outputsPerItem` output channels (conv forward), input channels
/// (backward-data) or filter rows (backward-filter) for `vectorWidth` neighbouring columns held
/// as one OpenCL vector, so each loaded input vector feeds `outputsPerItem` vector multiply-adds
/// from registers. CPU OpenCL compilers (PoCL) do not vectorize across work-items once a kernel
/// has inner loops, so CPU devices get explicit 16-wide vectors (one AVX-512 register); GPUs get
/// scalar work-items whose neighbours along dimension 0 make loads coalesce.
/// `stagesWeightsInLocalMemory` copies each work-group's weight tile into local memory once per
/// input channel, which pays only where local memory is real on-chip memory.
public struct ConvTiling: Hashable, Sendable, CustomStringConvertible {
    public var outputsPerItem: Int
    public var vectorWidth: Int
    public var groupWidth: Int
    public var groupHeight: Int
    public var stagesWeightsInLocalMemory: Bool

    public init(outputsPerItem: Int, vectorWidth: Int, groupWidth: Int, groupHeight: Int, stagesWeightsInLocalMemory: Bool) {
        precondition([1, 2, 4, 8, 16].contains(vectorWidth), "vectorWidth must be 1, 2, 4, 8 or 16")
        self.outputsPerItem = outputsPerItem
        self.vectorWidth = vectorWidth
        self.groupWidth = groupWidth
        self.groupHeight = groupHeight
        self.stagesWeightsInLocalMemory = stagesWeightsInLocalMemory
    }

    /// CPU-like devices: no real local memory, 16-wide vectors, small work-groups of rows.
    public static let cpu = ConvTiling(outputsPerItem: 8, vectorWidth: 16, groupWidth: 1, groupHeight: 8, stagesWeightsInLocalMemory: false)
    /// GPU-like devices: 64-item work-groups (16 x 4) of scalar work-items, weights staged in local memory.
    public static let gpu = ConvTiling(outputsPerItem: 8, vectorWidth: 1, groupWidth: 16, groupHeight: 4, stagesWeightsInLocalMemory: true)

    /// The tile set for a device, chosen from its features.
    public static func choose(for profile: DeviceProfile) -> ConvTiling {
        var t = profile.hasDedicatedLocalMemory ? gpu : cpu
        // Keep work-groups within what the device allows.
        while t.groupWidth * t.groupHeight > profile.maxWorkGroupSize && t.groupHeight > 1 { t.groupHeight /= 2 }
        while t.groupWidth * t.groupHeight > profile.maxWorkGroupSize && t.groupWidth > 1 { t.groupWidth /= 2 }
        return t
    }

    var buildOptions: String {
        "-DCONV_TILE=\(outputsPerItem) -DCONV_VEC=\(vectorWidth) -DCONV_WG_W=\(groupWidth) -DCONV_WG_H=\(groupHeight) -DCONV_LOCAL_WEIGHTS=\(stagesWeightsInLocalMemory ? 1 : 0)"
    }

    public var description: String {
        "\(outputsPerItem) channels x \(vectorWidth) columns per item, work-group \(groupWidth)x\(groupHeight), weights \(stagesWeightsInLocalMemory ? "staged in local memory" : "read from global memory")"
    }
}
