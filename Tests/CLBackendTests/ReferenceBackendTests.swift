import XCTest
@testable import CLBackend

/// The reference backend's plumbing: storage, poisoning, views, rounding and its errors.
final class ReferenceBackendTests: XCTestCase {
    private final class ForeignStorage: TensorStorage {
        var byteCount: Int { 0 }
    }

    func testRoundTripAndPoison() throws {
        let backend = ReferenceBackend()
        XCTAssertEqual(backend.name, "reference")
        backend.poisonsNewTensors = true
        let floats = try backend.makeTensor([2, 3], dtype: .float32)
        let ints = try backend.makeTensor([4], dtype: .int32)
        XCTAssertTrue(try backend.read(floats).allSatisfy(\.isNaN))
        XCTAssertEqual(try backend.readInts(ints), [Int32](repeating: .min, count: 4))
        XCTAssertEqual(floats.storage.byteCount, 24)
        try backend.write([1, 2, 3, 4, 5, 6] as [Float], to: floats)
        try backend.write([7, 8, 9, 10] as [Int32], to: ints)
        XCTAssertEqual(try backend.read(floats), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try backend.readInts(ints), [7, 8, 9, 10])
    }

    /// A reshaped view shares storage, so an op writing the view is seen through the original.
    func testViewsWriteThroughSharedStorage() throws {
        let backend = ReferenceBackend()
        let image = try backend.makeTensor([1, 2, 1, 2], dtype: .float32)
        try backend.write([1, -2, 3, -4] as [Float], to: image)
        try backend.activationForward(.relu, input: image, output: try image.reshaped(to: [4]))
        XCTAssertEqual(try backend.read(image), [1, 0, 3, 0])
    }

    /// Each primitive is its `Reference` function rounded once to `Float`.
    func testConvMatchesReferenceRoundedToFloat() throws {
        let backend = ReferenceBackend()
        let op = Conv2D(window: Window2D(kernel: 3, stride: 2, padding: 1), groups: 2)
        let (inShape, weightShape): (Shape, Shape) = ([2, 4, 5, 6], [6, 2, 3, 3])
        let x = (0..<inShape.count).map { _ in Float.random(in: -1...1) }
        let w = (0..<weightShape.count).map { _ in Float.random(in: -1...1) }
        let b = (0..<6).map { _ in Float.random(in: -1...1) }
        let (input, weight, bias) = (try backend.makeTensor(inShape, dtype: .float32), try backend.makeTensor(weightShape, dtype: .float32),
                                     try backend.makeTensor([6], dtype: .float32))
        try backend.write(x, to: input)
        try backend.write(w, to: weight)
        try backend.write(b, to: bias)
        backend.poisonsNewTensors = true
        let output = try backend.makeTensor(try op.outputShape(input: inShape, weight: weightShape), dtype: .float32)
        try backend.conv2dForward(op, input: input, weight: weight, bias: bias, output: output)
        let expected = Reference.conv2dForward(op, input: x.map(Double.init), inputShape: inShape,
                                               weight: w.map(Double.init), weightShape: weightShape, bias: b.map(Double.init))
        XCTAssertEqual(try backend.read(output), expected.map(Float.init))
    }

    func testMaxPoolWritesSwitches() throws {
        let backend = ReferenceBackend()
        backend.poisonsNewTensors = true
        let op = MaxPool2D(window: Window2D(kernel: 2, stride: 2))
        let input = try backend.makeTensor([1, 1, 2, 4], dtype: .float32)
        try backend.write([1, 5, 2, 0, 3, 4, 8, 8] as [Float], to: input)
        let (output, switches) = (try backend.makeTensor([1, 1, 1, 2], dtype: .float32), try backend.makeTensor([1, 1, 1, 2], dtype: .int32))
        try backend.maxPool2dForward(op, input: input, output: output, switches: switches)
        XCTAssertEqual(try backend.read(output), [5, 8])
        XCTAssertEqual(try backend.readInts(switches), [1, 6])
        let unpooled = try backend.makeTensor([1, 1, 2, 4], dtype: .float32)
        try backend.maxPool2dBackward(op, outputGrad: output, switches: switches, inputGrad: unpooled)
        XCTAssertEqual(try backend.read(unpooled), [0, 5, 0, 0, 0, 0, 8, 0])
    }

    func testBadTensorsThrowShapeErrorsNamingTheOp() throws {
        let backend = ReferenceBackend()
        let x = try backend.makeTensor([2, 3], dtype: .float32)
        let foreign = Tensor(shape: [2, 3], dtype: .float32, storage: ForeignStorage())
        XCTAssertThrowsError(try backend.axpby(alpha: 1, x, beta: 1, foreign, output: x)) { error in
            XCTAssertTrue((error as? ShapeError)?.message.hasPrefix("axpby") ?? false, "\(error)")
        }
        let short = try backend.makeTensor([5], dtype: .float32)
        XCTAssertThrowsError(try backend.clampForward(min: 0, max: 1, input: x, output: short)) { error in
            XCTAssertTrue((error as? ShapeError)?.message.hasPrefix("clamp") ?? false, "\(error)")
        }
        let switches = try backend.makeTensor([1, 1, 1, 1], dtype: .int32)
        try backend.write([9] as [Int32], to: switches)
        let (grad, plane) = (try backend.makeTensor([1, 1, 1, 1], dtype: .float32), try backend.makeTensor([1, 1, 2, 2], dtype: .float32))
        XCTAssertThrowsError(try backend.maxPool2dBackward(MaxPool2D(window: Window2D(kernel: 2)), outputGrad: grad, switches: switches, inputGrad: plane)) { error in
            XCTAssertTrue((error as? ShapeError)?.message.hasPrefix("maxPool2dBackward") ?? false, "\(error)")
        }
        XCTAssertThrowsError(try backend.write([1, 2] as [Float], to: x))
    }
}
