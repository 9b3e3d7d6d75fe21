/// A compiled chat template: jinja2 as transformers' `apply_chat_template` runs it
/// (ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, loop controls, the
/// `{% generation %}` tag, `tojson` as json.dumps with ensure_ascii=False, globals
/// `raise_exception` and `strftime_now`), for the subset of jinja2 chat templates use.
///
/// The output comes in segments that say which text came from the caller's values and
/// which from the template, so that special-token text inside a message can be tokenized
/// as plain text. Immutable: one instance can render on many threads at once.
///
///     let template = try JinjaTemplate(source: source)
///     let segments = try template.render([
///         "messages": .list([.dict([("role", .literal("user")), ("content", .data(text))])]),
///         "tools": .none,
///         "add_generation_prompt": .bool(true),
///     ])
///
/// Errors: a construct outside the subset, or a syntax error, is
/// `QwenError.unsupportedModel("chat template line L: ...")` (thrown by `init` where the
/// construct is visible in the text); `raise_exception(message)` is
/// `QwenError.invalidArgument("chat template: message")`, and other errors the data causes
/// at render time (a TypeError, an undefined value used, runaway output) are
/// `invalidArgument` too.
final class JinjaTemplate: Sendable {
    private let body: JinjaFrame

    init(source: String) throws {
        do {
            body = try JinjaStack.run { try JinjaParser.parse(source) }
        } catch let error as JinjaError {
            throw error.qwenError
        }
    }

    /// Renders with `context` as the template's variables (messages, tools,
    /// add_generation_prompt, bos_token, ...); adjacent segments of one kind are merged.
    func render(_ context: [String: JinjaValue]) throws -> [TemplateSegment] {
        do {
            return try JinjaStack.run { try JinjaRenderer().render(body, context: context).segments() }
        } catch let error as JinjaError {
            throw error.qwenError
        }
    }
}
