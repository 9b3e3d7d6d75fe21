import ArgumentParser
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

/// Constrained-output flags shared by chat and generate.
struct ConstraintOptions: ParsableArguments {
    @Option(name: .customLong("grammar-file"), help: "A GBNF grammar file the reply must match (llama.cpp's format).")
    var grammarFile: String?
    @Option(name: .customLong("json-schema"), help: "A JSON Schema the reply must be an instance of: JSON text, or a file holding it.")
    var jsonSchema: String?

    /// `parameters` with the grammar or schema set.
    func apply(to parameters: inout GenerationParameters) throws {
        if let grammarFile { parameters.grammar = try RenderCommand.file(grammarFile) }
        if let jsonSchema { parameters.jsonSchema = try ConstraintOptions.schemaText(jsonSchema) }
    }

    /// JSON text given inline (it begins with `{`) or the contents of the file it names.
    static func schemaText(_ argument: String) throws -> String {
        argument.trimmingWhitespace().hasPrefix("{") ? argument : try RenderCommand.file(argument)
    }
}

struct GrammarCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grammar",
        abstract: "Print the GBNF grammar of a JSON Schema, or the tokens a grammar allows after token prefixes.",
        discussion: """
        With --json-schema (or --json-object) alone: prints the grammar replies are held to.
        With -m and --masks FILE: each line of FILE is a JSON array of token ids (a reply \
        prefix the grammar allows); prints one JSON line per prefix: {"allowed": [ids], "end": bool}.
        """)
    @Option(name: .shortAndLong, help: "Model (.gguf or checkpoint directory), for --masks.") var model: String?
    @Option(name: .customLong("grammar-file"), help: "A GBNF grammar file.") var grammarFile: String?
    @Option(name: .customLong("json-schema"), help: "A JSON Schema: JSON text, or a file holding it.") var jsonSchema: String?
    @Flag(name: .customLong("json-object"), help: "Any JSON object (response_format json_object).") var jsonObject = false
    @Option(help: "A file of token-id prefixes, one JSON array per line.") var masks: String?

    func run() throws {
        let grammar: String
        if let grammarFile {
            grammar = try RenderCommand.file(grammarFile)
        } else if let jsonSchema {
            grammar = try Model.grammar(forJSONSchema: ConstraintOptions.schemaText(jsonSchema))
        } else if jsonObject {
            grammar = Model.jsonObjectGrammar
        } else {
            throw ValidationError("give --grammar-file, --json-schema or --json-object")
        }
        guard let masks else {
            print(grammar, terminator: "")
            return
        }
        guard let model else { throw ValidationError("--masks needs -m MODEL") }
        let loaded = try Model.load(path: model)
        for line in try RenderCommand.file(masks).split(separator: "\n") where !String(line).trimmingWhitespace().isEmpty {
            guard case .array(let items)? = try? JSONValue.parse(Array(line.utf8), context: "a prefix"),
                  case let prefix = items.compactMap({ $0.int.map(Int32.init) }), prefix.count == items.count else {
                throw ValidationError("each line of \(masks) must be a JSON array of token ids")
            }
            let (tokens, end) = try loaded.allowedTokens(grammar: grammar, after: prefix)
            print("{\"allowed\": [\(tokens.map(String.init).joined(separator: ", "))], \"end\": \(end)}")
        }
    }
}
