//! The credential parsers: AWS shared config and credentials files, STS XML
//! replies, credential JSON (container endpoint, instance metadata,
//! `credential_process`), and Google `external_account` files, subject
//! tokens, executable output and impersonation replies. They read files and
//! answers the gateway does not control; any bytes give a value or an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_providers::aws_auth::{
    Profiles, parse_json_credentials, parse_sts_credentials, xml_text,
};
use modelgate_providers::google_external::{
    ExternalAccount, Format, extract, parse_executable_output, parse_impersonated,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut p = Profiles::default();
    p.merge(&text, false);
    p.merge(&text, true);
    let _ = p.get("default");
    let _ = xml_text(&text, "Credentials");
    let _ = parse_sts_credentials(&text);
    let _ = parse_json_credentials(data, "fuzz");
    if let Ok(ext) = ExternalAccount::parse(data) {
        let _ = ext.exchange_form("subject");
    }
    let _ = extract(&text, &Format::Text, "fuzz");
    let _ = extract(&text, &Format::Json("access_token".into()), "fuzz");
    let _ = parse_executable_output(data, "urn:ietf:params:oauth:token-type:jwt", 1_800_000_000);
    let _ = parse_impersonated(data);
});
