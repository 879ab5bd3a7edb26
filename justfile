# Every recipe goes through ./bootstrap so it works the same with or without an active venv.

default:
    @just --list

# lint, type-check and run the whole test suite (what CI runs)
test *ARGS:
    ./bootstrap test {{ARGS}}

# ruff (lint + format check) and mypy only
lint:
    .venv/bin/ruff check actors hyperhive tests bench
    .venv/bin/ruff format --check actors hyperhive tests bench
    .venv/bin/mypy

# apply ruff's formatter and safe fixes
fmt:
    .venv/bin/ruff check --fix actors hyperhive tests bench
    .venv/bin/ruff format actors hyperhive tests bench

# run the daemon in the foreground on the default state directory
serve *ARGS:
    ./bootstrap serve {{ARGS}}

# run the benchmarks (broker, then turn) and print their figures
bench *ARGS:
    ./bootstrap bench {{ARGS}}

# run serve with five real agents and light traffic for ten minutes; did they stay up?
soak *ARGS:
    ./bootstrap bench soak {{ARGS}}
