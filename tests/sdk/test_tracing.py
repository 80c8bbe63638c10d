"""OpenTelemetry export, checked with the official OTLP protobuf definitions.

The gateway exports traces the client marked as sampled (the suite's config
sets `sample_ratio: 0`, parent-based). The collector fixture keeps the raw
export bodies; they are decoded here with `opentelemetry-proto`, independent
of the gateway's own encoder.
"""

from __future__ import annotations

import secrets
import time

import openai
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


def _spans_of(otlp, trace_id: str, want: int, timeout_s: float = 10.0):
    """Decoded spans of one trace, waiting (bounded) for `want` of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = []
        for headers, body in list(otlp.bodies):
            assert headers.get("content-type") == "application/x-protobuf"
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                service = {
                    kv.key: kv.value.string_value for kv in rs.resource.attributes
                }.get("service.name")
                for ss in rs.scope_spans:
                    assert ss.scope.name == "modelgate"
                    for span in ss.spans:
                        if span.trace_id.hex() == trace_id:
                            found.append((service, span))
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        kind = v.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [x.string_value for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, kind)
    return out


def test_sdk_request_with_a_sampled_traceparent_is_exported(client: openai.OpenAI, otlp):
    trace_id = secrets.token_hex(16)
    parent = secrets.token_hex(8)
    resp = client.chat.completions.with_raw_response.create(
        model="up-gpt",
        messages=[{"role": "user", "content": "trace me"}],
        extra_headers={"traceparent": f"00-{trace_id}-{parent}-01"},
    )
    completion = resp.parse()
    spans = _spans_of(otlp, trace_id, 2)
    assert len(spans) == 2, spans
    (service, root), (_, attempt) = sorted(spans, key=lambda s: s[1].kind)
    assert service == "modelgate"
    assert root.kind == Span.SPAN_KIND_SERVER
    assert root.parent_span_id.hex() == parent
    assert root.name == "POST /v1/chat/completions"
    a = _attrs(root)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "up-gpt"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.response.model"] == completion.model
    assert a["gen_ai.response.finish_reasons"] == [completion.choices[0].finish_reason]
    assert a["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert a["modelgate.request_id"] == resp.headers["x-request-id"]
    assert root.end_time_unix_nano >= root.start_time_unix_nano > 0

    assert attempt.kind == Span.SPAN_KIND_CLIENT
    assert attempt.parent_span_id == root.span_id
    assert attempt.name == "chat gpt-4o-mini"
    b = _attrs(attempt)
    assert b["gen_ai.request.model"] == "gpt-4o-mini"
    assert b["server.address"] == "127.0.0.1"
    assert attempt.status.code == Status.STATUS_CODE_UNSET


def test_unsampled_and_untraced_requests_export_nothing(client: openai.OpenAI, otlp):
    trace_id = secrets.token_hex(16)
    client.chat.completions.create(
        model="echo-alias",
        messages=[{"role": "user", "content": "not sampled"}],
        extra_headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-00"},
    )
    # A sampled request after it proves the exporter has caught up.
    later = secrets.token_hex(16)
    client.chat.completions.create(
        model="echo-alias",
        messages=[{"role": "user", "content": "sampled"}],
        extra_headers={"traceparent": f"00-{later}-{secrets.token_hex(8)}-01"},
    )
    assert _spans_of(otlp, later, 2)
    assert _spans_of(otlp, trace_id, 1, timeout_s=0) == []
