extension OpenCLBackend {
    public func fill(_ tensor: Tensor, value: Float) throws {
        try launch("fill_f32", global: [tensor.count], .tensor(tensor), .float(value), .int(tensor.count))
    }
}
