"""bench.instructions reads cachegrind's output files and takes what one request costs as the difference
between a short and a long run, per request."""

from __future__ import annotations

from collections import Counter

from bench.instructions import Counts, per_request, read_counts, report

# cachegrind's format (valgrind 3.19, --cache-sim=yes): the columns named once, then per file and function
# one line per source line, its counts in the columns' order; a line may leave trailing columns out.
SHORT = """desc: I1 cache:         32768 B, 64 B, 8-way associative
cmd: python -m translator serve
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
fl=Python/ceval.c
fn=_PyEval_EvalFrameDefault
100 1000 10 0 400 4
101 500 5 0 200 2
fl=Objects/bytesobject.c
fn=bytes_split
7 50
summary: 1550 15 0 600 6 0 0 0 0
"""
LONG = """events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
fl=Python/ceval.c
fn=_PyEval_EvalFrameDefault
100 5000 50 0 2000 20
101 2500 25 0 1000 10
fl=Objects/bytesobject.c
fn=bytes_split
7 450
fl=Objects/dictobject.c
fn=insertdict
3 90 1 0 30 3
summary: 8040 76 0 3030 33 0 0 0 0
"""


def test_a_file_gives_its_totals_and_each_functions_instructions() -> None:
    counts = read_counts(SHORT)
    assert counts.totals == {"Ir": 1550, "I1mr": 15, "ILmr": 0, "Dr": 600, "D1mr": 6, "DLmr": 0, "Dw": 0,
                             "D1mw": 0, "DLmw": 0}
    assert counts.functions == {"_PyEval_EvalFrameDefault": 1500, "bytes_split": 50}


def test_a_request_costs_what_the_longer_run_counted_beyond_the_shorter_per_request_beyond_it() -> None:
    one = per_request(read_counts(SHORT), read_counts(LONG), extra_requests=4)
    assert one.totals == {"Ir": 1622, "I1mr": 15, "D1mr": 7}  # 6490 / 4, 61 / 4, 27 / 4, rounded
    assert one.functions == {"_PyEval_EvalFrameDefault": 1500, "bytes_split": 100, "insertdict": 22}


def test_the_report_puts_the_proxy_beside_the_passthrough() -> None:
    proxy = Counts({"Ir": 1500, "I1mr": 40, "D1mr": 30}, Counter({"a": 900, "b": 600}))
    passthrough = Counts({"Ir": 1000, "I1mr": 20, "D1mr": 30}, Counter({"a": 1000}))
    text = report("t", proxy, passthrough, top=2)
    assert "Ir               1,500        1,000   1.50x" in text
    assert "I1mr                40           20   2.00x" in text
    assert text.splitlines()[-2:] == ["       600          0       +600  b", "       900      1,000       -100  a"]
