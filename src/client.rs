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
use crate::render::{self, terminal};
use crate::secret::Secret;

/// Why a CLI call failed; the text tells the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon is not reachable.
    #[error(
        "cannot reach pagerd at {addr}: {cause} (is `pagerd run` up, and is server.listen right?)"
    )]
    Unreachable {
        /// Where we tried.
        addr: String,
        /// Why it failed.
        cause: String,
    },
    /// The daemon refused or failed.
    #[error("pagerd answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The daemon's explanation.
        message: String,
    },
}

/// A client for one daemon.
pub struct Client {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl Client {
    /// A client for the daemon listening on `addr`.
    pub fn new(addr: SocketAddr, token: Option<Secret>) -> Client {
        let http = crate::vendors::http_client(std::time::Duration::from_secs(15));
        Client {
            base: format!("http://{addr}/api/v1"),
            token,
            http,
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        };
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            addr: self.base.clone(),
            cause: e.without_url().to_string(),
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]
                .as_str()
                .unwrap_or("no explanation")
                .to_string();
            return Err(ClientError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        Ok(body)
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

/// "Ana Engineer <ana@acme.example>", or the name alone.
fn person(w: &crate::engine::Who) -> String {
    match &w.email {
        Some(e) if *e != w.name => format!("{} <{e}>", w.name),
        _ => w.name.clone(),
    }
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

/// An incident in detail: state, deadlines, crisis, journal and outbox.
pub fn format_show(body: &Value) -> String {
    let Ok(i) = serde_json::from_value::<Incident>(body["incident"].clone()) else {
        return format!("{}\n", render::terminal_json(body));
    };
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
    let _ = writeln!(out, "opened    {}", rfc3339(i.opened_at));
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
                rfc3339(*at)
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
                let _ = writeln!(out, "level 2   accepted by PagerDuty {}", rfc3339(at));
            }
            None => {
                let _ = writeln!(out, "level 2   requested, not yet accepted by PagerDuty");
            }
        }
    }
    if let Some((by, at)) = &i.acked {
        let _ = writeln!(out, "acked     {} by {}", rfc3339(*at), terminal(by));
    }
    if let Some((by, at)) = &i.resolved {
        let _ = writeln!(out, "resolved  {} by {}", rfc3339(*at), terminal(by));
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
            let _ = writeln!(out, "{name:<9} {}", rfc3339(at));
        }
    }
    if let Some(c) = &i.crisis {
        let _ = writeln!(
            out,
            "crisis    {} ({})",
            rfc3339(c.declared_at),
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
    let _ = writeln!(out, "\njournal:");
    for e in body["journal"].as_array().into_iter().flatten() {
        let at = e["at"].as_i64().map(rfc3339).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {at}  {}  (+{} effects)",
            terminal(&e["event"].to_string()),
            e["effects"]
        );
    }
    let _ = writeln!(out, "\neffects:");
    for e in body["outbox"].as_array().into_iter().flatten() {
        let kind = field(&e["effect"]["type"]);
        let err = e["last_error"]
            .as_str()
            .map(|s| format!("  last error: {}", terminal(s)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  #{:<5} {:<24} {:<9} attempts {}{err}",
            e["id"],
            kind,
            field(&e["state"]),
            e["attempts"]
        );
    }
    out
}
