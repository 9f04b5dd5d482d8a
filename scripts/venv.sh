# Sourced by run-example and run-tests: make sure a virtual environment with the project
# installed (editable, with the given extra) exists. PYTHON and VENV choose the interpreter
# and the environment's folder; the install is redone only when pyproject.toml changes.
ensure_venv() {
    local extra="$1"
    PYTHON="${PYTHON:-python3}"
    VENV="${VENV:-.venv}"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating $VENV with $("$PYTHON" --version 2>&1)..." >&2
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.django-tokens-$extra"
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "Installing django-tokens[$extra] into $VENV..." >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
        echo "$want" > "$stamp"
    fi
}
