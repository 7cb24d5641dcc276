//! The stand-ins' own webhook signing, written from the vendors' documents
//! (`../shared/specs/`) and not from pagerd's verifiers, so a signing bug in
//! pagerd shows as a refused request in the tests instead of agreeing with
//! itself. Used by the stand-ins, the demo, pagerd-bench and the tests, who
//! all play the vendors.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

fn hmac_sha256(key: &str, message: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail here.
    let Ok(mut m) = hmac::Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return Vec::new();
    };
    for part in message {
        m.update(part);
    }
    m.finalize().into_bytes().to_vec()
}

/// Zendesk: `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(secret,
/// timestamp + body)), the timestamp sent in
/// `X-Zendesk-Webhook-Signature-Timestamp`.
pub fn zendesk(secret: &str, timestamp: &str, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(secret, &[timestamp.as_bytes(), body]))
}

/// PagerDuty v3: `X-PagerDuty-Signature` = `v1=` + hex(HMAC-SHA256(secret,
/// body)).
pub fn pagerduty(secret: &str, body: &[u8]) -> String {
    format!("v1={}", hex::encode(hmac_sha256(secret, &[body])))
}

/// Slack: `X-Slack-Signature` = `v0=` + hex(HMAC-SHA256(secret,
/// `v0:{timestamp}:{body}`)), the timestamp in `X-Slack-Request-Timestamp`.
pub fn slack(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let base = [b"v0:".as_slice(), timestamp.as_bytes(), b":", body];
    format!("v0={}", hex::encode(hmac_sha256(secret, &base)))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The published test vectors: what the vendors themselves would send.
    #[test]
    fn signs_as_the_vendors_document() {
        let v: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/signature-test-vectors.json"
        ))
        .unwrap();
        let s = |v: &Value, k: &str| v[k].as_str().unwrap().to_string();
        let z = &v["zendesk"][0];
        assert_eq!(
            super::zendesk(
                &s(z, "secret"),
                &s(z, "header_timestamp"),
                s(z, "body").as_bytes()
            ),
            s(z, "X-Zendesk-Webhook-Signature")
        );
        let p = &v["pagerduty"][0];
        assert_eq!(
            super::pagerduty(&s(p, "secret"), s(p, "body").as_bytes()),
            s(p, "X-PagerDuty-Signature")
        );
        let sl = &v["slack"][0];
        assert_eq!(
            super::slack(
                &s(sl, "secret"),
                &s(sl, "X-Slack-Request-Timestamp"),
                s(sl, "body").as_bytes()
            ),
            s(sl, "X-Slack-Signature")
        );
    }
}
