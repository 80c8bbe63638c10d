//! `codec::json::set_members` (byte-preserving edit of a body's top-level
//! members) and `codec::openai::prepare_body`, its caller on the passthrough
//! path.
//!
//! Input: any bytes. `set_members` must never panic. When the input is valid
//! JSON it must fail exactly for non-objects, and for objects its output
//! must be valid JSON equal to the input with the members set (replaced, or
//! added when absent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_api::openai::ChatRequest;
use modelgate_codec::json::set_members;
use modelgate_codec::openai::{prepare_body, stream_options_map};
use serde_json::Value;

const SETS: [&[(&str, &[u8])]; 3] = [
    &[("model", br#""gpt-4o-mini""#)],
    &[
        ("model", br#""x\"y""#),
        ("stream_options", br#"{"include_usage":true}"#),
    ],
    &[("max_tokens", b"100"), ("", b"null"), ("model", b"[1, {}]")],
];

fuzz_target!(|data: &[u8]| {
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    for set in SETS {
        let out = set_members(data, set);
        let Some(v) = &parsed else {
            continue;
        };
        let Value::Object(obj) = v else {
            assert!(out.is_err(), "a non-object was spliced");
            continue;
        };
        let Ok(out) = out else {
            panic!("a valid JSON object was refused");
        };
        let got: Value = match serde_json::from_slice(&out) {
            Ok(v) => v,
            Err(e) => panic!(
                "splice produced invalid JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            ),
        };
        let mut want = obj.clone();
        for (k, raw) in set {
            let val: Value = match serde_json::from_slice(raw) {
                Ok(v) => v,
                Err(e) => panic!("bad test value: {e}"),
            };
            want.insert((*k).to_owned(), val);
        }
        assert_eq!(got, Value::Object(want), "splice is not a semantic set");
    }

    // The passthrough path: a chat request the gateway has parsed, sent on
    // with its model replaced, usage forced on and the output capped.
    // (serde also reads a struct from a JSON array; the gateway answers 400
    // to that, as `prepare_body` refuses anything but an object.)
    if let Ok(req) = serde_json::from_slice::<ChatRequest>(data) {
        let opts = stream_options_map(&req);
        let is_object = matches!(parsed, Some(Value::Object(_)));
        for force in [false, true] {
            let cap = Some(("max_tokens", 64));
            let (body, injected) = match prepare_body(data, opts.as_ref(), "gpt-4o", force, cap) {
                Ok(r) => r,
                Err(_) if !is_object => continue,
                Err(_) => panic!("prepare_body refused a chat request object"),
            };
            assert!(!injected || force);
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => panic!("prepare_body produced invalid JSON: {e}"),
            };
            assert_eq!(v.get("model").and_then(Value::as_str), Some("gpt-4o"));
            if force {
                assert_eq!(
                    v.pointer("/stream_options/include_usage"),
                    Some(&Value::Bool(true))
                );
            }
        }
    }
});
