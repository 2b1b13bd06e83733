/// The element types a tensor can hold. Everything numeric is `float32`; `int32` carries indices
/// (max-pool switches, class labels).
public enum DType: String, Sendable {
    case float32, int32
}

/// An NCHW shape. Dimensions are non-negative; an empty shape is a scalar.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var dims: [Int]
    public init(_ dims: [Int]) { self.dims = dims }
    public init(arrayLiteral elements: Int...) { self.dims = elements }

    public var count: Int { dims.reduce(1, *) }
    public var rank: Int { dims.count }
    public subscript(_ axis: Int) -> Int { dims[axis] }
    public var description: String { "[" + dims.map(String.init).joined(separator: "x") + "]" }

    /// The 4-D view `(n, c, h, w)` of this shape; a rank-2 `[n, k]` shape is `(n, k, 1, 1)`.
    public func nchw(for op: String) throws -> (n: Int, c: Int, h: Int, w: Int) {
        switch rank {
        case 4: return (dims[0], dims[1], dims[2], dims[3])
        case 2: return (dims[0], dims[1], 1, 1)
        default: throw ShapeError("\(op): expected an NCHW (rank 4) or [N, K] (rank 2) tensor, got \(self)")
        }
    }
}

/// The buffer behind a tensor; each backend has its own kind.
public protocol TensorStorage: AnyObject {
    /// Bytes the storage holds.
    var byteCount: Int { get }
}

/// A tensor that lives on one backend. Tensors are views: `reshaped(to:)` shares the storage.
public struct Tensor: CustomStringConvertible {
    public let shape: Shape
    public let dtype: DType
    public let storage: TensorStorage

    public init(shape: Shape, dtype: DType, storage: TensorStorage) {
        self.shape = shape
        self.dtype = dtype
        self.storage = storage
    }

    public var count: Int { shape.count }
    public var description: String { "Tensor(\(dtype) \(shape))" }

    /// The same elements under another shape of equal count (flatten and reshape are views).
    public func reshaped(to newShape: Shape) throws -> Tensor {
        guard newShape.count == shape.count else {
            throw ShapeError("reshape: cannot view \(shape) (\(shape.count) elements) as \(newShape) (\(newShape.count) elements)")
        }
        return Tensor(shape: newShape, dtype: dtype, storage: storage)
    }

    /// `[N, C, H, W] -> [N, C*H*W]`.
    public func flattened() throws -> Tensor {
        guard shape.rank >= 1 else { throw ShapeError("flatten: a scalar has no batch axis") }
        return try reshaped(to: [shape[0], shape.count / max(shape[0], 1)])
    }
}

/// A shape or parameter that an op cannot accept; the message names the op and the shapes.
public struct ShapeError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
