//! A fake Google: the OAuth token endpoint, the Drive v3 and Docs v1 methods
//! pagerd uses, on one loopback server.
//!
//! - `POST /token` — the service-account JWT bearer flow: checks
//!   `grant_type` and verifies the assertion (RS256 with the configured
//!   public key, `aud` = this endpoint, `iss` = the service account,
//!   unexpired, at most one hour long, a `scope`), then issues a bearer
//!   token valid for 3599 s.
//! - Drive (`/drive/v3`): `files.create` (metadata-only Google Docs and
//!   folders), `files.copy`, `files.list` (the `appProperties has { key=…
//!   and value=… }`, `trashed`, `name`, `mimeType` and `in parents` terms
//!   joined by `and`), `files.get`, `files.update` (PATCH), `permissions.create`
//!   (validated like Drive), `permissions.list`. The `fields` parameter is
//!   honoured, with Drive's defaults when absent.
//! - Docs (`/v1/documents`): `create`, `get` (body as paragraphs of text
//!   runs, UTF-16 indices), `batchUpdate` (`insertText` at an index or the
//!   end of the body, `replaceAllText`; atomic).
//!
//! Every Drive/Docs call needs a bearer token this fake issued (else 401 in
//! Google's error shape) with a fitting scope (else 403). Docs are plain text
//! here: no styles, tables or tabs.

#![allow(
    clippy::result_large_err,
    reason = "helpers of axum handlers return the early answer as a Response; a loopback test fake"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngExt;
use serde_json::{Map, Value, json};

use super::slack::form_decode;
use super::{Faults, Server, Timeline};

/// A PUBLIC DEMO/TEST RSA key (2048-bit, PKCS#8), generated for pagerd's
/// fakes and committed on purpose. It protects nothing: the fake Google
/// trusts it, real Google never heard of it. Never use it for anything real.
pub const DEMO_KEY_PEM: &str = include_str!("google-demo-key.pem");
/// The public half of [`DEMO_KEY_PEM`], for [`FakeGoogleOptions::public_key_pem`].
pub const DEMO_PUBLIC_KEY_PEM: &str = include_str!("google-demo-key.pub.pem");
/// The `private_key_id` of the demo key file.
pub const DEMO_KEY_ID: &str = "00000000000000000000000000000000000de301";

/// A service-account key file like the ones Google issues, holding the demo
/// key: for `pagerd demo` and tests.
pub fn demo_service_account_json(client_email: &str, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "pagerd-demo",
        "private_key_id": DEMO_KEY_ID,
        "private_key": DEMO_KEY_PEM,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

const DOC_MIME: &str = "application/vnd.google-apps.document";
const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
const SCOPE_DRIVE: &str = "https://www.googleapis.com/auth/drive";
const SCOPE_DRIVE_FILE: &str = "https://www.googleapis.com/auth/drive.file";
const SCOPE_DOCS: &str = "https://www.googleapis.com/auth/documents";
const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// How to start a [`FakeGoogle`].
#[derive(Clone, Default)]
pub struct FakeGoogleOptions {
    /// The service account allowed to get tokens (the JWT `iss`).
    pub client_email: String,
    /// Its public key (SPKI PEM), to verify the JWT signature.
    pub public_key_pem: String,
    /// Where to say what happened.
    pub timeline: Timeline,
}

/// A Google Doc as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDoc {
    /// Drive file ID = Docs document ID.
    pub id: String,
    /// The Drive name (= Docs title).
    pub name: String,
    /// The body text, paragraphs separated by `\n`, without the final
    /// newline every Docs body ends with.
    pub text: String,
    /// `appProperties`.
    pub app_properties: BTreeMap<String, String>,
    /// Permissions as Drive lists them (the owner first).
    pub permissions: Vec<Value>,
}

struct File {
    id: String,
    name: String,
    mime_type: String,
    parents: Vec<String>,
    app_properties: BTreeMap<String, String>,
    trashed: bool,
    /// Docs only: the body text, always ending with `\n`.
    text: String,
    permissions: Vec<Value>,
    template: bool,
    revision: u64,
}

struct IssuedToken {
    expires: Instant,
    scopes: Vec<String>,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, IssuedToken>,
    tokens_issued: usize,
    files: Vec<File>,
    next_id: u64,
    requests: Vec<String>,
}

impl Inner {
    fn file(&self, id: &str) -> Option<&File> {
        self.files.iter().find(|f| f.id == id)
    }

    fn file_mut(&mut self, id: &str) -> Option<&mut File> {
        self.files.iter_mut().find(|f| f.id == id)
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        let r: u32 = rand::rng().random();
        format!("{prefix}{:04}{r:08x}", self.next_id)
    }
}

struct Shared {
    client_email: String,
    key: DecodingKey,
    timeline: Timeline,
    faults: Faults,
    base_url: OnceLock<String>,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or_default()
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.base())
    }

    fn file_json(&self, f: &File) -> Value {
        json!({
            "kind": "drive#file",
            "id": f.id,
            "name": f.name,
            "mimeType": f.mime_type,
            "parents": f.parents,
            "appProperties": f.app_properties,
            "trashed": f.trashed,
            "webViewLink": format!("{}/document/d/{}/edit", self.base(), f.id),
            "version": f.revision.to_string(),
        })
    }
}

/// A running fake Google; stops when dropped.
pub struct FakeGoogle {
    server: Server,
    shared: Arc<Shared>,
    /// Faults to inject into the next requests (token, Drive or Docs).
    pub faults: Faults,
}

impl FakeGoogle {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(opts: FakeGoogleOptions) -> std::io::Result<FakeGoogle> {
        let key = DecodingKey::from_rsa_pem(opts.public_key_pem.as_bytes()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "public_key_pem is not a PEM RSA public key",
            )
        })?;
        let faults = Faults::default();
        let shared = Arc::new(Shared {
            client_email: opts.client_email,
            key,
            timeline: opts.timeline,
            faults: faults.clone(),
            base_url: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
        });
        let router = Router::new()
            .route("/token", post(token))
            .route("/drive/v3/files", get(files_list).post(files_create))
            .route("/drive/v3/files/{id}", get(files_get).patch(files_update))
            .route("/drive/v3/files/{id}/copy", post(files_copy))
            .route(
                "/drive/v3/files/{id}/permissions",
                get(permissions_list).post(permissions_create),
            )
            .route("/v1/documents", post(documents_create))
            .route(
                "/v1/documents/{id}",
                get(documents_get).post(documents_batch_update),
            )
            .route("/document/d/{id}/edit", get(view))
            .with_state(shared.clone());
        let server = Server::spawn(router).await?;
        let _ = shared.base_url.set(server.url());
        Ok(FakeGoogle {
            server,
            shared,
            faults,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// The token endpoint, `{url}/token` (also the JWT `aud` it expects).
    pub fn token_url(&self) -> String {
        self.shared.token_url()
    }

    /// The Drive v3 base, `{url}/drive/v3`.
    pub fn drive_url(&self) -> String {
        format!("{}/drive/v3", self.url())
    }

    /// The Docs base, `{url}` (the client appends `/v1/documents`).
    pub fn docs_url(&self) -> String {
        self.url()
    }

    /// Registers a Google Doc to copy (a template), holding `text`.
    /// Templates are not listed by [`FakeGoogle::docs`].
    pub fn add_template(&self, id: &str, name: &str, text: &str) {
        let mut inner = self.shared.lock();
        inner.files.retain(|f| f.id != id);
        let owner = owner_permission(&self.shared.client_email);
        inner.files.push(File {
            id: id.to_string(),
            name: name.to_string(),
            mime_type: DOC_MIME.to_string(),
            parents: Vec::new(),
            app_properties: BTreeMap::new(),
            trashed: false,
            text: with_final_newline(text),
            permissions: vec![owner],
            template: true,
            revision: 1,
        });
    }

    /// Registers a Drive folder (new docs may go there: `google.folder_id`).
    pub fn add_folder(&self, id: &str, name: &str) {
        let mut inner = self.shared.lock();
        inner.files.retain(|f| f.id != id);
        let owner = owner_permission(&self.shared.client_email);
        inner.files.push(File {
            id: id.to_string(),
            name: name.to_string(),
            mime_type: FOLDER_MIME.to_string(),
            parents: Vec::new(),
            app_properties: BTreeMap::new(),
            trashed: false,
            text: String::new(),
            permissions: vec![owner],
            template: true,
            revision: 1,
        });
    }

    /// Every Google Doc created through the API (not templates), oldest first.
    pub fn docs(&self) -> Vec<FakeDoc> {
        self.shared
            .lock()
            .files
            .iter()
            .filter(|f| f.mime_type == DOC_MIME && !f.template)
            .map(|f| FakeDoc {
                id: f.id.clone(),
                name: f.name.clone(),
                text: f.text.strip_suffix('\n').unwrap_or(&f.text).to_string(),
                app_properties: f.app_properties.clone(),
                permissions: f.permissions.clone(),
            })
            .collect()
    }

    /// How many access tokens the token endpoint issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.lock().tokens_issued
    }

    /// Invalidates every issued token (as if they expired or were revoked):
    /// the next Drive/Docs call gets a 401.
    pub fn revoke_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// `METHOD /path` of every Drive/Docs request handled (not those answered
    /// by an injected fault), in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }
}

fn owner_permission(email: &str) -> Value {
    json!({
        "kind": "drive#permission", "id": "owner", "type": "user", "role": "owner",
        "emailAddress": email, "displayName": email,
    })
}

fn with_final_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

// -------------------------------------------------------------- responses

/// Google's error shape.
fn gerr(code: u16, status: &str, message: &str, reason: &str) -> Response {
    let http = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({ "error": {
        "code": code,
        "message": message,
        "errors": [{ "message": message, "domain": "global", "reason": reason }],
        "status": status,
    }});
    (http, axum::Json(body)).into_response()
}

fn bad_request(message: &str) -> Response {
    gerr(400, "INVALID_ARGUMENT", message, "badRequest")
}

fn not_found(id: &str) -> Response {
    gerr(
        404,
        "NOT_FOUND",
        &format!("File not found: {id}."),
        "notFound",
    )
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

#[derive(Clone, Copy)]
enum Api {
    Drive,
    Docs,
}

/// The common start of every Drive/Docs handler: faults, request log, token
/// and scope check.
async fn guard(
    shared: &Shared,
    headers: &HeaderMap,
    api: Api,
    request: String,
) -> Result<(), Response> {
    if let Some(r) = shared.faults.intercept().await {
        return Err(r);
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let mut inner = shared.lock();
    inner.requests.push(request);
    let Some(token) = bearer
        .and_then(|t| inner.tokens.get(t))
        .filter(|t| t.expires > Instant::now())
    else {
        return Err(gerr(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            "authError",
        ));
    };
    let allowed: &[&str] = match api {
        Api::Drive => &[SCOPE_DRIVE, SCOPE_DRIVE_FILE],
        Api::Docs => &[SCOPE_DOCS, SCOPE_DRIVE, SCOPE_DRIVE_FILE],
    };
    if !token.scopes.iter().any(|s| allowed.contains(&s.as_str())) {
        return Err(gerr(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
        ));
    }
    Ok(())
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, Response> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request(
            "Invalid JSON payload received. Expected an object.",
        )),
        Err(e) => Err(bad_request(&format!("Invalid JSON payload received. {e}"))),
    }
}

// ---------------------------------------------------------------- token

async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(r) = shared.faults.intercept().await {
        return r;
    }
    let form: HashMap<String, String> = form_decode(&String::from_utf8_lossy(&body))
        .into_iter()
        .collect();
    let grant = form
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or_default();
    if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        shared.timeline.say(format!(
            "Google: refused a token request with grant_type {grant:?}"
        ));
        return oauth_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant}"),
        );
    }
    let Some(assertion) = form.get("assertion").filter(|a| !a.is_empty()) else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    match verify_assertion(&shared, assertion) {
        Ok((iss, scopes)) => {
            let r: u128 = rand::rng().random();
            let access_token = format!("ya29.fake-{r:032x}");
            let mut inner = shared.lock();
            inner.tokens.insert(
                access_token.clone(),
                IssuedToken {
                    expires: Instant::now() + TOKEN_LIFETIME,
                    scopes,
                },
            );
            inner.tokens_issued += 1;
            drop(inner);
            shared
                .timeline
                .say(format!("Google: issued an access token to {iss}"));
            axum::Json(json!({
                "access_token": access_token,
                "expires_in": TOKEN_LIFETIME.as_secs(),
                "token_type": "Bearer",
            }))
            .into_response()
        }
        Err((code, description)) => {
            shared
                .timeline
                .say(format!("Google: refused a token request: {description}"));
            oauth_error(code, &description)
        }
    }
}

/// Verifies the JWT like Google's token endpoint: `(iss, scopes)` or an
/// OAuth error code and description.
fn verify_assertion(
    shared: &Shared,
    jwt: &str,
) -> Result<(String, Vec<String>), (&'static str, String)> {
    use jsonwebtoken::errors::ErrorKind;
    const SHORT_LIVED: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
    let token_url = shared.token_url();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&token_url]);
    validation.set_issuer(&[&shared.client_email]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(jwt, &shared.key, &validation).map_err(|e| {
        let description = match e.kind() {
            ErrorKind::InvalidSignature => "Invalid JWT Signature.".to_string(),
            ErrorKind::ExpiredSignature => SHORT_LIVED.to_string(),
            ErrorKind::InvalidAudience => {
                format!("Invalid JWT: Failed audience check. The expected value was {token_url}")
            }
            ErrorKind::InvalidIssuer => "Invalid email or User ID".to_string(),
            ErrorKind::MissingRequiredClaim(c) => format!("Invalid JWT: missing claim {c}"),
            ErrorKind::InvalidAlgorithm => {
                "Invalid JWT: the signing algorithm must be RS256".to_string()
            }
            other => format!("Invalid JWT: {other:?}"),
        };
        ("invalid_grant", description)
    })?;
    let claims = data.claims;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let iat = claims["iat"].as_i64().unwrap_or(i64::MAX);
    let exp = claims["exp"].as_i64().unwrap_or(i64::MIN);
    if exp - iat > 3600 || exp <= iat || iat > now + 60 {
        return Err(("invalid_grant", SHORT_LIVED.to_string()));
    }
    let scopes: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return Err((
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.".to_string(),
        ));
    }
    let iss = claims["iss"].as_str().unwrap_or_default().to_string();
    Ok((iss, scopes))
}

// ------------------------------------------------------------ fields mask

/// A parsed `fields` parameter: names, each with an optional sub-mask.
#[derive(Debug, Clone, PartialEq)]
struct Mask(Vec<(String, Option<Mask>)>);

fn parse_mask(s: &str) -> Result<Mask, ()> {
    fn items(chars: &[char], pos: &mut usize) -> Result<Mask, ()> {
        let mut out = Vec::new();
        let done = |out| Ok(Mask(out));
        loop {
            let start = *pos;
            while *pos < chars.len() && !matches!(chars[*pos], ',' | '(' | ')') {
                *pos += 1;
            }
            let name: String = chars[start..*pos]
                .iter()
                .collect::<String>()
                .trim()
                .to_string();
            if name.is_empty() {
                return Err(());
            }
            let mut sub = None;
            if chars.get(*pos) == Some(&'(') {
                *pos += 1;
                sub = Some(items(chars, pos)?);
                if chars.get(*pos) != Some(&')') {
                    return Err(());
                }
                *pos += 1;
            }
            out.push((name, sub));
            match chars.get(*pos) {
                Some(',') => *pos += 1,
                _ => return done(out),
            }
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let mask = items(&chars, &mut pos)?;
    if pos != chars.len() {
        return Err(());
    }
    Ok(mask)
}

fn apply_mask(v: &Value, mask: &Mask) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(|x| apply_mask(x, mask)).collect()),
        Value::Object(o) => {
            if mask.0.iter().any(|(n, _)| n == "*") {
                return v.clone();
            }
            let mut out = Map::new();
            for (name, sub) in &mask.0 {
                if let Some(x) = o.get(name) {
                    out.insert(
                        name.clone(),
                        sub.as_ref().map_or_else(|| x.clone(), |m| apply_mask(x, m)),
                    );
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Applies the request's `fields`, or Drive's default for this resource.
fn select(v: Value, query: &HashMap<String, String>, default: &str) -> Response {
    let fields = query
        .get("fields")
        .map(String::as_str)
        .filter(|f| !f.is_empty())
        .unwrap_or(default);
    match parse_mask(fields) {
        Ok(mask) => axum::Json(apply_mask(&v, &mask)).into_response(),
        Err(()) => gerr(
            400,
            "INVALID_ARGUMENT",
            &format!("Invalid field selection {fields}"),
            "invalidParameter",
        ),
    }
}

const FILE_DEFAULT: &str = "kind,id,name,mimeType";
const LIST_DEFAULT: &str = "kind,incompleteSearch,files(kind,id,name,mimeType)";
const PERMISSION_DEFAULT: &str = "kind,id,type,role";
const PERMISSION_LIST_DEFAULT: &str = "kind,permissions(kind,id,type,role)";

// ----------------------------------------------------------- Drive query

#[derive(Debug, Clone, PartialEq)]
enum Term {
    AppProperty(String, String),
    Trashed(bool),
    Name { op: String, value: String },
    MimeType { equal: bool, value: String },
    InParents(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(String),
}

fn tokenize(q: &str) -> Result<Vec<Tok>, ()> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(()),
                    Some('\\') => {
                        s.push(*chars.get(i + 1).ok_or(())?);
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c == '!' && chars.get(i + 1) == Some(&'=') {
            out.push(Tok::Sym("!=".into()));
            i += 2;
        } else if matches!(c, '=' | '{' | '}') {
            out.push(Tok::Sym(c.to_string()));
            i += 1;
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            return Err(());
        }
    }
    Ok(out)
}

fn parse_query(q: &str) -> Result<Vec<Term>, ()> {
    let toks = tokenize(q)?;
    let mut i = 0;
    let word = |i: &mut usize, w: &str| -> Result<(), ()> {
        match toks.get(*i) {
            Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w) => {
                *i += 1;
                Ok(())
            }
            _ => Err(()),
        }
    };
    let sym = |i: &mut usize, s: &str| -> Result<(), ()> {
        match toks.get(*i) {
            Some(Tok::Sym(x)) if x == s => {
                *i += 1;
                Ok(())
            }
            _ => Err(()),
        }
    };
    let string = |i: &mut usize| -> Result<String, ()> {
        match toks.get(*i) {
            Some(Tok::Str(s)) => {
                *i += 1;
                Ok(s.clone())
            }
            _ => Err(()),
        }
    };
    let mut terms = Vec::new();
    loop {
        let term = match toks.get(i) {
            Some(Tok::Word(w)) if w == "appProperties" => {
                i += 1;
                word(&mut i, "has")?;
                sym(&mut i, "{")?;
                word(&mut i, "key")?;
                sym(&mut i, "=")?;
                let k = string(&mut i)?;
                word(&mut i, "and")?;
                word(&mut i, "value")?;
                sym(&mut i, "=")?;
                let v = string(&mut i)?;
                sym(&mut i, "}")?;
                Term::AppProperty(k, v)
            }
            Some(Tok::Word(w)) if w == "trashed" => {
                i += 1;
                let equal = sym(&mut i, "=").is_ok() || (sym(&mut i, "!=").map(|_| false)?);
                let b = match toks.get(i) {
                    Some(Tok::Word(x)) if x == "true" => true,
                    Some(Tok::Word(x)) if x == "false" => false,
                    _ => return Err(()),
                };
                i += 1;
                Term::Trashed(if equal { b } else { !b })
            }
            Some(Tok::Word(w)) if w == "name" => {
                i += 1;
                let op = match toks.get(i) {
                    Some(Tok::Sym(s)) if s == "=" || s == "!=" => s.clone(),
                    Some(Tok::Word(s)) if s == "contains" => s.clone(),
                    _ => return Err(()),
                };
                i += 1;
                Term::Name {
                    op,
                    value: string(&mut i)?,
                }
            }
            Some(Tok::Word(w)) if w == "mimeType" => {
                i += 1;
                let equal = sym(&mut i, "=").is_ok() || (sym(&mut i, "!=").map(|_| false)?);
                Term::MimeType {
                    equal,
                    value: string(&mut i)?,
                }
            }
            Some(Tok::Str(s)) => {
                let id = s.clone();
                i += 1;
                word(&mut i, "in")?;
                word(&mut i, "parents")?;
                Term::InParents(id)
            }
            _ => return Err(()),
        };
        terms.push(term);
        if i == toks.len() {
            return Ok(terms);
        }
        word(&mut i, "and")?;
    }
}

fn matches(f: &File, term: &Term) -> bool {
    match term {
        Term::AppProperty(k, v) => f.app_properties.get(k) == Some(v),
        Term::Trashed(t) => f.trashed == *t,
        Term::Name { op, value } => match op.as_str() {
            "=" => &f.name == value,
            "!=" => &f.name != value,
            _ => f.name.contains(value.as_str()),
        },
        Term::MimeType { equal, value } => (&f.mime_type == value) == *equal,
        Term::InParents(id) => f.parents.contains(id),
    }
}

// ----------------------------------------------------------------- Drive

/// Reads `appProperties` of a create/copy/update body into `props` (null
/// values delete, as Drive does).
fn merge_app_properties(
    props: &mut BTreeMap<String, String>,
    body: &Map<String, Value>,
) -> Result<(), Response> {
    match body.get("appProperties") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::Null => {
                        props.remove(k);
                    }
                    Value::String(s) => {
                        props.insert(k.clone(), s.clone());
                    }
                    _ => return Err(bad_request("appProperties values must be strings")),
                }
            }
            Ok(())
        }
        Some(_) => Err(bad_request("appProperties must be an object")),
    }
}

fn parents_of(body: &Map<String, Value>) -> Result<Vec<String>, Response> {
    let parents: Vec<String> = match body.get("parents") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| p.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad_request("parents must be strings"))?,
        Some(_) => return Err(bad_request("parents must be an array")),
    };
    if parents.len() > 1 {
        return Err(gerr(
            403,
            "PERMISSION_DENIED",
            "Increasing the number of parents is not allowed.",
            "cannotAddParent",
        ));
    }
    Ok(parents)
}

fn marker_note(props: &BTreeMap<String, String>) -> String {
    props
        .get("pagerd_key")
        .map(|k| format!(" marked pagerd_key={k}"))
        .unwrap_or_default()
}

async fn files_list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = guard(&shared, &headers, Api::Drive, "GET /drive/v3/files".into()).await {
        return r;
    }
    let q = query.get("q").map(String::as_str).unwrap_or_default();
    let terms = if q.trim().is_empty() {
        Vec::new()
    } else {
        match parse_query(q) {
            Ok(t) => t,
            Err(()) => return gerr(400, "INVALID_ARGUMENT", "Invalid Value", "invalid"),
        }
    };
    let files: Vec<Value> = {
        let inner = shared.lock();
        inner
            .files
            .iter()
            .filter(|f| terms.iter().all(|t| matches(f, t)))
            .map(|f| shared.file_json(f))
            .collect()
    };
    let searched = terms.iter().find_map(|t| match t {
        Term::AppProperty(k, v) => Some(format!("{k}={v}")),
        _ => None,
    });
    if let Some(s) = searched {
        shared.timeline.say(format!(
            "Google Drive: search for a doc marked {s} found {}",
            files.len()
        ));
    }
    select(
        json!({ "kind": "drive#fileList", "incompleteSearch": false, "files": files }),
        &query,
        LIST_DEFAULT,
    )
}

async fn files_create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(&shared, &headers, Api::Drive, "POST /drive/v3/files".into()).await {
        return r;
    }
    if query.contains_key("uploadType") {
        return bad_request("The fake Drive does not take uploads: create metadata-only files");
    }
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mime_type = body
        .get("mimeType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string();
    if mime_type != DOC_MIME && mime_type != FOLDER_MIME {
        return bad_request("The fake Drive only creates Google Docs and folders (metadata-only)");
    }
    let mut app_properties = BTreeMap::new();
    if let Err(r) = merge_app_properties(&mut app_properties, &body) {
        return r;
    }
    let parents = match parents_of(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("Untitled")
        .to_string();
    let note = marker_note(&app_properties);
    let file_json = {
        let mut inner = shared.lock();
        let id = inner.new_id("1pgd");
        let file = File {
            id,
            name: name.clone(),
            mime_type: mime_type.clone(),
            parents,
            app_properties,
            trashed: false,
            text: "\n".into(),
            permissions: vec![owner_permission(&shared.client_email)],
            template: false,
            revision: 1,
        };
        let v = shared.file_json(&file);
        inner.files.push(file);
        v
    };
    let kind = if mime_type == DOC_MIME {
        "doc"
    } else {
        "folder"
    };
    shared
        .timeline
        .say(format!("Google Drive: created {kind} \"{name}\"{note}"));
    select(file_json, &query, FILE_DEFAULT)
}

async fn files_copy(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Drive,
        format!("POST /drive/v3/files/{id}/copy"),
    )
    .await
    {
        return r;
    }
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut app_properties = BTreeMap::new();
    if let Err(r) = merge_app_properties(&mut app_properties, &body) {
        return r;
    }
    let parents = match parents_of(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let note = marker_note(&app_properties);
    let (file_json, source_name, name) = {
        let mut inner = shared.lock();
        let Some(source) = inner.file(&id).filter(|f| !f.trashed) else {
            drop(inner);
            shared
                .timeline
                .say(format!("Google Drive: refused to copy unknown file {id}"));
            return not_found(&id);
        };
        let source_name = source.name.clone();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("Copy of {source_name}"));
        let (mime_type, text) = (source.mime_type.clone(), source.text.clone());
        let new_id = inner.new_id("1pgd");
        let file = File {
            id: new_id,
            name: name.clone(),
            mime_type,
            parents,
            app_properties,
            trashed: false,
            text,
            permissions: vec![owner_permission(&shared.client_email)],
            template: false,
            revision: 1,
        };
        let v = shared.file_json(&file);
        inner.files.push(file);
        (v, source_name, name)
    };
    shared.timeline.say(format!(
        "Google Drive: copied \"{source_name}\" to new doc \"{name}\"{note}"
    ));
    select(file_json, &query, FILE_DEFAULT)
}

async fn files_get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Drive,
        format!("GET /drive/v3/files/{id}"),
    )
    .await
    {
        return r;
    }
    let file = shared.lock().file(&id).map(|f| shared.file_json(f));
    match file {
        Some(v) => select(v, &query, FILE_DEFAULT),
        None => not_found(&id),
    }
}

async fn files_update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Drive,
        format!("PATCH /drive/v3/files/{id}"),
    )
    .await
    {
        return r;
    }
    if query.contains_key("uploadType") {
        return bad_request("The fake Drive does not take uploads");
    }
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut renamed = None;
    let result = {
        let mut inner = shared.lock();
        let Some(file) = inner.file_mut(&id) else {
            return not_found(&id);
        };
        let mut props = file.app_properties.clone();
        if let Err(r) = merge_app_properties(&mut props, &body) {
            return r;
        }
        match body.get("name") {
            None => {}
            Some(Value::String(n)) => {
                if *n != file.name {
                    renamed = Some((file.name.clone(), n.clone()));
                }
                file.name = n.clone();
            }
            Some(_) => return bad_request("name must be a string"),
        }
        if let Some(t) = body.get("trashed").and_then(Value::as_bool) {
            file.trashed = t;
        }
        if let Some(add) = query.get("addParents") {
            file.parents.extend(add.split(',').map(str::to_string));
        }
        if let Some(remove) = query.get("removeParents") {
            file.parents.retain(|p| !remove.split(',').any(|r| r == p));
        }
        file.app_properties = props;
        file.revision += 1;
        let file: &File = file;
        shared.file_json(file)
    };
    if let Some((old, new)) = renamed {
        shared
            .timeline
            .say(format!("Google Drive: renamed \"{old}\" to \"{new}\""));
    }
    select(result, &query, FILE_DEFAULT)
}

async fn permissions_list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Drive,
        format!("GET /drive/v3/files/{id}/permissions"),
    )
    .await
    {
        return r;
    }
    let perms = shared.lock().file(&id).map(|f| f.permissions.clone());
    match perms {
        Some(p) => select(
            json!({ "kind": "drive#permissionList", "permissions": p }),
            &query,
            PERMISSION_LIST_DEFAULT,
        ),
        None => not_found(&id),
    }
}

async fn permissions_create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Drive,
        format!("POST /drive/v3/files/{id}/permissions"),
    )
    .await
    {
        return r;
    }
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let role = body
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !["user", "group", "domain", "anyone"].contains(&kind.as_str()) {
        return gerr(
            400,
            "INVALID_ARGUMENT",
            "The permission type field is required and must be user, group, domain or anyone.",
            "required",
        );
    }
    if ![
        "owner",
        "organizer",
        "fileOrganizer",
        "writer",
        "commenter",
        "reader",
    ]
    .contains(&role.as_str())
    {
        return gerr(
            400,
            "INVALID_ARGUMENT",
            "The permission role field is required and must be a valid role.",
            "required",
        );
    }
    let email = body
        .get("emailAddress")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let domain = body
        .get("domain")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let grantee = match kind.as_str() {
        "user" | "group" if !email.contains('@') => {
            return gerr(
                400,
                "INVALID_ARGUMENT",
                "The permission emailAddress field is required for user and group permissions.",
                "required",
            );
        }
        "domain" if domain.is_empty() => {
            return gerr(
                400,
                "INVALID_ARGUMENT",
                "The permission domain field is required for domain permissions.",
                "required",
            );
        }
        "user" | "group" => email.to_ascii_lowercase(),
        "domain" => domain.to_ascii_lowercase(),
        _ => "anyone".to_string(),
    };
    let notify = query.get("sendNotificationEmail").map(String::as_str);
    if notify.is_some() && (kind == "domain" || kind == "anyone") {
        return gerr(
            400,
            "INVALID_ARGUMENT",
            "sendNotificationEmail parameter is only applicable for permissions of type 'user' or 'group'.",
            "invalidSharingRequest",
        );
    }
    if role == "owner" && query.get("transferOwnership").map(String::as_str) != Some("true") {
        return gerr(
            403,
            "PERMISSION_DENIED",
            "The transferOwnership parameter must be enabled when the permission role is 'owner'.",
            "forbidden",
        );
    }
    let (perm, name) = {
        let mut inner = shared.lock();
        let new_id = inner.new_id("p");
        let Some(file) = inner.file_mut(&id) else {
            return not_found(&id);
        };
        let key = if kind == "domain" {
            "domain"
        } else {
            "emailAddress"
        };
        let existing = file.permissions.iter_mut().find(|p| {
            p["type"] == kind.as_str()
                && p[key]
                    .as_str()
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| "anyone".into())
                    == grantee
        });
        // Drive keeps one permission per grantee: a second create updates it.
        let perm = match existing {
            Some(p) => {
                p["role"] = json!(role);
                p.clone()
            }
            None => {
                let mut p =
                    json!({ "kind": "drive#permission", "id": new_id, "type": kind, "role": role });
                match kind.as_str() {
                    "user" | "group" => p["emailAddress"] = json!(email),
                    "domain" => p["domain"] = json!(domain),
                    _ => {}
                }
                file.permissions.push(p.clone());
                p
            }
        };
        (perm, file.name.clone())
    };
    let who = match kind.as_str() {
        "domain" => format!("everyone at {domain}"),
        "anyone" => "anyone with the link".into(),
        _ => format!("{kind} {email}"),
    };
    let mailed = if notify != Some("false") && (kind == "user" || kind == "group") {
        " (notification e-mail sent)"
    } else {
        ""
    };
    shared.timeline.say(format!(
        "Google Drive: shared \"{name}\" with {who} as {role}{mailed}"
    ));
    select(perm, &query, PERMISSION_DEFAULT)
}

// ------------------------------------------------------------------ Docs

fn document_json(f: &File) -> Value {
    let mut content = vec![json!({ "endIndex": 1, "sectionBreak": { "sectionStyle": {
        "columnSeparatorStyle": "NONE", "contentDirection": "LEFT_TO_RIGHT", "sectionType": "CONTINUOUS",
    }}})];
    let mut index = 1;
    for line in f.text.split_inclusive('\n') {
        let end = index + line.encode_utf16().count();
        content.push(json!({
            "startIndex": index,
            "endIndex": end,
            "paragraph": {
                "elements": [{ "startIndex": index, "endIndex": end, "textRun": { "content": line, "textStyle": {} } }],
                "paragraphStyle": { "namedStyleType": "NORMAL_TEXT", "direction": "LEFT_TO_RIGHT" },
            },
        }));
        index = end;
    }
    json!({
        "documentId": f.id,
        "title": f.name,
        "body": { "content": content },
        "revisionId": format!("rev-{}", f.revision),
        "suggestionsViewMode": "SUGGESTIONS_INLINE",
        "documentStyle": {},
    })
}

async fn documents_create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(&shared, &headers, Api::Docs, "POST /v1/documents".into()).await {
        return r;
    }
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let title = body
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("Untitled document")
        .to_string();
    let doc = {
        let mut inner = shared.lock();
        let id = inner.new_id("1pgd");
        let file = File {
            id,
            name: title.clone(),
            mime_type: DOC_MIME.into(),
            parents: Vec::new(),
            app_properties: BTreeMap::new(),
            trashed: false,
            text: "\n".into(),
            permissions: vec![owner_permission(&shared.client_email)],
            template: false,
            revision: 1,
        };
        let v = document_json(&file);
        inner.files.push(file);
        v
    };
    shared
        .timeline
        .say(format!("Google Docs: created doc \"{title}\""));
    axum::Json(doc).into_response()
}

async fn documents_get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Docs,
        format!("GET /v1/documents/{id}"),
    )
    .await
    {
        return r;
    }
    let doc = shared
        .lock()
        .file(&id)
        .filter(|f| f.mime_type == DOC_MIME)
        .map(document_json);
    match doc {
        Some(d) => axum::Json(d).into_response(),
        None => gerr(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            "notFound",
        ),
    }
}

async fn documents_batch_update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id_action): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Docs,
        format!("POST /v1/documents/{id_action}"),
    )
    .await
    {
        return r;
    }
    let Some(id) = id_action.strip_suffix(":batchUpdate") else {
        return gerr(404, "NOT_FOUND", "Method not found.", "notFound");
    };
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let requests = match body.get("requests") {
        Some(Value::Array(r)) => r.clone(),
        None => Vec::new(),
        Some(_) => return bad_request("requests must be an array"),
    };
    let (replies, name, summary) = {
        let mut inner = shared.lock();
        let Some(file) = inner.file_mut(id).filter(|f| f.mime_type == DOC_MIME) else {
            return gerr(
                404,
                "NOT_FOUND",
                "Requested entity was not found.",
                "notFound",
            );
        };
        // Atomic: work on a copy, keep it only if every request applies.
        let mut text = file.text.clone();
        let mut replies = Vec::new();
        let mut summary = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            match apply_request(&mut text, request) {
                Ok((reply, what)) => {
                    replies.push(reply);
                    summary.push(what);
                }
                Err(message) => return bad_request(&format!("Invalid requests[{i}].{message}")),
            }
        }
        file.text = text;
        file.revision += 1;
        (replies, file.name.clone(), summary.join(", "))
    };
    if !summary.is_empty() {
        shared
            .timeline
            .say(format!("Google Docs: edited \"{name}\": {summary}"));
    }
    axum::Json(json!({ "documentId": id, "replies": replies, "writeControl": {} })).into_response()
}

/// Applies one batchUpdate request to the body text: the reply and a few
/// words for the timeline, or the error message (after `requests[i].`).
fn apply_request(text: &mut String, request: &Value) -> Result<(Value, String), String> {
    let obj = request.as_object().ok_or("request: must be an object")?;
    if obj.len() != 1 {
        return Err("request: exactly one kind of request must be set".into());
    }
    if let Some(r) = obj.get("insertText") {
        let insert = r["text"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or("insertText: Insert text requests must specify text to insert.")?;
        let len16 = text.encode_utf16().count();
        let offset16 = match (r.get("location"), r.get("endOfSegmentLocation")) {
            (Some(loc), None) => {
                if loc["segmentId"].as_str().is_some_and(|s| !s.is_empty()) {
                    return Err("insertText: the fake Docs API only edits the body segment".into());
                }
                let index = loc["index"]
                    .as_u64()
                    .ok_or("insertText: location.index is required")?
                    as usize;
                if index < 1 || index > len16 {
                    return Err(format!(
                        "insertText: Index {index} must be less than the end index of the referenced segment, {}.",
                        len16 + 1
                    ));
                }
                index - 1
            }
            (None, Some(_)) => len16 - 1,
            _ => {
                return Err(
                    "insertText: exactly one of location and endOfSegmentLocation must be set"
                        .into(),
                );
            }
        };
        let at = byte_at(text, offset16).ok_or("insertText: the index splits a surrogate pair")?;
        text.insert_str(at, insert);
        let n = insert.chars().count();
        return Ok((json!({}), format!("inserted {n} characters")));
    }
    if let Some(r) = obj.get("replaceAllText") {
        let find = r["containsText"]["text"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or("replaceAllText: containsText.text is required")?;
        if r["containsText"]["searchByRegex"].as_bool() == Some(true) {
            return Err("replaceAllText: the fake Docs API does not search by regex".into());
        }
        let match_case = r["containsText"]["matchCase"].as_bool().unwrap_or(false);
        let replace = r["replaceText"].as_str().unwrap_or_default();
        let (new_text, n) = replace_all(text, find, replace, match_case);
        *text = with_final_newline(&new_text);
        let reply = json!({ "replaceAllText": { "occurrencesChanged": n } });
        return Ok((reply, format!("replaced {n} × {find}")));
    }
    let name = obj.keys().next().cloned().unwrap_or_default();
    Err(format!("{name}: not implemented by the fake Docs API"))
}

/// The byte offset of a UTF-16 offset, if it falls on a character boundary.
fn byte_at(text: &str, offset16: usize) -> Option<usize> {
    let mut n = 0;
    for (b, c) in text.char_indices() {
        if n == offset16 {
            return Some(b);
        }
        n += c.len_utf16();
        if n > offset16 {
            return None;
        }
    }
    (n == offset16).then_some(text.len())
}

/// Replaces every occurrence (ASCII case-insensitively unless `match_case`).
fn replace_all(text: &str, find: &str, replace: &str, match_case: bool) -> (String, usize) {
    if match_case {
        return (text.replace(find, replace), text.matches(find).count());
    }
    let mut out = String::new();
    let mut n = 0;
    let mut i = 0;
    while i < text.len() {
        let end = i + find.len();
        if end <= text.len()
            && text.is_char_boundary(end)
            && text[i..end].eq_ignore_ascii_case(find)
        {
            out.push_str(replace);
            n += 1;
            i = end;
        } else if let Some(c) = text[i..].chars().next() {
            out.push(c);
            i += c.len_utf8();
        } else {
            break;
        }
    }
    (out, n)
}

/// The `webViewLink` target: the doc as plain text, so the demo's links open
/// something local.
async fn view(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let doc = shared
        .lock()
        .file(&id)
        .map(|f| format!("{}\n\n{}", f.name, f.text));
    match doc {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such doc").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_like_drive() {
        let t = parse_query(
            "appProperties has { key='pagerd_key' and value='inc-1\\'x' } and trashed=false",
        )
        .unwrap();
        assert_eq!(
            t,
            vec![
                Term::AppProperty("pagerd_key".into(), "inc-1'x".into()),
                Term::Trashed(false)
            ]
        );
        assert_eq!(
            parse_query("'f1' in parents and trashed != true").unwrap(),
            vec![Term::InParents("f1".into()), Term::Trashed(false)]
        );
        assert!(parse_query("appProperties has { key='a' }").is_err());
        assert!(parse_query("name = 'x' or name = 'y'").is_err());
    }

    #[test]
    fn field_masks_select() {
        let v = json!({"kind":"k","files":[{"id":"1","name":"n","webViewLink":"w"}]});
        let m = parse_mask("files(id,webViewLink)").unwrap();
        assert_eq!(
            apply_mask(&v, &m),
            json!({"files":[{"id":"1","webViewLink":"w"}]})
        );
        assert!(parse_mask("files(id").is_err());
    }

    #[test]
    fn inserts_at_utf16_indices_and_replaces() {
        let mut t = String::from("a😀b\n");
        apply_request(
            &mut t,
            &json!({"insertText":{"text":"X","location":{"index":4}}}),
        )
        .unwrap();
        assert_eq!(t, "a😀Xb\n");
        assert!(
            apply_request(
                &mut t,
                &json!({"insertText":{"text":"X","location":{"index":3}}})
            )
            .is_err()
        );
        assert!(
            apply_request(
                &mut t,
                &json!({"insertText":{"text":"X","location":{"index":7}}})
            )
            .is_err()
        );
        apply_request(
            &mut t,
            &json!({"insertText":{"text":"!","endOfSegmentLocation":{}}}),
        )
        .unwrap();
        assert_eq!(t, "a😀Xb!\n");
        let (r, _) = apply_request(&mut t, &json!({"replaceAllText":{"replaceText":"y","containsText":{"text":"x","matchCase":false}}})).unwrap();
        assert_eq!(r["replaceAllText"]["occurrencesChanged"], 1);
        assert_eq!(t, "a😀yb!\n");
    }

    #[tokio::test]
    async fn token_endpoint_verifies_the_jwt() {
        let fake = FakeGoogle::start(FakeGoogleOptions {
            client_email: "sa@x.iam.gserviceaccount.com".into(),
            public_key_pem: DEMO_PUBLIC_KEY_PEM.into(),
            timeline: Timeline::default(),
        })
        .await
        .unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(DEMO_KEY_PEM.as_bytes()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sign = |claims: Value| {
            jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::RS256), &claims, &key)
                .unwrap()
        };
        let http = crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT);
        let ask = |grant: &'static str, assertion: String| {
            let http = http.clone();
            let url = fake.token_url();
            async move {
                let r = http
                    .post(url)
                    .form(&[("grant_type", grant), ("assertion", &assertion)])
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
        let good = json!({"iss":"sa@x.iam.gserviceaccount.com","scope":SCOPE_DRIVE,"aud":fake.token_url(),"iat":now,"exp":now+3600});
        let (s, v) = ask(grant, sign(good.clone())).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["expires_in"], 3599);
        assert_eq!(v["token_type"], "Bearer");

        let (s, v) = ask("password", sign(good.clone())).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("unsupported_grant_type"))
        );
        for (field, value) in [
            ("iss", json!("other@x")),
            ("aud", json!("https://oauth2.googleapis.com/token")),
            ("exp", json!(now - 10)),
            ("exp", json!(now + 7200)),
        ] {
            let mut c = good.clone();
            c[field] = value;
            let (s, v) = ask(grant, sign(c)).await;
            assert_eq!(
                (s, v["error"].as_str()),
                (400, Some("invalid_grant")),
                "{field}: {v}"
            );
        }
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("scope");
        assert_eq!(ask(grant, sign(c)).await.0, 400);
        // A JWT signed by another key.
        let mut tampered = sign(good.clone());
        tampered.push('A');
        let (s, v) = ask(grant, tampered).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("invalid_grant")),
            "{v}"
        );
        assert_eq!(fake.tokens_issued(), 1);

        // Drive wants a token it issued.
        let r = http
            .get(format!("{}/files", fake.drive_url()))
            .bearer_auth("ya29.nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    }

    #[tokio::test]
    async fn permissions_are_validated() {
        let fake = FakeGoogle::start(FakeGoogleOptions {
            client_email: "sa@x".into(),
            public_key_pem: DEMO_PUBLIC_KEY_PEM.into(),
            timeline: Timeline::default(),
        })
        .await
        .unwrap();
        let token = "ya29.test".to_string();
        fake.shared.lock().tokens.insert(
            token.clone(),
            IssuedToken {
                expires: Instant::now() + TOKEN_LIFETIME,
                scopes: vec![SCOPE_DRIVE.into()],
            },
        );
        fake.add_template("t1", "T", "x");
        let http = crate::vendors::http_client(crate::vendors::REQUEST_TIMEOUT);
        let url = format!("{}/files/t1/permissions", fake.drive_url());
        let create = |q: &'static str, body: Value| {
            let req = http
                .post(format!("{url}{q}"))
                .bearer_auth(&token)
                .json(&body);
            async move { req.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(
            create("", json!({"type":"user","role":"writer"})).await,
            400
        );
        assert_eq!(
            create("", json!({"type":"domain","role":"writer"})).await,
            400
        );
        assert_eq!(
            create(
                "",
                json!({"type":"robot","role":"writer","emailAddress":"a@b"})
            )
            .await,
            400
        );
        assert_eq!(
            create(
                "",
                json!({"type":"user","role":"boss","emailAddress":"a@b"})
            )
            .await,
            400
        );
        assert_eq!(
            create(
                "?sendNotificationEmail=true",
                json!({"type":"domain","role":"reader","domain":"b.com"})
            )
            .await,
            400
        );
        assert_eq!(
            create(
                "?sendNotificationEmail=true",
                json!({"type":"user","role":"reader","emailAddress":"a@b.com"})
            )
            .await,
            200
        );
        assert_eq!(
            create(
                "",
                json!({"type":"domain","role":"reader","domain":"b.com"})
            )
            .await,
            200
        );
        let list: Value = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["permissions"].as_array().unwrap().len(), 3, "{list}");
        assert!(
            list["permissions"][1].get("emailAddress").is_none(),
            "default fields: {list}"
        );
    }
}
