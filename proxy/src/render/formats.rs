//! Each format's way of declaring tools, writing a call and wrapping a tool result, after the
//! chat templates its models were trained with.

use std::fmt::Write as _;

use serde_json::{Value, json};
use taskflow_parsers::Format;

/// A call of an earlier assistant turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub id: String,
    pub name: String,
    /// The argument text (a JSON object when the model wrote one).
    pub arguments: String,
}

impl Call {
    pub(crate) fn from_wire(call: &Value) -> Option<Self> {
        let function = call.get("function")?;
        let arguments = match function.get("arguments") {
            Some(Value::String(text)) => text.clone(),
            None | Some(Value::Null) => "{}".to_owned(),
            Some(other) => other.to_string(),
        };
        Some(Self {
            id: call.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            name: function.get("name")?.as_str()?.to_owned(),
            arguments,
        })
    }

    /// The arguments as a JSON object, when they are one.
    fn object(&self) -> Option<serde_json::Map<String, Value>> {
        match serde_json::from_str(&self.arguments) {
            Ok(Value::Object(object)) => Some(object),
            _ => None,
        }
    }

    /// The arguments as JSON text: the model's own when valid, else a string holding them.
    fn json(&self) -> String {
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(_) => self.arguments.trim().to_owned(),
            Err(_) => json!(self.arguments).to_string(),
        }
    }
}

/// The text that declares `tools` (the `function` objects of the request) and tells how to
/// call them.
pub(crate) fn declaration(format: Format, tools: &[&Value]) -> String {
    let wrapped: Vec<Value> =
        tools.iter().map(|tool| json!({"type": "function", "function": tool})).collect();
    let lines = |wrap: bool| {
        let tools = tools.iter().zip(&wrapped);
        tools
            .map(|(tool, wrapped)| if wrap { wrapped.to_string() } else { tool.to_string() })
            .collect::<Vec<_>>()
    };
    match format {
        Format::Kimi => format!(
            "# Tools\n\nYou can call these tools:\n{}\n\nTo call tools, write:\n\
             <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:INDEX\
             <|tool_call_argument_begin|>{{JSON arguments}}<|tool_call_end|>\
             <|tool_calls_section_end|>\nwith INDEX counting the calls of the conversation from 0.",
            Value::Array(wrapped.clone())
        ),
        Format::Qwen3Coder => {
            let mut text =
                String::from("# Tools\n\nYou have access to the following functions:\n\n<tools>");
            for tool in tools {
                let _ = write!(
                    text,
                    "\n<function>\n<name>{}</name>\n<description>{}</description>\n<parameters>",
                    str_field(tool, "name"),
                    str_field(tool, "description")
                );
                let properties = tool
                    .get("parameters")
                    .and_then(|p| p.get("properties"))
                    .and_then(Value::as_object);
                for (name, schema) in properties.into_iter().flatten() {
                    let _ = write!(
                        text,
                        "\n<parameter>\n<name>{name}</name>\n<type>{}</type>\n<description>{}</description>\n</parameter>",
                        schema
                            .get("type")
                            .map(Value::to_string)
                            .unwrap_or_else(|| "\"string\"".into())
                            .trim_matches('"'),
                        str_field(schema, "description"),
                    );
                }
                text.push_str("\n</parameters>\n</function>");
            }
            text.push_str(
                "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format \
                 with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n\
                 <parameter=example_parameter_1>\nvalue_1\n</parameter>\n</function>\n</tool_call>",
            );
            text
        }
        Format::Glm45 => format!(
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{}\n</tools>\n\n\
             For each function call, output the function name and arguments within the following XML format:\n\
             <tool_call>{{function-name}}\n<arg_key>{{arg-key-1}}</arg_key>\n<arg_value>{{arg-value-1}}</arg_value>\n...\n</tool_call>",
            lines(false).join("\n")
        ),
        Format::MinimaxM2 => format!(
            "# Tools\nYou may call one or more tools to assist with the user query.\n\
             Here are the tools available in JSONSchema format:\n\n<tools>\n{}\n</tools>\n\n\
             When making tool calls, use XML format to invoke tools and pass parameters:\n\n\
             <minimax:tool_call>\n<invoke name=\"tool-name-1\">\n<parameter name=\"param-key-1\">param-value-1</parameter>\n\
             </invoke>\n</minimax:tool_call>",
            lines(false)
                .iter()
                .map(|line| format!("<tool>{line}</tool>"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Format::DeepseekV3 | Format::DeepseekV31 => {
            let mut text = String::from("## Tools\nYou have access to the following tools:\n");
            for tool in tools {
                let _ = write!(
                    text,
                    "\n### {}\nDescription: {}\n\nParameters: {}\n",
                    str_field(tool, "name"),
                    str_field(tool, "description"),
                    tool.get("parameters").cloned().unwrap_or_else(|| json!({}))
                );
            }
            let example = if format == Format::DeepseekV3 {
                "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>tool_call_name\n```json\ntool_call_arguments\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
            } else {
                "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
            };
            let _ = write!(
                text,
                "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n{example}\n\
                 Where tool_call_arguments is a JSON object; several calls follow one another before <｜tool▁calls▁end｜>."
            );
            text
        }
        Format::Mistral => format!(
            "[AVAILABLE_TOOLS]{}[/AVAILABLE_TOOLS]\nTo call tools, write [TOOL_CALLS] and a JSON array of \
             {{\"name\": ..., \"arguments\": {{...}}}} objects.",
            Value::Array(wrapped.clone())
        ),
        Format::Llama3 => format!(
            "Given the following functions, please respond with a JSON for a function call with its \
             proper arguments that best answers the given prompt.\n\n\
             Respond in the format {{\"name\": function name, \"parameters\": dictionary of argument name and its value}}, \
             after <|python_tag|>. Do not use variables.\n\n{}",
            lines(true).join("\n\n")
        ),
        Format::Harmony => {
            let mut text = String::from("# Tools\n\n## functions\n\nnamespace functions {\n");
            for tool in tools {
                let _ = write!(
                    text,
                    "\n// {}\ntype {} = (_: {}) => any;\n",
                    str_field(tool, "description").replace('\n', "\n// "),
                    str_field(tool, "name"),
                    tool.get("parameters").cloned().unwrap_or_else(|| json!({}))
                );
            }
            text.push_str(
                "\n} // namespace functions\n\nTo call a function, write \
                 <|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{JSON arguments}<|call|>",
            );
            text
        }
        Format::Hermes | Format::Auto => format!(
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{}\n</tools>\n\n\
             For each function call, return a json object with function name and arguments within \
             <tool_call></tool_call> XML tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>",
            lines(true).join("\n")
        ),
    }
}

/// The tagged text in which the model would have written `calls`.
pub(crate) fn calls_text(format: Format, calls: &[Call]) -> String {
    let each = |write: &dyn Fn(usize, &Call) -> String, separator: &str| {
        calls
            .iter()
            .enumerate()
            .map(|(at, call)| write(at, call))
            .collect::<Vec<_>>()
            .join(separator)
    };
    match format {
        Format::Kimi => format!(
            "<|tool_calls_section_begin|>{}<|tool_calls_section_end|>",
            each(
                &|at, call| format!(
                    "<|tool_call_begin|>{}<|tool_call_argument_begin|>{}<|tool_call_end|>",
                    kimi_id(at, call),
                    call.arguments.trim()
                ),
                ""
            )
        ),
        Format::Qwen3Coder => each(
            &|_, call| match call.object() {
                Some(object) => {
                    let mut text = format!("<tool_call>\n<function={}>", call.name);
                    for (key, value) in object {
                        let _ =
                            write!(text, "\n<parameter={key}>\n{}\n</parameter>", plain(&value));
                    }
                    text.push_str("\n</function>\n</tool_call>");
                    text
                }
                None => envelope(call, "arguments"),
            },
            "\n",
        ),
        Format::Glm45 => each(
            &|_, call| match call.object() {
                Some(object) => {
                    let mut text = format!("<tool_call>{}", call.name);
                    for (key, value) in object {
                        let _ = write!(
                            text,
                            "\n<arg_key>{key}</arg_key>\n<arg_value>{}</arg_value>",
                            plain(&value)
                        );
                    }
                    text.push_str("\n</tool_call>");
                    text
                }
                None => envelope(call, "arguments"),
            },
            "\n",
        ),
        Format::MinimaxM2 => {
            let invokes = each(
                &|_, call| {
                    let mut text = format!("<invoke name=\"{}\">", call.name);
                    for (key, value) in call.object().unwrap_or_default() {
                        let _ = write!(
                            text,
                            "\n<parameter name=\"{key}\">{}</parameter>",
                            plain(&value)
                        );
                    }
                    text.push_str("\n</invoke>");
                    text
                },
                "\n",
            );
            format!("<minimax:tool_call>\n{invokes}\n</minimax:tool_call>")
        }
        Format::DeepseekV3 => format!(
            "<｜tool▁calls▁begin｜>{}<｜tool▁calls▁end｜>",
            each(
                &|_, call| format!(
                    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>{}\n```json\n{}\n```<｜tool▁call▁end｜>",
                    call.name,
                    call.json()
                ),
                ""
            )
        ),
        Format::DeepseekV31 => format!(
            "<｜tool▁calls▁begin｜>{}<｜tool▁calls▁end｜>",
            each(
                &|_, call| format!(
                    "<｜tool▁call▁begin｜>{}<｜tool▁sep｜>{}<｜tool▁call▁end｜>",
                    call.name,
                    call.json()
                ),
                ""
            )
        ),
        Format::Mistral => {
            let array: Vec<String> = calls
                .iter()
                .map(|call| {
                    let mut text =
                        format!("{{\"name\": {}, \"arguments\": {}", json!(call.name), call.json());
                    if !call.id.is_empty() {
                        let _ = write!(text, ", \"id\": {}", json!(call.id));
                    }
                    text.push('}');
                    text
                })
                .collect();
            format!("[TOOL_CALLS][{}]", array.join(", "))
        }
        Format::Llama3 => format!(
            "<|python_tag|>{}",
            each(
                &|_, call| format!(
                    "{{\"name\": {}, \"parameters\": {}}}",
                    json!(call.name),
                    call.json()
                ),
                "; "
            )
        ),
        Format::Harmony => each(
            &|_, call| {
                format!(
                    "<|start|>assistant<|channel|>commentary to=functions.{} <|constrain|>json<|message|>{}<|call|>",
                    call.name,
                    call.arguments.trim()
                )
            },
            "",
        ),
        Format::Hermes | Format::Auto => each(&|_, call| envelope(call, "arguments"), "\n"),
    }
}

/// A tool's result, as the model's template shows it.
pub(crate) fn result_text(format: Format, id: &str, name: &str, content: &str) -> String {
    match format {
        Format::Kimi => format!("## Return of {id}\n{content}"),
        Format::DeepseekV3 | Format::DeepseekV31 => {
            format!("<｜tool▁output▁begin｜>{content}<｜tool▁output▁end｜>")
        }
        Format::Mistral => {
            format!("[TOOL_RESULTS]{}[/TOOL_RESULTS]", json!({"call_id": id, "content": content}))
        }
        Format::Llama3 => content.to_owned(),
        Format::Harmony => format!(
            "<|start|>functions.{name} to=assistant<|channel|>commentary<|message|>{content}<|end|>"
        ),
        Format::MinimaxM2 => format!("<response>{content}</response>"),
        Format::Hermes | Format::Qwen3Coder | Format::Glm45 | Format::Auto => {
            format!("<tool_response>\n{content}\n</tool_response>")
        }
    }
}

/// A call as one `<tool_call>` JSON object.
fn envelope(call: &Call, arguments_key: &str) -> String {
    format!(
        "<tool_call>\n{{\"name\": {}, \"{arguments_key}\": {}}}\n</tool_call>",
        json!(call.name),
        call.json()
    )
}

/// Kimi takes the name from the id: a model's own id that names this call's tool is kept,
/// any other becomes `functions.NAME:INDEX`.
fn kimi_id(at: usize, call: &Call) -> String {
    let own = call.id.strip_prefix("functions.").unwrap_or(&call.id);
    match own.rsplit_once(':') {
        Some((name, index)) if name == call.name && index.bytes().all(|b| b.is_ascii_digit()) => {
            call.id.clone()
        }
        _ => format!("functions.{}:{at}", call.name),
    }
}

/// A parameter value as text: a string as itself, anything else as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}
