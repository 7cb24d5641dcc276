//! What the vendors' webhook signatures share: HMAC-SHA256, a freshness
//! window for signed timestamps, and the error a refusal carries. Each
//! vendor's scheme (headers, what is signed, encoding) lives in its own
//! folder (`zendesk/webhook.rs`, `pagerduty/webhook.rs`, `slack/actions.rs`).
//!
//! Verification is pure: the caller passes the raw body, the headers' values
//! and `now`, so the published test vectors can be checked in unit tests and
//! nothing here reads a clock. Every comparison of a MAC is constant-time
//! (`Mac::verify_slice`).

use hmac::KeyInit;
pub(crate) use hmac::Mac;
use sha2::Sha256;

pub(crate) type HmacSha256 = hmac::Hmac<Sha256>;

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

/// HMAC-SHA256 of the concatenated `parts`.
pub(crate) fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// A signed timestamp within [`MAX_SKEW_SECS`] of now.
pub(crate) fn fresh(ts_secs: i64, now_secs: i64) -> Result<(), SignatureError> {
    // abs_diff: no overflow on a hostile timestamp (found by cargo fuzz).
    if now_secs.abs_diff(ts_secs) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// The real wall clock in unix seconds: signed timestamps come from the
/// vendor's clock, never from the demo's compressed one.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        assert_eq!(fresh(i64::MIN, i64::MAX), Err(SignatureError::Stale));
        assert_eq!(fresh(i64::MAX, -5), Err(SignatureError::Stale));
        assert_eq!(fresh(100, 399), Ok(()));
    }

    #[cfg(feature = "demo")]
    mod props {
        use proptest::prelude::*;

        proptest! {
        #[test]
        fn verifiers_never_panic_and_accept_only_their_own_signature(
            body in prop::collection::vec(any::<u8>(), 0..256),
            header in ".{0,80}",
            ts in ".{0,30}",
        ) {
            use crate::vendors::{pagerduty, slack, zendesk};
            let _ = zendesk::webhook::verify("k", Some(&header), Some(&ts), &body, 0);
            let _ = slack::actions::verify("k", Some(&header), Some(&ts), &body, 0);
            let sig = crate::fakes::sign::pagerduty("k", &body);
            prop_assert!(pagerduty::webhook::verify("k", Some(&header), &body).is_err() || header.contains(&sig));
            prop_assert!(pagerduty::webhook::verify("k", Some(&sig), &body).is_ok());
            prop_assert!(pagerduty::webhook::verify("other", Some(&sig), &body).is_err());
        }
            }
    }
}
