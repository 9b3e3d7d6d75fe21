import CQwenHeader
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

// Whole messages in and out: several tool calls per assistant turn, a thinking model's
// thought, and the reply split into parts as it streams.

@c @implementation public func qwen_session_n_tool_calls(_ session: OpaquePointer?, _ i: Int) -> Int {
    guard let handle = try? SessionHandle.from(session), let message = handle.message(i) else { return 0 }
    return message.strings.toolCalls.count
}

@c @implementation public func qwen_session_get_tool_call_at(_ session: OpaquePointer?, _ i: Int, _ k: Int,
                                                             _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                                             _ arguments: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let name = try required(name, "name")
        name.pointee = nil
        arguments?.pointee = nil
        let message = try handle.requireMessage(i)
        let calls = message.strings.toolCalls
        guard k >= 0, k < calls.count else {
            throw QwenError.invalidArgument("tool call index \(k) is out of range (message \(i) has \(calls.count))")
        }
        name.pointee = UnsafePointer(calls[k].name)
        arguments?.pointee = UnsafePointer(calls[k].arguments)
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_add_tool_call(_ session: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                                          _ arguments: UnsafePointer<CChar>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        try handle.session.addToolCall(toolCall(qwen_tool_call(name: name, arguments: arguments), "tool call"))
        handle.invalidateMessages()
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_get_reasoning(_ session: OpaquePointer?, _ i: Int,
                                                          _ reasoning: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let reasoning = try required(reasoning, "reasoning")
        reasoning.pointee = nil
        let message = try handle.requireMessage(i)
        reasoning.pointee = UnsafePointer(message.strings.reasoning)
        return QWEN_OK
    }
}

/// A caller's whole messages as the engine's (validated).
func chatMessages(_ messages: UnsafePointer<qwen_chat_message>?, _ n: Int) throws -> [ChatMessage] {
    let n = try sizeArgument(n, "n_messages")
    if n == 0 { return [] }
    guard n <= 1 << 20 else { throw QwenError.invalidArgument("n_messages is absurd (\(n))") }
    let list = try required(messages, "conversation")
    return try (0..<n).map { i in
        let m = list[i]
        guard let role = Role(rawValue: Int32(bitPattern: m.role.rawValue)) else {
            throw QwenError.invalidArgument("conversation[\(i)].role is \(m.role.rawValue), not a qwen_role")
        }
        let nCalls = try sizeArgument(m.n_tool_calls, "conversation[\(i)].n_tool_calls")
        guard nCalls <= 4096 else { throw QwenError.invalidArgument("conversation[\(i)].n_tool_calls is \(nCalls); at most 4096") }
        let calls = nCalls == 0 ? nil : try required(m.tool_calls, "conversation[\(i)].tool_calls")
        return ChatMessage(
            role: role, content: m.content == nil ? "" : try utf8Argument(m.content, "conversation[\(i)].content"),
            toolCalls: try (0..<nCalls).map { k in try toolCall(try required(calls, "tool_calls")[k], "conversation[\(i)].tool_calls[\(k)]") },
            reasoning: m.reasoning == nil ? nil : try utf8Argument(m.reasoning, "conversation[\(i)].reasoning"))
    }
}

@c @implementation public func qwen_session_acquire_messages(_ model: OpaquePointer?, _ conversation: UnsafePointer<qwen_chat_message>?,
                                                             _ n: Int, _ params: UnsafePointer<qwen_session_params>?,
                                                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> qwen_status {
    guarded {
        let out = try required(out, "out")
        out.pointee = nil
        let modelHandle = try ModelHandle.from(model)
        let messages = try chatMessages(conversation, n)
        let (options, tools) = try sessionSettings(params)
        let session = try modelHandle.model.acquireSession(conversation: messages, tools: tools, options: options)
        out.pointee = SessionHandle(session: session, modelHandle: modelHandle).pointer
        return QWEN_OK
    }
}

@c @implementation public func qwen_chat_next_part(_ session: OpaquePointer?, _ part: UnsafeMutablePointer<qwen_part>?,
                                                   _ done: UnsafeMutablePointer<Bool>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let part = try required(part, "part")
        let done = try required(done, "done")
        part.pointee = qwen_part(kind: QWEN_PART_CONTENT, text: nil, len: 0, tool_name: nil, tool_arguments: nil)
        done.pointee = false
        switch try handle.session.nextPart() {
        case nil:
            done.pointee = true
        case .content(let text)?:
            (part.pointee.text, part.pointee.len) = try handle.keepPiece(text)
        case .reasoning(let text)?:
            part.pointee.kind = QWEN_PART_REASONING
            (part.pointee.text, part.pointee.len) = try handle.keepPiece(text)
        case .toolCall(let call)?:
            let strings = handle.keepPartCall(call)
            part.pointee = qwen_part(kind: QWEN_PART_TOOL_CALL, text: nil, len: 0,
                                     tool_name: strings?.name, tool_arguments: strings?.arguments)
        }
        return QWEN_OK
    }
}

@c @implementation public func qwen_session_n_logprobs(_ session: OpaquePointer?) -> Int32 {
    guard let handle = try? SessionHandle.from(session) else { return -1 }
    return Int32(clamping: handle.session.replyLogprobs.count)
}

@c @implementation public func qwen_session_get_logprob(_ session: OpaquePointer?, _ index: Int32,
                                                        _ out: UnsafeMutablePointer<qwen_token_logprob>?) -> qwen_status {
    guarded {
        let handle = try SessionHandle.from(session)
        let out = try required(out, "out")
        let logprobs = handle.session.replyLogprobs
        guard index >= 0, Int(index) < logprobs.count else {
            throw QwenError.invalidArgument("logprob index \(index) is out of range (the reply has \(logprobs.count))")
        }
        let entry = logprobs[Int(index)]
        var value = qwen_token_logprob()
        value.token = entry.token
        value.logprob = entry.logprob
        value.n_top = Int32(entry.top.count)
        withUnsafeMutableBytes(of: &value.top_tokens) { tokens in
            withUnsafeMutableBytes(of: &value.top_logprobs) { logprobs in
                for (i, alternative) in entry.top.prefix(TokenLogprob.maxTop).enumerated() {
                    tokens.storeBytes(of: alternative.token, toByteOffset: i * 4, as: Int32.self)
                    logprobs.storeBytes(of: alternative.logprob, toByteOffset: i * 4, as: Float.self)
                }
            }
        }
        out.pointee = value
        return QWEN_OK
    }
}

@c @implementation public func qwen_grammar_check(_ grammar: UnsafePointer<CChar>?, _ jsonSchema: UnsafePointer<CChar>?,
                                                  _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                                  _ nOut: UnsafeMutablePointer<Int>?) -> qwen_status {
    guarded {
        let nOut = try required(nOut, "n_out")
        nOut.pointee = 0
        let capacity = try sizeArgument(capacity, "capacity")
        guard out != nil || capacity == 0 else { throw QwenError.invalidArgument("out is NULL but capacity is \(capacity)") }
        let text = try Model.checkGrammar(try grammar.map { try utf8Argument($0, "grammar") },
                                          jsonSchema: try jsonSchema.map { try utf8Argument($0, "json_schema") })
        let bytes = Array(text.utf8)
        let status = copyOut(bytes.map { CChar(bitPattern: $0) }, to: out, capacity: capacity, count: nOut, what: "byte")
        if status == QWEN_OK, let out, bytes.count < capacity { out[bytes.count] = 0 }
        return status
    }
}
