//! End-to-end tests: the real daemon on an ephemeral port of 127.0.0.1,
//! against the stand-in vendors (real HTTP, real SMTP), with a temporary
//! store. One binary, one module per area.

/// Shared harness: stand-ins, config, start/stop the daemon, waits.
mod util;

/// The core: page, ack timer, escalation, durability (issue 3).
mod core;

/// Crisis handling: doc, Slack, e-mail fallback, resolution (issue 4).
mod crisis;

/// kill -9 chaos under a storm (issue 5).
mod chaos;

/// Several instances on PostgreSQL (issue 6).
mod ha;

/// The `pagerd` command line against a running daemon.
mod cli;

/// `pagerd backup` beside a running daemon, and restoring its copy.
mod backup;

/// `pagerd doctor` against the stand-ins: passes, writes nothing, names
/// what is wrong.
mod doctor;

/// Hostile input (issue 5).
mod hostile;

/// Customer text rendered as data in every sink.
mod escape;

/// Secret hygiene (issue 5).
mod secrets;

/// Vendor faults (issue 5).
mod faults;

/// `pagerd-bench --smoke` (issue 7).
mod bench;

/// The HTTP edge under abuse: slow clients, a locked store, SIGHUP.
mod edge;

/// SIGHUP reloads the config and every secret.
mod reload;

// Every emergency reaches a human (episodes, refused pages, the ack clock,
// responders, unrecorded outcomes, broken log output).
mod emergency;

// A store written by 0.1.0 keeps working.
mod upgrade;

// HackerOne reports: a first-response clock, reminders, no page.
mod reports;

// HackerOne's own webhook: closures and disclosure requests.
mod hackerone;

// The Debian package (packaging/build-deb.sh), when PAGERD_TEST_DEB names it.
mod package;

// The rest of the handbook: stale acknowledgements, the after-crisis hand-off.
mod handbook;
