//! What a stretch of an answer becomes for the client: content, reasoning and tool-call
//! deltas in the OpenAI shape (a call's first delta carries its id and name, later ones only
//! argument text, all keyed by the call's index).

use serde_json::{Map, Value, json};

#[derive(Debug, Default)]
pub(crate) struct Pieces {
    pub content: String,
    pub reasoning: String,
    pub calls: Vec<CallPiece>,
}

/// One tool-call delta. `id` and `name` are set on a call's first delta only.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CallPiece {
    pub index: usize,
    pub start: Option<(String, String)>,
    pub arguments: String,
}

impl Pieces {
    pub(crate) fn is_empty(&self) -> bool {
        self.content.is_empty() && self.reasoning.is_empty() && self.calls.is_empty()
    }

    pub(crate) fn start_call(&mut self, index: usize, id: String, name: String, arguments: &str) {
        self.calls.push(CallPiece {
            index,
            start: Some((id, name)),
            arguments: arguments.to_owned(),
        });
    }

    pub(crate) fn arguments(&mut self, index: usize, text: &str) {
        match self.calls.last_mut() {
            Some(last) if last.index == index => last.arguments.push_str(text),
            _ => self.calls.push(CallPiece { index, start: None, arguments: text.to_owned() }),
        }
    }

    /// The calls as streamed `tool_calls` entries.
    pub(crate) fn call_deltas(&self) -> impl Iterator<Item = Value> + '_ {
        self.calls.iter().map(|piece| {
            let mut function = Map::new();
            let mut entry = Map::new();
            entry.insert("index".into(), json!(piece.index));
            if let Some((id, name)) = &piece.start {
                entry.insert("id".into(), json!(id));
                entry.insert("type".into(), json!("function"));
                function.insert("name".into(), json!(name));
            }
            function.insert("arguments".into(), json!(piece.arguments));
            entry.insert("function".into(), Value::Object(function));
            Value::Object(entry)
        })
    }

    /// The calls folded into whole `tool_calls` entries of a message, in index order.
    pub(crate) fn whole_calls(&self) -> Vec<Value> {
        let mut calls: Vec<(usize, String, String, String)> = Vec::new();
        for piece in &self.calls {
            match &piece.start {
                Some((id, name)) => {
                    calls.push((piece.index, id.clone(), name.clone(), piece.arguments.clone()))
                }
                None => {
                    if let Some(call) = calls.iter_mut().find(|call| call.0 == piece.index) {
                        call.3.push_str(&piece.arguments);
                    }
                }
            }
        }
        calls
            .into_iter()
            .map(|(_, id, name, arguments)| {
                json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                })
            })
            .collect()
    }
}
