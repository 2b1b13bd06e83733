import Foundation
import XCTest

/// Runs the `loupe` executable built next to the test bundle, in `directory`; returns its exit
/// code, standard output and standard error.
func runLoupe(_ args: [String], in directory: URL, environment: [String: String] = [:]) throws -> (code: Int32, out: String, err: String) {
    // The test bundle sits in the build products directory (Linux), or is that directory's child (macOS).
    let bundle = Bundle(for: CLITests.self).bundleURL
    let candidates = [bundle.appendingPathComponent("loupe"), bundle.deletingLastPathComponent().appendingPathComponent("loupe")]
    guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        XCTFail("the loupe executable is not built next to the tests (looked at \(candidates.map(\.path)))")
        throw CancellationError()
    }
    let p = Process()
    p.executableURL = binary
    p.arguments = args
    p.currentDirectoryURL = directory
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
