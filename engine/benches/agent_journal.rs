//! How an agent run's journal grows, measured on a 200-turn replay run whose every turn reads a
//! different 20 KB file: the journal's bytes beside the distinct text it holds (the files read
//! and what the model wrote), beside what a journal storing each turn's whole request would
//! hold (the requests actually sent, summed), and the time from `run` on the finished run's
//! fork at its last turn to its end (the journal read and the conversation rebuilt, one more
//! turn asked).
//!
//! `cargo bench -p taskflow-engine --bench agent_journal` (`TASKFLOW_BENCH_TURNS=N` sets the
//! turns, `TASKFLOW_BENCH_RESULT_KB=N` the size of each file).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use taskflow_engine::agent::{AgentSpec, ProviderChoice, ProviderFactory};
use taskflow_engine::{Actions, Engine, EngineOptions, FlowStatus, StepKind};
use taskflow_providers::{
    ChatRequest, ChatResponse, ChatStream, Provider, ProviderError, ReplayProvider, ReplayScript,
};
use taskflow_store_sqlite::OpenOptions;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Words drawn from a fixed generator: text that is distinct from file to file.
fn text_of(seed: u64, bytes: usize) -> String {
    const WORDS: [&str; 16] = [
        "river", "lantern", "copper", "meadow", "signal", "harbor", "ember", "quartz", "willow",
        "canyon", "ledger", "orbit", "thistle", "granite", "falcon", "velvet",
    ];
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut text = String::with_capacity(bytes + 16);
    while text.len() < bytes {
        state =
            state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        text.push_str(WORDS[(state >> 60) as usize]);
        text.push_str(if (state >> 20).is_multiple_of(11) { ".\n" } else { " " });
    }
    text.truncate(bytes);
    text
}

/// A provider that replays the script and sums the JSON size of every request it is sent.
#[derive(Debug)]
struct Measuring {
    replay: ReplayProvider,
    request_bytes: Arc<AtomicU64>,
}

impl Measuring {
    fn count(&self, request: &ChatRequest) {
        let bytes = serde_json::to_vec(request).map_or(0, |json| json.len() as u64);
        self.request_bytes.fetch_add(bytes, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Provider for Measuring {
    fn name(&self) -> &str {
        "measuring"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.count(request);
        self.replay.complete(request).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.count(request);
        self.replay.stream(request).await
    }
}

/// The replay script, and how many bytes of text the model writes in it.
fn script(turns: usize) -> (String, u64) {
    let mut script = String::from("format = \"kimi\"\n");
    let mut written = 0;
    for turn in 1..=turns {
        let text = format!(
            "Reading part {turn}.<|tool_calls_section_begin|><|tool_call_begin|>\
             functions.read_file:{turn}<|tool_call_argument_begin|>{{\"path\": \"part-{turn}.txt\"}}\
             <|tool_call_end|><|tool_calls_section_end|>"
        );
        written += text.len() as u64;
        script.push_str(&format!("\n[[turn]]\ntext = \"\"\"{text}\"\"\"\n"));
    }
    let answer = "Every part is read.";
    written += answer.len() as u64;
    script.push_str(&format!("\n[[turn]]\ncontent = \"{answer}\"\n"));
    (script, written)
}

fn journal_bytes(db: &Path, flow: &str) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(length(input)), 0) + coalesce(sum(length(output)), 0) \
         FROM steps WHERE flow_id = ?1",
        [flow],
        |row| row.get::<_, i64>(0),
    )
    .unwrap() as u64
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let turns = setting("TASKFLOW_BENCH_TURNS", 200);
    let result_bytes = setting("TASKFLOW_BENCH_RESULT_KB", 20) * 1024;
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    let mut file_bytes = 0;
    for turn in 1..=turns {
        let text = text_of(turn as u64, result_bytes);
        file_bytes += text.len() as u64;
        std::fs::write(workspace.join(format!("part-{turn}.txt")), text).unwrap();
    }

    let request_bytes = Arc::new(AtomicU64::new(0));
    let (script, model_text) = script(turns);
    let replay = ReplayProvider::new(ReplayScript::parse(&script, "bench").unwrap(), "bench");
    let provider: Arc<dyn Provider> =
        Arc::new(Measuring { replay, request_bytes: Arc::clone(&request_bytes) });
    let factory: ProviderFactory = Arc::new(move |_: &ProviderChoice| Ok(Arc::clone(&provider)));
    let db = dir.path().join("flows.db");
    let store = taskflow_store_sqlite::open(&db, &OpenOptions::default()).unwrap();
    let engine =
        Engine::new(store.bind("bench").unwrap(), Actions::builtin(), EngineOptions::default())
            .with_providers(factory);
    let spec = AgentSpec {
        name: "read every part".into(),
        prompt: "Read every part of the workspace.".into(),
        system: None,
        provider: ProviderChoice { provider: "replay".into(), ..ProviderChoice::default() },
        tools: vec![],
        workspace,
        mcp: vec![],
        allowed_commands: vec![],
        max_turns: turns as u32 + 1,
        max_tokens: None,
        temperature: None,
        approvals: Default::default(),
        budget: Default::default(),
        price: None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (flow, resume_ms) = runtime.block_on(async {
        let flow = engine.create_agent(&spec, None).await.unwrap();
        let started = Instant::now();
        let flow = engine.run(&flow.id).await.unwrap();
        let run_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
        println!(
            "agent run of {turns} turns with {} KB results: {run_ms:.0} ms",
            result_bytes / 1024
        );
        // The last turn again, on a fork of everything before it.
        let steps = engine.handle().steps(&flow.id).unwrap();
        let last_turn = steps.iter().rev().find(|step| step.kind == StepKind::Llm).unwrap().seq;
        let mut times = Vec::new();
        for _ in 0..5 {
            let fork = engine.fork(&flow.id, last_turn).await.unwrap();
            let started = Instant::now();
            let resumed = engine.run(&fork.id).await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(resumed.status, FlowStatus::Succeeded);
        }
        times.sort_by(f64::total_cmp);
        (flow, times[times.len() / 2])
    });

    let journal = journal_bytes(&db, flow.id.as_str());
    let distinct = file_bytes + model_text + spec.prompt.len() as u64;
    let whole_requests = request_bytes.load(Ordering::SeqCst);
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "  distinct text          {:>9.2} MiB  (files read, model text, prompt)",
        mib(distinct)
    );
    println!(
        "  journal                {:>9.2} MiB  ({:.2}× the distinct text)",
        mib(journal),
        journal as f64 / distinct as f64
    );
    println!(
        "  whole requests, summed {:>9.2} MiB  ({:.1}× the journal: what storing each turn's request would add)",
        mib(whole_requests),
        whole_requests as f64 / journal as f64
    );
    println!(
        "  resume at the last turn  {resume_ms:.1} ms  (median of 5: journal read, conversation rebuilt, one turn)"
    );
}
