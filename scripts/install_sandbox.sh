#!/usr/bin/env bash
# Installs bubblewrap (the grader's preferred kernel sandbox) with apt if it is missing; quiet and
# idempotent. Without root it only reports what to do.
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install_sandbox.sh: bubblewrap is missing; install it as root: apt-get install -y bubblewrap" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_sandbox.sh: no apt-get here; install bubblewrap with your package manager" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
command -v bwrap >/dev/null
