/// Holds back text that could still become a stop string, and ends the reply before a
/// stop string. Works on Unicode scalars, so pieces are always whole characters.
struct StopStringFilter {
    let stops: [[Unicode.Scalar]]
    private var pending: [Unicode.Scalar] = []

    init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.unicodeScalars) }
    }

    /// Adds text; returns what is safe to emit, and whether a stop string was reached
    /// (everything from it on is discarded).
    mutating func push(_ text: String) -> (emit: String, stopped: Bool) {
        pending.append(contentsOf: text.unicodeScalars)
        var earliest: Int? = nil
        for stop in stops {
            if let at = StopStringFilter.find(stop, in: pending), at < (earliest ?? Int.max) { earliest = at }
        }
        if let earliest {
            let emit = String(String.UnicodeScalarView(pending[..<earliest]))
            pending.removeAll()
            return (emit, true)
        }
        // Longest suffix of pending that is a proper prefix of some stop string.
        var hold = 0
        for stop in stops {
            var length = min(stop.count - 1, pending.count)
            while length > hold {
                if pending[(pending.count - length)...].elementsEqual(stop[..<length]) { hold = length; break }
                length -= 1
            }
        }
        let emit = String(String.UnicodeScalarView(pending[..<(pending.count - hold)]))
        pending.removeFirst(pending.count - hold)
        return (emit, false)
    }

    /// The held-back text, at the end of a reply that hit no stop string.
    mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(String.UnicodeScalarView(pending))
    }

    static func find(_ needle: [Unicode.Scalar], in haystack: [Unicode.Scalar]) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        }
        return nil
    }
}
