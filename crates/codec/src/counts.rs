//! Token counts as Anthropic-style APIs report them (Anthropic Messages,
//! Bedrock Converse): input without cache reads and writes, which come
//! separately, and cumulative in streams.

use modelgate_api::Extra;
use modelgate_api::openai::{PromptTokensDetails, Usage as OUsage};
use modelgate_core::Usage;

/// A provider usage object in that style.
pub(crate) trait ReportedUsage {
    /// `(input, output, cache read, cache write)`, each when reported.
    fn counts(&self) -> [Option<u64>; 4];
}

impl ReportedUsage for modelgate_api::anthropic::Usage {
    fn counts(&self) -> [Option<u64>; 4] {
        [
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_creation_input_tokens,
        ]
    }
}

impl ReportedUsage for modelgate_api::bedrock::TokenUsage {
    fn counts(&self) -> [Option<u64>; 4] {
        [
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_write_input_tokens,
        ]
    }
}

/// Counts accumulated over a response.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    input: u64,
    output: u64,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

impl Counts {
    /// Takes every count present in `u`. Stream usage is cumulative, so the
    /// latest value wins.
    pub(crate) fn update(&mut self, u: &impl ReportedUsage) {
        let [input, output, read, write] = u.counts();
        if let Some(v) = input {
            self.input = v;
        }
        if let Some(v) = output {
            self.output = v;
        }
        if read.is_some() {
            self.cache_read = read;
        }
        if write.is_some() {
            self.cache_write = write;
        }
    }

    /// The neutral form: input includes cache reads and writes (OpenAI's
    /// convention).
    pub(crate) fn core(&self) -> Usage {
        let cache_read = self.cache_read.unwrap_or(0);
        let cache_write = self.cache_write.unwrap_or(0);
        Usage {
            input_tokens: self
                .input
                .saturating_add(cache_read)
                .saturating_add(cache_write),
            output_tokens: self.output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            reasoning_tokens: 0,
            estimated: false,
        }
    }

    /// OpenAI's usage object.
    pub(crate) fn openai(&self) -> OUsage {
        let core = self.core();
        let details = (self.cache_read.is_some() || self.cache_write.is_some()).then(|| {
            PromptTokensDetails {
                cached_tokens: Some(core.cache_read_tokens),
                extra: Extra::new(),
            }
        });
        OUsage {
            prompt_tokens: core.input_tokens,
            completion_tokens: core.output_tokens,
            total_tokens: core.input_tokens.saturating_add(core.output_tokens),
            prompt_tokens_details: details,
            completion_tokens_details: None,
            extra: Extra::new(),
        }
    }
}
