"""Gene-set collections: offline libraries, GMT/Enrichr readers, dict/DataFrame input, download."""

from __future__ import annotations

import logging
import socket
from importlib import metadata

import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import MissingColumnError, OlinkpipeError, ValidationError
from olinkpipe.genesets import collections as coll_mod
from olinkpipe.genesets.collections import as_collection


def test_kegg_2021_offline_counts():
    # Numbers of the Enrichr KEGG_2021_Human library shipped in blitzgsea (issue 6).
    kegg = op.genesets.load("KEGG_2021_Human")
    assert len(kegg) == 320
    jak = kegg["JAK-STAT signaling pathway"]
    pi3k = kegg["PI3K-Akt signaling pathway"]
    assert len(jak) == 162 and len(set(jak)) == 162
    assert len(pi3k) == 354
    assert "IL2RB" in jak and "IL2RB" in pi3k
    assert kegg.name == "KEGG_2021_Human"
    assert kegg.version == metadata.version("blitzgsea")
    assert kegg.source.startswith("blitzgsea:")


def test_go_bp_offline_and_available():
    names = op.genesets.available()
    assert names[:2] == ["KEGG_2021_Human", "GO_Biological_Process_2023"]
    go = op.genesets.load("GO_Biological_Process_2023")
    assert len(go) > 5000
    assert all(isinstance(g, str) and g for genes in go.values() for g in genes)
    # each load returns an independent copy: editing one does not change the next
    go["mine"] = ["X"]
    assert "mine" not in op.genesets.load("GO_Biological_Process_2023")


def test_unknown_name_errors_listing_offline_without_network(monkeypatch):
    def no_fetch(name):  # pragma: no cover - must not be reached
        raise AssertionError("load() tried to download without download=True")

    attempts = []
    real = socket.socket.connect

    def spy(self, address):  # pragma: no cover - must not be reached
        attempts.append(address)
        return real(self, address)

    monkeypatch.setattr(coll_mod, "_fetch_enrichr", no_fetch)
    monkeypatch.setattr(socket.socket, "connect", spy)
    with pytest.raises(ValidationError, match=r"not available offline.*KEGG_2021_Human") as exc:
        op.genesets.load("Reactome_2022")
    assert "GO_Biological_Process_2023" in str(exc.value)
    assert "download=True" in str(exc.value)
    assert attempts == []


def test_download_goes_to_cache_and_says_where(monkeypatch, tmp_path, caplog):
    text = "Set one\t\tIL6\tTNF\tIL2RB\nSet two\t\tCCL2,1.0\tCXCL8,0.5\tCCL2\n"
    calls = []

    def fake_fetch(name):
        calls.append(name)
        return text

    monkeypatch.setattr(coll_mod, "_fetch_enrichr", fake_fetch)
    with caplog.at_level(logging.WARNING, logger="olinkpipe"):
        got = op.genesets.load("Fake_Library_2024", download=True, cache_dir=tmp_path)
    assert calls == ["Fake_Library_2024"]
    cached = tmp_path / "Fake_Library_2024.gmt"
    assert cached.is_file()
    assert str(cached) in caplog.text
    assert got["Set two"] == ["CCL2", "CXCL8"]  # weights dropped, duplicates once
    assert "Fake_Library_2024" in op.genesets.available(cache_dir=tmp_path)

    # a second load reads the cache: no fetch, no download flag needed
    monkeypatch.setattr(coll_mod, "_fetch_enrichr", lambda n: pytest.fail("fetched again"))
    again = op.genesets.load("Fake_Library_2024", cache_dir=tmp_path)
    assert dict(again) == dict(got)
    assert again.name == "Fake_Library_2024"


def test_download_failure_is_an_olinkpipe_error(monkeypatch, tmp_path):
    def broken(name):
        raise OSError("connection refused")

    monkeypatch.setattr(coll_mod, "_fetch_enrichr", broken)
    with pytest.raises(OlinkpipeError, match="could not download"):
        op.genesets.load("Some_Library", download=True, cache_dir=tmp_path)
    assert not (tmp_path / "Some_Library.gmt").exists()


def test_read_gmt_msigdb_and_enrichr(tmp_path):
    gmt = tmp_path / "h.all.v2023.symbols.gmt"
    gmt.write_text(
        "HALLMARK_IL6_JAK_STAT3_SIGNALING\thttp://www.gsea-msigdb.org/x\tIL6\tSTAT3\tIL6ST\n"
        "\n"
        "HALLMARK_TNFA\thttp://x\tTNF\tNFKB1\tTNF\n"
    )
    gs = op.genesets.read_gmt(gmt)
    assert gs.name == "h.all.v2023.symbols"
    assert gs["HALLMARK_IL6_JAK_STAT3_SIGNALING"] == ["IL6", "STAT3", "IL6ST"]
    assert gs["HALLMARK_TNFA"] == ["TNF", "NFKB1"]
    enr = tmp_path / "Enrichr_lib.txt"
    enr.write_text("Term A\t\tIL6,1.0\tIL10,0.3\t\t\n")
    assert op.genesets.read_gmt(enr)["Term A"] == ["IL6", "IL10"]
    # load() also takes a path
    assert op.genesets.load(str(gmt))["HALLMARK_TNFA"] == ["TNF", "NFKB1"]


def test_read_gmt_errors(tmp_path):
    with pytest.raises(ValidationError, match="not found"):
        op.genesets.read_gmt(tmp_path / "missing.gmt")
    bad = tmp_path / "bad.gmt"
    bad.write_text("just one column\nanother\n")
    with pytest.raises(ValidationError, match="line 1"):
        op.genesets.read_gmt(bad)
    partly = tmp_path / "partly.gmt"
    partly.write_text("A\t\tIL6\tTNF\nbroken line\n")
    with pytest.warns(op.OlinkpipeWarning, match="skipped 1 malformed"):
        assert list(op.genesets.read_gmt(partly)) == ["A"]


def test_dict_and_dataframe_collections():
    d = as_collection({"A": ["IL6", "TNF", "IL6"], "B": "CCL2;CXCL8"})
    assert d["A"] == ["IL6", "TNF"] and d["B"] == ["CCL2", "CXCL8"]
    assert d.name == "custom"
    frame = pd.DataFrame({"term": ["A", "A", "B"], "gene": ["IL6", "TNF", "CCL2"]})
    assert dict(as_collection(frame)) == {"A": ["IL6", "TNF"], "B": ["CCL2"]}
    two = pd.DataFrame({"pw": ["A", "B"], "sym": ["IL6", "CCL2"]})
    assert dict(as_collection(two)) == {"A": ["IL6"], "B": ["CCL2"]}
    with pytest.raises(MissingColumnError, match="two columns"):
        as_collection(pd.DataFrame({"a": [1], "b": [2], "c": [3]}))
    with pytest.raises(ValidationError, match="gene_sets must be"):
        as_collection(42)
