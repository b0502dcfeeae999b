# Shared by the root Makefile and every subproject's Makefile:
#   include $(ROOT)/tools/make/venv.mk   (ROOT defaults to the directory of this file's repo)
# provides $(PY) (the venv's python) and the `venv` target, which (re)installs only when a
# pyproject.toml or the setup script changed since the last install.
REPO_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
VENV := $(REPO_ROOT)/.venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.monorepo-installed
VENV_DEPS := $(wildcard $(REPO_ROOT)/*/pyproject.toml) $(REPO_ROOT)/tools/scripts/setup_venv.sh

.PHONY: venv
venv: $(VENV_STAMP)

$(VENV_STAMP): $(VENV_DEPS)
	bash $(REPO_ROOT)/tools/scripts/setup_venv.sh
	@touch $@
