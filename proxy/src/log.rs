//! The exchange log (`--log FILE`): one JSON line per exchange, appended when the exchange
//! ends (a stream when its last byte went out, or its client left). It holds what an operator
//! needs (timings, tokens, calls fixed, what the parsers noted) and never a header, a body or
//! a key.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::ProxyError;
use crate::rewrite::Report;

#[derive(Debug)]
pub(crate) struct ExchangeLog {
    file: Mutex<File>,
}

impl ExchangeLog {
    pub(crate) fn open(path: &Path) -> Result<Self, ProxyError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ProxyError::Log { path: path.display().to_string(), source })?;
        Ok(Self { file: Mutex::new(file) })
    }

    pub(crate) fn write(&self, exchange: &Exchange) {
        let Ok(mut line) = serde_json::to_vec(exchange) else { return };
        line.push(b'\n');
        if let Ok(mut file) = self.file.lock() {
            // A log that cannot be written must not fail the client's exchange.
            let _ = file.write_all(&line);
        }
    }
}

/// One exchange as the log records it.
#[derive(Debug, Serialize)]
pub(crate) struct Exchange {
    /// Milliseconds since the Unix epoch when the request arrived.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub stream: bool,
    /// The status the client got.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// From the request's arrival to the end of the answer.
    pub latency_ms: f64,
    /// From the request's arrival to the upstream's answer head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    pub calls_fixed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub diagnostics: Vec<Note>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub client_left: bool,
    #[serde(skip)]
    started: Option<Instant>,
}

/// A parser's diagnostic, as logged.
#[derive(Debug, Serialize)]
pub(crate) struct Note {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_index: Option<usize>,
    pub message: String,
}

impl Exchange {
    pub(crate) fn begin(method: &str, path: &str) -> Self {
        let at_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self {
            at_ms,
            method: method.to_owned(),
            path: path.to_owned(),
            model: None,
            stream: false,
            status: 0,
            upstream_status: None,
            latency_ms: 0.0,
            upstream_ms: None,
            prompt_tokens: None,
            completion_tokens: None,
            calls_fixed: 0,
            format: None,
            diagnostics: Vec::new(),
            error: None,
            client_left: false,
            started: Some(Instant::now()),
        }
    }

    fn elapsed_ms(&self) -> f64 {
        self.started.map_or(0.0, |started| started.elapsed().as_secs_f64() * 1e3)
    }

    /// The upstream answered with `status`.
    pub(crate) fn upstream_answered(&mut self, status: u16) {
        self.upstream_status = Some(status);
        self.upstream_ms = Some(self.elapsed_ms());
    }

    /// Takes in what the rewriting did.
    pub(crate) fn report(&mut self, report: &mut Report) {
        self.calls_fixed = report.calls_fixed;
        self.format = report.format.map(|format| format.name().to_owned());
        self.prompt_tokens = report.prompt_tokens;
        self.completion_tokens = report.completion_tokens;
        self.diagnostics = report
            .notes
            .iter()
            .map(|note| Note {
                kind: note.kind.as_str().to_owned(),
                call_index: note.call_index,
                message: note.message.clone(),
            })
            .collect();
        if let Some(why) = &report.unreadable {
            let kind = crate::rewrite::NOT_JSON.to_owned();
            self.diagnostics.push(Note { kind, call_index: None, message: why.clone() });
        }
    }

    /// The exchange is over.
    pub(crate) fn end(&mut self) {
        self.latency_ms = self.elapsed_ms();
    }
}
