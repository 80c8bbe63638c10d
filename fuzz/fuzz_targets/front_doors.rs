//! The request side: client bodies the gateway parses and translates.
//!
//! Input: a JSON request body. It is parsed as
//! - an Anthropic Messages request -> `codec::messages::to_chat`,
//! - an OpenAI Responses request -> `codec::responses::to_chat` (and its echo),
//! - an OpenAI chat request,
//!
//! and every chat request obtained (parsed directly or bridged from the other
//! two) is encoded for Anthropic, Gemini and Bedrock, each with
//! `drop_unsupported` off and on. Each step returns `Ok` or `Err`; none may
//! panic. Encoded requests are serialised, as they are before being sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_api::anthropic::MessagesRequest;
use modelgate_api::openai::ChatRequest;
use modelgate_api::responses::ResponsesRequest;
use modelgate_codec::{anthropic, bedrock, gemini, messages, responses};

fn encode_everywhere(req: &ChatRequest) {
    for drop_unsupported in [false, true] {
        let opts = anthropic::EncodeOptions {
            default_max_tokens: 4096,
            drop_unsupported,
        };
        if let Ok(e) = anthropic::encode_request(req, "claude-sonnet-4-5", &opts) {
            let _ = serde_json::to_vec(&e.request);
        }

        let opts = gemini::EncodeOptions {
            default_max_tokens: Some(2048),
            drop_unsupported,
        };
        for model in ["gemini-2.5-flash", "gemini-3-pro-preview"] {
            if let Ok(e) = gemini::encode_request(req, model, &opts) {
                let _ = serde_json::to_vec(&e.request);
                let _ = gemini::chat_url(gemini::DEFAULT_BASE_URL, model, e.stream);
            }
        }

        let opts = bedrock::EncodeOptions {
            default_max_tokens: None,
            drop_unsupported,
            additional_model_request_fields: None,
        };
        let model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
        if let Ok(e) = bedrock::encode_request(req, model, &opts) {
            let _ = serde_json::to_vec(&e.request);
            let _ = e.url("us-east-1");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<MessagesRequest>(data) {
        for (drop_unsupported, max_completion_tokens) in [(false, false), (true, true)] {
            let opts = messages::ToChatOptions {
                drop_unsupported,
                max_completion_tokens,
            };
            if let Ok(chat) = messages::to_chat(&req, &opts) {
                let _ = serde_json::to_vec(&chat);
                encode_everywhere(&chat);
            }
        }
    }

    if let Ok(req) = serde_json::from_slice::<ResponsesRequest>(data) {
        let echo = responses::Echo::from_request(&req);
        let _ = echo;
        for (drop_unsupported, max_completion_tokens) in [(false, false), (true, true)] {
            let opts = responses::ToChatOptions {
                drop_unsupported,
                max_completion_tokens,
            };
            if let Ok(chat) = responses::to_chat(&req, &opts) {
                let _ = serde_json::to_vec(&chat);
                encode_everywhere(&chat);
            }
        }
    }

    if let Ok(req) = serde_json::from_slice::<ChatRequest>(data) {
        let _ = req.output_cap();
        encode_everywhere(&req);
    }
});
