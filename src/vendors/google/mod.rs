//! Google, through a service account: the crisis doc (Drive v3 and Docs
//! v1) and the hand-off call (Calendar v3 with Google Meet).
//!
//! - [`auth`]: the key file, the JWT bearer grant, the token cache (one
//!   cache per identity and scopes).
//! - [`drive`]: the doc as a file: created once, shared, renamed.
//! - [`docs`]: the doc's text: filled, the deprecation notice, the timeline.
//! - [`calendar`]: the hand-off event with its Meet link.
//! - [`deliver`]: the `Docs` and `Calendar` lanes' effects; [`config`] the
//!   `[google]` section.
//!
//! Every write is idempotent so the dispatcher may retry freely:
//! - [`Google::create_doc`] tags the doc at creation (`files.create` or
//!   `files.copy`) with `appProperties.pagerd_key = marker`, and first
//!   searches for a doc with that tag; a found doc is only filled in if it is
//!   still blank (or still holds the template's `{{incident}}` placeholder).
//! - [`Google::share`] skips a grantee that already has the role (or a
//!   stronger one).
//! - [`Google::deprecate`] renames and inserts the notice only when not done
//!   yet; [`Google::append_timeline`] appends unless its marker line is
//!   already in the doc.
//! - [`calendar::Calendar::book`] tags the event with private extended
//!   properties and looks for them first.
//!
//! A 401 from any API drops the cached token and is retryable.

pub mod auth;
pub mod calendar;
pub mod config;
pub mod deliver;
mod docs;
mod drive;

use reqwest::{Method, StatusCode};
use serde_json::Value;

pub use self::auth::{
    CALENDAR_SCOPES, DEFAULT_TOKEN_URL, JWT_BEARER_GRANT, SCOPES, ServiceAccountKey, TokenSource,
};
pub use self::docs::timeline_marker;
use super::path_segment as enc;
use super::{DeliveryError, ProbeError, from_transport, retry_after};

/// The `appProperties` key holding an effect's idempotency marker.
pub const MARKER_PROPERTY: &str = "pagerd_key";
/// The placeholder a template's text holds for the incident body.
pub const TEMPLATE_PLACEHOLDER: &str = "{{incident}}";
/// MIME type of a Google Doc.
pub const GOOGLE_DOC_MIME: &str = "application/vnd.google-apps.document";

/// Where the Google APIs are and where new docs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleSettings {
    /// The OAuth token endpoint (`https://oauth2.googleapis.com/token`); also
    /// the JWT `aud`.
    pub token_url: String,
    /// Drive v3 base, `https://www.googleapis.com/drive/v3`.
    pub drive_url: String,
    /// Docs base, `https://docs.googleapis.com` (`/v1/documents` is appended).
    pub docs_url: String,
    /// A Google Doc to copy for each incident, holding `{{incident}}`;
    /// `None` creates blank docs.
    pub template_id: Option<String>,
    /// The Drive folder (ideally in a shared drive) for new docs.
    pub folder_id: Option<String>,
}

/// A doc pagerd created (or found again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// The Drive file ID (also the Docs document ID).
    pub id: String,
    /// A link that opens it in the editor.
    pub url: String,
}

/// A Drive file as `files.get` describes it (`fields=id,name,mimeType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The file ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its MIME type ([`GOOGLE_DOC_MIME`], [`FOLDER_MIME`], …).
    pub mime_type: String,
}

/// MIME type of a Drive folder.
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";

/// Who a doc is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// Everyone in a Google Workspace domain (`example.com`).
    Domain(String),
    /// One user, by e-mail address.
    User(String),
}

/// A Drive/Docs client acting as a service account.
pub struct Google {
    settings: GoogleSettings,
    auth: TokenSource,
    http: reqwest::Client,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google")
            .field("settings", &self.settings)
            .field("client_email", &self.auth.account())
            .finish_non_exhaustive()
    }
}

impl Google {
    /// A client; `http` must carry a timeout (see [`super::http_client`]).
    /// An unusable key is reported by the first call, as a permanent error.
    pub fn new(settings: GoogleSettings, key: ServiceAccountKey, http: reqwest::Client) -> Google {
        let settings = GoogleSettings {
            drive_url: settings.drive_url.trim_end_matches('/').to_string(),
            docs_url: settings.docs_url.trim_end_matches('/').to_string(),
            ..settings
        };
        let auth = TokenSource::new(key, settings.token_url.clone(), SCOPES, None, http.clone());
        Google {
            settings,
            auth,
            http,
        }
    }

    /// The service account (its `client_email`), for messages.
    pub fn account(&self) -> &str {
        self.auth.account()
    }

    /// Gets an access token with the JWT bearer grant at the token endpoint,
    /// as the first call of a crisis would (`pagerd doctor`). A refused
    /// grant or an unusable key is [`ProbeError::Rejected`].
    pub async fn check_token(&self) -> Result<(), ProbeError> {
        self.auth.probe().await.map(|_| ())
    }

    /// One authenticated Drive/Docs call, its answer classified.
    async fn call(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, DeliveryError> {
        call(&self.http, &self.auth, method, url, query, body, what).await
    }
}

/// One authenticated call to a Google API with a token of `auth`, its
/// answer classified ([`api_error`]). A 401 drops the token (the next call
/// gets a new one) and is retryable. `what` names the method for messages
/// (`Drive files.list`); an empty 2xx body is `Value::Null`.
pub(crate) async fn call(
    http: &reqwest::Client,
    auth: &TokenSource,
    method: Method,
    url: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
    what: &str,
) -> Result<Value, DeliveryError> {
    let service = format!("Google {what}");
    let token = auth.access_token().await?;
    let mut req = http
        .request(method, url)
        .bearer_auth(token.expose())
        .query(query);
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.map_err(|e| from_transport(&service, &e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp
        .text()
        .await
        .map_err(|e| from_transport(&service, &e))?;
    if status == StatusCode::UNAUTHORIZED {
        auth.forget(&token).await;
        return Err(DeliveryError::retry(format!(
            "{service}: access token refused (401); a new one will be requested"
        )));
    }
    if !status.is_success() {
        return Err(api_error(&service, status, &headers, &text));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        DeliveryError::retry(format!(
            "{service} answered {status} with a body that does not parse: {e}"
        ))
    })
}

/// Classifies a Google API error (`{"error":{"code","message","status",
/// "errors":[{"reason"}]}}`): 408, 429, 5xx, `RESOURCE_EXHAUSTED` and Drive's
/// 403 rate-limit reasons are retryable; other 4xx are permanent.
fn api_error(
    service: &str,
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> DeliveryError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let gstatus = e["status"].as_str().unwrap_or_default();
    let message = e["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            let mut s: String = body.chars().take(200).collect();
            if s.len() < body.len() {
                s.push('…');
            }
            s
        });
    let reasons: Vec<&str> = e["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["reason"].as_str()).collect())
        .unwrap_or_default();
    let reason =
        format!("{service} answered {status} {gstatus}: {}", message.trim()).replace("  ", " ");
    let rate_limited = gstatus == "RESOURCE_EXHAUSTED"
        || reasons
            .iter()
            .any(|r| ["rateLimitExceeded", "userRateLimitExceeded", "backendError"].contains(r));
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || rate_limited
    {
        DeliveryError::Retryable {
            reason,
            retry_after: retry_after(headers),
        }
    } else {
        DeliveryError::Permanent { reason }
    }
}
// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod after_crisis_tests;
#[cfg(all(test, feature = "demo"))]
mod tests;
