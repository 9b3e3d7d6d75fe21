/// Why a template could not be compiled or rendered, before `qwenError` words it for the
/// caller: constructs outside the supported subset and syntax errors become
/// `QwenError.unsupportedModel` (the caller can fall back to plain ChatML and say why),
/// `raise_exception` and runtime errors caused by the data become `invalidArgument`.
struct JinjaError: Error, Sendable {
    enum Kind: Sendable {
        /// A construct this interpreter does not implement ("the `macro` tag").
        case unsupported
        /// Template text jinja2 would not compile either.
        case syntax
        /// A runtime error jinja2 would raise too (a TypeError, an UndefinedError, ...).
        case runtime
        /// `raise_exception(message)` called by the template.
        case raised
        /// A guard against runaway templates (output size, time, recursion depth).
        case limit
    }

    var kind: Kind
    var message: String
    /// The template line, when known.
    var line: Int?

    static func unsupported(_ what: String, line: Int? = nil) -> JinjaError {
        JinjaError(kind: .unsupported, message: what, line: line)
    }
    static func syntax(_ detail: String, line: Int?) -> JinjaError {
        JinjaError(kind: .syntax, message: detail, line: line)
    }
    static func runtime(_ message: String) -> JinjaError {
        JinjaError(kind: .runtime, message: message, line: nil)
    }
    static func limit(_ message: String) -> JinjaError {
        JinjaError(kind: .limit, message: message, line: nil)
    }

    /// The error with `line` filled in when it had none.
    func at(line: Int) -> JinjaError {
        var copy = self
        if copy.line == nil { copy.line = line }
        return copy
    }

    var qwenError: QwenError {
        let place = line.map { "line \($0): " } ?? ""
        switch kind {
        case .unsupported: return .unsupportedModel("chat template \(place)\(message) is not supported")
        case .syntax: return .unsupportedModel("chat template \(place)syntax error: \(message)")
        case .raised: return .invalidArgument("chat template: \(message)")
        case .runtime, .limit: return .invalidArgument("chat template: \(place)\(message)")
        }
    }
}
