//! The client side of `pagerd incidents …`: calls the running daemon's admin
//! API and prints what it answers for humans (or as JSON).
//!
//! Everything printed for humans that came from the daemon goes through
//! [`render::terminal`]: titles, names and errors are customer or
//! responder text, and must not reach the operator's terminal as escapes.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::engine::Incident;
use crate::explain::{self, Local, Story, person};
use crate::render::{self, terminal};
use crate::secret::Secret;

/// Why a CLI call failed; the text tells the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon is not reachable (down, or not at that address).
    #[error(
        "cannot reach pagerd at {url}: {cause}. Is `pagerd run` up there? Point the CLI at the \
         daemon with --url URL (or PAGERD_URL), e.g. --url http://127.0.0.1:8780 (its server.listen)"
    )]
    Unreachable {
        /// Where we tried.
        url: String,
        /// Why it failed.
        cause: String,
    },
    /// The daemon's admin API is off (no `server.admin_token_file`).
    #[error(
        "the admin API of pagerd at {url} is off: {message}. Whoever runs the daemon must set \
         server.admin_token_file and restart it"
    )]
    AdminOff {
        /// Where.
        url: String,
        /// The daemon's explanation.
        message: String,
    },
    /// No admin token was given, and the daemon wants one.
    #[error(
        "pagerd at {url} wants its admin token: give --token-file FILE (or PAGERD_TOKEN_FILE), \
         a file holding the daemon's server.admin_token"
    )]
    NoToken {
        /// Where.
        url: String,
    },
    /// The daemon refused the admin token.
    #[error(
        "pagerd at {url} refused the admin token from {token_from} (401): it is not the daemon's \
         server.admin_token; ask whoever runs it for the right token file"
    )]
    WrongToken {
        /// Where.
        url: String,
        /// Where the token came from (`--token-file /path`, the config).
        token_from: String,
    },
    /// Something answers there, but not pagerd's admin API.
    #[error(
        "{url} has no pagerd admin API (HTTP {status} on {path}): is --url the daemon's \
         server.listen?"
    )]
    NoApi {
        /// Where.
        url: String,
        /// HTTP status.
        status: u16,
        /// The path asked for.
        path: String,
    },
    /// The daemon refused or failed.
    #[error("pagerd answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The daemon's explanation.
        message: String,
    },
    /// `--url` is not an http(s) URL.
    #[error("--url {url:?} is not a URL like http://127.0.0.1:8780: {cause}")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why.
        cause: String,
    },
    /// The token file cannot be read or is empty.
    #[error("cannot use the admin token file {path}: {cause}")]
    TokenFile {
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
    /// The answer is not what this pagerd understands.
    #[error(transparent)]
    Explain(#[from] crate::explain::ExplainError),
}

/// Reads the admin token from a file (`--token-file`): secrets never go on
/// the command line.
pub fn read_token_file(path: &std::path::Path) -> Result<Secret, ClientError> {
    let err = |cause: String| ClientError::TokenFile {
        path: path.display().to_string(),
        cause,
    };
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(Secret::new(t)),
        Ok(_) => Err(err("it is empty".into())),
        Err(e) => Err(err(e.to_string())),
    }
}

/// An incident named on the command line: its id (`7`), or a Zendesk
/// ticket (`#4711` or `ticket:4711`), meaning the ticket's latest episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentRef {
    /// pagerd's incident id.
    Id(i64),
    /// A Zendesk ticket number.
    Ticket(String),
}

/// Why a command-line incident reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an incident id (7) nor a ticket (#4711 or ticket:4711)")]
pub struct BadIncidentRef(String);

impl std::str::FromStr for IncidentRef {
    type Err = BadIncidentRef;

    fn from_str(s: &str) -> Result<IncidentRef, BadIncidentRef> {
        let t = s.trim();
        if let Some(ticket) = t.strip_prefix('#').or_else(|| t.strip_prefix("ticket:")) {
            let ticket = ticket.trim();
            let ok = !ticket.is_empty()
                && ticket.len() <= 64
                && ticket
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            return if ok {
                Ok(IncidentRef::Ticket(ticket.to_string()))
            } else {
                Err(BadIncidentRef(s.to_string()))
            };
        }
        t.parse()
            .map(IncidentRef::Id)
            .map_err(|_| BadIncidentRef(s.to_string()))
    }
}

impl std::fmt::Display for IncidentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IncidentRef::Id(id) => write!(f, "{id}"),
            IncidentRef::Ticket(t) => write!(f, "#{t}"),
        }
    }
}

/// A Zendesk ticket named on the command line: `4711`, `#4711` or
/// `ticket:4711` (`pagerd reports show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef(String);

/// Why a command-line ticket does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a ticket number (4711, #4711 or ticket:4711)")]
pub struct BadTicketRef(String);

impl std::str::FromStr for TicketRef {
    type Err = BadTicketRef;

    fn from_str(s: &str) -> Result<TicketRef, BadTicketRef> {
        let t = s.trim();
        let bare = t
            .strip_prefix('#')
            .or_else(|| t.strip_prefix("ticket:"))
            .unwrap_or(t)
            .trim();
        let ok = !bare.is_empty() && bare.len() <= 20 && bare.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(TicketRef(bare.to_string()))
        } else {
            Err(BadTicketRef(s.to_string()))
        }
    }
}

/// A client for one daemon.
pub struct Client {
    /// The daemon's URL as given (for messages).
    origin: String,
    base: String,
    token: Option<Secret>,
    /// Where the token came from, for messages.
    token_source: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for the daemon listening on `addr`.
    pub fn new(addr: SocketAddr, token: Option<Secret>) -> Client {
        let http = crate::vendors::http_client(std::time::Duration::from_secs(15));
        Client {
            origin: format!("http://{addr}"),
            base: format!("http://{addr}/api/v1"),
            token,
            token_source: "the config's server.admin_token_file".into(),
            http,
        }
    }

    /// A client for the daemon at `url` (`http://host:port`, or a proxy's
    /// `https://host/prefix`; a bare `host:port` means http).
    pub fn at_url(url: &str, token: Option<Secret>) -> Result<Client, ClientError> {
        let given = url.trim();
        let full = if given.contains("://") {
            given.to_string()
        } else {
            format!("http://{given}")
        };
        let bad = |cause: String| ClientError::BadUrl {
            url: given.to_string(),
            cause,
        };
        let parsed = reqwest::Url::parse(&full).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!("{} is not http or https", parsed.scheme())));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty()
        {
            return Err(bad("give only scheme, host, port and path".into()));
        }
        let origin = full.trim_end_matches('/').to_string();
        let mut client = Client::new(SocketAddr::from(([127, 0, 0, 1], 0)), token);
        client.base = format!("{origin}/api/v1");
        client.origin = origin;
        Ok(client)
    }

    /// Says where the token came from, for the "wrong token" message.
    pub fn token_from(mut self, source: impl Into<String>) -> Client {
        self.token_source = source.into();
        self
    }

    /// The daemon's URL.
    pub fn url(&self) -> &str {
        &self.origin
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        };
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.origin.clone(),
            cause: cause_of(&e),
        })?;
        let status = resp.status();
        let path = resp.url().path().to_string();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let url = self.origin.clone();
        let Some(message) = body["error"].as_str().map(str::to_string) else {
            // Not pagerd's JSON: another server, or a proxy without the API.
            return Err(ClientError::NoApi {
                url,
                status: status.as_u16(),
                path,
            });
        };
        Err(match status.as_u16() {
            401 | 403 | 404 if message.contains("admin API is off") => {
                ClientError::AdminOff { url, message }
            }
            401 if self.token.is_none() => ClientError::NoToken { url },
            401 => ClientError::WrongToken {
                url,
                token_from: self.token_source.clone(),
            },
            code => ClientError::Refused {
                status: code,
                message,
            },
        })
    }

    /// `GET /status` (admin token): readiness, role, instance, lease, lag.
    pub async fn status(&self) -> Result<Value, ClientError> {
        self.call(self.http.get(format!("{}/status", self.base)))
            .await
    }

    /// `GET /incidents`.
    pub async fn list(&self, all: bool) -> Result<Value, ClientError> {
        self.call(
            self.http
                .get(format!("{}/incidents", self.base))
                .query(&[("all", all)]),
        )
        .await
    }

    /// `GET /incidents/{id}`.
    pub async fn show(&self, id: i64) -> Result<Value, ClientError> {
        self.call(self.http.get(format!("{}/incidents/{id}", self.base)))
            .await
    }

    /// `GET /incidents/{id}`, or `GET /incidents/by-ticket/{ticket}` for the
    /// ticket's latest episode.
    pub async fn show_ref(&self, r: &IncidentRef) -> Result<Value, ClientError> {
        match r {
            IncidentRef::Id(id) => self.show(*id).await,
            // The ticket is ASCII letters, digits, `-` and `_` (FromStr).
            IncidentRef::Ticket(t) => {
                self.call(
                    self.http
                        .get(format!("{}/incidents/by-ticket/{t}", self.base)),
                )
                .await
            }
        }
    }

    /// The incident id `r` names (a ticket: its latest episode's).
    pub async fn resolve(&self, r: &IncidentRef) -> Result<i64, ClientError> {
        match r {
            IncidentRef::Id(id) => Ok(*id),
            IncidentRef::Ticket(_) => {
                let body = self.show_ref(r).await?;
                body["incident"]["id"].as_i64().ok_or_else(|| {
                    crate::explain::ExplainError::NotAnIncident("no incident id".into()).into()
                })
            }
        }
    }

    /// `GET /reports`: the watched HackerOne reports.
    pub async fn reports(&self) -> Result<Value, ClientError> {
        self.call(self.http.get(format!("{}/reports", self.base)))
            .await
    }

    /// `GET /reports/{ticket}`.
    pub async fn report(&self, ticket: &TicketRef) -> Result<Value, ClientError> {
        self.call(self.http.get(format!("{}/reports/{}", self.base, ticket.0)))
            .await
    }

    /// `POST /incidents/{id}/{action}`.
    pub async fn act(
        &self,
        id: i64,
        action: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Value, ClientError> {
        let body = json!({ "by": by, "reason": reason });
        self.call(
            self.http
                .post(format!("{}/incidents/{id}/{action}", self.base))
                .json(&body),
        )
        .await
    }
}

/// The most specific cause of a failed request ("Connection refused (os
/// error 111)"), without the URL.
fn cause_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer within 15 s".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let text = cause.to_string();
    if text.is_empty() { e.to_string() } else { text }
}

fn age(inc: &Incident) -> String {
    rfc3339(inc.opened_at)
}

/// A string field of the daemon's answer, for the terminal.
fn field(v: &Value) -> String {
    terminal(v.as_str().unwrap_or("?"))
}

/// The daemon's status for humans.
pub fn format_status(body: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "status    {}{}",
        body["status"].as_str().unwrap_or("?"),
        body["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "instance  {}",
        body["instance"].as_str().unwrap_or("?")
    );
    let _ = writeln!(out, "role      {}", body["role"].as_str().unwrap_or("?"));
    match body["lease"].as_object() {
        Some(l) => {
            let _ = writeln!(
                out,
                "lease     held by {} for {} ms more",
                field(l.get("holder").unwrap_or(&Value::Null)),
                l.get("expires_in_ms").and_then(Value::as_i64).unwrap_or(0)
            );
        }
        None => {
            let _ = writeln!(out, "lease     none (single instance, SQLite)");
        }
    }
    let s = &body["store"];
    let _ = writeln!(
        out,
        "incidents {} open of {}",
        s["open_incidents"], s["incidents"]
    );
    let _ = writeln!(out, "deadlines {} armed", body["armed_deadlines"]);
    let _ = writeln!(
        out,
        "outbox    {} pending (oldest {} ms), {} failed",
        s["pending_effects"], body["lag_ms"], s["failed_effects"]
    );
    out
}

/// One line per incident.
pub fn format_list(body: &Value) -> String {
    let incidents: Vec<Incident> =
        serde_json::from_value(body["incidents"].clone()).unwrap_or_default();
    if incidents.is_empty() {
        return "no incidents\n".into();
    }
    let mut out = format!(
        "{:<6} {:<13} {:<5} {:<10} {:<21} {}\n",
        "ID", "STATUS", "LEVEL", "TICKET", "OPENED", "TITLE"
    );
    for i in incidents {
        let crisis = if i.crisis.is_some() { " [CRISIS]" } else { "" };
        // Nobody was paged through PagerDuty: the operator must act.
        let status = if i.is_undeliverable() {
            "NOT PAGED"
        } else {
            i.status.as_str()
        };
        let _ = writeln!(
            out,
            "{:<6} {:<13} {:<5} {:<10} {:<21} {} ({}){crisis}",
            i.id,
            status,
            i.level,
            format!("#{}", i.ticket.id),
            age(&i),
            terminal(&i.ticket.title),
            terminal(i.ticket.customer())
        );
    }
    out
}

/// `pagerd incidents explain`: what fires next, the story, the deliveries.
pub fn format_explain(body: &Value, local: &Local) -> Result<String, ClientError> {
    Ok(explain::explain_text(&Story::from_api(body)?, local))
}

/// `pagerd incidents explain --json`.
pub fn explain_json(body: &Value, local: &Local) -> Result<Value, ClientError> {
    Ok(explain::explain_json(&Story::from_api(body)?, local))
}

/// An incident in detail: state, deadlines, crisis, journal and outbox.
pub fn format_show(body: &Value) -> String {
    let Ok(i) = serde_json::from_value::<Incident>(body["incident"].clone()) else {
        return format!("{}\n", render::terminal_json(body));
    };
    let local = Local::system();
    let mut out = String::new();
    let t = &i.ticket;
    let _ = writeln!(
        out,
        "incident {}  {}  level {}",
        i.id,
        i.status.as_str(),
        i.level
    );
    let _ = writeln!(
        out,
        "ticket    #{} {}\nlink      {}",
        terminal(&t.id),
        terminal(&t.title),
        terminal(&t.url)
    );
    let _ = writeln!(
        out,
        "customer  {} <{}>",
        terminal(t.customer()),
        terminal(&t.requester_email)
    );
    if !t.tags.is_empty() {
        let _ = writeln!(out, "tags      {}", terminal(&t.tags.join(" ")));
    }
    let _ = writeln!(out, "opened    {}", local.time(i.opened_at));
    // What PagerDuty accepted, not only what pagerd asked for.
    match (&i.paged_at, &i.undeliverable) {
        (_, Some(why)) if i.is_open() => {
            let _ = writeln!(
                out,
                "NOT PAGED {}\n          fix the cause, then: pagerd incidents repage {} --as EMAIL",
                terminal(why),
                i.id
            );
        }
        (Some(at), _) => {
            let _ = writeln!(
                out,
                "paged     level 1, accepted by PagerDuty {}",
                local.time(*at)
            );
        }
        (None, _) => {
            let _ = writeln!(
                out,
                "paged     not yet: PagerDuty has not accepted the page"
            );
        }
    }
    if i.level >= 2 {
        match i.escalated_at {
            Some(at) => {
                let _ = writeln!(out, "level 2   accepted by PagerDuty {}", local.time(at));
            }
            None => {
                let _ = writeln!(out, "level 2   requested, not yet accepted by PagerDuty");
            }
        }
    }
    if let Some((by, at)) = &i.acked {
        let _ = writeln!(out, "acked     {} by {}", local.time(*at), terminal(by));
    }
    if let Some((by, at)) = &i.resolved {
        let _ = writeln!(out, "resolved  {} by {}", local.time(*at), terminal(by));
    }
    if !i.responders.is_empty() {
        let names: Vec<String> = i.responders.iter().map(person).collect();
        let _ = writeln!(out, "people    {}", terminal(&names.join(", ")));
    }
    let d = &i.deadlines;
    for (name, at) in [
        ("ack by", d.ack),
        ("crisis at", d.crisis),
        ("fallback", d.fallback),
        ("deprecate", d.deprecate),
    ] {
        if let Some(at) = at {
            let _ = writeln!(out, "{name:<9} {}", local.when(at));
        }
    }
    if let Some(c) = &i.crisis {
        let _ = writeln!(
            out,
            "crisis    {} ({})",
            local.time(c.declared_at),
            terminal(&c.reason)
        );
        if let Some(doc) = &c.doc {
            let deprecated = if c.deprecated { " (deprecated)" } else { "" };
            let _ = writeln!(out, "doc       {}{deprecated}", terminal(&doc.url));
        }
    }
    if let Some(e) = &i.last_error {
        let _ = writeln!(out, "PROBLEM   {}", terminal(e));
    }
    let story = Story::from_api(body);
    let _ = writeln!(out, "\njournal:  (times in {})", terminal(&local.zone()));
    if let Ok(story) = &story {
        out.push_str(&explain::timeline_text(&story.timeline(), &local));
        let _ = writeln!(out, "\neffects:");
        for d in &story.deliveries {
            let _ = writeln!(out, "  {}", explain::delivery_text(d, &local));
        }
        let _ = writeln!(
            out,
            "\nwhy, and what fires next: pagerd incidents explain {}",
            i.id
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_are_named_by_id_or_by_ticket() {
        let p = |s: &str| s.parse::<IncidentRef>();
        assert_eq!(p("7"), Ok(IncidentRef::Id(7)));
        assert_eq!(p("#4711"), Ok(IncidentRef::Ticket("4711".into())));
        assert_eq!(p("ticket:4711"), Ok(IncidentRef::Ticket("4711".into())));
        assert_eq!(IncidentRef::Ticket("4711".into()).to_string(), "#4711");
        for bad in [
            "",
            "#",
            "ticket:",
            "abc",
            "#47/11",
            "#4711?x=1",
            "t4711",
            "1.5",
        ] {
            let err = p(bad).expect_err(bad);
            assert!(err.to_string().contains("#4711 or ticket:4711"), "{err}");
        }
    }

    #[test]
    fn tickets_are_numbers_with_or_without_their_hash() {
        for good in ["4711", "#4711", "ticket:4711", " 4711 "] {
            assert_eq!(
                good.parse::<TicketRef>(),
                Ok(TicketRef("4711".into())),
                "{good}"
            );
        }
        for bad in ["", "#", "abc", "47/11", "4711?x", "#../x"] {
            assert!(bad.parse::<TicketRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_http_with_the_api_below_them() {
        let c = Client::at_url("http://127.0.0.1:8780/", None).expect("url");
        assert_eq!(c.url(), "http://127.0.0.1:8780");
        assert_eq!(c.base, "http://127.0.0.1:8780/api/v1");
        let c = Client::at_url("pagerd.internal:8780", None).expect("bare host");
        assert_eq!(c.base, "http://pagerd.internal:8780/api/v1");
        let c = Client::at_url("https://ops.example/pagerd", None).expect("prefix");
        assert_eq!(c.base, "https://ops.example/pagerd/api/v1");
        for bad in ["ftp://x", "http://", "http://a:b@host", "http://host/?q=1"] {
            assert!(
                matches!(Client::at_url(bad, None), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_files_must_hold_a_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let err = read_token_file(&empty).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        let missing = read_token_file(&dir.path().join("missing")).expect_err("missing");
        assert!(missing.to_string().contains("missing"), "{missing}");
        let good = dir.path().join("token");
        std::fs::write(&good, "SECRET-token\n").expect("write");
        assert_eq!(
            read_token_file(&good).expect("token").expose(),
            "SECRET-token"
        );
    }
}
