//! What an agent's `llm` step stores as its input. The request of a turn is the run's settings
//! (system prompt, tools, sampling) and the whole conversation so far, and the conversation is
//! already in the journal: the prompt, each earlier turn's response, each tool result. Storing
//! the request whole made the journal grow with the square of the run's length; the step
//! stores its turn, how many messages its request carried and a digest of the request as sent.
//! On resume the request is rebuilt from the journal and the spec and checked against the
//! digest, so the model is asked exactly what it was asked before, byte for byte.
//!
//! Journals written before hold the request whole (`{"turn", "request"}`); they are read as
//! they are.

use serde_json::{Value, json};
use taskflow_providers::ChatRequest;

/// The input of the `llm` step of turn `turn` that sends `request`.
pub(crate) fn turn_input(turn: u32, request: &ChatRequest) -> Value {
    json!({
        "turn": turn,
        "messages": request.messages.len(),
        "request_digest": digest(request),
    })
}

/// The request of an `llm` step: the one stored in an older journal, or `rebuilt` from this
/// journal when it is the one the step sent. An error says why it is not.
pub(crate) fn stored_request(input: &Value, rebuilt: ChatRequest) -> Result<ChatRequest, String> {
    if let Some(stored) = input.get("request") {
        return serde_json::from_value(stored.clone()).map_err(|error| error.to_string());
    }
    let messages = input["messages"].as_u64();
    if messages != Some(rebuilt.messages.len() as u64) {
        return Err(format!(
            "its request carried {} messages, the journal before it rebuilds {}",
            messages.map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string()),
            rebuilt.messages.len()
        ));
    }
    if input["request_digest"].as_str() != Some(digest(&rebuilt).as_str()) {
        return Err("the request rebuilt from the journal differs from the one sent".to_owned());
    }
    Ok(rebuilt)
}

/// FNV-1a (64 bits) of the request's JSON, in hex: enough to tell a rebuilt request from
/// another, not a security measure.
fn digest(request: &ChatRequest) -> String {
    let bytes = serde_json::to_vec(request).unwrap_or_default();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use taskflow_providers::ChatMessage;

    use super::*;

    fn request(messages: &[&str]) -> ChatRequest {
        ChatRequest {
            model: String::new(),
            system: Some("be brief".into()),
            messages: messages
                .iter()
                .map(|text| ChatMessage::User { content: (*text).to_owned() })
                .collect(),
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
        }
    }

    #[test]
    fn a_request_is_given_back_only_when_the_journal_rebuilds_it_exactly() {
        let sent = request(&["hello", "and then"]);
        let input = turn_input(2, &sent);
        assert_eq!(input["messages"], 2);
        assert_eq!(stored_request(&input, sent.clone()), Ok(sent.clone()));
        let shorter = stored_request(&input, request(&["hello"])).unwrap_err();
        assert!(shorter.contains("carried 2 messages, the journal before it rebuilds 1"));
        let other = stored_request(&input, request(&["hello", "and now"])).unwrap_err();
        assert!(other.contains("differs"), "{other}");
    }

    #[test]
    fn an_older_journals_whole_request_is_read_as_it_is() {
        let sent = request(&["hello"]);
        let input = json!({"turn": 1, "request": sent});
        assert_eq!(stored_request(&input, request(&["anything"])), Ok(sent));
    }
}
