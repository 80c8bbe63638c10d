"""The official Anthropic Python SDK against `POST /v1/messages`.

The gateway serves the Messages API over any provider: here the OpenAI-format
mock upstream (`up-gpt`, translated), the Anthropic-format one (`up-claude`,
passed through), the Gemini-format one (`up-gemini`, translated) and the
built-in mock provider. The SDK's own stream
accumulator checks that the events are well-formed (block indices, deltas,
message_delta usage).
"""

from __future__ import annotations

import anthropic
import pytest

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def claude(base_url: str, master_key: str):
    c = anthropic.Anthropic(base_url=base_url, api_key=master_key, max_retries=0, timeout=15.0)
    yield c
    c.close()


MODELS = ["up-gpt", "up-claude", "up-gemini"]


@pytest.mark.parametrize("model", MODELS)
def test_create_returns_a_message(claude, model):
    msg = claude.messages.create(
        model=model,
        max_tokens=64,
        system="Be terse.",
        messages=[{"role": "user", "content": "Say hi"}],
    )
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_accumulates_text(claude, model):
    with claude.messages.stream(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": "Tell me something"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == final.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_with_tools_yields_a_complete_tool_use(claude, model):
    with claude.messages.stream(
        model=model,
        max_tokens=128,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    calls = [b for b in final.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert isinstance(calls[0].input.get("city"), str)
    # The tool result goes back in the next turn.
    follow = claude.messages.create(
        model=model,
        max_tokens=64,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in final.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": calls[0].id, "content": "18C"}
                ],
            },
        ],
    )
    assert follow.type == "message"


def test_mock_provider_streams_through_messages(claude):
    with claude.messages.stream(
        model="mock/echo",
        max_tokens=32,
        messages=[{"role": "user", "content": "echo me"}],
    ) as stream:
        text = "".join(stream.text_stream)
    assert "echo me" in text


def test_errors_raise_the_sdk_exceptions(claude, base_url):
    with pytest.raises(anthropic.NotFoundError) as e:
        claude.messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.body["type"] == "error"
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(
            model="up-gpt",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"top_k": 3},
        )
    assert "top_k" in e.value.message
    bad = anthropic.Anthropic(base_url=base_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(
            model="up-gpt", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    bad.close()
