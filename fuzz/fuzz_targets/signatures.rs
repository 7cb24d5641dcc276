//! The webhook signature verifiers of `pagerd::vendors::*` against the
//! stand-ins' own signing (`pagerd::fakes::sign`).
//!
//! The input is split (with `arbitrary`) into a secret, another secret, a
//! signature header, a timestamp header, a clock reading and a body. Checked:
//!
//! 1. `zendesk_verify`, `pagerduty_verify` and `slack_verify` never panic on
//!    any header, timestamp, body or `now`, and never accept a signature other
//!    than the one the matching `*_sign` makes.
//! 2. For any body, a signature made with `zendesk_sign` / `pagerduty_sign` /
//!    `slack_sign` and a fresh timestamp (within `MAX_SKEW_SECS` of `now`)
//!    verifies with the same secret and fails with any other secret. (HMAC
//!    pads keys with zero bytes and hashes keys longer than 64 bytes, so
//!    `"k"` and `"k\0"` are the same key: such pairs are not "another" secret.)
//! 3. A request signed correctly but with any timestamp at all (stale, far
//!    future, negative, not a number) verifies against a realistic clock
//!    (0 ..= 2^34 s) without panicking, and is accepted only when fresh.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pagerd::fakes::sign::{
    pagerduty as pagerduty_sign, slack as slack_sign, zendesk as zendesk_sign,
};
use pagerd::vendors::pagerduty::webhook::verify as pagerduty_verify;
use pagerd::vendors::signing::{MAX_SKEW_SECS, SignatureError};
use pagerd::vendors::slack::actions::verify as slack_verify;
use pagerd::vendors::zendesk::webhook::verify as zendesk_verify;
use sha2::{Digest, Sha256};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secret: &'a str,
    other_secret: &'a str,
    header: &'a str,
    timestamp: &'a str,
    now: i64,
    /// Where in the freshness window the signed timestamp lies.
    skew: i16,
    /// Other entries of a PagerDuty header sent during a secret rotation.
    before: &'a str,
    after: &'a str,
    body: &'a [u8],
}

/// The key HMAC-SHA256 really uses: hashed when longer than the block, then
/// padded with zeros to the 64-byte block.
fn hmac_block_key(secret: &str) -> Vec<u8> {
    let mut key = if secret.len() > 64 {
        Sha256::digest(secret.as_bytes()).to_vec()
    } else {
        secret.as_bytes().to_vec()
    };
    key.resize(64, 0);
    key
}

/// The lower-case hex of a `v0=`/`v1=` signature.
fn hex_part(sig: &str) -> &str {
    &sig[3..]
}

fn never_panic_and_no_forgery(i: &Input<'_>) {
    let (secret, header, ts, body, now) = (i.secret, i.header, i.timestamp, i.body, i.now);

    let r = zendesk_verify(secret, Some(header), Some(ts), body, now);
    if r.is_ok() {
        assert_eq!(
            header.trim(),
            zendesk_sign(secret, ts, body),
            "zendesk forgery"
        );
    }
    let _ = zendesk_verify(secret, None, Some(ts), body, now);
    let _ = zendesk_verify(secret, Some(header), None, body, now);

    let r = slack_verify(secret, Some(header), Some(ts), body, now);
    if r.is_ok() {
        let expected = slack_sign(secret, ts.trim(), body);
        assert!(
            header.to_ascii_lowercase().contains(hex_part(&expected)),
            "slack forgery"
        );
    }
    let _ = slack_verify(secret, None, Some(ts), body, now);
    let _ = slack_verify(secret, Some(header), None, body, now);

    let r = pagerduty_verify(secret, Some(header), body);
    if r.is_ok() {
        let expected = pagerduty_sign(secret, body);
        assert!(
            header.to_ascii_lowercase().contains(hex_part(&expected)),
            "pagerduty forgery"
        );
    }
    assert_eq!(
        pagerduty_verify(secret, None, body),
        Err(SignatureError::Missing("X-PagerDuty-Signature"))
    );
}

fn round_trip(i: &Input<'_>) {
    let (secret, other, body, now) = (i.secret, i.other_secret, i.body, i.now);
    let other_is_another_key = hmac_block_key(secret) != hmac_block_key(other);
    let offset = i64::from(i.skew) % (MAX_SKEW_SECS + 1);
    let ts_secs = now.saturating_add(offset);

    // Unix seconds: what Slack sends, and what proxies rewrite Zendesk's to.
    let ts = ts_secs.to_string();
    let sig = slack_sign(secret, &ts, body);
    assert_eq!(
        slack_verify(secret, Some(&sig), Some(&ts), body, now),
        Ok(())
    );
    if other_is_another_key {
        assert_eq!(
            slack_verify(other, Some(&sig), Some(&ts), body, now),
            Err(SignatureError::Mismatch)
        );
    }
    let sig = zendesk_sign(secret, &ts, body);
    assert_eq!(
        zendesk_verify(secret, Some(&sig), Some(&ts), body, now),
        Ok(())
    );
    if other_is_another_key {
        assert_eq!(
            zendesk_verify(other, Some(&sig), Some(&ts), body, now),
            Err(SignatureError::Mismatch)
        );
    }

    // RFC 3339: what Zendesk itself sends.
    if (0..=253_402_300_799).contains(&ts_secs) {
        let at = UNIX_EPOCH + Duration::from_secs(ts_secs as u64);
        let ts = humantime::format_rfc3339_seconds(at).to_string();
        let sig = zendesk_sign(secret, &ts, body);
        assert_eq!(
            zendesk_verify(secret, Some(&sig), Some(&ts), body, now),
            Ok(())
        );
        if other_is_another_key {
            assert_eq!(
                zendesk_verify(other, Some(&sig), Some(&ts), body, now),
                Err(SignatureError::Mismatch)
            );
        }
    }

    let sig = pagerduty_sign(secret, body);
    assert_eq!(pagerduty_verify(secret, Some(&sig), body), Ok(()));
    if other_is_another_key {
        assert_eq!(
            pagerduty_verify(other, Some(&sig), body),
            Err(SignatureError::Mismatch)
        );
    }
    // During a rotation PagerDuty sends several entries; any may match.
    let rotated = format!("{}, {sig} ,{}", i.before, i.after);
    assert_eq!(pagerduty_verify(secret, Some(&rotated), body), Ok(()));
}

fn any_timestamp(i: &Input<'_>) {
    let (secret, ts, body) = (i.secret, i.timestamp, i.body);
    // `unix_now()` in the webhook handlers: seconds since the epoch, >= 0.
    let now = i.now.rem_euclid(1 << 34);
    let fresh = |secs: i64| (i128::from(now) - i128::from(secs)).abs() <= i128::from(MAX_SKEW_SECS);

    let sig = slack_sign(secret, ts, body);
    if slack_verify(secret, Some(&sig), Some(ts), body, now).is_ok() {
        let secs: i64 = ts
            .trim()
            .parse()
            .expect("accepted a timestamp that is no number");
        assert!(
            fresh(secs),
            "slack accepted a stale timestamp {ts:?} at {now}"
        );
    }
    let sig = zendesk_sign(secret, ts, body);
    if zendesk_verify(secret, Some(&sig), Some(ts), body, now).is_ok()
        && let Ok(secs) = ts.trim().parse::<i64>()
    {
        assert!(
            fresh(secs),
            "zendesk accepted a stale timestamp {ts:?} at {now}"
        );
    }
}

fuzz_target!(|i: Input<'_>| {
    never_panic_and_no_forgery(&i);
    round_trip(&i);
    any_timestamp(&i);
});
