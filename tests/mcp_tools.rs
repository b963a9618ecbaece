//! MCP servers as an agent's tools, end to end: the `taskflow` binary, a model played by a real
//! HTTP server on loopback (OpenAI-compatible, structured tool calls, every request kept), and
//! the MCP server of `fixtures/mcp/server.py`, written with the official Python SDK, over stdio
//! (a child of taskflow) and over streamable HTTP (on a loopback port, with a bearer token). The
//! server logs each call with the idempotency key taskflow put in its `_meta`, so a test can
//! count what really ran. What no SDK server does (tools a model could not tell apart, replies
//! too long or not UTF-8, a crash in a call, a death at start) comes from
//! `fixtures/mcp/raw_server.py`, which writes its JSON-RPC by hand.
//!
//! What is checked: the model sees `NAME__TOOL` with the server's description and schema, only
//! the tools `enabled_tools` / `disabled_tools` let through; a result, an `isError` result and
//! a call past `tool_timeout_sec` are each the model's to read; the server's stderr goes to
//! `mcp-logs/NAME.log` beside the database and not to the terminal; no server outlives its run;
//! a run killed with SIGKILL between two calls and resumed runs each finished call once and
//! repeats the one in flight with the same key; a server that cannot be used fails the flow
//! before any model call; the bearer token is nowhere in the database or the output, and a
//! stdio server does not inherit `TASKFLOW_DB` when it names a database server;
//! `taskflow mcp list` shows every server, its tools, and the errors of those that fail. Tools
//! a model would see under one name, and names of tools a server does not have (in the approval
//! policy, `enabled_tools` or `disabled_tools`), are refused before any model call; a reply
//! that cannot be read is the call's error at once and the server goes on; a result is cut at
//! 64 KiB; a server that dies is named with how it ended and its log, by an absolute path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::method};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/python.rs"]
mod python;

const ANSWER: &str = "Every call is done.";
const TOKEN: &str = "fixture-bearer-7f3a9c1e";

/// Plays the model: turn N (the assistant turns in the conversation, plus one) makes the calls
/// of `turns[N - 1]`, as structured tool calls; after the last, it answers.
#[derive(Clone)]
struct Model {
    turns: Arc<Vec<Vec<(&'static str, Value)>>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Respond for Model {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let turn = body["messages"]
            .as_array()
            .map_or(0, |messages| messages.iter().filter(|m| m["role"] == "assistant").count())
            + 1;
        self.requests.lock().unwrap().push(body);
        let mut sse = String::new();
        let finish = match self.turns.get(turn - 1) {
            Some(calls) => {
                for (index, (name, arguments)) in calls.iter().enumerate() {
                    let call = json!({"index": index, "id": format!("call_{turn}_{index}"),
                        "type": "function",
                        "function": {"name": name, "arguments": arguments.to_string()}});
                    let chunk = json!({"choices": [{"index": 0,
                        "delta": {"tool_calls": [call]}, "finish_reason": null}]});
                    sse.push_str(&format!("data: {chunk}\n\n"));
                }
                "tool_calls"
            }
            None => {
                let chunk = json!({"choices": [{"index": 0, "delta": {"content": ANSWER},
                    "finish_reason": null}]});
                sse.push_str(&format!("data: {chunk}\n\n"));
                "stop"
            }
        };
        let end = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]});
        sse.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
        ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
    }
}

impl Model {
    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    /// The tool results the model was last sent, in order.
    fn tool_results(&self) -> Vec<String> {
        let last = self.requests().last().cloned().unwrap_or(Value::Null);
        let messages = last["messages"].as_array().cloned().unwrap_or_default();
        messages
            .iter()
            .filter(|message| message["role"] == "tool")
            .map(|message| message["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The tools offered in the first request, by name.
    fn offered(&self) -> Vec<Value> {
        let first = self.requests().first().cloned().unwrap_or(Value::Null);
        first["tools"].as_array().cloned().unwrap_or_default()
    }
}

/// A test's folder: the database, the config file, the server's call log and gate folder,
/// and the model.
struct Setup {
    dir: tempfile::TempDir,
    model: Model,
    base: String,
    _server: MockServer,
}

async fn setup(turns: Vec<Vec<(&'static str, Value)>>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("gates")).unwrap();
    std::fs::create_dir(dir.path().join("workspace")).unwrap();
    let server = MockServer::start().await;
    let model = Model { turns: Arc::new(turns), requests: Arc::default() };
    Mock::given(method("POST")).respond_with(model.clone()).mount(&server).await;
    let base = format!("{}/v1", server.uri());
    Setup { dir, model, base, _server: server }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The fixture server's arguments (after the script): its log and gates.
    fn server_args(&self) -> Vec<String> {
        let script = python::repository("fixtures/mcp/server.py");
        let log = self.path("calls.log");
        let gates = self.path("gates");
        [
            script.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--gates",
            gates.to_str().unwrap(),
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect()
    }

    /// `[mcp_servers.NAME]` starting the fixture server over stdio, with `extra` keys.
    fn stdio_table(&self, name: &str, extra: &str) -> String {
        format!(
            "[mcp_servers.{name}]\ncommand = {:?}\nargs = {:?}\nstartup_timeout_sec = 120\n{extra}\n",
            python::python().display().to_string(),
            self.server_args(),
        )
    }

    /// `[mcp_servers.NAME]` starting `fixtures/mcp/raw_server.py` over stdio with `args`, and
    /// `extra` keys.
    fn raw_table(&self, name: &str, args: &[&str], extra: &str) -> String {
        let script = python::repository("fixtures/mcp/raw_server.py");
        let mut all = vec![script.display().to_string()];
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        format!(
            "[mcp_servers.{name}]\ncommand = {:?}\nargs = {all:?}\nstartup_timeout_sec = 60\n{extra}\n",
            python::python().display().to_string(),
        )
    }

    fn configure(&self, tables: &[String]) {
        std::fs::write(self.path("config.toml"), tables.concat()).unwrap();
    }

    fn taskflow(&self) -> Command {
        self.taskflow_on(&self.path("flows.db"))
    }

    /// `taskflow --db DB`, started in the test's folder (where a relative `db` is).
    fn taskflow_on(&self, db: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
        command.current_dir(self.dir.path()).arg("--db").arg(db);
        command.env("TASKFLOW_CONFIG", self.path("config.toml"));
        command.env_remove("TASKFLOW_CONNECT_TIMEOUT_MS").env_remove("FX_TOKEN");
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    }

    /// `taskflow agent --mcp SERVERS` on the model, with no built-in tool but `list_dir`.
    fn agent(&self, servers: &str) -> Command {
        self.agent_with(self.taskflow(), servers, &[])
    }

    /// [`agent`](Self::agent) as `taskflow` runs, with `options` of `taskflow agent`.
    fn agent_with(&self, mut command: Command, servers: &str, options: &[&str]) -> Command {
        command.args(["agent", "--provider", "vllm", "--base-url", &self.base, "--model", "m"]);
        command.args(options);
        command.arg("--workspace").arg(self.path("workspace"));
        command.args(["--tools", "list_dir", "--mcp", servers, "Count, please."]);
        command
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        cli::run(self.taskflow(), args)
    }

    fn inspect(&self, id: &str) -> Value {
        cli::inspect(self.taskflow(), id)
    }

    fn flow_id(&self) -> String {
        cli::only_flow_id(self.taskflow())
    }

    /// What the server logged, one event per line.
    fn events(&self) -> Vec<Value> {
        let log = std::fs::read_to_string(self.path("calls.log")).unwrap_or_default();
        log.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// The `event` events of calls of `label`.
    fn calls(&self, event: &str, label: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["event"] == event && e["label"] == label).collect()
    }

    /// The pids of the servers started so far.
    fn server_pids(&self) -> Vec<i32> {
        let started = self.events().into_iter().filter(|e| e["event"] == "started");
        started.map(|e| e["pid"].as_i64().unwrap() as i32).collect()
    }

    /// Waits until `done` holds, or fails saying `what`.
    fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(120), "waited in vain for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn alive(pid: i32) -> bool {
    // A zombie has exited; only a live process counts.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat.rsplit(')').next().unwrap_or_default().trim_start().starts_with('Z')
    })
}

/// The fixture server over streamable HTTP on a free loopback port, requiring [`TOKEN`];
/// killed when dropped.
struct HttpServer {
    child: Child,
    url: String,
}

impl HttpServer {
    fn start(setup: &Setup) -> HttpServer {
        let port_file = setup.path("port");
        let mut args = setup.server_args();
        args.extend(
            ["http", "--port-file", port_file.to_str().unwrap(), "--token", TOKEN]
                .map(String::from),
        );
        let log = std::fs::File::create(setup.path("http-server.stderr")).unwrap();
        let child = Command::new(python::python())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        setup.wait_for("the HTTP server's port", || port_file.exists());
        let port = std::fs::read_to_string(&port_file).unwrap();
        HttpServer { child, url: format!("http://127.0.0.1:{}/mcp", port.trim()) }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_a_stdio_servers_tools_and_reads_every_result_failures_included() {
    let setup = setup(vec![
        vec![("fx__echo", json!({"text": "hello"})), ("fx__count", json!({"label": "one"}))],
        vec![
            ("fx__fail", json!({"message": "the disk is full"})),
            ("fx__slow", json!({"seconds": 30})),
        ],
    ])
    .await;
    setup
        .configure(&[setup.stdio_table("fx", "disabled_tools = [\"echo\"]\ntool_timeout_sec = 2")]);
    let (code, stdout, stderr) = cli::outcome(setup.agent("fx").output().unwrap());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains(ANSWER), "{stdout}");

    // The model is offered the server's tools as fx__TOOL, with the server's words and
    // schemas, except the disabled one.
    let offered = setup.model.offered();
    let names: Vec<&str> = offered.iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert_eq!(names, ["fx__count", "fx__fail", "fx__slow", "list_dir"]);
    let count = &offered[0]["function"];
    assert_eq!(
        count["description"],
        "Counts a call of this label; with gate, ends once that gate opens."
    );
    assert_eq!(count["parameters"]["properties"]["label"]["type"], "string");
    assert_eq!(count["parameters"]["required"], json!(["label"]));

    // Each call's result is the model's to read: a disabled tool, a result, an isError
    // result, a call past tool_timeout_sec.
    let results = setup.model.tool_results();
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(results[0].starts_with("error: there is no tool `fx__echo`"), "{results:?}");
    assert_eq!(results[1], "counted one");
    assert_eq!(results[2], "error: Error executing tool fail: the disk is full");
    assert_eq!(
        results[3],
        "error: the MCP server `fx` did not answer within 2 s (tool_timeout_sec)"
    );

    // The call carried its step's idempotency key.
    let id = setup.flow_id();
    let done = setup.calls("done", "one");
    assert_eq!(done.len(), 1);
    let key = done[0]["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("{id}:")), "{key}");

    // The server's stderr is in its log, not on the terminal; and it did not outlive the run.
    let log = std::fs::read_to_string(setup.path("mcp-logs/fx.log")).unwrap();
    assert!(log.contains(&format!("for flow {id}")) && log.contains("fixture server"), "{log}");
    assert!(!stderr.contains("fixture server"), "{stderr}");
    for pid in setup.server_pids() {
        assert!(!alive(pid), "the server {pid} outlived its run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_agent_step_uses_the_servers_it_names() {
    let setup = setup(vec![vec![("fx__count", json!({"label": "from a pipeline"}))]]).await;
    setup.configure(&[setup.stdio_table("fx", "")]);
    let pipeline = setup.path("pipeline.toml");
    let with = format!(
        "{{ prompt = \"Count.\", provider = \"vllm\", model = \"m\", base_url = \"{}\", tools = [\"list_dir\"], mcp = [\"fx\"] }}",
        setup.base
    );
    std::fs::write(
        &pipeline,
        format!(
            "name = \"counting\"\n\n[[steps]]\nid = \"ask\"\naction = \"agent\"\nwith = {with}\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = setup.run(&["--json", "run", pipeline.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(setup.calls("done", "from a pipeline").len(), 1);
    assert_eq!(setup.model.tool_results(), ["counted from a pipeline"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_between_calls_resumes_without_repeating_a_finished_call() {
    let setup = setup(vec![
        vec![("fx__count", json!({"label": "first"}))],
        vec![("fx__count", json!({"label": "second", "gate": "second"}))],
        vec![("fx__count", json!({"label": "third"}))],
    ])
    .await;
    setup.configure(&[setup.stdio_table("fx", "")]);
    let mut agent = setup.agent("fx").spawn().unwrap();
    setup.wait_for("the second call to start", || !setup.calls("start", "second").is_empty());
    agent.kill().unwrap();
    agent.wait().unwrap();
    // The server dies with taskflow: no orphan keeps working on the call.
    let first_server = setup.server_pids()[0];
    setup.wait_for("the server to die with taskflow", || !alive(first_server));

    std::fs::write(setup.path("gates/second"), "").unwrap();
    let id = setup.flow_id();
    let (code, stdout, stderr) = setup.run(&["flows", "resume", &id]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(setup.inspect(&id)["flow"]["status"], "succeeded");

    // Every finished call ran once; the one in flight ran again with the same key.
    for label in ["first", "second", "third"] {
        assert_eq!(setup.calls("done", label).len(), 1, "{label}: {:?}", setup.events());
    }
    let second = setup.calls("start", "second");
    assert_eq!(second.len(), 2, "{:?}", setup.events());
    assert_eq!(second[0]["key"], second[1]["key"]);
    let keys: Vec<Value> = ["first", "second", "third"]
        .iter()
        .map(|label| setup.calls("done", label)[0]["key"].clone())
        .collect();
    assert!(keys[0] != keys[1] && keys[1] != keys[2], "{keys:?}");
    assert_eq!(setup.model.tool_results(), ["counted first", "counted second", "counted third"]);
    for pid in setup.server_pids() {
        assert!(!alive(pid), "the server {pid} outlived its run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_server_gets_the_bearer_token_which_is_stored_and_shown_nowhere() {
    let setup = setup(vec![vec![("web__count", json!({"label": "over http"}))]]).await;
    let server = HttpServer::start(&setup);
    setup.configure(&[format!(
        "[mcp_servers.web]\nurl = \"{}\"\nbearer_token_env_var = \"FX_TOKEN\"\nstartup_timeout_sec = 60\n",
        server.url
    )]);
    let (code, stdout, stderr) =
        cli::outcome(setup.agent("web").env("FX_TOKEN", TOKEN).output().unwrap());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(setup.model.tool_results(), ["counted over http"]);
    let key = setup.calls("done", "over http")[0]["key"].as_str().unwrap().to_owned();
    let id = setup.flow_id();
    assert!(key.starts_with(&format!("{id}:")), "{key}");
    assert!(setup.events().iter().all(|e| e["event"] != "refused"), "{:?}", setup.events());

    // The flow stores the server's name only, and the token is in no file or output.
    let inspect = setup.inspect(&id);
    let (_, listed, _) = setup.run(&["--json", "mcp", "list"]);
    let mut texts = vec![stdout, stderr, inspect.to_string(), listed];
    assert!(texts[2].contains("\"mcp\":[\"web\"]"), "{}", texts[2]);
    for file in ["flows.db", "flows.db-wal"] {
        let bytes = std::fs::read(setup.path(file)).unwrap_or_default();
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    for text in &texts {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
}

/// A run whose server cannot be used as `agent` names it: the reason (holding `expected`)
/// fails the flow before any model call, with nothing begun; the error says what to do, and no
/// hint says otherwise (more turns would not help).
fn fails_before_the_model(setup: &Setup, agent: Command, expected: &str) {
    let (code, stdout, stderr) = cli::outcome({ agent }.output().unwrap());
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains(expected), "{stderr:?} lacks {expected:?}");
    assert!(!stderr.contains("hint:"), "{stderr}");
    let id = setup.flow_id();
    let inspect = setup.inspect(&id);
    assert_eq!(inspect["flow"]["status"], "failed");
    assert!(inspect["flow"]["error"].as_str().unwrap().contains(expected), "{inspect}");
    assert_eq!(inspect["steps"], json!([]), "{inspect}");
    assert!(setup.model.requests().is_empty(), "the model was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_be_used_fails_the_run_before_any_model_call() {
    for (table, expected) in [
        (
            "[mcp_servers.fx]\ncommand = \"/nonexistent/mcp-server\"\n",
            "MCP server `fx` cannot start `/nonexistent/mcp-server`",
        ),
        (
            "[mcp_servers.fx]\ncommand = \"sleep\"\nargs = [\"30\"]\nstartup_timeout_sec = 1\n",
            "MCP server `fx` did not answer `initialize` within 1 s (startup_timeout_sec)",
        ),
        (
            "[mcp_servers.fx]\nurl = \"http://127.0.0.1:9/mcp\"\nbearer_token_env_var = \"FX_TOKEN\"\n",
            "MCP server `fx` needs its bearer token in the environment variable `FX_TOKEN`",
        ),
    ] {
        let setup = setup(vec![vec![("fx__count", json!({"label": "never"}))]]).await;
        setup.configure(&[table.to_owned()]);
        fails_before_the_model(&setup, setup.agent("fx"), expected);
    }

    // A server the config file does not name is refused before a flow is made.
    let setup = setup(vec![]).await;
    setup.configure(&[setup.stdio_table("fx", "")]);
    let (code, _, stderr) = cli::outcome(setup.agent("fx,nope").output().unwrap());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("there is no MCP server `nope`") && stderr.contains("configured: fx"),
        "{stderr}"
    );
    assert_eq!(setup.flow_id(), "");
}

/// A server that exits as it starts fails the run with how it ended and its log, named by its
/// absolute path although the database is named by a relative one (as `mcp list` names it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_exits_at_start_is_named_with_its_status_and_its_log_by_its_absolute_path() {
    let setup = setup(vec![vec![("fx__count", json!({"label": "never"}))]]).await;
    setup.configure(&[setup.raw_table("fx", &["--exit-at-start", "3"], "")]);
    let log = setup.path("mcp-logs/fx.log");
    let stopped = format!(
        "MCP server `fx` stopped before it answered `initialize`: it exited with status 3 (its \
         stderr is in {})",
        log.display()
    );
    let relative = Path::new("flows.db");
    fails_before_the_model(
        &setup,
        setup.agent_with(setup.taskflow_on(relative), "fx", &[]),
        &stopped,
    );
    assert!(std::fs::read_to_string(&log).unwrap().contains("raw server"));
    let (code, stdout, _) = cli::run(setup.taskflow_on(relative), &["--json", "mcp", "list"]);
    assert_eq!(code, 1, "{stdout}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed["servers"][0]["log"], log.display().to_string());
    assert_eq!(listed["servers"][0]["error"], stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_list_shows_every_server_and_its_tools_and_the_errors_of_those_that_fail() {
    let setup = setup(vec![]).await;
    let server = HttpServer::start(&setup);
    setup.configure(&[
        setup.stdio_table(
            "fx",
            "enabled_tools = [\"count\", \"echo\"]\nenv = { FIXTURE_SECRET = \"do-not-show\" }",
        ),
        "[mcp_servers.broken]\ncommand = \"/nonexistent/mcp-server\"\n".to_owned(),
        format!(
            "[mcp_servers.web]\nurl = \"{}\"\nbearer_token_env_var = \"FX_TOKEN\"\n",
            server.url
        ),
        "[mcp_servers.off]\ncommand = \"true\"\nenabled = false\n".to_owned(),
    ]);
    let output = setup.taskflow().args(["--json", "mcp", "list"]).env("FX_TOKEN", TOKEN).output();
    let (code, stdout, stderr) = cli::outcome(output.unwrap());
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("1 of 4 MCP servers cannot be used: broken"), "{stderr}");
    assert!(!stdout.contains("do-not-show") && !stdout.contains(TOKEN), "{stdout}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    let servers = listed["servers"].as_array().unwrap();
    let names: Vec<&str> = servers.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["broken", "fx", "off", "web"]);
    assert!(servers[0]["error"].as_str().unwrap().contains("cannot start"), "{}", servers[0]);
    let tools = |server: &Value| -> Vec<(String, bool)> {
        server["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_owned(), t["offered"] == true))
            .collect()
    };
    let fx = &servers[1];
    assert_eq!((fx["transport"].as_str(), fx["error"].is_null()), (Some("stdio"), true));
    assert_eq!(fx["env"], json!(["FIXTURE_SECRET"]));
    assert_eq!(
        tools(fx),
        [
            ("fx__echo".into(), true),
            ("fx__count".into(), true),
            ("fx__fail".into(), false),
            ("fx__slow".into(), false)
        ]
    );
    assert_eq!(fx["tools"][0]["input_schema"]["properties"]["text"]["type"], "string");
    assert_eq!(
        (servers[2]["enabled"].as_bool(), servers[2]["tools"].as_array().map(Vec::len)),
        (Some(false), Some(0))
    );
    let web = &servers[3];
    assert_eq!((web["transport"].as_str(), web["error"].is_null()), (Some("http"), true));
    assert_eq!(tools(web).len(), 4);
    assert!(setup.events().iter().all(|e| e["event"] != "refused"));

    // The table says the same to a person.
    let output = setup.taskflow().args(["mcp", "list", "fx", "broken"]).output().unwrap();
    let (code, stdout, _) = cli::outcome(output);
    assert_eq!(code, 1);
    assert!(stdout.contains("fx  stdio  ") && stdout.contains("fx__slow   no"), "{stdout}");
    assert!(stdout.contains("error: MCP server `broken` cannot start"), "{stdout}");
}

/// A stdio MCP server does not inherit `TASKFLOW_DB` when it names a database server (its
/// password would reach the server's process); a file's path it still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_server_does_not_inherit_a_database_servers_url() {
    let setup = setup(vec![]).await;
    let seen = setup.path("seen-db.txt");
    // The server's command writes what it was given, then runs the fixture server.
    let mut args = vec![
        "-c".to_owned(),
        format!("printenv TASKFLOW_DB > {:?}; exec \"$0\" \"$@\"", seen.display().to_string()),
        python::python().display().to_string(),
    ];
    args.extend(setup.server_args());
    setup.configure(&[format!(
        "[mcp_servers.fx]\ncommand = \"sh\"\nargs = {args:?}\nstartup_timeout_sec = 120\n"
    )]);
    let file = setup.path("flows.db").display().to_string();
    for (db, inherited) in
        [("postgres://taskflow:pg-s3cret@127.0.0.1:1/none", ""), (file.as_str(), file.as_str())]
    {
        let output =
            setup.taskflow().args(["--json", "mcp", "list"]).env("TASKFLOW_DB", db).output();
        let (code, stdout, stderr) = cli::outcome(output.unwrap());
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        assert!(!stdout.contains("pg-s3cret") && !stderr.contains("pg-s3cret"), "{stdout}{stderr}");
        let seen = std::fs::read_to_string(&seen).unwrap();
        assert_eq!(seen.trim_end(), inherited, "TASKFLOW_DB={db}");
    }
}

/// Two tools a model would see under one name: neither could be called for sure, so the run is
/// refused before any model call, naming both; `mcp list` says the same; leaving one out
/// mends it. A server name that would let two servers' tools share a name is refused in the
/// config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_a_model_would_see_under_one_name_are_refused_naming_both() {
    let setup = setup(vec![vec![("a__dup_x", json!({}))]]).await;
    let clash = "MCP server `a` offers its tools `dup.x` and `dup_x` both as `a__dup_x`";
    setup.configure(&[setup.raw_table("a", &["--tool", "dup.x", "--tool", "dup_x"], "")]);
    fails_before_the_model(&setup, setup.agent("a"), clash);
    let (code, stdout, _) = setup.run(&["mcp", "list", "a"]);
    assert_eq!(code, 1);
    assert!(stdout.contains(&format!("error: {clash}")), "{stdout}");

    setup.configure(&[setup.raw_table(
        "a",
        &["--tool", "dup.x", "--tool", "dup_x"],
        "disabled_tools = [\"dup.x\"]",
    )]);
    let id = setup.flow_id();
    let (code, stdout, stderr) = setup.run(&["flows", "resume", &id]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(setup.model.tool_results(), ["called dup_x"]);

    // `a__b`'s tool `c` and `a`'s tool `b__c` would both be `a__b__c`.
    setup.configure(&[setup.raw_table("a__b", &["--tool", "c"], "")]);
    let (code, _, stderr) = setup.run(&["mcp", "list"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("[mcp_servers.a__b]: a server's name is")
            && stderr.contains("without `__` and not ending in `_`")
            && stderr.contains("two servers' tools must not share a name"),
        "{stderr}"
    );
}

/// A policy name or an `enabled_tools` / `disabled_tools` name that is no tool of the server
/// would leave the tool meant unguarded (or offered, or hidden): the run is refused before any
/// model call, naming the server's tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_tools_a_server_does_not_have_are_refused_before_any_model_call() {
    let server_tools = "(its tools: echo, count, fail, slow)";
    for (options, extra, expected) in [
        (
            &["--ask", "fx__cuont"][..],
            "",
            "the approval policy names `fx__cuont`, which is no tool of the MCP server `fx` (its \
             tools: fx__echo, fx__count, fx__fail, fx__slow)"
                .to_owned(),
        ),
        (
            &["--deny", "fx__fial"][..],
            "",
            "the approval policy names `fx__fial`, which is no tool of the MCP server `fx`"
                .to_owned(),
        ),
        (
            &[][..],
            "enabled_tools = [\"count\", \"nosuch\"]",
            format!(
                "MCP server `fx` has no tool `nosuch`, which `enabled_tools` of [mcp_servers.fx] \
                 names {server_tools}"
            ),
        ),
        (
            &[][..],
            "disabled_tools = [\"eco\"]",
            format!(
                "MCP server `fx` has no tool `eco`, which `disabled_tools` of [mcp_servers.fx] \
                 names {server_tools}"
            ),
        ),
    ] {
        let setup = setup(vec![vec![("fx__count", json!({"label": "unguarded"}))]]).await;
        setup.configure(&[setup.stdio_table("fx", extra)]);
        fails_before_the_model(
            &setup,
            setup.agent_with(setup.taskflow(), "fx", options),
            &expected,
        );
        assert!(setup.calls("start", "unguarded").is_empty());
    }

    // A pipeline's agent step: its child run is refused the same way, and the step with it.
    let setup = setup(vec![vec![("fx__count", json!({"label": "unguarded"}))]]).await;
    setup.configure(&[setup.stdio_table("fx", "")]);
    let pipeline = setup.path("pipeline.toml");
    let with = format!(
        "{{ prompt = \"Count.\", provider = \"vllm\", model = \"m\", base_url = \"{}\", tools = [\"list_dir\"], mcp = [\"fx\"], ask = [\"fx__cuont\"] }}",
        setup.base
    );
    std::fs::write(
        &pipeline,
        format!(
            "name = \"guarded\"\n\n[[steps]]\nid = \"ask\"\naction = \"agent\"\nwith = {with}\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = setup.run(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "the approval policy names `fx__cuont`, which is no tool of the MCP server `fx`"
        ),
        "{stderr}"
    );
    assert!(setup.model.requests().is_empty(), "the model was asked");
    assert!(setup.calls("start", "unguarded").is_empty());
}

/// A reply line past 16 MiB, or not UTF-8, is the call's error as soon as it is read (not a
/// timeout), and the server answers the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_too_long_or_not_utf8_is_the_calls_error_at_once_and_the_server_goes_on() {
    let setup = setup(vec![vec![
        ("raw__huge", json!({"mib": 17})),
        ("raw__not_utf8", json!({})),
        ("raw__echo", json!({"text": "still here"})),
    ]])
    .await;
    setup.configure(&[setup.raw_table("raw", &[], "tool_timeout_sec = 60")]);
    let started = Instant::now();
    let (code, stdout, stderr) = cli::outcome(setup.agent("raw").output().unwrap());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        setup.model.tool_results(),
        [
            "error: the MCP server `raw` sent a reply larger than 16 MiB",
            "error: the MCP server `raw` sent a reply that is not UTF-8",
            "still here",
        ]
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}

/// What the model reads of a result, and what the journal keeps, is cut at 64 KiB as a built-in
/// tool's output is, saying how much is not shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_past_64_kib_is_cut_for_the_model_and_the_journal() {
    let setup = setup(vec![vec![("raw__huge", json!({"mib": 1}))]]).await;
    setup.configure(&[setup.raw_table("raw", &[], "")]);
    let (code, stdout, stderr) = cli::outcome(setup.agent("raw").output().unwrap());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let cut =
        format!("{}\n[… {} more bytes not shown]", "A".repeat(64 * 1024), 1024 * 1024 - 64 * 1024);
    assert_eq!(setup.model.tool_results(), [cut.as_str()]);
    let inspect = setup.inspect(&setup.flow_id());
    let steps = inspect["steps"].as_array().unwrap();
    let tool = steps.iter().find(|step| step["kind"] == "tool").unwrap();
    assert_eq!(tool["output"]["content"], cut);
}

/// A stdio server that exits during a call: that call and every later one say how it ended
/// and where its stderr is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_in_a_call_is_named_with_its_exit_status_and_its_log() {
    let setup = setup(vec![
        vec![("raw__crash", json!({}))],
        vec![("raw__echo", json!({"text": "anyone?"}))],
    ])
    .await;
    setup.configure(&[setup.raw_table("raw", &[], "")]);
    let (code, stdout, stderr) = cli::outcome(setup.agent("raw").output().unwrap());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let log = setup.path("mcp-logs/raw.log");
    let stopped = format!(
        "error: the MCP server `raw` stopped: it exited with status 7; its stderr is in {}",
        log.display()
    );
    assert_eq!(setup.model.tool_results(), [stopped.clone(), stopped]);
    assert!(std::fs::read_to_string(&log).unwrap().contains("raw server"));
}
