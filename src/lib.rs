//! pagerd: the on-call emergency paging daemon.
//!
//! # Layout
//! - [`engine`]: every rule of the mission as a pure function of
//!   `(incident, event, now)`; no I/O.
//! - [`store`]: incidents, deadlines, journal and outbox, one transaction per
//!   event (SQLite by default).
//! - [`core`]: submit an event, then arm its deadline and wake delivery.
//! - [`scheduler`]: the deadlines in memory, fired on time.
//! - [`dispatcher`] and [`deliver`]: the outbox, delivered with backoff and
//!   idempotency keys through the [`integrations`].
//! - [`http`]: webhooks in, admin API, health, metrics.
//! - [`poller`]: PagerDuty and Zendesk polling behind the webhooks.
//! - [`business_time`]: business hours, days and holidays in a time zone, and
//!   deadlines counted in business time (pure; no clock).
//! - [`people`]: who a responder is across PagerDuty, Slack and the CLI
//!   (one person per e-mail, with their real name).
//! - [`daemon`]: the wiring, signals, systemd notifications.
//! - [`reload`]: SIGHUP re-reads the config and swaps it in, through the
//!   [`shared`] cells its readers load at each use.
//! - [`live`]: the in-memory counts and readiness of the public endpoints.
//! - [`config`], [`secret`], [`signature`], [`clock`], [`metrics`]: the
//!   supporting cast.
//! - [`render`]: customer-controlled text rendered for each destination
//!   (Slack, Google, e-mail, PagerDuty, Zendesk, the terminal), with limits.
//! - [`client`]: the CLI's side of the admin API.
//! - [`manual`]: the man pages and shell completions, from the CLI's own
//!   definitions.
//! - [`fakes`] and [`demo`]: local stand-ins of the vendors, and the demo
//!   that runs the real daemon against them.
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
pub mod engine;
#[cfg(feature = "demo")]
pub mod fakes;
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
pub mod scheduler;
pub mod secret;
pub mod shared;
pub mod store;
pub mod timers;
pub mod vendors;
