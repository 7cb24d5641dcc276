#!/usr/bin/env bash
# Builds the Debian package of pagerd's production build:
#   $TARGET_DIR/debian/pagerd_VERSION-REVISION_ARCH.deb
# (TARGET_DIR is cargo's target directory, `target/` unless CARGO_TARGET_DIR
# says otherwise). Prints the package's path on its last line.
#
#   packaging/build-deb.sh              # build, then package
#   packaging/build-deb.sh --lintian    # ... and run lintian on it
#
# How: `cargo build --release --locked` (with --no-default-features once the
# crate has a `demo` feature, so the package carries no demo and no
# stand-ins), then a staged tree with explicit owners and modes, packed by
# `dpkg-deb --build --root-owner-group`. The man pages and shell completions
# come from the binary itself (`pagerd man`, `pagerd completions`), so they
# match its --help. Depends come from dpkg-shlibdeps. Needs Debian or a
# derivative; installs dpkg-dev (and lintian with --lintian) with apt-get
# when missing, which needs root. See packaging/README.md.
#
# Environment: DEB_REVISION (default 1), DEB_MAINTAINER (default below),
# SOURCE_DATE_EPOCH (default: the last commit's date) for reproducible dates.
set -euo pipefail
cd "$(dirname "$0")/.."

run_lintian=0
for arg in "$@"; do
  case "$arg" in
    --lintian) run_lintian=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

# Tools from Debian's packages, installed when missing.
need=()
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
command -v strip >/dev/null 2>&1 || need+=(binutils)
if [ "$run_lintian" = 1 ] && ! command -v lintian >/dev/null 2>&1; then need+=(lintian); fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "build-deb.sh: need ${need[*]}: run as root or install them first" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# What cargo knows: version, target directory, and whether a `demo` feature
# exists (the production build drops it with --no-default-features).
meta=$(cargo metadata --format-version 1 --no-deps --locked)
read -r version target_dir has_demo < <(perl -MJSON::PP -e '
  my $m = decode_json(join "", <STDIN>);
  my ($p) = grep { $_->{name} eq "pagerd" } @{$m->{packages}};
  printf "%s %s %d\n", $p->{version}, $m->{target_directory}, exists $p->{features}{demo} ? 1 : 0;
' <<<"$meta")
if [ -z "${version:-}" ] || [ -z "${target_dir:-}" ]; then
  echo "build-deb.sh: cannot read the version and target directory from cargo metadata" >&2
  exit 1
fi
features=()
if [ "$has_demo" = 1 ]; then features=(--no-default-features); fi

echo "== cargo build --release --locked ${features[*]}"
cargo build --release --locked --bin pagerd "${features[@]}"
bin="$target_dir/release/pagerd"

arch=$(dpkg --print-architecture)
revision=${DEB_REVISION:-1}
maintainer=${DEB_MAINTAINER:-pagerd maintainers <pagerd@example.com>}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
deb_version="$version-$revision"
out_dir="$target_dir/debian"
deb="$out_dir/pagerd_${deb_version}_${arch}.deb"

# The staged tree: every file and directory with its mode; dpkg-deb
# --root-owner-group makes them all root:root. Group pagerd on the config and
# the secrets directory is set by postinst (the user does not exist at
# unpack time), with dpkg-statoverride so upgrades keep it.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
umask 022
d() { install -d -m "$1" "$root/$2"; }
f() { install -D -m "$1" "$2" "$root/$3"; }

f 0755 "$bin" usr/bin/pagerd
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/pagerd"

# The unit: systemd/pagerd.service with the packaged paths.
d 0755 lib/systemd/system
sed -e 's|/usr/local/bin/pagerd|/usr/bin/pagerd|g' \
    -e 's|^Documentation=.*|Documentation=man:pagerd(1) file:///usr/share/doc/pagerd/README.md.gz|' \
    -e '/^# Manual install/,/^#   systemctl enable --now pagerd/c\
# Installed by the pagerd Debian package, not enabled: configure\
# /etc/pagerd/pagerd.toml and /etc/pagerd/secrets/, run\
# `pagerd check-config`, then `systemctl enable --now pagerd`.' \
    systemd/pagerd.service >"$root/lib/systemd/system/pagerd.service"
chmod 0644 "$root/lib/systemd/system/pagerd.service"
for want in 'ExecStart=/usr/bin/pagerd ' 'ExecReload=/bin/kill -HUP $MAINPID' \
            'User=pagerd' 'StateDirectory=pagerd' 'ProtectSystem=strict'; do
  if ! grep -qF "$want" "$root/lib/systemd/system/pagerd.service"; then
    echo "build-deb.sh: the packaged unit lacks '$want' (systemd/pagerd.service changed?)" >&2
    exit 1
  fi
done
if grep -q /usr/local "$root/lib/systemd/system/pagerd.service"; then
  echo "build-deb.sh: the packaged unit still names /usr/local" >&2
  exit 1
fi

f 0644 packaging/debian/pagerd.sysusers usr/lib/sysusers.d/pagerd.conf

# Config (a conffile) and the secrets directory; the state directory
# /var/lib/pagerd is the unit's StateDirectory= (created by systemd, owned by
# pagerd, mode 0700), so it is not shipped.
d 0755 etc/pagerd
f 0640 config/pagerd.example.toml etc/pagerd/pagerd.toml
d 0750 etc/pagerd/secrets

# Man pages and completions, from the binary's own definitions.
d 0755 usr/share/man/man1
"$bin" man --out-dir "$root/usr/share/man/man1" >/dev/null
f 0644 /dev/null usr/share/bash-completion/completions/pagerd
"$bin" completions bash >"$root/usr/share/bash-completion/completions/pagerd"
f 0644 /dev/null usr/share/zsh/vendor-completions/_pagerd
"$bin" completions zsh >"$root/usr/share/zsh/vendor-completions/_pagerd"
f 0644 /dev/null usr/share/fish/vendor_completions.d/pagerd.fish
"$bin" completions fish >"$root/usr/share/fish/vendor_completions.d/pagerd.fish"

# Docs: README, copyright, a changelog (Debian policy 12.7).
doc=usr/share/doc/pagerd
d 0755 "$doc"
f 0644 README.md "$doc/README.md"
f 0644 packaging/debian/copyright "$doc/copyright"
{
  echo "pagerd ($deb_version) unstable; urgency=medium"
  echo
  echo "  * Built from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) of pagerd."
  echo
  echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} >"$root/$doc/changelog.Debian"
chmod 0644 "$root/$doc/changelog.Debian"

# Compressed as Debian does (gzip -9n: no name, no time stamp).
find "$root/usr/share/man" -type f -name '*.1' -exec gzip -9n {} +
gzip -9n "$root/$doc/README.md" "$root/$doc/changelog.Debian"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# Control: conffiles, maintainer scripts, md5sums, and the control file with
# Depends from dpkg-shlibdeps (the binary links glibc and libgcc_s only;
# SQLite is bundled), and adduser: postinst creates the user with
# systemd-sysusers, or adduser on a system without systemd.
ctl="$root/DEBIAN"
install -d -m 0755 "$ctl"
echo /etc/pagerd/pagerd.toml >"$ctl/conffiles"
chmod 0644 "$ctl/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$ctl/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$ctl/md5sums"
chmod 0644 "$ctl/md5sums"

mkdir -p "$stage/shlibs/debian"
touch "$stage/shlibs/debian/control"
shlibs=$(cd "$stage/shlibs" && dpkg-shlibdeps -O "$root/usr/bin/pagerd" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
if [ -z "$shlibs" ]; then
  echo "build-deb.sh: dpkg-shlibdeps found no dependencies of $bin" >&2
  exit 1
fi
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$ctl/control" <<EOF
Package: pagerd
Version: $deb_version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $shlibs, adduser
Section: admin
Priority: optional
Description: on-call emergency paging daemon
 pagerd makes sure a human answers every emergency ticket: it watches
 Zendesk for emergency tickets, pages PagerDuty at once, escalates to level 2
 when nobody acknowledges in time, tells the customer an engineer has the
 case, and runs the crisis routine (shared doc, Slack) when an emergency
 drags on.
 .
 The service is installed but not started: configure /etc/pagerd/pagerd.toml
 and the secrets in /etc/pagerd/secrets/ first, then
 systemctl enable --now pagerd.
EOF
chmod 0644 "$ctl/control"

mkdir -p "$out_dir"
rm -f "$out_dir"/pagerd_*.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null

if [ "$run_lintian" = 1 ]; then
  echo "== lintian $deb"
  # The tags that stay are explained in packaging/README.md and suppressed
  # here; any other error or warning fails the build.
  lintian --display-info --fail-on error,warning \
    --suppress-tags non-standard-dir-perm,non-standard-file-perm,initial-upload-closes-no-bugs \
    "$deb"
fi
echo "$deb"
