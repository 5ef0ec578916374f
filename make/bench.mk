# Benchmarks (docs/performance.md): scripts that print their figures; not tests.
# Included by the main Makefile. Each target creates its own PostgreSQL database
# (DATABASE_URL's name + _<benchmark>, default postgres://postgres@127.0.0.1:5432/orderpay_bench)
# and drops it afterwards; Redis db from REDIS_URL (default redis://127.0.0.1:6379/10).
PY ?= .venv/bin/python
BENCH_ARGS ?=

.PHONY: bench bench-webhooks bench-payment-status bench-chain bench-receipts

bench-webhooks: install
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(PY) -m benchmarks.webhook_ingest $(BENCH_ARGS)

bench-payment-status: install
	$(PY) -m benchmarks.payment_status $(BENCH_ARGS)

bench-chain: install peers
	$(PY) -m benchmarks.chain_bound $(BENCH_ARGS)
	$(PY) -m benchmarks.chain_monitor

bench-receipts: install
	$(PY) -m benchmarks.receipts_pdf $(BENCH_ARGS)

bench: bench-webhooks bench-payment-status bench-chain bench-receipts
