# The README's two commands are `make run` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench chaos fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p run
	chmod 600 examples/*.conf  # they hold secrets: the servers and scs warn otherwise
	CFG_PASSWORD=$${CFG_PASSWORD:-admin} $(BIN)/cfgctl init -s confserv -c examples/confserv.conf \
		--backup-section "Backup CS" --backup-config examples/backup.conf
	$(BIN)/scs -f examples/scs.conf

# Two processes (pytest-xdist); a file's tests run in one of them, in order. The real
# fault-injection slices (marker chaos_slice) run under make chaos and in CI instead.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not chaos_slice"

lint: $(STAMP)
	$(BIN)/ruff check addp confserv scs lca tests bench
	$(BIN)/ruff format --check addp confserv scs lca tests bench
	$(BIN)/mypy --strict addp confserv scs lca

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# The heaviest state-machine properties, searched 4x as long as in make test.
PROPERTIES = tests/scs/test_core_properties.py tests/scs/test_election.py \
	tests/confserv/test_roles_machine.py tests/confserv/test_supervisor_lease_machine.py

# Fault injection: 10,000 simulated schedules (tests/sim: the real code on a virtual
# clock, both cores), then real ones on SQLite and on PostgreSQL (up to 110 each),
# seeded; one summary table; stops within 40 minutes. Then 50 seeded schedules on the
# multi-host bed (tests/multihost: network namespaces, iptables; needs root), within 30.
# Before them: the chaos slice and the properties above at HYPOTHESIS_SCALE=4.
chaos: $(STAMP)
	$(BIN)/python -m pytest -q -m chaos_slice
	HYPOTHESIS_SCALE=4 $(BIN)/python -m pytest -q -n 2 $(PROPERTIES)
	$(BIN)/python -m tests.chaos --simulated 10000 --real 110 --minutes 40
	$(BIN)/python -m tests.multihost.chaos --schedules 50 --minutes 30

# Fuzz: 1,000,000 cases on the primary's client and management ports and the supervisor's
# control port of a real pair under scs -f (tests/fuzz), seeded; one summary table; exit 1
# on any finding; stops within 30 minutes.
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz --cases 1000000 --seed 12 --minutes 30 --fresh-share 0.3

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
