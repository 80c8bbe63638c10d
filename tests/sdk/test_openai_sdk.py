"""Black-box compatibility tests: the official OpenAI Python SDK against Modelgate.

Everything runs against the built-in mock provider (no network). Requests the
SDK cannot express (no credentials, malformed JSON, ...) go through the
stdlib-only ``raw`` fixture.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import time

import openai
import pytest

from conftest import MAX_BODY_BYTES

ECHO = "mock/echo"
TEXT = "mock/text"
TOOL = "mock/tool"

# A 1x1 transparent PNG.
PNG_DATA_URL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "threshold": {"type": "number"},
                "metric": {"type": "boolean"},
            },
            "required": ["city"],
        },
    },
}
WEATHER_ARGS = {"city": "mock", "days": 1, "threshold": 1, "metric": True}

TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    """Reads one HTTP/1.1 response with a Content-Length body from `sock`."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("connection closed before a response arrived")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("connection closed mid-body")
        rest += data
    return status, headers


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def assert_usage_consistent(usage) -> None:
    assert usage is not None
    assert usage.prompt_tokens >= 1
    assert usage.completion_tokens >= 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def assert_error_envelope(body: dict, status_type: str | None = None) -> dict:
    assert set(body) == {"error"}, body
    err = body["error"]
    for key in ("message", "type", "param", "code"):
        assert key in err, f"error envelope lacks {key!r}: {err}"
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    if status_type is not None:
        assert err["type"] == status_type, err
    return err


# --------------------------------------------------------------------------
# Chat completions, non-streaming
# --------------------------------------------------------------------------


class TestChat:
    def test_echo_returns_prompt_with_usage(self, client):
        prompt = "Say this back to me, word for word."
        c = client.chat.completions.create(model=ECHO, messages=user(prompt))
        assert c.object == "chat.completion"
        assert c.id
        assert isinstance(c.created, int) and c.created > 0
        assert c.model == ECHO
        assert len(c.choices) == 1
        choice = c.choices[0]
        assert choice.index == 0
        assert choice.finish_reason == "stop"
        assert choice.message.role == "assistant"
        assert choice.message.content == prompt
        assert choice.message.tool_calls is None
        assert_usage_consistent(c.usage)
        assert c.usage.completion_tokens == len(prompt.split())
        # About four characters per token.
        assert c.usage.prompt_tokens == math.ceil(len(prompt) / 4)

    def test_echo_answers_the_last_user_message_of_a_conversation(self, client):
        messages = [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
            {"role": "developer", "content": "Keep it short."},
            {"role": "user", "content": "second question"},
        ]
        c = client.chat.completions.create(model=ECHO, messages=messages)
        assert c.choices[0].message.content == "second question"

    def test_configured_model_alias(self, client):
        c = client.chat.completions.create(model="echo-alias", messages=user("via alias"))
        assert c.choices[0].message.content == "via alias"

    def test_text_model_words(self, client):
        c = client.chat.completions.create(model="mock/text?words=7", messages=user("hi"))
        content = c.choices[0].message.content
        assert len(content.split()) == 7
        assert c.usage.completion_tokens == 7
        assert_usage_consistent(c.usage)

    def test_hello_alias(self, client):
        a = client.chat.completions.create(model="mock/hello", messages=user("hi"))
        b = client.chat.completions.create(model=TEXT, messages=user("hi"))
        assert a.choices[0].message.content == b.choices[0].message.content
        assert a.choices[0].message.content

    def test_n_returns_that_many_choices(self, client):
        c = client.chat.completions.create(model=ECHO, messages=user("again"), n=3)
        assert [ch.index for ch in c.choices] == [0, 1, 2]
        assert all(ch.message.content == "again" for ch in c.choices)
        assert all(ch.finish_reason == "stop" for ch in c.choices)

    @pytest.mark.parametrize("stop", ["\n", ["END", "STOP"]])
    def test_stop_accepted(self, client, stop):
        c = client.chat.completions.create(model=ECHO, messages=user("no stop here"), stop=stop)
        assert c.choices[0].message.content == "no stop here"
        assert c.choices[0].finish_reason == "stop"

    def test_sampling_params_accepted(self, client):
        c = client.chat.completions.create(
            model=ECHO,
            messages=user("sampling"),
            temperature=0.2,
            top_p=0.9,
            presence_penalty=0.5,
            frequency_penalty=-0.5,
            seed=42,
            logit_bias={"50256": -100},
            logprobs=True,
            top_logprobs=2,
        )
        assert c.choices[0].message.content == "sampling"

    def test_max_tokens_accepted(self, client):
        c = client.chat.completions.create(model=ECHO, messages=user("short"), max_tokens=16)
        assert c.choices[0].message.content == "short"

    def test_max_completion_tokens_accepted(self, client):
        c = client.chat.completions.create(
            model=ECHO, messages=user("short"), max_completion_tokens=16
        )
        assert c.choices[0].message.content == "short"

    def test_user_and_metadata_accepted(self, client):
        c = client.chat.completions.create(
            model=ECHO,
            messages=user("tagged"),
            user="end-user-42",
            metadata={"team": "sdk-tests", "ticket": "T-1"},
            store=False,
        )
        assert c.choices[0].message.content == "tagged"

    def test_response_format_json_object(self, client):
        prompt = '{"answer": 42}'
        c = client.chat.completions.create(
            model=ECHO,
            messages=user(prompt),
            response_format={"type": "json_object"},
        )
        assert json.loads(c.choices[0].message.content) == {"answer": 42}

    def test_response_format_json_schema(self, client):
        prompt = '{"name": "Ada", "age": 36}'
        c = client.chat.completions.create(
            model=ECHO,
            messages=user(prompt),
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "person",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                        "required": ["name", "age"],
                        "additionalProperties": False,
                    },
                },
            },
        )
        assert json.loads(c.choices[0].message.content) == {"name": "Ada", "age": 36}

    def test_response_format_text(self, client):
        c = client.chat.completions.create(
            model=ECHO, messages=user("plain"), response_format={"type": "text"}
        )
        assert c.choices[0].message.content == "plain"

    def test_image_content_part_accepted(self, client):
        c = client.chat.completions.create(
            model=ECHO,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": PNG_DATA_URL, "detail": "low"}},
                    ],
                }
            ],
        )
        assert c.choices[0].message.content == "What is in this image?"
        assert_usage_consistent(c.usage)

    def test_several_text_parts_are_joined(self, client):
        c = client.chat.completions.create(
            model=ECHO,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}],
                }
            ],
        )
        assert c.choices[0].message.content == "one two"

    def test_unknown_extra_field_accepted(self, client):
        c = client.chat.completions.create(
            model=ECHO,
            messages=user("extra"),
            extra_body={"some_future_field": {"nested": [1, 2, 3]}, "another": True},
        )
        assert c.choices[0].message.content == "extra"

    def test_x_api_key_header_authenticates(self, raw, master_key):
        r = raw.post(
            "/v1/chat/completions",
            {"model": ECHO, "messages": user("key header")},
            auth=False,
            headers={"x-api-key": master_key},
        )
        assert r.status == 200, r.body
        assert r.json()["choices"][0]["message"]["content"] == "key header"


# --------------------------------------------------------------------------
# Chat completions, streaming
# --------------------------------------------------------------------------


def collect(stream) -> list:
    chunks = list(stream)
    assert chunks, "stream produced no chunks"
    return chunks


def content_of(chunks) -> str:
    return "".join(
        (ch.choices[0].delta.content or "") for ch in chunks if ch.choices
    )


class TestStreaming:
    def test_chunks_concatenate_to_the_answer(self, client):
        prompt = "stream this sentence back in several pieces please"
        chunks = collect(
            client.chat.completions.create(model=ECHO, messages=user(prompt), stream=True)
        )
        assert all(ch.object == "chat.completion.chunk" for ch in chunks)
        assert len({ch.id for ch in chunks}) == 1
        assert all(ch.model == ECHO for ch in chunks)
        assert content_of(chunks) == prompt
        with_choices = [ch for ch in chunks if ch.choices]
        assert with_choices[0].choices[0].delta.role == "assistant"
        assert with_choices[-1].choices[0].finish_reason == "stop"
        assert all(ch.choices[0].finish_reason is None for ch in with_choices[:-1])

    def test_unicode_survives_chunking(self, client):
        # More chunks than words: the mock splits inside words, so multi-byte
        # characters must not be cut.
        prompt = "héllo wörld 🌍 ünïcödé 日本語"
        chunks = collect(
            client.chat.completions.create(
                model="mock/echo?chunks=12", messages=user(prompt), stream=True
            )
        )
        assert content_of(chunks) == prompt
        assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) == 12

    def test_stream_matches_non_stream(self, client):
        full = client.chat.completions.create(model=TEXT, messages=user("hi"))
        chunks = collect(
            client.chat.completions.create(model=TEXT, messages=user("hi"), stream=True)
        )
        assert content_of(chunks) == full.choices[0].message.content

    def test_include_usage_adds_final_usage_chunk(self, client):
        prompt = "count my tokens"
        chunks = collect(
            client.chat.completions.create(
                model=ECHO,
                messages=user(prompt),
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        last = chunks[-1]
        assert last.choices == []
        assert_usage_consistent(last.usage)
        assert last.usage.completion_tokens == len(prompt.split())
        assert last.usage.prompt_tokens == math.ceil(len(prompt) / 4)
        assert all(ch.usage is None for ch in chunks[:-1])
        assert content_of(chunks) == prompt

    def test_no_usage_chunk_without_include_usage(self, client):
        chunks = collect(
            client.chat.completions.create(model=ECHO, messages=user("no usage"), stream=True)
        )
        assert all(ch.usage is None for ch in chunks)
        assert all(ch.choices for ch in chunks)

    def test_include_usage_false(self, client):
        chunks = collect(
            client.chat.completions.create(
                model=ECHO,
                messages=user("no usage"),
                stream=True,
                stream_options={"include_usage": False},
            )
        )
        assert all(ch.usage is None for ch in chunks)

    def test_chunks_param_sets_content_chunk_count(self, client):
        chunks = collect(
            client.chat.completions.create(
                model="mock/text?chunks=5", messages=user("hi"), stream=True
            )
        )
        content_chunks = [ch for ch in chunks if ch.choices and ch.choices[0].delta.content]
        assert len(content_chunks) == 5
        full = client.chat.completions.create(model="mock/text?chunks=5", messages=user("hi"))
        assert content_of(chunks) == full.choices[0].message.content
        assert chunks[-1].choices[0].finish_reason == "stop"

    def test_stream_with_delay(self, client):
        chunks = collect(
            client.chat.completions.create(
                model="mock/text?chunks=4&delay_ms=20&ttft_ms=20",
                messages=user("hi"),
                stream=True,
            )
        )
        assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) == 4

    def test_stream_wire_format_ends_with_done(self, raw):
        r = raw.post(
            "/v1/chat/completions",
            {"model": "mock/text?chunks=3", "messages": user("hi"), "stream": True},
            headers={"Accept": "text/event-stream"},
        )
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in r.body.decode().split("\n\n") if e.strip()]
        assert all(e.startswith("data: ") for e in events), events
        assert events[-1] == "data: [DONE]"
        for e in events[:-1]:
            json.loads(e[len("data: "):])

    def test_stream_context_manager_closes(self, client):
        with client.chat.completions.create(
            model="mock/text?words=50&chunks=25", messages=user("hi"), stream=True
        ) as stream:
            first = next(iter(stream))
            assert first.object == "chat.completion.chunk"
        # Leaving early must not break the connection pool for later calls.
        c = client.chat.completions.create(model=ECHO, messages=user("still fine"))
        assert c.choices[0].message.content == "still fine"


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------


class TestTools:
    def test_tool_call_non_streaming(self, client):
        c = client.chat.completions.create(
            model=TOOL, messages=user("weather in Oslo?"), tools=[WEATHER_TOOL, TIME_TOOL]
        )
        choice = c.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls
        assert calls is not None and len(calls) == 1
        call = calls[0]
        assert call.type == "function"
        assert call.id
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == WEATHER_ARGS
        assert_usage_consistent(c.usage)

    def test_tool_call_without_tools_uses_default(self, client):
        c = client.chat.completions.create(model=TOOL, messages=user("weather?"))
        call = c.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"location": "Paris"}

    def test_tool_call_streaming(self, client):
        chunks = collect(
            client.chat.completions.create(
                model=TOOL,
                messages=user("weather in Oslo?"),
                tools=[WEATHER_TOOL],
                stream=True,
            )
        )
        calls: dict[int, dict] = {}
        arg_deltas = 0
        for ch in chunks:
            if not ch.choices:
                continue
            for d in ch.choices[0].delta.tool_calls or []:
                slot = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
                if d.id:
                    slot["id"] = d.id
                if d.function and d.function.name:
                    slot["name"] = d.function.name
                if d.function and d.function.arguments:
                    slot["arguments"] += d.function.arguments
                    arg_deltas += 1
        assert list(calls) == [0]
        assert calls[0]["id"]
        assert calls[0]["name"] == "get_weather"
        assert json.loads(calls[0]["arguments"]) == WEATHER_ARGS
        assert arg_deltas > 1, "arguments should arrive in several deltas"
        finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
        assert finishes[-1] == "tool_calls"

    @pytest.mark.parametrize(
        "tool_choice",
        ["auto", "required", {"type": "function", "function": {"name": "get_weather"}}],
    )
    def test_tool_choice_accepted(self, client, tool_choice):
        c = client.chat.completions.create(
            model=TOOL,
            messages=user("weather?"),
            tools=[WEATHER_TOOL],
            tool_choice=tool_choice,
        )
        assert c.choices[0].finish_reason == "tool_calls"
        assert c.choices[0].message.tool_calls[0].function.name == "get_weather"

    def test_tool_choice_none_accepted(self, client):
        c = client.chat.completions.create(
            model=ECHO, messages=user("just talk"), tools=[WEATHER_TOOL], tool_choice="none"
        )
        assert c.choices[0].message.content == "just talk"

    @pytest.mark.parametrize("parallel", [True, False])
    def test_parallel_tool_calls_accepted(self, client, parallel):
        c = client.chat.completions.create(
            model=TOOL,
            messages=user("weather?"),
            tools=[WEATHER_TOOL],
            parallel_tool_calls=parallel,
        )
        assert json.loads(c.choices[0].message.tool_calls[0].function.arguments) == WEATHER_ARGS

    def test_enum_and_nested_schema_arguments(self, client):
        tool = {
            "type": "function",
            "function": {
                "name": "book",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "class": {"type": "string", "enum": ["economy", "business"]},
                        "seats": {"type": "array", "items": {"type": "integer"}},
                        "extras": {"type": "object"},
                    },
                },
            },
        }
        c = client.chat.completions.create(model=TOOL, messages=user("book"), tools=[tool])
        call = c.choices[0].message.tool_calls[0]
        assert call.function.name == "book"
        assert json.loads(call.function.arguments) == {
            "class": "economy",
            "seats": [],
            "extras": {},
        }


# --------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------


def norm(v) -> float:
    return math.sqrt(sum(x * x for x in v))


class TestEmbeddings:
    def test_single_input(self, client):
        e = client.embeddings.create(model=ECHO, input="hello world", encoding_format="float")
        assert e.object == "list"
        assert len(e.data) == 1
        d = e.data[0]
        assert d.object == "embedding"
        assert d.index == 0
        assert len(d.embedding) == 16
        assert all(isinstance(x, float) for x in d.embedding)
        assert norm(d.embedding) == pytest.approx(1.0, abs=1e-5)
        assert e.usage.prompt_tokens >= 1
        assert e.usage.total_tokens == e.usage.prompt_tokens

    def test_batch_input(self, client):
        inputs = ["alpha", "beta", "gamma", "alpha"]
        e = client.embeddings.create(model=ECHO, input=inputs, encoding_format="float")
        assert [d.index for d in e.data] == [0, 1, 2, 3]
        vecs = [d.embedding for d in e.data]
        assert all(len(v) == 16 for v in vecs)
        assert vecs[0] == vecs[3]
        assert vecs[0] != vecs[1] and vecs[1] != vecs[2] and vecs[0] != vecs[2]

    def test_deterministic(self, client):
        a = client.embeddings.create(model=ECHO, input="same text", encoding_format="float")
        b = client.embeddings.create(model=TEXT, input="same text", encoding_format="float")
        assert a.data[0].embedding == b.data[0].embedding

    @pytest.mark.parametrize("dims", [1, 8, 256])
    def test_dimensions(self, client, dims):
        e = client.embeddings.create(
            model=ECHO, input="dimensional", dimensions=dims, encoding_format="float"
        )
        assert len(e.data[0].embedding) == dims
        assert norm(e.data[0].embedding) == pytest.approx(1.0, abs=1e-5)

    def test_sdk_default_base64_is_decoded(self, client):
        # Without encoding_format the SDK asks for base64 and decodes it itself.
        floats = client.embeddings.create(
            model=ECHO, input=["one", "two"], dimensions=32, encoding_format="float"
        )
        decoded = client.embeddings.create(model=ECHO, input=["one", "two"], dimensions=32)
        for f, d in zip(floats.data, decoded.data):
            assert len(d.embedding) == 32
            assert d.embedding == pytest.approx(f.embedding, abs=1e-6)

    def test_explicit_base64(self, client):
        floats = client.embeddings.create(model=ECHO, input="b64", encoding_format="float")
        b64 = client.embeddings.create(model=ECHO, input="b64", encoding_format="base64")
        emb = b64.data[0].embedding
        raw = base64.b64decode(emb) if isinstance(emb, str) else None
        if raw is not None:
            assert len(raw) == 16 * 4
            values = list(struct.unpack("<16f", raw))
        else:  # an SDK that decodes explicit base64 too
            values = emb
        assert values == pytest.approx(floats.data[0].embedding, abs=1e-6)

    def test_base64_on_the_wire(self, raw):
        r = raw.post(
            "/v1/embeddings",
            {"model": ECHO, "input": "wire", "encoding_format": "base64", "dimensions": 4},
        )
        assert r.status == 200
        emb = r.json()["data"][0]["embedding"]
        assert isinstance(emb, str)
        values = struct.unpack("<4f", base64.b64decode(emb))
        assert norm(values) == pytest.approx(1.0, abs=1e-5)

    def test_token_array_inputs(self, client):
        one = client.embeddings.create(model=ECHO, input=[1, 2, 3], encoding_format="float")
        assert len(one.data) == 1
        many = client.embeddings.create(
            model=ECHO, input=[[1, 2], [3, 4], [1, 2]], encoding_format="float"
        )
        assert [d.index for d in many.data] == [0, 1, 2]
        assert many.data[0].embedding == many.data[2].embedding
        assert many.data[0].embedding != many.data[1].embedding

    def test_user_accepted(self, client):
        e = client.embeddings.create(model=ECHO, input="x", user="u-1", encoding_format="float")
        assert len(e.data) == 1

    def test_embeddings_errors(self, client):
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="mock/nope", input="x")
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="mock/error-429", input="x")
        with pytest.raises(openai.BadRequestError) as ei:
            client.embeddings.create(model=ECHO, input=[])
        assert ei.value.param == "input"
        with pytest.raises(openai.InternalServerError) as ei:
            client.embeddings.create(model="mock/error-500", input="x")
        assert ei.value.status_code == 502
        with pytest.raises(openai.APIStatusError) as ei:
            client.embeddings.create(model="slow", input="x")
        assert ei.value.status_code == 504


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


class TestModels:
    def test_list_includes_mock_and_configured(self, client):
        ids = [m.id for m in client.models.list()]
        assert ECHO in ids
        assert TOOL in ids
        assert "slow" in ids
        assert "echo-alias" in ids
        assert len(ids) == len(set(ids))

    def test_list_page_shape(self, client):
        page = client.models.list()
        assert page.object == "list"
        for m in page.data:
            assert m.object == "model"
            assert isinstance(m.owned_by, str) and m.owned_by
            assert isinstance(m.created, int)

    def test_retrieve_mock(self, client):
        m = client.models.retrieve(ECHO)
        assert m.id == ECHO
        assert m.object == "model"
        assert m.owned_by == "mock"

    def test_retrieve_configured(self, client):
        assert client.models.retrieve("slow").id == "slow"

    def test_retrieve_unknown(self, client):
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("mock/nope")
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("gpt-unknown")

    def test_models_need_auth(self, raw):
        assert raw.get("/v1/models", auth=False).status == 401


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class TestErrors:
    def test_wrong_key(self, base_url):
        bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as ei:
            bad.chat.completions.create(model=ECHO, messages=user("hi"))
        assert ei.value.status_code == 401
        assert ei.value.type == "authentication_error"
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        bad.close()

    @pytest.mark.parametrize(
        "path, key",
        [
            ("/v1/chat/completions", "sk-wrong"),  # 401 before the body is read
            ("/v1/embeddings", "sk-wrong"),
            ("/v1/does-not-exist", None),  # 404 route, body never read
        ],
    )
    def test_keep_alive_survives_early_error(self, gateway, master_key, path, key):
        """An error answered before the request body is read must either
        announce `Connection: close` or leave the connection usable. Otherwise
        pooled clients (the SDK) fail their *next* request with "Server
        disconnected without sending a response" (see test_wrong_key)."""
        body = json.dumps({"model": ECHO, "messages": user("hi")}).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {gateway.host}\r\n"
            f"Authorization: Bearer {key or master_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((gateway.host, gateway.port), timeout=5) as s:
            # Headers and body in separate writes, as httpx/h11 send them.
            s.sendall(head)
            time.sleep(0.1)
            s.sendall(body)
            status, headers = _read_response(s)
            assert status in (401, 404)
            if headers.get("connection", "").lower() == "close":
                return
            time.sleep(0.1)
            try:
                s.sendall(
                    f"GET /v1/models HTTP/1.1\r\nHost: {gateway.host}\r\n"
                    f"Authorization: Bearer {master_key}\r\n\r\n".encode()
                )
                second, _ = _read_response(s)
            except OSError as e:
                pytest.fail(
                    f"{status} response without `Connection: close`, but the server "
                    f"dropped the keep-alive connection: next request failed with {e!r}"
                )
            assert second == 200

    def test_no_key(self, raw):
        r = raw.post("/v1/chat/completions", {"model": ECHO, "messages": user("hi")}, auth=False)
        assert r.status == 401
        assert_error_envelope(r.json(), "authentication_error")

    def test_wrong_x_api_key(self, raw):
        r = raw.post(
            "/v1/chat/completions",
            {"model": ECHO, "messages": user("hi")},
            auth=False,
            headers={"x-api-key": "nope"},
        )
        assert r.status == 401
        assert_error_envelope(r.json(), "authentication_error")

    @pytest.mark.parametrize("model", ["mock/nope", "gpt-unknown"])
    def test_unknown_model(self, client, model):
        with pytest.raises(openai.NotFoundError) as ei:
            client.chat.completions.create(model=model, messages=user("hi"))
        assert ei.value.status_code == 404
        assert ei.value.param == "model"
        assert ei.value.type == "invalid_request_error"

    def test_rate_limit_with_retry_after(self, client):
        with pytest.raises(openai.RateLimitError) as ei:
            client.chat.completions.create(model="mock/error-429", messages=user("hi"))
        e = ei.value
        assert e.status_code == 429
        assert e.type == "rate_limit_error"
        assert e.response.headers.get("retry-after") == "1"

    def test_rate_limit_custom_retry_after(self, client):
        with pytest.raises(openai.RateLimitError) as ei:
            client.chat.completions.create(
                model="mock/error-429?retry_after=7", messages=user("hi")
            )
        assert ei.value.response.headers.get("retry-after") == "7"

    def test_rate_limit_on_stream_request(self, client):
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="mock/error-429", messages=user("hi"), stream=True
            )

    def test_sdk_retry_on_429(self, base_url, master_key):
        # With retries on, the SDK retries a 429 (honouring Retry-After) and
        # finally raises it: the gateway answers the retry the same way.
        retrying = openai.OpenAI(
            base_url=f"{base_url}/v1", api_key=master_key, max_retries=1
        )
        with pytest.raises(openai.RateLimitError):
            retrying.with_options(timeout=10).chat.completions.create(
                model="mock/error-429?retry_after=0", messages=user("hi")
            )
        retrying.close()

    def test_bad_field_type_via_sdk(self, client):
        with pytest.raises(openai.BadRequestError) as ei:
            client.chat.completions.create(
                model=ECHO, messages=user("hi"), extra_body={"temperature": "hot"}
            )
        e = ei.value
        assert e.status_code == 400
        assert e.param == "temperature"
        assert e.type == "invalid_request_error"

    @pytest.mark.parametrize(
        "body, param",
        [
            ({"model": ECHO, "messages": user("hi"), "temperature": "hot"}, "temperature"),
            ({"model": ECHO, "messages": user("hi"), "max_tokens": "ten"}, "max_tokens"),
            ({"model": ECHO, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
            ({"model": ECHO, "messages": [{"content": "x"}]}, "messages[0].role"),
            ({"model": ECHO}, "messages"),
            ({"model": ECHO, "messages": []}, "messages"),
            ({"model": ECHO, "messages": user("hi"), "n": 0}, "n"),
            (
                {"model": ECHO, "messages": user("hi"), "stream_options": {"include_usage": True}},
                "stream_options",
            ),
        ],
    )
    def test_bad_fields_name_the_param(self, raw, body, param):
        r = raw.post("/v1/chat/completions", body)
        assert r.status == 400, r.body
        err = assert_error_envelope(r.json(), "invalid_request_error")
        assert err["param"] == param

    @pytest.mark.parametrize(
        "body", [b'{"model": "mock/echo",', b"not json", b"", b'{"model":"mock/echo","messages":[]} x']
    )
    def test_malformed_json(self, raw, body):
        r = raw.post("/v1/chat/completions", body)
        assert r.status == 400
        err = assert_error_envelope(r.json(), "invalid_request_error")
        assert err["code"] == "invalid_json"

    def test_upstream_500_becomes_502(self, client):
        with pytest.raises(openai.InternalServerError) as ei:
            client.chat.completions.create(model="mock/error-500", messages=user("hi"))
        assert ei.value.status_code == 502
        assert isinstance(ei.value.body, dict) and ei.value.body.get("message")

    def test_upstream_400_passes_through(self, client):
        with pytest.raises(openai.BadRequestError) as ei:
            client.chat.completions.create(model="mock/error-400", messages=user("hi"))
        assert ei.value.status_code == 400

    def test_timeout_becomes_504(self, client):
        with pytest.raises(openai.APIStatusError) as ei:
            client.chat.completions.create(model="slow", messages=user("hi"))
        assert ei.value.status_code == 504
        assert isinstance(ei.value, openai.InternalServerError)

    def test_timeout_on_stream_request_becomes_504(self, client):
        with pytest.raises(openai.APIStatusError) as ei:
            client.chat.completions.create(model="slow", messages=user("hi"), stream=True)
        assert ei.value.status_code == 504

    def test_oversize_body(self, raw):
        body = {"model": ECHO, "messages": user("x" * (MAX_BODY_BYTES + 1024))}
        r = raw.post("/v1/chat/completions", body)
        assert r.status == 413
        err = assert_error_envelope(r.json())
        assert err["code"] == "request_too_large"

    def test_oversize_body_via_sdk(self, client):
        with pytest.raises(openai.APIStatusError) as ei:
            client.chat.completions.create(
                model=ECHO, messages=user("x" * (MAX_BODY_BYTES + 1024))
            )
        assert ei.value.status_code == 413

    def test_just_under_the_limit_is_accepted(self, raw):
        overhead = len(json.dumps({"model": ECHO, "messages": user("")}))
        text = "y" * (MAX_BODY_BYTES - overhead - 16)
        r = raw.post("/v1/chat/completions", {"model": ECHO, "messages": user(text)})
        assert r.status == 200, r.body[:300]
        assert r.json()["choices"][0]["message"]["content"] == text

    def test_mid_stream_failure_raises_after_content(self, client):
        stream = client.chat.completions.create(
            model="mock/stream-error", messages=user("hi"), stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as ei:
            for ch in stream:
                if ch.choices and ch.choices[0].delta.content:
                    received.append(ch.choices[0].delta.content)
        assert received, "some content should arrive before the failure"
        assert not isinstance(ei.value, openai.APIStatusError)
        assert isinstance(ei.value.body, dict)
        assert ei.value.body.get("message")

    def test_mid_stream_failure_wire_format(self, raw):
        r = raw.post(
            "/v1/chat/completions",
            {"model": "mock/stream-error", "messages": user("hi"), "stream": True},
        )
        assert r.status == 200
        events = [e for e in r.body.decode().split("\n\n") if e.strip()]
        assert "data: [DONE]" not in events
        last = json.loads(events[-1][len("data: "):])
        assert_error_envelope(last)

    def test_unknown_route_is_enveloped_404(self, raw):
        r = raw.get("/v1/does-not-exist")
        assert r.status == 404
        assert_error_envelope(r.json())

    def test_wrong_method(self, raw):
        r = raw.get("/v1/chat/completions")
        assert r.status == 405
        assert_error_envelope(r.json())


# --------------------------------------------------------------------------
# Request ids
# --------------------------------------------------------------------------


class TestRequestId:
    def test_incoming_id_is_echoed(self, client):
        rid = "sdk-test_req.42:abc"
        resp = client.chat.completions.with_raw_response.create(
            model=ECHO, messages=user("hi"), extra_headers={"x-request-id": rid}
        )
        assert resp.headers.get("x-request-id") == rid
        assert resp.request_id == rid
        completion = resp.parse()
        assert completion.choices[0].message.content == "hi"
        assert completion._request_id == rid

    def test_generated_id_when_absent(self, client):
        a = client.chat.completions.with_raw_response.create(model=ECHO, messages=user("a"))
        b = client.chat.completions.with_raw_response.create(model=ECHO, messages=user("b"))
        ida, idb = a.headers.get("x-request-id"), b.headers.get("x-request-id")
        assert ida and idb
        assert ida != idb

    def test_malformed_id_is_replaced(self, raw):
        bad = "bad id with spaces"
        r = raw.post(
            "/v1/chat/completions",
            {"model": ECHO, "messages": user("hi")},
            headers={"x-request-id": bad},
        )
        assert r.status == 200
        rid = r.headers.get("x-request-id")
        assert rid and rid != bad
        assert " " not in rid

    def test_overlong_id_is_replaced(self, raw):
        long_id = "a" * 129
        r = raw.post(
            "/v1/chat/completions",
            {"model": ECHO, "messages": user("hi")},
            headers={"x-request-id": long_id},
        )
        assert r.headers.get("x-request-id") not in (None, "", long_id)

    def test_error_responses_carry_the_id(self, client):
        rid = "err-req-1"
        with pytest.raises(openai.NotFoundError) as ei:
            client.chat.completions.create(
                model="mock/nope", messages=user("hi"), extra_headers={"x-request-id": rid}
            )
        assert ei.value.request_id == rid

    def test_streaming_response_carries_the_id(self, client):
        rid = "stream-req-1"
        with client.chat.completions.with_streaming_response.create(
            model=ECHO, messages=user("hi"), stream=True, extra_headers={"x-request-id": rid}
        ) as resp:
            assert resp.headers.get("x-request-id") == rid
            text = "".join(
                ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices
            )
        assert text == "hi"

    def test_embeddings_and_models_carry_an_id(self, client):
        e = client.embeddings.with_raw_response.create(
            model=ECHO, input="x", extra_headers={"x-request-id": "emb-1"}
        )
        assert e.headers.get("x-request-id") == "emb-1"
        m = client.models.with_raw_response.list()
        assert m.headers.get("x-request-id")


# --------------------------------------------------------------------------
# Async client
# --------------------------------------------------------------------------


class TestAsync:
    def test_async_chat_and_stream(self, base_url, master_key):
        import asyncio

        async def main():
            async with openai.AsyncOpenAI(
                base_url=f"{base_url}/v1", api_key=master_key, max_retries=0
            ) as ac:
                c = await ac.chat.completions.create(model=ECHO, messages=user("async hi"))
                assert c.choices[0].message.content == "async hi"
                stream = await ac.chat.completions.create(
                    model=ECHO, messages=user("async stream"), stream=True
                )
                parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
                assert "".join(parts) == "async stream"
                results = await asyncio.gather(
                    *[
                        ac.chat.completions.create(model=ECHO, messages=user(f"n{i}"))
                        for i in range(8)
                    ]
                )
                assert [r.choices[0].message.content for r in results] == [
                    f"n{i}" for i in range(8)
                ]

        asyncio.run(main())


# --- Responses API (passed through to OpenAI deployments) ---------------------


def test_responses_create_passes_through(client):
    resp = client.responses.create(model="up-gpt", input="Say hello", instructions="Be brief.")
    assert resp.object == "response"
    assert resp.status == "completed"
    assert resp.output_text == "Hello from upstream."
    assert resp.usage.output_tokens == 5


def test_responses_stream_accumulates(client):
    with client.responses.stream(model="up-gpt", input="Say hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello from upstream."
    assert final.usage.input_tokens == 12


@pytest.mark.parametrize("model", ["echo-alias", "up-claude"])
def test_responses_are_bridged_to_other_providers(client, model):
    resp = client.responses.create(model=model, input="bridge me", instructions="Be brief.")
    assert resp.object == "response"
    assert resp.status == "completed"
    assert resp.output_text
    with client.responses.stream(model=model, input="bridge me too") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.usage.output_tokens > 0


def test_responses_bridge_with_tools(client):
    tools = [{
        "type": "function",
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }]
    with client.responses.stream(model="up-claude", input="Weather in Paris?", tools=tools) as stream:
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert "city" in json.loads(calls[0].arguments)
    follow = client.responses.create(
        model="up-claude",
        tools=tools,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather",
             "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C"},
        ],
    )
    assert follow.status == "completed"


def test_responses_bridge_refuses_server_state_by_name(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="echo-alias", input="hi", previous_response_id="resp_1")
    assert e.value.body["param"] == "previous_response_id"
