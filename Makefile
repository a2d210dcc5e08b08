# Two commands on a fresh Debian 12 machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 9000
DEBS := bubblewrap libseccomp2 slirp4netns

.PHONY: run test setup system-packages lint clean

run: setup
	$(BIN)/lamina up --port $(PORT) --data-dir .lamina --example

test: setup
	$(BIN)/python -m pytest -q

setup: $(VENV)/.installed system-packages

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv \
	    && $(PYTHON) -m venv $(VENV); \
	  else echo "Python's venv module is missing: run 'sudo apt-get install python3-venv'"; \
	    exit 1; fi; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

system-packages:
	@missing=""; for pkg in $(DEBS); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Lamina's sandboxes need:$$missing. Run: sudo apt-get install$$missing"; \
	    exit 1; fi; fi

lint: setup
	$(BIN)/ruff check lamina tests bench
	$(BIN)/ruff format --check lamina tests bench

clean:
	rm -rf $(VENV) .lamina
