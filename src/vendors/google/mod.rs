//! Google Drive v3 / Docs v1 client: incident docs, sharing, deprecation.
//!
//! Auth is the service-account JWT bearer flow: an RS256 JWT signed with the
//! key file's private key is exchanged at the token endpoint for an access
//! token, which is cached until a minute before it expires. A 401 from Drive
//! or Docs drops the cached token and is retryable.
//!
//! Every write is idempotent so the dispatcher may retry freely:
//! - [`Google::create_doc`] tags the doc at creation (`files.create` or
//!   `files.copy`) with `appProperties.pagerd_key = marker`, and first
//!   searches for a doc with that tag; a found doc is only filled in if it is
//!   still blank (or still holds the template's `{{incident}}` placeholder).
//! - [`Google::share`] skips a grantee that already has the role (or a
//!   stronger one).
//! - [`Google::deprecate`] renames and inserts the notice only when not done
//!   yet.

pub mod config;
pub mod deliver;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{DeliveryError, ProbeError, from_transport, probe_response, retry_after};
use crate::secret::Secret;

/// Scopes requested for the access token.
pub const SCOPES: &str =
    "https://www.googleapis.com/auth/drive https://www.googleapis.com/auth/documents";
/// The OAuth grant type of the JWT bearer flow.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The `appProperties` key holding an effect's idempotency marker.
pub const MARKER_PROPERTY: &str = "pagerd_key";
/// The placeholder a template's text holds for the incident body.
pub const TEMPLATE_PLACEHOLDER: &str = "{{incident}}";
/// MIME type of a Google Doc.
pub const GOOGLE_DOC_MIME: &str = "application/vnd.google-apps.document";

/// Lifetime asked of each JWT (Google's maximum).
const JWT_LIFETIME_SECS: u64 = 3600;
/// A cached access token is replaced this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Upper bound on `permissions.list` pages.
const MAX_PAGES: usize = 20;

/// A service-account key file's useful parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountKey {
    /// The account, `name@project.iam.gserviceaccount.com`: the JWT `iss`.
    pub client_email: String,
    /// The PKCS#8 (or PKCS#1) PEM RSA private key.
    pub private_key: Secret,
    /// The key's ID, sent as the JWT header's `kid`.
    pub private_key_id: Option<String>,
    /// The token endpoint named in the key file.
    pub token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Reads a key file as downloaded from the Google Cloud console.
    pub fn from_file(path: &Path) -> Result<ServiceAccountKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ServiceAccountKey::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a key file's JSON and checks the private key is a usable RS256
    /// key. Errors name the problem, never the key.
    pub fn from_json(text: &str) -> Result<ServiceAccountKey, String> {
        // Parse to a Value first: serde's syntax errors give a position only,
        // and picking fields by hand keeps key material out of type errors.
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("not a JSON key file: {e}"))?;
        if !v.is_object() {
            return Err("not a JSON key file: expected an object".into());
        }
        match v.get("type").map(|t| t.as_str()) {
            None | Some(Some("service_account")) => {}
            Some(Some(other)) => {
                return Err(format!(
                    "key file type is {other:?}, expected \"service_account\""
                ));
            }
            Some(None) => return Err("key file field \"type\" is not a string".into()),
        }
        let field = |name: &str| -> Result<Option<String>, String> {
            match v.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("key file field {name:?} is not a string")),
            }
        };
        let client_email = field("client_email")?.ok_or("key file has no \"client_email\"")?;
        if !client_email.contains('@') {
            return Err(format!(
                "key file \"client_email\" {client_email:?} is not an e-mail address"
            ));
        }
        let private_key =
            Secret::new(field("private_key")?.ok_or("key file has no \"private_key\"")?);
        signing_key(&private_key)?;
        Ok(ServiceAccountKey {
            client_email,
            private_key,
            private_key_id: field("private_key_id")?,
            token_uri: field("token_uri")?,
        })
    }
}

/// Loads the PEM and proves it signs RS256 (jsonwebtoken parses the RSA key
/// lazily, at the first signature).
fn signing_key(pem: &Secret) -> Result<EncodingKey, String> {
    const NOT_RSA: &str = "\"private_key\" is not a PEM-encoded RSA private key";
    let key =
        EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(|_| NOT_RSA.to_string())?;
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({ "probe": true }),
        &key,
    )
    .map_err(|_| format!("{NOT_RSA} usable for RS256 (RSA, at least 2048 bits)"))?;
    Ok(key)
}

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

struct CachedToken {
    value: Secret,
    fresh_until: Instant,
}

/// A Drive/Docs client acting as a service account.
pub struct Google {
    settings: GoogleSettings,
    key: ServiceAccountKey,
    signer: Result<EncodingKey, String>,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google")
            .field("settings", &self.settings)
            .field("client_email", &self.key.client_email)
            .finish_non_exhaustive()
    }
}

impl Google {
    /// A client; `http` must carry a timeout (see [`super::http_client`]).
    /// An unusable key is reported by the first call, as a permanent error.
    pub fn new(settings: GoogleSettings, key: ServiceAccountKey, http: reqwest::Client) -> Google {
        let signer = signing_key(&key.private_key);
        let settings = GoogleSettings {
            drive_url: settings.drive_url.trim_end_matches('/').to_string(),
            docs_url: settings.docs_url.trim_end_matches('/').to_string(),
            ..settings
        };
        Google {
            settings,
            key,
            signer,
            http,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// Creates the incident doc `title` holding `body`, tagged with `marker`,
    /// or returns the doc already tagged with it (filling it in if an
    /// earlier attempt stopped before writing the body).
    pub async fn create_doc(
        &self,
        title: &str,
        body: &str,
        marker: &str,
    ) -> Result<Doc, DeliveryError> {
        if let Some(doc) = self.find_by_marker(marker).await? {
            self.fill_if_blank(&doc.id, body).await?;
            return Ok(doc);
        }
        let mut meta = json!({
            "name": crate::render::drive_name(title),
            "appProperties": { MARKER_PROPERTY: marker },
        });
        if let Some(folder) = &self.settings.folder_id {
            meta["parents"] = json!([folder]);
        }
        let query = [("fields", "id,webViewLink"), ("supportsAllDrives", "true")];
        let file = match &self.settings.template_id {
            Some(template) => {
                let url = format!("{}/files/{}/copy", self.settings.drive_url, enc(template));
                let what = format!("Drive files.copy of template {template}");
                self.call(Method::POST, &url, &query, Some(&meta), &what)
                    .await?
            }
            None => {
                meta["mimeType"] = json!(GOOGLE_DOC_MIME);
                let url = format!("{}/files", self.settings.drive_url);
                self.call(
                    Method::POST,
                    &url,
                    &query,
                    Some(&meta),
                    "Drive files.create",
                )
                .await?
            }
        };
        let doc = to_doc(&file).ok_or_else(|| {
            DeliveryError::retry("Google Drive answered a new file without an id")
        })?;
        self.fill(&doc.id, body).await?;
        Ok(doc)
    }

    /// Shares a doc with `grantee` as `role` (`writer`, `commenter` or
    /// `reader`), unless it already has that role or a stronger one. Users
    /// get Drive's notification e-mail.
    pub async fn share(
        &self,
        doc_id: &str,
        grantee: &Grantee,
        role: &str,
    ) -> Result<(), DeliveryError> {
        if !["writer", "commenter", "reader"].contains(&role) {
            return Err(DeliveryError::permanent(format!(
                "Google Drive share of {doc_id}: role {role:?} is not one of writer, commenter, reader"
            )));
        }
        let url = format!(
            "{}/files/{}/permissions",
            self.settings.drive_url,
            enc(doc_id)
        );
        let mut page_token = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                (
                    "fields",
                    "nextPageToken,permissions(id,type,role,emailAddress,domain)",
                ),
                ("supportsAllDrives", "true"),
            ];
            if !page_token.is_empty() {
                query.push(("pageToken", page_token.as_str()));
            }
            let what = format!("Drive permissions.list of {doc_id}");
            let list = self.call(Method::GET, &url, &query, None, &what).await?;
            let perms = list["permissions"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if perms.iter().any(|p| grants(p, grantee, role)) {
                return Ok(());
            }
            page_token = list["nextPageToken"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if page_token.is_empty() {
                break;
            }
        }
        let (body, notify) = match grantee {
            Grantee::Domain(domain) => (
                json!({ "type": "domain", "role": role, "domain": domain }),
                false,
            ),
            Grantee::User(email) => (
                json!({ "type": "user", "role": role, "emailAddress": email }),
                true,
            ),
        };
        let mut query = vec![("supportsAllDrives", "true"), ("fields", "id")];
        if notify {
            query.push(("sendNotificationEmail", "true"));
        }
        let what = format!("Drive permissions.create on {doc_id}");
        self.call(Method::POST, &url, &query, Some(&body), &what)
            .await?;
        Ok(())
    }

    /// Marks a doc as superseded: prefixes its name with `title_prefix`
    /// (e.g. `[DEPRECATED] `) and inserts `notice` as its first paragraph,
    /// each unless already done.
    pub async fn deprecate(
        &self,
        doc_id: &str,
        title_prefix: &str,
        notice: &str,
    ) -> Result<(), DeliveryError> {
        let url = format!("{}/files/{}", self.settings.drive_url, enc(doc_id));
        if !title_prefix.is_empty() {
            let query = [("fields", "name"), ("supportsAllDrives", "true")];
            let file = self
                .call(
                    Method::GET,
                    &url,
                    &query,
                    None,
                    &format!("Drive files.get of {doc_id}"),
                )
                .await?;
            let name = file["name"].as_str().unwrap_or_default();
            if !name.starts_with(title_prefix) {
                // The prefix must not push the name past Drive's limit.
                let body =
                    json!({ "name": crate::render::drive_name(&format!("{title_prefix}{name}")) });
                let query = [("fields", "id,name"), ("supportsAllDrives", "true")];
                self.call(
                    Method::PATCH,
                    &url,
                    &query,
                    Some(&body),
                    &format!("Drive files.update of {doc_id}"),
                )
                .await?;
            }
        }
        let notice_text = notice.trim_end_matches('\n');
        if !notice_text.is_empty() {
            let text = self.doc_text(doc_id).await?;
            if !text.starts_with(notice_text) {
                let request = json!({ "insertText": { "text": format!("{notice_text}\n"), "location": { "index": 1 } } });
                self.batch_update(doc_id, vec![request]).await?;
            }
        }
        Ok(())
    }

    /// The service account (its `client_email`), for messages.
    pub fn account(&self) -> &str {
        &self.key.client_email
    }

    /// Gets an access token with the JWT bearer grant at the token endpoint,
    /// as the first call of a crisis would (`pagerd doctor`). A refused
    /// grant or an unusable key is [`ProbeError::Rejected`].
    pub async fn check_token(&self) -> Result<(), ProbeError> {
        self.probe_token().await.map(|_| ())
    }

    async fn probe_token(&self) -> Result<Secret, ProbeError> {
        self.access_token().await.map_err(|e| match e {
            DeliveryError::Permanent { reason } => ProbeError::Rejected { reason },
            e => ProbeError::Failed(e),
        })
    }

    /// `files.get` of `file_id` with `fields=id,name,mimeType`: whether the
    /// service account can see it. Read-only. A file it cannot see is
    /// [`ProbeError::NotFound`] (Drive answers 404 for both).
    pub async fn file_meta(&self, file_id: &str) -> Result<FileMeta, ProbeError> {
        let token = self.probe_token().await?;
        let url = format!("{}/files/{}", self.settings.drive_url, enc(file_id));
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token.expose())
            .query(&[
                ("fields", "id,name,mimeType"),
                ("supportsAllDrives", "true"),
            ])
            .send()
            .await;
        let service = format!("Google Drive files.get of {file_id}");
        let (v, _): (Value, _) = probe_response(&service, resp).await?;
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_string();
        Ok(FileMeta {
            id: field("id"),
            name: field("name"),
            mime_type: field("mimeType"),
        })
    }

    // ------------------------------------------------------------ helpers

    async fn find_by_marker(&self, marker: &str) -> Result<Option<Doc>, DeliveryError> {
        let q = format!(
            "appProperties has {{ key='{MARKER_PROPERTY}' and value='{}' }} and trashed=false",
            escape_query(marker)
        );
        let url = format!("{}/files", self.settings.drive_url);
        let query = [
            ("q", q.as_str()),
            ("fields", "files(id,webViewLink)"),
            ("supportsAllDrives", "true"),
            ("includeItemsFromAllDrives", "true"),
        ];
        let list = self
            .call(Method::GET, &url, &query, None, "Drive files.list")
            .await?;
        Ok(list["files"]
            .as_array()
            .and_then(|files| files.iter().find_map(to_doc)))
    }

    /// Writes `body` into a doc found again by its marker, unless an earlier
    /// attempt already did.
    async fn fill_if_blank(&self, doc_id: &str, body: &str) -> Result<(), DeliveryError> {
        let text = self.doc_text(doc_id).await?;
        let needed = match self.settings.template_id {
            Some(_) => text.contains(TEMPLATE_PLACEHOLDER),
            None => text.trim().is_empty(),
        };
        if needed {
            self.fill(doc_id, body).await
        } else {
            Ok(())
        }
    }

    /// Writes `body` into a fresh doc: replaces the template placeholder, or
    /// appends to the blank doc.
    async fn fill(&self, doc_id: &str, body: &str) -> Result<(), DeliveryError> {
        let body = &crate::render::doc_text(body);
        let request = match self.settings.template_id {
            Some(_) => json!({ "replaceAllText": {
                "replaceText": body,
                "containsText": { "text": TEMPLATE_PLACEHOLDER, "matchCase": true },
            }}),
            None if body.is_empty() => return Ok(()),
            None => json!({ "insertText": { "text": body, "endOfSegmentLocation": {} } }),
        };
        self.batch_update(doc_id, vec![request]).await
    }

    async fn batch_update(&self, doc_id: &str, requests: Vec<Value>) -> Result<(), DeliveryError> {
        let url = format!(
            "{}/v1/documents/{}:batchUpdate",
            self.settings.docs_url,
            enc(doc_id)
        );
        let what = format!("Docs documents.batchUpdate of {doc_id}");
        self.call(
            Method::POST,
            &url,
            &[],
            Some(&json!({ "requests": requests })),
            &what,
        )
        .await?;
        Ok(())
    }

    /// The body text of a doc (paragraph text runs, in order).
    async fn doc_text(&self, doc_id: &str) -> Result<String, DeliveryError> {
        let url = format!("{}/v1/documents/{}", self.settings.docs_url, enc(doc_id));
        let doc = self
            .call(
                Method::GET,
                &url,
                &[],
                None,
                &format!("Docs documents.get of {doc_id}"),
            )
            .await?;
        Ok(body_text(&doc))
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
        let service = format!("Google {what}");
        let token = self.access_token().await?;
        let mut req = self
            .http
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
            self.forget_token(&token).await;
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

    /// A valid access token: the cached one, or a new one from the token
    /// endpoint. The lock serialises refreshes, so concurrent calls share one.
    async fn access_token(&self) -> Result<Secret, DeliveryError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.fresh_until
        {
            return Ok(t.value.clone());
        }
        *cached = None;
        let service = format!("Google token request for {}", self.key.client_email);
        let signer = self
            .signer
            .as_ref()
            .map_err(|e| DeliveryError::permanent(format!("{service}: {e}")))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key.private_key_id.clone();
        let claims = json!({
            "iss": self.key.client_email,
            "scope": SCOPES,
            "aud": self.settings.token_url,
            "iat": now,
            "exp": now + JWT_LIFETIME_SECS,
        });
        let assertion = jsonwebtoken::encode(&header, &claims, signer).map_err(|e| {
            DeliveryError::permanent(format!("{service}: cannot sign the JWT: {e}"))
        })?;
        let resp = self
            .http
            .post(&self.settings.token_url)
            .form(&[
                ("grant_type", JWT_BEARER_GRANT),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| from_transport(&service, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .map_err(|e| from_transport(&service, &e))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            // OAuth errors: {"error":"invalid_grant","error_description":"…"}.
            let code = v["error"].as_str().unwrap_or_default();
            let detail = v["error_description"].as_str().unwrap_or_default();
            let reason = format!("{service} answered {status}: {code} {detail}")
                .trim_end()
                .to_string();
            return Err(
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    DeliveryError::Retryable {
                        reason,
                        retry_after: retry_after(&headers),
                    }
                } else {
                    DeliveryError::Permanent { reason }
                },
            );
        }
        let Some(token) = v["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(DeliveryError::retry(format!(
                "{service} answered {status} without an access_token"
            )));
        };
        let lifetime = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(0));
        let value = Secret::new(token);
        *cached = Some(CachedToken {
            value: value.clone(),
            fresh_until: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        });
        Ok(value)
    }

    /// Drops the cached token if it is the one that was refused.
    async fn forget_token(&self, refused: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| &t.value == refused) {
            *cached = None;
        }
    }
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

/// Whether a listed permission already gives `grantee` at least `role`.
fn grants(p: &Value, grantee: &Grantee, role: &str) -> bool {
    let same = match grantee {
        Grantee::Domain(d) => {
            p["type"] == "domain"
                && p["domain"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(d))
        }
        Grantee::User(email) => {
            p["type"] == "user"
                && p["emailAddress"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(email))
        }
    };
    same && role_rank(p["role"].as_str().unwrap_or_default()) >= role_rank(role)
}

fn role_rank(role: &str) -> u8 {
    match role {
        "owner" => 6,
        "organizer" => 5,
        "fileOrganizer" => 4,
        "writer" => 3,
        "commenter" => 2,
        "reader" => 1,
        _ => 0,
    }
}

fn to_doc(file: &Value) -> Option<Doc> {
    let id = file["id"].as_str().filter(|s| !s.is_empty())?;
    let url = file["webViewLink"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://docs.google.com/document/d/{id}/edit"));
    Some(Doc {
        id: id.to_string(),
        url,
    })
}

/// Concatenates the text runs of a Docs `Document`'s body paragraphs.
fn body_text(doc: &Value) -> String {
    let mut out = String::new();
    for element in doc["body"]["content"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        for pe in element["paragraph"]["elements"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(t) = pe["textRun"]["content"].as_str() {
                out.push_str(t);
            }
        }
    }
    out
}

/// Escapes a string literal for a Drive query (`'` and `\`).
fn escape_query(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// Percent-encodes an ID for a URL path segment.
fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::*;
    use crate::fakes::google::{
        DEMO_KEY_PEM, FakeGoogle, FakeGoogleOptions, demo_service_account_json,
    };
    use crate::fakes::{Fault, Timeline};
    use crate::vendors::{REQUEST_TIMEOUT, http_client};

    const EMAIL: &str = "pagerd@pagerd-demo.iam.gserviceaccount.com";

    /// A client of `fake` with `key`, no template, no folder.
    fn with_key(fake: &FakeGoogle, key: ServiceAccountKey) -> Google {
        let settings = GoogleSettings {
            token_url: fake.token_url(),
            drive_url: fake.drive_url(),
            docs_url: fake.docs_url(),
            template_id: None,
            folder_id: None,
        };
        Google::new(settings, key, http_client(REQUEST_TIMEOUT))
    }

    async fn setup(template: Option<&str>) -> (FakeGoogle, Google) {
        let fake = FakeGoogle::start(FakeGoogleOptions {
            client_email: EMAIL.into(),
            public_key_pem: crate::fakes::google::DEMO_PUBLIC_KEY_PEM.into(),
            timeline: Timeline::default(),
        })
        .await
        .unwrap();
        if let Some(t) = template {
            fake.add_template(
                t,
                "Postmortem template",
                "Incident report\n{{incident}}\nOwner: tbd",
            );
        }
        let key =
            ServiceAccountKey::from_json(&demo_service_account_json(EMAIL, &fake.token_url()))
                .unwrap();
        let settings = GoogleSettings {
            token_url: fake.token_url(),
            drive_url: fake.drive_url(),
            docs_url: fake.docs_url(),
            template_id: template.map(str::to_string),
            folder_id: Some("folder-1".into()),
        };
        let google = Google::new(settings, key, http_client(REQUEST_TIMEOUT));
        (fake, google)
    }

    #[tokio::test]
    async fn file_meta_reads_without_writing_and_says_what_is_missing() {
        let (fake, google) = setup(Some("tmpl-1")).await;
        fake.add_folder("folder-1", "Crisis docs");
        google.check_token().await.unwrap();
        let t = google.file_meta("tmpl-1").await.unwrap();
        assert_eq!(
            (t.id.as_str(), t.name.as_str(), t.mime_type.as_str()),
            ("tmpl-1", "Postmortem template", GOOGLE_DOC_MIME)
        );
        assert_eq!(
            google.file_meta("folder-1").await.unwrap().mime_type,
            FOLDER_MIME
        );
        assert!(matches!(
            google.file_meta("nope").await,
            Err(ProbeError::NotFound { .. })
        ));
        assert!(
            fake.requests().iter().all(|r| r.starts_with("GET ")),
            "{:?}",
            fake.requests()
        );
        assert!(fake.docs().is_empty());
    }

    #[tokio::test]
    async fn a_refused_key_is_rejected() {
        let (fake, _) = setup(None).await;
        // A key the fake does not know: the grant is refused.
        let other = ServiceAccountKey::from_json(&demo_service_account_json(
            "someone-else@acme-demo.iam.gserviceaccount.com",
            &fake.token_url(),
        ))
        .unwrap();
        let google = with_key(&fake, other);
        assert!(
            matches!(google.check_token().await, Err(ProbeError::Rejected { .. })),
            "{:?}",
            google.check_token().await
        );
    }

    #[test]
    fn key_files_are_validated_without_echoing_the_key() {
        let good = demo_service_account_json(EMAIL, DEFAULT_TOKEN_URL);
        let key = ServiceAccountKey::from_json(&good).unwrap();
        assert_eq!(key.client_email, EMAIL);
        assert!(key.private_key_id.is_some());
        assert_eq!(key.token_uri.as_deref(), Some(DEFAULT_TOKEN_URL));
        assert!(!format!("{key:?}").contains("PRIVATE KEY"));

        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["private_key"] = json!(DEMO_KEY_PEM.replace("MII", "MIX"));
        let e = ServiceAccountKey::from_json(&v.to_string()).unwrap_err();
        assert!(e.contains("not a PEM-encoded RSA private key"), "{e}");
        assert!(!e.contains("BEGIN") && !e.contains("MIX"), "{e}");

        v["private_key"] = json!(crate::fakes::google::DEMO_PUBLIC_KEY_PEM);
        assert!(ServiceAccountKey::from_json(&v.to_string()).is_err());
        v["private_key"] = json!(DEMO_KEY_PEM);
        v["type"] = json!("authorized_user");
        assert!(
            ServiceAccountKey::from_json(&v.to_string())
                .unwrap_err()
                .contains("authorized_user")
        );
        assert!(
            ServiceAccountKey::from_json("{")
                .unwrap_err()
                .contains("not a JSON key file")
        );
        assert!(
            ServiceAccountKey::from_json("{}")
                .unwrap_err()
                .contains("client_email")
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, good).unwrap();
        assert_eq!(ServiceAccountKey::from_file(&path).unwrap(), key);
        assert!(
            ServiceAccountKey::from_file(&dir.path().join("nope.json"))
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[tokio::test]
    async fn the_fake_tells_the_story() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let fake = FakeGoogle::start(FakeGoogleOptions {
            client_email: EMAIL.into(),
            public_key_pem: crate::fakes::google::DEMO_PUBLIC_KEY_PEM.into(),
            timeline: Timeline::new(tx),
        })
        .await
        .unwrap();
        fake.add_template("tmpl", "Postmortem template", "{{incident}}");
        let key =
            ServiceAccountKey::from_json(&demo_service_account_json(EMAIL, &fake.token_url()))
                .unwrap();
        let settings = GoogleSettings {
            token_url: fake.token_url(),
            drive_url: fake.drive_url(),
            docs_url: fake.docs_url(),
            template_id: Some("tmpl".into()),
            folder_id: None,
        };
        let google = Google::new(settings, key, http_client(REQUEST_TIMEOUT));
        let doc = google
            .create_doc("Incident 3", "db down", "inc-3/doc")
            .await
            .unwrap();
        google
            .share(
                &doc.id,
                &Grantee::User("alice@example.com".into()),
                "writer",
            )
            .await
            .unwrap();
        google
            .deprecate(&doc.id, "[OLD] ", "Superseded.")
            .await
            .unwrap();
        drop(google);
        drop(fake);
        let mut lines = Vec::new();
        while let Some(l) = rx.recv().await {
            lines.push(l);
        }
        assert_eq!(
            lines,
            [
                format!("Google: issued an access token to {EMAIL}"),
                "Google Drive: search for a doc marked pagerd_key=inc-3/doc found 0".to_string(),
                "Google Drive: copied \"Postmortem template\" to new doc \"Incident 3\" marked pagerd_key=inc-3/doc"
                    .to_string(),
                "Google Docs: edited \"Incident 3\": replaced 1 × {{incident}}".to_string(),
                "Google Drive: shared \"Incident 3\" with user alice@example.com as writer (notification e-mail sent)"
                    .to_string(),
                "Google Drive: renamed \"Incident 3\" to \"[OLD] Incident 3\"".to_string(),
                "Google Docs: edited \"[OLD] Incident 3\": inserted 12 characters".to_string(),
            ]
        );
    }

    #[tokio::test]
    async fn methods_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let (_fake, google) = setup(None).await;
        assert_send(&google.create_doc("t", "b", "m"));
        assert_send(&google.share("d", &Grantee::User("a@b".into()), "reader"));
        assert_send(&google.deprecate("d", "[X] ", "n"));
        assert!(!format!("{google:?}").contains("PRIVATE"));
    }

    #[tokio::test]
    async fn creates_a_blank_doc_once_with_one_token() {
        let (fake, google) = setup(None).await;
        let doc = google
            .create_doc(
                "Incident 42: db down",
                "Summary: db down\nImpact: all",
                "inc-42/doc",
            )
            .await
            .unwrap();
        assert!(doc.url.contains(&doc.id));
        let again = google
            .create_doc(
                "Incident 42: db down",
                "Summary: db down\nImpact: all",
                "inc-42/doc",
            )
            .await
            .unwrap();
        assert_eq!(again, doc);
        assert_eq!(fake.tokens_issued(), 1);

        let docs = fake.docs();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].name, "Incident 42: db down");
        assert_eq!(docs[0].text, "Summary: db down\nImpact: all");
        assert_eq!(
            docs[0].app_properties.get("pagerd_key").map(String::as_str),
            Some("inc-42/doc")
        );

        google
            .create_doc("Incident 43", "other", "inc-43/doc")
            .await
            .unwrap();
        assert_eq!(fake.docs().len(), 2);
        assert_eq!(fake.tokens_issued(), 1);
    }

    #[tokio::test]
    async fn a_doc_left_blank_by_a_crash_is_filled_on_retry() {
        let (fake, google) = setup(None).await;
        // As if the attempt stopped between files.create and the write.
        let doc = google
            .create_doc("Incident 7", "", "inc-7/doc")
            .await
            .unwrap();
        assert_eq!(fake.docs()[0].text, "");
        let again = google
            .create_doc("Incident 7", "the body", "inc-7/doc")
            .await
            .unwrap();
        assert_eq!(again.id, doc.id);
        assert_eq!(fake.docs()[0].text, "the body");
        // Filled docs are left alone.
        google
            .create_doc("Incident 7", "the body", "inc-7/doc")
            .await
            .unwrap();
        assert_eq!(fake.docs()[0].text, "the body");
    }

    #[tokio::test]
    async fn creates_from_a_template() {
        let (fake, google) = setup(Some("tmpl-1")).await;
        let doc = google
            .create_doc("Incident 9", "Summary: cache cold", "inc-9/doc")
            .await
            .unwrap();
        let again = google
            .create_doc("Incident 9", "Summary: cache cold", "inc-9/doc")
            .await
            .unwrap();
        assert_eq!(again, doc);
        let docs = fake.docs();
        assert_eq!(docs.len(), 1, "the template is not listed, one copy made");
        assert_eq!(docs[0].id, doc.id);
        assert_eq!(
            docs[0].text,
            "Incident report\nSummary: cache cold\nOwner: tbd"
        );
    }

    #[tokio::test]
    async fn missing_template_is_permanent() {
        let (_fake, google) = setup(None).await;
        let google = Google {
            settings: GoogleSettings {
                template_id: Some("nope".into()),
                ..google.settings.clone()
            },
            ..google
        };
        let e = google.create_doc("t", "b", "m").await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        assert!(e.to_string().contains("404"), "{e}");
    }

    #[tokio::test]
    async fn shares_once_per_grantee() {
        let (fake, google) = setup(None).await;
        let doc = google
            .create_doc("Incident 1", "b", "inc-1/doc")
            .await
            .unwrap();
        google
            .share(&doc.id, &Grantee::Domain("example.com".into()), "commenter")
            .await
            .unwrap();
        google
            .share(
                &doc.id,
                &Grantee::User("alice@example.com".into()),
                "writer",
            )
            .await
            .unwrap();
        google
            .share(&doc.id, &Grantee::Domain("example.com".into()), "commenter")
            .await
            .unwrap();
        google
            .share(
                &doc.id,
                &Grantee::User("Alice@example.com".into()),
                "reader",
            )
            .await
            .unwrap();
        let creates = fake
            .requests()
            .iter()
            .filter(|r| r.starts_with("POST") && r.ends_with("/permissions"))
            .count();
        assert_eq!(creates, 2);
        let perms = &fake.docs()[0].permissions;
        assert!(perms.iter().any(|p| p["type"] == "domain"
            && p["domain"] == "example.com"
            && p["role"] == "commenter"));
        assert!(perms.iter().any(|p| p["type"] == "user"
            && p["emailAddress"] == "alice@example.com"
            && p["role"] == "writer"));

        let e = google
            .share(&doc.id, &Grantee::User("bob@example.com".into()), "owner")
            .await
            .unwrap_err();
        assert!(!e.is_retryable());
        let e = google
            .share(
                "missing",
                &Grantee::User("bob@example.com".into()),
                "reader",
            )
            .await
            .unwrap_err();
        assert!(!e.is_retryable(), "{e}");
    }

    #[tokio::test]
    async fn deprecate_is_idempotent() {
        let (fake, google) = setup(None).await;
        let doc = google
            .create_doc("Incident 5", "Summary", "inc-5/doc")
            .await
            .unwrap();
        for _ in 0..2 {
            google
                .deprecate(
                    &doc.id,
                    "[SUPERSEDED] ",
                    "This doc is superseded by incident 6.",
                )
                .await
                .unwrap();
        }
        let d = &fake.docs()[0];
        assert_eq!(d.name, "[SUPERSEDED] Incident 5");
        assert_eq!(d.text, "This doc is superseded by incident 6.\nSummary");
    }

    #[tokio::test]
    async fn errors_and_token_expiry_are_classified() {
        let (fake, google) = setup(None).await;
        google.create_doc("a", "b", "k1").await.unwrap();

        // A revoked token: 401, retryable, and the next call gets a new one.
        fake.revoke_tokens();
        let e = google.create_doc("c", "d", "k2").await.unwrap_err();
        assert!(e.is_retryable() && e.to_string().contains("401"), "{e}");
        google.create_doc("c", "d", "k2").await.unwrap();
        assert_eq!(fake.tokens_issued(), 2);

        fake.faults.push(
            Fault::Status {
                status: 429,
                retry_after: Some(3),
            },
            1,
        );
        match google.create_doc("e", "f", "k3").await.unwrap_err() {
            DeliveryError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }
        fake.faults.push(
            Fault::Status {
                status: 500,
                retry_after: None,
            },
            1,
        );
        assert!(
            google
                .create_doc("e", "f", "k3")
                .await
                .unwrap_err()
                .is_retryable()
        );
        let e = google.deprecate("nope", "[X] ", "n").await.unwrap_err();
        assert!(
            !e.is_retryable() && e.to_string().contains("NOT_FOUND"),
            "{e}"
        );

        let classified = api_error(
            "Google Drive files.list",
            StatusCode::FORBIDDEN,
            &reqwest::header::HeaderMap::new(),
            r#"{"error":{"code":403,"message":"User rate limit exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#,
        );
        assert!(classified.is_retryable());
        let classified = api_error(
            "Google Drive files.list",
            StatusCode::FORBIDDEN,
            &reqwest::header::HeaderMap::new(),
            r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!(
            classified,
            DeliveryError::permanent(
                "Google Drive files.list answered 403 Forbidden PERMISSION_DENIED: The caller does not have permission"
            )
        );
    }

    #[tokio::test]
    async fn a_key_the_token_endpoint_refuses_is_permanent() {
        let (fake, _) = setup(None).await;
        let key = ServiceAccountKey::from_json(&demo_service_account_json(
            "someone-else@x.iam.gserviceaccount.com",
            &fake.token_url(),
        ))
        .unwrap();
        let google = with_key(&fake, key);
        let e = google.create_doc("t", "b", "m").await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        assert!(e.to_string().contains("invalid_grant"), "{e}");
        assert!(!e.to_string().contains("eyJ"), "no JWT in errors: {e}");
        assert_eq!(fake.tokens_issued(), 0);
    }
}
