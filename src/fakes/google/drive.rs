//! Drive v3: files (create, copy, list, get, update) and permissions.

use super::*;

/// Reads `appProperties` of a create/copy/update body into `props` (null
/// values delete, as Drive does).
pub(super) fn merge_app_properties(
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

pub(super) fn parents_of(body: &Map<String, Value>) -> Result<Vec<String>, Response> {
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

pub(super) fn marker_note(props: &BTreeMap<String, String>) -> String {
    props
        .get("pagerd_key")
        .map(|k| format!(" marked pagerd_key={k}"))
        .unwrap_or_default()
}

pub(super) async fn files_list(
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

pub(super) async fn files_create(
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

pub(super) async fn files_copy(
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

pub(super) async fn files_get(
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

pub(super) async fn files_update(
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

pub(super) async fn permissions_list(
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

pub(super) async fn permissions_create(
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

#[cfg(test)]
mod tests {
    use super::*;

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
                subject: None,
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
