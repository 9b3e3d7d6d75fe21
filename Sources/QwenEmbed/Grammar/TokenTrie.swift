/// The vocabulary's tokens as a byte trie in depth-first order, for masking: a walk visits
/// a node after its parent and can skip a node's whole subtree at once (`subtreeEnd`),
/// as llguidance's `toktrie` does. Control tokens (<|im_end|>) are not in it: they carry
/// no text a grammar could match; end-of-turn tokens are the matcher's to allow.
final class TokenTrie: Sendable {
    /// Token ids the masks cover (the model's logits).
    let vocabSize: Int
    let nodeCount: Int
    /// [nodes]: the byte leading to each node (node 0, the root, has none).
    let byte: [UInt8]
    /// [nodes]: one past the node's last descendant.
    let subtreeEnd: [Int32]
    /// [nodes]: the token whose bytes end here, `noToken`, or `-2 - k` when several
    /// tokens have these bytes (`sharedBytes[k]`).
    let token: [Int32]
    let sharedBytes: [[Int32]]
    static let noToken: Int32 = -1

    init(tokenizer: Tokenizer, vocabSize: Int) {
        self.vocabSize = vocabSize
        var entries: [(bytes: [UInt8], id: Int32)] = []
        entries.reserveCapacity(tokenizer.count)
        for id in 0..<Int32(min(tokenizer.count, vocabSize)) where !tokenizer.isSpecial(id) {
            if let bytes = tokenizer.tokenBytes(id), !bytes.isEmpty { entries.append((bytes, id)) }
        }
        entries.sort { $0.bytes.lexicographicallyPrecedes($1.bytes) || ($0.bytes == $1.bytes && $0.id < $1.id) }
        var byte: [UInt8] = [0]
        var token: [Int32] = [TokenTrie.noToken]
        var parentOf: [Int32] = [-1]
        var shared: [[Int32]] = []
        var path: [Int32] = [0]        // [depth + 1] the nodes of the previous entry's bytes
        var previous: [UInt8] = []
        for (bytes, id) in entries {
            var common = 0
            while common < min(previous.count, bytes.count) && previous[common] == bytes[common] { common += 1 }
            path.removeSubrange((common + 1)...)
            for b in bytes[common...] {
                parentOf.append(path[path.count - 1])
                path.append(Int32(byte.count))
                byte.append(b)
                token.append(TokenTrie.noToken)
            }
            let node = Int(path[path.count - 1])
            if token[node] == TokenTrie.noToken {
                token[node] = id
            } else if token[node] >= 0 {
                shared.append([token[node], id])
                token[node] = -2 - Int32(shared.count - 1)
            } else {
                shared[Int(-2 - token[node])].append(id)
            }
            previous = bytes
        }
        // Preorder: a subtree ends where the next node not below it begins.
        var end = [Int32](repeating: Int32(byte.count), count: byte.count)
        var open: [Int32] = []
        for n in 0..<Int32(byte.count) {
            while let top = open.last, top != parentOf[Int(n)] { end[Int(top)] = n; open.removeLast() }
            open.append(n)
        }
        self.byte = byte
        self.token = token
        subtreeEnd = end
        sharedBytes = shared
        nodeCount = byte.count
    }
}
