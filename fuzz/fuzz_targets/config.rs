//! `config::Config::load` on arbitrary YAML text: any text gives a config or
//! a list of errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_config::{Config, MapEnv};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::load(Some(text), &MapEnv::default());
    if text.contains("${") {
        // Interpolation with variables that are set.
        let env = MapEnv::from_pairs([
            ("OPENAI_API_KEY", "sk-fuzz"),
            ("MODELGATE_MASTER_KEY", "mk-fuzz"),
            ("EMPTY", ""),
            ("PORT", "8600"),
        ]);
        let _ = Config::load(Some(text), &env);
    }
});
