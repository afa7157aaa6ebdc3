#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine, then builds; as root it also puts
# `rkt` on PATH (/usr/local/bin/rkt, a link to this clone's bin/rkt.js) with its man pages and bash
# completion. Idempotent and quick when everything is already there: apt-get runs only for missing
# tools, npm ci only when the lock file changed since the last install.
#
#   --cli-only        only the last part (link, man pages, completion), with the build already made
#   RKT_SETUP_ROOT=D  install that part under D instead of / (a package's DESTDIR, or a test)
set -euo pipefail
cd "$(dirname "$0")/.."

# rkt on PATH, `man rkt`, `man rkt-fetch`…, and bash completion, where the system looks for them.
# Not root (and no RKT_SETUP_ROOT): only says how to run rkt.
install_cli() {
  local root="${RKT_SETUP_ROOT:-}" rkt="$PWD/packages/cli/bin/rkt.js"
  if [ "$(id -u)" -ne 0 ] && [ -z "$root" ]; then
    echo "setup: run rkt as $rkt (or npx rkt); as root, setup also links /usr/local/bin/rkt" >&2
    return 0
  fi
  local bin="$root/usr/local/bin" man="$root/usr/local/share/man/man1"
  local comp="$root/usr/share/bash-completion/completions"
  mkdir -p "$bin" "$man" "$comp"
  ln -sfn "$rkt" "$bin/rkt"
  # Pages of commands that no longer exist must not linger: the rkt*.1 pages are all ours.
  rm -f "$man"/rkt.1 "$man"/rkt-*.1
  node "$rkt" man --quiet --output "$man"
  node "$rkt" completion bash >"$comp/rkt.tmp"
  mv "$comp/rkt.tmp" "$comp/rkt"
  if [ -z "$root" ] && command -v mandb >/dev/null 2>&1; then mandb -q >/dev/null 2>&1 || true; fi
  echo "setup: rkt is $bin/rkt; man rkt; bash completion in $comp/rkt" >&2
}

if [ "${1:-}" = "--cli-only" ]; then
  install_cli
  exit 0
fi

# tool -> Debian package
declare -A want=(
  [docker-registry]=docker-registry [skopeo]=skopeo [umoci]=umoci [runc]=runc
  [oci-image-tool]=oci-image-tool [gpg]=gnupg [debootstrap]=debootstrap
  [xz]=xz-utils [bzip2]=bzip2 [zstd]=zstd [openssl]=openssl [unshare]=util-linux
  [setfattr]=attr [python3]=python3
)
missing=()
for tool in "${!want[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("${want[$tool]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: missing Debian packages: ${missing[*]} (install them as root with apt-get)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# man(1) to read the pages installed below: optional, so only tried as root with apt-get.
if ! command -v man >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing man-db groff-base (optional)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    man-db groff-base >/dev/null; } || echo "setup: man-db not installed; man pages are still written" >&2
fi

# npm ci compiles better-sqlite3 (no prebuilt binaries here), so run it only when the lock file changed.
stamp=node_modules/.rkt-lock.sha256
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" >"$stamp"
fi

npm run -s build
install_cli
