//! The OAuth token endpoint: the service-account JWT bearer grant, verified
//! as Google verifies it (RS256 with the account's public key, `aud`, `iss`,
//! lifetime, `scope`, and `sub` only for a delegated domain).

use super::*;

pub(super) async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
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
        Ok((iss, scopes, subject)) => {
            let r: u128 = rand::rng().random();
            let access_token = format!("ya29.fake-{r:032x}");
            let mut inner = shared.lock();
            inner.tokens.insert(
                access_token.clone(),
                IssuedToken {
                    expires: Instant::now() + TOKEN_LIFETIME,
                    scopes,
                    subject: subject.clone(),
                },
            );
            inner.tokens_issued += 1;
            inner.subjects.push(subject.clone());
            drop(inner);
            let acting = subject
                .map(|s| format!(" acting as {s}"))
                .unwrap_or_default();
            shared
                .timeline
                .say(format!("Google: issued an access token to {iss}{acting}"));
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
            let mut resp = oauth_error(code, &description);
            if code == "unauthorized_client" {
                *resp.status_mut() = StatusCode::UNAUTHORIZED;
            }
            resp
        }
    }
}

/// What a verified assertion grants: the issuer, the scopes, and the user
/// acted as (`sub`), if any.
pub(super) type Grant = (String, Vec<String>, Option<String>);

/// Verifies the JWT like Google's token endpoint: the [`Grant`], or an
/// OAuth error code and description.
pub(super) fn verify_assertion(
    shared: &Shared,
    jwt: &str,
) -> Result<Grant, (&'static str, String)> {
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
    let subject = match claims.get("sub") {
        None | Some(Value::Null) => None,
        Some(Value::String(sub)) if sub.eq_ignore_ascii_case(&iss) => None,
        Some(Value::String(sub)) => {
            let sub = sub.to_ascii_lowercase();
            let delegated = shared.lock().delegated_domain.clone();
            let domain = sub.rsplit_once('@').map(|(_, d)| d.to_string());
            if delegated.is_none() || domain != delegated {
                return Err((
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.".to_string(),
                ));
            }
            Some(sub)
        }
        Some(_) => return Err(("invalid_grant", "Invalid JWT: sub".to_string())),
    };
    Ok((iss, scopes, subject))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
