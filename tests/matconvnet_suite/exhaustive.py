"""MATLAB's exhaustive ``ParameterCombination`` for the ported suite files: every combination of a
test's ``TestParameter`` values, as pytest parameters. Suites whose products run to hundreds of
numerical derivatives keep an even spread of them in the default run and mark the rest ``slow``
(``pytest -m slow`` runs them all)."""

import itertools

import pytest


def combinations(*values, fast=None):
    """Every combination of ``values`` (one sequence per parameter), in MATLAB's order (the
    last parameter varies fastest). With ``fast``, only that many combinations, spread evenly
    over the product, run by default; the others are marked slow."""
    cases = list(itertools.product(*values))
    kept = set(range(len(cases)))
    if fast is not None and fast < len(cases):
        kept = {round(i * (len(cases) - 1) / max(fast - 1, 1)) for i in range(fast)}
    return [pytest.param(*case, id="-".join(str(v) for v in case),
                         marks=() if i in kept else (pytest.mark.slow,))
            for i, case in enumerate(cases)]
