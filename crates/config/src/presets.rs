//! Presets for the OpenAI-compatible family: `provider: groq` is
//! `openai_compatible` with Groq's base URL, key variable and quirks filled in.
//!
//! Each preset also makes a zero-config prefix (`groq/<model>`) when its key
//! variable (or, for keyless local servers, its base-URL variable) is set.

/// One OpenAI-compatible vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The `provider:` name and zero-config prefix.
    pub name: &'static str,
    /// Default base URL (including `/v1` or the vendor's equivalent); `None`
    /// when it must be configured (self-hosted servers).
    pub base_url: Option<&'static str>,
    /// Environment variable holding the API key.
    pub key_env: &'static str,
    /// The API needs a key (hosted services) or not (local servers).
    pub key_required: bool,
    /// Environment variable overriding the base URL.
    pub base_env: &'static str,
    /// Whether the server accepts `stream_options.include_usage`. Those that
    /// reject it (Mistral answers 422) report usage in the last chunk anyway.
    pub stream_usage: bool,
}

/// The presets, by name.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "mistral",
        base_url: Some("https://api.mistral.ai/v1"),
        key_env: "MISTRAL_API_KEY",
        key_required: true,
        base_env: "MISTRAL_BASE_URL",
        stream_usage: false,
    },
    Preset {
        name: "groq",
        base_url: Some("https://api.groq.com/openai/v1"),
        key_env: "GROQ_API_KEY",
        key_required: true,
        base_env: "GROQ_BASE_URL",
        stream_usage: true,
    },
    Preset {
        name: "together",
        base_url: Some("https://api.together.xyz/v1"),
        key_env: "TOGETHER_API_KEY",
        key_required: true,
        base_env: "TOGETHER_BASE_URL",
        stream_usage: true,
    },
    Preset {
        name: "deepseek",
        base_url: Some("https://api.deepseek.com/v1"),
        key_env: "DEEPSEEK_API_KEY",
        key_required: true,
        base_env: "DEEPSEEK_BASE_URL",
        stream_usage: true,
    },
    Preset {
        name: "fireworks",
        base_url: Some("https://api.fireworks.ai/inference/v1"),
        key_env: "FIREWORKS_API_KEY",
        key_required: true,
        base_env: "FIREWORKS_BASE_URL",
        stream_usage: true,
    },
    Preset {
        name: "openrouter",
        base_url: Some("https://openrouter.ai/api/v1"),
        key_env: "OPENROUTER_API_KEY",
        key_required: true,
        base_env: "OPENROUTER_BASE_URL",
        stream_usage: true,
    },
    Preset {
        name: "xai",
        base_url: Some("https://api.x.ai/v1"),
        key_env: "XAI_API_KEY",
        key_required: true,
        base_env: "XAI_BASE_URL",
        stream_usage: true,
    },
    Preset {
        name: "ollama",
        base_url: Some("http://127.0.0.1:11434/v1"),
        key_env: "OLLAMA_API_KEY",
        key_required: false,
        base_env: "OLLAMA_BASE_URL",
        stream_usage: true,
    },
    Preset {
        name: "vllm",
        base_url: None,
        key_env: "VLLM_API_KEY",
        key_required: false,
        base_env: "VLLM_BASE_URL",
        stream_usage: true,
    },
];

/// The preset called `name`.
pub fn get(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_unique_and_well_formed() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(PRESETS[i + 1..].iter().all(|q| q.name != p.name));
            if let Some(b) = p.base_url {
                assert!(b.starts_with("https://") || b.starts_with("http://127.0.0.1"));
                assert!(!b.ends_with('/'));
            }
            assert!(p.key_env.ends_with("_API_KEY") && p.base_env.ends_with("_BASE_URL"));
            assert!(
                crate::ProviderKind::parse(p.name).is_none(),
                "{} shadows a kind",
                p.name
            );
        }
        assert_eq!(get("groq").map(|p| p.key_env), Some("GROQ_API_KEY"));
        assert!(get("nope").is_none());
    }
}
