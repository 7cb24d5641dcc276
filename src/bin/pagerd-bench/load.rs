//! The load: signed Zendesk webhooks to pagerd (or alerts to Alertmanager),
//! one at a time, in a burst with bounded concurrency, or paced over a
//! window. One keep-alive `reqwest` client; concurrency is tokio tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::recorder::{Kind, Recorder};

/// The daemon under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// pagerd: `POST /webhooks/zendesk`, signed as Zendesk signs.
    Pagerd,
    /// Alertmanager: `POST /api/v2/alerts`.
    Alertmanager,
}

/// One request, ready to send.
pub struct Prepared {
    body: String,
    /// `(timestamp, signature)` for Zendesk.
    signed: Option<(String, String)>,
}

/// Sends tickets (or alerts) to one daemon.
pub struct Sender {
    http: reqwest::Client,
    daemon: Daemon,
    url: String,
    secret: String,
}

/// The body a Zendesk trigger posts (the README's template), for ticket
/// `id`: urgent priority and the `emergency` tag make it an emergency.
pub fn zendesk_body(id: u64, status: &str) -> String {
    format!(
        concat!(
            r#"{{"ticket":{{"id":"{id}","title":"Production is down (bench #{id})","priority":"Urgent","status":"{status}","#,
            r#""tags":"emergency customer_x","url":"acme.zendesk.com/agent/tickets/{id}","#,
            r#""requester":{{"name":"Dana Customer","email":"dana@customer.example"}},"organization":"Customer Corp"}}}}"#
        ),
        id = id,
        status = status
    )
}

/// An Alertmanager alert for ticket `id`: the same information as labels.
fn alert_body(id: u64) -> String {
    format!(
        concat!(
            r#"[{{"labels":{{"alertname":"ZendeskEmergency","ticket":"{id}","severity":"critical","organization":"Customer Corp"}},"#,
            r#""annotations":{{"summary":"Production is down (bench #{id})","link":"https://acme.zendesk.com/agent/tickets/{id}"}}}}]"#
        ),
        id = id
    )
}

impl Sender {
    /// A sender to pagerd at `base` (`http://ADDR`), signing with `secret`.
    pub fn pagerd(http: reqwest::Client, base: &str, secret: &str) -> Sender {
        Sender {
            http,
            daemon: Daemon::Pagerd,
            url: format!("{base}/webhooks/zendesk"),
            secret: secret.to_string(),
        }
    }

    /// A sender to Alertmanager at `base`.
    pub fn alertmanager(http: reqwest::Client, base: &str) -> Sender {
        Sender {
            http,
            daemon: Daemon::Alertmanager,
            url: format!("{base}/api/v2/alerts"),
            secret: String::new(),
        }
    }

    /// What the recorder sees for each ticket.
    pub fn kind(&self) -> Kind {
        match self.daemon {
            Daemon::Pagerd => Kind::Trigger,
            Daemon::Alertmanager => Kind::Alert,
        }
    }

    /// The recorder's key of ticket `id`.
    pub fn key(&self, id: u64) -> String {
        match self.daemon {
            Daemon::Pagerd => format!("zendesk-{id}"),
            Daemon::Alertmanager => id.to_string(),
        }
    }

    /// Builds (and for Zendesk signs) the request for ticket `id`.
    pub fn prepare(&self, id: u64, status: &str) -> Prepared {
        match self.daemon {
            Daemon::Pagerd => {
                let body = zendesk_body(id, status);
                let ts = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
                let sig = pagerd::fakes::sign::zendesk(&self.secret, &ts, body.as_bytes());
                Prepared {
                    body,
                    signed: Some((ts, sig)),
                }
            }
            Daemon::Alertmanager => Prepared {
                body: alert_body(id),
                signed: None,
            },
        }
    }

    /// Sends one request; retries what the daemon says is worth retrying
    /// (5xx, 429, transport errors) a few times, as Zendesk would. Returns
    /// the number of retries.
    pub async fn send(&self, p: &Prepared) -> anyhow::Result<u32> {
        let mut retries = 0;
        loop {
            let mut req = self
                .http
                .post(&self.url)
                .header("content-type", "application/json")
                .body(p.body.clone());
            if let Some((ts, sig)) = &p.signed {
                req = req
                    .header("x-zendesk-webhook-signature", sig)
                    .header("x-zendesk-webhook-signature-timestamp", ts);
            }
            let why = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    // Read the body so the connection goes back to the pool.
                    let _ = resp.bytes().await;
                    return Ok(retries);
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        bail!("{} answered {status}: {text}", self.url);
                    }
                    format!("{status}: {text}")
                }
                Err(e) => e.to_string(),
            };
            retries += 1;
            if retries > 5 {
                bail!("{} failed 6 times; last: {why}", self.url);
            }
            tokio::time::sleep(Duration::from_millis(50 * u64::from(retries))).await;
        }
    }
}

/// How a batch of sends went.
#[derive(Debug, Clone)]
pub struct Sent {
    /// When the first request left.
    pub started: Instant,
    /// When the last answer came.
    pub last_ack: Instant,
    /// Retries in all.
    pub retries: u64,
}

/// One sequential ticket: send, wait for its page.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Webhook sent → page request received by the vendor, ms.
    pub e2e_ms: f64,
    /// Webhook sent → daemon's 2xx answer, ms.
    pub ack_ms: f64,
}

/// Sends `ids` one at a time; each waits for its page before the next,
/// then `gap`.
pub async fn sequential(
    sender: &Sender,
    rec: &Recorder,
    ids: &[u64],
    gap: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let p = sender.prepare(id, "new");
        let key = sender.key(id);
        let t0 = Instant::now();
        sender.send(&p).await?;
        let acked = Instant::now();
        let page = rec
            .wait_for(sender.kind(), &key, Duration::from_secs(30))
            .await
            .with_context(|| format!("no page for {key} within 30s"))?;
        out.push(Sample {
            e2e_ms: page.at.saturating_duration_since(t0).as_secs_f64() * 1e3,
            ack_ms: acked.duration_since(t0).as_secs_f64() * 1e3,
        });
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    Ok(out)
}

/// Round trips of a plain `GET` (a health check: no store, no outbound
/// call), in ms: the HTTP floor under the latency numbers.
pub async fn floor(http: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let resp = http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let ok = resp.status().is_success();
        let _ = resp.bytes().await;
        anyhow::ensure!(ok, "GET {url} failed");
        out.push(t0.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(out)
}

/// Sends every id with `concurrency` requests in flight, as fast as the
/// daemon answers. Bodies are built and signed before the clock starts.
pub async fn burst(sender: &Arc<Sender>, ids: &[u64], concurrency: usize) -> anyhow::Result<Sent> {
    let prepared: Arc<Vec<Prepared>> =
        Arc::new(ids.iter().map(|&id| sender.prepare(id, "new")).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (sender, prepared, next) = (sender.clone(), prepared.clone(), next.clone());
        workers.spawn(async move {
            let mut retries = 0u64;
            let mut last = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = prepared.get(i) else { break };
                retries += u64::from(sender.send(p).await?);
                last = Some(Instant::now());
            }
            anyhow::Ok((retries, last))
        });
    }
    let mut sent = Sent {
        started,
        last_ack: started,
        retries: 0,
    };
    while let Some(r) = workers.join_next().await {
        let (retries, last) = r.context("a sender task panicked")??;
        sent.retries += retries;
        if let Some(l) = last {
            sent.last_ack = sent.last_ack.max(l);
        }
    }
    Ok(sent)
}

/// Sends id `i` of `n` at `window * i / n` after the start, with at most
/// `concurrency` in flight, so the daemon's deadlines spread evenly.
pub async fn paced(
    sender: &Arc<Sender>,
    ids: &[u64],
    window: Duration,
    concurrency: usize,
) -> anyhow::Result<Sent> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let n = ids.len().max(1) as u32;
    let mut tasks = JoinSet::new();
    let mut sent = Sent {
        started,
        last_ack: started,
        retries: 0,
    };
    let mut reap =
        |r: Result<anyhow::Result<(u32, Instant)>, tokio::task::JoinError>| -> anyhow::Result<()> {
            let (retries, at) = r.context("a sender task panicked")??;
            sent.retries += u64::from(retries);
            sent.last_ack = sent.last_ack.max(at);
            Ok(())
        };
    for (i, &id) in ids.iter().enumerate() {
        let at = started + window * (i as u32) / n;
        tokio::time::sleep_until(at.into()).await;
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .context("semaphore closed")?;
        let sender = sender.clone();
        tasks.spawn(async move {
            let p = sender.prepare(id, "new");
            let r = sender.send(&p).await;
            drop(permit);
            r.map(|retries| (retries, Instant::now()))
        });
        // Reap finished sends as we go so the set stays small.
        while let Some(r) = tasks.try_join_next() {
            reap(r)?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        reap(r)?;
    }
    Ok(sent)
}
