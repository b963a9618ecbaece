//! What the proxy costs, measured against calling the upstream directly, in one run:
//! the added latency per non-streamed request (median over interleaved rounds) and per
//! streamed chunk, the non-streamed requests per second it carries, and, side by side,
//! LiteLLM's proxy in front of the same upstream (installed into `target/bench-python` from
//! `benches/litellm-requirements.txt`; `TASKFLOW_BENCH_NO_LITELLM=1` skips it). The upstream is
//! a loopback server answering a recorded Kimi K2 answer with two tagged calls, and the proxy
//! has an upstream key (`--api-key-env`), so it does its whole job on every request: the calls
//! read, the key looked for in every answer (in a stream, in the texts its chunks join too).
//!
//! `cargo bench -p taskflow-proxy --bench proxy` (`TASKFLOW_BENCH_REQUESTS=N` sets the rounds).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use bytes::Bytes;
use futures_util::StreamExt;
use taskflow_providers::ApiKey;
use taskflow_proxy::{ProxyConfig, Server};

#[path = "../../cli/benches/support/venv.rs"]
mod venv;

const MODEL: &str = "moonshotai/Kimi-K2-Instruct";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(workspace().join("fixtures/proxy").join(name)).unwrap()
}

/// The upstream: the recorded answer, whole or as its recorded events, one write each.
fn start_upstream() -> SocketAddr {
    let whole = Bytes::from(fixture("kimi/content.json"));
    let events: Vec<Bytes> = fixture("kimi/content.sse")
        .split_inclusive("\n\n")
        .map(|event| Bytes::from(event.to_owned()))
        .collect();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = Router::new().route(
                "/v1/chat/completions",
                post(move |body: Bytes| {
                    let (whole, events) = (whole.clone(), events.clone());
                    async move {
                        let stream = body.windows(13).any(|w| w == b"\"stream\":true")
                            || body.windows(14).any(|w| w == b"\"stream\": true");
                        if stream {
                            let chunks = futures_util::stream::iter(
                                events.into_iter().map(Ok::<_, std::io::Error>),
                            );
                            Response::builder()
                                .header(header::CONTENT_TYPE, "text/event-stream")
                                .body(Body::from_stream(chunks))
                                .unwrap()
                        } else {
                            Response::builder()
                                .header(header::CONTENT_TYPE, "application/json")
                                .body(Body::from(whole))
                                .unwrap()
                        }
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            // As model servers do (uvicorn, for one), each event goes out when written.
            let listener = listener.tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    receiver.recv().unwrap()
}

fn start_proxy(upstream: SocketAddr) -> SocketAddr {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut config = ProxyConfig::new(&format!("http://{upstream}/v1")).unwrap();
            config.listen = "127.0.0.1:0".parse().unwrap();
            config.api_key = ApiKey::new("sk-bench-upstream-key");
            let server = Server::bind(config).await.unwrap();
            sender.send(server.local_addr().unwrap()).unwrap();
            server.run(std::future::pending()).await.unwrap();
        });
    });
    receiver.recv().unwrap()
}

fn body(stream: bool) -> String {
    serde_json::json!({"model": MODEL, "stream": stream,
        "messages": [{"role": "user", "content": "What's the weather in Beijing and Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]})
    .to_string()
}

/// One request; returns the time to its first body byte and to its end, and its chunks.
async fn request(client: &reqwest::Client, base: &str, body: &str) -> (Duration, Duration, usize) {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/chat/completions"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer bench")
        .body(body.to_owned())
        .send()
        .await
        .expect("the request is answered");
    assert!(response.status().is_success(), "{base}: {}", response.status());
    let mut stream = response.bytes_stream();
    let mut first = None;
    let mut events = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("the body arrives whole");
        first.get_or_insert_with(|| started.elapsed());
        events += chunk.windows(6).filter(|w| w == b"data: ").count();
    }
    (first.unwrap_or_default(), started.elapsed(), events)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Per target, the median time to the end of `rounds` requests, taken in interleaved rounds
/// so that drift of the machine falls on every target alike.
async fn latencies(
    client: &reqwest::Client,
    targets: &[&str],
    stream: bool,
    rounds: usize,
) -> Vec<(f64, f64, usize)> {
    let body = body(stream);
    for target in targets {
        for _ in 0..rounds.min(200) / 4 + 5 {
            request(client, target, &body).await;
        }
    }
    let mut total = vec![Vec::with_capacity(rounds); targets.len()];
    let mut first = vec![Vec::with_capacity(rounds); targets.len()];
    let mut chunks = vec![0; targets.len()];
    for _ in 0..rounds {
        for (at, target) in targets.iter().enumerate() {
            let (to_first, to_end, events) = request(client, target, &body).await;
            first[at].push(to_first.as_secs_f64() * 1e3);
            total[at].push(to_end.as_secs_f64() * 1e3);
            chunks[at] = events;
        }
    }
    (0..targets.len())
        .map(|at| (median(total[at].clone()), median(first[at].clone()), chunks[at]))
        .collect()
}

/// Non-streamed requests per second from `connections` clients for `window`.
async fn throughput(base: &str, connections: usize, window: Duration) -> f64 {
    let body = body(false);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (base, body) = (base.to_owned(), body.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut done = 0u64;
            while started.elapsed() < window {
                request(&client, &base, &body).await;
                done += 1;
            }
            done
        }));
    }
    let mut done = 0;
    for worker in workers {
        done += worker.await.unwrap();
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// LiteLLM's proxy in front of `upstream`, stopped when dropped.
struct LiteLlm {
    child: Child,
    base: String,
    _config: PathBuf,
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn litellm(upstream: SocketAddr) -> Result<LiteLlm, String> {
    if std::env::var_os("TASKFLOW_BENCH_NO_LITELLM").is_some() {
        return Err("skipped (TASKFLOW_BENCH_NO_LITELLM is set)".into());
    }
    let venv = workspace().join("target/bench-python");
    let requirements =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/litellm-requirements.txt");
    venv::python_environment(&venv, &requirements)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let config = std::env::temp_dir().join(format!("taskflow-bench-litellm-{port}.yaml"));
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: \"{MODEL}\"\n    litellm_params:\n      model: \"openai/{MODEL}\"\n      \
             api_base: \"http://{upstream}/v1\"\n      api_key: \"none\"\nlitellm_settings:\n  telemetry: false\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(venv.join("bin/litellm"))
        .args(["--config"])
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--num_workers", "1"])
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_TELEMETRY", "False")
        .env("LITELLM_LOG", "ERROR")
        .env("NO_PROXY", "*")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start litellm: {e}"))?;
    let proxy = LiteLlm { child, base: format!("http://127.0.0.1:{port}"), _config: config };
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if ready {
            return Ok(proxy);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err("LiteLLM did not start listening within 180 s".into())
}

fn main() {
    let rounds: usize =
        std::env::var("TASKFLOW_BENCH_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let upstream = start_upstream();
    let proxy = start_proxy(upstream);
    let litellm = litellm(upstream);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
        let direct = format!("http://{upstream}/v1");
        let through = format!("http://{proxy}/v1");

        let whole = latencies(&client, &[&direct, &through], false, rounds).await;
        let added_request = whole[1].0 - whole[0].0;
        let streamed = latencies(&client, &[&direct, &through], true, rounds / 2).await;
        let chunks = streamed[0].2.max(1);
        let added_stream = streamed[1].0 - streamed[0].0;
        let added_first = streamed[1].1 - streamed[0].1;
        let window = Duration::from_secs(3);
        let carried = throughput(&through, 32, window).await;
        let direct_rate = throughput(&direct, 32, window).await;

        println!("taskflow proxy in front of a loopback upstream ({rounds} interleaved requests per target)");
        println!("  non-streamed, direct            median {:8.3} ms", whole[0].0);
        println!("  non-streamed, through the proxy median {:8.3} ms   added {:7.3} ms per request", whole[1].0, added_request);
        println!(
            "  streamed ({chunks} events), direct   median {:8.3} ms (first byte {:.3} ms)",
            streamed[0].0, streamed[0].1
        );
        println!(
            "  streamed, through the proxy     median {:8.3} ms (first byte {:.3} ms)   added {:7.4} ms per chunk, {:.3} ms to the first byte",
            streamed[1].0,
            streamed[1].1,
            added_stream / chunks as f64,
            added_first
        );
        println!("  throughput, 32 connections      {carried:8.0} requests/s through the proxy ({direct_rate:.0}/s direct)");
        let mut ratio = None;
        match &litellm {
            Ok(litellm) => {
                let base = format!("{}/v1", litellm.base);
                let lite_rounds = (rounds / 4).max(50);
                let side = latencies(&client, &[&direct, &through, &base], false, lite_rounds).await;
                let ours = side[1].0 - side[0].0;
                let theirs = side[2].0 - side[0].0;
                println!(
                    "  LiteLLM side by side ({lite_rounds} interleaved rounds): direct {:.3} ms, taskflow {:.3} ms (added {ours:.3}), LiteLLM {:.3} ms (added {theirs:.3})",
                    side[0].0, side[1].0, side[2].0
                );
                let r = theirs / ours.max(1e-6);
                println!("  LiteLLM's added latency is {r:.0}x taskflow's");
                ratio = Some(r);
            }
            Err(reason) => println!("  LiteLLM: not measured: {reason}"),
        }
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!("targets:");
        println!("  median added latency < 1 ms per request: {} ({added_request:.3} ms)", verdict(added_request < 1.0));
        println!("  >= 2,000 non-streamed requests/s: {} ({carried:.0}/s)", verdict(carried >= 2000.0));
        match ratio {
            Some(r) => println!("  >= 10x lower than LiteLLM's: {} ({r:.0}x)", verdict(r >= 10.0)),
            None => println!("  >= 10x lower than LiteLLM's: not measured (see above)"),
        }
    });
}
