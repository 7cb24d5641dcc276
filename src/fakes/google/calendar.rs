//! Calendar v3: `calendars.get`, `events.list` and `events.insert`, checked
//! as Calendar checks them.
//!
//! - A calendar is visible only to its writers (a user acted as with `sub`,
//!   or the service account itself); anyone else gets 404 `notFound`.
//! - `events.insert` wants `start` and `end` (`dateTime` in RFC 3339 with an
//!   offset, or `date`), `end` after `start`; attendees are refused (403
//!   `forbiddenForServiceAccounts`) unless the token acts as a user
//!   (domain-wide delegation). `conferenceData` is ignored unless
//!   `conferenceDataVersion=1`; then a `createRequest` (with a `requestId`
//!   and the `hangoutsMeet` solution) gets a Meet conference: `hangoutLink`
//!   and a video entry point. `extendedProperties` are kept.
//! - `events.list` filters by every `privateExtendedProperty` and
//!   `sharedExtendedProperty` constraint (`name=value`, repeatable), and
//!   leaves out cancelled events.

use super::*;

/// A calendar the fake knows.
pub(super) struct CalendarEntry {
    pub(super) id: String,
    pub(super) summary: String,
    /// Who may read it and add events (lower-cased e-mails).
    pub(super) writers: Vec<String>,
}

/// An event as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeEvent {
    /// The event id.
    pub id: String,
    /// The calendar it is on.
    pub calendar_id: String,
    /// Its title.
    pub summary: String,
    /// Its description.
    pub description: String,
    /// `start.dateTime` (or `start.date`) as sent.
    pub start: String,
    /// `end.dateTime` (or `end.date`) as sent.
    pub end: String,
    /// The attendees' e-mails, as sent.
    pub attendees: Vec<String>,
    /// Who booked it: the user acted as, or the service account.
    pub organizer: String,
    /// The Meet link, when a conference was created.
    pub hangout_link: Option<String>,
    /// The `requestId` of the conference create request, if one was honoured.
    pub request_id: Option<String>,
    /// `pending` until first read when [`FakeGoogle::set_meet_pending`] was
    /// on; `success` otherwise (empty without a conference).
    pub conference_status: String,
    /// `extendedProperties.private`.
    pub private: BTreeMap<String, String>,
    /// `extendedProperties.shared`.
    pub shared: BTreeMap<String, String>,
    /// The `sendUpdates` parameter of the insert, if any.
    pub send_updates: Option<String>,
}

fn calendar_not_found() -> Response {
    gerr(404, "NOT_FOUND", "Not Found", "notFound")
}

/// The calendar `id` if `who` may use it.
fn visible<'a>(inner: &'a Inner, id: &str, who: &str) -> Option<&'a CalendarEntry> {
    inner
        .calendars
        .iter()
        .find(|c| c.id == id && c.writers.iter().any(|w| w == who))
}

fn who(shared: &Shared, p: &Principal) -> String {
    p.subject
        .clone()
        .unwrap_or_else(|| shared.client_email.to_ascii_lowercase())
}

fn event_json(shared: &Shared, e: &FakeEvent) -> Value {
    let mut v = json!({
        "kind": "calendar#event",
        "id": e.id,
        "status": "confirmed",
        "htmlLink": format!("{}/calendar/event/{}", shared.base(), e.id),
        "summary": e.summary,
        "description": e.description,
        "start": { "dateTime": e.start },
        "end": { "dateTime": e.end },
        "organizer": { "email": e.organizer, "self": true },
        "creator": { "email": e.organizer, "self": true },
        "attendees": e.attendees.iter().map(|a| json!({ "email": a, "responseStatus": "needsAction" })).collect::<Vec<_>>(),
        "extendedProperties": { "private": e.private, "shared": e.shared },
    });
    if let Some(request_id) = &e.request_id {
        let mut conference = json!({
            "createRequest": {
                "requestId": request_id,
                "conferenceSolutionKey": { "type": "hangoutsMeet" },
                "status": { "statusCode": e.conference_status },
            },
        });
        if let Some(link) = &e.hangout_link {
            let code = link.rsplit('/').next().unwrap_or_default();
            conference["conferenceId"] = json!(code);
            conference["conferenceSolution"] = json!({
                "key": { "type": "hangoutsMeet" }, "name": "Google Meet",
            });
            conference["entryPoints"] = json!([{
                "entryPointType": "video", "uri": link, "label": format!("meet/{code}"),
            }]);
            v["hangoutLink"] = json!(link);
        }
        v["conferenceData"] = conference;
    }
    v
}

/// `GET /calendar/v3/calendars/{id}`.
pub(super) async fn calendars_get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let principal = match guard(
        &shared,
        &headers,
        Api::CalendarRead,
        format!("GET /calendar/v3/calendars/{id}"),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let who = who(&shared, &principal);
    let inner = shared.lock();
    match visible(&inner, &id, &who) {
        Some(c) => axum::Json(json!({
            "kind": "calendar#calendar", "id": c.id, "summary": c.summary, "timeZone": "UTC",
        }))
        .into_response(),
        None => calendar_not_found(),
    }
}

/// `name=value` constraints of a repeated extended-property parameter.
fn constraints(query: &[(String, String)], param: &str) -> Result<Vec<(String, String)>, Response> {
    query
        .iter()
        .filter(|(k, _)| k == param)
        .map(|(_, v)| {
            v.split_once('=')
                .filter(|(name, _)| !name.is_empty())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .ok_or_else(|| {
                    gerr(
                        400,
                        "INVALID_ARGUMENT",
                        &format!("Invalid {param} constraint: {v}"),
                        "invalid",
                    )
                })
        })
        .collect()
}

/// `GET /calendar/v3/calendars/{id}/events`.
pub(super) async fn events_list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let principal = match guard(
        &shared,
        &headers,
        Api::EventsRead,
        format!("GET /calendar/v3/calendars/{id}/events"),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let query = form_decode(raw.as_deref().unwrap_or_default());
    let (private, shared_props) = match (
        constraints(&query, "privateExtendedProperty"),
        constraints(&query, "sharedExtendedProperty"),
    ) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let max = match query.iter().find(|(k, _)| k == "maxResults") {
        None => 250,
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(2500),
            _ => {
                return gerr(
                    400,
                    "INVALID_ARGUMENT",
                    "Invalid value for: maxResults",
                    "invalid",
                );
            }
        },
    };
    let who = who(&shared, &principal);
    let (items, summary) = {
        let mut inner = shared.lock();
        let Some(summary) = visible(&inner, &id, &who).map(|c| c.summary.clone()) else {
            return calendar_not_found();
        };
        let mut items = Vec::new();
        for e in inner.events.iter_mut().filter(|e| e.calendar_id == id) {
            let matches = private.iter().all(|(k, v)| e.private.get(k) == Some(v))
                && shared_props.iter().all(|(k, v)| e.shared.get(k) == Some(v));
            if !matches || items.len() >= max {
                continue;
            }
            // A pending conference is ready by the time anyone reads again.
            if e.conference_status == "pending" {
                e.conference_status = "success".into();
            }
            items.push(e.clone());
        }
        (items, summary)
    };
    if !private.is_empty() {
        let by: Vec<String> = private.iter().map(|(k, v)| format!("{k}={v}")).collect();
        shared.timeline.say(format!(
            "Google Calendar: search for events marked {} found {}",
            by.join(", "),
            items.len()
        ));
    }
    let items: Vec<Value> = items.iter().map(|e| event_json(&shared, e)).collect();
    axum::Json(json!({ "kind": "calendar#events", "summary": summary, "items": items }))
        .into_response()
}

/// `start`/`end` of an event body: the `dateTime` (RFC 3339 with an offset)
/// or `date` as sent, and the instant it means.
fn when(body: &Map<String, Value>, field: &str) -> Result<(String, jiff::Timestamp), Response> {
    let missing = || bad_request(&format!("Missing {field} time."));
    let v = body
        .get(field)
        .and_then(Value::as_object)
        .ok_or_else(missing)?;
    if let Some(dt) = v.get("dateTime").and_then(Value::as_str) {
        let at = dt
            .parse::<jiff::Timestamp>()
            .map_err(|_| bad_request(&format!("Invalid {field} time.")))?;
        return Ok((dt.to_string(), at));
    }
    if let Some(date) = v.get("date").and_then(Value::as_str) {
        let at = format!("{date}T00:00:00Z")
            .parse::<jiff::Timestamp>()
            .map_err(|_| bad_request(&format!("Invalid {field} time.")))?;
        return Ok((date.to_string(), at));
    }
    Err(missing())
}

fn string_map(v: Option<&Value>) -> Result<BTreeMap<String, String>, Response> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| bad_request("extendedProperties values must be strings"))
            })
            .collect(),
        Some(_) => Err(bad_request("extendedProperties must be objects")),
    }
}

/// A Meet code like `abc-defg-hij`.
fn meet_code() -> String {
    let mut rng = rand::rng();
    let mut part = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect()
    };
    format!("{}-{}-{}", part(3), part(4), part(3))
}

/// `POST /calendar/v3/calendars/{id}/events`.
pub(super) async fn events_insert(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let principal = match guard(
        &shared,
        &headers,
        Api::EventsWrite,
        format!("POST /calendar/v3/calendars/{id}/events"),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let who = who(&shared, &principal);
    if visible(&shared.lock(), &id, &who).is_none() {
        return calendar_not_found();
    }
    let version = match query.get("conferenceDataVersion").map(String::as_str) {
        None | Some("0") => 0,
        Some("1") => 1,
        Some(_) => {
            return gerr(
                400,
                "INVALID_ARGUMENT",
                "Invalid value for: conferenceDataVersion",
                "invalid",
            );
        }
    };
    let send_updates = query.get("sendUpdates").cloned();
    if let Some(s) = &send_updates
        && !matches!(s.as_str(), "all" | "externalOnly" | "none")
    {
        return gerr(
            400,
            "INVALID_ARGUMENT",
            "Invalid value for: sendUpdates",
            "invalid",
        );
    }
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ((start, start_at), (end, end_at)) = match (when(&body, "start"), when(&body, "end")) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if end_at <= start_at {
        return gerr(
            400,
            "INVALID_ARGUMENT",
            "The specified time range is empty.",
            "timeRangeEmpty",
        );
    }
    let mut attendees = Vec::new();
    for a in body
        .get("attendees")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        match a["email"].as_str().filter(|e| e.contains('@')) {
            Some(e) => attendees.push(e.to_string()),
            None => return bad_request("Invalid attendee email."),
        }
    }
    if !attendees.is_empty() && principal.subject.is_none() {
        return gerr(
            403,
            "PERMISSION_DENIED",
            "Service accounts cannot invite attendees without Domain-Wide Delegation of Authority.",
            "forbiddenForServiceAccounts",
        );
    }
    let extended = body.get("extendedProperties");
    let (private, shared_props) = match (
        string_map(extended.and_then(|e| e.get("private"))),
        string_map(extended.and_then(|e| e.get("shared"))),
    ) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    // Version 0 "ignores conference data in the event's body".
    let create = body
        .get("conferenceData")
        .and_then(|c| c.get("createRequest"))
        .filter(|_| version == 1);
    let request_id = match create {
        None => None,
        Some(r) => {
            let Some(request_id) = r["requestId"].as_str().filter(|s| !s.is_empty()) else {
                return bad_request("Invalid conference create request: requestId is required.");
            };
            if r["conferenceSolutionKey"]["type"] != "hangoutsMeet" {
                return bad_request("Invalid conference type value.");
            }
            Some(request_id.to_string())
        }
    };
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let event = {
        let mut inner = shared.lock();
        let event_id = inner.new_id("ev").to_ascii_lowercase();
        let pending = request_id.is_some() && inner.meet_pending;
        let event = FakeEvent {
            id: event_id,
            calendar_id: id.clone(),
            summary: text("summary"),
            description: text("description"),
            start,
            end,
            attendees,
            organizer: who.clone(),
            hangout_link: request_id
                .as_ref()
                .map(|_| format!("{}/meet/{}", shared.base(), meet_code())),
            conference_status: match (&request_id, pending) {
                (None, _) => String::new(),
                (Some(_), true) => "pending".into(),
                (Some(_), false) => "success".into(),
            },
            request_id,
            private,
            shared: shared_props,
            send_updates,
        };
        inner.events.push(event.clone());
        event
    };
    let meet = match (&event.hangout_link, event.conference_status.as_str()) {
        (Some(_), "pending") => " (Meet link pending)",
        (Some(_), _) => " with a Meet link",
        (None, _) => " without a Meet link",
    };
    let invited = if event.attendees.is_empty() {
        String::new()
    } else {
        let mailed = if event.send_updates.as_deref() == Some("all") {
            " (invitations e-mailed)"
        } else {
            ""
        };
        format!(", inviting {}{mailed}", event.attendees.join(", "))
    };
    shared.timeline.say(format!(
        "Google Calendar: {who} booked \"{}\" on {id}{meet}{invited}",
        super::super::shorten(&event.summary, 80)
    ));
    let mut v = event_json(&shared, &event);
    if event.conference_status == "pending" {
        // Not there yet: the link appears once Google has made it.
        if let Some(o) = v.as_object_mut() {
            o.remove("hangoutLink");
        }
        if let Some(c) = v["conferenceData"].as_object_mut() {
            c.remove("entryPoints");
            c.remove("conferenceSolution");
            c.remove("conferenceId");
        }
    }
    axum::Json(v).into_response()
}

/// The `htmlLink` target: the event as plain text.
pub(super) async fn event_view(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    let text = shared.lock().events.iter().find(|e| e.id == id).map(|e| {
        format!(
            "{}\n{} – {}\n{}\n\n{}",
            e.summary,
            e.start,
            e.end,
            e.hangout_link.as_deref().unwrap_or("(no video link)"),
            e.description
        )
    });
    match text {
        Some(t) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], t).into_response(),
        None => (StatusCode::NOT_FOUND, "no such event").into_response(),
    }
}

/// The `hangoutLink` target: a stand-in for the Meet room.
pub(super) async fn meet_view(Path(code): Path<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Meet {code} (stand-in: nobody is here)"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA: &str = "sa@x.iam.gserviceaccount.com";

    /// A fake with one calendar writable by `ana@acme.example` and the
    /// service account, delegation for acme.example, and a token for each.
    async fn setup() -> (FakeGoogle, String, String) {
        let fake = FakeGoogle::start(FakeGoogleOptions {
            client_email: SA.into(),
            public_key_pem: DEMO_PUBLIC_KEY_PEM.into(),
            timeline: Timeline::default(),
        })
        .await
        .unwrap();
        fake.add_calendar("cal-1", "Hand-offs", &["ana@acme.example", SA]);
        let mut inner = fake.shared.lock();
        let mut token = |subject: Option<&str>| {
            let t = format!("ya29.test-{}", subject.unwrap_or("sa"));
            inner.tokens.insert(
                t.clone(),
                IssuedToken {
                    expires: Instant::now() + TOKEN_LIFETIME,
                    scopes: vec![SCOPE_CALENDAR_EVENTS.into()],
                    subject: subject.map(str::to_string),
                },
            );
            t
        };
        let (user, sa) = (token(Some("ana@acme.example")), token(None));
        drop(inner);
        (fake, user, sa)
    }

    fn event(with_attendees: bool) -> Value {
        let mut e = json!({
            "summary": "Hand-off",
            "start": { "dateTime": "2030-01-01T10:00:00Z" },
            "end": { "dateTime": "2030-01-01T10:30:00+00:00" },
            "conferenceData": { "createRequest": {
                "requestId": "r-1", "conferenceSolutionKey": { "type": "hangoutsMeet" } } },
            "extendedProperties": { "private": { "pagerd_incident": "7" } },
        });
        if with_attendees {
            e["attendees"] = json!([{ "email": "bo@acme.example" }]);
        }
        e
    }

    async fn insert(fake: &FakeGoogle, token: &str, query: &str, body: &Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!(
                "{}/calendars/cal-1/events{query}",
                fake.calendar_url()
            ))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn a_meet_link_only_with_conference_data_version_1() {
        let (fake, user, _) = setup().await;
        let (s, v) = insert(&fake, &user, "", &event(true)).await;
        assert_eq!(s, 200, "{v}");
        assert!(v.get("hangoutLink").is_none(), "{v}");
        assert!(v.get("conferenceData").is_none(), "{v}");
        let (s, v) = insert(&fake, &user, "?conferenceDataVersion=1", &event(true)).await;
        assert_eq!(s, 200, "{v}");
        let link = v["hangoutLink"].as_str().unwrap();
        assert_eq!(v["conferenceData"]["entryPoints"][0]["uri"], link);
        assert_eq!(
            v["conferenceData"]["createRequest"]["status"]["statusCode"],
            "success"
        );
        let events = fake.events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].hangout_link, None);
        assert_eq!(events[1].hangout_link.as_deref(), Some(link));
        assert_eq!(events[1].attendees, ["bo@acme.example"]);
        assert_eq!(events[1].organizer, "ana@acme.example");
        let mut no_id = event(false);
        no_id["conferenceData"]["createRequest"]["requestId"] = json!("");
        assert_eq!(
            insert(&fake, &user, "?conferenceDataVersion=1", &no_id)
                .await
                .0,
            400
        );
    }

    #[tokio::test]
    async fn attendees_need_a_user_and_times_a_range() {
        let (fake, user, sa) = setup().await;
        let (s, v) = insert(&fake, &sa, "", &event(true)).await;
        assert_eq!(s, 403, "{v}");
        assert_eq!(
            v["error"]["errors"][0]["reason"],
            "forbiddenForServiceAccounts"
        );
        assert_eq!(insert(&fake, &sa, "", &event(false)).await.0, 200);
        let mut backwards = event(false);
        backwards["end"] = json!({ "dateTime": "2030-01-01T09:00:00Z" });
        assert_eq!(insert(&fake, &user, "", &backwards).await.0, 400);
        let mut no_end = event(false);
        no_end.as_object_mut().unwrap().remove("end");
        assert_eq!(insert(&fake, &user, "", &no_end).await.0, 400);
    }

    #[tokio::test]
    async fn events_are_filtered_by_private_properties() {
        let (fake, user, _) = setup().await;
        insert(&fake, &user, "", &event(false)).await;
        let http = reqwest::Client::new();
        let list = |q: &'static str| {
            let req = http
                .get(format!(
                    "{}/calendars/cal-1/events?{q}",
                    fake.calendar_url()
                ))
                .bearer_auth(&user);
            async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (s, v) = list("privateExtendedProperty=pagerd_incident%3D7").await;
        assert_eq!((s, v["items"].as_array().unwrap().len()), (200, 1), "{v}");
        let (_, v) = list(
            "privateExtendedProperty=pagerd_incident%3D7&privateExtendedProperty=pagerd_key%3Dx",
        )
        .await;
        assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");
        let (_, v) = list("privateExtendedProperty=pagerd_incident%3D8").await;
        assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");
        assert_eq!(list("privateExtendedProperty=nonsense").await.0, 400);
        let r = http
            .get(format!("{}/calendars/cal-2/events", fake.calendar_url()))
            .bearer_auth(&user)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
}
