//! `pagerd demo`: the whole story of an emergency, on a compressed clock.
//!
//! Starts the real daemon (same code as `pagerd run`) with a temporary
//! store, against the built-in stand-ins of PagerDuty, Zendesk, Slack,
//! Google and SMTP on `127.0.0.1`, then plays the people: the customer who
//! opens the ticket, the on-call engineer who does not answer in time, the
//! one who does, a colleague who joins from Slack. Every line printed is
//! something a stand-in actually received over the wire, stamped with the
//! demo's clock (five minutes of policy per second of demo by default).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Millis, ScaledClock};
use crate::config::Config;
use crate::fakes::stand_ins::{Extra, Options, StandIns, secrets};
use crate::fakes::zendesk::TicketSpec;
use crate::fakes::{Fault, Timeline, slack};

const TICKET: u64 = 4711;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `--speed` out of range.
    #[error("--speed must be at least 1 (1 is real time)")]
    Speed,
    /// A file, directory or socket of the demo.
    #[error("{what}")]
    Io {
        /// What the demo was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A step of the story did not happen in time.
    #[error("the demo waited {limit:?} for {what}; see the daemon's log")]
    Timeout {
        /// What it waited for.
        what: &'static str,
        /// How long.
        limit: Duration,
    },
    /// A stand-in or the daemon answered something unexpected.
    #[error("{0}")]
    Step(String),
    /// The generated config does not load.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The admin API refused or failed.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Io { what, source }
}

/// Prints a line, ignoring a closed stdout (`pagerd demo | head`).
macro_rules! say_out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
const KEY: &str = "zendesk-4711";

fn stamp(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    format!("T+{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Waits (in real time, at most `limit`) for `cond`, or fails saying `what`.
async fn until<F, Fut>(what: &'static str, limit: Duration, cond: F) -> Result<(), DemoError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while !cond().await {
        if start.elapsed() > limit {
            return Err(DemoError::Timeout { what, limit });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn log_to(path: &Path) -> Result<(), DemoError> {
    let file =
        std::fs::File::create(path).map_err(io(format!("cannot create {}", path.display())))?;
    let filter = tracing_subscriber::EnvFilter::new("pagerd=info");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Arc::new(file))
        .try_init();
    Ok(())
}

/// How the demo runs.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// How much faster than real time the clock runs (at least 1).
    pub speed: u32,
    /// Keep the temporary directory (config, store, log, secrets) at the end.
    pub keep: bool,
}

/// Runs the demo in a fresh private temporary directory (mode 0700, secret
/// files 0600). The directory is removed at the end unless `keep` is set or
/// the demo failed (then its log is what the operator needs).
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    if opts.speed == 0 {
        return Err(DemoError::Speed);
    }
    let tmp = tempfile::Builder::new()
        .prefix("pagerd-demo-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(io("cannot create the demo's temporary directory"))?;
    let result = story(opts.speed, tmp.path()).await;
    match (&result, opts.keep) {
        (Ok(()), false) => {
            let dir = tmp.path().display().to_string();
            tmp.close().map_err(io(format!("cannot remove {dir}")))?;
            say_out!(
                "The demo's temporary files (config, secrets, store, log) are removed; \
                 `pagerd demo --keep` keeps them."
            );
        }
        (Ok(()), true) => {
            let dir = tmp.keep();
            say_out!(
                "Kept in {}: pagerd.toml, the secret files, pagerd.db, pagerd.log.",
                dir.display()
            );
        }
        (Err(_), _) => {
            let dir = tmp.keep();
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "pagerd demo: its files are kept in {} (see pagerd.log there)",
                dir.display()
            );
        }
    }
    result
}

/// The story itself, with every file in `dir`.
async fn story(speed: u32, dir: &Path) -> Result<(), DemoError> {
    let log = dir.join("pagerd.log");
    log_to(&log)?;

    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let timeline = Timeline::new(tx);
    let clock = Arc::new(ScaledClock::new(speed));
    let t0 = clock.now();
    let printer = {
        let clock = clock.clone();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                say_out!("{}  {line}", stamp(clock.now() - t0));
            }
        })
    };
    let say = |line: &str| timeline.say(format!("▶ {line}"));

    say_out!(
        "pagerd demo: the real daemon against local stand-ins; 1 s of demo = {} of policy time.",
        { humantime::format_duration(Duration::from_secs(u64::from(speed))) }
    );
    say_out!(
        "Policy: ack within 5m, else level 2; crisis doc after 1h; e-mail to level 2 if PagerDuty is down for 2m;\n\
         after the crisis: the timeline into the doc, a hand-off call 1h later, a follow-up issue.\n"
    );

    let vendors = StandIns::start(Options {
        slack: true,
        google: true,
        email: true,
        timeline: timeline.clone(),
    })
    .await
    .map_err(io("cannot start the stand-ins"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io("cannot listen on 127.0.0.1"))?;
    let addr = listener
        .local_addr()
        .map_err(io("cannot read the listening address"))?;
    let extra = Extra {
        policy: "doc_deprecate_after = \"30m\"".into(),
        pagerduty: "poll_interval = \"off\"".into(),
        zendesk: "poll_interval = \"off\"".into(),
        email: "fallback_after = \"2m\"".into(),
        server: String::new(),
        store: String::new(),
        people: "\"ana@acme.example\" = \"Ana Engineer\"\n\"bo@acme.example\" = \"Bo Builder\""
            .into(),
        hackerone: String::new(),
    };
    let store = dir.join("pagerd.db");
    let config_path = vendors
        .write_config(dir, &addr.to_string(), &store, &extra)
        .map_err(io("cannot write the demo's config"))?;
    let config = Config::load(&config_path)?;
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(crate::daemon::run(
        config,
        listener,
        shutdown.clone(),
        crate::daemon::Options {
            clock: clock.clone(),
        },
    ));
    vendors.pagerduty.set_webhook(
        format!("http://{addr}/webhooks/pagerduty"),
        secrets::PD_WEBHOOK.into(),
    );
    // The people: Ana is a PagerDuty user, Bo a Slack user; both known by
    // e-mail, so each counts once whatever channel they act from.
    vendors.pagerduty.add_user(
        &crate::fakes::pagerduty::user_id("Ana Engineer"),
        "Ana Engineer",
        "ana@acme.example",
    );
    let base = format!("http://{addr}");
    let limit = Duration::from_secs(30);
    let pd = &vendors.pagerduty;
    let (Some(slack_fake), Some(google), Some(smtp)) =
        (&vendors.slack, &vendors.google, &vendors.smtp)
    else {
        return Err(DemoError::Step("the demo needs every stand-in".into()));
    };
    slack_fake.add_user("U0BO00001", "Bo Builder", "bo@acme.example");
    let sleep_until = |at_ms: Millis| {
        let wait = clock.real(t0 + at_ms - clock.now());
        tokio::time::sleep(wait)
    };

    say(
        "Customer Corp's production instance is down. Dana opens ticket #4711 with priority Urgent.",
    );
    vendors.zendesk.upsert_ticket(TicketSpec {
        id: TICKET,
        subject: "Production instance down: every request fails with 502".into(),
        priority: "urgent".into(),
        status: "new".into(),
        tags: vec!["premium".into()],
        requester_name: "Dana Customer".into(),
        requester_email: "dana@customer.test".into(),
        organization: "Customer Corp".into(),
    });
    let status = vendors
        .zendesk
        .send_webhook(&format!("{base}/webhooks/zendesk"), TICKET)
        .await
        .map_err(DemoError::Step)?;
    if status != 200 {
        return Err(DemoError::Step(format!(
            "pagerd answered the Zendesk webhook with {status}"
        )));
    }
    until("the page", limit, || async { pd.opened_for(KEY) == 1 }).await?;

    say(
        "The on-call engineer sleeps through the page. And PagerDuty's REST API is having an outage.",
    );
    pd.rest_faults.push(
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    until("the level-2 escalation", limit, || async {
        !pd.escalations().is_empty()
    })
    .await?;
    until("the fallback e-mail", limit, || async {
        !smtp.messages().is_empty()
    })
    .await?;

    sleep_until(15 * 60_000).await;
    say("Ana (level 2) taps Acknowledge in the PagerDuty app.");
    pd.acknowledge(KEY, "Ana Engineer")
        .await
        .map_err(DemoError::Step)?;
    until("the comment to the customer", limit, || async {
        !vendors.zendesk.comments(TICKET).is_empty()
    })
    .await?;

    say("An hour later the instance is still down.");
    until("the crisis doc", limit, || async {
        !google.docs().is_empty()
    })
    .await?;
    until("the Slack announcements", limit, || async {
        ["infrastructure", "development", "general"]
            .iter()
            .all(|c| !slack_fake.top_level_in(c).is_empty())
    })
    .await?;

    say("Bo from the database team clicks Join on the announcement in #infrastructure.");
    let body = slack::block_action_body("pagerd_join", "1", "U0BO00001", "bo");
    let now_secs = crate::clock::SystemClock.now() / 1000;
    slack::send_signed(
        &format!("{base}/webhooks/slack"),
        secrets::SLACK_SIGNING,
        &body,
        now_secs,
    )
    .await
    .map_err(DemoError::Step)?;
    until("Bo in the thread", limit, || async {
        slack_fake
            .replies_in("infrastructure")
            .iter()
            .any(|m| m.text.contains("Bo Builder"))
    })
    .await?;

    sleep_until(80 * 60_000).await;
    say("Ana fixes the instance and runs `pagerd incidents resolve 1 --as ana@acme.example`.");
    let client = crate::client::Client::new(addr, Some(crate::secret::Secret::new(secrets::ADMIN)));
    client.act(1, "resolve", "ana@acme.example", None).await?;
    until("the checklist", limit, || async {
        slack_fake
            .replies_in("general")
            .iter()
            .any(|m| m.text.contains("hand-off call"))
    })
    .await?;
    until("the hand-off call", limit, || async {
        google.events().iter().any(|e| e.hangout_link.is_some())
    })
    .await?;
    until("the follow-up issue", limit, || async {
        !vendors.gitlab.issues().is_empty()
    })
    .await?;
    until("the doc's deprecation", limit, || async {
        google
            .docs()
            .iter()
            .any(|d| d.name.starts_with(crate::deliver::DEPRECATED_PREFIX))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let show = client.show(1).await?;
    shutdown.cancel();
    daemon
        .await
        .map_err(|e| DemoError::Step(format!("the daemon task failed: {e}")))??;
    drop(timeline);
    drop(vendors);
    let _ = printer.await;

    say_out!("\nThe incident as `pagerd incidents show 1` printed it before the daemon stopped:\n");
    for line in crate::client::format_show(&show).lines() {
        say_out!("  {line}");
    }
    say_out!("\nDone. Next: read README.md to point pagerd at your real Zendesk and PagerDuty.");
    Ok(())
}
