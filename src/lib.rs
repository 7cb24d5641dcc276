//! pagerd: the on-call emergency paging daemon.
//!
//! # Layout
//! The heart is vendor-neutral; each vendor is one folder.
//! - [`engine`]: every rule of the mission as a pure function of
//!   `(incident, event, now)`; no I/O.
//! - [`store`]: incidents, deadlines, journal and outbox, one transaction per
//!   event (SQLite by default, PostgreSQL for several instances);
//!   `store::sqlite::backup` is `pagerd backup` (a checked online copy).
//! - [`intake`]: submit an event, then arm its deadline and wake delivery
//!   (in a task of its own, so it happens even when the request is gone).
//! - [`handoff`]: the rows a commit made deliverable, handed straight to
//!   the dispatcher, and the claims that keep a row from going out twice.
//! - [`timers`] and [`scheduler`]: the armed deadlines in memory, and the
//!   task that fires them on time.
//! - [`dispatcher`] and [`deliver`]: the outbox loop (backoff, idempotency
//!   keys, "maybe sent" checks) and the registry that routes each effect to
//!   the vendor of its lane.
//! - [`vendors`]: one folder per vendor (`pagerduty`, `zendesk`, `slack`,
//!   `google` (Drive, Docs, Calendar), `gitlab`, `email`, and `hackerone`'s
//!   webhook, not yet routed), each owning its
//!   wire protocol: the client, the
//!   delivery of its effects (`deliver.rs`), its webhook's signature and
//!   parsing (`webhook.rs`, Slack's `actions.rs`), what the poller asks it
//!   (`poll.rs`) and its config section (`config.rs`); [`vendors::signing`]
//!   holds the HMAC they share.
//! - [`http`]: the router, one verify-then-submit path for the webhooks,
//!   the admin API, health and metrics.
//! - [`poller`]: the polling loops behind the webhooks.
//! - [`people`]: who a responder is across channels (one person per e-mail,
//!   with their real name).
//! - [`business_time`]: business hours, days and holidays in a time zone, and
//!   deadlines counted in business time (pure; no clock).
//! - [`retention`]: the leader deletes old resolved incidents in small
//!   batches (`store.retention`).
//! - [`reports`]: HackerOne reports (`[hackerone]`): not emergencies but a
//!   first-response clock in business time, a reminder and an overdue
//!   notice in Slack, stopped by the first public reply of an agent.
//! - [`daemon`]: the wiring, signals, systemd notifications.
//! - [`reload`]: SIGHUP re-reads the config and swaps it in, through the
//!   [`shared`] cells its readers load at each use.
//! - [`live`] and [`health`]: the in-memory counts and readiness of the
//!   public endpoints; the loops' heartbeats.
//! - [`config`] (assembles the sections) and [`validate`] (what every
//!   section is checked with), [`secret`], [`clock`], [`metrics`],
//!   [`logging`]: the supporting cast.
//! - [`render`]: customer-controlled text rendered for each destination
//!   (Slack, Google, e-mail, PagerDuty, Zendesk, the terminal), with limits.
//! - [`client`]: the CLI's side of the admin API.
//! - [`doctor`]: `pagerd doctor`, every integration checked read-only.
//! - [`explain`]: an incident's story and what fires next, in words (pure).
//! - [`manual`]: the man pages and shell completions, from the CLI's own
//!   definitions.
//! - `fakes` and `demo` (the default `demo` feature): local stand-ins of the
//!   vendors, with their own signing, and the demo that runs the real daemon
//!   against them; a production build (`--no-default-features`) has neither.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod business_time;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod deliver;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dispatcher;
pub mod doctor;
pub mod engine;
pub mod explain;
#[cfg(feature = "demo")]
pub mod fakes;
pub mod handoff;
pub mod health;
pub mod http;
pub mod intake;
pub mod leader;
pub mod live;
pub mod logging;
pub mod manual;
pub mod metrics;
pub mod people;
pub mod poller;
pub mod reload;
pub mod render;
pub mod reports;
pub mod retention;
pub mod scheduler;
pub mod secret;
pub mod shared;
pub mod store;
pub mod timers;
pub mod validate;
pub mod vendors;
