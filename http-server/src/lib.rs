//! `taskflow-http-server`: what the local HTTP servers, `taskflow serve` and `taskflow proxy`,
//! share.
//!
//! - The loop (`serve.rs`). They are servers people leave running, so a connection must not be
//!   held by a client that never finishes its request: each request's head (its line and
//!   headers) must arrive within a deadline from when the connection is ready for it
//!   (accepted, or done with its last answer), after which the connection is closed; a kept
//!   connection left idle that long is closed too. A handler's own time and its body are the
//!   router's to bound (serve's request timeout); an answer may stream for as long as it goes
//!   on. Answers go out as they are written (no Nagle delay on streamed chunks). On shutdown the
//!   loop stops accepting, lets each connection finish the request it is answering, closes idle
//!   ones, and returns once all have closed; endless streams must be ended by their owner when
//!   shutdown begins.
//! - Bearer tokens (`bearer.rs`): the token a request presents, and secrets compared in
//!   constant time.
//!
//! ```text
//! serve(listener, router, Options::default(), shutdown).await
//! bearer_token(&headers) → Some("…"); same_secret(expected, presented)
//! ```

mod bearer;
mod serve;

pub use bearer::{bearer_token, same_secret};
pub use serve::{Options, serve};
