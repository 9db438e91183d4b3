#!/usr/bin/env bash
# Installs the third-party SMTP peers smtpbench's interoperability tests and peer benchmarks use,
# from Debian packages: Postfix (for smtp-sink and smtp-source; the system Postfix is left
# unconfigured and stopped), swaks, and Python's aiosmtpd. Idempotent; needs root for apt-get.
# usage: bench/peers/install.sh
set -euo pipefail
need=()
command -v smtp-sink >/dev/null || need+=(postfix)
command -v swaks >/dev/null || need+=(swaks)
/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null || need+=(python3-aiosmtpd)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: need root to apt-get install ${need[*]}; the tests that use them will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# A "No configuration" Postfix does not start; make sure nothing listens on port 25 anyway.
if command -v postfix >/dev/null && postfix status >/dev/null 2>&1; then postfix stop >/dev/null 2>&1 || true; fi
exit 0
