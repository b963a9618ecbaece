//! The built-in actions: `echo`, `shell`, `fetch_urls`, `write_file`, `tool` (a built-in tool
//! as a step), `llm` (one model request) and `agent` (an agent run as a child flow of the
//! step's flow). Each is one file; [`Actions::builtin`] registers them all.

mod agent;
mod echo;
mod fetch_urls;
mod llm;
mod params;
mod shell;
mod tool;
mod write_file;

pub use agent::AgentAction;
pub use echo::Echo;
pub use fetch_urls::FetchUrls;
pub use llm::{Llm, reply_text};
pub use shell::Shell;
pub use tool::ToolAction;
pub use write_file::WriteFile;

use crate::action::Actions;
use crate::tool::Tools;

impl Actions {
    /// `echo`, `shell`, `fetch_urls`, `write_file`, `tool` (over [`Tools::builtin`]), `llm`
    /// (providers from the presets; an engine given other providers registers its own) and
    /// `agent` (an agent run as a child flow, with the engine's providers).
    pub fn builtin() -> Self {
        let mut actions = Actions::new();
        actions
            .register("agent", AgentAction)
            .register("echo", Echo)
            .register("llm", Llm::new(taskflow_providers::preset_providers()))
            .register("shell", Shell)
            .register("fetch_urls", FetchUrls::default())
            .register("write_file", WriteFile)
            .register("tool", ToolAction::new(Tools::builtin()));
        actions
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::action::{Actions, unknown_parameters};
    use crate::step::StepContext;

    /// The keys of `with` that the built-in action `name` refuses, `with` otherwise passing
    /// its check.
    fn check(name: &str, with: Value, unknown: &[&str]) {
        let action = Actions::builtin().get(name).unwrap();
        let found = unknown_parameters(name, action.as_ref(), &with);
        let keys: Vec<&str> = found.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, unknown, "{name} {with}");
        for (key, message) in &found {
            let expected = format!("`with.{key}` is not a parameter of `{name}` (parameters: ");
            assert!(message.starts_with(&expected), "{message}");
        }
        assert_eq!(action.check(&with), Ok(()), "{name} {with}");
    }

    #[test]
    fn each_builtin_action_takes_the_keys_it_reads_and_no_other() {
        check("echo", json!({"value": 1}), &[]);
        check("echo", json!({"value": 1, "extra": 1}), &["extra"]);
        check("shell", json!({"command": "ls", "env": {"A": "1"}}), &[]);
        check("shell", json!({"command": "ls", "tiemout": "1s"}), &["tiemout"]);
        check("fetch_urls", json!({"urls": ["file:a.html"]}), &[]);
        check("fetch_urls", json!({"urls": "{{steps.a.output}}", "url": "x"}), &["url"]);
        check("write_file", json!({"path": "a.md", "content": "x"}), &[]);
        check("write_file", json!({"path": "a.md", "content": "x", "mode": 1}), &["mode"]);
        check("tool", json!({"name": "html_text", "args": {"html": "<p>"}}), &[]);
        check("tool", json!({"name": "html_text", "arguments": {}}), &["arguments"]);
        let llm = json!({
            "prompt": "Summarize {{steps.a.output}}",
            "system": "Be brief.",
            "temperature": 0.2,
            "max_tokens": 100,
            "provider": "replay",
            "model": "m",
            "base_url": "http://localhost:1",
            "script": "turns.toml",
            "api_key_env": "KEY",
        });
        check("llm", llm, &[]);
        check(
            "llm",
            json!({"prompt": "hi", "modle": "m", "temprature": 1}),
            &["modle", "temprature"],
        );
        let agent = json!({
            "prompt": "hi",
            "system": "s",
            "provider": "replay",
            "model": "m",
            "base_url": "http://localhost:1",
            "script": "turns.toml",
            "api_key_env": "KEY",
            "tools": ["read_file"],
            "mcp": ["docs"],
            "workspace": ".",
            "allow_commands": ["ls"],
            "max_turns": 3,
            "max_tokens": 100,
            "temperature": 0.5,
            "name": "n",
            "ask": ["run_command"],
            "deny": ["docs__search"],
        });
        check("agent", agent, &[]);
        check("agent", json!({"prompt": "hi", "max_turn": 3}), &["max_turn"]);
    }

    #[test]
    fn an_action_a_program_registers_takes_any_key() {
        let mut actions = Actions::new();
        actions.register("mine", |input: Value, _: StepContext| async move { Ok(input) });
        let mine = actions.get("mine").unwrap();
        assert_eq!(mine.parameters(), None);
        assert_eq!(unknown_parameters("mine", mine.as_ref(), &json!({"anything": 1})), []);
    }

    /// A model step's `base_url` is an http(s) URL, checked before anything runs (a template,
    /// once filled in).
    #[test]
    fn a_base_url_that_no_request_could_use_is_refused_before_anything_runs() {
        let actions = Actions::builtin();
        for action in ["llm", "agent"] {
            let check = |base_url: &str| {
                let with = json!({"prompt": "hi", "provider": "vllm", "base_url": base_url});
                actions.get(action).unwrap().check(&with)
            };
            assert_eq!(check("http://127.0.0.1:8000/v1"), Ok(()));
            assert_eq!(check("{{steps.a.output}}"), Ok(()));
            for bad in ["not a url", "ftp://host/v1"] {
                let refused = check(bad).unwrap_err();
                assert!(refused.starts_with("`with.base_url`: the base URL must be"), "{refused}");
            }
        }
    }

    /// A template is a value: the key that holds it is checked as any other.
    #[test]
    fn a_key_that_a_template_fills_is_still_a_key() {
        check("echo", json!({"value": "{{steps.a.output}}", "{{x}}": 1}), &["{{x}}"]);
    }
}
