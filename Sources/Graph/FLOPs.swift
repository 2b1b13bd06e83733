import CLBackend

/// Forward floating-point operations, counting a multiply-add as 2 — the convention behind the
/// published figures (VGG16 30.9 GFLOPs, ResNet-50 8.2 GFLOPs at 224x224).
///
/// Only the multiply-adds of convolutions, transposed convolutions and linear layers count; every
/// other op (bias adds, BatchNorm, activations, pools, sums, concatenations, LRN, softmax, resizes)
/// counts 0. Their elementwise work is well under 1% of a CNN's total and the published figures
/// leave it out too.
extension Graph {
    /// The forward FLOPs of `nodes[index]`.
    public func forwardFLOPs(ofNode index: Int) -> Int {
        let node = nodes[index]
        switch node.op {
        case .conv2d:
            // Each output element is a dot product over (C/groups) * kH * kW inputs; the weight's
            // shape [O, C/groups, kH, kW] gives that length.
            let w = self[node.inputs[1]].shape
            return 2 * self[node.outputs[0]].shape.count * (w[1] * w[2] * w[3])
        case .convTranspose2d:
            // Each input element is scattered through (O/groups) * kH * kW weights, [C, O/groups, kH, kW].
            let w = self[node.inputs[1]].shape
            return 2 * self[node.inputs[0]].shape.count * (w[1] * w[2] * w[3])
        case .linear:
            return 2 * self[node.outputs[0]].shape.count * self[node.inputs[1]].shape[1]
        default:
            return 0
        }
    }

    /// The forward FLOPs of the whole graph, per `forwardFLOPs(ofNode:)`.
    public var forwardFLOPs: Int { nodes.indices.reduce(0) { $0 + forwardFLOPs(ofNode: $1) } }
}
