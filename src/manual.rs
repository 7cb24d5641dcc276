//! The manual pages and shell completion scripts, generated from the
//! command line's own definitions (`clap`), so they can never disagree with
//! `--help`. `pagerd man` and `pagerd completions SHELL` print them;
//! `packaging/build-deb.sh` installs them.

use std::io;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Where the packaged daemon keeps its files, appended to `pagerd(1)`.
const FILES_AND_SEE_ALSO: &str = r#".SH FILES
.TP
\fI/etc/pagerd/pagerd.toml\fR
The config file (\fB\-\-config\fR, \fBPAGERD_CONFIG\fR). Validate it with \fBpagerd check\-config\fR.
.TP
\fI/etc/pagerd/secrets/\fR
One file per secret, named by the config's \fB*_file\fR keys and readable by the pagerd user (e.g. mode 0640, owner root, group pagerd).
.TP
\fI/var/lib/pagerd/\fR
The SQLite store (the unit's StateDirectory=).
.TP
\fI/lib/systemd/system/pagerd.service\fR
The systemd unit: \fBsystemctl enable \-\-now pagerd\fR once the config and secrets are in place.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fI/usr/share/doc/pagerd/README.md.gz\fR
"#;

/// One rendered manual page.
pub struct Page {
    /// File name, e.g. `pagerd.1` or `pagerd-incidents-ack.1`.
    pub file_name: String,
    /// The page in roff.
    pub roff: Vec<u8>,
}

/// Errors writing manual pages.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    #[error("cannot render the manual page {page}: {source}")]
    Render { page: String, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// The top page, `NAME(1)` for the command itself: its options, its
/// subcommands (each with a page of its own, see [`pages`]), the files the
/// package installs.
pub fn page(cmd: clap::Command) -> Result<Page, ManualError> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    top_page(cmd)
}

/// Every page: the command's own, then one per visible subcommand at any
/// depth (`pagerd-incidents(1)`, `pagerd-incidents-ack(1)`, …), which the
/// top page refers to.
pub fn pages(cmd: clap::Command) -> Result<Vec<Page>, ManualError> {
    fn sub_pages(cmd: &clap::Command, out: &mut Vec<Page>) -> Result<(), ManualError> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let man = clap_mangen::Man::new(sub.clone());
            let file_name = man.get_filename();
            let mut roff = Vec::new();
            man.render(&mut roff)
                .map_err(|source| ManualError::Render {
                    page: file_name.clone(),
                    source,
                })?;
            out.push(Page { file_name, roff });
            sub_pages(sub, out)?;
        }
        Ok(())
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut out = vec![top_page(cmd.clone())?];
    sub_pages(&cmd, &mut out)?;
    Ok(out)
}

/// Writes [`pages`] into `dir` (which must exist); returns their paths.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, ManualError> {
    pages(cmd)?
        .into_iter()
        .map(|p| {
            let path = dir.join(&p.file_name);
            std::fs::write(&path, &p.roff)
                .map(|()| path.clone())
                .map_err(|source| ManualError::Write { path, source })
        })
        .collect()
}

/// The shell completion script for `shell`.
pub fn completions(shell: Shell, cmd: clap::Command) -> Vec<u8> {
    let mut cmd = cmd;
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

fn top_page(cmd: clap::Command) -> Result<Page, ManualError> {
    let man = clap_mangen::Man::new(cmd.clone());
    let file_name = man.get_filename();
    let mut roff = Vec::new();
    let render = |roff: &mut Vec<u8>| -> io::Result<()> {
        man.render_title(roff)?;
        man.render_name_section(roff)?;
        man.render_synopsis_section(roff)?;
        man.render_description_section(roff)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(roff)?;
        }
        if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
            man.render_subcommands_section(roff)?;
        }
        if cmd.get_after_long_help().is_some() || cmd.get_after_help().is_some() {
            man.render_extra_section(roff)?;
        }
        roff.extend_from_slice(FILES_AND_SEE_ALSO.as_bytes());
        if cmd.get_version().is_some() {
            man.render_version_section(roff)?;
        }
        Ok(())
    };
    render(&mut roff).map_err(|source| ManualError::Render {
        page: file_name.clone(),
        source,
    })?;
    Ok(Page { file_name, roff })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_cmd() -> clap::Command {
        clap::Command::new("tool")
            .version("1.2.3")
            .about("A tool.")
            .arg(clap::Arg::new("config").long("config").help("Config file."))
            .subcommand(
                clap::Command::new("group")
                    .about("A group.")
                    .subcommand(clap::Command::new("leaf").about("A leaf.")),
            )
            .subcommand(clap::Command::new("hush").about("Hidden.").hide(true))
    }

    #[test]
    fn top_page_has_options_subcommands_files_and_version() {
        let p = page(demo_cmd()).unwrap();
        assert_eq!(p.file_name, "tool.1");
        let text = String::from_utf8(p.roff).unwrap();
        assert!(text.contains("\n.TH tool 1 "), "{text}");
        for want in [
            ".SH OPTIONS",
            "config",
            "tool\\-group(1)",
            ".SH FILES",
            "/etc/pagerd/pagerd.toml",
            ".SH VERSION",
            "1.2.3",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("hush"), "hidden subcommand shown:\n{text}");
        assert!(
            !text.contains("tool\\-help"),
            "help subcommand shown:\n{text}"
        );
    }

    #[test]
    fn one_page_per_visible_subcommand_at_any_depth() {
        let names: Vec<_> = pages(demo_cmd())
            .unwrap()
            .into_iter()
            .map(|p| p.file_name)
            .collect();
        assert_eq!(names, ["tool.1", "tool-group.1", "tool-group-leaf.1"]);
    }

    #[test]
    fn pages_are_written_to_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_pages(demo_cmd(), dir.path()).unwrap();
        assert_eq!(paths.len(), 3);
        let leaf = std::fs::read_to_string(dir.path().join("tool-group-leaf.1")).unwrap();
        assert!(leaf.contains("A leaf."), "{leaf}");
        let missing = write_pages(demo_cmd(), &dir.path().join("absent")).unwrap_err();
        assert!(missing.to_string().contains("absent"), "{missing}");
    }

    #[test]
    fn completions_cover_the_subcommands_in_every_shell() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let script = String::from_utf8(completions(shell, demo_cmd())).unwrap();
            assert!(script.contains("group"), "{shell}: {script}");
            assert!(script.contains("leaf"), "{shell}: {script}");
        }
    }
}
