#!/usr/bin/env bash
# Installs moor from this built checkout as a systemd service:
#   /opt/moor                          the code (bin/, dist/src/, native/, production node_modules)
#   /etc/moor/moor.toml                config with generated secrets (root:moor, mode 0640), kept on upgrade
#   /etc/systemd/system/moor.service   the unit (systemd/moor.service), enabled and started
#   /etc/sysctl.d/60-moor.conf         kernel settings (systemd/moor-sysctl.conf), applied
#   user and group `moor`; /var/lib/moor (the data) is made by systemd (StateDirectory=)
# A second run upgrades in place: new code, same config, the service restarted (drained).
# --uninstall removes all of it except the data in /var/lib/moor.
# --root DIR stages every file under DIR and touches nothing else (no user, systemctl or
# sysctl): for packaging, and for trying it safely (CI does).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/install.sh [--root DIR] [--prefix DIR] [--no-start] [--rolling] [--uninstall]

  --root DIR    install under DIR instead of /; create no user, run no systemctl or sysctl
  --prefix DIR  where the code goes (default /opt/moor)
  --no-start    install and enable, but do not start or restart the service
  --rolling     on upgrade, replace the workers one at a time (SIGUSR2) instead of
                restarting: no downtime, but the primary keeps its old code until the
                next restart
  --uninstall   stop, disable and remove moor, keeping /var/lib/moor (the data)
EOF
}

ROOT=""
PREFIX=/opt/moor
START=1
ROLLING=0
UNINSTALL=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#--prefix=}"; shift ;;
    --no-start) START=0; shift ;;
    --rolling) ROLLING=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "moor install: unknown option $1" >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USER_NAME=moor
CONF_DIR=/etc/moor
CONF=$CONF_DIR/moor.toml
STATE_DIR=/var/lib/moor
UNIT=/etc/systemd/system/moor.service
SYSCTL_FILE=/etc/sysctl.d/60-moor.conf
if [[ -n $ROOT ]]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
fi
R=$ROOT

say() { printf 'moor install: %s\n' "$*"; }
die() { printf 'moor install: error: %s\n' "$*" >&2; exit 1; }
# Commands that change the host beyond files under $R: skipped (and said) with --root.
host() {
  if [[ -n $ROOT ]]; then say "--root: skipped: $*"; else "$@"; fi
}
have_unit() { [[ -z $ROOT ]] && command -v systemctl >/dev/null && systemctl cat moor.service >/dev/null 2>&1; }

if [[ -z $ROOT && $(id -u) -ne 0 ]]; then
  die "run as root (or stage into a directory with --root DIR)"
fi

uninstall() {
  if have_unit; then
    say "stopping and disabling moor.service (devices are drained first)"
    systemctl disable --now moor.service || true
  fi
  rm -f "$R$UNIT" "$R$SYSCTL_FILE"
  [[ -z $ROOT ]] && command -v systemctl >/dev/null && systemctl daemon-reload
  # The config holds the JWT secret every issued device token was signed with.
  if [[ -f $R$CONF && -d $R$STATE_DIR ]]; then
    install -m 0600 "$R$CONF" "$R$STATE_DIR/moor.toml.uninstalled"
    say "kept a copy of $CONF (its secrets) as $STATE_DIR/moor.toml.uninstalled"
  fi
  rm -rf "$R$PREFIX" "$R$PREFIX.new" "$R$PREFIX.old" "$R$CONF_DIR"
  if [[ -d $R$STATE_DIR ]]; then
    # No uid that a future user may receive keeps access; systemd re-owns it on reinstall.
    host chown -R root:root "$R$STATE_DIR"
    chmod 0700 "$R$STATE_DIR"
  fi
  if [[ -z $ROOT ]] && getent passwd "$USER_NAME" >/dev/null; then
    userdel "$USER_NAME" || say "could not remove user $USER_NAME"
  fi
  say "removed; the data stays in $R$STATE_DIR (sysctl values stay until reboot)"
}

if [[ $UNINSTALL -eq 1 ]]; then
  uninstall
  exit 0
fi

# ---- what the install needs from the checkout and the host ----
NODE=$(command -v node || true)
[[ -n $NODE ]] || die "node is not on PATH (moor needs Node 20.19 or newer)"
NODE=$(readlink -f "$NODE")
major=$("$NODE" -p 'process.versions.node.split(".")[0]')
[[ $major -ge 20 ]] || die "node $("$NODE" --version) is too old (moor needs Node 20.19 or newer)"
for f in dist/src/cli/main.js dist/src/cluster/worker-main.js native/index.js node_modules; do
  [[ -e $SRC/$f ]] || die "$SRC/$f is missing: build first (npm install && npm run build)"
done
compgen -G "$SRC/native/*.node" >/dev/null || die "no native module in $SRC/native: npm run build:native"

# ---- the code: staged next to the target, then swapped in ----
stage="$R$PREFIX.new"
rm -rf "$stage"
mkdir -p "$stage/dist" "$stage/native" "$stage/node_modules"
cp -a "$SRC/bin" "$SRC/package.json" "$stage/"
[[ -f $SRC/README.md ]] && cp -a "$SRC/README.md" "$stage/"
cp -a "$SRC/dist/src" "$stage/dist/src"
cp -a "$SRC/native/index.js" "$SRC"/native/*.node "$stage/native/"
cp -a "$SRC/systemd" "$stage/systemd"
# Production dependencies only (npm ls works offline); every package once, nested ones
# travel with their parent.
if command -v npm >/dev/null && deps=$(cd "$SRC" && npm ls --omit=dev --all --parseable 2>/dev/null | sed -n "s#^$SRC/##p" | grep '^node_modules/' | sort); then
  last=""
  while IFS= read -r dep; do
    [[ -n $last && $dep == "$last"/* ]] && continue
    mkdir -p "$stage/$(dirname "$dep")"
    cp -a "$SRC/$dep" "$stage/$dep"
    last=$dep
  done <<<"$deps"
else
  say "npm ls could not list the production dependencies: copying all of node_modules"
  cp -a "$SRC/node_modules/." "$stage/node_modules/"
fi
host chown -R root:root "$stage"
chmod -R go-w "$stage"
if [[ -d $R$PREFIX ]]; then
  rm -rf "$R$PREFIX.old"
  mv "$R$PREFIX" "$R$PREFIX.old"
  upgraded=1
else
  upgraded=0
fi
mv "$stage" "$R$PREFIX"
rm -rf "$R$PREFIX.old"
say "code installed in $R$PREFIX ($("$NODE" -p "require('$R$PREFIX/package.json').version"))"

# ---- the user ----
if [[ -n $ROOT ]]; then
  say "--root: skipped: creating user $USER_NAME"
elif ! getent passwd "$USER_NAME" >/dev/null; then
  useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
  say "created system user $USER_NAME"
fi

# ---- the config, with generated secrets; kept as it is on upgrade ----
mkdir -p "$R$CONF_DIR"
chmod 0755 "$R$CONF_DIR"
if [[ -f $R$CONF ]]; then
  say "kept $R$CONF"
else
  secret() { "$NODE" -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64url"))'; }
  tmp=$(mktemp "$R$CONF_DIR/.moor.toml.XXXXXX")
  chmod 0640 "$tmp"
  cat >"$tmp" <<EOF
# moor configuration, written by scripts/install.sh. Every key, its default and whether
# it reloads live: moor check-config --help. Apply live keys with: systemctl reload moor

[ws]
port = 8080
path = "/ws"

[tcp]
port = 7070

[api]
host = "127.0.0.1"
port = 8081
# Bearer keys backends use on the HTTP API (reloads live).
keys = ["$(secret)"]

[auth]
# Device JWTs (HS256) are verified with this; changing it invalidates every issued token.
jwt_secret = "$(secret)"

[store]
kind = "embedded"
path = "$STATE_DIR"

[drain]
window_ms = 30000
grace_ms = 5000

[log]
level = "info"
EOF
  mv "$tmp" "$R$CONF"
  host chown "root:$USER_NAME" "$R$CONF"
  say "wrote $R$CONF with a generated API key and JWT secret (mode 0640)"
fi
"$NODE" "$R$PREFIX/bin/moor.js" check-config --config "$R$CONF" >/dev/null || die "$R$CONF does not pass moor check-config (see above)"

# ---- the unit and the kernel settings ----
mkdir -p "$(dirname "$R$UNIT")" "$(dirname "$R$SYSCTL_FILE")"
sed -e "s#/usr/bin/node #$NODE #" -e "s#/opt/moor#$PREFIX#g" "$SRC/systemd/moor.service" >"$R$UNIT.tmp"
chmod 0644 "$R$UNIT.tmp"
mv "$R$UNIT.tmp" "$R$UNIT"
install -m 0644 "$SRC/systemd/moor-sysctl.conf" "$R$SYSCTL_FILE"
say "installed $R$UNIT and $R$SYSCTL_FILE"
if [[ -z $ROOT ]]; then
  sysctl -q -p "$SYSCTL_FILE" || say "warning: some kernel settings were not applied (a container?); see $SYSCTL_FILE"
else
  say "--root: skipped: sysctl -p $SYSCTL_FILE"
fi

if [[ $upgraded -eq 1 ]]; then say "upgraded in place; $CONF kept"; else say "API key and device JWT secret are in $CONF"; fi

# ---- enable, start or restart ----
if [[ -n $ROOT ]]; then
  say "--root: skipped: systemctl daemon-reload, enable and start moor.service"
  exit 0
fi
systemctl daemon-reload
systemctl enable moor.service >/dev/null
if [[ $START -eq 0 ]]; then
  say "enabled moor.service (not started: --no-start)"
elif systemctl is-active --quiet moor.service; then
  if [[ $ROLLING -eq 1 ]]; then
    systemctl kill -s SIGUSR2 --kill-whom=main moor.service
    say "rolling restart of the workers started (journalctl -u moor -f); the primary runs the new code after the next restart"
  else
    say "restarting moor.service: devices are drained first (drain.window_ms)"
    systemctl restart moor.service
  fi
else
  systemctl start moor.service
  say "started moor.service (journalctl -u moor -f)"
fi
