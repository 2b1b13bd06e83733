/// `||a - b|| / ||b||`, accumulated in Float64; 0 when both are zero, infinity when only `b` is.
/// Any NaN in either (e.g. a poisoned element an op never wrote) makes it NaN, which fails every bound.
public func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) elements")
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) {
        let d = Double(x) - Double(y)
        num += d * d
        den += Double(y) * Double(y)
    }
    if num.isNaN || den.isNaN { return .nan }
    if den == 0 { return num == 0 ? 0 : .infinity }
    return (num / den).squareRoot()
}
