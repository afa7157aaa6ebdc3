#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine, then builds. Idempotent and quick
# when everything is already there: apt-get runs only for missing tools, npm ci only when the lock
# file changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

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

# npm ci compiles better-sqlite3 (no prebuilt binaries here), so run it only when the lock file changed.
stamp=node_modules/.rkt-lock.sha256
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" >"$stamp"
fi

npm run -s build
