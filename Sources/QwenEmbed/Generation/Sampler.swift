#if canImport(Glibc)
import Glibc
#endif

/// How to pick the next token. Defaults follow the Qwen chat models'
/// generation_config.json (top_p 0.8, repetition_penalty 1.1, top_k off).
public struct SamplingParameters: Sendable, Equatable {
    /// 0 = greedy (argmax after the repetition penalty).
    public var temperature: Float = 1.0
    /// Keep only the k most likely tokens; 0 = off.
    public var topK: Int = 0
    /// Nucleus sampling threshold; 1 = off.
    public var topP: Float = 0.8
    /// HF semantics over prompt + output ids: positive logits divided, negative multiplied.
    public var repetitionPenalty: Float = 1.1
    public init() {}

    public static var greedy: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = 0
        p.repetitionPenalty = 1.0
        return p
    }

    func validated() throws -> SamplingParameters {
        guard temperature >= 0, temperature.isFinite else { throw QwenError.invalidArgument("temperature must be >= 0 (got \(temperature))") }
        guard topK >= 0 else { throw QwenError.invalidArgument("top_k must be >= 0 (got \(topK))") }
        guard topP > 0, topP <= 1 else { throw QwenError.invalidArgument("top_p must be in (0, 1] (got \(topP))") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw QwenError.invalidArgument("repetition_penalty must be > 0 (got \(repetitionPenalty))")
        }
        return self
    }
}

/// xoshiro256** seeded through splitmix64: small, fast, reproducible across platforms.
public struct RandomSource: Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func next() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var r = z
            r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
            r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
            return r ^ (r >> 31)
        }
        s = (next(), next(), next(), next())
    }

    /// A source continuing from `state`, the four words of `state` of another (a saved
    /// session's sampler). Nil for all zeros, which xoshiro never reaches from a seed.
    init?(state: (UInt64, UInt64, UInt64, UInt64)) {
        guard state != (0, 0, 0, 0) else { return nil }
        s = state
    }

    /// The generator's four words: `init(state:)` continues exactly where this one is.
    var state: (UInt64, UInt64, UInt64, UInt64) { s }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// Picks tokens from logits with Qwen's (HF generate's) order of operations:
/// repetition penalty over prompt + output ids, then temperature, top-k, top-p, draw.
public struct Sampler: Sendable {
    public var parameters: SamplingParameters
    public var random: RandomSource

    public init(parameters: SamplingParameters, seed: UInt64) {
        self.parameters = parameters
        random = RandomSource(seed: seed)
    }

    /// logits: [vocab] f32, modified in place. `history`: prompt + generated ids.
    /// Nil when the logits are not all finite (a checkpoint with NaN or infinite weights):
    /// no token can be chosen from them.
    public mutating func sample(_ logits: UnsafeMutablePointer<Float>, vocab: Int, history: [Int32]) -> Int32? {
        sample(logits, vocab: vocab, penalizing: Set(history))
    }

    /// `sample(_:vocab:history:)` with the history's ids given as a set (each id is
    /// penalized once however often it occurs).
    public mutating func sample(_ logits: UnsafeMutablePointer<Float>, vocab: Int, penalizing ids: Set<Int32>) -> Int32? {
        guard applyPenalty(logits, vocab: vocab, penalizing: ids) else { return nil }
        return pick(logits, vocab: vocab)
    }

    /// The repetition penalty on `ids`, in place; false when the logits are not all finite.
    func applyPenalty(_ logits: UnsafeMutablePointer<Float>, vocab: Int, penalizing ids: Set<Int32>) -> Bool {
        let penalty = parameters.repetitionPenalty
        if penalty != 1 {
            for id in ids where id >= 0 && Int(id) < vocab {
                let l = logits[Int(id)]
                logits[Int(id)] = l < 0 ? l * penalty : l / penalty
            }
        }
        return Sampler.allFinite(logits, vocab)
    }

    /// Whether every value of x[count] is finite, 16 at a time: x * 0 is (±)0 for a finite
    /// x and NaN for infinities and NaN, so the sum of those products is 0 exactly when all
    /// are finite.
    static func allFinite(_ x: UnsafePointer<Float>, _ count: Int) -> Bool {
        let raw = UnsafeRawPointer(x)
        var products = SIMD16<Float>()
        var i = 0
        while i + 16 <= count {
            products += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * 0
            i += 16
        }
        var finite = products.sum() == 0
        while i < count { finite = finite && x[i].isFinite; i += 1 }
        return finite
    }

    /// The id with the largest logit (the first of equals); the logits are not NaN.
    /// Two passes 16 at a time: the largest value, then the first position holding it.
    static func argmax(_ logits: UnsafePointer<Float>, vocab: Int) -> Int32 {
        let raw = UnsafeRawPointer(logits)
        let whole = vocab / 16 * 16   // values the 16-wide passes cover
        var largest = SIMD16<Float>(repeating: -.infinity)
        for i in stride(from: 0, to: whole, by: 16) {
            let values = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            largest.replace(with: values, where: values .> largest)
        }
        var maximum = largest.max()
        for i in whole..<vocab { maximum = max(maximum, logits[i]) }
        var i = 0
        while i < whole && !any(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) .== maximum) { i += 16 }
        while i < vocab - 1 && logits[i] != maximum { i += 1 }   // (bounded should a NaN have slipped in)
        return Int32(i)
    }

    /// Draws from `logits` [vocab] (penalized; -infinity for tokens a grammar refuses, at
    /// least one finite): temperature, top-k, top-p, draw; argmax when greedy.
    mutating func pick(_ logits: UnsafePointer<Float>, vocab: Int) -> Int32 {
        let p = parameters
        let best = Int(Sampler.argmax(logits, vocab: vocab))
        if p.temperature == 0 { return Int32(best) }

        // Candidates: tokens within e^-40 of the best (the rest carry no probability
        // mass at float precision), sorted by logit, best first.
        let maximum = logits[best] / p.temperature
        var candidates: [(id: Int32, logit: Float)] = []
        for i in 0..<vocab {
            let l = logits[i] / p.temperature
            if l > maximum - 40 { candidates.append((Int32(i), l)) }
        }
        candidates.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
        if p.topK > 0 && candidates.count > p.topK { candidates.removeSubrange(p.topK...) }

        var probabilities = candidates.map { Double(expf($0.logit - maximum)) }
        var total = probabilities.reduce(0, +)
        if p.topP < 1 {
            // HF TopP: drop the low tail whose cumulative mass is <= 1 - top_p, keep >= 1.
            var cumulative = 0.0
            var keep = probabilities.count
            for i in stride(from: probabilities.count - 1, through: 1, by: -1) {
                cumulative += probabilities[i] / total
                if cumulative <= 1 - Double(p.topP) { keep = i } else { break }
            }
            probabilities.removeSubrange(keep...)
            total = probabilities.reduce(0, +)
        }
        var target = random.nextUnit() * total
        for (i, probability) in probabilities.enumerated() {
            target -= probability
            if target < 0 { return candidates[i].id }
        }
        return candidates[probabilities.count - 1].id
    }
}
