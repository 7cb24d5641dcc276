//! HackerOne: the program webhook, verified and parsed. What a verified
//! event does is `crate::reports::h1`'s; the route is
//! `crate::http::webhooks::hackerone`, and the secret is `[hackerone]
//! webhook_secret_file` (`crate::reports::config`).
//!
//! - [`webhook`]: `X-H1-Signature: sha256=<hex>` (HMAC-SHA256 of the raw
//!   body with the webhook's secret), `X-H1-Event` (the event name) and
//!   `X-H1-Delivery` (a GUID, the key for de-duplication), and the report
//!   id and state of the payload.

pub mod webhook;
