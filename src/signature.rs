//! Webhook signatures of Zendesk, PagerDuty (v3) and Slack (v0).
//!
//! Verification is pure: the caller passes the raw body, the headers' values
//! and `now`, so the published test vectors can be checked in unit tests and
//! nothing here reads a clock. Every comparison of a MAC is constant-time
//! (`Mac::verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// How far a signed timestamp may be from our clock before the request is
/// refused as stale (a replay). Zendesk and Slack both suggest five minutes.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a signature was refused. The text is safe to return to the caller: it
/// never contains the secret or the expected MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A required header was absent.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// The header is present but not of the documented form.
    #[error("malformed header {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the allowed window.
    #[error("stale timestamp: more than {MAX_SKEW_SECS}s from now")]
    Stale,
    /// The MAC does not match.
    #[error("signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

fn fresh(ts_secs: i64, now_secs: i64) -> Result<(), SignatureError> {
    // abs_diff: no overflow on a hostile timestamp (found by cargo fuzz).
    if now_secs.abs_diff(ts_secs) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// Parses the Zendesk timestamp header: RFC 3339 (`2026-11-24T12:00:00Z`),
/// or unix seconds, which some proxies rewrite it to.
fn zendesk_timestamp_secs(ts: &str) -> Option<i64> {
    if let Ok(secs) = ts.parse::<i64>() {
        return Some(secs);
    }
    let t = humantime::parse_rfc3339_weak(ts).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}

/// Computes `X-Zendesk-Webhook-Signature` for a body (used by the fakes and
/// the demo, which play Zendesk).
pub fn zendesk_sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = mac(secret.as_bytes(), &[timestamp.as_bytes(), body]);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Verifies a Zendesk webhook: base64(HMAC-SHA256(secret, timestamp + body)).
pub fn zendesk_verify(
    secret: &str,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    const SIG: &str = "X-Zendesk-Webhook-Signature";
    const TS: &str = "X-Zendesk-Webhook-Signature-Timestamp";
    let signature = signature.ok_or(SignatureError::Missing(SIG))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing(TS))?;
    let given = BASE64
        .decode(signature.trim())
        .map_err(|_| SignatureError::Malformed(SIG))?;
    mac(secret.as_bytes(), &[timestamp.as_bytes(), body])
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)?;
    let ts = zendesk_timestamp_secs(timestamp.trim()).ok_or(SignatureError::Malformed(TS))?;
    fresh(ts, now_secs)
}

/// Computes an `X-PagerDuty-Signature` header value (`v1=<hex>`).
pub fn pagerduty_sign(secret: &str, body: &[u8]) -> String {
    let mac = mac(secret.as_bytes(), &[body]);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies a PagerDuty v3 webhook: any of the comma-separated `v1=<hex>`
/// entries may match (several are sent while a secret is being rotated).
pub fn pagerduty_verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    const SIG: &str = "X-PagerDuty-Signature";
    let header = header.ok_or(SignatureError::Missing(SIG))?;
    let mut seen_v1 = false;
    for entry in header.split(',') {
        let Some(hex_mac) = entry.trim().strip_prefix("v1=") else {
            continue;
        };
        seen_v1 = true;
        let Ok(given) = hex::decode(hex_mac) else {
            continue;
        };
        if mac(secret.as_bytes(), &[body]).verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    if seen_v1 {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::Malformed(SIG))
    }
}

/// Computes `X-Slack-Signature` (`v0=<hex>`) over `v0:{timestamp}:{body}`.
pub fn slack_sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = mac(
        secret.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", body],
    );
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies a Slack request (`X-Slack-Signature`, `X-Slack-Request-Timestamp`).
pub fn slack_verify(
    secret: &str,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    const SIG: &str = "X-Slack-Signature";
    const TS: &str = "X-Slack-Request-Timestamp";
    let signature = signature.ok_or(SignatureError::Missing(SIG))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing(TS))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed(TS))?;
    let given = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Malformed(SIG))?;
    mac(
        secret.as_bytes(),
        &[b"v0:", timestamp.trim().as_bytes(), b":", body],
    )
    .verify_slice(&given)
    .map_err(|_| SignatureError::Mismatch)?;
    fresh(ts, now_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let text = include_str!("../tests/fixtures/signature-test-vectors.json");
        serde_json::from_str(text).expect("vectors parse")
    }

    fn s<'a>(v: &'a Value, k: &str) -> &'a str {
        v[k].as_str().unwrap_or_default()
    }

    #[test]
    fn zendesk_vectors() {
        let now = zendesk_timestamp_secs("2026-11-24T12:00:30Z").unwrap();
        for v in vectors()["zendesk"].as_array().unwrap() {
            let r = zendesk_verify(
                s(v, "secret"),
                Some(s(v, "X-Zendesk-Webhook-Signature")),
                Some(s(v, "header_timestamp")),
                s(v, "body").as_bytes(),
                now,
            );
            assert_eq!(r.is_ok(), v["valid"].as_bool().unwrap(), "{v}");
        }
    }

    #[test]
    fn zendesk_sign_matches_vector_and_stale_is_refused() {
        let v = &vectors()["zendesk"][0];
        let sig = zendesk_sign(
            s(v, "secret"),
            s(v, "header_timestamp"),
            s(v, "body").as_bytes(),
        );
        assert_eq!(sig, s(v, "X-Zendesk-Webhook-Signature"));
        let late = zendesk_timestamp_secs("2026-11-24T12:05:01Z").unwrap();
        let r = zendesk_verify(
            s(v, "secret"),
            Some(&sig),
            Some(s(v, "header_timestamp")),
            s(v, "body").as_bytes(),
            late,
        );
        assert_eq!(r, Err(SignatureError::Stale));
    }

    #[test]
    fn pagerduty_vectors() {
        for v in vectors()["pagerduty"].as_array().unwrap() {
            let r = pagerduty_verify(
                s(v, "secret"),
                Some(s(v, "X-PagerDuty-Signature")),
                s(v, "body").as_bytes(),
            );
            assert_eq!(r.is_ok(), v["valid"].as_bool().unwrap(), "{v}");
        }
        let v = &vectors()["pagerduty"][0];
        assert_eq!(
            pagerduty_sign(s(v, "secret"), s(v, "body").as_bytes()),
            s(v, "X-PagerDuty-Signature")
        );
    }

    #[test]
    fn slack_vector_from_docs() {
        let v = &vectors()["slack"][0];
        let ts = s(v, "X-Slack-Request-Timestamp");
        let now: i64 = ts.parse().unwrap();
        let body = s(v, "body").as_bytes();
        assert_eq!(
            slack_sign(s(v, "secret"), ts, body),
            s(v, "X-Slack-Signature")
        );
        assert!(
            slack_verify(
                s(v, "secret"),
                Some(s(v, "X-Slack-Signature")),
                Some(ts),
                body,
                now + 10
            )
            .is_ok()
        );
        assert_eq!(
            slack_verify(
                s(v, "secret"),
                Some(s(v, "X-Slack-Signature")),
                Some(ts),
                body,
                now + 301
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            slack_verify(
                "wrong",
                Some(s(v, "X-Slack-Signature")),
                Some(ts),
                body,
                now
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        assert_eq!(fresh(i64::MIN, i64::MAX), Err(SignatureError::Stale));
        assert_eq!(fresh(i64::MAX, -5), Err(SignatureError::Stale));
        assert_eq!(fresh(100, 399), Ok(()));
    }

    #[test]
    fn missing_headers_are_named() {
        assert_eq!(
            pagerduty_verify("k", None, b"{}"),
            Err(SignatureError::Missing("X-PagerDuty-Signature"))
        );
        assert_eq!(
            zendesk_verify("k", Some("abc"), None, b"{}", 0),
            Err(SignatureError::Missing(
                "X-Zendesk-Webhook-Signature-Timestamp"
            ))
        );
    }
}
