"""The OpenAI SDK through the gateway to real wire formats: an OpenAI-format
upstream (raw-body passthrough), an Anthropic-format upstream and a
Gemini-format upstream (both translated both ways), all served by the test
kit's strict mock upstream."""

from __future__ import annotations

import json

import openai
import pytest

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}

MODELS = [
    "up-gpt",
    "up-claude",
    "up-gemini",
    "openai/gpt-4o-mini",
    "anthropic/claude-haiku-4-5",
    "gemini/gemini-2.5-flash",
]


@pytest.mark.parametrize("model", MODELS)
def test_chat(client: openai.OpenAI, model: str):
    r = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello."},
        ],
        max_tokens=50,
        temperature=0.2,
        stop=["\n\n"],
        user="sdk-user",
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.startswith("Hello from")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@pytest.mark.parametrize("model", MODELS)
def test_stream_with_usage(client: openai.OpenAI, model: str):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI, model: str):
    chunks = list(
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.choices for c in chunks), "no choices-less usage chunk unless asked"
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("model", MODELS)
def test_tool_call(client: openai.OpenAI, model: str):
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_call_arguments(client: openai.OpenAI, model: str):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    args, names, finish = "", [], None
    for c in stream:
        if not c.choices:
            continue
        for tc in c.choices[0].delta.tool_calls or []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
        finish = c.choices[0].finish_reason or finish
    assert names == ["get_weather"]
    assert json.loads(args) == {"city": "mock", "days": 1}
    assert finish == "tool_calls"


@pytest.mark.parametrize("model", ["up-claude", "anthropic/claude-haiku-4-5"])
def test_tool_result_round_trip_is_valid_for_anthropic(client: openai.OpenAI, model: str):
    # The mock rejects what Anthropic rejects (tool_result without a matching
    # tool_use in the previous turn, system in messages, empty text, ...).
    r = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                    {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_b", "content": "24C"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice="none",
        parallel_tool_calls=False,
    )
    assert r.choices[0].message.content.startswith("Hello from")


def test_image_and_json_schema_reach_anthropic(client: openai.OpenAI):
    r = client.chat.completions.create(
        model="up-claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"kind": {"type": "string"}}}},
        },
    )
    # The forced JSON tool's input becomes the content.
    assert json.loads(r.choices[0].message.content) == {"kind": "mock"}
    assert r.choices[0].finish_reason == "stop"


def test_anthropic_rejects_what_it_cannot_take_by_name(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="up-claude", messages=[{"role": "user", "content": "hi"}], seed=7
        )
    assert e.value.body["param"] == "seed"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="up-claude", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert e.value.body["param"] == "n"


def test_openai_passthrough_keeps_extensions(client: openai.OpenAI):
    r = client.chat.completions.create(
        model="up-gpt",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"vendor_extension": {"keep": True}},
        logit_bias={"50256": -100},
        seed=7,
    )
    # Upstream-only fields of the response survive verbatim.
    assert r.system_fingerprint == "fp_test"
    assert r.usage.prompt_tokens_details.cached_tokens == 2


def test_embeddings_through_openai_upstream(client: openai.OpenAI):
    r = client.embeddings.create(model="openai/text-embedding-3-small", input="hello")
    assert r.data[0].embedding == [0.1, 0.2, 0.3]
    assert r.usage.prompt_tokens == 3


@pytest.mark.parametrize("model", ["up-gemini", "gemini/gemini-2.5-flash"])
def test_gemini_tool_round_trip_keeps_the_thought_signature(client: openai.OpenAI, model: str):
    # Gemini signs its function calls; the signature rides on the tool call
    # (`extra_content.google.thought_signature`) and must come back with it.
    # The mock rejects what Gemini rejects (a call turn not after a user turn,
    # a response count that differs from the call count, snake_case fields).
    first = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    message = first.choices[0].message
    call = message.tool_calls[0]
    assert call.model_extra["extra_content"]["google"]["thought_signature"]
    second = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18C"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    assert second.choices[0].message.content == "Hello from Gemini."


def test_gemini_streamed_tool_call_and_usage(client: openai.OpenAI):
    stream = client.chat.completions.create(
        model="up-gemini",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [tc.function.name for tc in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments) == {"city": "mock", "days": 1}
    assert chunks[-1].choices == []
    # 12 candidate tokens + 6 thought tokens, billed as output.
    assert chunks[-1].usage.completion_tokens == 18
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 6


def test_gemini_rejects_what_it_cannot_take_by_name(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="up-gemini",
            messages=[{"role": "user", "content": "hi"}],
            logit_bias={"50256": -100},
        )
    assert e.value.body["param"] == "logit_bias"


def test_embeddings_through_gemini(client: openai.OpenAI):
    # The SDK asks for base64 (and decodes it); Gemini's batchEmbedContents
    # answers floats, which the gateway encodes.
    r = client.embeddings.create(
        model="gemini/gemini-embedding-001", input=["hello", "world"], dimensions=8
    )
    assert [d.index for d in r.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in r.data)
    assert r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens > 0
    floats = client.embeddings.create(
        model="gemini/gemini-embedding-001", input="hello", dimensions=8, encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(r.data[0].embedding)


def test_a_gemini_chat_model_cannot_embed(client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="up-gemini", input="hello")
    assert "batchEmbedContents" in e.value.message