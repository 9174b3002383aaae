# Sourced by the other scripts: ensure_venv [EXTRA] makes .venv and installs the package into it
# (`pip install -e ".[EXTRA]"`), saying so, unless a stamp shows that this install was already
# done for this pyproject.toml and this Python: re-running a script when nothing changed costs
# no install (the package is installed in editable mode, so code changes need none).
ensure_venv() {
    local extra="${1:-}"
    local spec="."
    [ -n "$extra" ] && spec=".[$extra]"
    local want
    want="$(python3 --version 2>&1) $(sha256sum pyproject.toml | cut -d' ' -f1)"
    local stamp
    for stamp in ".venv/.installed${extra:+-$extra}" ".venv/.installed-test"; do
        if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
            return 0
        fi
        [ -n "$extra" ] && break  # only the test install also holds what the plain one needs
    done
    if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
        # A first run stopped while it made .venv leaves one without pip: make it again.
        echo "runicorn-lite: .venv is incomplete (no pip); making it again ..." >&2
        rm -rf .venv
    fi
    if [ ! -x .venv/bin/python ]; then
        echo "runicorn-lite: creating a virtual environment in .venv (first run) ..." >&2
        python3 -m venv .venv
    fi
    local takes="about half a minute"
    # the test tools include PyTorch's CPU build and the training frameworks of the integrations
    [ "$extra" = test ] && takes="a few minutes"
    echo "runicorn-lite: installing the package${extra:+ and its $extra tools} into .venv" \
         "($takes the first time; again only when pyproject.toml changes) ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$want" > ".venv/.installed${extra:+-$extra}"
}
