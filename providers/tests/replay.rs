//! The replay provider: turns chosen by the conversation, tagged text parsed like a live
//! model's, streaming equal to complete, clear errors for bad or exhausted scripts.

mod support;

use support::*;
use taskflow_providers::{
    ChatMessage, ChatRequest, ErrorKind, FinishReason, Provider, ReplayProvider, ReplayScript,
    Usage,
};

fn weather_replay() -> ReplayProvider {
    ReplayProvider::from_file(&fixture_path("replay/weather.toml")).unwrap()
}

fn after_first_turn() -> ChatRequest {
    let mut request = weather_request();
    request.messages.push(ChatMessage::Assistant { content: None, tool_calls: vec![] });
    request.messages.push(ChatMessage::Tool {
        tool_call_id: "functions.get_weather:0".into(),
        content: "sunny, 23".into(),
        is_error: false,
    });
    request
}

#[tokio::test]
async fn turns_follow_the_conversation() {
    let replay = weather_replay();
    let first = replay.complete(&weather_request()).await.unwrap();
    assert_eq!(first.message.content.as_deref(), Some("I'll check the weather."));
    assert_eq!(first.message.tool_calls[0].id, "functions.get_weather:0");
    assert_eq!(first.message.tool_calls[0].function.arguments, r#"{"city": "Beijing"}"#);
    assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(first.usage, Some(Usage::new(40, 25)));

    let second = replay.complete(&after_first_turn()).await.unwrap();
    assert_eq!(second.message.content.as_deref(), Some("It is sunny in Beijing, 23 °C."));
    assert_eq!(second.finish_reason, Some(FinishReason::Stop));

    // The same conversation gets the same answer again (a resumed run).
    assert_eq!(replay.complete(&weather_request()).await.unwrap(), first);
}

#[tokio::test]
async fn streaming_gives_the_complete_answer() {
    let replay = weather_replay();
    for (request, raw_text) in [(weather_request(), true), (after_first_turn(), false)] {
        let (events, streamed) = stream_all(&replay, &request).await;
        if raw_text {
            assert!(events.len() > 5, "raw text arrives in pieces ({} events)", events.len());
        }
        assert_eq!(streamed, replay.complete(&request).await.unwrap());
    }
}

#[tokio::test]
async fn a_script_that_runs_out_is_a_clear_error() {
    let mut request = after_first_turn();
    request.messages.push(ChatMessage::Assistant { content: Some("x".into()), tool_calls: vec![] });
    let error = weather_replay().complete(&request).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::ScriptExhausted);
    assert!(error.message.contains("has 2 turn(s)"), "{}", error.message);
    assert!(error.message.contains("needs turn 3"), "{}", error.message);
}

fn check_script_error(text: &str, expected: &str) {
    let error = ReplayScript::parse(text, "script.toml").unwrap_err();
    assert_eq!(error.kind, ErrorKind::Config);
    assert!(error.message.contains(expected), "{:?} lacks {expected:?}", error.message);
}

#[test]
fn bad_scripts_are_reported_with_their_position() {
    check_script_error("", "has no [[turn]]");
    check_script_error("[[turn]]\ntext = \"a\"\ncontent = \"b\"\n", "turn 1: a turn has either");
    check_script_error(
        "format = \"klingon\"\n[[turn]]\ntext = \"a\"\n",
        "unknown format `klingon`",
    );
    check_script_error("[[turn]]\ntext = \"a\"\n\n[[turn]]\nbogus = 1\n", "script.toml:5:1");
    check_script_error("[[turn]\n", "script.toml:1:");
    let script = ReplayScript::parse(
        "[[turn]]\ncontent = \"ok\"\ntool_calls = [{ id = \"c\", name = \"f\", arguments = { a = 1 } }]\n",
        "x",
    )
    .unwrap();
    assert_eq!(script.len(), 1);
}

#[tokio::test]
async fn the_replay_preset_needs_a_script() {
    let mut config = taskflow_providers::ProviderConfig::named("replay").unwrap();
    assert_eq!(config.build().unwrap_err().kind, ErrorKind::Config);
    config.script = Some(fixture_path("replay/weather.toml"));
    let provider = config.build().unwrap();
    assert_eq!(provider.name(), "replay");
}
