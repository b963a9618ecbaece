# Sourced by scripts/test: Debian's Chromium, for the dashboard's browser tests (driven by
# Playwright from the Python of scripts/services/python.sh, never with its own downloaded
# browsers). Installed with apt-get only when missing. Exports TASKFLOW_TEST_CHROMIUM, the
# browser's path.

chromium_path="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$chromium_path" ]; then
    echo "test services: installing Debian's chromium with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=""; else sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium >&2
    chromium_path="$(command -v chromium || command -v chromium-browser || true)"
fi
if [ -n "$chromium_path" ]; then
    export TASKFLOW_TEST_CHROMIUM="$chromium_path"
else
    echo "test services: no chromium; the browser tests will fail and say why" >&2
fi
