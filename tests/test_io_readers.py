"""The reader registry (olinkpipe.io._readers): read_npx dispatches through it."""

from __future__ import annotations

import pytest

import olinkpipe as op
from olinkpipe.errors import NPXFormatError, UnknownFormatError
from olinkpipe.io import _readers


def test_registry_lists_each_format_once_and_first_match_wins(tmp_path, monkeypatch):
    formats = [r.format for r in _readers.READERS]
    assert formats == ["parquet", "zip", "gzip", "long", "wide"]
    assert len(set(formats)) == len(formats)
    seen = []

    def fake(src, name, head, opts):
        seen.append((name, head.container, head.text.layout))
        return "read"

    # one edit adds a reader: a registered reader is asked in order, before the others
    extra = _readers.Reader("mine", lambda h: h.data.startswith(b"SampleID"), fake, "test")
    monkeypatch.setattr(_readers, "READERS", (extra, *_readers.READERS))
    path = tmp_path / "x.csv"
    path.write_text("SampleID;OlinkID;NPX\nS1;OID1;1.0\n")
    assert _readers.read_any(path, "x.csv", _readers.Head(path.read_bytes()), {}) == "read"
    assert seen == [("x.csv", "text", "long")]


def test_refused_and_unknown_files_name_the_problem(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"\n \n")
    with pytest.raises(NPXFormatError, match="the file is empty"):
        op.read_npx(empty)
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(NPXFormatError, match="legacy .xls"):
        op.read_npx(xls)
    other = tmp_path / "o.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(UnknownFormatError, match="unknown format"):
        op.read_npx(other)
