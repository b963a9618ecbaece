# Sourced by scripts/test: a virtual environment under target/ with the Python packages of
# scripts/services/requirements.txt, made from the machine's python3 (pip installs from PyPI).
# It is made again only when the requirements change. Exports TASKFLOW_TEST_PYTHON, the
# interpreter the tests run their Python clients with.

venv=target/test-python
requirements=scripts/services/requirements.txt
stamp="$venv/.requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
    echo "test services: making the Python environment $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
fi
export TASKFLOW_TEST_PYTHON="$PWD/$venv/bin/python"
