//! Templates that read earlier outputs: `{{steps.ID.output}}` inside the string values of a
//! step's `with`. A string that is exactly one template becomes the output itself (an array
//! stays an array); a template inside longer text is replaced by the output as text (a string
//! as is, anything else as compact JSON). `\{{` is a plain `{{` (a Go template's `{{.Id}}`
//! written `\{{.Id}}`), read as no template.

use serde_json::Value;

/// One `{{…}}` found in a string: where it is (byte offsets within that string) and what it
/// reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub start: usize,
    pub end: usize,
    /// The step whose output it reads, or the error that makes it unreadable.
    pub step: Result<String, String>,
}

/// What a string writes for a plain `{{`.
const ESCAPED_OPEN: &str = "\\{{";

/// The templates in `text`, in order. An opening `{{` without a closing `}}` is reported too.
pub fn references(text: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|at| at + from) {
        if text[..open].ends_with('\\') {
            from = open + 2;
            continue;
        }
        let Some(close) = text[open + 2..].find("}}").map(|at| at + open + 2) else {
            found.push(Reference {
                start: open,
                end: text.len(),
                step: Err("`{{` without a closing `}}`".to_owned()),
            });
            break;
        };
        let inner = text[open + 2..close].trim();
        found.push(Reference { start: open, end: close + 2, step: parse(inner) });
        from = close + 2;
    }
    found
}

fn parse(inner: &str) -> Result<String, String> {
    let parts: Vec<&str> = inner.split('.').collect();
    match parts.as_slice() {
        ["steps", id, "output"] if !id.is_empty() => Ok((*id).to_owned()),
        _ => Err(format!(
            "`{{{{{inner}}}}}` is not a template: templates read `{{{{steps.ID.output}}}}`"
        )),
    }
}

/// Every step that a value's templates read, in order of appearance.
pub fn steps_read(value: &Value) -> Vec<Result<String, String>> {
    let mut found = Vec::new();
    visit_strings(value, &mut |text| {
        found.extend(references(text).into_iter().map(|reference| reference.step));
    });
    found
}

fn visit_strings(value: &Value, visit: &mut impl FnMut(&str)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().for_each(|item| visit_strings(item, visit)),
        Value::Object(map) => map.values().for_each(|item| visit_strings(item, visit)),
        _ => {}
    }
}

/// `value` with every template replaced by the output it reads; `output` finds a step's output
/// by the step's id. The spec was validated, so every template names a step `output` knows; one
/// that does not is left as written.
pub fn render<'o>(value: &Value, output: &impl Fn(&str) -> Option<&'o Value>) -> Value {
    match value {
        Value::String(text) => render_text(text, output),
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, output)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(key, v)| (key.clone(), render(v, output))).collect())
        }
        other => other.clone(),
    }
}

fn render_text<'o>(text: &str, output: &impl Fn(&str) -> Option<&'o Value>) -> Value {
    let found = references(text);
    let lookup = |reference: &Reference| match &reference.step {
        Ok(id) => output(id),
        Err(_) => None,
    };
    if let [only] = found.as_slice()
        && only.start == 0
        && only.end == text.len()
        && let Some(output) = lookup(only)
    {
        return output.clone();
    }
    let mut rendered = String::with_capacity(text.len());
    let mut from = 0;
    for reference in &found {
        rendered.push_str(&text[from..reference.start].replace(ESCAPED_OPEN, "{{"));
        match lookup(reference) {
            Some(Value::String(output)) => rendered.push_str(output),
            Some(output) => rendered.push_str(&output.to_string()),
            None => rendered.push_str(&text[reference.start..reference.end]),
        }
        from = reference.end;
    }
    rendered.push_str(&text[from..].replace(ESCAPED_OPEN, "{{"));
    Value::String(rendered)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use serde_json::json;

    fn outputs() -> HashMap<String, Value> {
        HashMap::from([
            ("scrape".to_owned(), json!(["a", "b"])),
            ("title".to_owned(), json!("Daily")),
            ("count".to_owned(), json!(2)),
        ])
    }

    fn check(with: Value, expected: Value) {
        let outputs = outputs();
        assert_eq!(render(&with, &|id| outputs.get(id)), expected, "{with}");
    }

    #[test]
    fn rendering() {
        check(json!("{{steps.scrape.output}}"), json!(["a", "b"]));
        check(json!("{{ steps.scrape.output }}"), json!(["a", "b"]));
        check(json!("# {{steps.title.output}} ({{steps.count.output}})"), json!("# Daily (2)"));
        check(json!("pages: {{steps.scrape.output}}"), json!("pages: [\"a\",\"b\"]"));
        check(json!({"n": ["{{steps.count.output}}", 3]}), json!({"n": [2, 3]}));
        check(json!("no templates"), json!("no templates"));
        check(json!("docker ps --format '\\{{.ID}}'"), json!("docker ps --format '{{.ID}}'"));
        check(
            json!("\\{{steps.title.output}} is {{steps.title.output}}"),
            json!("{{steps.title.output}} is Daily"),
        );
        check(json!("{{steps.title.output}}\\{{"), json!("Daily{{"));
        check(json!(true), json!(true));
    }

    #[test]
    fn finding_references() {
        fn check(text: &str, expected: &[Result<&str, &str>]) {
            let found: Vec<Result<String, String>> =
                references(text).into_iter().map(|reference| reference.step).collect();
            assert_eq!(found.len(), expected.len(), "{text}: {found:?}");
            for (found, expected) in found.iter().zip(expected) {
                match (found, expected) {
                    (Ok(id), Ok(expected)) => assert_eq!(id, expected),
                    (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{error}"),
                    _ => panic!("{text}: {found:?} vs {expected:?}"),
                }
            }
        }
        check("{{steps.a.output}} and {{steps.b-2.output}}", &[Ok("a"), Ok("b-2")]);
        check("{{steps.a}}", &[Err("templates read `{{steps.ID.output}}`")]);
        check("{{ env.HOME }}", &[Err("is not a template")]);
        check("open {{steps.a.output", &[Err("without a closing")]);
        check("plain", &[]);
        check("'\\{{.Id}}' {{steps.a.output}}", &[Ok("a")]);
        check("\\{{ unclosed", &[]);
    }
}
