"""Layer 9 of ulmfit, apps: what is built on trained run dirs (STYLE.md §5.2). Imports every layer up to the
top modules (`predict`, `pipeline`).

`serve` (HTTP), `export` + `exported` (a self-contained export dir and its loader), `demo` (the timed demo).
"""
