//! All the stand-ins at once, and a pagerd config that points at them.
//!
//! Shared by `pagerd demo` and the end-to-end tests, so both run the daemon
//! against the same setup: every vendor on its own `127.0.0.1` port, every
//! secret in a file of its own, nothing reaching outside the machine.

use std::io;
use std::path::{Path, PathBuf};

use super::Timeline;
use super::gitlab::{FakeGitLab, GitLabOptions};
use super::google::{FakeGoogle, FakeGoogleOptions};
use super::pagerduty::{FakePagerDuty, PagerDutyOptions};
use super::slack::{FakeSlack, FakeSlackOptions};
use super::smtp::FakeSmtp;
use super::zendesk::{FakeZendesk, ZendeskOptions};

/// The stand-ins' credentials. Recognisable on purpose: the secret-hygiene
/// test greps every output for them.
pub mod secrets {
    /// PagerDuty Events API routing key: well-formed (32 characters, a-z
    /// and 0-9, as `pagerd doctor` checks) and still unique enough for the
    /// secret-hygiene grep.
    pub const ROUTING_KEY: &str = "5ec2e7a0b1c2d3e4f5a6b7c8d9e0f1a2";
    /// PagerDuty REST API token.
    pub const PD_API_TOKEN: &str = "SECRET-pd-api-token-9c8d7e";
    /// PagerDuty webhook signing secret.
    pub const PD_WEBHOOK: &str = "SECRET-pd-webhook-3e4f5a";
    /// Zendesk API token.
    pub const ZD_API_TOKEN: &str = "SECRET-zd-api-token-1a2b3c";
    /// Zendesk webhook signing secret.
    pub const ZD_WEBHOOK: &str = "SECRET-zd-webhook-6d7e8f";
    /// Slack bot token.
    pub const SLACK_BOT: &str = "xoxb-SECRET-slack-bot-4b5c6d";
    /// Slack signing secret.
    pub const SLACK_SIGNING: &str = "SECRET-slack-signing-7e8f9a";
    /// pagerd's admin API token.
    pub const ADMIN: &str = "SECRET-admin-token-2c3d4e5f6a7b8c9d0e1f";
    /// GitLab access token.
    pub const GITLAB_TOKEN: &str = "glpat-SECRET-gitlab-8a9b0c";
}

/// The Zendesk agent e-mail of the API token.
pub const ZENDESK_EMAIL: &str = "pagerd@acme.example";
/// The Google service account.
pub const GOOGLE_ACCOUNT: &str = "pagerd@acme-demo.iam.gserviceaccount.com";
/// The user Google Calendar acts as (`google.impersonate`): the stand-in
/// grants the service account domain-wide delegation for its domain.
pub const CALENDAR_USER: &str = "oncall-bot@acme.example";
/// The hand-off calendar (`google.calendar_id`).
pub const CALENDAR_ID: &str = "crisis-handoffs@acme.example";
/// The GitLab project of the follow-up issues (`gitlab.project`).
pub const GITLAB_PROJECT: &str = "support/crises";
/// Its numeric id.
pub const GITLAB_PROJECT_ID: u64 = 4242;
/// The Slack channels: (name, ID).
pub const SLACK_CHANNELS: [(&str, &str); 4] = [
    ("infrastructure", "C0INFRA001"),
    ("development", "C0DEVEL001"),
    ("general", "C0GENERAL1"),
    // `[hackerone] channel`'s default; crises are not announced there.
    ("security", "C0SECURIT1"),
];

/// Which optional stand-ins to start (GitLab is always there, like
/// PagerDuty and Zendesk: it is cheap, and nothing reaches it unless a
/// follow-up issue is opened).
#[derive(Clone, Default)]
pub struct Options {
    /// Slack.
    pub slack: bool,
    /// Google Drive and Docs.
    pub google: bool,
    /// An SMTP sink for the e-mail fallback.
    pub email: bool,
    /// Where the stand-ins narrate.
    pub timeline: Timeline,
}

/// Config lines added to the generated file, per section.
#[derive(Clone, Default)]
pub struct Extra {
    /// Lines for `[policy]`.
    pub policy: String,
    /// Lines for `[pagerduty]`.
    pub pagerduty: String,
    /// Lines for `[zendesk]`.
    pub zendesk: String,
    /// Lines for `[email]`.
    pub email: String,
    /// Lines for `[server]`.
    pub server: String,
    /// Lines for `[store]` (e.g. a PostgreSQL `url`).
    pub store: String,
    /// Lines for `[people]` (`"e-mail" = "name"`); no section when empty.
    pub people: String,
    /// Lines for `[hackerone]`; no section when empty (it needs Slack).
    pub hackerone: String,
}

/// The running stand-ins.
pub struct StandIns {
    /// PagerDuty (Events and REST).
    pub pagerduty: FakePagerDuty,
    /// Zendesk.
    pub zendesk: FakeZendesk,
    /// Slack, when asked for.
    pub slack: Option<FakeSlack>,
    /// Google (Drive, Docs, Calendar), when asked for.
    pub google: Option<FakeGoogle>,
    /// GitLab.
    pub gitlab: FakeGitLab,
    /// SMTP, when asked for.
    pub smtp: Option<FakeSmtp>,
}

impl StandIns {
    /// Starts the stand-ins.
    pub async fn start(opts: Options) -> io::Result<StandIns> {
        let t = opts.timeline;
        let pagerduty = FakePagerDuty::start(PagerDutyOptions {
            routing_key: secrets::ROUTING_KEY.into(),
            api_token: secrets::PD_API_TOKEN.into(),
            timeline: t.clone(),
        })
        .await?;
        let zendesk = FakeZendesk::start(ZendeskOptions {
            email: ZENDESK_EMAIL.into(),
            api_token: secrets::ZD_API_TOKEN.into(),
            webhook_secret: secrets::ZD_WEBHOOK.into(),
            timeline: t.clone(),
        })
        .await?;
        let slack = if opts.slack {
            let channels = SLACK_CHANNELS
                .iter()
                .map(|(n, id)| (n.to_string(), id.to_string()))
                .collect();
            Some(
                FakeSlack::start(FakeSlackOptions {
                    bot_token: secrets::SLACK_BOT.into(),
                    channels,
                    timeline: t.clone(),
                    scopes: None,
                })
                .await?,
            )
        } else {
            None
        };
        let gitlab = FakeGitLab::start(GitLabOptions {
            token: secrets::GITLAB_TOKEN.into(),
            project_path: GITLAB_PROJECT.into(),
            project_id: GITLAB_PROJECT_ID,
            timeline: t.clone(),
        })
        .await?;
        let google = if opts.google {
            let google = FakeGoogle::start(FakeGoogleOptions {
                client_email: GOOGLE_ACCOUNT.into(),
                public_key_pem: super::google::DEMO_PUBLIC_KEY_PEM.into(),
                timeline: t.clone(),
            })
            .await?;
            let domain = CALENDAR_USER.rsplit('@').next().unwrap_or_default();
            google.allow_delegation(domain);
            google.add_calendar(
                CALENDAR_ID,
                "Crisis hand-offs",
                &[CALENDAR_USER, GOOGLE_ACCOUNT],
            );
            Some(google)
        } else {
            None
        };
        let smtp = if opts.email {
            Some(FakeSmtp::start(t.clone()).await?)
        } else {
            None
        };
        Ok(StandIns {
            pagerduty,
            zendesk,
            slack,
            google,
            gitlab,
            smtp,
        })
    }

    /// Writes the secret files and `pagerd.toml` into `dir`; returns the
    /// config's path. `listen` is the daemon's address, `store` its database.
    pub fn write_config(
        &self,
        dir: &Path,
        listen: &str,
        store: &Path,
        extra: &Extra,
    ) -> io::Result<PathBuf> {
        let secret = |name: &str, value: &str| -> io::Result<String> {
            let path = dir.join(name);
            write_private(&path, format!("{value}\n").as_bytes())?;
            Ok(path.display().to_string())
        };
        let mut toml = format!(
            "[server]\nlisten = {listen:?}\nadmin_token_file = {admin:?}\n{server}\n\n\
             [store]\npath = {store:?}\n{store_extra}\n\n\
             [policy]\n{policy}\n\n\
             [zendesk]\nurl = {zd:?}\nemail = {email:?}\napi_token_file = {zd_token:?}\nwebhook_secret_file = {zd_hook:?}\n{zendesk}\n\n\
             [pagerduty]\nevents_url = {pd:?}\napi_url = {pd:?}\nrouting_key_file = {key:?}\napi_token_file = {pd_token:?}\n\
             from = \"oncall@acme.example\"\nwebhook_secret_file = {pd_hook:?}\n{pagerduty}\n",
            admin = secret("admin-token", secrets::ADMIN)?,
            server = extra.server,
            store = store.display().to_string(),
            store_extra = extra.store,
            policy = extra.policy,
            zd = self.zendesk.url(),
            email = ZENDESK_EMAIL,
            zd_token = secret("zendesk-api-token", secrets::ZD_API_TOKEN)?,
            zd_hook = secret("zendesk-webhook-secret", secrets::ZD_WEBHOOK)?,
            zendesk = extra.zendesk,
            pd = self.pagerduty.url(),
            key = secret("pagerduty-routing-key", secrets::ROUTING_KEY)?,
            pd_token = secret("pagerduty-api-token", secrets::PD_API_TOKEN)?,
            pd_hook = secret("pagerduty-webhook-secret", secrets::PD_WEBHOOK)?,
            pagerduty = extra.pagerduty,
        );
        toml.push_str(&format!(
            "\n[gitlab]\nurl = {:?}\nproject = {:?}\ntoken_file = {:?}\n",
            self.gitlab.url(),
            GITLAB_PROJECT,
            secret("gitlab-token", secrets::GITLAB_TOKEN)?,
        ));
        if !extra.people.is_empty() {
            toml.push_str(&format!("\n[people]\n{}\n", extra.people));
        }
        if !extra.hackerone.is_empty() {
            toml.push_str(&format!("\n[hackerone]\n{}\n", extra.hackerone));
        }
        if let Some(slack) = &self.slack {
            toml.push_str(&format!(
                "\n[slack]\napi_url = {:?}\nbot_token_file = {:?}\nsigning_secret_file = {:?}\n\
                 channels = [\"#infrastructure\", \"#development\", \"#general\"]\n",
                slack.url(),
                secret("slack-bot-token", secrets::SLACK_BOT)?,
                secret("slack-signing-secret", secrets::SLACK_SIGNING)?,
            ));
        }
        if let Some(google) = &self.google {
            let key = dir.join("google-service-account.json");
            write_private(
                &key,
                super::google::demo_service_account_json(GOOGLE_ACCOUNT, &google.token_url())
                    .as_bytes(),
            )?;
            toml.push_str(&format!(
                "\n[google]\ntoken_url = {:?}\ndrive_url = {:?}\ndocs_url = {:?}\nservice_account_file = {:?}\n\
                 share_domain = \"acme.example\"\ncustomer_role = \"commenter\"\n\
                 calendar_url = {:?}\ncalendar_id = {:?}\nimpersonate = {:?}\n",
                google.token_url(),
                google.drive_url(),
                google.docs_url(),
                key.display().to_string(),
                google.calendar_url(),
                CALENDAR_ID,
                CALENDAR_USER,
            ));
        }
        if let Some(smtp) = &self.smtp {
            toml.push_str(&format!(
                "\n[email]\nsmtp_url = {:?}\nfrom = \"pagerd@acme.example\"\nlevel2 = [\"level2@acme.example\"]\n{}\n",
                smtp.url(),
                extra.email
            ));
        }
        let path = dir.join("pagerd.toml");
        std::fs::write(&path, toml)?;
        Ok(path)
    }
}

/// Writes a secret file readable by its owner only (0600), as the README
/// asks of real secrets: the file is created with that mode, never widened.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn secret_files_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        super::write_private(&path, b"value\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "value\n");
    }
}
