/// The GBNF expression of the decimal integers in minimum...maximum (nil = unbounded), no
/// leading zeros: llama.cpp's `build_min_max_int` (common/json-schema-to-grammar.cpp),
/// digit by digit, ported as it is so both engines accept the same numbers.
enum IntegerRangeGrammar {
    static func expression(minimum: Int64?, maximum: Int64?) -> String {
        var out = ""
        build(minimum ?? .min, maximum ?? .max, &out, decimalsLeft: 16, topLevel: true)
        return out
    }

    private static func build(_ minimumValue: Int64, _ maxValue: Int64, _ out: inout String, decimalsLeft: Int, topLevel: Bool) {
        var minValue = minimumValue
        let hasMin = minValue != .min, hasMax = maxValue != .max

        func digitRange(_ from: Character, _ to: Character) {
            out += from == to ? "[\(from)]" : "[\(from)-\(to)]"
        }
        func moreDigits(_ minDigits: Int, _ maxDigits: Int) {
            out += "[0-9]"
            if minDigits == maxDigits && minDigits == 1 { return }
            out += "{\(minDigits)"
            if maxDigits != minDigits {
                out += ","
                if maxDigits != Int.max { out += "\(maxDigits)" }
            }
            out += "}"
        }
        func shifted(_ c: Character, _ by: Int) -> Character {
            Character(Unicode.Scalar(UInt8(Int(c.asciiValue ?? 48) + by)))
        }
        func uniformRange(_ from: [Character], _ to: [Character]) {
            var i = 0
            while i < from.count && i < to.count && from[i] == to[i] { i += 1 }
            if i > 0 { out += "\"" + String(from[..<i]) + "\"" }
            guard i < from.count && i < to.count else { return }
            if i > 0 { out += " " }
            let subLength = from.count - i - 1
            guard subLength > 0 else {
                out += "[\(from[i])-\(to[i])]"
                return
            }
            let fromSub = Array(from[(i + 1)...]), toSub = Array(to[(i + 1)...])
            let zeros = [Character](repeating: "0", count: subLength), nines = [Character](repeating: "9", count: subLength)
            var toReached = false
            out += "("
            if fromSub == zeros {
                digitRange(from[i], shifted(to[i], -1))
                out += " "
                moreDigits(subLength, subLength)
            } else {
                out += "[\(from[i])] ("
                uniformRange(fromSub, nines)
                out += ")"
                if (from[i].asciiValue ?? 0) < (to[i].asciiValue ?? 0) - 1 {
                    out += " | "
                    if toSub == nines {
                        digitRange(shifted(from[i], 1), to[i])
                        toReached = true
                    } else {
                        digitRange(shifted(from[i], 1), shifted(to[i], -1))
                    }
                    out += " "
                    moreDigits(subLength, subLength)
                }
            }
            if !toReached {
                out += " | "
                digitRange(to[i], to[i])
                out += " "
                uniformRange(zeros, toSub)
            }
            out += ")"
        }

        if hasMin && hasMax {
            if minValue < 0 && maxValue < 0 {
                out += "\"-\" ("
                build(-maxValue, -minValue, &out, decimalsLeft: decimalsLeft, topLevel: true)
                out += ")"
                return
            }
            if minValue < 0 {
                out += "\"-\" ("
                build(0, -minValue, &out, decimalsLeft: decimalsLeft, topLevel: true)
                out += ") | "
                minValue = 0
            }
            var minText = Array(String(minValue))
            let maxText = Array(String(maxValue))
            for digits in minText.count..<max(minText.count, maxText.count) {
                uniformRange(minText, [Character](repeating: "9", count: digits))
                minText = ["1"] + [Character](repeating: "0", count: digits)
                out += " | "
            }
            uniformRange(minText, maxText)
            return
        }
        let lessDecimals = max(decimalsLeft - 1, 1)
        if hasMin {
            if minValue < 0 {
                out += "\"-\" ("
                build(.min, -minValue, &out, decimalsLeft: decimalsLeft, topLevel: false)
                out += ") | [0] | [1-9] "
                moreDigits(0, decimalsLeft - 1)
            } else if minValue == 0 {
                if topLevel {
                    out += "[0] | [1-9] "
                    moreDigits(0, lessDecimals)
                } else {
                    moreDigits(1, decimalsLeft)
                }
            } else if minValue <= 9 {
                let c = Character(String(minValue))
                let rangeStart: Character = topLevel ? "1" : "0"
                if c > rangeStart {
                    digitRange(rangeStart, shifted(c, -1))
                    out += " "
                    moreDigits(1, lessDecimals)
                    out += " | "
                }
                digitRange(c, "9")
                out += " "
                moreDigits(0, lessDecimals)
            } else {
                let minText = Array(String(minValue))
                let c = minText[0]
                if c > "1" {
                    digitRange(topLevel ? "1" : "0", shifted(c, -1))
                    out += " "
                    moreDigits(minText.count, lessDecimals)
                    out += " | "
                }
                digitRange(c, c)
                out += " ("
                build(Int64(String(minText[1...])) ?? 0, .max, &out, decimalsLeft: lessDecimals, topLevel: false)
                out += ")"
                if c < "9" {
                    out += " | "
                    digitRange(shifted(c, 1), "9")
                    out += " "
                    moreDigits(minText.count - 1, lessDecimals)
                }
            }
            return
        }
        if hasMax {
            if maxValue >= 0 {
                if topLevel {
                    out += "\"-\" [1-9] "
                    moreDigits(0, lessDecimals)
                    out += " | "
                }
                build(0, maxValue, &out, decimalsLeft: decimalsLeft, topLevel: true)
            } else {
                out += "\"-\" ("
                build(-maxValue, .max, &out, decimalsLeft: decimalsLeft, topLevel: false)
                out += ")"
            }
        }
    }
}
