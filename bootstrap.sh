#!/usr/bin/env bash
# pinfold's bootstrap: a fresh checkout with only python3 -> pinfold's tool environment
# (.venv, from the pinned, hashed requirements/tool.txt) -> the wheelhouse filled with
# `pinfold fetch` -> `pinfold build` of env.yaml. A second run changes nothing.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: ./bootstrap.sh [--offline] [-v] [--test [PYTEST-ARGS...]]

  (no option)  create pinfold's tool environment (.venv) if needed, fill wheelhouse/
               with the artifacts of env.yaml's locks (`pinfold fetch`), then build
               env.yaml's environment (`pinfold build`) with its final stages, and its
               development overlay env.dev.yaml (env-dev/, with bin/test and bin/py).
  --offline    never go online: the tool environment and env.yaml's environment must
               come from wheelhouse/ alone (a missing artifact is named, and nothing is built).
  -v           show pip's output.
  --test       create the tool environment if needed, then run ruff, mypy, the import
               contract (lint-imports) and the whole test suite (extra arguments go to
               pytest). This is what CI runs.

Environment: PINFOLD_PYTHON picks the interpreter for .venv (default: python3, >= 3.11).
USAGE
}

offline=0
verbose=0
mode=build
while [ $# -gt 0 ]; do
    case "$1" in
        --offline) offline=1 ;;
        -v|--verbose) verbose=1 ;;
        --test) mode=test; shift; break ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bootstrap.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")"
python=${PINFOLD_PYTHON:-python3}
tool=.venv
wheelhouse=wheelhouse

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit "${2:-1}"; }

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    die "$python is missing or older than Python 3.11; set PINFOLD_PYTHON to a newer one" 2
fi

# Every pip call runs with a scrubbed environment: the caller's PIP_* variables and pip
# config files (this machine has a global one) must not change what gets installed.
# Certificates and proxies are kept: they say how to reach an index, not which one.
scrubbed() {
    # PINFOLD_TEST_*: the test suite's own settings (README "Quick start"); they change no pip.
    local keep=(PATH HOME LANG TMPDIR PIP_CERT SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE
                http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY
                PINFOLD_TEST_NETWORK PINFOLD_TEST_CACHE)
    local args=() name
    for name in "${keep[@]}"; do
        if [ -n "${!name:-}" ]; then args+=("$name=${!name}"); fi
    done
    env -i "${args[@]}" PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_NO_INPUT=1 PYTHONNOUSERSITE=1 "$@"
}

quiet() {  # run a command; show its output with -v, keep its tail in QUIET_LOG for errors
    local log rc=0
    log=$(mktemp)
    if [ "$verbose" = 1 ]; then
        "$@" 2>&1 | tee "$log" >&2 || rc=$?
    else
        "$@" >"$log" 2>&1 || rc=$?
    fi
    QUIET_LOG=$(tail -n 40 "$log")
    rm -f "$log"
    return "$rc"
}

stamp() {  # what the tool environment is made from
    cat requirements/tool.txt pyproject.toml bootstrap.sh | "$python" -c \
        'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    "$python" -c 'import sys; print(sys.version)'
}

ensure_tool_env() {
    local want
    want=$(stamp)
    if [ -x "$tool/bin/pinfold" ] && [ "$(cat "$tool/.pinfold-stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    say "creating pinfold's tool environment in $tool/ (from requirements/tool.txt)"
    rm -rf "$tool"
    # A failed attempt leaves no half-made tool environment behind.
    trap 'rm -rf "$tool"' EXIT
    quiet scrubbed "$python" -m venv "$tool" || die "python -m venv failed: ${QUIET_LOG:-}"
    local pip=("$tool/bin/python" -m pip install --require-hashes --no-deps -r requirements/tool.txt)
    QUIET_LOG=
    if [ -d "$wheelhouse" ] && quiet scrubbed "${pip[@]}" --no-index --find-links "$wheelhouse"; then
        say "tool environment installed offline from $wheelhouse/"
    elif [ "$offline" = 1 ]; then
        die "--offline: $wheelhouse/ does not hold every artifact of requirements/tool.txt
${QUIET_LOG:-}" 1
    else
        say "downloading the tool environment's pinned artifacts into $wheelhouse/"
        mkdir -p "$wheelhouse"
        quiet scrubbed "$tool/bin/python" -m pip download --require-hashes --no-deps \
            -r requirements/tool.txt -d "$wheelhouse" || die "downloading requirements/tool.txt failed:
${QUIET_LOG:-}"
        quiet scrubbed "${pip[@]}" --no-index --find-links "$wheelhouse" \
            || die "installing requirements/tool.txt failed: ${QUIET_LOG:-}"
    fi
    # pinfold itself, editable, built offline with the setuptools the lock just installed.
    quiet scrubbed "$tool/bin/python" -m pip install --no-deps --no-build-isolation --no-index -e . \
        || die "installing pinfold failed: ${QUIET_LOG:-}"
    # pinfold's own interpreter runs isolated (-I), as every command it starts does: the
    # caller's PYTHONPATH (a sitecustomize.py there runs at start-up), PYTHONHOME and user
    # site-packages never reach pinfold itself. pip's console script cannot pass -I.
    local py
    py="$(cd "$tool/bin" && pwd)/python"
    cat >"$tool/bin/pinfold" <<WRAPPER
#!/bin/sh
# Written by bootstrap.sh: pinfold runs isolated (-I) from the caller's PYTHON* settings.
exec "$py" -I -m pinfold "\$@"
WRAPPER
    chmod +x "$tool/bin/pinfold"
    stamp >"$tool/.pinfold-stamp"
    trap - EXIT
}

ensure_tool_env

if [ "$mode" = test ]; then
    bin=$tool/bin
    say "ruff"
    "$bin/ruff" check
    say "mypy"
    "$bin/mypy" --no-error-summary
    say "import contract"
    # pyproject.toml's [tool.importlinter] layers; the cache lives and dies with the tool env.
    "$bin/lint-imports" --cache-dir "$tool/.import_linter_cache"
    say "pytest"
    # pytest's exit status is the script's (set -e), so CI sees failures.
    scrubbed "$bin/python" -m pytest "$@"
    exit 0
fi

flags=()
if [ "$verbose" = 1 ]; then flags+=(-v); fi
if [ "$offline" = 0 ]; then
    "$tool/bin/pinfold" fetch "${flags[@]}" env.yaml
fi
"$tool/bin/pinfold" build "${flags[@]}" env.yaml
# The development overlay (same locks): bin/test, bin/py and the other launchers in bin/.
exec "$tool/bin/pinfold" build "${flags[@]}" env.dev.yaml
