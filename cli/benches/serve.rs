//! What `taskflow serve` carries, measured on the real binary in one run:
//!
//! - mirrored step reports over HTTP from 32 concurrent keep-alive connections: accepted
//!   reports per second and the latency percentiles, beside the rate of the same reports made
//!   in-process (32 threads on the owner-bound API, the same database settings);
//! - the same load while 100 clients watch `GET /v1/events`: how much the watchers slow the
//!   writers (rounds interleaved, each watched round against the mean of the plain rounds
//!   before and after it, the median of those comparisons and their range);
//! - the serve's resident memory, idle after start and idle again after the load.
//!
//! `cargo bench -p taskflow-cli --bench serve` (`TASKFLOW_BENCH_REPORTS=N` sets the reports per
//! round, `TASKFLOW_BENCH_ROUNDS=N` the watched rounds, each between two plain ones).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use taskflow_api::database;
use taskflow_store::{Durability, FlowId, NewFlow, StateReport, StepReport, StepStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/serve.rs"]
mod support;

use support::{Serve, cpu_of};
const CONNECTIONS: usize = 32;
const WATCHERS: usize = 100;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// CPU time between two readings, per report, in microseconds.
fn cpu_per_report(
    before: Option<Duration>,
    after: Option<Duration>,
    reports: usize,
) -> Option<f64> {
    Some((after? - before?).as_secs_f64() * 1e6 / reports as f64)
}

fn report_body(flow: usize, n: usize) -> serde_json::Value {
    json!({"steps": [{"name": format!("step-{n}"), "status": "succeeded",
                      "output": {"flow": flow, "n": n}}]})
}

/// One round of reports over HTTP: each connection reports `per_connection` steps of its own
/// flow, one after another. Returns the wall time and every report's latency.
async fn http_round(
    clients: &[reqwest::Client],
    url: &str,
    round: usize,
    per_connection: usize,
) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(flow, client)| {
            let client = client.clone();
            let url = format!("{url}/v1/flows/bench-{flow}/report");
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_connection);
                for n in 0..per_connection {
                    let body = report_body(flow, round * per_connection + n);
                    let sent = Instant::now();
                    let response = client.post(&url).json(&body).send().await.unwrap();
                    let status = response.status();
                    let _ = response.bytes().await.unwrap();
                    assert!(status.is_success(), "report refused: {status}");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    (started.elapsed(), latencies)
}

/// The same reports in-process: 32 threads handing them to the store's writer through the
/// owner-bound API (as serve does), on another database with the same settings.
fn in_process_round(dir: &Path, per_connection: usize) -> Duration {
    let taskflow = database::open_for_running(&dir.join("in-process.db"), Durability::Full)
        .expect("a database opens");
    let handle = taskflow.bind("bench").unwrap();
    let ids: Vec<FlowId> = (0..CONNECTIONS)
        .map(|flow| {
            let mut new = NewFlow::mirrored("bench", "bench");
            new.id = Some(format!("bench-{flow}").parse().unwrap());
            handle.create(new).unwrap().id
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (flow, id) in ids.iter().enumerate() {
            let handle = handle.clone();
            scope.spawn(move || {
                for n in 0..per_connection {
                    let report = StateReport {
                        steps: vec![StepReport {
                            name: format!("step-{n}"),
                            status: StepStatus::Succeeded,
                            output: Some(json!({"flow": flow, "n": n})),
                            error: None,
                        }],
                        ..StateReport::default()
                    };
                    let (reply, answer) = std::sync::mpsc::channel();
                    handle.submit_report(
                        id,
                        report,
                        None,
                        Box::new(move |flow| {
                            let _ = reply.send(flow);
                        }),
                    );
                    answer.recv().unwrap().unwrap();
                }
            });
        }
    });
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_of(values: &mut [f64]) -> Option<f64> {
    (!values.is_empty()).then(|| median(values))
}

/// Median CPU time per report (µs): serve's in plain and in watched rounds, the load's own
/// (its watchers' included in watched rounds: they share the machine's cores with serve).
struct Cpu {
    plain: Option<f64>,
    watched: Option<f64>,
    client: Option<f64>,
    client_watched: Option<f64>,
}

/// What the watchers received in all the watched rounds, and how many reports those rounds made.
struct Delivered {
    events: u64,
    bytes: u64,
    reports: usize,
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Watchers on the event stream, each counting the events it receives (the blank lines that
/// end them: [`blank_lines`]), until dropped. They run on a runtime of their own, as clients
/// apart from the load: on the load's runtime, the load's requests would wait in its task queue
/// behind the watchers' reads, which slows the load itself, not serve.
///
/// They share the machine's two cores with serve, so each is as lean as a client can be: one
/// `GET` written on a socket, and the chunked body read into one buffer it keeps, undone in
/// place ([`Dechunk`]). An HTTP client library's stream allocated a buffer for each read, and
/// its page faults and copies were a third of the watchers' CPU.
struct Watchers {
    runtime: Option<tokio::runtime::Runtime>,
    received: Arc<AtomicU64>,
    /// The bytes of the event stream they received, all together.
    bytes: Arc<AtomicU64>,
}

/// The blank lines that end in `chunk`, the chunks before it ending with a line break if
/// `newline_last`. The watchers share the machine's cores with serve, so the count is one
/// branch-free pass over byte pairs, summed in bytes over runs of 255 pairs, which the compiler
/// vectorises: a search that stopped at each of an event's four line breaks took about a third
/// of the watchers' CPU.
fn blank_lines(chunk: &[u8], newline_last: bool) -> u64 {
    let Some(&first) = chunk.first() else { return 0 };
    let across = u64::from(newline_last && first == b'\n');
    let within: u64 = chunk
        .chunks(255)
        .zip(chunk[1..].chunks(255))
        .map(|(this, next)| {
            let pairs = this.iter().zip(next);
            u64::from(
                pairs
                    .fold(0u8, |sum, (&a, &b)| sum + (u8::from(a == b'\n') & u8::from(b == b'\n'))),
            )
        })
        .sum();
    across + within
}

/// Undoes HTTP/1.1's chunked transfer coding as the bytes come, handing on the body's bytes:
/// each chunk is its size in hex (extensions after it ignored), CRLF, its bytes, CRLF; a chunk
/// of size 0 ends the body.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dechunk {
    /// In a chunk's size line: the size read so far.
    Size(usize),
    /// Past the size's digits, to the end of its line.
    SizeLine(usize),
    /// In a chunk's bytes: how many are left.
    Data(usize),
    /// After a chunk's bytes, before its CRLF ends.
    DataEnd,
    /// The body ended.
    Ended,
}

impl Dechunk {
    fn new() -> Self {
        Dechunk::Size(0)
    }

    /// What follows a size line that read `size`.
    fn chunk_of(size: usize) -> Self {
        if size == 0 { Dechunk::Ended } else { Dechunk::Data(size) }
    }

    /// Feeds `input`; `body` gets each run of the body's bytes in it, in order.
    fn feed(&mut self, mut input: &[u8], mut body: impl FnMut(&[u8])) -> Result<(), String> {
        while let Some(&byte) = input.first() {
            *self = match *self {
                Dechunk::Data(left) => {
                    let take = left.min(input.len());
                    body(&input[..take]);
                    input = &input[take..];
                    *self =
                        if take == left { Dechunk::DataEnd } else { Dechunk::Data(left - take) };
                    continue;
                }
                Dechunk::Size(size) => match (byte as char).to_digit(16) {
                    Some(digit) => Dechunk::Size(
                        size.checked_mul(16)
                            .and_then(|size| size.checked_add(digit as usize))
                            .ok_or("a chunk size past usize")?,
                    ),
                    None if byte == b'\n' => Dechunk::chunk_of(size),
                    None => Dechunk::SizeLine(size),
                },
                Dechunk::SizeLine(size) if byte == b'\n' => Dechunk::chunk_of(size),
                Dechunk::SizeLine(size) => Dechunk::SizeLine(size),
                Dechunk::DataEnd if byte == b'\r' => Dechunk::DataEnd,
                Dechunk::DataEnd if byte == b'\n' => Dechunk::Size(0),
                Dechunk::DataEnd => return Err(format!("byte {byte:#04x} where a CRLF was due")),
                Dechunk::Ended => return Ok(()),
            };
            input = &input[1..];
        }
        Ok(())
    }
}

/// [`Dechunk`] and [`blank_lines`] over a chunked stream of events cut at every place, against
/// the events and the bytes in it.
fn check_watchers_count() {
    let event = |id: usize| format!("id: {id}\nevent: step\ndata: {{\"seq\":{id}}}\n\n");
    let stream: String = (0..120).map(event).collect::<String>() + ":\n\n";
    // Chunks of 1 to 37 bytes, some sizes in upper case or with an extension, then the end.
    let mut coded = Vec::new();
    let (mut at, mut size) = (0, 1);
    while at < stream.len() {
        let end = (at + size).min(stream.len());
        let line = match size % 3 {
            0 => format!("{:X}\r\n", end - at),
            1 => format!("{:x};x=y\r\n", end - at),
            _ => format!("{:x}\r\n", end - at),
        };
        coded.extend_from_slice(line.as_bytes());
        coded.extend_from_slice(&stream.as_bytes()[at..end]);
        coded.extend_from_slice(b"\r\n");
        (at, size) = (end, size % 37 + 1);
    }
    coded.extend_from_slice(b"0\r\n\r\n");
    for cut in 0..=coded.len() {
        let mut dechunk = Dechunk::new();
        let (mut events, mut body, mut newline_last) = (0, Vec::new(), false);
        for part in [&coded[..cut], &coded[cut..]] {
            dechunk
                .feed(part, |run| {
                    events += blank_lines(run, newline_last);
                    newline_last = run.last().map_or(newline_last, |&byte| byte == b'\n');
                    body.extend_from_slice(run);
                })
                .unwrap();
        }
        assert_eq!(dechunk, Dechunk::Ended, "the stream cut at byte {cut}");
        assert_eq!(events, 121, "the stream cut at byte {cut}");
        assert_eq!(body, stream.as_bytes(), "the stream cut at byte {cut}");
    }
    let mut dechunk = Dechunk::new();
    assert!(dechunk.feed(b"3\r\nabcXY", |_| {}).is_err(), "bytes past a chunk's size");
}

impl Watchers {
    async fn start(url: &str) -> Watchers {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("watcher")
            .enable_all()
            .build()
            .unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let address = url.strip_prefix("http://").expect("serve listens on plain HTTP").to_owned();
        let mut connected = Vec::new();
        for _ in 0..WATCHERS {
            let (ready, watching) = tokio::sync::oneshot::channel();
            connected.push(watching);
            let (received, bytes, address) = (received.clone(), bytes.clone(), address.clone());
            runtime.spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
                let request = format!(
                    "GET /v1/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut buffer = vec![0u8; 256 * 1024];
                let mut filled = 0;
                let head_end = loop {
                    let read = stream.read(&mut buffer[filled..]).await.unwrap();
                    assert!(read > 0, "serve closed the event stream before its head");
                    filled += read;
                    if let Some(at) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 200"), "{head}");
                assert!(head.contains("transfer-encoding: chunked"), "{head}");
                let _ = ready.send(());
                let mut dechunk = Dechunk::new();
                let mut newline_last = false;
                let mut unread = head_end..filled;
                loop {
                    let (mut events, mut body) = (0, 0);
                    dechunk
                        .feed(&buffer[unread], |run| {
                            events += blank_lines(run, newline_last);
                            newline_last = run.last().map_or(newline_last, |&byte| byte == b'\n');
                            body += run.len() as u64;
                        })
                        .unwrap();
                    received.fetch_add(events, Ordering::Relaxed);
                    bytes.fetch_add(body, Ordering::Relaxed);
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => unread = 0..read,
                    }
                }
            });
        }
        for watching in connected {
            watching.await.expect("a watcher connects");
        }
        Watchers { runtime: Some(runtime), received, bytes }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    check_watchers_count();
    let per_round = setting("TASKFLOW_BENCH_REPORTS", 8_000);
    let rounds = setting("TASKFLOW_BENCH_ROUNDS", 5).max(1);
    let per_connection = (per_round / CONNECTIONS).max(1);
    let reports = per_connection * CONNECTIONS;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&dir.path().join("serve.db"));
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = serve.rss_kib();

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (http, watched, mut slowed, delivered, p50, p99, max, cpu) = runtime.block_on(async {
        let clients: Vec<reqwest::Client> = (0..CONNECTIONS)
            .map(|_| {
                reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(1)
                    .tcp_nodelay(true)
                    .build()
                    .unwrap()
            })
            .collect();
        for (flow, client) in clients.iter().enumerate() {
            let body = json!({"id": format!("bench-{flow}"), "name": "bench",
                              "sync_mode": "mirrored"});
            let response =
                client.post(format!("{}/v1/flows", serve.url)).json(&body).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201);
        }
        // A warm-up round, then plain and watched rounds interleaved.
        let mut round = 0;
        http_round(&clients, &serve.url, round, per_connection / 4 + 1).await;
        let (mut plain, mut watched) = (Vec::new(), Vec::new());
        let (mut plain_cpu, mut watched_cpu) = (Vec::new(), Vec::new());
        let (mut client_cpu, mut client_watched_cpu) = (Vec::new(), Vec::new());
        let mut latencies = Vec::new();
        let mut delivered = Delivered { events: 0, bytes: 0, reports: rounds * reports };
        for pair in 0..=rounds {
            round += 1;
            let (serve_before, client_before) = (serve.cpu(), cpu_of("self"));
            let (took, mut round_latencies) =
                http_round(&clients, &serve.url, round, per_connection).await;
            plain.push(reports as f64 / took.as_secs_f64());
            plain_cpu.extend(cpu_per_report(serve_before, serve.cpu(), reports));
            client_cpu.extend(cpu_per_report(client_before, cpu_of("self"), reports));
            latencies.append(&mut round_latencies);
            if pair == rounds {
                break;
            }

            let watchers = Watchers::start(&serve.url).await;
            round += 1;
            let (serve_before, client_before) = (serve.cpu(), cpu_of("self"));
            let (took, _) = http_round(&clients, &serve.url, round, per_connection).await;
            watched.push(reports as f64 / took.as_secs_f64());
            // Let the stream catch up, so the count shows the fan-out happened.
            tokio::time::sleep(Duration::from_millis(500)).await;
            watched_cpu.extend(cpu_per_report(serve_before, serve.cpu(), reports));
            client_watched_cpu.extend(cpu_per_report(client_before, cpu_of("self"), reports));
            delivered.events += watchers.received.load(Ordering::Relaxed);
            delivered.bytes += watchers.bytes.load(Ordering::Relaxed);
            // Serve closes the watchers' streams before the next plain round begins.
            drop(watchers);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Each watched round against the mean of the plain rounds around it: the machine's pace
        // drifts from second to second, and the flows' journals grow from round to round, less
        // between neighbours.
        let slowed: Vec<f64> = watched
            .iter()
            .zip(plain.windows(2))
            .map(|(watched, around)| {
                let slowed = watched / ((around[0] + around[1]) / 2.0) - 1.0;
                println!(
                    "  round: plain {:.0}, watched {watched:.0} ({:+.1}%), plain {:.0} reports/s",
                    around[0],
                    100.0 * slowed,
                    around[1]
                );
                slowed
            })
            .collect();
        latencies.sort();
        let (p50, p99, max) =
            (percentile(&latencies, 0.5), percentile(&latencies, 0.99), *latencies.last().unwrap());
        let cpu = Cpu {
            plain: median_of(&mut plain_cpu),
            watched: median_of(&mut watched_cpu),
            client: median_of(&mut client_cpu),
            client_watched: median_of(&mut client_watched_cpu),
        };
        (median(&mut plain), median(&mut watched), slowed, delivered, p50, p99, max, cpu)
    });
    std::thread::sleep(Duration::from_secs(2));
    let loaded_rss = serve.rss_kib();
    drop(serve);

    let mut in_process_cpu = Vec::new();
    let mut in_process: Vec<f64> = (0..rounds)
        .map(|round| {
            let dir = dir.path().join(format!("round-{round}"));
            std::fs::create_dir_all(&dir).unwrap();
            let before = cpu_of("self");
            let took = in_process_round(&dir, per_connection);
            in_process_cpu.extend(cpu_per_report(before, cpu_of("self"), reports));
            reports as f64 / took.as_secs_f64()
        })
        .collect();
    let in_process = median(&mut in_process);
    let in_process_cpu = median_of(&mut in_process_cpu);

    println!(
        "serve: mirrored step reports, {CONNECTIONS} keep-alive connections, {reports} per round, {rounds} watched rounds between {} plain ones",
        rounds + 1
    );
    println!("  over HTTP          {http:>9.0} reports/s  (median of rounds)");
    println!(
        "  latency            p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(p50),
        ms(p99),
        ms(max)
    );
    println!(
        "  in-process         {in_process:>9.0} reports/s  (HTTP carries {:.0}% of it)",
        100.0 * http / in_process
    );
    // The median sorts the comparisons: the range is then their first and last.
    let slowed_median = median(&mut slowed);
    let (least, most) = (slowed[0], slowed[slowed.len() - 1]);
    println!(
        "  with {WATCHERS} watchers  {watched:>9.0} reports/s  (writers {:+.1}%, the median of {} \
         watched rounds, {:+.1}% to {:+.1}%; {} events delivered, {:.0} KB of stream per report)",
        100.0 * slowed_median,
        slowed.len(),
        100.0 * least,
        100.0 * most,
        delivered.events,
        delivered.bytes as f64 / 1000.0 / delivered.reports as f64,
    );
    let us = |cpu: Option<f64>| cpu.map_or("n/a".to_owned(), |us| format!("{us:.0} µs"));
    println!(
        "  CPU per report     serve {}  with {WATCHERS} watchers {}  in-process {}  (the load's own client {}, with its watchers {})",
        us(cpu.plain),
        us(cpu.watched),
        us(in_process_cpu),
        us(cpu.client),
        us(cpu.client_watched)
    );
    let show = |rss: Option<u64>| {
        rss.map_or("n/a".to_owned(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0))
    };
    println!(
        "  resident memory    idle {}  idle after the load {}",
        show(idle_rss),
        show(loaded_rss)
    );
}
