//! The Debian package built by `packaging/build-deb.sh`: its files, owners
//! and modes, conffiles, control fields and maintainer scripts, and the
//! packaged unit, man page, completions and binary. Runs when
//! `PAGERD_TEST_DEB` names the `.deb` (`.ci/run` sets it); otherwise says it
//! is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deb() -> Option<PathBuf> {
    match std::env::var_os("PAGERD_TEST_DEB") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            // Once, and past the test harness's capture (a direct write to
            // stderr, not `eprintln!`), so the skip shows in a plain run.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "package tests skipped: PAGERD_TEST_DEB is not set (it names the .deb of packaging/build-deb.sh)"
                );
            });
            None
        }
    }
}

/// `dpkg-deb OPTION DEB [MORE…]`, which must succeed: its stdout.
fn dpkg_deb(option: &str, deb: &Path, more: &[&Path]) -> String {
    let out = Command::new("dpkg-deb")
        .arg(option)
        .arg(deb)
        .args(more)
        .output()
        .expect("run dpkg-deb");
    assert!(
        out.status.success(),
        "dpkg-deb {option} {} {more:?}: {}",
        deb.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 from dpkg-deb")
}

/// `dpkg-deb -c`: path (as `/etc/pagerd/`) → (mode string, owner/group).
fn contents(deb: &Path) -> BTreeMap<String, (String, String)> {
    dpkg_deb("-c", deb, &[])
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(f.len() >= 6, "odd dpkg-deb -c line: {line}");
            let path = f[5].strip_prefix('.').unwrap_or(f[5]).to_string();
            (path, (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

const FILES: &[(&str, &str)] = &[
    ("/usr/bin/pagerd", "-rwxr-xr-x"),
    ("/lib/systemd/system/pagerd.service", "-rw-r--r--"),
    ("/usr/lib/sysusers.d/pagerd.conf", "-rw-r--r--"),
    // Group pagerd is added by postinst (dpkg-statoverride).
    ("/etc/pagerd/pagerd.toml", "-rw-r-----"),
    ("/etc/pagerd/secrets/", "drwxr-x---"),
    ("/etc/pagerd/", "drwxr-xr-x"),
    ("/usr/share/man/man1/pagerd.1.gz", "-rw-r--r--"),
    ("/usr/share/man/man1/pagerd-incidents.1.gz", "-rw-r--r--"),
    (
        "/usr/share/man/man1/pagerd-incidents-ack.1.gz",
        "-rw-r--r--",
    ),
    ("/usr/share/man/man1/pagerd-check-config.1.gz", "-rw-r--r--"),
    (
        "/usr/share/bash-completion/completions/pagerd",
        "-rw-r--r--",
    ),
    ("/usr/share/zsh/vendor-completions/_pagerd", "-rw-r--r--"),
    (
        "/usr/share/fish/vendor_completions.d/pagerd.fish",
        "-rw-r--r--",
    ),
    ("/usr/share/doc/pagerd/README.md.gz", "-rw-r--r--"),
    ("/usr/share/doc/pagerd/copyright", "-rw-r--r--"),
    ("/usr/share/doc/pagerd/changelog.Debian.gz", "-rw-r--r--"),
];

#[test]
fn package_files_owners_and_modes() {
    let Some(deb) = deb() else { return };
    let files = contents(&deb);
    for (path, mode) in FILES {
        let Some((got, owner)) = files.get(*path) else {
            panic!("{path} missing from the package: {:#?}", files.keys());
        };
        assert_eq!(got, mode, "mode of {path}");
        assert_eq!(owner, "root/root", "owner of {path}");
    }
    for (path, (mode, owner)) in &files {
        assert_eq!(owner, "root/root", "owner of {path}");
        // Nothing but what the list names, the subcommands' man pages and
        // the directories leading to them.
        let known = FILES.iter().any(|(p, _)| p == path)
            || (path.starts_with("/usr/share/man/man1/pagerd-") && path.ends_with(".1.gz"))
            || (mode.starts_with('d') && FILES.iter().any(|(p, _)| p.starts_with(path.as_str())));
        assert!(known, "unexpected {path} ({mode}) in the package");
        assert!(!path.starts_with("/usr/local"), "{path}");
        assert!(
            !mode.contains('s') && !mode.contains('S'),
            "setuid/setgid {path}"
        );
    }
    // The state directory is the unit's StateDirectory=, not shipped.
    assert!(!files.keys().any(|p| p.starts_with("/var/")), "{files:#?}");
}

#[test]
fn package_control_conffiles_and_scripts() {
    let Some(deb) = deb() else { return };
    let info = dpkg_deb("-I", &deb, &[]);
    for member in [
        "control",
        "conffiles",
        "md5sums",
        "postinst",
        "prerm",
        "postrm",
    ] {
        assert!(
            info.lines()
                .any(|l| l.split_whitespace().any(|w| w == member)),
            "no {member} in dpkg-deb -I:\n{info}"
        );
    }
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!(" {name}: ")).map(str::to_string))
            .unwrap_or_else(|| panic!("no {name} in\n{info}"))
    };
    assert_eq!(field("Package"), "pagerd");
    assert!(
        field("Version").starts_with(&format!("{}-", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    let arch = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .expect("dpkg --print-architecture");
    assert_eq!(
        field("Architecture"),
        String::from_utf8_lossy(&arch.stdout).trim()
    );
    // glibc (and libgcc_s, for unwinding) only: SQLite is bundled, TLS is rustls.
    let depends = field("Depends");
    assert!(depends.contains("libc6 (>= "), "{depends}");
    assert!(depends.contains("adduser"), "{depends}");
    for lib in ["sqlite", "libssl", "libpq"] {
        assert!(!depends.contains(lib), "{depends}");
    }

    assert_eq!(script(&deb, "conffiles").trim(), "/etc/pagerd/pagerd.toml");

    let postinst = script(&deb, "postinst");
    for name in ["postinst", "prerm", "postrm"] {
        let text = script(&deb, name);
        assert!(text.starts_with("#!/bin/sh\n"), "{name}: {text}");
        assert!(text.contains("\nset -e\n"), "{name}: {text}");
    }
    assert!(
        postinst.contains("systemd-sysusers pagerd.conf"),
        "{postinst}"
    );
    assert!(postinst.contains("adduser --system"), "{postinst}");
    for want in [
        "dpkg-statoverride --update --add",
        "override root pagerd 0750 /etc/pagerd/secrets\n",
        "override root pagerd 0640 /etc/pagerd/pagerd.toml\n",
    ] {
        assert!(postinst.contains(want), "no {want:?} in {postinst}");
    }
    assert!(postinst.contains("NOT started"), "{postinst}");
    for starts in [
        "invoke start",
        "systemctl start",
        "systemctl --system start",
    ] {
        assert!(!postinst.contains(starts), "postinst starts the service");
    }
    let postrm = script(&deb, "postrm");
    assert!(postrm.contains("dpkg-statoverride --remove"), "{postrm}");
}

/// A control member (`dpkg-deb -I DEB NAME`).
fn script(deb: &Path, name: &str) -> String {
    dpkg_deb("-I", deb, &[Path::new(name)])
}

#[test]
fn packaged_unit_man_page_completions_and_binary() {
    let Some(deb) = deb() else { return };
    let dir = tempfile::tempdir().unwrap();
    dpkg_deb("-x", &deb, &[dir.path()]);
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();

    let unit = read("lib/systemd/system/pagerd.service");
    for want in [
        "\nExecStartPre=/usr/bin/pagerd --config /etc/pagerd/pagerd.toml check-config\n",
        "\nExecStart=/usr/bin/pagerd --config /etc/pagerd/pagerd.toml --log-format json run\n",
        "\nExecReload=/bin/kill -HUP $MAINPID\n",
        "\nUser=pagerd\n",
        "\nStateDirectory=pagerd\n",
        "\nType=notify\n",
        "\nProtectSystem=strict\n",
        "\nNoNewPrivileges=yes\n",
        "\nCapabilityBoundingSet=\n",
        "\nSystemCallFilter=@system-service\n",
        "\nWantedBy=multi-user.target\n",
    ] {
        assert!(unit.contains(want), "unit lacks {want:?}:\n{unit}");
    }
    assert!(!unit.contains("/usr/local"), "{unit}");
    // Every hardening line of the source unit made it into the package.
    let source = include_str!("../../systemd/pagerd.service");
    for line in source
        .lines()
        .filter(|l| l.starts_with("Protect") || l.starts_with("Restrict"))
    {
        assert!(unit.lines().any(|l| l == line), "lost {line:?}");
    }

    let sysusers = read("usr/lib/sysusers.d/pagerd.conf");
    assert!(
        sysusers.lines().any(|l| l.starts_with("u pagerd ")),
        "{sysusers}"
    );
    assert_eq!(
        read("etc/pagerd/pagerd.toml"),
        include_str!("../../config/pagerd.example.toml")
    );

    let man = gunzip(&dir.path().join("usr/share/man/man1/pagerd.1.gz"));
    assert!(man.contains(".TH pagerd 1"), "{man}");
    assert!(man.contains("pagerd\\-incidents(1)"), "{man}");
    for (file, word) in [
        (
            "usr/share/bash-completion/completions/pagerd",
            "check-config",
        ),
        (
            "usr/share/zsh/vendor-completions/_pagerd",
            "#compdef pagerd",
        ),
        (
            "usr/share/fish/vendor_completions.d/pagerd.fish",
            "incidents",
        ),
    ] {
        assert!(read(file).contains(word), "{file} lacks {word}");
    }

    let bin = dir.path().join("usr/bin/pagerd");
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("pagerd {}", env!("CARGO_PKG_VERSION"))
    );
}

fn gunzip(path: &Path) -> String {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("run gzip");
    assert!(out.status.success(), "gzip -dc {}", path.display());
    String::from_utf8(out.stdout).expect("utf-8 man page")
}
