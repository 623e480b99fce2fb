# The README's two commands: `make demo` and `make test`.
.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/setup.sh
	bash scripts/test.sh

bench: setup
	.venv/bin/python benchmarks/run_all.py
