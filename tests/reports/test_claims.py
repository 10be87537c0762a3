"""claims: the margin a claim's interval must clear is shown beside it, so an 'inconclusive' whose interval is clear
of zero can be read off the table."""

from helpers import ERM, GEN, MIXUP, runs, seeds

from robustbench_mix.reports.claims import check_all, load_claims, section, to_markdown


def _claim(margin: float) -> dict:
    claim = dict(next(c for c in load_claims() if c["id"] == GEN))
    claim["margin"] = margin
    return claim


def test_each_claim_shows_the_margin_its_verdict_compares_with():
    # mixup's test error lower by about 4.3 points, its interval clear of zero but not of a 2-point margin
    df = runs(seeds(ERM, [0.95, 0.945, 0.94]) + seeds(MIXUP, [0.97, 0.995, 1.0]))
    strict, loose = check_all(df, claims=[_claim(2.0)]), check_all(df, claims=[_claim(0.0)])
    s, lo = strict.iloc[0], loose.iloc[0]
    assert s["diff"] < -4 and 0 < -s["ci95_high"] < 2 < -s["ci95_low"]  # the interval straddles 2, not 0
    assert s["verdict"] == "inconclusive" and lo["verdict"] not in ("inconclusive", "not reproduced")
    assert s["margin"] == 2.0 and lo["margin"] == 0.0  # in claims.csv too
    md = to_markdown(strict)
    head, _, row = md.splitlines()[:3]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "margin" in head and cells[head.strip("|").split("|").index(" margin ")] == "< -2.00"
    assert "`inconclusive` when the interval straddles the margin" in section(strict)
    assert "| < +0.00 |" in to_markdown(loose)
