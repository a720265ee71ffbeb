# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Offline coastlines for the maps when the shared Natural Earth files are beside the repository.
NATURAL_EARTH := $(wildcard ../shared/data/natural_earth/cartopy_data)
export CARTOPY_DATA_DIR ?= $(if $(NATURAL_EARTH),$(abspath $(NATURAL_EARTH)),)

.PHONY: demo test venv clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/weatherunc demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache
