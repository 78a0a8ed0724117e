"""reStructuredText (.rst, .rst.txt) and gzip-compressed files in indexers/loaders.py."""
from __future__ import annotations

import gzip
import logging
from pathlib import Path

from hippograph.config import Config
from hippograph.indexers.loaders import load_documents, rst_to_text

RST = """\
.. SPDX-License-Identifier: GPL-2.0

.. _cgroup-v2:

================
Control Group v2
================

:Author: Tejun Heo <tj@kernel.org>

.. contents:: Table of contents
   :depth: 2

This is the **authoritative** documentation of *cgroup v2*; see
:ref:`the v1 notes <cgroup-v1>` and :c:func:`css_get`, ``cgroup.procs`` and `LWN`_.

.. _LWN: https://lwn.net/

Mounting
--------

Mount it with::

    # mount -t cgroup2 none $MOUNT_POINT

.. note::
   Controllers are bound at mount time.

.. toctree::
   :maxdepth: 1

   cgroup-v1/index

.. code-block:: c

   int css_get(struct cgroup_subsys_state *css);

- first item
- second item [#f1]_

.. [#f1] A footnote that stays.

.. image:: diagram.svg
.. kernel-doc:: kernel/cgroup/cgroup.c
   :export:

===========  ========
Option       Meaning
===========  ========
nsdelegate   treat namespaces as delegation boundaries
===========  ========
"""


def test_rst_markup_is_stripped_and_title_is_the_first_heading():
    title, text = rst_to_text(RST)
    assert title == "Control Group v2"
    assert "Author: Tejun Heo" in text
    assert "This is the authoritative documentation of cgroup v2; see" in text
    assert "the v1 notes and css_get, cgroup.procs and LWN." in text
    assert "Mount it with:" in text and "# mount -t cgroup2 none $MOUNT_POINT" in text  # literal block kept
    assert "Controllers are bound at mount time." in text  # admonition body kept
    assert "int css_get(struct cgroup_subsys_state *css);" in text  # code-block body kept verbatim
    assert "first item" in text and "A footnote that stays." in text
    assert "nsdelegate   treat namespaces" in text  # simple table rows kept, borders dropped
    for markup in ("SPDX", "_cgroup-v2", "====", "----", ":ref:", "``", "**", "toctree", "maxdepth",
                   "cgroup-v1/index", "diagram.svg", "kernel-doc", "kernel/cgroup", "Table of contents",
                   "lwn.net", "[#f1]", ".. "):
        assert markup not in text, markup


def test_rst_without_heading_has_no_title():
    title, text = rst_to_text("Just a paragraph with a :kbd:`Ctrl` key.\n")
    assert title == "" and text == "Just a paragraph with a Ctrl key."


def test_rst_and_sphinx_source_copies_load_as_rst(tmp_path: Path):
    (tmp_path / "guide.rst").write_text(RST, encoding="utf-8")
    (tmp_path / "_sources").mkdir()
    (tmp_path / "_sources" / "vm.rst.txt").write_text("Virtual memory\n==============\n\nSee :doc:`sysctl`.\n")
    docs, report = load_documents(tmp_path)
    by_id = {d.id: d for d in docs}
    assert by_id["guide.rst"].title == "Control Group v2"
    assert by_id["_sources/vm.rst.txt"].title == "Virtual memory"
    assert by_id["_sources/vm.rst.txt"].text == "Virtual memory\n\nSee sysctl."


def test_gzip_files_are_decompressed_and_read_by_their_inner_suffix(tmp_path: Path):
    (tmp_path / "guide.rst.gz").write_bytes(gzip.compress(RST.encode("utf-8")))
    (tmp_path / "notes.md.gz").write_bytes(gzip.compress(b"# Notes\n\nSome **bold** text.\n"))
    (tmp_path / "plain.txt.gz").write_bytes(gzip.compress(b"Plain words here.\n"))
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress(b'{"id": "r1", "text": "row one"}\n{"id": "r2", "text": "row two"}\n'))
    (tmp_path / "archive.tar.gz").write_bytes(gzip.compress(b"not a document"))  # unknown inner format
    docs, report = load_documents(tmp_path)
    by_id = {d.id: d for d in docs}
    assert set(by_id) == {"guide.rst.gz", "notes.md.gz", "plain.txt.gz", "r1", "r2"}
    assert by_id["guide.rst.gz"].title == "Control Group v2"
    assert by_id["notes.md.gz"].title == "Notes" and by_id["notes.md.gz"].text == "Notes\n\nSome bold text."
    assert by_id["plain.txt.gz"].title == "plain" and by_id["plain.txt.gz"].text.strip() == "Plain words here."
    assert by_id["r2"].text == "row two"
    assert any(p.endswith("archive.tar.gz") for p in report.ignored)


def test_gzip_bomb_and_corrupt_gzip_are_skipped_with_a_warning(tmp_path: Path, caplog):
    (tmp_path / "bomb.txt.gz").write_bytes(gzip.compress(b"a" * 100_000))  # 100 KB out of ~100 bytes
    (tmp_path / "broken.md.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (tmp_path / "ok.txt").write_text("fine\n")
    with caplog.at_level(logging.WARNING):
        docs, report = load_documents(tmp_path, Config(max_file_bytes=10_000))
    assert [d.id for d in docs] == ["ok.txt"]
    reasons = dict(report.skipped)
    assert "max_file_bytes=10000" in reasons[str(tmp_path / "bomb.txt.gz")]
    assert "corrupt gzip" in reasons[str(tmp_path / "broken.md.gz")]
    assert "bomb.txt.gz" in caplog.text and "broken.md.gz" in caplog.text
