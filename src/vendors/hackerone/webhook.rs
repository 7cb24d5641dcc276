//! HackerOne's program webhook: the signature and the event.
//!
//! HackerOne POSTs a JSON payload with three headers:
//! - `X-H1-Signature: sha256=<hexdigest>`: HMAC-SHA256 of the raw request
//!   body, keyed with the webhook's secret (compared in constant time);
//! - `X-H1-Event`: the event name (`report_resolved`,
//!   `report_closed_as_duplicate`, `report_agreed_on_going_public`, …), not
//!   repeated in the body;
//! - `X-H1-Delivery`: a GUID per delivery.
//!
//! The signature covers no timestamp, so a captured delivery replays
//! cleanly: whoever acts on an event de-duplicates on `X-H1-Delivery` (as
//! PagerDuty's `X-Webhook-Id` is) and treats events as news to check, not
//! orders. The payload's `data.report` carries the report's `id` and
//! `attributes.state`.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::vendors::signing::{Mac as _, SignatureError, mac};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-H1-Signature";
/// The event name header.
pub const EVENT_HEADER: &str = "X-H1-Event";
/// The delivery GUID header.
pub const DELIVERY_HEADER: &str = "X-H1-Delivery";

/// Verifies a request's `X-H1-Signature` over its raw body.
pub fn verify_request(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    verify(secret, signature, body)
}

/// Verifies `sha256=<hex HMAC-SHA256(secret, body)>`. An empty secret
/// verifies nothing: HackerOne signs with an empty key when a webhook has
/// no secret, and anyone can compute that.
pub fn verify(secret: &str, signature: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let hex_mac = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed(SIGNATURE_HEADER))?;
    let given = hex::decode(hex_mac).map_err(|_| SignatureError::Malformed(SIGNATURE_HEADER))?;
    if secret.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    mac(secret.as_bytes(), &[body])
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// How a report was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closure {
    /// `report_resolved`: the vulnerability was fixed.
    Resolved,
    /// `report_closed_as_duplicate`.
    Duplicate,
    /// `report_closed_as_informative`.
    Informative,
    /// `report_closed_as_spam`.
    Spam,
    /// `report_closed_as_not_applicable`.
    NotApplicable,
}

/// What an event says happened to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    /// The report was closed.
    Closed(Closure),
    /// `report_agreed_on_going_public`: public disclosure was requested
    /// (agreed to by one side).
    DisclosureRequested,
    /// `report_became_public` or `report_manually_disclosed`: the report
    /// is public now.
    Disclosed,
    /// Any other event (comments, bounties, triage, …).
    Other,
}

/// A verified delivery, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event name, from `X-H1-Event`.
    pub name: String,
    /// What it says happened.
    pub happened: Happened,
    /// The delivery GUID (`X-H1-Delivery`), for de-duplication.
    pub delivery: Option<String>,
    /// The report's id (`data.report.id`).
    pub report_id: String,
    /// The report's state (`data.report.attributes.state`: `new`,
    /// `triaged`, `resolved`, `duplicate`, …), when the payload has it.
    pub state: Option<String>,
}

/// Why a delivery could not be parsed. The text names what is missing,
/// never payload content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No `X-H1-Event` header.
    #[error("missing header {EVENT_HEADER}")]
    MissingEvent,
    /// The body is not JSON.
    #[error("the body is not JSON")]
    NotJson,
    /// No `data.report.id`.
    #[error("the payload has no data.report.id")]
    NoReport,
}

/// What the event `name` says happened.
pub fn happened(name: &str) -> Happened {
    match name {
        "report_resolved" => Happened::Closed(Closure::Resolved),
        "report_closed_as_duplicate" => Happened::Closed(Closure::Duplicate),
        "report_closed_as_informative" => Happened::Closed(Closure::Informative),
        "report_closed_as_spam" => Happened::Closed(Closure::Spam),
        "report_closed_as_not_applicable" => Happened::Closed(Closure::NotApplicable),
        "report_agreed_on_going_public" => Happened::DisclosureRequested,
        "report_became_public" | "report_manually_disclosed" => Happened::Disclosed,
        _ => Happened::Other,
    }
}

/// Parses a (verified) delivery from its headers and body.
pub fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<Event, ParseError> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    parse(h(EVENT_HEADER), h(DELIVERY_HEADER), body)
}

/// Parses a (verified) delivery: the event name from `X-H1-Event`, the
/// delivery GUID, and the report's id and state from the body.
pub fn parse(
    event: Option<&str>,
    delivery: Option<&str>,
    body: &[u8],
) -> Result<Event, ParseError> {
    let name = event
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or(ParseError::MissingEvent)?
        .to_string();
    let v: Value = serde_json::from_slice(body).map_err(|_| ParseError::NotJson)?;
    let report = &v["data"]["report"];
    let report_id = match &report["id"] {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(ParseError::NoReport),
    };
    let state = report["attributes"]["state"].as_str().map(str::to_string);
    Ok(Event {
        happened: happened(&name),
        name,
        delivery: delivery
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        report_id,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "h1-webhook-secret-3f9a";
    const CLOSED: &str = r#"{"data":{"activity":{"type":"activity-bug-resolved","id":"1337"},"report":{"id":"548","type":"report","attributes":{"title":"Critical vulnerability!","state":"resolved"}}}}"#;
    const DISCLOSE: &str = r#"{"data":{"activity":{"type":"activity-agreed-on-going-public","id":"1338"},"report":{"id":"549","type":"report","attributes":{"title":"XSS","state":"triaged"}}}}"#;
    // Computed independently of this code:
    //   printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'h1-webhook-secret-3f9a'
    const CLOSED_SIG: &str =
        "sha256=c4c606088a8f83560692e1d7ff5b9d8249910091c4a82e8d0501f79471a05e05";
    const DISCLOSE_SIG: &str =
        "sha256=dded914d6000326246d8546e1d04de36c3461afe07d14efb0963319183f4aa94";

    #[test]
    fn signatures_computed_with_openssl_verify() {
        assert_eq!(verify(SECRET, Some(CLOSED_SIG), CLOSED.as_bytes()), Ok(()));
        assert_eq!(
            verify(SECRET, Some(DISCLOSE_SIG), DISCLOSE.as_bytes()),
            Ok(())
        );
        // Hex is case-insensitive; surrounding space is tolerated.
        assert_eq!(
            verify(
                SECRET,
                Some(&format!(
                    " {} ",
                    CLOSED_SIG.to_uppercase().replace("SHA256=", "sha256=")
                )),
                CLOSED.as_bytes()
            ),
            Ok(())
        );
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        assert_eq!(
            verify(
                "Jefe",
                Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
                b"what do ya want for nothing?"
            ),
            Ok(())
        );
    }

    #[test]
    fn forgeries_and_malformed_headers_are_refused() {
        // Another body, another secret, another event's signature.
        let tampered = CLOSED.replace("548", "549");
        assert_eq!(
            verify(SECRET, Some(CLOSED_SIG), tampered.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", Some(CLOSED_SIG), CLOSED.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(DISCLOSE_SIG), CLOSED.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, None, CLOSED.as_bytes()),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        for bad in [
            CLOSED_SIG.trim_start_matches("sha256="),
            "sha1=c4c606088a8f83560692e1d7ff5b9d8249910091",
            "sha256=not-hex",
        ] {
            assert_eq!(
                verify(SECRET, Some(bad), CLOSED.as_bytes()),
                Err(SignatureError::Malformed(SIGNATURE_HEADER)),
                "{bad}"
            );
        }
        // An empty secret verifies nothing, not even a matching MAC:
        //   printf '' | openssl dgst -sha256 -hmac '' → b613679a…
        assert_eq!(
            verify(
                "",
                Some("sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"),
                b""
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn requests_are_verified_and_parsed_from_their_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-h1-signature", CLOSED_SIG.parse().unwrap());
        headers.insert("x-h1-event", "report_resolved".parse().unwrap());
        headers.insert(
            "x-h1-delivery",
            "0b3f7a54-3c2e-4f0e-9a51-6a7d0c2f1e11".parse().unwrap(),
        );
        assert_eq!(verify_request(SECRET, &headers, CLOSED.as_bytes()), Ok(()));
        let e = parse_request(&headers, CLOSED.as_bytes()).unwrap();
        assert_eq!(
            e,
            Event {
                name: "report_resolved".into(),
                happened: Happened::Closed(Closure::Resolved),
                delivery: Some("0b3f7a54-3c2e-4f0e-9a51-6a7d0c2f1e11".into()),
                report_id: "548".into(),
                state: Some("resolved".into()),
            }
        );
    }

    #[test]
    fn closures_and_disclosure_requests_are_told_apart() {
        let e = parse(
            Some("report_agreed_on_going_public"),
            None,
            DISCLOSE.as_bytes(),
        )
        .unwrap();
        assert_eq!(e.happened, Happened::DisclosureRequested);
        assert_eq!(
            (e.report_id.as_str(), e.state.as_deref()),
            ("549", Some("triaged"))
        );
        for (name, closure) in [
            ("report_closed_as_duplicate", Closure::Duplicate),
            ("report_closed_as_informative", Closure::Informative),
            ("report_closed_as_spam", Closure::Spam),
            ("report_closed_as_not_applicable", Closure::NotApplicable),
        ] {
            assert_eq!(happened(name), Happened::Closed(closure));
        }
        assert_eq!(happened("report_became_public"), Happened::Disclosed);
        assert_eq!(happened("report_comment_created"), Happened::Other);
        // A numeric id is accepted; a missing one, a missing event header
        // or a body that is not JSON is refused.
        let numeric = r#"{"data":{"report":{"id":77}}}"#;
        assert_eq!(
            parse(Some("report_triaged"), None, numeric.as_bytes())
                .unwrap()
                .report_id,
            "77"
        );
        assert_eq!(
            parse(Some("report_triaged"), None, br#"{"data":{}}"#),
            Err(ParseError::NoReport)
        );
        assert_eq!(
            parse(None, None, CLOSED.as_bytes()),
            Err(ParseError::MissingEvent)
        );
        assert_eq!(
            parse(Some("report_resolved"), None, b"<html>"),
            Err(ParseError::NotJson)
        );
    }
}
