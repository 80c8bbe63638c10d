//! Byte-preserving edits of a JSON object's top-level members.
//!
//! When the client and the upstream speak the same dialect we forward the
//! client's body as it came, changing only the members we must (the model
//! name, `stream_options`). Re-serialising would reorder keys, reformat numbers
//! and drop nothing we know of today but may tomorrow; splicing cannot.

/// The byte span of one top-level member.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    key: String,
    key_start: usize,
    value_start: usize,
    value_end: usize,
}

/// Why a body could not be spliced (only for input that is not a JSON object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnObject;

/// Returns `raw` with each `(key, value)` in `set` replacing that top-level
/// member's value, or appended when absent. Everything else is kept byte for byte.
/// `raw` must be valid JSON (the caller has already parsed it once).
pub fn set_members(raw: &[u8], set: &[(&str, &[u8])]) -> Result<Vec<u8>, NotAnObject> {
    let (members, close) = scan_object(raw).ok_or(NotAnObject)?;
    let extra: usize = set.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(raw.len() + extra);
    let mut pos = 0;
    let mut seen = vec![false; set.len()];
    for m in &members {
        if let Some(i) = set.iter().position(|(k, _)| *k == m.key) {
            out.extend_from_slice(&raw[pos..m.value_start]);
            out.extend_from_slice(set[i].1);
            pos = m.value_end;
            seen[i] = true;
        }
    }
    out.extend_from_slice(&raw[pos..close]);
    let mut has_members = !members.is_empty();
    for (i, (k, v)) in set.iter().enumerate() {
        if seen[i] {
            continue;
        }
        if has_members {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(v);
        has_members = true;
    }
    out.extend_from_slice(&raw[close..]);
    Ok(out)
}

/// [`set_members`], and every top-level member named in `remove` (that is
/// not also set) dropped. Each kept member keeps its bytes; when a member is
/// removed, the whitespace between members is not kept.
pub fn edit_members(
    raw: &[u8],
    remove: &[&str],
    set: &[(&str, &[u8])],
) -> Result<Vec<u8>, NotAnObject> {
    let (members, close) = scan_object(raw).ok_or(NotAnObject)?;
    let dropped =
        |m: &Member| remove.contains(&m.key.as_str()) && !set.iter().any(|(k, _)| *k == m.key);
    if !members.iter().any(dropped) {
        return set_members(raw, set);
    }
    let open = skip_ws(raw, 0);
    let mut out = Vec::with_capacity(
        raw.len()
            + set
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>(),
    );
    out.extend_from_slice(&raw[..=open]);
    let mut first = true;
    let mut seen = vec![false; set.len()];
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    for m in members.iter().filter(|m| !dropped(m)) {
        sep(&mut out);
        match set.iter().position(|(k, _)| *k == m.key) {
            Some(i) => {
                out.extend_from_slice(&raw[m.key_start..m.value_start]);
                out.extend_from_slice(set[i].1);
                seen[i] = true;
            }
            None => out.extend_from_slice(&raw[m.key_start..m.value_end]),
        }
    }
    for (i, (k, v)) in set.iter().enumerate() {
        if seen[i] {
            continue;
        }
        sep(&mut out);
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&raw[close..]);
    Ok(out)
}

/// Returns the top-level members and the offset of the closing `}`.
fn scan_object(raw: &[u8]) -> Option<(Vec<Member>, usize)> {
    let mut i = skip_ws(raw, 0);
    if raw.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut members = Vec::new();
    loop {
        i = skip_ws(raw, i);
        match raw.get(i)? {
            b'}' => return Some((members, i)),
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_start = i;
        i = skip_string(raw, i)?;
        let key_bytes = &raw[key_start..i];
        let key = if key_bytes.contains(&b'\\') {
            serde_json::from_slice::<String>(key_bytes).ok()?
        } else {
            String::from_utf8(key_bytes[1..key_bytes.len() - 1].to_vec()).ok()?
        };
        i = skip_ws(raw, i);
        if raw.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(raw, i + 1);
        let value_start = i;
        i = skip_value(raw, i)?;
        members.push(Member {
            key,
            key_start,
            value_start,
            value_end: i,
        });
    }
}

fn skip_ws(raw: &[u8], mut i: usize) -> usize {
    while matches!(raw.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `raw[i]` is `"`; returns the index after the closing quote.
fn skip_string(raw: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match raw.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

fn skip_value(raw: &[u8], mut i: usize) -> Option<usize> {
    match raw.get(i)? {
        b'"' => skip_string(raw, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match raw.get(i)? {
                    b'"' => {
                        i = skip_string(raw, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while !matches!(
                raw.get(i),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn replaces_only_the_model_bytes() {
        let raw = br#"{ "model" : "alias",  "x": 1.50, "messages":[{"content":"a \"model\": b"}] , "z":1e3}"#;
        let out = set_members(raw, &[("model", br#""gpt-4o""#)]).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "model" : "gpt-4o",  "x": 1.50, "messages":[{"content":"a \"model\": b"}] , "z":1e3}"#
        );
    }

    #[test]
    fn appends_missing_members() {
        let out = set_members(br#"{"a":1}"#, &[("b", b"true")]).unwrap();
        assert_eq!(out, br#"{"a":1,"b":true}"#);
        let out = set_members(b" {} ", &[("b", b"2")]).unwrap();
        assert_eq!(out, br#" {"b":2} "#);
    }

    #[test]
    fn escaped_keys_and_nested_lookalikes() {
        let raw = br#"{"meta":{"model":"no"},"mod\u0065l":"old"}"#;
        let out = set_members(raw, &[("model", br#""new""#)]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"meta":{"model":"no"},"model":"new"}));
    }

    #[test]
    fn removes_members_and_keeps_the_rest_byte_for_byte() {
        let raw =
            br#"{ "model" : "m", "x": 1.50 ,"thinking":{"signature":"abc=="}, "model":"dup"}"#;
        let out = edit_members(raw, &["model"], &[("anthropic_version", br#""v""#)]).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"x": 1.50,"thinking":{"signature":"abc=="},"anthropic_version":"v"}"#
        );
        // Only member removed: an empty object.
        assert_eq!(
            edit_members(br#"{"model":1}"#, &["model"], &[]).unwrap(),
            b"{}"
        );
        // Nothing to remove: exactly set_members.
        let raw = br#"{ "a" : 1 }"#;
        assert_eq!(
            edit_members(raw, &["zz"], &[("b", b"2")]).unwrap(),
            set_members(raw, &[("b", b"2")]).unwrap()
        );
        // A member both removed and set is set in place.
        assert_eq!(
            edit_members(br#"{"a":1,"b":2}"#, &["a"], &[("a", b"3")]).unwrap(),
            br#"{"a":3,"b":2}"#
        );
        assert_eq!(edit_members(b"[1]", &["a"], &[]), Err(NotAnObject));
    }

    #[test]
    fn rejects_non_objects() {
        assert_eq!(set_members(b"[1]", &[]), Err(NotAnObject));
    }

    proptest! {
        #[test]
        fn splice_equals_semantic_set(
            keys in proptest::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..6),
            newval in any::<i32>(),
            ws in "[ \n\t]{0,3}",
        ) {
            let mut obj = serde_json::Map::new();
            for (k, v) in &keys { obj.insert(k.clone(), json!({"inner": [v, "s,}]"]})); }
            let text = serde_json::to_string_pretty(&Value::Object(obj.clone())).unwrap();
            let text = format!("{ws}{text}{ws}");
            let nv = newval.to_string();
            let out = set_members(text.as_bytes(), &[("model", nv.as_bytes())]).unwrap();
            let got: Value = serde_json::from_slice(&out).unwrap();
            obj.insert("model".into(), json!(newval));
            prop_assert_eq!(got, Value::Object(obj.clone()));

            let out = edit_members(text.as_bytes(), &["model", "a"], &[("v", b"1")]).unwrap();
            let got: Value = serde_json::from_slice(&out).unwrap();
            obj.remove("model");
            obj.remove("a");
            obj.insert("v".into(), json!(1));
            prop_assert_eq!(got, Value::Object(obj));
        }
    }
}
