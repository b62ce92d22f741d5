# The two commands a new user needs: `make demo` and `make test`.
.PHONY: setup setup-test demo test bench clean install

PY := .venv/bin/python
# `make install`: a virtualenv of its own under PREFIX and the systemd unit for it (scripts/install.sh).
PREFIX ?= /opt/moviegen
SYSTEMD ?= 0

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

demo: setup
	@$(PY) -m daemon.demo samples/ja-article.md demo-out samples/offline-personas.toml

test: setup-test
	@$(PY) -m pytest -q

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

install:
	@bash scripts/install.sh --prefix "$(PREFIX)" $(if $(filter 1 yes,$(SYSTEMD)),--systemd)

clean:
	rm -rf demo-out demo-home .pytest_cache
