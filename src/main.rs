//! The `pagerd` command: parse arguments, load the config, set up logging,
//! and call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use pagerd::client::{Client, IncidentRef, TicketRef, format_list, format_show};
use pagerd::config::{self, Config};
use pagerd::logging;
use pagerd::render;

/// pagerd: makes sure a human answers every emergency ticket.
///
/// Watches Zendesk for emergency tickets, pages PagerDuty at once, escalates
/// to level 2 when nobody acknowledges in time, tells the customer an
/// engineer has the case, and runs the crisis routine (shared doc, Slack)
/// when an emergency drags on.
#[derive(Parser)]
#[command(version, about, long_about)]
#[cfg_attr(
    feature = "demo",
    command(after_help = "Start with `pagerd demo` to watch the whole story on local stand-ins.")
)]
#[cfg_attr(
    not(feature = "demo"),
    command(
        after_help = "Start with `pagerd check-config`, then `pagerd run` (see `man pagerd`)."
    )
)]
struct Cli {
    /// Config file (TOML); give it before the command: `pagerd --config FILE run`.
    #[arg(long, short, env = "PAGERD_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,

    /// Log format of `run`: `text` (colour only on a terminal) or `json`.
    /// Default: `json` under journald (`$JOURNAL_STREAM` set), else `text`.
    #[arg(long, value_enum, env = "PAGERD_LOG_FORMAT")]
    log_format: Option<LogFormat>,

    /// Log level of `run` (`error`, `warn`, `info`, `debug`, `trace`);
    /// `RUST_LOG` overrides it with a full filter.
    #[arg(long, default_value = "info", env = "PAGERD_LOG_LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: String,

    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: Command,
}

/// Where the daemon is, for `status`, `incidents` and `reports`: with
/// both, the config file is not read at all, so engineers need only the
/// token file.
#[derive(clap::Args, Clone, Default)]
struct Remote {
    /// The daemon's URL for `status`, `incidents` and `reports` (its
    /// server.listen, e.g. http://127.0.0.1:8780). With --token-file, the
    /// config file is not read.
    #[arg(long, env = "PAGERD_URL", value_name = "URL")]
    url: Option<String>,
    /// A file holding the daemon's admin token (server.admin_token_file's
    /// contents), for `status`, `incidents` and `reports`; never the token
    /// itself on the command line.
    #[arg(long, env = "PAGERD_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// [`Remote`], also accepted after `incidents`, `reports` and their
/// subcommands.
#[derive(clap::Args, Clone, Default)]
struct RemoteAfter {
    /// The daemon's URL (its server.listen, e.g. http://127.0.0.1:8780).
    /// With --token-file, the config file is not read.
    #[arg(long = "url", env = "PAGERD_URL", value_name = "URL", global = true)]
    url: Option<String>,
    /// A file holding the daemon's admin token (server.admin_token_file's
    /// contents); never the token itself on the command line.
    #[arg(
        long = "token-file",
        env = "PAGERD_TOKEN_FILE",
        value_name = "FILE",
        global = true
    )]
    token_file: Option<PathBuf>,
}

/// `pagerd incidents …`: where the daemon is, and what to do.
#[derive(clap::Args)]
struct IncidentsCmd {
    #[command(flatten)]
    remote: RemoteAfter,
    #[command(subcommand)]
    cmd: Incidents,
}

/// `pagerd reports …`: where the daemon is, and what to show.
#[derive(clap::Args)]
struct ReportsCmd {
    #[command(flatten)]
    remote: RemoteAfter,
    #[command(subcommand)]
    cmd: Reports,
}

#[derive(Subcommand)]
enum Reports {
    /// List every watched report: ticket, state, deadline (local time) and
    /// the time left.
    List {
        /// Print the API's JSON: {"reports": [{"ticket", "respond_by"
        /// (RFC 3339, UTC), "state", …}]}.
        #[arg(long)]
        json: bool,
    },
    /// Show one report: its deadlines, reminder, reply and page.
    Show {
        /// The Zendesk ticket: 4711, '#4711' or ticket:4711.
        ticket: TicketRef,
        /// Print the API's JSON: {"report": {…}}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (what systemd starts).
    Run,
    /// Validate the config file and every secret it names; exit 2 on a problem.
    CheckConfig,
    /// Check every configured integration with the real config, without
    /// side effects: PagerDuty token, From user and routing key format,
    /// Zendesk token, Slack token, scopes and channels (hackerone.channel
    /// too), the HackerOne calendar, Google key, template, folder and the
    /// hand-off calendar, the GitLab token and project, the SMTP relay,
    /// webhook secrets and the store.
    ///
    /// Prints one line per check and the fix for each failure. Nothing is
    /// sent or written: no page, comment, message, doc, permission or mail.
    /// Exit 0 when every check passes, 1 when one fails, 2 when the config
    /// does not load.
    Doctor {
        /// Print `{"ok": bool, "checks": [{"name", "ok", "detail", "fix"}]}`.
        #[arg(long)]
        json: bool,
    },
    /// Copy the SQLite store (store.path of the config) to FILE, safely
    /// while the daemon runs.
    ///
    /// SQLite's online backup, a few megabytes per step over a read-only
    /// connection (the daemon keeps writing); the copy is written beside
    /// FILE, checked (integrity_check, schema version, incidents counted)
    /// and only then renamed to FILE, mode 0600. Prints what it wrote.
    /// Run it as root or the pagerd user. Restore: stop pagerd, copy FILE
    /// to store.path, delete the stale store.path-wal and -shm files, start
    /// pagerd. A PostgreSQL store is backed up with pg_dump (this prints the
    /// command). Exit 0 when FILE was written, 1 when not, 2 when the config
    /// does not load.
    Backup {
        /// The backup file to write (a new file; see --force).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace FILE if it exists (only once the new copy has passed its
        /// check).
        #[arg(long)]
        force: bool,
    },
    /// Run the real daemon against built-in local stand-ins of PagerDuty,
    /// Zendesk, Slack, Google and SMTP, on a compressed clock, and print the
    /// whole story of an emergency.
    ///
    /// Everything lives in a private temporary directory that is removed at
    /// the end (kept with --keep, or when the demo fails).
    Demo {
        /// How many times faster than real time the demo's clock runs
        /// (300: five minutes pass in one second; 1 is real time).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1200))]
        speed: u32,
        /// Keep the temporary directory (config, secrets, store, log) and
        /// say where it is.
        #[arg(long)]
        keep: bool,
    },
    /// Show the running daemon's role (leader or follower), lease holder,
    /// outbox lag and counts.
    Status {
        /// Print the JSON of /api/v1/status.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Inspect and act on incidents of the running daemon (admin API).
    ///
    /// ID is an incident id (7) or a Zendesk ticket, meaning its latest
    /// episode: '#4711' (quote it in shells) or ticket:4711.
    Incidents(IncidentsCmd),
    /// Show the HackerOne reports the running daemon watches (admin API):
    /// each one's first-response deadline, the time left and its state
    /// (waiting, reminded, overdue, answered).
    Reports(ReportsCmd),
    /// Print the shell completion script for SHELL to stdout, e.g.
    /// `pagerd completions bash > ~/.local/share/bash-completion/completions/pagerd`
    /// (the Debian package installs those of bash, zsh and fish).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: pagerd::manual::Shell,
    },
    /// Print the pagerd(1) man page (roff) to stdout, or write it and one page
    /// per subcommand into DIR (what packaging/build-deb.sh does).
    #[command(hide = true)]
    Man {
        /// Write every page (pagerd.1, pagerd-incidents.1, …) into this
        /// existing directory instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Incidents {
    /// List open incidents (all with --all).
    List {
        /// Include resolved incidents.
        #[arg(long)]
        all: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one incident: state, deadlines, journal, deliveries and problems.
    Show {
        /// Incident id, or ticket: '#4711' or ticket:4711.
        id: IncidentRef,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain one incident: what fires next, when and why; what happened,
    /// who did what from which channel; every delivery attempt (local times).
    Explain {
        /// Incident id, or ticket: '#4711' or ticket:4711.
        id: IncidentRef,
        /// Print {"next": [{"what", "at", "why"}], "timeline": [{"at",
        /// "what", "who", "via"}], "deliveries": […]} (times in RFC 3339).
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge: you have the case (also acknowledges in PagerDuty).
    Ack(Act),
    /// Escalate to level 2 now (a crisis: the customer's instance is critical).
    Escalate {
        #[command(flatten)]
        act: Act,
        /// Why, for the PagerDuty note and the crisis thread.
        #[arg(long, short)]
        reason: String,
    },
    /// Declare a crisis now: crisis doc, Slack announcements.
    Crisis(Act),
    /// Join the response (counts towards `policy.crisis_responders`).
    Join(Act),
    /// Resolve: stops all timers and starts the after-crisis follow-up.
    Resolve(Act),
    /// Note progress: renews the acknowledgement's lease (`policy.ack_lease`),
    /// and goes to PagerDuty as a note and to the crisis threads.
    Note {
        #[command(flatten)]
        act: Act,
        /// What you found or did, in a sentence.
        #[arg(long, short)]
        message: String,
    },
    /// Send again a page (and the escalation waiting on it) that PagerDuty
    /// refused for good (`NOT PAGED` in `incidents list`), once you have
    /// fixed the cause (e.g. the routing key).
    Repage(Act),
}

#[derive(clap::Args)]
struct Act {
    /// Incident id, or ticket: '#4711' or ticket:4711.
    id: IncidentRef,
    /// Who you are, by e-mail: your name (from `[people]` or PagerDuty) is
    /// what the customer reads, and the same e-mail acting from PagerDuty
    /// or Slack counts as the same person. Default: `[cli] operator` in the
    /// config; there is no other default.
    #[arg(long = "as", value_name = "EMAIL")]
    by: Option<String>,
}

/// Writes to stdout, ignoring a closed pipe (`pagerd incidents list | head`)
/// rather than panicking like `println!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// A line on stderr, ignoring a closed or full stderr (`2>/dev/full`)
/// rather than panicking like `eprintln!`.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `out!` with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("pagerd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            errln!("pagerd: {}", render::terminal_lines(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run => {
            let format = match cli.log_format {
                Some(LogFormat::Json) => logging::Format::Json,
                Some(LogFormat::Text) => logging::Format::Text,
                None if std::env::var_os("JOURNAL_STREAM").is_some() => logging::Format::Json,
                None => logging::Format::Text,
            };
            let _log = logging::init(format, &format!("pagerd={},tower_http=warn", cli.log_level));
            let config = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    errln!("pagerd: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .with_context(|| {
                    format!("cannot listen on {} (server.listen)", config.server.listen)
                })?;
            let shutdown = CancellationToken::new();
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                pagerd::daemon::shutdown_signal().await;
                trigger.cancel();
            });
            pagerd::daemon::run(config, listener, shutdown, Default::default()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => match Config::load(&cli.config) {
            Ok(c) => {
                // As strict as `run`: the SQLite store must be usable where
                // the daemon will open it (read-only check: the daemon's lock
                // is not taken, so this also runs beside a running daemon).
                if c.store.postgres.is_none()
                    && let Err(e) = pagerd::store::sqlite::probe::probe(&c.store.path)
                {
                    errln!(
                        "pagerd: config file {}: store.path: {}",
                        cli.config.display(),
                        render::terminal(&e.to_string())
                    );
                    return Ok(ExitCode::from(2));
                }
                outln!("{}: OK", cli.config.display());
                let store = match &c.store.postgres {
                    Some(pg) => match &pg.ca_file {
                        Some(ca) => format!(
                            "PostgreSQL (store.url, tls {}, CA {})",
                            pg.tls,
                            ca.display()
                        ),
                        None => format!("PostgreSQL (store.url, tls {})", pg.tls),
                    },
                    None => c.store.path.display().to_string(),
                };
                outln!("  listen {}  store {store}", c.server.listen);
                let on = |b: bool| if b { "on" } else { "off" };
                outln!(
                    "  slack {}  google {}  e-mail fallback {}  admin API {}  PagerDuty webhooks {}  HackerOne reports {}",
                    on(c.slack.is_some()),
                    on(c.google.is_some()),
                    on(c.email.is_some()),
                    on(c.server.admin_token.is_some()),
                    on(c.pagerduty.webhook_secret.is_some()),
                    on(c.hackerone.is_some())
                );
                outln!(
                    "  hand-off calendar {}  GitLab follow-up issues {}",
                    on(c.google.as_ref().is_some_and(|g| g.calendar_id.is_some())),
                    on(c.gitlab.is_some())
                );
                if c.email.is_none() {
                    outln!(
                        "warning: no [email] section: if PagerDuty refuses or cannot take a page, \
                         no human is reached by any other path; configure the e-mail fallback"
                    );
                }
                let google = c
                    .google
                    .as_ref()
                    .map(pagerd::vendors::google::config::warnings)
                    .unwrap_or_default();
                for w in url_warnings(&c).into_iter().chain(google) {
                    outln!("warning: {}", render::terminal(&w));
                }
                for w in &c.warnings {
                    outln!("warning: {}: {}", w.key, render::terminal(&w.message));
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                errln!("pagerd: {e}");
                Ok(ExitCode::from(2))
            }
        },
        Command::Doctor { json } => {
            let config = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    errln!("pagerd: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let report = pagerd::doctor::run(&config).await;
            if json {
                outln!("{}", render::terminal_json(&report.json()));
            } else {
                outln!(
                    "pagerd doctor: {}",
                    render::terminal(&cli.config.display().to_string())
                );
                out!("{}", report.text());
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Backup { file, force } => {
            let store = match config::load_store(&cli.config) {
                Ok(s) => s,
                Err(e) => {
                    errln!("pagerd: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            if let Some(pg) = &store.postgres {
                let commands =
                    pagerd::store::postgres::dump::commands(pg, &file.display().to_string());
                errln!(
                    "pagerd: the store is PostgreSQL (store.url in {}); pagerd backup copies a \
                     SQLite store only. Back up the database with pg_dump:\n{}",
                    cli.config.display(),
                    render::terminal_lines(&commands)
                );
                return Ok(ExitCode::FAILURE);
            }
            let (path, dest) = (store.path.clone(), file.clone());
            let report = tokio::task::spawn_blocking(move || {
                pagerd::store::sqlite::backup::backup(&path, &dest, force)
            })
            .await
            .context("the backup thread failed")?
            .context("backup not written")?;
            outln!(
                "wrote {}: {} bytes ({:.1} MiB), {} incidents, schema version {}, integrity_check ok",
                render::terminal(&report.path.display().to_string()),
                report.bytes,
                report.bytes as f64 / (1024.0 * 1024.0),
                report.incidents,
                report.schema_version
            );
            outln!(
                "  (copied from {}; restore: stop pagerd, copy it there, delete any -wal and -shm beside it, start pagerd)",
                render::terminal(&store.path.display().to_string())
            );
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Demo { speed, keep } => {
            pagerd::demo::run(pagerd::demo::DemoOptions { speed, keep }).await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => {
            errln!(
                "pagerd: this pagerd was built without the demo and its stand-ins (a production \
                 build); run it from a default build: cargo run --release -- demo"
            );
            Ok(ExitCode::from(2))
        }
        Command::Status { json, remote } => {
            let remote = remote.or(&cli.remote);
            let body = connect(&cli.config, &remote)?.status().await?;
            if json {
                outln!("{}", render::terminal_json(&body));
            } else {
                out!("{}", pagerd::client::format_status(&body));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Incidents(IncidentsCmd {
            remote: after,
            mut cmd,
        }) => {
            let remote = Remote {
                url: after.url,
                token_file: after.token_file,
            }
            .or(&cli.remote);
            if let Some(a) = cmd.act_mut()
                && a.by.is_none()
            {
                if !remote.standalone() {
                    a.by = config::load_cli_operator(&cli.config).ok().flatten();
                }
                if a.by.is_none() {
                    errln!(
                        "pagerd: say who you are: --as EMAIL (or set [cli] operator = \"EMAIL\" in {}, \
                         which is not read with --url and --token-file); your name is what the customer reads",
                        cli.config.display()
                    );
                    return Ok(ExitCode::from(2));
                }
            }
            let client = connect(&cli.config, &remote)?;
            let out = match cmd {
                Incidents::List { all, json } => {
                    let body = client.list(all).await?;
                    if json {
                        format!("{}\n", render::terminal_json(&body))
                    } else {
                        format_list(&body)
                    }
                }
                Incidents::Show { id, json } => {
                    let body = client.show_ref(&id).await?;
                    if json {
                        format!("{}\n", render::terminal_json(&body))
                    } else {
                        format_show(&body)
                    }
                }
                Incidents::Explain { id, json } => {
                    let body = client.show_ref(&id).await?;
                    let local = pagerd::explain::Local::system();
                    if json {
                        let v = pagerd::client::explain_json(&body, &local)?;
                        format!("{}\n", render::terminal_json(&v))
                    } else {
                        pagerd::client::format_explain(&body, &local)?
                    }
                }
                Incidents::Ack(a) => act(&client, a, "ack", None).await?,
                Incidents::Escalate { act: a, reason } => {
                    act(&client, a, "escalate", Some(&reason)).await?
                }
                Incidents::Crisis(a) => act(&client, a, "crisis", None).await?,
                Incidents::Join(a) => act(&client, a, "join", None).await?,
                Incidents::Resolve(a) => act(&client, a, "resolve", None).await?,
                Incidents::Repage(a) => act(&client, a, "repage", None).await?,
                Incidents::Note { act: a, message } => {
                    act(&client, a, "note", Some(&message)).await?
                }
            };
            out!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Reports(ReportsCmd { remote: after, cmd }) => {
            let remote = Remote {
                url: after.url,
                token_file: after.token_file,
            }
            .or(&cli.remote);
            let client = connect(&cli.config, &remote)?;
            let local = pagerd::explain::Local::system();
            let out = match cmd {
                Reports::List { json: true } => {
                    format!("{}\n", render::terminal_json(&client.reports().await?))
                }
                Reports::List { json: false } => {
                    pagerd::reports::text::format_list(&client.reports().await?, &local)
                }
                Reports::Show { ticket, json: true } => {
                    format!(
                        "{}\n",
                        render::terminal_json(&client.report(&ticket).await?)
                    )
                }
                Reports::Show {
                    ticket,
                    json: false,
                } => pagerd::reports::text::format_show(&client.report(&ticket).await?, &local),
            };
            out!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            write_stdout(&pagerd::manual::completions(shell, Cli::command()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: None } => {
            write_stdout(&pagerd::manual::page(Cli::command())?.roff)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: Some(dir) } => {
            for path in pagerd::manual::write_pages(Cli::command(), &dir)? {
                outln!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes generated output to stdout: a closed pipe (`pagerd man | head`) is
/// fine, any other failure (a full disk behind `>`) is an error, so a
/// packaging script never installs a truncated file.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

impl Remote {
    /// These options, else those given before the command.
    fn or(self, before: &Remote) -> Remote {
        Remote {
            url: self.url.or_else(|| before.url.clone()),
            token_file: self.token_file.or_else(|| before.token_file.clone()),
        }
    }

    /// Both given: the config file is not read at all.
    fn standalone(&self) -> bool {
        self.url.is_some() && self.token_file.is_some()
    }
}

/// A client of the daemon: from --url and --token-file when given, the rest
/// from `[server]` of the config (not read at all when both are given).
fn connect(config_path: &std::path::Path, remote: &Remote) -> anyhow::Result<Client> {
    use pagerd::client::read_token_file;
    let token_file = |f: &PathBuf| -> anyhow::Result<(Option<pagerd::secret::Secret>, String)> {
        Ok((
            Some(read_token_file(f)?),
            format!("--token-file {}", f.display()),
        ))
    };
    if let (Some(url), Some(file)) = (&remote.url, &remote.token_file) {
        let (token, source) = token_file(file)?;
        return Ok(Client::at_url(url, token)?.token_from(source));
    }
    let (addr, config_token) = config::load_cli(config_path).context(
        "the CLI needs the daemon's URL and admin token: give --url URL and --token-file FILE \
         (or PAGERD_URL and PAGERD_TOKEN_FILE), or a config file it can read",
    )?;
    let (token, source) = match &remote.token_file {
        Some(f) => token_file(f)?,
        None => (
            config_token,
            format!("server.admin_token_file of {}", config_path.display()),
        ),
    };
    let client = match &remote.url {
        Some(url) => Client::at_url(url, token)?,
        None => Client::new(addr, token),
    };
    Ok(client.token_from(source))
}

/// What `check-config` warns about in the vendors' URLs (valid, but
/// probably not meant): plain `http://` to a host that is not this machine
/// (tokens would cross the network in clear), and a Zendesk URL with a path
/// (pagerd appends `/api/v2/…` to it).
fn url_warnings(c: &Config) -> Vec<String> {
    let mut urls: Vec<(&str, &str)> = vec![
        ("zendesk.url", &c.zendesk.url),
        ("pagerduty.events_url", &c.pagerduty.events_url),
        ("pagerduty.api_url", &c.pagerduty.api_url),
    ];
    if let Some(s) = &c.slack {
        urls.push(("slack.api_url", &s.api_url));
    }
    if let Some(g) = &c.google {
        urls.push(("google.token_url", &g.token_url));
        urls.push(("google.drive_url", &g.drive_url));
        urls.push(("google.docs_url", &g.docs_url));
        if g.calendar_id.is_some() {
            urls.push(("google.calendar_url", &g.calendar_url));
        }
    }
    if let Some(g) = &c.gitlab {
        urls.push(("gitlab.url", &g.url));
    }
    let mut out = Vec::new();
    for (key, url) in urls {
        let Ok(u) = reqwest::Url::parse(url) else {
            continue;
        };
        let local = match u.host_str() {
            Some("localhost") => true,
            Some(h) => h
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback()),
            None => false,
        };
        if u.scheme() == "http" && !local {
            out.push(format!(
                "{key} = {url:?} is plain http: its token crosses the network in clear; use https"
            ));
        }
        if key == "zendesk.url" && !matches!(u.path(), "" | "/") {
            out.push(format!(
                "{key} = {url:?} has a path ({}); give only the account's address, like https://acme.zendesk.com",
                u.path()
            ));
        }
    }
    out
}

impl Incidents {
    /// The acting person's part of the action commands.
    fn act_mut(&mut self) -> Option<&mut Act> {
        match self {
            Incidents::List { .. } | Incidents::Show { .. } | Incidents::Explain { .. } => None,
            Incidents::Ack(a)
            | Incidents::Escalate { act: a, .. }
            | Incidents::Crisis(a)
            | Incidents::Join(a)
            | Incidents::Resolve(a)
            | Incidents::Repage(a)
            | Incidents::Note { act: a, .. } => Some(a),
        }
    }
}

async fn act(
    client: &Client,
    a: Act,
    action: &str,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let by = a.by.as_deref().unwrap_or_default();
    if !config::looks_like_email(by) {
        anyhow::bail!(
            "--as takes your e-mail (e.g. ana@acme.example), not {:?}",
            render::terminal(by)
        );
    }
    let id = client.resolve(&a.id).await?;
    let body = client.act(id, action, by, reason).await?;
    let mut out = match body["result"].as_str() {
        Some("ignored") => format!(
            "incident {id}: nothing to do ({})\n",
            render::terminal(body["reason"].as_str().unwrap_or(""))
        ),
        _ => format!("incident {id}: {action} done\n"),
    };
    if let Some(why) = body["crisis_declared"].as_str() {
        out.push_str(&format!(
            "incident {id}: this declared a CRISIS ({}); the crisis doc and Slack announcements follow\n",
            render::terminal(why)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bash_completions_name_the_subcommands() {
        let script = String::from_utf8(pagerd::manual::completions(
            pagerd::manual::Shell::Bash,
            Cli::command(),
        ))
        .unwrap();
        for word in [
            "incidents",
            "check-config",
            "backup",
            "--force",
            "status",
            "repage",
            "--config",
            "--as",
        ] {
            assert!(script.contains(word), "no {word:?} in the bash completions");
        }
    }

    #[test]
    fn man_page_names_the_subcommands_and_the_files() {
        let page = pagerd::manual::page(Cli::command()).unwrap();
        assert_eq!(page.file_name, "pagerd.1");
        let roff = String::from_utf8(page.roff).unwrap();
        assert!(roff.contains("\n.TH pagerd 1 "), "{roff}");
        // roff escapes `-` as `\-`.
        for word in [
            "pagerd\\-incidents(1)",
            "pagerd\\-check\\-config(1)",
            "pagerd\\-completions(1)",
            "\\-\\-config",
            "PAGERD_CONFIG",
            "/etc/pagerd/pagerd.toml",
            "/etc/pagerd/secrets/",
        ] {
            assert!(roff.contains(word), "no {word:?} in pagerd(1):\n{roff}");
        }
        // The hidden `man` command stays out of the page, like out of --help.
        assert!(!roff.contains("pagerd\\-man("), "{roff}");
    }

    #[test]
    fn every_subcommand_has_its_own_page() {
        let names: Vec<_> = pagerd::manual::pages(Cli::command())
            .unwrap()
            .into_iter()
            .map(|p| p.file_name)
            .collect();
        for want in [
            "pagerd.1",
            "pagerd-run.1",
            "pagerd-check-config.1",
            "pagerd-backup.1",
            "pagerd-incidents.1",
            "pagerd-incidents-ack.1",
            "pagerd-incidents-escalate.1",
            "pagerd-completions.1",
        ] {
            assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
        }
        assert!(!names.iter().any(|n| n == "pagerd-man.1"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    }
}
