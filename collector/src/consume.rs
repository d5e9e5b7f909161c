//! `authtrail-collector consume`: reads the batches that collectors with `[store] type =
//! "nats"` published ([`crate::nats`]) from the JetStream stream, with a durable pull consumer,
//! into the SQLite store in `data-dir`, where the fleet detections run (only downstream of the
//! stream does one process see the whole fleet, or its partition of it).
//!
//! Each message is decoded with the same code the collector ran before it published
//! ([`crate::ingest::decode_as`] of the body kind its `Content-Type` names, checked against the agent it names), stored through the same
//! writer thread (one transaction per group of batches, `synchronous = FULL`), and
//! acknowledged only after that commit. A consumer killed between the commit and the ack gets
//! the message again; the store's key check (agent, stream, seq) answers "duplicate" and it is
//! acknowledged without being stored twice.
//!
//! A key stored with another digest (a re-send older than JetStream's duplicate window whose
//! agent reused a sequence number: the collector could not answer 409, since it had answered
//! 200 already) is stored under the stream `<stream>-conflict-<digest>` and logged with both
//! digests: never dropped, and never twice (the same message again has the same name).
//!
//! **Architecture Invariant:** a message is acknowledged only after the transaction holding its
//! batch committed (or the store already held it); anything else is redelivered.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{AckKind, consumer};
use futures_util::StreamExt as _;

use crate::config::Config;
use crate::ingest;
use crate::nats::{Headers, NatsError, hex};
use crate::server::ServeError;
use crate::store::{Outcome, StoreError, Writer};

/// Messages fetched (and stored in one group) at a time, at most; the store's writer groups at
/// most [`crate::store::GROUP_MAX_BATCHES`] batches per commit.
pub const FETCH_MAX_MESSAGES: usize = crate::store::GROUP_MAX_BATCHES;

/// How long a batch the store could not take (busy, full disk) waits before it comes again.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Stored now.
    Stored,
    /// The store held it already.
    Duplicate,
    /// Its key was stored with other content: stored under a stream of its own.
    Conflict,
}

/// A message that cannot be a batch (headers missing, a body that does not decode): it is
/// terminated (never delivered again) and logged; it stays in no store.
#[derive(Debug, thiserror::Error)]
#[error("stream message {sequence}: {reason}")]
pub struct Poison {
    /// The stream sequence.
    pub sequence: u64,
    /// What is wrong.
    pub reason: String,
}

/// Decodes a message into the key and batch the store takes; `max` is `max-decompressed-bytes`.
pub fn decode(
    headers: &async_nats::HeaderMap,
    body: &[u8],
    max: u64,
) -> Result<(Headers, ingest::Batch), String> {
    let h = Headers::from_map(headers)?;
    // The body kind the agent named; like the collector, anything else is read as NDJSON.
    let kind =
        agent_core::wire::Body::from_content_type(h.content_type.as_deref()).unwrap_or_default();
    let mut batch = ingest::decode_as(h.encoding, kind, body.to_vec(), max, Some(h.agent))
        .map_err(|e| e.to_string())?;
    if batch.digest != h.digest {
        return Err(format!(
            "the body's digest {} is not the one the collector sent ({})",
            hex(&batch.digest),
            hex(&h.digest)
        ));
    }
    batch.stream = h.stream.clone();
    Ok((h, batch))
}

/// Stores one decoded batch through `writer` and waits for the commit; a conflicting key is
/// stored again, as `again` decodes it, under `<stream>-conflict-<digest>`. The writer's queue
/// holds every batch of a fetch ([`fetch_size`]), so it is never full here; if it were, the
/// message would come again.
pub async fn store(
    writer: &Writer,
    headers: &Headers,
    batch: ingest::Batch,
    again: impl FnOnce() -> Option<ingest::Batch>,
) -> Result<Handled, StoreError> {
    let submit = |batch: ingest::Batch| async {
        writer
            .submit(headers.agent, headers.seq, batch, headers.received_at_us)
            .map_err(|_| StoreError::WriterGone)?
            .await
            .map_err(|_| StoreError::WriterGone)?
    };
    match submit(batch).await? {
        Outcome::Stored { .. } => Ok(Handled::Stored),
        Outcome::Duplicate => Ok(Handled::Duplicate),
        Outcome::Conflict { stored } => {
            let mut batch = again().ok_or(StoreError::WriterGone)?;
            batch.stream = format!("{}-conflict-{}", headers.stream, &hex(&batch.digest)[..16]);
            tracing::warn!(
                "agent {} stream {} batch {} is stored with other content (stored digest {}, \
                 this one {}): kept under stream {}",
                headers.agent,
                headers.stream,
                headers.seq,
                hex(&stored),
                hex(&batch.digest),
                batch.stream
            );
            submit(batch).await?;
            Ok(Handled::Conflict)
        }
    }
}

/// Messages taken per fetch: [`FETCH_MAX_MESSAGES`], or fewer when the writer's queue
/// (`[limits] writer-queue`) is shorter.
pub fn fetch_size(config: &Config) -> usize {
    FETCH_MAX_MESSAGES.min(config.limits.writer_queue).max(1)
}

/// Runs the consumer until `shutdown` completes: connects, makes sure the stream and the
/// durable consumer exist, prints `consuming SUBJECT from STREAM into DB` on `ready`, then
/// stores and acknowledges batches.
pub async fn run(
    config: &Config,
    ready: impl FnOnce(&str),
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let Some(nats) = config.store.nats() else {
        return Err(NatsError::Config(
            "`consume` needs [store] type = \"nats\" (the stream to read)".to_owned(),
        )
        .into());
    };
    let (writer, writer_thread) = crate::server::open_writer(config)?;
    let client = nats.connect().await?;
    let (_js, stream) = nats.stream(client).await?;
    let filter = nats.filter_subject();
    let config_of = consumer::pull::Config {
        durable_name: Some(nats.durable.clone()),
        filter_subject: filter.clone(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: nats.ack_wait,
        max_ack_pending: i64::try_from(4 * FETCH_MAX_MESSAGES).unwrap_or(i64::MAX),
        ..consumer::pull::Config::default()
    };
    // Retried like the stream: a cluster that lost a node elects the stream's leader first.
    let deadline = tokio::time::Instant::now() + nats.connect_timeout;
    let consumer: consumer::PullConsumer = loop {
        match stream
            .get_or_create_consumer(&nats.durable, config_of.clone())
            .await
        {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("the consumer {}: {e}; retrying", nats.durable);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                return Err(NatsError::Nats(format!("the consumer {}: {e}", nats.durable)).into());
            }
        }
    };
    ready(&format!(
        "consuming {filter} from {} into {}",
        nats.stream,
        config.db_path().display()
    ));
    let max = config.limits.max_decompressed_bytes;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let fetched = tokio::select! {
            f = consumer
                .fetch()
                .max_messages(fetch_size(config))
                .max_bytes(usize::try_from(config.limits.max_body_bytes).unwrap_or(usize::MAX))
                .expires(Duration::from_secs(1))
                .messages() => f,
            () = &mut shutdown => break,
        };
        let mut messages = match fetched {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("fetching from {}: {e}", nats.stream);
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        let mut fetched = Vec::new();
        while let Some(m) = messages.next().await {
            match m {
                Ok(m) => fetched.push(m),
                Err(e) => {
                    tracing::warn!("receiving from {}: {e}", nats.stream);
                    break;
                }
            }
        }
        // Decoded on blocking threads, `max-concurrent-batches` at a time (each holds a
        // decompressed body while it decodes); handed to the writer in stream order (an agent's
        // host facts are those of its latest batch), stored in one group, and each
        // acknowledged once its commit is back.
        let decoded: Vec<_> = futures_util::stream::iter(fetched.iter().map(|m| {
            let headers = m.headers.clone().unwrap_or_default();
            let payload = m.payload.clone();
            tokio::task::spawn_blocking(move || decode(&headers, &payload, max))
        }))
        .buffered(config.limits.max_concurrent_batches.max(1))
        .collect()
        .await;
        let writer = &writer;
        futures_util::future::join_all(fetched.into_iter().zip(decoded).map(
            |(m, decoded)| async move {
                let sequence = m.info().map_or(0, |i| i.stream_sequence);
                let decoded = decoded.unwrap_or_else(|e| Err(format!("decoder failed: {e}")));
                let ack = match decoded {
                    Err(reason) => {
                        tracing::error!("{}; terminated", Poison { sequence, reason });
                        AckKind::Term
                    }
                    Ok((h, batch)) => {
                        let again = || {
                            let headers = m.headers.clone().unwrap_or_default();
                            decode(&headers, &m.payload, max).ok().map(|(_, b)| b)
                        };
                        match store(writer, &h, batch, again).await {
                            Ok(_) => AckKind::Ack,
                            Err(e) => {
                                tracing::warn!(
                                    "agent {} batch {}: {e}; delivered again in {:?}",
                                    h.agent,
                                    h.seq,
                                    RETRY_DELAY
                                );
                                AckKind::Nak(Some(RETRY_DELAY))
                            }
                        }
                    }
                };
                if let Err(e) = m.ack_with(ack).await {
                    // Not acknowledged: delivered again after `ack-wait`, then a duplicate.
                    tracing::warn!("acknowledging stream message {sequence}: {e}");
                }
            },
        ))
        .await;
    }
    drop(writer);
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    Ok(())
}
