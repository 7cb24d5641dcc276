//! Service-account auth for every Google API pagerd calls: the key file,
//! the JWT bearer grant, and the access token cache.
//!
//! An RS256 JWT signed with the key file's private key (`iss` the account,
//! `scope` what the caller asks for, `aud` the token endpoint, and `sub`
//! the user to act as when domain-wide delegation is used) is exchanged at
//! the token endpoint for an access token, cached until a minute before it
//! expires. Each [`TokenSource`] is one identity with one set of scopes:
//! Drive and Docs act as the service account itself, Calendar may act as an
//! impersonated user (`google.impersonate`), so each has its own source and
//! its own cache.
//!
//! What this module does not own: the API calls themselves ([`super::call`]
//! uses a source and drops its token on a 401).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::secret::Secret;
use crate::vendors::{DeliveryError, ProbeError, from_transport, retry_after};

/// Scopes the Drive/Docs token asks for.
pub const SCOPES: &str =
    "https://www.googleapis.com/auth/drive https://www.googleapis.com/auth/documents";
/// Scopes the Calendar token asks for: events (list, insert) and reading the
/// calendar itself (`calendars.get`, for `pagerd doctor`). With domain-wide
/// delegation, the Workspace admin grants the service account's client ID
/// exactly these.
pub const CALENDAR_SCOPES: &str = "https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.readonly";
/// The OAuth grant type of the JWT bearer flow.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// Lifetime asked of each JWT (Google's maximum).
const JWT_LIFETIME_SECS: u64 = 3600;
/// A cached access token is replaced this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

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

struct CachedToken {
    value: Secret,
    fresh_until: Instant,
}

/// Access tokens for one identity and one set of scopes, fetched with the
/// JWT bearer grant and cached.
pub struct TokenSource {
    key: ServiceAccountKey,
    signer: Result<EncodingKey, String>,
    token_url: String,
    scopes: &'static str,
    subject: Option<String>,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_email", &self.key.client_email)
            .field("token_url", &self.token_url)
            .field("scopes", &self.scopes)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source of tokens for `key` with `scopes` at `token_url` (also the
    /// JWT `aud`), acting as `subject` when given (domain-wide delegation).
    /// An unusable key is reported by the first request, as a permanent
    /// error.
    pub fn new(
        key: ServiceAccountKey,
        token_url: String,
        scopes: &'static str,
        subject: Option<String>,
        http: reqwest::Client,
    ) -> TokenSource {
        TokenSource {
            signer: signing_key(&key.private_key),
            key,
            token_url,
            scopes,
            subject,
            http,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The service account (its `client_email`).
    pub fn account(&self) -> &str {
        &self.key.client_email
    }

    /// The user acted as, if any.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// A valid access token, as a check (`pagerd doctor`): a refused grant
    /// or an unusable key is [`ProbeError::Rejected`].
    pub async fn probe(&self) -> Result<Secret, ProbeError> {
        self.access_token().await.map_err(|e| match e {
            DeliveryError::Permanent { reason } => ProbeError::Rejected { reason },
            e => ProbeError::Failed(e),
        })
    }

    /// A valid access token: the cached one, or a new one from the token
    /// endpoint. The lock serialises refreshes, so concurrent calls share one.
    pub async fn access_token(&self) -> Result<Secret, DeliveryError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.fresh_until
        {
            return Ok(t.value.clone());
        }
        *cached = None;
        let service = match &self.subject {
            Some(sub) => format!(
                "Google token request for {} acting as {sub}",
                self.key.client_email
            ),
            None => format!("Google token request for {}", self.key.client_email),
        };
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
        let mut claims = json!({
            "iss": self.key.client_email,
            "scope": self.scopes,
            "aud": self.token_url,
            "iat": now,
            "exp": now + JWT_LIFETIME_SECS,
        });
        if let Some(sub) = &self.subject {
            claims["sub"] = json!(sub);
        }
        let assertion = jsonwebtoken::encode(&header, &claims, signer).map_err(|e| {
            DeliveryError::permanent(format!("{service}: cannot sign the JWT: {e}"))
        })?;
        let resp = self
            .http
            .post(&self.token_url)
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
    pub async fn forget(&self, refused: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| &t.value == refused) {
            *cached = None;
        }
    }
}
