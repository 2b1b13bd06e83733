import Foundation

/// A concept-annotated image dataset in the Broden on-disk format (Bau et al. 2017, NetDissect):
///
/// - `index.csv`: `image,split,ih,iw,sh,sw,` then one column per category; image paths are
///   relative to `images/`. A pixel-level category's cell lists mask PNGs (`;`-separated, also
///   under `images/`); an image-level category's cell (scene, texture) lists label numbers.
///   An empty cell means the image is not annotated for that category.
/// - `category.csv`: `name,first,last,count,frequency` (only `name` is required).
/// - `label.csv`: `number,name,category,frequency,...`; `category` is `name(count)` entries,
///   `;`-separated (a bare name also works); a label's category is the one with the largest count.
/// - Mask PNGs of `sh x sw` pixels: label number = R + 256 * G (0: no label).
///
/// Every image must have the same mask size (Broden's broden1_224 has 224x224 images and 112x112 masks).
public struct BrodenDataset: Sendable {
    public struct Label: Sendable, Equatable {
        public var number: Int
        public var name: String
        /// Index into `categories`.
        public var category: Int
    }

    public struct Record: Sendable, Equatable {
        public var image: String
        public var split: String
        public var imageHeight: Int, imageWidth: Int
        /// Per category: the mask PNG paths (pixel-level) or label numbers as strings (image-level); empty when not annotated.
        public var annotations: [[String]]
    }

    /// What one image is annotated with, as the dissection kernels take it.
    public struct Annotation: Sendable, Equatable {
        /// One `maskHeight * maskWidth` plane of label numbers per mask PNG (row-major).
        public var planes: [[Int32]]
        /// Labels that hold at every pixel (image-level categories).
        public var imageLabels: [Int32]
        /// The categories this image is annotated for.
        public var categories: [Int]
    }

    public let directory: String
    public let categories: [String]
    /// Labels by number; `labels[0]` is the empty label 0 when label.csv does not define it.
    public let labels: [Label]
    public let records: [Record]
    public let maskHeight: Int, maskWidth: Int
    /// Per category: true when its cells are label numbers (scene, texture) rather than mask files.
    public let imageLevel: [Bool]

    public var count: Int { records.count }

    public init(directory: String) throws {
        self.directory = directory
        let categoryRows = try Self.readCSV(directory + "/category.csv", header: ["name"])
        categories = categoryRows.rows.map { $0[categoryRows.column["name"]!] }
        guard !categories.isEmpty else { throw DataError("\(directory)/category.csv: no categories") }
        let labelRows = try Self.readCSV(directory + "/label.csv", header: ["number", "name", "category"])
        var labels: [Label] = []
        for (line, row) in zip(labelRows.lines, labelRows.rows) {
            let where_ = "\(directory)/label.csv line \(line)"
            guard let number = Int(row[labelRows.column["number"]!]), number >= 0 else {
                throw DataError("\(where_): label number '\(row[labelRows.column["number"]!])' is not a non-negative integer")
            }
            guard number == labels.count || (number == labels.count + 1 && labels.isEmpty && number == 1) else {
                throw DataError("\(where_): label \(number) out of order (labels must be numbered consecutively from 0 or 1)")
            }
            if labels.isEmpty && number == 1 { labels.append(Label(number: 0, name: "-", category: 0)) }
            let category = try Self.primaryCategory(row[labelRows.column["category"]!], in: categories, where_)
            labels.append(Label(number: number, name: row[labelRows.column["name"]!], category: category))
        }
        self.labels = labels
        let index = try Self.readCSV(directory + "/index.csv", header: ["image", "split", "ih", "iw", "sh", "sw"] + categories)
        var records: [Record] = []
        var maskSize: (Int, Int)?
        var numeric = [Bool?](repeating: nil, count: categories.count)
        for (line, row) in zip(index.lines, index.rows) {
            let where_ = "\(directory)/index.csv line \(line)"
            func int(_ name: String) throws -> Int {
                guard let v = Int(row[index.column[name]!]), v > 0 else { throw DataError("\(where_): \(name) '\(row[index.column[name]!])' is not a positive integer") }
                return v
            }
            let size = (try int("sh"), try int("sw"))
            if let m = maskSize, m != size { throw DataError("\(where_): mask size \(size.0)x\(size.1) differs from the first image's \(m.0)x\(m.1)") }
            maskSize = size
            var annotations: [[String]] = []
            for (c, name) in categories.enumerated() {
                let items = row[index.column[name]!].split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                for item in items {
                    let isNumber = Int(item) != nil
                    if let known = numeric[c], known != isNumber {
                        throw DataError("\(where_): category '\(name)' mixes label numbers and mask files ('\(item)')")
                    }
                    numeric[c] = isNumber
                    if isNumber, let n = Int(item), n < 1 || n >= labels.count {
                        throw DataError("\(where_): label \(n) in '\(name)' is not in label.csv (1..\(labels.count - 1))")
                    }
                }
                annotations.append(items)
            }
            records.append(Record(image: row[index.column["image"]!], split: row[index.column["split"]!],
                                  imageHeight: try int("ih"), imageWidth: try int("iw"), annotations: annotations))
        }
        guard let maskSize else { throw DataError("\(directory)/index.csv: no images") }
        self.records = records
        (maskHeight, maskWidth) = maskSize
        imageLevel = numeric.map { $0 ?? false }
    }

    /// The image at `i` as stored (PNG or JPEG under `images/`).
    public func image(at i: Int) throws -> Image {
        try readImage(directory + "/images/" + records[i].image)
    }

    /// The labels of image `i`: its mask PNGs decoded (R + 256 * G) and its image-level labels.
    public func annotation(at i: Int) throws -> Annotation {
        var result = Annotation(planes: [], imageLabels: [], categories: [])
        for (c, items) in records[i].annotations.enumerated() where !items.isEmpty {
            result.categories.append(c)
            if imageLevel[c] {
                result.imageLabels += items.compactMap { Int32($0) }
                continue
            }
            for file in items {
                let path = directory + "/images/" + file
                let mask = try readPNG(path)
                guard mask.width == maskWidth, mask.height == maskHeight else {
                    throw DataError("\(path): mask is \(mask.width)x\(mask.height), index.csv says \(maskWidth)x\(maskHeight)")
                }
                var plane = [Int32](repeating: 0, count: maskWidth * maskHeight)
                for p in plane.indices {
                    let r = Int(mask.pixels[p * mask.channels]), g = mask.channels >= 3 ? Int(mask.pixels[p * mask.channels + 1]) : 0
                    let label = r + 256 * g
                    guard label < labels.count else { throw DataError("\(path): pixel \(p) has label \(label), label.csv has \(labels.count - 1)") }
                    plane[p] = Int32(label)
                }
                result.planes.append(plane)
            }
        }
        return result
    }

    /// The category of `name(count);name(count)` with the largest count (the first on a tie).
    static func primaryCategory(_ field: String, in categories: [String], _ where_: String) throws -> Int {
        var best: (index: Int, count: Int)?
        for entry in field.split(separator: ";") {
            let text = entry.trimmingCharacters(in: .whitespaces)
            let name: String, count: Int
            if let open = text.firstIndex(of: "("), text.hasSuffix(")") {
                name = String(text[..<open])
                guard let n = Int(text[text.index(after: open)..<text.index(before: text.endIndex)]) else {
                    throw DataError("\(where_): category entry '\(text)' is not name(count)")
                }
                count = n
            } else {
                (name, count) = (text, 0)
            }
            guard let index = categories.firstIndex(of: name) else {
                throw DataError("\(where_): category '\(name)' is not in category.csv (\(categories.joined(separator: ", ")))")
            }
            if best == nil || count > best!.count { best = (index, count) }
        }
        guard let best else { throw DataError("\(where_): no category") }
        return best.index
    }

    /// A CSV file with a header row holding at least `header`; fields may be double-quoted.
    static func readCSV(_ path: String, header required: [String]) throws -> (column: [String: Int], rows: [[String]], lines: [Int]) {
        let bytes = try readDataFile(path)
        guard let text = String(bytes: bytes, encoding: .utf8) else { throw DataError("\(path): not UTF-8 text") }
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        guard let first = lines.first, !first.isEmpty else { throw DataError("\(path): empty file, expected a header row") }
        let names = try parseCSVLine(String(first), path, 1)
        var column: [String: Int] = [:]
        for (i, name) in names.enumerated() where column[name] == nil { column[name] = i }
        let missing = required.filter { column[$0] == nil }
        guard missing.isEmpty else { throw DataError("\(path): header lacks column(s) \(missing.joined(separator: ", "))") }
        var rows: [[String]] = [], numbers: [Int] = []
        for (i, line) in lines.enumerated().dropFirst() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let fields = try parseCSVLine(String(line), path, i + 1)
            guard fields.count == names.count else {
                throw DataError("\(path) line \(i + 1): \(fields.count) fields, the header has \(names.count)")
            }
            rows.append(fields)
            numbers.append(i + 1)
        }
        return (column, rows, numbers)
    }

    static func parseCSVLine(_ line: String, _ path: String, _ number: Int) throws -> [String] {
        var fields: [String] = [], field = "", quoted = false, wasQuoted = false
        var chars = line.makeIterator()
        while let ch = chars.next() {
            if quoted {
                if ch == "\"" {
                    quoted = false
                } else {
                    field.append(ch)
                }
            } else if ch == "\"" {
                if wasQuoted { field.append("\"") }
                quoted = true
                wasQuoted = true
            } else if ch == "," {
                fields.append(field)
                field = ""
                wasQuoted = false
            } else {
                field.append(ch)
            }
        }
        guard !quoted else { throw DataError("\(path) line \(number): unterminated quoted field") }
        fields.append(field)
        return fields
    }
}
