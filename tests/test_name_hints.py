"""Names with a typo (issue 19): the error or warning lists the close matches (difflib), and a
mistyped pathway leaves the rest of the enrichment step standing."""

from __future__ import annotations

import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning, ValidationError
from olinkpipe.genesets.collections import close_matches
from olinkpipe.workflow import load_config, run

SETS = {
    "JAK-STAT signaling pathway": ["IL6", "IL2RB", "STAT3", "JAK1", "IL15"],
    "PI3K-Akt signaling pathway": ["AKT1", "PIK3CA", "IL6", "KDR"],
    "Apoptosis": ["CASP3", "BAX", "TNF"],
}


def test_close_matches_finds_typos_case_and_parts():
    terms = list(SETS)
    assert close_matches("JAK-STAT signalling pathway", terms) == ["JAK-STAT signaling pathway"]
    assert close_matches("jak-stat SIGNALING PATHWAY", terms)[0] == "JAK-STAT signaling pathway"
    assert close_matches("PI3K-Akt", terms) == ["PI3K-Akt signaling pathway"]
    assert close_matches("Ribosome biogenesis", terms) == []


def _de() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Assay": ["IL6", "IL2RB", "STAT3", "AKT1", "CASP3"],
            "estimate": [1.0, 0.8, 0.1, -0.2, 0.0],
            "ci_low": [0.5, 0.3, -0.3, -0.6, -0.4],
            "ci_high": [1.5, 1.3, 0.5, 0.2, 0.4],
            "p_adj": [0.001, 0.01, 0.6, 0.5, 0.9],
        }
    )


def test_pathway_typo_error_lists_close_matches():
    with pytest.raises(ValidationError, match=r"Did you mean 'JAK-STAT signaling pathway'\?"):
        op.pl.pathway(_de(), SETS, "JAK-STAT signalling pathway")
    with pytest.raises(ValidationError, match="none in the collection is close"):
        op.pl.pathway(_de(), SETS, "Ribosome")


def test_gsea_term_typo_error_lists_close_matches():
    res = pd.DataFrame(
        {"Assay": list("ABCDEFGHIJ"), "estimate": 1.0, "statistic": range(10, 0, -1)}
    ).assign(p_value=0.5, p_adj=0.5)
    g = op.tl.gsea(res, {"top set": list("ABCDE")}, permutations=20, min_size=2)
    with pytest.raises(ValidationError, match=r"Did you mean 'top set'\?"):
        op.pl.gsea(g, "top sets")


def test_workflow_pathway_typo_keeps_enrichment(tmp_path):
    cfg = load_config()[0].model_dump(mode="json")
    cfg["inputs"] = {k: v for k, v in cfg["inputs"].items() if k in ("npx", "samples")} | {
        "sample_id_column": cfg["inputs"]["sample_id_column"]
    }
    cfg.update(kinetics=None, outcomes=None, table_one=None)
    cfg["enrichment"]["gsea"] = None
    cfg["enrichment"]["pathways"] = ["JAK-STAT signalling pathway", "PI3K-Akt signaling pathway"]
    cfg["output"].update(parquet=False, h5ad=False, figure_formats=["png"])
    result = run(cfg, out=tmp_path / "out")
    assert result.status["enrichment"] == "done"
    assert "pathway_pi3k_akt_signaling_pathway" in result.figures
    assert not any("signalling" in name for name in result.figures)
    msg = [w for w in result.warnings if "signalling" in w]
    assert len(msg) == 1 and "Did you mean 'JAK-STAT signaling pathway'?" in msg[0]
    assert "Did you mean" in result.report.read_text(encoding="utf-8")  # a note in the report
    assert OlinkpipeWarning.__name__ in msg[0]


def test_pl_qc_panel_and_paired_assay_typos_list_close_matches():
    adata = op.datasets.load_example().adata
    with pytest.raises(ValidationError, match=r"panels: \[.*Did you mean 'Inflammation'\?"):
        op.pl.qc(adata, panel="Inflamation")
    with pytest.raises(op.errors.DesignError, match=r"Close matches: 'SIT11': 'SIT1'"):
        op.pl.paired(adata, ["SIT11"], "timepoint", "patient", reference="pre", target="post")
