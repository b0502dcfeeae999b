# Monorepo entry points. `make test` and `make demo` each set up .venv themselves on a fresh
# machine (see tools/scripts/setup_venv.sh) and reuse it afterwards.
SUBPROJECTS := tools InternVideo2 InternVideo1 InternVideo-Next InternVideo2.5 Data
include tools/make/venv.mk

.PHONY: test demo lint format venv $(addprefix test-,$(SUBPROJECTS))

test: venv
	@failed=""; \
	for p in $(SUBPROJECTS); do \
		if [ -f $$p/Makefile ]; then \
			echo "=== $$p ==="; \
			$(MAKE) --no-print-directory -C $$p test || failed="$$failed $$p"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi

demo: venv
	$(PY) -m ivtools.demo
	$(PY) -m internvideo2.demo

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
