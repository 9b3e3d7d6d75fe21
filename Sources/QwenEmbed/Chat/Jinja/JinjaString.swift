/// A Python `str` as a chat template sees it: Unicode scalars (Python's code points, so
/// lengths, indices and slices count what Python counts), which of them came from the
/// caller's data, and whether it is markupsafe `Markup` (what `safe` and `escape` return:
/// `+` with a Markup operand HTML-escapes the other one, as jinja2 does).
///
/// Provenance follows the characters: concatenation keeps each part's, slicing, strip and
/// split keep the sliced characters', and a transformation (upper, title, ...) marks its
/// whole result as data when any input character was data.
struct JinjaString: Sendable, Hashable {
    /// One run of consecutive characters of the same provenance.
    struct Run: Sendable, Equatable {
        var length: Int
        var isData: Bool
    }

    private(set) var scalars: [Unicode.Scalar]
    /// Runs covering `scalars` in order; none empty, neighbours of different provenance.
    private(set) var runs: [Run]
    var isMarkup: Bool

    init() {
        scalars = []
        runs = []
        isMarkup = false
    }

    init(_ text: String, isData: Bool, isMarkup: Bool = false) {
        self.init(Array(text.unicodeScalars), isData: isData, isMarkup: isMarkup)
    }

    init(_ scalars: [Unicode.Scalar], isData: Bool, isMarkup: Bool = false) {
        self.scalars = scalars
        self.runs = scalars.isEmpty ? [] : [Run(length: scalars.count, isData: isData)]
        self.isMarkup = isMarkup
    }

    /// Python equality: the same code points, whatever their provenance.
    static func == (lhs: JinjaString, rhs: JinjaString) -> Bool { lhs.scalars == rhs.scalars }
    func hash(into hasher: inout Hasher) { hasher.combine(scalars) }

    var count: Int { scalars.count }
    var isEmpty: Bool { scalars.isEmpty }
    var text: String {
        var result = String()
        result.unicodeScalars.append(contentsOf: scalars)
        return result
    }
    var containsData: Bool { runs.contains { $0.isData } }

    /// The same characters as plain `str` (what `str()` and `~` make of Markup).
    var plain: JinjaString {
        var copy = self
        copy.isMarkup = false
        return copy
    }

    /// Appends `other`'s characters with their provenance.
    mutating func append(_ other: JinjaString) {
        scalars.append(contentsOf: other.scalars)
        for run in other.runs { appendRun(run) }
    }

    private mutating func appendRun(_ run: Run) {
        guard run.length > 0 else { return }
        if let last = runs.indices.last, runs[last].isData == run.isData {
            runs[last].length += run.length
        } else {
            runs.append(run)
        }
    }

    /// The string `times` times over (`s * n`).
    func repeated(_ times: Int) -> JinjaString {
        var result = JinjaString([], isData: false, isMarkup: isMarkup)
        result.scalars.reserveCapacity(count * times)
        for _ in 0..<times { result.scalars.append(contentsOf: scalars) }
        if runs.count == 1, let run = runs.first {
            result.runs = [Run(length: count * times, isData: run.isData)]
        } else {
            for _ in 0..<times { for run in runs { result.appendRun(run) } }
        }
        return result
    }

    static func + (lhs: JinjaString, rhs: JinjaString) -> JinjaString {
        var result = lhs
        result.append(rhs)
        return result
    }

    /// The characters in `range` (code point offsets) with their provenance.
    func slice(_ range: Range<Int>) -> JinjaString {
        var result = JinjaString(Array(scalars[range]), isData: false, isMarkup: isMarkup)
        result.runs = []
        var start = 0
        for run in runs {
            let end = start + run.length
            let overlap = min(end, range.upperBound) - max(start, range.lowerBound)
            if overlap > 0 { result.appendRun(Run(length: overlap, isData: run.isData)) }
            if end >= range.upperBound { break }
            start = end
        }
        return result
    }

    /// The characters at `indices`, in that order, with their provenance.
    func picking(_ indices: [Int]) -> JinjaString {
        var result = JinjaString([], isData: false, isMarkup: isMarkup)
        for index in indices { result.append(slice(index..<index + 1)) }
        return result
    }

    /// A string computed from this one (and from `others`): data when any input was.
    func derived(_ scalars: [Unicode.Scalar], from others: [JinjaString] = []) -> JinjaString {
        let isData = containsData || others.contains { $0.containsData }
        return JinjaString(scalars, isData: isData, isMarkup: isMarkup)
    }

    /// The text as segments of literal and data runs.
    func segments() -> [TemplateSegment] {
        var result: [TemplateSegment] = []
        var start = 0
        for run in runs {
            var text = String()
            text.unicodeScalars.append(contentsOf: scalars[start..<start + run.length])
            result.append(TemplateSegment(text: text, isData: run.isData))
            start += run.length
        }
        return result
    }
}

// MARK: - Python str methods

extension JinjaString {
    /// Python's `str.isspace` for one code point (also what `\s` matches in Python regexes).
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// The line boundaries of Python's `str.splitlines` (besides "\r\n").
    static func isLineBreak(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0A...0x0D, 0x1C...0x1E, 0x85, 0x2028, 0x2029: return true
        default: return false
        }
    }

    /// `str.strip` / `lstrip` / `rstrip`: `chars` nil strips whitespace.
    func stripped(leading: Bool, trailing: Bool, chars: JinjaString? = nil) -> JinjaString {
        let set = chars.map { Set($0.scalars) }
        func strips(_ scalar: Unicode.Scalar) -> Bool { set?.contains(scalar) ?? JinjaString.isSpace(scalar) }
        var start = 0, end = count
        if leading { while start < end, strips(scalars[start]) { start += 1 } }
        if trailing { while end > start, strips(scalars[end - 1]) { end -= 1 } }
        return slice(start..<end)
    }

    /// Start offsets of the non-overlapping occurrences of `pattern` (not empty), scanning
    /// from the left, or from the right when `fromEnd` (as Python's rsplit and rfind do).
    /// Knuth-Morris-Pratt, so no input makes it quadratic.
    func occurrences(of pattern: [Unicode.Scalar], fromEnd: Bool = false, limit: Int = Int.max) -> [Int] {
        guard !pattern.isEmpty, pattern.count <= count, limit > 0 else { return [] }
        let text = fromEnd ? Array(scalars.reversed()) : scalars
        let needle = fromEnd ? Array(pattern.reversed()) : pattern
        var failure = [Int](repeating: 0, count: needle.count)
        var k = 0
        for i in 1..<max(needle.count, 1) {
            while k > 0 && needle[i] != needle[k] { k = failure[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            failure[i] = k
        }
        var found: [Int] = []
        k = 0
        for (i, scalar) in text.enumerated() {
            while k > 0 && scalar != needle[k] { k = failure[k - 1] }
            if scalar == needle[k] { k += 1 }
            if k == needle.count {
                let start = i + 1 - needle.count
                found.append(fromEnd ? count - start - needle.count : start)
                if found.count == limit { break }
                k = 0
            }
        }
        return found
    }

    func contains(_ other: JinjaString) -> Bool {
        other.isEmpty || !occurrences(of: other.scalars, limit: 1).isEmpty
    }

    /// `str.find` (`fromEnd`: `rfind`) over the whole string: -1 when absent.
    func find(_ other: JinjaString, fromEnd: Bool = false) -> Int {
        if other.isEmpty { return fromEnd ? count : 0 }
        return occurrences(of: other.scalars, fromEnd: fromEnd, limit: 1).first ?? -1
    }

    /// `str.count(sub)`: non-overlapping occurrences (an empty `sub`: len + 1).
    func occurrenceCount(_ other: JinjaString) -> Int {
        other.isEmpty ? count + 1 : occurrences(of: other.scalars).count
    }

    func hasPrefix(_ other: JinjaString) -> Bool { scalars.starts(with: other.scalars) }
    func hasSuffix(_ other: JinjaString) -> Bool { scalars.reversed().starts(with: other.scalars.reversed()) }

    /// `str.split(sep, maxsplit)` / `str.rsplit` with a separator (not empty).
    func split(separator: JinjaString, maxSplit: Int, fromEnd: Bool) -> [JinjaString] {
        let width = separator.count
        let starts = occurrences(of: separator.scalars, fromEnd: fromEnd, limit: maxSplit < 0 ? Int.max : maxSplit)
            .sorted()
        var pieces: [JinjaString] = []
        var start = 0
        for match in starts {
            pieces.append(slice(start..<match))
            start = match + width
        }
        pieces.append(slice(start..<count))
        return pieces
    }

    /// `str.split()` / `str.rsplit()` without a separator: runs of non-whitespace.
    func splitOnWhitespace(maxSplit: Int, fromEnd: Bool) -> [JinjaString] {
        var ranges: [Range<Int>] = []
        let limit = maxSplit < 0 ? Int.max : maxSplit
        if fromEnd {
            var end = count
            while end > 0 {
                while end > 0, JinjaString.isSpace(scalars[end - 1]) { end -= 1 }
                guard end > 0 else { break }
                var start = end
                if ranges.count == limit {
                    ranges.append(0..<end)  // the rest keeps its leading whitespace, as in Python
                    break
                }
                while start > 0, !JinjaString.isSpace(scalars[start - 1]) { start -= 1 }
                ranges.append(start..<end)
                end = start
            }
            ranges.reverse()
        } else {
            var start = 0
            while start < count {
                while start < count, JinjaString.isSpace(scalars[start]) { start += 1 }
                guard start < count else { break }
                if ranges.count == limit {
                    ranges.append(start..<count)  // the rest keeps its trailing whitespace
                    break
                }
                var end = start
                while end < count, !JinjaString.isSpace(scalars[end]) { end += 1 }
                ranges.append(start..<end)
                start = end
            }
        }
        return ranges.map(slice)
    }

    /// `str.splitlines()` (line breaks dropped).
    func splitLines() -> [JinjaString] {
        var lines: [JinjaString] = []
        var start = 0, index = 0
        while index < count {
            let scalar = scalars[index]
            if JinjaString.isLineBreak(scalar) {
                lines.append(slice(start..<index))
                index += (scalar == "\r" && index + 1 < count && scalars[index + 1] == "\n") ? 2 : 1
                start = index
            } else {
                index += 1
            }
        }
        if start < count { lines.append(slice(start..<count)) }
        return lines
    }

    /// `str.replace(old, new, count)`: untouched characters keep their provenance, each
    /// inserted `new` keeps its own.
    func replacing(_ old: JinjaString, with new: JinjaString, limit: Int) -> JinjaString {
        let maximum = limit < 0 ? Int.max : limit
        var result = JinjaString([], isData: false, isMarkup: isMarkup)
        if old.isEmpty {
            // Python inserts `new` before every character and at the end.
            var inserted = 0
            for index in 0...count {
                if inserted < maximum { result.append(new.withMarkup(isMarkup)); inserted += 1 }
                if index < count { result.append(slice(index..<index + 1)) }
            }
            return result
        }
        var start = 0
        for match in occurrences(of: old.scalars, limit: maximum) {
            result.append(slice(start..<match))
            result.append(new.withMarkup(isMarkup))
            start = match + old.count
        }
        result.append(slice(start..<count))
        return result
    }

    func withMarkup(_ markup: Bool) -> JinjaString {
        var copy = self
        copy.isMarkup = markup
        return copy
    }

    /// Python's full case mappings, one code point at a time.
    func uppercased() -> JinjaString { derived(scalars.flatMap { $0.properties.uppercaseMapping.unicodeScalars }) }
    func lowercased() -> JinjaString { derived(indices.flatMap(lowercaseMapping)) }

    private var indices: Range<Int> { 0..<count }

    /// The lowercase of the character at `index`: Python maps a capital sigma to the final
    /// form at the end of a word (after a cased letter, and not before one, ignoring
    /// case-ignorable characters such as apostrophes).
    private func lowercaseMapping(_ index: Int) -> [Unicode.Scalar] {
        let scalar = scalars[index]
        guard scalar == "\u{03A3}" else { return Array(scalar.properties.lowercaseMapping.unicodeScalars) }
        let before = scalars[..<index].last { !$0.properties.isCaseIgnorable }
        let after = scalars[(index + 1)...].first { !$0.properties.isCaseIgnorable }
        let isFinal = before?.properties.isCased == true && after?.properties.isCased != true
        return [isFinal ? "\u{03C2}" : "\u{03C3}"]
    }

    /// `str.title()`: a cased character after a cased one is lowercased, others title-cased.
    func pythonTitle() -> JinjaString {
        var result: [Unicode.Scalar] = []
        var previousIsCased = false
        for (index, scalar) in scalars.enumerated() {
            result += previousIsCased ? lowercaseMapping(index) : Array(scalar.properties.titlecaseMapping.unicodeScalars)
            previousIsCased = scalar.properties.isCased
        }
        return derived(result)
    }

    /// `str.capitalize()`: the first character title-cased, the rest lowercased.
    func capitalized() -> JinjaString {
        guard let first = scalars.first else { return self }
        return derived(Array(first.properties.titlecaseMapping.unicodeScalars) + indices.dropFirst().flatMap(lowercaseMapping))
    }

    /// jinja2's `title` filter: the first character of each word (after "-", whitespace,
    /// "(", "{", "[" or "<") uppercased, the rest lowercased.
    func jinjaTitle() -> JinjaString {
        func isBoundary(_ scalar: Unicode.Scalar) -> Bool { "-({[<".unicodeScalars.contains(scalar) || JinjaString.isSpace(scalar) }
        var result: [Unicode.Scalar] = []
        var index = 0
        while index < count {
            let boundary = isBoundary(scalars[index])
            var end = index + 1
            while end < count, isBoundary(scalars[end]) == boundary { end += 1 }
            result.append(contentsOf: scalars[index].properties.uppercaseMapping.unicodeScalars)
            result += slice(index + 1..<end).lowercased().scalars  // Python lowers the word's rest alone
            index = end
        }
        return derived(result).withMarkup(false)
    }

    /// markupsafe's `escape`: & < > " ' as HTML entities, the result Markup.
    func htmlEscaped() -> JinjaString {
        if isMarkup { return self }
        var result = JinjaString([], isData: false, isMarkup: true)
        var start = 0
        for (index, scalar) in scalars.enumerated() {
            let entity: String
            switch scalar {
            case "&": entity = "&amp;"
            case "<": entity = "&lt;"
            case ">": entity = "&gt;"
            case "\"": entity = "&#34;"
            case "'": entity = "&#39;"
            default: continue
            }
            result.append(slice(start..<index))
            result.append(slice(index..<index + 1).derived(Array(entity.unicodeScalars)))
            start = index + 1
        }
        result.append(slice(start..<count))
        result.isMarkup = true
        return result
    }
}
