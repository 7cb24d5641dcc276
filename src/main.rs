//! The `pagerd` command: parse arguments, load the config, set up logging,
//! and call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use pagerd::client::{Client, format_list, format_show};
use pagerd::config::{self, Config};

/// pagerd: makes sure a human answers every emergency ticket.
///
/// Watches Zendesk for emergency tickets, pages PagerDuty at once, escalates
/// to level 2 when nobody acknowledges in time, tells the customer an
/// engineer has the case, and runs the crisis routine (shared doc, Slack)
/// when an emergency drags on.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "Start with `pagerd demo` to watch the whole story on local stand-ins."
)]
struct Cli {
    /// Config file (TOML); give it before the command: `pagerd --config FILE run`.
    #[arg(long, short, env = "PAGERD_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,

    /// Log format of `run`: `text` for a terminal, `json` for journald/ELK.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "PAGERD_LOG_FORMAT")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
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
    },
    /// Inspect and act on incidents of the running daemon (admin API).
    #[command(subcommand)]
    Incidents(Incidents),
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
        /// Incident id.
        id: i64,
        /// Print the API's JSON.
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
}

#[derive(clap::Args)]
struct Act {
    /// Incident id.
    id: i64,
    /// Who you are (default: $USER).
    #[arg(long = "as", env = "USER", default_value = "operator")]
    by: String,
}

/// Writes to stdout, ignoring a closed pipe (`pagerd incidents list | head`)
/// rather than panicking like `println!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `out!` with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("pagerd=info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pagerd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pagerd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run => {
            init_tracing(cli.log_format);
            let config = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("pagerd: {e}");
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
                outln!("{}: OK", cli.config.display());
                let store = match &c.store.postgres {
                    Some(_) => "PostgreSQL (store.url)".to_string(),
                    None => c.store.path.display().to_string(),
                };
                outln!("  listen {}  store {store}", c.server.listen);
                let on = |b: bool| if b { "on" } else { "off" };
                outln!(
                    "  slack {}  google {}  e-mail fallback {}  admin API {}  PagerDuty webhooks {}",
                    on(c.slack.is_some()),
                    on(c.google.is_some()),
                    on(c.email.is_some()),
                    on(c.server.admin_token.is_some()),
                    on(c.pagerduty.webhook_secret.is_some())
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("pagerd: {e}");
                Ok(ExitCode::from(2))
            }
        },
        Command::Demo { speed, keep } => {
            pagerd::demo::run(pagerd::demo::DemoOptions { speed, keep }).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let (addr, token) = config::load_cli(&cli.config)?;
            let body = Client::new(addr, token).status().await?;
            if json {
                outln!("{body:#}");
            } else {
                out!("{}", pagerd::client::format_status(&body));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Incidents(cmd) => {
            let (addr, token) = config::load_cli(&cli.config)?;
            let client = Client::new(addr, token);
            let out = match cmd {
                Incidents::List { all, json } => {
                    let body = client.list(all).await?;
                    if json {
                        format!("{body:#}\n")
                    } else {
                        format_list(&body)
                    }
                }
                Incidents::Show { id, json } => {
                    let body = client.show(id).await?;
                    if json {
                        format!("{body:#}\n")
                    } else {
                        format_show(&body)
                    }
                }
                Incidents::Ack(a) => act(&client, a, "ack", None).await?,
                Incidents::Escalate { act: a, reason } => {
                    act(&client, a, "escalate", Some(&reason)).await?
                }
                Incidents::Crisis(a) => act(&client, a, "crisis", None).await?,
                Incidents::Join(a) => act(&client, a, "join", None).await?,
                Incidents::Resolve(a) => act(&client, a, "resolve", None).await?,
            };
            out!("{out}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn act(
    client: &Client,
    a: Act,
    action: &str,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let body = client.act(a.id, action, &a.by, reason).await?;
    Ok(match body["result"].as_str() {
        Some("ignored") => format!(
            "incident {}: nothing to do ({})\n",
            a.id,
            body["reason"].as_str().unwrap_or("")
        ),
        _ => format!("incident {}: {action} done\n", a.id),
    })
}
