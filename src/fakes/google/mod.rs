//! A fake Google: the OAuth token endpoint, the Drive v3, Docs v1 and
//! Calendar v3 methods pagerd uses, on one loopback server.
//!
//! - `POST /token` ([`token`]) — the service-account JWT bearer flow: checks
//!   `grant_type` and verifies the assertion (RS256 with the configured
//!   public key, `aud` = this endpoint, `iss` = the service account,
//!   unexpired, at most one hour long, a `scope`; a `sub` only for a domain
//!   granted domain-wide delegation, [`FakeGoogle::allow_delegation`]), then
//!   issues a bearer token valid for 3599 s, acting as `sub` when given.
//! - Drive (`/drive/v3`): `files.create` (metadata-only Google Docs and
//!   folders), `files.copy`, `files.list` (the `appProperties has { key=…
//!   and value=… }`, `trashed`, `name`, `mimeType` and `in parents` terms
//!   joined by `and`), `files.get`, `files.update` (PATCH), `permissions.create`
//!   (validated like Drive), `permissions.list`. The `fields` parameter is
//!   honoured, with Drive's defaults when absent.
//! - Docs (`/v1/documents`, [`docs`]): `create`, `get` (body as paragraphs
//!   of text runs, UTF-16 indices), `batchUpdate` (`insertText` at an index
//!   or the end of the body, `replaceAllText`; atomic).
//! - Calendar (`/calendar/v3`, [`calendar`]): `calendars.get`,
//!   `events.list` (filtered by `privateExtendedProperty`) and
//!   `events.insert` (a Meet link only with `conferenceDataVersion=1` and a
//!   `createRequest`; attendees only when acting as a user).
//!
//! Every Drive/Docs/Calendar call needs a bearer token this fake issued
//! (else 401 in Google's error shape) with a fitting scope (else 403). Docs
//! are plain text here: no styles, tables or tabs. Drive's query language
//! and fields masks are in [`query`], its handlers in [`drive`].

#![allow(
    clippy::result_large_err,
    reason = "helpers of axum handlers return the early answer as a Response; a loopback test fake"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngExt;
use serde_json::{Map, Value, json};

use super::slack::form_decode;
use super::{Faults, Server, Timeline};

mod calendar;
mod docs;
mod drive;
mod query;
mod token;

pub use self::calendar::FakeEvent;
use self::calendar::*;
use self::docs::*;
use self::drive::*;
use self::query::*;
use self::token::*;

/// A PUBLIC DEMO/TEST RSA key (2048-bit, PKCS#8), generated for pagerd's
/// fakes and committed on purpose. It protects nothing: the fake Google
/// trusts it, real Google never heard of it. Never use it for anything real.
pub const DEMO_KEY_PEM: &str = include_str!("../google-demo-key.pem");
/// The public half of [`DEMO_KEY_PEM`], for [`FakeGoogleOptions::public_key_pem`].
pub const DEMO_PUBLIC_KEY_PEM: &str = include_str!("../google-demo-key.pub.pem");
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
const SCOPE_CALENDAR: &str = "https://www.googleapis.com/auth/calendar";
const SCOPE_CALENDAR_READONLY: &str = "https://www.googleapis.com/auth/calendar.readonly";
const SCOPE_CALENDAR_EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";
const SCOPE_CALENDAR_EVENTS_READONLY: &str =
    "https://www.googleapis.com/auth/calendar.events.readonly";
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
    /// The user the token acts as (the JWT `sub`), if any.
    subject: Option<String>,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, IssuedToken>,
    tokens_issued: usize,
    files: Vec<File>,
    next_id: u64,
    requests: Vec<String>,
    /// The `sub` of every token issued, in order.
    subjects: Vec<Option<String>>,
    /// The domain whose users the service account may act as.
    delegated_domain: Option<String>,
    calendars: Vec<CalendarEntry>,
    events: Vec<FakeEvent>,
    /// New Meet conferences stay `pending` until first read.
    meet_pending: bool,
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
            .route("/calendar/v3/calendars/{id}", get(calendars_get))
            .route(
                "/calendar/v3/calendars/{id}/events",
                get(events_list).post(events_insert),
            )
            .route("/calendar/event/{id}", get(event_view))
            .route("/meet/{code}", get(meet_view))
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

    /// `METHOD /path` of every Drive/Docs/Calendar request handled (not
    /// those answered by an injected fault), in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// The Calendar v3 base, `{url}/calendar/v3`.
    pub fn calendar_url(&self) -> String {
        format!("{}/calendar/v3", self.url())
    }

    /// Grants the service account domain-wide delegation for the users of
    /// `domain` (as a Workspace admin does in the admin console): JWTs
    /// with a `sub` there get tokens acting as that user. Without it, a
    /// `sub` is refused with `unauthorized_client`.
    pub fn allow_delegation(&self, domain: &str) {
        self.shared.lock().delegated_domain = Some(domain.to_ascii_lowercase());
    }

    /// Registers a calendar `id` that `writers` (users or the service
    /// account, by e-mail) may read and add events to; anyone else gets
    /// 404, as Calendar answers for a calendar one cannot see.
    pub fn add_calendar(&self, id: &str, summary: &str, writers: &[&str]) {
        let mut inner = self.shared.lock();
        inner.calendars.retain(|c| c.id != id);
        inner.calendars.push(CalendarEntry {
            id: id.to_string(),
            summary: summary.to_string(),
            writers: writers.iter().map(|w| w.to_ascii_lowercase()).collect(),
        });
    }

    /// Every event inserted through the API, oldest first.
    pub fn events(&self) -> Vec<FakeEvent> {
        self.shared.lock().events.clone()
    }

    /// The JWT `sub` (the user acted as) of every token issued, in order;
    /// `None` for a token acting as the service account itself.
    pub fn token_subjects(&self) -> Vec<Option<String>> {
        self.shared.lock().subjects.clone()
    }

    /// When `on`, Meet conferences created from now on answer
    /// `createRequest.status.statusCode = "pending"` (no link yet) until
    /// their event is first read again, as Google creates them
    /// asynchronously.
    pub fn set_meet_pending(&self, on: bool) {
        self.shared.lock().meet_pending = on;
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
    /// `calendars.get`.
    CalendarRead,
    /// `events.list`.
    EventsRead,
    /// `events.insert`.
    EventsWrite,
}

/// Who a request acts as: the token's `sub`, else the service account.
struct Principal {
    subject: Option<String>,
}

/// The common start of every API handler: faults, request log, token and
/// scope check; who the token acts as.
async fn guard(
    shared: &Shared,
    headers: &HeaderMap,
    api: Api,
    request: String,
) -> Result<Principal, Response> {
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
        Api::CalendarRead => &[SCOPE_CALENDAR, SCOPE_CALENDAR_READONLY],
        Api::EventsRead => &[
            SCOPE_CALENDAR,
            SCOPE_CALENDAR_EVENTS,
            SCOPE_CALENDAR_EVENTS_READONLY,
            SCOPE_CALENDAR_READONLY,
        ],
        Api::EventsWrite => &[SCOPE_CALENDAR, SCOPE_CALENDAR_EVENTS],
    };
    if !token.scopes.iter().any(|s| allowed.contains(&s.as_str())) {
        return Err(gerr(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
        ));
    }
    Ok(Principal {
        subject: token.subject.clone(),
    })
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
