# The two commands a new user needs: `make demo` and `make test`.
.PHONY: setup setup-test demo test bench clean

PY := .venv/bin/python

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

demo: setup
	@$(PY) -m daemon.demo samples/ja-article.md demo-out

test: setup-test
	@$(PY) -m pytest -q

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf demo-out demo-home .pytest_cache
