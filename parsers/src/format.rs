//! The tagged-text formats this crate reads, by name, and which format a model writes.

use std::fmt;
use std::str::FromStr;

/// A tagged tool-call format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Kimi K2 / Kimi Coding: `<|tool_calls_section_begin|>` … `<|tool_call_end|>`.
    Kimi,
    /// Hermes / Qwen2.5 / Qwen3: `<tool_call>{"name": …, "arguments": …}</tool_call>`.
    Hermes,
    /// Qwen3-Coder: `<tool_call><function=NAME><parameter=KEY>value</parameter>…`.
    Qwen3Coder,
    /// GLM-4.5, 4.6 and 4.7: `<tool_call>NAME<arg_key>KEY</arg_key><arg_value>value</arg_value>…`,
    /// with or without newlines between the parts (also spelled `glm47`).
    Glm45,
    /// DeepSeek V3: `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME` and the arguments in a
    /// ```` ```json ```` fence.
    DeepseekV3,
    /// DeepSeek V3.1: `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>`.
    DeepseekV31,
    /// Mistral: `[TOOL_CALLS]` and a JSON array of calls, or `[TOOL_CALLS]NAME[ARGS]{…}`.
    Mistral,
    /// Llama 3.x JSON tool calls: `{"name": …, "parameters": …}`, optionally after
    /// `<|python_tag|>`, several separated by `;`.
    Llama3,
    /// gpt-oss harmony: `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>…<|call|>`.
    Harmony,
    /// MiniMax-M2: `<minimax:tool_call><invoke name="NAME"><parameter name="KEY">…`.
    MinimaxM2,
    /// Any of the above, told by the first marker that only one of them writes.
    Auto,
}

impl Format {
    /// The formats themselves (without [`Format::Auto`]).
    pub const ALL: &'static [Format] = &[
        Format::Kimi,
        Format::Hermes,
        Format::Qwen3Coder,
        Format::Glm45,
        Format::DeepseekV3,
        Format::DeepseekV31,
        Format::Mistral,
        Format::Llama3,
        Format::Harmony,
        Format::MinimaxM2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Kimi => "kimi",
            Format::Hermes => "hermes",
            Format::Qwen3Coder => "qwen3-coder",
            Format::Glm45 => "glm45",
            Format::DeepseekV3 => "deepseek-v3",
            Format::DeepseekV31 => "deepseek-v31",
            Format::Mistral => "mistral",
            Format::Llama3 => "llama3",
            Format::Harmony => "harmony",
            Format::MinimaxM2 => "minimax-m2",
            Format::Auto => "auto",
        }
    }

    /// Other accepted spellings of format names.
    const ALIASES: &'static [(&'static str, Format)] = &[
        ("qwen", Format::Hermes),
        ("glm47", Format::Glm45),
        ("glm", Format::Glm45),
        ("deepseek", Format::DeepseekV3),
        ("gpt-oss", Format::Harmony),
        ("minimax", Format::MinimaxM2),
    ];

    /// The format that the model `model` writes its tool calls in, from its name (any case,
    /// with or without an organization prefix such as `moonshotai/` or a `:tag` suffix).
    /// `None` when the name is not one this crate knows.
    ///
    /// | model names | format |
    /// |---|---|
    /// | `kimi-*`, `moonshot*` | kimi |
    /// | `qwen3-coder*` | qwen3-coder |
    /// | `qwen*`, `qwq*`, `hermes*` | hermes |
    /// | `glm-4.5*`, `glm-4.6*`, `glm-4.7*` | glm45 |
    /// | `deepseek-v3.1*`, `deepseek-v3.2*` | deepseek-v31 |
    /// | `deepseek*` | deepseek-v3 |
    /// | `mistral*`, `devstral*`, `magistral*`, `ministral*`, `codestral*`, `mixtral*` | mistral |
    /// | `llama-3*`, `llama3*`, `meta-llama-3*` | llama3 |
    /// | `gpt-oss*` | harmony |
    /// | `minimax-m2*` | minimax-m2 |
    pub fn for_model(model: &str) -> Option<Format> {
        let lower = model.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        let starts = |prefixes: &[&str]| prefixes.iter().any(|prefix| name.starts_with(prefix));
        let format = if starts(&["kimi-", "kimi_", "moonshot"]) {
            Format::Kimi
        } else if starts(&["qwen3-coder", "qwen3_coder"]) {
            Format::Qwen3Coder
        } else if starts(&["qwen", "qwq", "hermes", "nous-hermes"]) {
            Format::Hermes
        } else if starts(&["glm-4.5", "glm-4.6", "glm-4.7", "glm4.5", "glm4.6", "glm4.7"]) {
            Format::Glm45
        } else if starts(&["deepseek-v3.1", "deepseek-v3.2", "deepseek-v31", "deepseek-v32"]) {
            Format::DeepseekV31
        } else if starts(&["deepseek"]) {
            Format::DeepseekV3
        } else if starts(&["mistral", "devstral", "magistral", "ministral", "codestral", "mixtral"])
        {
            Format::Mistral
        } else if starts(&["llama-3", "llama3", "meta-llama-3"]) {
            Format::Llama3
        } else if starts(&["gpt-oss"]) {
            Format::Harmony
        } else if starts(&["minimax-m2"]) {
            Format::MinimaxM2
        } else {
            return None;
        };
        Some(format)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<_> = Format::ALL.iter().map(|format| format.name()).collect();
        write!(f, "unknown format `{}` (known: {}, auto)", self.0, known.join(", "))
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .iter()
            .chain([&Format::Auto])
            .map(|format| (format.name(), *format))
            .chain(Format::ALIASES.iter().copied())
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, format)| format)
            .ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for format in Format::ALL.iter().chain([&Format::Auto]) {
            assert_eq!(format.name().parse::<Format>(), Ok(*format));
        }
        assert_eq!("GLM47".parse::<Format>(), Ok(Format::Glm45));
        assert_eq!("gpt-oss".parse::<Format>(), Ok(Format::Harmony));
        assert!("nonsense".parse::<Format>().unwrap_err().to_string().contains("qwen3-coder"));
    }

    #[test]
    fn models_map_to_formats() {
        let cases = [
            ("kimi-k2-0905-preview", Some(Format::Kimi)),
            ("moonshotai/Kimi-K2-Instruct", Some(Format::Kimi)),
            ("moonshot-v1-8k", Some(Format::Kimi)),
            ("Qwen/Qwen3-Coder-30B-A3B-Instruct", Some(Format::Qwen3Coder)),
            ("qwen3-coder:30b", Some(Format::Qwen3Coder)),
            ("Qwen/Qwen2.5-7B-Instruct", Some(Format::Hermes)),
            ("qwen3:8b", Some(Format::Hermes)),
            ("NousResearch/Hermes-3-Llama-3.1-8B", Some(Format::Hermes)),
            ("zai-org/GLM-4.5-Air", Some(Format::Glm45)),
            ("glm-4.6", Some(Format::Glm45)),
            ("glm-4.7-flash", Some(Format::Glm45)),
            ("deepseek-ai/DeepSeek-V3.1-Terminus", Some(Format::DeepseekV31)),
            ("deepseek-v3.2-exp", Some(Format::DeepseekV31)),
            ("deepseek-ai/DeepSeek-V3-0324", Some(Format::DeepseekV3)),
            ("deepseek-r1", Some(Format::DeepseekV3)),
            ("mistralai/Mistral-Small-3.2-24B-Instruct-2506", Some(Format::Mistral)),
            ("devstral-small-2507", Some(Format::Mistral)),
            ("magistral-medium-latest", Some(Format::Mistral)),
            ("meta-llama/Llama-3.1-8B-Instruct", Some(Format::Llama3)),
            ("llama3.2:3b", Some(Format::Llama3)),
            ("openai/gpt-oss-120b", Some(Format::Harmony)),
            ("MiniMaxAI/MiniMax-M2", Some(Format::MinimaxM2)),
            ("gpt-4o", None),
            ("claude-sonnet-4", None),
            ("", None),
        ];
        for (model, expected) in cases {
            assert_eq!(Format::for_model(model), expected, "model {model:?}");
        }
    }
}
