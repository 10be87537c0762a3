"""core/units.py: the one home of the epsilon rule."""

import pandas as pd
import pytest

from robustbench_mix.core.units import (
    LEVELS,
    Norm,
    eps_255_column,
    fmt_row_eps,
    fraction,
    grid_key,
    row_eps,
    to_255,
)


def test_norm_is_its_text_in_files_and_messages():
    assert Norm.L2 == "L2" and Norm.LINF == "Linf" and Norm("L2") is Norm.L2
    assert f"{Norm.L2}" == str(Norm.L2) == "L2"
    assert pd.DataFrame({"norm": [Norm.LINF]}).to_csv(index=False) == "norm\nLinf\n"
    with pytest.raises(ValueError):
        Norm("L1")


@pytest.mark.parametrize("e255", [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 255.0])
def test_an_linf_epsilon_goes_to_its_fraction_and_back(e255):
    assert fraction(e255) == e255 / 255
    assert row_eps(Norm.LINF, e255) == round(e255 / 255, 6)
    assert to_255(row_eps(Norm.LINF, e255)) == e255  # 6 decimals of the fraction keep the /255 value
    assert grid_key(Norm.LINF, row_eps(Norm.LINF, e255)) == e255
    assert fmt_row_eps(Norm.LINF, row_eps(Norm.LINF, e255)) == f"{e255:g}/255"


def test_an_l2_radius_is_never_scaled():
    assert row_eps(Norm.L2, 0.5) == 0.5 and grid_key(Norm.L2, 0.5) == 0.5
    assert fmt_row_eps(Norm.L2, 0.5) == "L2=0.5"
    # the same number means different things in the two norms: their keys never coincide by accident
    assert grid_key(Norm.L2, 8 / 255) != grid_key(Norm.LINF, 8 / 255)


def test_the_column_form_equals_the_scalar_form():
    eps = pd.Series([0.0, round(8 / 255, 6), round(2 / 255, 6)])
    assert list(eps_255_column(eps)) == [to_255(e) for e in eps] == [0.0, 8.0, 2.0]
    assert LEVELS == 255.0
