//! authtrail-collector: receives batches of login events from authtrail agents over HTTPS
//! (rustls, mTLS and/or bearer tokens), bounds and decodes them, de-duplicates on
//! (agent id, batch sequence), and stores them in SQLite; `query` and `stats` read them back.
//!
//! Library plus thin binary (`src/main.rs`). For in-process use (tests, demos):
//!
//! ```no_run
//! # async fn f(config: collector::Config) -> Result<(), collector::ServeError> {
//! let server = collector::Server::bind(&config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
//!
//! Code map: `config` (TOML), `tls` (rustls server config), `auth` (who is sending),
//! `ingest` (decompress and decode a body, no I/O), `store` (SQLite, writer thread, queries),
//! `server` (hyper service), `console` (the web console and its JSON API, off unless
//! configured), `certs` (a fleet CA with rcgen), `report` (`query`/`stats` text), `fleet` (the
//! fleet rules, a pure engine), `alerts` (the engine on ingest, stored alerts), `nats` (`[store] type = "nats"`: publishing
//! to JetStream), `consume` (the stream into the SQLite store).
#![forbid(unsafe_code)]

pub mod alerts;
pub mod auth;
mod budget;
pub mod certs;
pub mod config;
pub mod console;
pub mod consume;
pub mod fleet;
pub mod fold;
pub mod ingest;
pub mod nats;
pub mod report;
pub mod rows;
pub mod server;
pub mod store;
pub mod tls;

pub use config::Config;
pub use server::{ServeError, Server, serve};
