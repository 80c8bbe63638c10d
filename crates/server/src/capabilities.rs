//! The conformance matrix: which features each API surface serves over each
//! provider, and the tests that prove every claim.
//!
//! [`CELLS`] is the single source. `GET /v1/modelgate/capabilities` serves it
//! ([`document`]), `docs/CONFORMANCE.md` is rendered from it
//! ([`render_markdown`]), and `crates/server/tests/conformance.rs` checks
//! that every test a cell names exists and is a test that runs (a renamed or
//! ignored test fails the build of the matrix), that each cell names at least
//! one end-to-end test (through the gateway's HTTP API, or the official SDKs
//! against the binary), that the document is current, and that the endpoint
//! serves this table.
//!
//! Invariant: a cell is claimed only when a named test exercises that feature
//! on that surface and provider. What is not supported, or not tested, has no
//! cell (the matrix shows "—"). `Refused` means the gateway deliberately
//! answers 400 naming the field, and a test proves it.
//!
//! Adding a provider is adding rows: a [`PROVIDERS`] entry (the conformance
//! test fails until every kind the config accepts has one) and its cells.

use modelgate_config::ProviderKind;
use modelgate_config::ProviderKind::{
    Anthropic, Azure, Bedrock, Gemini, Mock, OpenAi, OpenAiCompatible, Vertex,
};
use serde::Serialize;

use Feature::*;
use Surface::{Chat, Messages, Responses};

/// An API surface of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/messages` (Anthropic dialect).
    Messages,
    /// `POST /v1/responses` (OpenAI Responses API).
    Responses,
}

impl Surface {
    /// Every surface, in the order the matrix shows them.
    pub const ALL: [Surface; 3] = [Surface::Chat, Surface::Messages, Surface::Responses];

    /// The id used in JSON and in the document.
    pub fn id(self) -> &'static str {
        match self {
            Surface::Chat => "chat",
            Surface::Messages => "messages",
            Surface::Responses => "responses",
        }
    }

    /// The route that serves it.
    pub fn route(self) -> &'static str {
        match self {
            Surface::Chat => "/v1/chat/completions",
            Surface::Messages => "/v1/messages",
            Surface::Responses => "/v1/responses",
        }
    }

    /// Its name in prose.
    pub fn title(self) -> &'static str {
        match self {
            Surface::Chat => "Chat Completions",
            Surface::Messages => "Anthropic Messages",
            Surface::Responses => "OpenAI Responses",
        }
    }
}

/// A feature a request or reply can use; [`Feature::description`] says what
/// a claimed cell promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Text in, text out.
    Text,
    /// A system prompt.
    System,
    /// Earlier turns, tool calls and results included.
    MultiTurn,
    /// Image inputs.
    Images,
    /// Function tools and the model's calls.
    Tools,
    /// Several tool calls in one turn.
    ParallelTools,
    /// Tool-call arguments streamed in pieces.
    StreamedToolArgs,
    /// Structured output held to a JSON schema.
    JsonSchema,
    /// Reasoning settings and reasoning output.
    Reasoning,
    /// Token usage reported in a stream.
    UsageInStream,
    /// Upstream failures in the surface's error format.
    Errors,
}

impl Feature {
    /// Every feature, in the order the matrix shows them.
    pub const ALL: [Feature; 11] = [
        Feature::Text,
        Feature::System,
        Feature::MultiTurn,
        Feature::Images,
        Feature::Tools,
        Feature::ParallelTools,
        Feature::StreamedToolArgs,
        Feature::JsonSchema,
        Feature::Reasoning,
        Feature::UsageInStream,
        Feature::Errors,
    ];

    /// The id used in JSON and in the document.
    pub fn id(self) -> &'static str {
        match self {
            Feature::Text => "text",
            Feature::System => "system",
            Feature::MultiTurn => "multi_turn",
            Feature::Images => "images",
            Feature::Tools => "tools",
            Feature::ParallelTools => "parallel_tools",
            Feature::StreamedToolArgs => "streamed_tool_args",
            Feature::JsonSchema => "json_schema",
            Feature::Reasoning => "reasoning",
            Feature::UsageInStream => "usage_in_stream",
            Feature::Errors => "errors",
        }
    }

    /// What a claimed cell promises.
    pub fn description(self) -> &'static str {
        match self {
            Feature::Text => "A text prompt is answered with text, streamed and not.",
            Feature::System => {
                "A system prompt (chat `system`/`developer` messages, Messages `system`, Responses `instructions`) reaches the model."
            }
            Feature::MultiTurn => {
                "Earlier turns, including assistant tool calls and their results, are carried to the model."
            }
            Feature::Images => "Image inputs reach the model.",
            Feature::Tools => {
                "Function tools are offered to the model and its tool call comes back in the surface's format."
            }
            Feature::ParallelTools => {
                "Several tool calls in one assistant turn keep their ids, order and results, in the history sent and in the reply."
            }
            Feature::StreamedToolArgs => {
                "In a stream, a tool call's arguments arrive as deltas that add up to its JSON."
            }
            Feature::JsonSchema => {
                "Structured output: the answer is held to a JSON schema (chat `response_format`, Messages `output_config.format`, Responses `text.format`)."
            }
            Feature::Reasoning => {
                "Reasoning settings reach the model, and its reasoning (thinking) or reasoning token count comes back."
            }
            Feature::UsageInStream => {
                "A stream reports token usage (chat: a final usage chunk when `stream_options.include_usage`; Messages: `message_delta`; Responses: `response.completed`)."
            }
            Feature::Errors => {
                "Upstream failures reach the client with their status class in the surface's error envelope; a stream that fails after it started ends with an error event."
            }
        }
    }
}

/// What a cell claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works, and a test proves it.
    Supported,
    /// Deliberately refused with a 400 naming the field (unless the model
    /// sets `drop_unsupported_params`), and a test proves it.
    Refused,
}

impl Status {
    /// The id used in JSON.
    pub fn id(self) -> &'static str {
        match self {
            Status::Supported => "supported",
            Status::Refused => "refused",
        }
    }
}

/// One claim of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    /// The API surface the client calls.
    pub surface: Surface,
    /// The provider the deployment speaks to.
    pub provider: ProviderKind,
    /// What the request or reply uses.
    pub feature: Feature,
    /// What the cell claims.
    pub status: Status,
    /// `path::function` (Rust) or `path::[Class::]function` (pytest), paths
    /// relative to the repository root.
    pub tests: &'static [&'static str],
    /// What a reader must know to rely on the cell.
    pub note: Option<&'static str>,
}

impl Cell {
    /// A cell with this note.
    const fn note(self, note: &'static str) -> Cell {
        Cell {
            note: Some(note),
            ..self
        }
    }
}

const fn ok(
    surface: Surface,
    provider: ProviderKind,
    feature: Feature,
    tests: &'static [&'static str],
) -> Cell {
    Cell {
        surface,
        provider,
        feature,
        status: Status::Supported,
        tests,
        note: None,
    }
}

const fn refused(
    surface: Surface,
    provider: ProviderKind,
    feature: Feature,
    tests: &'static [&'static str],
) -> Cell {
    Cell {
        status: Status::Refused,
        ..ok(surface, provider, feature, tests)
    }
}

/// A provider column: how each surface reaches it.
#[derive(Debug, Clone, Copy)]
pub struct ProviderInfo {
    /// The provider.
    pub kind: ProviderKind,
    /// How `/v1/chat/completions` reaches it (one of [`PATHS`]).
    pub chat: &'static str,
    /// How `/v1/messages` reaches it.
    pub messages: &'static str,
    /// How `/v1/responses` reaches it.
    pub responses: &'static str,
}

impl ProviderInfo {
    /// How `surface` reaches this provider.
    pub fn path(&self, surface: Surface) -> &'static str {
        match surface {
            Surface::Chat => self.chat,
            Surface::Messages => self.messages,
            Surface::Responses => self.responses,
        }
    }
}

/// The paths a request can take to a provider, for the legend.
pub const PATHS: [(&str, &str); 4] = [
    (
        "passthrough",
        "the body goes upstream as sent (only `model` replaced) and the reply comes back as sent",
    ),
    (
        "translated",
        "the request is translated to the provider's API and the reply back (`crates/codec`)",
    ),
    (
        "via chat",
        "the request is translated to the chat dialect, then takes the provider's chat path; the reply is translated back",
    ),
    ("built-in", "answered in process by the mock provider"),
];

/// The provider columns, in order. Every kind the config accepts has one.
pub const PROVIDERS: &[ProviderInfo] = &[
    ProviderInfo {
        kind: ProviderKind::OpenAi,
        chat: "passthrough",
        messages: "via chat",
        responses: "passthrough",
    },
    ProviderInfo {
        kind: ProviderKind::OpenAiCompatible,
        chat: "passthrough",
        messages: "via chat",
        responses: "via chat",
    },
    ProviderInfo {
        kind: ProviderKind::Anthropic,
        chat: "translated",
        messages: "passthrough",
        responses: "via chat",
    },
    ProviderInfo {
        kind: ProviderKind::Gemini,
        chat: "translated",
        messages: "via chat",
        responses: "via chat",
    },
    ProviderInfo {
        kind: ProviderKind::Azure,
        chat: "passthrough",
        messages: "via chat",
        responses: "via chat",
    },
    ProviderInfo {
        kind: ProviderKind::Bedrock,
        chat: "translated",
        messages: "via chat",
        responses: "via chat",
    },
    ProviderInfo {
        kind: ProviderKind::Vertex,
        chat: "translated",
        messages: "passthrough (Claude), via chat (Gemini)",
        responses: "via chat",
    },
    ProviderInfo {
        kind: ProviderKind::Mock,
        chat: "built-in",
        messages: "via chat",
        responses: "via chat",
    },
];

const THINKING_REFUSED: &str = "`thinking` gets a 400 naming it unless the model sets `drop_unsupported_params`; reasoning an upstream returns unasked (`reasoning_content`) still arrives as a thinking block.";
const MOCK_IGNORES: &str = "Accepted; the mock ignores it (`echo` answers the last user message).";
const WHOLE_CALLS: &str = "Gemini streams each call whole: its arguments arrive in one delta.";
const STRUCTURED_REFUSED: &str = "`output_config.format` (and the beta `output_format`) get a 400 naming them unless the model sets `drop_unsupported_params`: the chat dialect this path takes has no place for them.";

// Tests named by several cells.
const AZ_CHAT: &str = "crates/server/tests/openai_upstream.rs::azure_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent_and_streams_usage_tool_arguments_and_errors";
const AZ_MESSAGES: &str = "crates/server/tests/messages.rs::azure_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking";
const AZ_RESPONSES: &str = "crates/server/tests/responses.rs::azure_deployments_get_images_parallel_calls_json_schema_and_reasoning_bridged";
const COMPAT_RESPONSES: &str = "crates/server/tests/responses.rs::openai_compatible_deployments_get_images_parallel_calls_json_schema_and_reasoning_bridged";
const THINKING: &str =
    "crates/server/tests/messages.rs::thinking_is_refused_by_name_unless_the_upstream_is_anthropic";
const STRUCTURED: &str = "crates/server/tests/messages.rs::structured_output_passes_through_to_anthropic_and_is_refused_by_name_elsewhere";
const BR_CHAT: &str = "crates/server/tests/bedrock_upstream.rs::images_parallel_calls_json_schema_and_configured_reasoning_are_translated_and_reasoning_effort_is_refused";
const BR_MESSAGES: &str = "crates/server/tests/bedrock_upstream.rs::the_anthropic_front_door_over_bedrock_carries_images_parallel_tool_turns_streamed_input_and_errors";
const BR_RESPONSES: &str = "crates/server/tests/bedrock_upstream.rs::responses_over_bedrock_carry_images_parallel_calls_json_schema_streams_and_errors";
const VX_GEMINI: &str = "crates/server/tests/vertex_matrix.rs::gemini_on_vertex_carries_tool_turns_images_parallel_calls_json_schema_reasoning_and_stream_usage";
const VX_CLAUDE: &str = "crates/server/tests/vertex_matrix.rs::claude_on_vertex_carries_tool_turns_images_json_schema_and_streamed_input_and_refuses_reasoning_effort";
const VX_RESPONSES: &str = "crates/server/tests/vertex_matrix.rs::responses_over_vertex_carry_images_parallel_calls_json_schema_reasoning_streams_and_errors";

/// Claude on Vertex through `/v1/messages`: images, tools and schemas as written.
const VX_NATIVE_TOOLS: &str = "crates/server/tests/vertex_upstream.rs::claude_on_vertex_passthrough_carries_images_parallel_tools_streamed_input_and_structured_output";

/// The claims. Order within the table does not matter; the document and the
/// endpoint follow [`Surface::ALL`], [`PROVIDERS`] and [`Feature::ALL`].
pub const CELLS: &[Cell] = &[
    // ---- chat × openai (passthrough) -------------------------------------
    ok(Chat, OpenAi, Text, &[
        "crates/server/tests/openai_upstream.rs::raw_body_is_forwarded_byte_for_byte_except_model",
        "crates/server/tests/openai_upstream.rs::stream_split_at_awkward_boundaries_is_reframed_intact",
        "tests/sdk/test_upstreams.py::test_chat",
    ]),
    ok(Chat, OpenAi, System, &[
        "crates/server/tests/openai_upstream.rs::openai_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
        "tests/sdk/test_upstreams.py::test_chat",
    ]),
    ok(Chat, OpenAi, MultiTurn, &[
        "crates/server/tests/openai_upstream.rs::openai_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAi, Images, &[
        "crates/server/tests/openai_upstream.rs::openai_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAi, Tools, &[
        "tests/sdk/test_upstreams.py::test_tool_call",
        "crates/server/tests/openai_upstream.rs::openai_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAi, ParallelTools, &[
        "crates/server/tests/openai_upstream.rs::openai_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAi, StreamedToolArgs, &[
        "tests/sdk/test_upstreams.py::test_streamed_tool_call_arguments",
    ]),
    ok(Chat, OpenAi, JsonSchema, &[
        "crates/server/tests/openai_upstream.rs::openai_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAi, Reasoning, &[
        "crates/server/tests/openai_upstream.rs::openai_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ])
    .note("`reasoning_effort` goes upstream as sent; `reasoning_tokens` come back in usage."),
    ok(Chat, OpenAi, UsageInStream, &[
        "crates/server/tests/openai_upstream.rs::client_requested_usage_chunk_is_forwarded",
        "crates/server/tests/openai_upstream.rs::stream_split_at_awkward_boundaries_is_reframed_intact",
        "tests/sdk/test_upstreams.py::test_stream_with_usage",
        "tests/sdk/test_upstreams.py::test_stream_without_usage_has_no_usage_chunk",
    ])
    .note("The gateway always asks the upstream for usage (to meter the stream) and forwards the usage chunk only when the client asked for it."),
    ok(Chat, OpenAi, Errors, &[
        "crates/server/tests/openai_upstream.rs::upstream_errors_map_to_the_contract",
        "crates/server/tests/openai_upstream.rs::mid_stream_reset_ends_with_error_event_and_no_done",
        "crates/server/tests/openai_upstream.rs::in_band_stream_errors_end_the_stream_without_leaking_keys",
    ]),
    // ---- chat × openai_compatible (passthrough) --------------------------
    ok(Chat, OpenAiCompatible, Text, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
        "crates/server/tests/openai_upstream.rs::openai_compatible_streams_usage_and_tool_arguments_and_maps_errors",
    ]),
    ok(Chat, OpenAiCompatible, System, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAiCompatible, MultiTurn, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAiCompatible, Images, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAiCompatible, Tools, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
        "crates/server/tests/openai_upstream.rs::openai_compatible_streams_usage_and_tool_arguments_and_maps_errors",
    ]),
    ok(Chat, OpenAiCompatible, ParallelTools, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ]),
    ok(Chat, OpenAiCompatible, StreamedToolArgs, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_streams_usage_and_tool_arguments_and_maps_errors",
    ]),
    ok(Chat, OpenAiCompatible, JsonSchema, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ])
    .note("Passed through as sent: whether the schema is honoured is up to the server."),
    ok(Chat, OpenAiCompatible, Reasoning, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_gets_images_parallel_tool_turns_json_schema_and_reasoning_as_sent",
    ])
    .note("`reasoning_effort` goes upstream as sent; `reasoning_tokens` (and any `reasoning_content`) come back as the server sends them."),
    ok(Chat, OpenAiCompatible, UsageInStream, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_streams_usage_and_tool_arguments_and_maps_errors",
    ])
    .note("With `stream_usage: false` (servers that reject `stream_options`) the gateway does not ask for usage itself."),
    ok(Chat, OpenAiCompatible, Errors, &[
        "crates/server/tests/openai_upstream.rs::openai_compatible_streams_usage_and_tool_arguments_and_maps_errors",
        "crates/server/tests/openai_upstream.rs::connection_refused_is_502",
    ]),
    // ---- chat × anthropic (translated) -----------------------------------
    ok(Chat, Anthropic, Text, &[
        "crates/server/tests/anthropic_upstream.rs::request_is_translated_and_response_is_openai_shaped",
        "crates/server/tests/anthropic_upstream.rs::stream_is_translated_chunk_by_chunk",
        "tests/sdk/test_upstreams.py::test_chat",
        "crates/codec/tests/anthropic_golden.rs::decode_text",
    ]),
    ok(Chat, Anthropic, System, &[
        "crates/server/tests/anthropic_upstream.rs::request_is_translated_and_response_is_openai_shaped",
        "tests/sdk/test_upstreams.py::test_chat",
        "tests/sdk/test_upstreams.py::test_tool_result_round_trip_is_valid_for_anthropic",
        "crates/codec/tests/anthropic_golden.rs::encode_system",
        "crates/codec/tests/anthropic_golden.rs::encode_developer_and_system_parts",
    ])
    .note("`system` and `developer` messages become Anthropic's `system`."),
    ok(Chat, Anthropic, MultiTurn, &[
        "crates/server/tests/anthropic_upstream.rs::multi_turn_tool_conversation_is_valid_for_anthropic",
        "tests/sdk/test_upstreams.py::test_tool_result_round_trip_is_valid_for_anthropic",
        "crates/codec/tests/anthropic_golden.rs::encode_multi_turn",
    ]),
    ok(Chat, Anthropic, Images, &[
        "crates/server/tests/anthropic_upstream.rs::request_is_translated_and_response_is_openai_shaped",
        "tests/sdk/test_upstreams.py::test_image_and_json_schema_reach_anthropic",
        "crates/codec/tests/anthropic_golden.rs::encode_images",
    ])
    .note("Data URLs become base64 sources, https URLs URL sources."),
    ok(Chat, Anthropic, Tools, &[
        "crates/server/tests/anthropic_upstream.rs::multi_turn_tool_conversation_is_valid_for_anthropic",
        "tests/sdk/test_upstreams.py::test_tool_call",
        "crates/codec/tests/anthropic_golden.rs::encode_tools_and_choices",
        "crates/codec/tests/anthropic_golden.rs::decode_tool_use",
    ]),
    ok(Chat, Anthropic, ParallelTools, &[
        "crates/server/tests/anthropic_upstream.rs::multi_turn_tool_conversation_is_valid_for_anthropic",
        "tests/sdk/test_upstreams.py::test_tool_result_round_trip_is_valid_for_anthropic",
        "crates/codec/tests/anthropic_golden.rs::encode_tool_round_trip_with_parallel_results",
        "crates/codec/tests/anthropic_golden.rs::decode_tool_use_only",
    ])
    .note("The calls become `tool_use` blocks of one assistant turn and their results `tool_result` blocks of one user turn; a reply with several calls is tested by the codec test only."),
    ok(Chat, Anthropic, StreamedToolArgs, &[
        "crates/server/tests/anthropic_upstream.rs::streamed_tool_call_arguments_arrive_whole",
        "tests/sdk/test_upstreams.py::test_streamed_tool_call_arguments",
    ]),
    ok(Chat, Anthropic, JsonSchema, &[
        "tests/sdk/test_upstreams.py::test_image_and_json_schema_reach_anthropic",
        "crates/codec/tests/anthropic_golden.rs::encode_json_schema",
        "crates/codec/tests/anthropic_golden.rs::decode_json_tool",
        "crates/codec/tests/anthropic_golden.rs::stream_json_tool_becomes_content",
    ])
    .note("Sent as a forced tool whose input schema is the schema; the tool's input comes back as the message content."),
    refused(Chat, Anthropic, Reasoning, &[
        "crates/server/tests/anthropic_upstream.rs::fields_anthropic_cannot_take_are_rejected_by_name_unless_dropped",
        "crates/codec/tests/anthropic_golden.rs::unsupported_fields_are_named",
    ])
    .note("`reasoning_effort` gets a 400 naming it unless the model sets `drop_unsupported_params`. Extended thinking is available through `/v1/messages`."),
    ok(Chat, Anthropic, UsageInStream, &[
        "crates/server/tests/anthropic_upstream.rs::stream_is_translated_chunk_by_chunk",
        "tests/sdk/test_upstreams.py::test_stream_with_usage",
        "tests/sdk/test_upstreams.py::test_stream_without_usage_has_no_usage_chunk",
        "crates/codec/tests/anthropic_golden.rs::stream_text_with_usage",
    ]),
    ok(Chat, Anthropic, Errors, &[
        "crates/server/tests/anthropic_upstream.rs::anthropic_errors_become_openai_envelopes",
        "crates/codec/tests/anthropic_golden.rs::stream_error_mid_stream",
    ]),
    // ---- chat × gemini (translated) --------------------------------------
    ok(Chat, Gemini, Text, &[
        "crates/server/tests/gemini_upstream.rs::request_is_translated_and_the_reply_is_openai_shaped_and_costed",
        "crates/server/tests/gemini_upstream.rs::stream_split_anywhere_is_translated_chunk_by_chunk",
        "tests/sdk/test_upstreams.py::test_chat",
        "crates/codec/tests/gemini_golden.rs::decode_text",
    ]),
    ok(Chat, Gemini, System, &[
        "crates/server/tests/gemini_upstream.rs::request_is_translated_and_the_reply_is_openai_shaped_and_costed",
        "tests/sdk/test_upstreams.py::test_chat",
        "crates/codec/tests/gemini_golden.rs::encode_system_and_multi_turn",
    ])
    .note("Becomes `systemInstruction`."),
    ok(Chat, Gemini, MultiTurn, &[
        "crates/server/tests/gemini_upstream.rs::tools_round_trip_with_thought_signatures",
        "tests/sdk/test_upstreams.py::test_gemini_tool_round_trip_keeps_the_thought_signature",
        "crates/codec/tests/gemini_golden.rs::encode_system_and_multi_turn",
    ]),
    ok(Chat, Gemini, Images, &[
        "crates/server/tests/gemini_upstream.rs::request_is_translated_and_the_reply_is_openai_shaped_and_costed",
        "crates/codec/tests/gemini_golden.rs::encode_images_audio_and_files",
    ]),
    ok(Chat, Gemini, Tools, &[
        "crates/server/tests/gemini_upstream.rs::tools_round_trip_with_thought_signatures",
        "tests/sdk/test_upstreams.py::test_tool_call",
        "tests/sdk/test_upstreams.py::test_gemini_tool_round_trip_keeps_the_thought_signature",
        "crates/codec/tests/gemini_golden.rs::encode_tools_and_choices",
    ])
    .note("Gemini's thought signature rides on the tool call (`extra_content.google.thought_signature`) and goes back with it."),
    ok(Chat, Gemini, ParallelTools, &[
        "crates/server/tests/gemini_upstream.rs::parallel_calls_and_their_results_round_trip",
        "crates/codec/tests/gemini_golden.rs::encode_tool_round_trip_with_parallel_results",
        "crates/codec/tests/gemini_golden.rs::decode_parallel_function_calls",
    ]),
    ok(Chat, Gemini, StreamedToolArgs, &[
        "crates/server/tests/gemini_upstream.rs::streamed_tool_calls_arrive_whole",
        "tests/sdk/test_upstreams.py::test_streamed_tool_call_arguments",
        "tests/sdk/test_upstreams.py::test_gemini_streamed_tool_call_and_usage",
        "crates/codec/tests/gemini_golden.rs::stream_function_calls",
    ])
    .note(WHOLE_CALLS),
    ok(Chat, Gemini, JsonSchema, &[
        "crates/server/tests/gemini_upstream.rs::json_schema_and_reasoning_effort_are_translated_and_thoughts_come_back",
        "crates/codec/tests/gemini_golden.rs::encode_json_schema",
    ])
    .note("Becomes `responseMimeType: application/json` with `responseJsonSchema`."),
    ok(Chat, Gemini, Reasoning, &[
        "crates/server/tests/gemini_upstream.rs::json_schema_and_reasoning_effort_are_translated_and_thoughts_come_back",
        "crates/codec/tests/gemini_golden.rs::reasoning_effort_becomes_thinking_config",
        "crates/codec/tests/gemini_golden.rs::decode_thoughts_and_cache",
        "crates/codec/tests/gemini_golden.rs::stream_thoughts",
    ])
    .note("`reasoning_effort` becomes `thinkingConfig` (a token budget on Gemini 2.x, a level on 3); thoughts come back as `reasoning_content`, thought tokens as `reasoning_tokens`."),
    ok(Chat, Gemini, UsageInStream, &[
        "crates/server/tests/gemini_upstream.rs::stream_split_anywhere_is_translated_chunk_by_chunk",
        "crates/server/tests/gemini_upstream.rs::usage_on_a_final_event_of_its_own_is_recorded_without_being_forwarded",
        "tests/sdk/test_upstreams.py::test_stream_with_usage",
        "tests/sdk/test_upstreams.py::test_gemini_streamed_tool_call_and_usage",
        "crates/codec/tests/gemini_golden.rs::stream_usage_only_final_event",
    ]),
    ok(Chat, Gemini, Errors, &[
        "crates/server/tests/gemini_upstream.rs::client_and_credential_errors_are_final",
        "crates/server/tests/gemini_upstream.rs::a_429_from_the_only_deployment_reaches_the_client_with_retry_after",
        "crates/server/tests/gemini_upstream.rs::a_blocked_prompt_is_a_content_policy_error",
        "crates/server/tests/gemini_upstream.rs::an_error_event_or_a_reset_mid_stream_fails_the_stream",
        "crates/server/tests/gemini_upstream.rs::a_stream_that_closes_before_its_finish_reason_ends_with_an_error_event",
    ])
    .note("Gemini puts its retry delay in the body; it becomes `Retry-After`."),
    // ---- chat × mock (built in) ------------------------------------------
    ok(Chat, Mock, Text, &[
        "crates/server/tests/edge.rs::mock_provider_behaviours",
        "tests/sdk/test_openai_sdk.py::TestChat::test_echo_returns_prompt_with_usage",
        "tests/sdk/test_openai_sdk.py::TestStreaming::test_chunks_concatenate_to_the_answer",
    ]),
    ok(Chat, Mock, System, &[
        "tests/sdk/test_openai_sdk.py::TestChat::test_echo_answers_the_last_user_message_of_a_conversation",
    ])
    .note(MOCK_IGNORES),
    ok(Chat, Mock, MultiTurn, &[
        "tests/sdk/test_openai_sdk.py::TestChat::test_echo_answers_the_last_user_message_of_a_conversation",
    ])
    .note(MOCK_IGNORES),
    ok(Chat, Mock, Images, &[
        "tests/sdk/test_openai_sdk.py::TestChat::test_image_content_part_accepted",
    ])
    .note("Accepted; the mock ignores images (`echo` answers the text parts)."),
    ok(Chat, Mock, Tools, &[
        "tests/sdk/test_openai_sdk.py::TestTools::test_tool_call_non_streaming",
        "tests/sdk/test_openai_sdk.py::TestTools::test_tool_choice_accepted",
    ])
    .note("`mock/tool` calls the request's first tool with arguments built from its schema."),
    ok(Chat, Mock, StreamedToolArgs, &[
        "tests/sdk/test_openai_sdk.py::TestTools::test_tool_call_streaming",
    ]),
    ok(Chat, Mock, UsageInStream, &[
        "tests/sdk/test_openai_sdk.py::TestStreaming::test_include_usage_adds_final_usage_chunk",
        "tests/sdk/test_openai_sdk.py::TestStreaming::test_no_usage_chunk_without_include_usage",
    ]),
    ok(Chat, Mock, Errors, &[
        "crates/server/tests/edge.rs::mock_provider_behaviours",
        "tests/sdk/test_openai_sdk.py::TestErrors::test_rate_limit_with_retry_after",
        "tests/sdk/test_openai_sdk.py::TestErrors::test_upstream_500_becomes_502",
        "tests/sdk/test_openai_sdk.py::TestErrors::test_mid_stream_failure_raises_after_content",
    ])
    .note("`mock/error-<status>`, `mock/stall` and `mock/stream-error` inject them."),
    // ---- messages × openai (via chat) ------------------------------------
    ok(Messages, OpenAi, Text, &[
        "crates/server/tests/messages.rs::a_stream_becomes_messages_events_whatever_the_split",
        "tests/sdk/test_anthropic_sdk.py::test_create_returns_a_message",
        "tests/sdk/test_anthropic_sdk.py::test_stream_accumulates_text",
    ]),
    ok(Messages, OpenAi, System, &[
        "crates/server/tests/messages.rs::a_tool_turn_is_translated_both_ways",
        "tests/sdk/test_anthropic_sdk.py::test_create_returns_a_message",
        "crates/codec/tests/messages_golden.rs::a_tool_conversation_becomes_chat_messages",
    ]),
    ok(Messages, OpenAi, MultiTurn, &[
        "crates/server/tests/messages.rs::a_tool_turn_is_translated_both_ways",
        "crates/server/tests/messages.rs::openai_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ]),
    ok(Messages, OpenAi, Images, &[
        "crates/server/tests/messages.rs::openai_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
        "crates/codec/tests/messages_golden.rs::a_tool_conversation_becomes_chat_messages",
    ]),
    ok(Messages, OpenAi, Tools, &[
        "crates/server/tests/messages.rs::a_tool_turn_is_translated_both_ways",
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ]),
    ok(Messages, OpenAi, ParallelTools, &[
        "crates/server/tests/messages.rs::openai_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
        "crates/codec/tests/messages_golden.rs::a_completion_becomes_a_message",
        "crates/codec/tests/messages_golden.rs::a_chat_stream_becomes_messages_events",
    ]),
    ok(Messages, OpenAi, StreamedToolArgs, &[
        "crates/server/tests/messages.rs::openai_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ]),
    refused(Messages, OpenAi, Reasoning, &[
        "crates/server/tests/messages.rs::thinking_is_refused_by_name_unless_the_upstream_is_anthropic",
        "crates/server/tests/messages.rs::openai_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
        "crates/codec/tests/messages_golden.rs::what_chat_cannot_carry_is_named_or_dropped_on_request",
    ])
    .note(THINKING_REFUSED),
    refused(Messages, OpenAi, JsonSchema, &[STRUCTURED]).note(STRUCTURED_REFUSED),
    ok(Messages, OpenAi, UsageInStream, &[
        "crates/server/tests/messages.rs::a_stream_becomes_messages_events_whatever_the_split",
        "crates/server/tests/messages.rs::openai_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
        "tests/sdk/test_anthropic_sdk.py::test_stream_accumulates_text",
    ]),
    ok(Messages, OpenAi, Errors, &[
        "crates/server/tests/messages.rs::errors_use_the_anthropic_envelope",
        "crates/server/tests/messages.rs::openai_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    // ---- messages × openai_compatible (via chat) -------------------------
    ok(Messages, OpenAiCompatible, Text, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    ok(Messages, OpenAiCompatible, System, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    ok(Messages, OpenAiCompatible, MultiTurn, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    ok(Messages, OpenAiCompatible, Images, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    ok(Messages, OpenAiCompatible, Tools, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    ok(Messages, OpenAiCompatible, ParallelTools, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    ok(Messages, OpenAiCompatible, StreamedToolArgs, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    refused(Messages, OpenAiCompatible, Reasoning, &[
        "crates/server/tests/messages.rs::thinking_is_refused_by_name_unless_the_upstream_is_anthropic",
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ])
    .note(THINKING_REFUSED),
    refused(Messages, OpenAiCompatible, JsonSchema, &[STRUCTURED]).note(STRUCTURED_REFUSED),
    ok(Messages, OpenAiCompatible, UsageInStream, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    ok(Messages, OpenAiCompatible, Errors, &[
        "crates/server/tests/messages.rs::openai_compatible_gets_translated_images_and_parallel_tool_turns_and_reasoning_comes_back_as_thinking",
    ]),
    // ---- messages × anthropic (passthrough) ------------------------------
    ok(Messages, Anthropic, Text, &[
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_the_body_as_written_and_answers_verbatim",
        "crates/server/tests/messages.rs::an_anthropic_stream_passes_through_event_by_event",
        "tests/sdk/test_anthropic_sdk.py::test_create_returns_a_message",
        "tests/sdk/test_anthropic_sdk.py::test_stream_accumulates_text",
    ]),
    ok(Messages, Anthropic, System, &[
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_the_body_as_written_and_answers_verbatim",
        "tests/sdk/test_anthropic_sdk.py::test_create_returns_a_message",
    ]),
    ok(Messages, Anthropic, MultiTurn, &[
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_the_body_as_written_and_answers_verbatim",
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_images_and_parallel_tool_turns_as_written_and_its_errors_keep_their_type",
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ]),
    ok(Messages, Anthropic, Images, &[
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_images_and_parallel_tool_turns_as_written_and_its_errors_keep_their_type",
    ]),
    ok(Messages, Anthropic, Tools, &[
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_images_and_parallel_tool_turns_as_written_and_its_errors_keep_their_type",
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ]),
    ok(Messages, Anthropic, ParallelTools, &[
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_images_and_parallel_tool_turns_as_written_and_its_errors_keep_their_type",
    ]),
    ok(Messages, Anthropic, StreamedToolArgs, &[
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ]),
    ok(Messages, Anthropic, JsonSchema, &[STRUCTURED])
        .note("`output_config.format` (and the beta `output_format` with its `anthropic-beta` header) go upstream as sent; the answer passes through as sent."),
    ok(Messages, Anthropic, Reasoning, &[
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_the_body_as_written_and_answers_verbatim",
    ])
    .note("`thinking`, earlier thinking blocks with their signatures and the client's `anthropic-beta` go upstream unchanged; the reply passes through as sent."),
    ok(Messages, Anthropic, UsageInStream, &[
        "crates/server/tests/messages.rs::an_anthropic_stream_passes_through_event_by_event",
        "tests/sdk/test_anthropic_sdk.py::test_stream_accumulates_text",
    ]),
    ok(Messages, Anthropic, Errors, &[
        "crates/server/tests/messages.rs::an_anthropic_upstream_gets_images_and_parallel_tool_turns_as_written_and_its_errors_keep_their_type",
        "crates/server/tests/messages.rs::an_anthropic_stream_that_fails_midway_ends_with_its_error_event",
    ])
    .note("Error replies keep their status and type; an `error` event mid-stream reaches the client as an Anthropic `error` event with the upstream's type (`overloaded_error`, ...) and ends the stream."),
    // ---- messages × gemini (via chat) ------------------------------------
    ok(Messages, Gemini, Text, &[
        "crates/server/tests/gemini_upstream.rs::anthropic_messages_front_door_over_gemini",
        "tests/sdk/test_anthropic_sdk.py::test_create_returns_a_message",
        "tests/sdk/test_anthropic_sdk.py::test_stream_accumulates_text",
    ]),
    ok(Messages, Gemini, System, &[
        "crates/server/tests/gemini_upstream.rs::anthropic_messages_front_door_over_gemini",
        "tests/sdk/test_anthropic_sdk.py::test_create_returns_a_message",
    ]),
    ok(Messages, Gemini, MultiTurn, &[
        "crates/server/tests/gemini_upstream.rs::anthropic_messages_front_door_over_gemini",
        "crates/server/tests/gemini_upstream.rs::anthropic_messages_with_images_and_parallel_tool_turns_over_gemini",
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ]),
    ok(Messages, Gemini, Images, &[
        "crates/server/tests/gemini_upstream.rs::anthropic_messages_with_images_and_parallel_tool_turns_over_gemini",
    ]),
    ok(Messages, Gemini, Tools, &[
        "crates/server/tests/gemini_upstream.rs::anthropic_messages_front_door_over_gemini",
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ]),
    ok(Messages, Gemini, ParallelTools, &[
        "crates/server/tests/gemini_upstream.rs::anthropic_messages_with_images_and_parallel_tool_turns_over_gemini",
    ]),
    ok(Messages, Gemini, StreamedToolArgs, &[
        "tests/sdk/test_anthropic_sdk.py::test_stream_with_tools_yields_a_complete_tool_use",
    ])
    .note(WHOLE_CALLS),
    refused(Messages, Gemini, Reasoning, &[
        "crates/server/tests/messages.rs::thinking_is_refused_by_name_unless_the_upstream_is_anthropic",
    ])
    .note(THINKING_REFUSED),
    refused(Messages, Gemini, JsonSchema, &[STRUCTURED]).note(STRUCTURED_REFUSED),
    ok(Messages, Gemini, UsageInStream, &[
        "crates/server/tests/gemini_upstream.rs::anthropic_messages_front_door_over_gemini",
        "tests/sdk/test_anthropic_sdk.py::test_stream_accumulates_text",
    ]),
    ok(Messages, Gemini, Errors, &[
        "crates/server/tests/messages.rs::errors_over_gemini_and_the_mock_use_the_anthropic_envelope",
    ]),
    // ---- messages × mock (via chat) --------------------------------------
    ok(Messages, Mock, Text, &[
        "crates/server/tests/messages.rs::the_mock_provider_serves_messages_too",
        "tests/sdk/test_anthropic_sdk.py::test_mock_provider_streams_through_messages",
    ]),
    ok(Messages, Mock, System, &[
        "crates/server/tests/messages.rs::the_mock_provider_streams_tool_calls_and_usage_through_messages",
    ])
    .note("Accepted; the mock ignores it."),
    ok(Messages, Mock, Tools, &[
        "crates/server/tests/messages.rs::the_mock_provider_streams_tool_calls_and_usage_through_messages",
    ])
    .note("`mock/tool` calls the request's first tool with arguments built from its schema."),
    ok(Messages, Mock, StreamedToolArgs, &[
        "crates/server/tests/messages.rs::the_mock_provider_streams_tool_calls_and_usage_through_messages",
    ]),
    refused(Messages, Mock, Reasoning, &[
        "crates/server/tests/messages.rs::thinking_is_refused_by_name_unless_the_upstream_is_anthropic",
    ])
    .note("`thinking` gets a 400 naming it unless the model sets `drop_unsupported_params`."),
    refused(Messages, Mock, JsonSchema, &[STRUCTURED]).note(STRUCTURED_REFUSED),
    ok(Messages, Mock, UsageInStream, &[
        "crates/server/tests/messages.rs::the_mock_provider_streams_tool_calls_and_usage_through_messages",
    ]),
    ok(Messages, Mock, Errors, &[
        "crates/server/tests/messages.rs::errors_over_gemini_and_the_mock_use_the_anthropic_envelope",
    ]),
    // ---- responses × openai (passthrough) --------------------------------
    ok(Responses, OpenAi, Text, &[
        "crates/server/tests/responses.rs::a_response_passes_through_and_is_metered",
        "crates/server/tests/responses.rs::a_stream_passes_through_event_by_event",
        "tests/sdk/test_openai_sdk.py::test_responses_create_passes_through",
        "tests/sdk/test_openai_sdk.py::test_responses_stream_accumulates",
    ]),
    ok(Responses, OpenAi, System, &[
        "crates/server/tests/responses.rs::a_response_passes_through_and_is_metered",
        "crates/server/tests/responses.rs::a_rich_request_and_a_streamed_function_call_pass_through_untouched",
        "tests/sdk/test_openai_sdk.py::test_responses_create_passes_through",
    ]),
    ok(Responses, OpenAi, MultiTurn, &[
        "crates/server/tests/responses.rs::a_rich_request_and_a_streamed_function_call_pass_through_untouched",
    ]),
    ok(Responses, OpenAi, Images, &[
        "crates/server/tests/responses.rs::a_rich_request_and_a_streamed_function_call_pass_through_untouched",
    ]),
    ok(Responses, OpenAi, Tools, &[
        "crates/server/tests/responses.rs::a_rich_request_and_a_streamed_function_call_pass_through_untouched",
    ]),
    ok(Responses, OpenAi, ParallelTools, &[
        "crates/server/tests/responses.rs::a_rich_request_and_a_streamed_function_call_pass_through_untouched",
    ]),
    ok(Responses, OpenAi, StreamedToolArgs, &[
        "crates/server/tests/responses.rs::a_rich_request_and_a_streamed_function_call_pass_through_untouched",
    ]),
    ok(Responses, OpenAi, JsonSchema, &[
        "crates/server/tests/responses.rs::a_rich_request_and_a_streamed_function_call_pass_through_untouched",
    ]),
    ok(Responses, OpenAi, Reasoning, &[
        "crates/server/tests/responses.rs::a_response_passes_through_and_is_metered",
    ])
    .note("`reasoning` goes upstream as sent; the reply passes through as sent."),
    ok(Responses, OpenAi, UsageInStream, &[
        "crates/server/tests/responses.rs::a_stream_passes_through_event_by_event",
        "tests/sdk/test_openai_sdk.py::test_responses_stream_accumulates",
    ]),
    ok(Responses, OpenAi, Errors, &[
        "crates/server/tests/responses.rs::failures_and_unbridgeable_fields_are_explained",
    ])
    .note("An upstream `error` event passes through, numbered on from the last event the client saw."),
    // ---- responses × openai_compatible (via chat) ------------------------
    ok(Responses, OpenAiCompatible, Text, &[
        "crates/server/tests/responses.rs::openai_compatible_deployments_are_bridged_through_chat",
    ]),
    ok(Responses, OpenAiCompatible, System, &[
        "crates/server/tests/responses.rs::openai_compatible_deployments_are_bridged_through_chat",
    ]),
    ok(Responses, OpenAiCompatible, MultiTurn, &[
        "crates/server/tests/responses.rs::openai_compatible_deployments_are_bridged_through_chat",
    ]),
    ok(Responses, OpenAiCompatible, Images, &[COMPAT_RESPONSES]),
    ok(Responses, OpenAiCompatible, Tools, &[
        "crates/server/tests/responses.rs::openai_compatible_deployments_are_bridged_through_chat",
    ]),
    ok(Responses, OpenAiCompatible, ParallelTools, &[COMPAT_RESPONSES]),
    ok(Responses, OpenAiCompatible, StreamedToolArgs, &[COMPAT_RESPONSES]),
    ok(Responses, OpenAiCompatible, JsonSchema, &[COMPAT_RESPONSES])
        .note("`text.format` becomes `response_format`: whether the schema is honoured is up to the server."),
    ok(Responses, OpenAiCompatible, Reasoning, &[COMPAT_RESPONSES])
        .note("`reasoning.effort` becomes `reasoning_effort`; a `reasoning_content` reply comes back as a reasoning item's summary, `reasoning_tokens` as usage."),
    ok(Responses, OpenAiCompatible, UsageInStream, &[
        "crates/server/tests/responses.rs::openai_compatible_deployments_are_bridged_through_chat",
    ]),
    ok(Responses, OpenAiCompatible, Errors, &[
        "crates/server/tests/responses.rs::openai_compatible_deployments_are_bridged_through_chat",
    ]),
    // ---- responses × anthropic (via chat) --------------------------------
    ok(Responses, Anthropic, Text, &[
        "crates/server/tests/responses.rs::other_providers_are_bridged_both_ways",
        "tests/sdk/test_openai_sdk.py::test_responses_are_bridged_to_other_providers",
    ]),
    ok(Responses, Anthropic, System, &[
        "crates/server/tests/responses.rs::other_providers_are_bridged_both_ways",
        "tests/sdk/test_openai_sdk.py::test_responses_are_bridged_to_other_providers",
    ]),
    ok(Responses, Anthropic, MultiTurn, &[
        "tests/sdk/test_openai_sdk.py::test_responses_bridge_with_tools",
        "crates/server/tests/responses.rs::anthropic_deployments_get_images_parallel_calls_and_json_schema_bridged_and_reasoning_refused",
    ]),
    ok(Responses, Anthropic, Images, &[
        "crates/server/tests/responses.rs::anthropic_deployments_get_images_parallel_calls_and_json_schema_bridged_and_reasoning_refused",
        "crates/codec/tests/responses_golden.rs::instructions_and_a_tool_conversation_become_chat_messages",
    ]),
    ok(Responses, Anthropic, Tools, &[
        "tests/sdk/test_openai_sdk.py::test_responses_bridge_with_tools",
    ]),
    ok(Responses, Anthropic, ParallelTools, &[
        "crates/server/tests/responses.rs::anthropic_deployments_get_images_parallel_calls_and_json_schema_bridged_and_reasoning_refused",
        "crates/codec/tests/responses_golden.rs::instructions_and_a_tool_conversation_become_chat_messages",
    ])
    .note("Tested end to end for the history sent; a reply with several calls only by the codec tests of each half (`anthropic_golden.rs::decode_tool_use_only`)."),
    ok(Responses, Anthropic, StreamedToolArgs, &[
        "tests/sdk/test_openai_sdk.py::test_responses_bridge_with_tools",
    ]),
    ok(Responses, Anthropic, JsonSchema, &[
        "crates/server/tests/responses.rs::anthropic_deployments_get_images_parallel_calls_and_json_schema_bridged_and_reasoning_refused",
    ])
    .note("`text.format` becomes a forced tool whose input schema is the schema; the tool's input comes back as the output text."),
    refused(Responses, Anthropic, Reasoning, &[
        "crates/server/tests/responses.rs::anthropic_deployments_get_images_parallel_calls_and_json_schema_bridged_and_reasoning_refused",
    ])
    .note("`reasoning.effort` gets a 400 naming it unless the model sets `drop_unsupported_params`."),
    ok(Responses, Anthropic, UsageInStream, &[
        "crates/server/tests/responses.rs::other_providers_are_bridged_both_ways",
        "tests/sdk/test_openai_sdk.py::test_responses_are_bridged_to_other_providers",
    ]),
    ok(Responses, Anthropic, Errors, &[
        "crates/server/tests/responses.rs::bridged_errors_use_the_openai_envelope",
    ]),
    // ---- responses × gemini (via chat) -----------------------------------
    ok(Responses, Gemini, Text, &[
        "crates/server/tests/gemini_upstream.rs::responses_front_door_over_gemini",
    ]),
    ok(Responses, Gemini, System, &[
        "crates/server/tests/gemini_upstream.rs::responses_front_door_over_gemini",
    ]),
    ok(Responses, Gemini, MultiTurn, &[
        "crates/server/tests/gemini_upstream.rs::responses_front_door_over_gemini",
        "crates/server/tests/gemini_upstream.rs::responses_over_gemini_carry_images_parallel_calls_json_schema_and_reasoning",
    ]),
    ok(Responses, Gemini, Images, &[
        "crates/server/tests/gemini_upstream.rs::responses_over_gemini_carry_images_parallel_calls_json_schema_and_reasoning",
    ]),
    ok(Responses, Gemini, Tools, &[
        "crates/server/tests/gemini_upstream.rs::responses_front_door_over_gemini",
    ]),
    ok(Responses, Gemini, ParallelTools, &[
        "crates/server/tests/gemini_upstream.rs::responses_over_gemini_carry_images_parallel_calls_json_schema_and_reasoning",
    ])
    .note("Tested end to end for the history sent; a reply with several calls only on the chat surface (`gemini_upstream.rs::parallel_calls_and_their_results_round_trip`)."),
    ok(Responses, Gemini, StreamedToolArgs, &[
        "crates/server/tests/gemini_upstream.rs::responses_front_door_over_gemini",
    ])
    .note(WHOLE_CALLS),
    ok(Responses, Gemini, JsonSchema, &[
        "crates/server/tests/gemini_upstream.rs::responses_over_gemini_carry_images_parallel_calls_json_schema_and_reasoning",
    ])
    .note("`text.format` becomes `responseMimeType: application/json` with `responseJsonSchema`."),
    ok(Responses, Gemini, Reasoning, &[
        "crates/server/tests/gemini_upstream.rs::responses_over_gemini_carry_images_parallel_calls_json_schema_and_reasoning",
    ])
    .note("`reasoning.effort` becomes `thinkingConfig`; thoughts come back as a reasoning item's summary, thought tokens as `reasoning_tokens`."),
    ok(Responses, Gemini, UsageInStream, &[
        "crates/server/tests/gemini_upstream.rs::responses_front_door_over_gemini",
    ]),
    ok(Responses, Gemini, Errors, &[
        "crates/server/tests/gemini_upstream.rs::responses_front_door_over_gemini",
    ]),
    // ---- responses × mock (via chat) -------------------------------------
    ok(Responses, Mock, Text, &[
        "tests/sdk/test_openai_sdk.py::test_responses_are_bridged_to_other_providers",
    ]),
    ok(Responses, Mock, System, &[
        "tests/sdk/test_openai_sdk.py::test_responses_are_bridged_to_other_providers",
    ])
    .note(MOCK_IGNORES),
    ok(Responses, Mock, UsageInStream, &[
        "tests/sdk/test_openai_sdk.py::test_responses_are_bridged_to_other_providers",
    ]),
    ok(Responses, Mock, Errors, &[
        "crates/server/tests/responses.rs::bridged_errors_use_the_openai_envelope",
    ])
    .note("A bridged stream that fails after it started ends with `response.failed`."),
    // ---- chat × azure (passthrough at Azure's deployment URLs) -----------
    ok(Chat, Azure, Text, &[
        "crates/server/tests/openai_upstream.rs::azure_deployments_use_the_deployment_path_api_version_and_api_key",
    ])
    .note("Non-streaming and streaming; `api-version` and the `api-key` header checked."),
    ok(Chat, Azure, System, &[AZ_CHAT]),
    ok(Chat, Azure, MultiTurn, &[AZ_CHAT]),
    ok(Chat, Azure, Images, &[AZ_CHAT]),
    ok(Chat, Azure, Tools, &[AZ_CHAT]),
    ok(Chat, Azure, ParallelTools, &[AZ_CHAT]),
    ok(Chat, Azure, StreamedToolArgs, &[AZ_CHAT]),
    ok(Chat, Azure, JsonSchema, &[AZ_CHAT]),
    ok(Chat, Azure, Reasoning, &[AZ_CHAT])
        .note("`reasoning_effort` goes upstream as sent; `reasoning_tokens` come back in usage."),
    ok(Chat, Azure, UsageInStream, &[AZ_CHAT])
        .note("As with OpenAI: the gateway always asks for usage and forwards the usage chunk only when the client asked for it."),
    ok(Chat, Azure, Errors, &[AZ_CHAT])
        .note("Azure's envelope (`code` as a string, content-filter details) keeps its status; `Retry-After` is passed on."),
    // ---- messages × azure (via chat) -------------------------------------
    ok(Messages, Azure, Text, &[AZ_MESSAGES]),
    ok(Messages, Azure, System, &[AZ_MESSAGES]),
    ok(Messages, Azure, MultiTurn, &[AZ_MESSAGES]),
    ok(Messages, Azure, Images, &[AZ_MESSAGES]),
    ok(Messages, Azure, Tools, &[AZ_MESSAGES]),
    ok(Messages, Azure, ParallelTools, &[AZ_MESSAGES]),
    ok(Messages, Azure, StreamedToolArgs, &[AZ_MESSAGES]),
    refused(Messages, Azure, JsonSchema, &[STRUCTURED]).note(STRUCTURED_REFUSED),
    refused(Messages, Azure, Reasoning, &[THINKING, AZ_MESSAGES]).note(THINKING_REFUSED),
    ok(Messages, Azure, UsageInStream, &[AZ_MESSAGES]),
    ok(Messages, Azure, Errors, &[AZ_MESSAGES]),
    // ---- responses × azure (via chat) ------------------------------------
    ok(Responses, Azure, Text, &[AZ_RESPONSES]),
    ok(Responses, Azure, System, &[AZ_RESPONSES]),
    ok(Responses, Azure, MultiTurn, &[AZ_RESPONSES]),
    ok(Responses, Azure, Images, &[AZ_RESPONSES]),
    ok(Responses, Azure, Tools, &[AZ_RESPONSES]),
    ok(Responses, Azure, ParallelTools, &[AZ_RESPONSES]),
    ok(Responses, Azure, StreamedToolArgs, &[AZ_RESPONSES]),
    ok(Responses, Azure, JsonSchema, &[AZ_RESPONSES])
        .note("`text.format` becomes `response_format`."),
    ok(Responses, Azure, Reasoning, &[AZ_RESPONSES])
        .note("`reasoning.effort` becomes `reasoning_effort`; `reasoning_tokens` come back in usage (and any `reasoning_content` as a reasoning item's summary)."),
    ok(Responses, Azure, UsageInStream, &[AZ_RESPONSES]),
    ok(Responses, Azure, Errors, &[AZ_RESPONSES])
        .note("A bridged stream that fails after it started ends with `response.failed`."),
    // ---- chat × bedrock (translated to Converse) -------------------------
    ok(Chat, Bedrock, Text, &[
        "crates/server/tests/bedrock_upstream.rs::request_is_translated_signed_and_costed",
        "crates/server/tests/bedrock_upstream.rs::stream_split_anywhere_is_translated_chunk_by_chunk",
    ]),
    ok(Chat, Bedrock, System, &["crates/server/tests/bedrock_upstream.rs::request_is_translated_signed_and_costed"]),
    ok(Chat, Bedrock, MultiTurn, &["crates/server/tests/bedrock_upstream.rs::tool_calls_round_trip", BR_CHAT]),
    ok(Chat, Bedrock, Images, &[BR_CHAT])
        .note("Base64 data URLs become image blocks (png, jpeg, gif, webp); Bedrock cannot fetch URLs, so an `https` image gets a 400 naming it."),
    ok(Chat, Bedrock, Tools, &["crates/server/tests/bedrock_upstream.rs::tool_calls_round_trip"]),
    ok(Chat, Bedrock, ParallelTools, &[BR_CHAT])
        .note("The results of one turn's calls go back in one user turn, in call order; a reply's calls keep their ids and order, streamed too."),
    ok(Chat, Bedrock, StreamedToolArgs, &["crates/server/tests/bedrock_upstream.rs::streamed_tool_call_arguments_arrive_whole"]),
    ok(Chat, Bedrock, JsonSchema, &[BR_CHAT])
        .note("Becomes Converse's native structured output, `outputConfig.textFormat` (the schema as a JSON string)."),
    refused(Chat, Bedrock, Reasoning, &[BR_CHAT])
        .note("`reasoning_effort` gets a 400 naming it unless the model sets `drop_unsupported_params` (reasoning settings are model-specific on Bedrock); a deployment turns reasoning on with `additional_model_request_fields` (e.g. Claude's `thinking`), and the model's reasoning then comes back as `reasoning_content`, streamed and not."),
    ok(Chat, Bedrock, UsageInStream, &["crates/server/tests/bedrock_upstream.rs::stream_split_anywhere_is_translated_chunk_by_chunk"]),
    ok(Chat, Bedrock, Errors, &[
        "crates/server/tests/bedrock_upstream.rs::throttling_fails_over_then_reaches_the_client_as_429",
        "crates/server/tests/bedrock_upstream.rs::validation_errors_are_400s_and_long_prompts_say_so",
        "crates/server/tests/bedrock_upstream.rs::an_exception_mid_stream_ends_with_an_error_event",
    ]),
    // ---- messages × bedrock (via chat) ------------------------------------
    ok(Messages, Bedrock, Text, &["crates/server/tests/bedrock_upstream.rs::the_anthropic_front_door_works_over_bedrock"])
        .note("Streaming and not."),
    ok(Messages, Bedrock, System, &["crates/server/tests/bedrock_upstream.rs::the_anthropic_front_door_works_over_bedrock"]),
    ok(Messages, Bedrock, MultiTurn, &[BR_MESSAGES]),
    ok(Messages, Bedrock, Images, &[BR_MESSAGES])
        .note("Base64 images become image blocks; URL images are refused (Bedrock cannot fetch them)."),
    ok(Messages, Bedrock, Tools, &["crates/server/tests/bedrock_upstream.rs::the_anthropic_front_door_works_over_bedrock"]),
    ok(Messages, Bedrock, ParallelTools, &[BR_MESSAGES]),
    ok(Messages, Bedrock, StreamedToolArgs, &[BR_MESSAGES]),
    refused(Messages, Bedrock, JsonSchema, &[STRUCTURED]).note(STRUCTURED_REFUSED),
    refused(Messages, Bedrock, Reasoning, &[THINKING])
        .note("`thinking` gets a 400 naming it unless the model sets `drop_unsupported_params`; a deployment turns reasoning on with `additional_model_request_fields`."),
    ok(Messages, Bedrock, UsageInStream, &[BR_MESSAGES]),
    ok(Messages, Bedrock, Errors, &[BR_MESSAGES])
        .note("An exception after the stream started ends it with an `error` event."),
    // ---- responses × bedrock (via chat) ----------------------------------
    ok(Responses, Bedrock, Text, &[BR_RESPONSES]),
    ok(Responses, Bedrock, System, &[BR_RESPONSES]),
    ok(Responses, Bedrock, MultiTurn, &[BR_RESPONSES]),
    ok(Responses, Bedrock, Images, &[BR_RESPONSES]),
    ok(Responses, Bedrock, Tools, &[BR_RESPONSES]),
    ok(Responses, Bedrock, ParallelTools, &[BR_RESPONSES]),
    ok(Responses, Bedrock, StreamedToolArgs, &[BR_RESPONSES]),
    ok(Responses, Bedrock, JsonSchema, &[BR_RESPONSES])
        .note("`text.format` becomes `outputConfig.textFormat`."),
    refused(Responses, Bedrock, Reasoning, &[BR_RESPONSES])
        .note("`reasoning.effort` gets a 400 naming it unless the model sets `drop_unsupported_params`; a deployment turns reasoning on with `additional_model_request_fields`."),
    ok(Responses, Bedrock, UsageInStream, &[BR_RESPONSES]),
    ok(Responses, Bedrock, Errors, &[BR_RESPONSES])
        .note("A bridged stream that fails after it started ends with `response.failed`."),
    // ---- chat × vertex (Gemini and Claude on Vertex AI, translated) ------
    ok(Chat, Vertex, Text, &[
        "crates/server/tests/vertex_upstream.rs::gemini_on_vertex_with_a_service_account_token_fetched_once",
        "crates/server/tests/vertex_upstream.rs::claude_on_vertex_uses_raw_predict_with_the_vertex_version",
    ])
    .note("Gemini models through `generateContent`, Claude models through `rawPredict`; streaming and not."),
    ok(Chat, Vertex, System, &["crates/server/tests/vertex_upstream.rs::gemini_on_vertex_with_a_service_account_token_fetched_once"]),
    ok(Chat, Vertex, MultiTurn, &[VX_GEMINI, VX_CLAUDE]),
    ok(Chat, Vertex, Images, &[VX_GEMINI, VX_CLAUDE]),
    ok(Chat, Vertex, Tools, &[VX_GEMINI, VX_CLAUDE]),
    ok(Chat, Vertex, ParallelTools, &[VX_GEMINI, VX_CLAUDE])
        .note("A reply with several calls is tested on Gemini models; the history of one on both."),
    ok(Chat, Vertex, StreamedToolArgs, &[VX_GEMINI, VX_CLAUDE])
        .note("Claude models stream a call's arguments in pieces; Gemini models send each call whole, in one delta."),
    ok(Chat, Vertex, JsonSchema, &[VX_GEMINI, VX_CLAUDE])
        .note("Gemini models: `responseJsonSchema`; Claude models: a forced tool whose input is the answer."),
    ok(Chat, Vertex, Reasoning, &[VX_GEMINI, VX_CLAUDE])
        .note("Gemini models: `reasoning_effort` becomes `thinkingConfig`, thoughts come back as `reasoning_content`, thought tokens as `reasoning_tokens`. Claude models refuse `reasoning_effort` by name, as on Anthropic."),
    ok(Chat, Vertex, UsageInStream, &[VX_GEMINI]),
    ok(Chat, Vertex, Errors, &["crates/server/tests/vertex_upstream.rs::a_fixed_access_token_and_errors"]),
    // ---- messages × vertex (Claude: passthrough at rawPredict) -----------
    ok(Messages, Vertex, Text, &[
        "crates/server/tests/vertex_upstream.rs::the_anthropic_front_door_passes_claude_on_vertex_through_natively",
    ])
    .note("Claude models: the body as written (without `model`, with Vertex's `anthropic_version`) at `:rawPredict` / `:streamRawPredict`, the reply unchanged; `anthropic-beta` forwarded. Gemini models go via chat."),
    ok(Messages, Vertex, System, &[
        "crates/server/tests/vertex_upstream.rs::the_anthropic_front_door_passes_claude_on_vertex_through_natively",
    ])
    .note("`cache_control` on system blocks survives."),
    ok(Messages, Vertex, MultiTurn, &[
        "crates/server/tests/vertex_upstream.rs::the_anthropic_front_door_passes_claude_on_vertex_through_natively",
    ]),
    ok(Messages, Vertex, Images, &[VX_NATIVE_TOOLS]),
    ok(Messages, Vertex, Tools, &[VX_NATIVE_TOOLS]),
    ok(Messages, Vertex, ParallelTools, &[VX_NATIVE_TOOLS]),
    ok(Messages, Vertex, StreamedToolArgs, &[VX_NATIVE_TOOLS])
        .note("`input_json_delta` events pass through as Claude sends them."),
    ok(Messages, Vertex, JsonSchema, &[VX_NATIVE_TOOLS])
        .note("`output_config.format` reaches Claude as written."),
    ok(Messages, Vertex, Reasoning, &[
        "crates/server/tests/vertex_upstream.rs::the_anthropic_front_door_passes_claude_on_vertex_through_natively",
    ])
    .note("`thinking` reaches Claude; thinking blocks and their signatures survive both ways."),
    ok(Messages, Vertex, UsageInStream, &[
        "crates/server/tests/vertex_upstream.rs::the_anthropic_front_door_passes_claude_on_vertex_through_natively",
    ]),
    ok(Messages, Vertex, Errors, &[
        "crates/server/tests/vertex_upstream.rs::the_anthropic_front_door_passes_claude_on_vertex_through_natively",
    ])
    .note("Vertex's errors in Anthropic's envelope with their status class."),
    // ---- responses × vertex (via chat; Gemini models tested) -------------
    ok(Responses, Vertex, Text, &[VX_RESPONSES]),
    ok(Responses, Vertex, System, &[VX_RESPONSES]),
    ok(Responses, Vertex, MultiTurn, &[VX_RESPONSES]),
    ok(Responses, Vertex, Images, &[VX_RESPONSES]),
    ok(Responses, Vertex, Tools, &[VX_RESPONSES]),
    ok(Responses, Vertex, ParallelTools, &[VX_RESPONSES]),
    ok(Responses, Vertex, StreamedToolArgs, &[VX_RESPONSES]).note(WHOLE_CALLS),
    ok(Responses, Vertex, JsonSchema, &[VX_RESPONSES])
        .note("`text.format` becomes `responseMimeType: application/json` with `responseJsonSchema`."),
    ok(Responses, Vertex, Reasoning, &[VX_RESPONSES])
        .note("`reasoning.effort` becomes `thinkingConfig`; thoughts come back as a reasoning item's summary, thought tokens as `reasoning_tokens`."),
    ok(Responses, Vertex, UsageInStream, &[VX_RESPONSES]),
    ok(Responses, Vertex, Errors, &[VX_RESPONSES])
        .note("A bridged stream that fails after it started ends with `response.failed`."),
];

/// The cell for one coordinate, if the matrix claims it.
pub fn cell(surface: Surface, provider: ProviderKind, feature: Feature) -> Option<&'static Cell> {
    CELLS
        .iter()
        .find(|c| c.surface == surface && c.provider == provider && c.feature == feature)
}

/// `GET /v1/modelgate/capabilities`.
#[derive(Debug, Serialize)]
pub struct Document {
    /// [`Surface::ALL`], in order.
    pub surfaces: Vec<SurfaceDoc>,
    /// [`PROVIDERS`], in order.
    pub providers: Vec<ProviderDoc>,
    /// [`Feature::ALL`], in order.
    pub features: Vec<FeatureDoc>,
    /// The claimed cells, by surface, provider and feature; a missing cell
    /// is no claim.
    pub cells: Vec<CellDoc>,
}

/// A surface in [`Document`].
#[derive(Debug, Serialize)]
pub struct SurfaceDoc {
    pub id: &'static str,
    pub route: &'static str,
    pub title: &'static str,
}

/// A provider in [`Document`], with the path each surface takes to it.
#[derive(Debug, Serialize)]
pub struct ProviderDoc {
    pub id: &'static str,
    pub paths: PathsDoc,
}

/// How each surface reaches a provider.
#[derive(Debug, Serialize)]
pub struct PathsDoc {
    pub chat: &'static str,
    pub messages: &'static str,
    pub responses: &'static str,
}

/// A feature in [`Document`].
#[derive(Debug, Serialize)]
pub struct FeatureDoc {
    pub id: &'static str,
    pub description: &'static str,
}

/// A cell in [`Document`].
#[derive(Debug, Serialize)]
pub struct CellDoc {
    /// A [`SurfaceDoc`] id.
    pub surface: &'static str,
    /// A [`ProviderDoc`] id.
    pub provider: &'static str,
    /// A [`FeatureDoc`] id.
    pub feature: &'static str,
    /// `supported` or `refused`.
    pub status: &'static str,
    /// The tests behind the claim, `path::function` from the repository root.
    pub tests: &'static [&'static str],
    /// What a reader must know to rely on the cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// The matrix as served, cells in display order (surface, provider, feature).
pub fn document() -> Document {
    let mut cells = Vec::new();
    for s in Surface::ALL {
        for p in PROVIDERS {
            for f in Feature::ALL {
                if let Some(c) = cell(s, p.kind, f) {
                    cells.push(CellDoc {
                        surface: s.id(),
                        provider: p.kind.as_str(),
                        feature: f.id(),
                        status: c.status.id(),
                        tests: c.tests,
                        note: c.note,
                    });
                }
            }
        }
    }
    Document {
        surfaces: Surface::ALL
            .iter()
            .map(|s| SurfaceDoc {
                id: s.id(),
                route: s.route(),
                title: s.title(),
            })
            .collect(),
        providers: PROVIDERS
            .iter()
            .map(|p| ProviderDoc {
                id: p.kind.as_str(),
                paths: PathsDoc {
                    chat: p.chat,
                    messages: p.messages,
                    responses: p.responses,
                },
            })
            .collect(),
        features: Feature::ALL
            .iter()
            .map(|f| FeatureDoc {
                id: f.id(),
                description: f.description(),
            })
            .collect(),
        cells,
    }
}

/// The command that rewrites `docs/CONFORMANCE.md`.
pub const REGENERATE: &str =
    "UPDATE_CONFORMANCE=1 cargo test -p modelgate-server --test conformance";

/// `docs/CONFORMANCE.md`: one table per surface (features down, providers
/// across), each claimed cell pointing at the list of tests behind it.
pub fn render_markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let providers: Vec<&str> = PROVIDERS.iter().map(|p| p.kind.as_str()).collect();
    let header = |out: &mut String, first: &str| {
        let _ = writeln!(out, "| {first} | {} |", providers.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(providers.len()));
    };
    let _ = writeln!(out, "# Conformance matrix\n");
    let _ = writeln!(
        out,
        "<!-- Generated from crates/server/src/capabilities.rs by crates/server/tests/conformance.rs; do not edit. Regenerate: {REGENERATE} -->\n"
    );
    out.push_str(
        "What each API surface does over each provider, and the tests that prove it. \
The same table is served at `GET /v1/modelgate/capabilities`.\n\n\
- **✓** — supported: at least one named test exercises the feature on that surface and \
provider end to end (the gateway's HTTP API against a mock upstream that speaks the \
provider's wire format and rejects what the real API rejects, or the official OpenAI and \
Anthropic SDKs against the binary). Codec golden tests are listed beside them.\n\
- **refused** — the gateway answers 400 naming the field (unless the model sets \
`drop_unsupported_params`), and a test proves it.\n\
- **—** — not supported, or not tested: no claim.\n\n\
Every named test exists and runs: `crates/server/tests/conformance.rs` fails when one is \
renamed, removed or ignored. Parametrized SDK tests count for the models they run with.\n\n",
    );

    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(
        out,
        "Cells claimed (✓ + refused) per surface and provider.\n"
    );
    header(&mut out, "surface");
    for s in Surface::ALL {
        let counts: Vec<String> = PROVIDERS
            .iter()
            .map(|p| {
                let of = |st: Status| {
                    CELLS
                        .iter()
                        .filter(|c| c.surface == s && c.provider == p.kind && c.status == st)
                        .count()
                };
                match of(Status::Refused) {
                    0 => of(Status::Supported).to_string(),
                    r => format!("{} + {r}", of(Status::Supported)),
                }
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", s.id(), counts.join(" | "));
    }
    let _ = writeln!(out, "\nOut of {} features.\n", Feature::ALL.len());

    let _ = writeln!(out, "## Features\n");
    let _ = writeln!(out, "| feature | a claimed cell means |\n|---|---|");
    for f in Feature::ALL {
        let _ = writeln!(out, "| `{}` | {} |", f.id(), f.description());
    }
    let _ = writeln!(out, "\n## Paths\n");
    let _ = writeln!(out, "How each surface reaches each provider.\n");
    header(&mut out, "surface");
    for s in Surface::ALL {
        let paths: Vec<&str> = PROVIDERS.iter().map(|p| p.path(s)).collect();
        let _ = writeln!(out, "| {} | {} |", s.id(), paths.join(" | "));
    }
    out.push('\n');
    for (name, meaning) in PATHS {
        let _ = writeln!(out, "- **{name}**: {meaning}");
    }

    for s in Surface::ALL {
        let prefix = match s {
            Surface::Chat => "C",
            Surface::Messages => "M",
            Surface::Responses => "R",
        };
        let _ = writeln!(out, "\n## {} — `POST {}`\n", s.title(), s.route());
        header(&mut out, "feature");
        let mut notes = Vec::new();
        for f in Feature::ALL {
            let row: Vec<String> = PROVIDERS
                .iter()
                .map(|p| match cell(s, p.kind, f) {
                    None => "—".to_owned(),
                    Some(c) => {
                        notes.push((p.kind, f, c));
                        let mark = match c.status {
                            Status::Supported => "✓",
                            Status::Refused => "refused",
                        };
                        format!("{mark} [{prefix}{}]", notes.len())
                    }
                })
                .collect();
            let _ = writeln!(out, "| `{}` | {} |", f.id(), row.join(" | "));
        }
        out.push('\n');
        for (i, (p, f, c)) in notes.iter().enumerate() {
            let tests: Vec<String> = c.tests.iter().map(|t| test_link(t)).collect();
            let _ = write!(
                out,
                "- **[{prefix}{}]** {} · `{}`",
                i + 1,
                p.as_str(),
                f.id()
            );
            if let Some(n) = c.note {
                let _ = write!(out, " — {n}");
            }
            let _ = writeln!(out, "<br>{}", tests.join(" · "));
        }
    }
    out
}

/// `path::test` as a link to its file, shown without the directories.
fn test_link(reference: &str) -> String {
    let (path, name) = reference.split_once("::").unwrap_or((reference, ""));
    let file = path.rsplit('/').next().unwrap_or(path);
    format!("[`{file}::{name}`](../{path})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_is_in_the_document_once() {
        let doc = document();
        assert_eq!(doc.cells.len(), CELLS.len());
    }
}
