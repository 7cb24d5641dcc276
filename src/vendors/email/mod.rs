//! E-mail pages over SMTP (lettre, tokio).
//!
//! The relay is given as a URL: `smtp://host:25` (plain), `smtp://host:587?tls=required`
//! (STARTTLS, refused if the server does not offer it), `smtp://host?tls=opportunistic`
//! or `smtps://host:465` (TLS from the first byte). Every mail carries a stable
//! `Message-ID: <{message_id}@pagerd>`, so a redelivery after a crash is
//! recognisable (and collapsible by most clients) as the same mail.
//!
//! SMTP 4xx replies and connection failures are retryable; 5xx replies are
//! permanent (the relay refused the sender, a recipient or the content).

pub mod config;
pub mod deliver;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{DeliveryError, ProbeError};
use crate::secret::Secret;

/// Timeout of each SMTP command (connect, greeting, every reply).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends plain-text mail through one relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // lettre's Debug would show the credentials' struct; keep them out.
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for the relay at `smtp_url` sending as `from`
    /// (`pagerd@example.com` or `pagerd <pagerd@example.com>`).
    ///
    /// With a `password`, logs in as `username` (default: the address of
    /// `from`). Errors name what is wrong and never contain the password.
    pub fn new(
        smtp_url: &str,
        from: &str,
        password: Option<Secret>,
        username: Option<String>,
    ) -> Result<Mailer, String> {
        let from: Mailbox = from
            .trim()
            .parse()
            .map_err(|e| format!("invalid sender address {from:?}: {e}"))?;
        // lettre's URL errors describe the problem (scheme, port, tls
        // parameter) without echoing the URL, which may hold a password.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url.trim())
            .map_err(|e| format!("invalid SMTP URL (expected smtp://host:port, smtps://host:port or smtp://host:port?tls=required): {e}"))?
            .timeout(Some(SMTP_TIMEOUT));
        match (password, username) {
            (Some(password), username) => {
                let user = username.unwrap_or_else(|| from.email.to_string());
                builder =
                    builder.credentials(Credentials::new(user, password.expose().to_string()));
            }
            (None, Some(_)) => return Err("an SMTP username is set but no password".to_string()),
            (None, None) => {}
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// Sends one plain-text mail to every address in `to`, with
    /// `Message-ID: <{message_id}@pagerd>`.
    pub async fn send(
        &self,
        to: &[String],
        subject: &str,
        body: &str,
        message_id: &str,
    ) -> Result<(), DeliveryError> {
        if to.is_empty() {
            return Err(DeliveryError::permanent("e-mail: no recipients"));
        }
        let mut builder = Message::builder()
            .from(self.from.clone())
            // Last line of defence against header injection and overlong
            // subjects, whatever the caller built.
            .subject(crate::render::email_subject(subject))
            .message_id(Some(format!("<{}@pagerd>", sanitize_id(message_id))))
            .header(ContentType::TEXT_PLAIN);
        for addr in to {
            let mailbox: Mailbox = addr.trim().parse().map_err(|e| {
                DeliveryError::permanent(format!("e-mail: invalid recipient address {addr:?}: {e}"))
            })?;
            builder = builder.to(mailbox);
        }
        let message = builder.body(crate::render::email_body(body)).map_err(|e| {
            DeliveryError::permanent(format!("e-mail: cannot build the message: {e}"))
        })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }
}

impl Mailer {
    /// Connects to the relay, greets it (`EHLO`, `STARTTLS` as the URL
    /// says, `AUTH` when credentials are set), checks it answers `NOOP`,
    /// and says `QUIT`: no `MAIL`, no `DATA`, nothing sent (lettre's
    /// `test_connection`). A refused login is [`ProbeError::Rejected`].
    pub async fn test_connection(&self) -> Result<(), ProbeError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ProbeError::Failed(DeliveryError::retry(
                "SMTP relay accepted the connection but did not answer NOOP",
            ))),
            Err(e) if e.is_permanent() => Err(ProbeError::Rejected {
                reason: format!("SMTP relay refused the greeting or the login: {e}"),
            }),
            Err(e) => Err(ProbeError::Failed(classify(&e))),
        }
    }
}

/// SMTP 5xx is permanent; 4xx, timeouts, connection and TLS trouble are
/// worth another try.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    // lettre's Display already ends with its direct source; add the rest.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e).and_then(|s| s.source());
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_permanent() {
        DeliveryError::permanent(format!("SMTP relay refused the mail: {text}"))
    } else if e.is_transient() {
        DeliveryError::retry(format!("SMTP relay deferred the mail: {text}"))
    } else {
        DeliveryError::retry(format!("SMTP delivery failed: {text}"))
    }
}

/// Keeps the left part of a Message-ID to characters that need no quoting
/// (RFC 5322 dot-atom), so `<{id}@pagerd>` is always a valid header.
fn sanitize_id(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('.').replace("..", ".");
    if s.is_empty() {
        "pagerd".to_string()
    } else {
        s
    }
}

// The tests run against the stand-ins (the `demo` feature).
#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::*;
    use crate::fakes::Timeline;
    use crate::fakes::smtp::FakeSmtp;

    #[tokio::test]
    async fn sends_to_the_fake_relay() {
        let smtp = FakeSmtp::start(Timeline::default()).await.unwrap();
        let mailer = Mailer::new(&smtp.url(), "pagerd <pagerd@example.com>", None, None).unwrap();
        let to = vec![
            "alice@example.com".to_string(),
            "bob@example.com".to_string(),
        ];
        let body = "Incident 42: db down\n.\n..leading dots survive\n";
        mailer
            .send(&to, "P1 – db down", body, "inc-42/email")
            .await
            .unwrap();
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1);
        let m = &mails[0];
        assert_eq!(m.from, "pagerd@example.com");
        assert_eq!(m.to, to);
        assert_eq!(m.subject, "P1 – db down");
        assert_eq!(m.message_id.as_deref(), Some("<inc-42/email@pagerd>"));
        assert!(m.body.contains("..leading dots survive"), "{}", m.body);
    }

    #[tokio::test]
    async fn smtp_replies_are_classified() {
        let smtp = FakeSmtp::start(Timeline::default()).await.unwrap();
        let mailer = Mailer::new(&smtp.url(), "pagerd@example.com", None, None).unwrap();
        let to = vec!["alice@example.com".to_string()];

        smtp.fail_next(1, "451 4.3.0 try later");
        let e = mailer.send(&to, "s", "b", "m1").await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("451"), "{e}");

        smtp.fail_next(1, "550 5.7.1 relaying denied");
        let e = mailer.send(&to, "s", "b", "m1").await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");

        mailer.send(&to, "s", "b", "m1").await.unwrap();
        assert_eq!(smtp.messages().len(), 1);

        let e = mailer
            .send(&["not an address".to_string()], "s", "b", "m1")
            .await
            .unwrap_err();
        assert!(!e.is_retryable());
    }

    #[test]
    fn send_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let mailer = Mailer::new("smtp://127.0.0.1:1", "p@example.com", None, None).unwrap();
        assert_send(&mailer.send(&[], "s", "b", "m"));
    }

    #[tokio::test]
    async fn unreachable_relay_is_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mailer = Mailer::new(
            &format!("smtp://127.0.0.1:{port}"),
            "pagerd@example.com",
            None,
            None,
        )
        .unwrap();
        let e = mailer
            .send(&["a@example.com".to_string()], "s", "b", "m")
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn bad_settings_are_named_without_the_password() {
        let e = Mailer::new("http://relay:25", "pagerd@example.com", None, None).unwrap_err();
        assert!(e.contains("invalid SMTP URL"), "{e}");
        let e = Mailer::new(
            "smtp://relay:25",
            "not an address",
            Some(Secret::new("hunter2")),
            None,
        )
        .unwrap_err();
        assert!(
            e.contains("invalid sender address") && !e.contains("hunter2"),
            "{e}"
        );
        let e =
            Mailer::new("smtp://relay:25", "p@example.com", None, Some("u".into())).unwrap_err();
        assert!(e.contains("no password"), "{e}");
        let m = Mailer::new(
            "smtps://relay",
            "p@example.com",
            Some(Secret::new("hunter2")),
            Some("u".into()),
        )
        .unwrap();
        assert!(!format!("{m:?}").contains("hunter2"));
        assert!(Mailer::new("smtp://relay:587?tls=required", "p@example.com", None, None).is_ok());
    }

    #[test]
    fn message_ids_are_header_safe() {
        assert_eq!(sanitize_id("inc-42/email"), "inc-42/email");
        assert_eq!(sanitize_id("a b<c>@d"), "a-b-c--d");
        assert_eq!(sanitize_id(""), "pagerd");
    }
}
