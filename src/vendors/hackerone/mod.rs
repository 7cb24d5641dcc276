//! HackerOne: the program webhook, verified and parsed (not yet routed:
//! the HTTP router decides what a verified event does).
//!
//! - [`webhook`]: `X-H1-Signature: sha256=<hex>` (HMAC-SHA256 of the raw
//!   body with the webhook's secret), `X-H1-Event` (the event name) and
//!   `X-H1-Delivery` (a GUID, the key for de-duplication), and the report
//!   id and state of the payload.
//! - [`config`]: the `[hackerone]` section's checks (not yet assembled into
//!   [`crate::config::Config`]).

pub mod config;
pub mod webhook;
