//! `keyword_filter`: keeps the items of `items` whose `field` (default `text`, and `title`)
//! mentions any of `keywords`, ignoring case. Each kept item gains `matched`, the keywords it
//! mentions.

use serde_json::{Value, json};

use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;

pub struct KeywordFilter;

impl Tool for KeywordFilter {
    fn name(&self) -> &str {
        "keyword_filter"
    }

    fn description(&self) -> &str {
        "Keep the items whose text mentions any of the keywords"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["items", "keywords"], "properties": {
            "items": {"type": "array", "items": {"type": "object"}},
            "keywords": {"type": "array", "items": {"type": "string"}},
            "fields": {"type": "array", "items": {"type": "string"}, "default": ["title", "text"]}}})
    }

    fn call(&self, args: Value, _context: StepContext) -> ActionFuture {
        Box::pin(async move {
            let items = args
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| ActionError::permanent("keyword_filter needs `items`, a list"))?;
            let keywords: Vec<String> = args
                .get("keywords")
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).map(str::to_lowercase).collect())
                .filter(|list: &Vec<String>| !list.is_empty())
                .ok_or_else(|| ActionError::permanent("keyword_filter needs `keywords`"))?;
            let fields: Vec<String> = match args.get("fields").and_then(Value::as_array) {
                Some(list) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                None => vec!["title".to_owned(), "text".to_owned()],
            };
            let kept = items
                .iter()
                .filter_map(|item| {
                    let haystack = fields
                        .iter()
                        .filter_map(|field| item.get(field).and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(" ")
                        .to_lowercase();
                    let matched: Vec<&String> =
                        keywords.iter().filter(|word| haystack.contains(word.as_str())).collect();
                    if matched.is_empty() {
                        return None;
                    }
                    let mut item = item.clone();
                    if let Some(object) = item.as_object_mut() {
                        object.insert("matched".to_owned(), json!(matched));
                    }
                    Some(item)
                })
                .collect();
            Ok(Value::Array(kept))
        })
    }
}
