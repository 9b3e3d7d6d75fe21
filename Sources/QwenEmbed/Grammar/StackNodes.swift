/// The parser stacks of a `GrammarAutomaton`, hash-consed: a node is a rule position over
/// a parent node, so a whole stack is one integer and equal stacks are the same node.
/// Also the walk that expands nodes to the stack tops they stand for. A value type with
/// its own open-addressing table: one exclusive access per call instead of one per
/// array element, and no generic dictionary hashing (a fuzzed grammar can make millions
/// of nodes).
struct StackNodes {
    /// [nodes]: each node's element position and parent node (`empty` at the bottom).
    private(set) var position: [Int32] = []
    private(set) var parent: [Int32] = []
    /// [nodes]: the stack tops a node expands to (nil until computed).
    private var expansions: [[Int32]?] = []
    /// [nodes]: the `expand` walk that last visited the node / took it as a stack top
    /// (marks instead of hash sets: a walk may visit hundreds of thousands of nodes).
    private var visitedIn: [UInt32] = []
    private var topIn: [UInt32] = []
    /// The current walk's number (0: none yet).
    private var walkNumber: UInt32 = 0
    /// [capacity, a power of two]: node ids by hash of (position, parent), -1 = free.
    private var slots = [Int32](repeating: -1, count: 1024)
    /// Nodes the current call may still visit or take from kept expansions.
    private var budget = 0

    /// The parent of a bottom node: the empty stack (reading it ends the input).
    static let empty: Int32 = -1
    /// In a list of stack tops: the input may end here.
    static let acceptMarker: Int32 = -1

    var count: Int { position.count }

    /// Starts a call's budget of `GrammarAutomaton.expansionBudgetPerCall` nodes.
    mutating func resetBudget() { budget = GrammarAutomaton.expansionBudgetPerCall }

    /// The interned node `position` over `parent`.
    mutating func node(_ position: Int32, _ parent: Int32) -> Int32 {
        let mask = slots.count - 1
        var i = StackNodes.hash(position, parent) & mask
        while true {
            let n = slots[i]
            if n < 0 { break }
            if self.position[Int(n)] == position && self.parent[Int(n)] == parent { return n }
            i = (i + 1) & mask
        }
        let n = Int32(self.position.count)
        self.position.append(position)
        self.parent.append(parent)
        expansions.append(nil)
        visitedIn.append(0)
        topIn.append(0)
        slots[i] = n
        if self.position.count * 2 > slots.count { grow() }
        return n
    }

    private static func hash(_ position: Int32, _ parent: Int32) -> Int {
        let key = UInt64(UInt32(bitPattern: position)) << 32 | UInt64(UInt32(bitPattern: parent))
        return Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32)
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        let mask = slots.count - 1
        for n in position.indices {
            var i = StackNodes.hash(position[n], parent[n]) & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(n)
        }
    }

    /// The stack tops the `nodes` stand for (`acceptMarker` first when the input may end):
    /// a node whose element is a byte set, itself; one whose alternative ended, its
    /// parent's; one at a rule reference, each alternative of the rule over the rest of
    /// its own alternative (a reference that ends an alternative is a tail call: the stack
    /// does not grow, so `x ::= "a" x | ""` runs in constant space). One walk visits each
    /// node once, so rules that repeat without reading a byte (`( [x]* )*`) end where they
    /// come back to a node, and stacks that share a tail (the copies of a nullable
    /// repetition) walk it once. A lone node's tops are kept for the next state holding it.
    /// `elements` / `alternatives`: the compiled grammar (`GrammarAutomaton`'s).
    mutating func expand(_ nodes: [Int32], elements: [Int32], alternatives: [[Int32]]) throws -> [Int32] {
        let lone = nodes.count == 1 && nodes[0] != StackNodes.empty ? Int(nodes[0]) : nil
        if let lone, let known = expansions[lone] { return known }
        if walkNumber == UInt32.max {
            walkNumber = 0
            for i in visitedIn.indices { visitedIn[i] = 0; topIn[i] = 0 }
        }
        walkNumber += 1
        let walk = walkNumber
        var tops: [Int32] = []
        var accepts = false
        var pending = nodes
        while let n = pending.popLast() {
            if n == StackNodes.empty { accepts = true; continue }
            guard visitedIn[Int(n)] != walk else { continue }
            visitedIn[Int(n)] = walk
            let known = expansions[Int(n)]
            budget -= 1 + (known?.count ?? 0)
            guard budget >= 0 else {
                throw QwenError.invalidArgument("the grammar reaches more than \(GrammarAutomaton.expansionBudgetPerCall) parser stacks in one step (repetitions of something that can match nothing, nested or with large counts?)")
            }
            if let known {
                for t in known {
                    if t == StackNodes.acceptMarker { accepts = true } else if topIn[Int(t)] != walk { topIn[Int(t)] = walk; tops.append(t) }
                }
                continue
            }
            let at = Int(position[Int(n)]), below = parent[Int(n)]
            let element = elements[at]
            if element >= 0 {
                if topIn[Int(n)] != walk { topIn[Int(n)] = walk; tops.append(n) }
            } else if element == GrammarAutomaton.endOfAlternative {
                pending.append(below)
            } else {
                let rule = Int(-2 - element)
                let rest = elements[at + 1] == GrammarAutomaton.endOfAlternative ? below : node(Int32(at + 1), below)
                for a in alternatives[rule] { pending.append(node(a, rest)) }
            }
            guard count < GrammarAutomaton.maxNodes else {
                throw QwenError.invalidArgument("the grammar needs too many parser stacks (nested too deeply, or too ambiguous)")
            }
        }
        let result = accepts ? [StackNodes.acceptMarker] + tops : tops
        if let lone { expansions[lone] = result }
        return result
    }
}
