/// A reply's grammar behind the reasoning block a thinking model (Qwen3, QwQ) writes
/// before its answer: `<think>` thought `</think>` and the blank lines after it, then the
/// answer held to the grammar. The thought itself is free text (anything but `</` other
/// than in `</think>`).
enum ReasoningGrammar {
    enum Mode: Hashable {
        /// The model may write a reasoning block first (thinking not turned off).
        case optional
        /// The prompt opened the block: the reply begins inside it.
        case opened
    }

    /// GBNF of the rest of a reasoning block after `<think>`.
    static let thought = #"([^<] | "<" [^/])* "</think>" [ \n]{0,4}"#

    /// `grammar` behind a reasoning block (`mode`): its rules, the block's rules, and a
    /// new root reading the block, then the old root.
    static func wrapped(_ grammar: Grammar, mode: Mode) throws -> Grammar {
        let head = try GBNFParser.parse("root ::= \(mode == .opened ? "thought" : #"("<think>" thought)?"#)\nthought ::= \(thought)\n")
        let offset = grammar.rules.count
        func shifted(_ sequence: Grammar.Sequence) -> Grammar.Sequence {
            sequence.map { if case .rule(let r) = $0 { return .rule(r + offset) } else { return $0 } }
        }
        var out = grammar
        out.rules += head.rules.map { $0.map(shifted) }
        out.names += head.names.map { "reasoning-\($0)" }
        out.root = head.root + offset
        out.rules[out.root] = out.rules[out.root].map { $0 + [.rule(grammar.root)] }
        return out
    }
}
