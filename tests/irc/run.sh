#!/usr/bin/env bash
# irctest against chatd's IRC listener (`make irctest`; .ci/run calls it after
# `make test`). irctest is read from $IRCTEST_DIR (default ../shared/irctest
# beside this checkout: a pinned snapshot, never copied into the project)
# into a virtualenv of its own (.venv-irctest: irctest's requirements are not
# chatd's, and chatd's pytest settings turn warnings into errors). Runs the
# selection of ../shared/irc/README.md over TLS (tests/irc/chatd_controller.py)
# and checks the JUnit XML with tests/irc/check_results.py: no failure, and
# every id of must-pass.txt ($IRCTEST_MUST_PASS) passed; a skip is no pass.
#
# Arguments are passed to pytest after the selection (e.g. `-k testPlain`);
# IRCTEST_FILES="cap sasl" runs those files only (the check then reports the
# must-pass ids of the others as not run).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
irctest=$(realpath -m "${IRCTEST_DIR:-$repo/../shared/irctest}")
must_pass=${IRCTEST_MUST_PASS:-$irctest/../irc/must-pass.txt}
venv=$repo/.venv-irctest
if [ ! -f "$irctest/irctest/controllers/__init__.py" ]; then
    echo "make irctest: no irctest at $irctest; set IRCTEST_DIR to the snapshot (../shared/irctest)" >&2
    exit 2
fi
if [ ! -x "$venv/bin/python" ] || [ "$irctest/requirements.txt" -nt "$venv/.installed" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet -r "$irctest/requirements.txt" pytest-timeout
    # Two workers halve the run where pytest-xdist can be had; without it, one.
    "$venv/bin/python" -m pip install --quiet pytest-xdist || echo "make irctest: no pytest-xdist; one worker" >&2
    touch "$venv/.installed"
fi
parallel=()
if "$venv/bin/python" -c "import xdist" 2>/dev/null; then
    parallel=(-n "${IRCTEST_WORKERS:-2}")
fi
files=(${IRCTEST_FILES:-connection_registration cap pingpong messages join part topic names who list quit
    isupport utf8 buffering regressions echo_message message_tags labeled_responses chathistory sasl})
paths=()
for file in "${files[@]}"; do paths+=("irctest/server_tests/$file.py"); done
results=${IRCTEST_RESULTS:-$repo/.irctest-results.xml}
rm -f "$results"
excluded="not PasswordedConnectionRegistrationTestCase and not testTopicMode and not testTopicPrivileges \
and not testJoinKey and not testJoinManySingleKey and not testNames2812Secret and not testWhoNickOper \
and not testWhoNickAwayAndOper and not testWhoInvisible and not WhoServicesTestCase"
# From irctest's own directory, with its own pytest settings. Failures are
# counted from the XML below, so pytest's own status is not the verdict.
(
    cd "$irctest"
    PYTHONPATH="$repo/tests/irc" CHATD_PYTHON="$repo/.venv/bin/python" \
        "$venv/bin/python" -m pytest -p no:cacheprovider -q --controller chatd_controller \
        -m "not implementation-specific and not deprecated and not strict" -k "$excluded" \
        --timeout 120 "${parallel[@]}" --junit-xml "$results" "${paths[@]}" "$@" || true
)
if [ ! -s "$results" ]; then
    echo "make irctest: irctest wrote no results ($results)" >&2
    exit 1
fi
"$repo/.venv/bin/python" "$repo/tests/irc/check_results.py" "$results" "$must_pass"
