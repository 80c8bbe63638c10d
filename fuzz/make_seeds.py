#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed).

Seeds are real examples taken from the golden tests (crates/codec/tests:
the raw-string stream fixtures and the `json!({...})` request/response
literals that are plain JSON), the testkit's canned upstream replies and
the config examples in README.md and docs/CONFIG.md. Bedrock seeds are event-stream
frames built here the way `eventstream::encode` builds them (CRC32/IEEE).

Re-run after changing fixtures: python3 fuzz/make_seeds.py
Files named regress-* are inputs that once crashed a target (kept so every
run replays them). The script rewrites only the files it names, so corpus
growth a fuzzer adds is never mixed in (generated corpora live in
fuzz/corpus-generated/, which is git-ignored).
"""

import json
import pathlib
import re
import struct
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "crates" / "codec" / "tests"
CORPUS = ROOT / "fuzz" / "corpus"
MAX_PER_KIND = 8


def raw_consts(path):
    """`const NAME: &str = r#"..."#;` fixtures of a test file, by name."""
    text = path.read_text()
    return dict(re.findall(r'const (\w+): &str = r#"(.*?)"#;', text, re.S))


def json_literals(path):
    """Every `json!(...)` literal of a test file that is plain JSON."""
    text = path.read_text()
    out = []
    for m in re.finditer(r"json!\(", text):
        i = m.end()
        depth = 1
        j = i
        in_str = False
        while j < len(text) and depth:
            c = text[j]
            if in_str:
                if c == "\\":
                    j += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            j += 1
        body = text[i : j - 1].strip()
        try:
            v = json.loads(body)
        except ValueError:
            continue
        if isinstance(v, dict):
            out.append(v)
    return out


def pick(values, pred, n=MAX_PER_KIND):
    seen, out = set(), []
    for v in values:
        if not pred(v):
            continue
        s = json.dumps(v, ensure_ascii=False)
        if s in seen:
            continue
        seen.add(s)
        out.append(s.encode())
        if len(out) == n:
            break
    return out


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


def regression(target, name, data):
    """An input that once crashed a target, kept so it is replayed on every run."""
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"regress-{name}").write_bytes(data.encode() if isinstance(data, str) else data)


def sse(events, event_names=None):
    out = []
    for k, e in enumerate(events):
        if event_names:
            out.append(f"event: {event_names[k]}\n")
        out.append(f"data: {e}\n\n")
    return "".join(out)


# --- eventstream framing (mirrors codec::eventstream::encode) ---------------


def frame(headers, payload):
    hb = b""
    for name, value in headers:
        n = name.encode()
        v = value.encode()
        hb += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 16 + len(hb) + len(payload)
    prelude = struct.pack(">II", total, len(hb))
    out = prelude + struct.pack(">I", zlib.crc32(prelude)) + hb + payload
    return out + struct.pack(">I", zlib.crc32(out))


def bedrock_event(kind, payload):
    payload = dict(payload, p="abcdefghijklmnopqrstuvwxyzABCDEF")
    return frame(
        [
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        json.dumps(payload).encode(),
    )


def bedrock_exception(kind, message):
    return frame(
        [
            (":exception-type", kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json.dumps({"message": message}).encode(),
    )


BEDROCK_TEXT = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ", world!"}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    ("messageStop", {"stopReason": "end_turn"}),
    (
        "metadata",
        {
            "usage": {"inputTokens": 25, "outputTokens": 15, "totalTokens": 40, "cacheReadInputTokens": 10},
            "metrics": {"latencyMs": 311},
        },
    ),
]

BEDROCK_TOOL = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "The user wants weather; "}}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Okay, let's check the weather for Paris:"}}),
    ("contentBlockStop", {"contentBlockIndex": 1}),
    (
        "contentBlockStart",
        {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather"}}},
    ),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"city\":"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": " \"Paris\"}"}}}),
    ("contentBlockStop", {"contentBlockIndex": 2}),
    ("messageStop", {"stopReason": "tool_use"}),
    ("metadata", {"usage": {"inputTokens": 472, "outputTokens": 89, "totalTokens": 561}, "metrics": {"latencyMs": 900}}),
]


def described(events):
    """The text form the target's framed mode reads (see bedrock_eventstream.rs)."""
    parts = []
    for kind, payload in events:
        parts.append(kind.encode() + b"\x01" + json.dumps(payload).encode())
    return b"\x00".join(parts)


def main():
    anth = raw_consts(TESTS / "anthropic_golden.rs")
    gem = raw_consts(TESTS / "gemini_golden.rs")
    sse_src = (ROOT / "crates" / "codec" / "src" / "sse.rs").read_text()
    sample = re.search(r'const SAMPLE: &str = "(.*?)";\n', sse_src).group(1)
    sample = sample.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")

    # sse_parser: a chunking byte, then a stream.
    write("sse_parser", "sample", b"\x05" + sample.encode())
    write("sse_parser", "anthropic-text", b"\x00" + anth["TEXT_STREAM"].encode())
    write("sse_parser", "anthropic-text-crlf", b"\x0b" + anth["TEXT_STREAM"].replace("\n", "\r\n").encode())
    write("sse_parser", "gemini-thoughts-cr", b"\x2a" + gem["THOUGHT_STREAM"].replace("\n", "\r").encode())
    write("sse_parser", "bom-comment-id", b"\x03\xef\xbb\xbf: hi\nid: 7\nevent: x\ndata:a\ndata\n\ndata: [DONE]\n")

    # openai_peek: bodies, chunks, streams (testkit canned replies).
    chunk = lambda delta, finish: json.dumps(
        {
            "id": "chatcmpl-upstream-s",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
    )
    usage_chunk = json.dumps(
        {"id": "chatcmpl-upstream-s", "object": "chat.completion.chunk", "created": 1700000000,
         "model": "gpt-4o-mini-2024-07-18", "choices": [],
         "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                   "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 1}}}
    )
    write(
        "openai_peek",
        "chat-stream",
        sse([chunk({"role": "assistant", "content": "", "refusal": None}, None), chunk({"content": "Hel"}, None),
             chunk({"content": "lo"}, None), chunk({}, "stop"), usage_chunk, "[DONE]"]),
    )
    write(
        "openai_peek",
        "tool-stream",
        sse([chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, "id": "call_up_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}, None),
             chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]}, None),
             chunk({"reasoning_content": "thinking"}, None), chunk({}, "tool_calls"), "[DONE]"]),
    )
    write(
        "openai_peek",
        "completion",
        json.dumps({"id": "chatcmpl-upstream-1", "object": "chat.completion", "created": 1700000000,
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": None},
                                 "logprobs": None, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13,
                              "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0}}}),
    )
    write("openai_peek", "error", json.dumps({"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}))
    write("openai_peek", "inband-error", sse([json.dumps({"error": {"message": "overloaded", "code": "server_error"}})]))
    resp_usage = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17}
    write(
        "openai_peek",
        "responses-stream",
        "".join(
            f"event: {json.loads(e)['type']}\ndata: {e}\n\n"
            for e in [
                json.dumps({"type": "response.created", "response": {"id": "resp_upstream_1", "status": "in_progress"}, "sequence_number": 0}),
                json.dumps({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}, "sequence_number": 1}),
                json.dumps({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hi", "sequence_number": 2}),
                json.dumps({"type": "response.completed", "response": {"id": "resp_upstream_1", "status": "completed", "usage": resp_usage}, "sequence_number": 3}),
            ]
        ),
    )
    write("openai_peek", "responses-failed", json.dumps({"type": "response.failed", "response": {"error": {"code": "server_error", "message": "boom"}}, "code": "server_error", "message": "boom"}))

    # anthropic_stream: the golden streams, a message, an error envelope.
    for name in ["TEXT_STREAM", "TOOL_STREAM", "JSON_TOOL_STREAM"]:
        write("anthropic_stream", name.lower().replace("_", "-"), anth[name])
    write(
        "anthropic_stream",
        "error-stream",
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_err","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}\n\n'
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
    )
    for i, s in enumerate(pick(json_literals(TESTS / "anthropic_golden.rs"), lambda v: v.get("type") == "message")):
        write("anthropic_stream", f"message-{i}", s)
    write("anthropic_stream", "error-envelope", json.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}))

    # gemini_stream: the golden streams, a response, error bodies.
    for name in ["TEXT_STREAM", "FUNCTION_STREAM", "USAGE_LAST_STREAM", "THOUGHT_STREAM"]:
        write("gemini_stream", name.lower().replace("_", "-"), gem[name])
    write("gemini_stream", "blocked", sse(['{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},"modelVersion": "gemini-2.5-flash"}']))
    write("gemini_stream", "inband-error", sse(['{"candidates": [{"content": {"parts": [{"text": "Par"}],"role": "model"},"index": 0}]}', '{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}']))
    for i, s in enumerate(pick(json_literals(TESTS / "gemini_golden.rs"), lambda v: "candidates" in v, 4)):
        write("gemini_stream", f"response-{i}", s)
    write(
        "gemini_stream",
        "error-retry",
        json.dumps({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                              "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}]}}),
    )

    # bedrock_eventstream: raw frames (mode high bit clear) and the text
    # description the framed mode encodes itself (high bit set).
    text = b"".join(bedrock_event(k, p) for k, p in BEDROCK_TEXT)
    tool = b"".join(bedrock_event(k, p) for k, p in BEDROCK_TOOL)
    write("bedrock_eventstream", "raw-text", b"\x07" + text)
    write("bedrock_eventstream", "raw-tool", b"\x00" + tool)
    write(
        "bedrock_eventstream",
        "raw-throttled",
        b"\x0b" + bedrock_event(*BEDROCK_TEXT[0]) + bedrock_exception("throttlingException", "Too many tokens, please wait before trying again."),
    )
    write("bedrock_eventstream", "framed-text", b"\x87" + described(BEDROCK_TEXT))
    write("bedrock_eventstream", "framed-tool", b"\x83" + described(BEDROCK_TOOL))
    write("bedrock_eventstream", "framed-errors", b"\x85" + b"messageStart\x01{\"role\":\"assistant\"}\x00!modelStreamErrorException\x01{\"message\":\"failed\"}\x00?InternalFailure\x01boom")
    write("bedrock_eventstream", "error-body", b"\x01ValidationException\n" + json.dumps({"message": "Input is too long for requested model."}).encode())

    # front_doors: request bodies from the golden tests (Messages, Responses,
    # and the chat requests the provider encoders are tested with).
    def is_request(v):
        return isinstance(v.get("model"), str) and ("messages" in v or "input" in v)

    for src, n in [("messages_golden.rs", 5), ("responses_golden.rs", 5), ("anthropic_golden.rs", 3),
                   ("gemini_golden.rs", 3), ("bedrock_golden.rs", 3)]:
        for i, s in enumerate(pick(json_literals(TESTS / src), is_request, n)):
            write("front_doors", f"{src.split('_')[0]}-{i}", s)

    # json_splice: chat bodies as clients send them.
    write("json_splice", "chat", '{ "model" : "alias",  "x": 1.50, "messages":[{"role":"user","content":"a \\"model\\": b"}] , "z":1e3}')
    write("json_splice", "stream-options", '{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}],"max_tokens":5}')
    write("json_splice", "escaped-key", '{"meta":{"model":"no"},"mod\\u0065l":"old"}')
    write("json_splice", "empty", " {} ")
    write("json_splice", "array", "[1]")

    # Regressions: inputs that crashed a target (overflow checks are on in
    # fuzz builds), fixed in the crate with a unit test beside the code.
    big = 18446744073709551615  # u64::MAX
    regression(
        "openai_peek",
        "responses-usage-total-overflow",
        sse([chunk({"content": "hi"}, "stop"),
             json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                         "usage": {"prompt_tokens": big, "completion_tokens": 1, "total_tokens": 0}})]),
    )
    regression(
        "gemini_stream",
        "retry-delay-overflow",
        json.dumps({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                              "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                           "retryDelay": f"{big}.5s"}]}}),
    )

    # config: the YAML examples in README.md and docs/CONFIG.md.
    blocks = []
    for doc in [ROOT / "README.md", ROOT / "docs" / "CONFIG.md"]:
        blocks += re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)
    for i, b in enumerate(sorted(blocks, key=len)[:MAX_PER_KIND]):
        write("config", f"doc-{i}", b)


if __name__ == "__main__":
    main()
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds")
