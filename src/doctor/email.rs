//! E-mail fallback: connect to the relay, `EHLO` (and `STARTTLS`, `AUTH`
//! as configured), `NOOP`, `QUIT`; no mail is sent.

use super::Check;
use crate::config::Config;
use crate::vendors::ProbeError;
use crate::vendors::email::Mailer;

const NAME: &str = "SMTP relay";

pub(super) async fn checks(config: &Config) -> Vec<Check> {
    let Some(ec) = &config.email else {
        return vec![Check::pass(
            "E-mail fallback",
            "not configured (no [email]); warning: if PagerDuty refuses or cannot take a page, \
             no human is reached by any other path",
        )];
    };
    let mailer = match Mailer::new(
        &ec.smtp_url,
        &ec.from,
        ec.password.clone(),
        ec.username.clone(),
    ) {
        Ok(m) => m,
        Err(e) => {
            return vec![Check::fail(
                NAME,
                e,
                "fix email.smtp_url, email.from, email.username and email.password_file",
            )];
        }
    };
    let login = match &ec.username {
        Some(u) => format!(", AUTH as {u}"),
        None => String::new(),
    };
    vec![match mailer.test_connection().await {
        Ok(()) => Check::pass(
            NAME,
            format!("connected, EHLO{login} and NOOP accepted; no mail sent"),
        ),
        Err(ProbeError::Rejected { reason }) => Check::fail(
            NAME,
            reason,
            "check email.username and the password in email.password_file (or _env) with the \
             relay's administrator, and the TLS mode of email.smtp_url",
        ),
        Err(e) => Check::fail(
            NAME,
            e.to_string(),
            "check email.smtp_url (host, port, smtp:// or smtps://, ?tls=required) and that this \
             host reaches the relay",
        ),
    }]
}
