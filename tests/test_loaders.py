"""Loaders: every format, folder walking rules, and bad input that must warn, not crash."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from hippograph.config import Config
from hippograph.errors import SourceError
from hippograph.indexers.loaders import (
    LoadReport,
    html_to_text,
    iter_documents,
    load_documents,
    markdown_to_text,
)
from hippograph.types import Document, content_hash

MUSIQUE_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "musique_train100"
if not MUSIQUE_DIR.is_dir():
    MUSIQUE_DIR = Path("/work/shared/datasets/musique_train100")

LOGGER = "hippograph.indexers.loaders"


def by_id(docs: list[Document]) -> dict[str, Document]:
    return {d.id: d for d in docs}


@pytest.fixture
def no_hang():
    """Fail (instead of hanging forever) if a folder walk loops."""
    def _timeout(signum, frame):  # pragma: no cover - only on failure
        raise TimeoutError("folder walk did not finish: symlink loop?")

    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def minimal_pdf(text: str, title: str | None = None) -> bytes:
    """A valid one-page PDF with `text` in Helvetica (xref offsets computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title:
        objects.append(f"<< /Title ({title}) >>".encode("latin-1"))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    info = f" /Info {len(objects)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# ---------------------------------------------------------------------------- formats


def test_txt_file_and_folder_ids(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("Alpha text.\r\nSecond line.", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("Beta text.", encoding="utf-8")

    docs, report = load_documents(tmp_path)
    assert [d.id for d in docs] == ["a.txt", "sub/b.txt"]
    a = docs[0]
    assert a.title == "a"
    assert a.text == "Alpha text.\nSecond line."  # newlines normalised
    assert a.source == os.path.abspath(tmp_path / "a.txt")
    assert report.files_read == 2 and report.documents == 2 and report.skipped == []

    single = list(iter_documents(str(tmp_path / "sub" / "b.txt")))
    assert [d.id for d in single] == ["b.txt"]  # a single file: its name


def test_markdown_markup_is_stripped(tmp_path: Path) -> None:
    md = (
        "Intro line before the heading.\n\n"
        "# The *Real* Title\n\n"
        "Some **bold**, _italic_ and ~~struck~~ words, a [link text](https://example.com/x_(y)) "
        "and an ![alt words](img.png) image. Keep snake_case_name and 2*3*4.\n\n"
        "## Section\n\n"
        "- item one\n"
        "1. item two\n"
        "> quoted words\n\n"
        "```python\n# not a heading\nx = [1](2)\n```\n\n"
        "Inline `code*here*` and <span class=\"k\">html</span> &amp; \\*escaped\\*.\n"
        "[ref]: https://example.com\n"
    )
    (tmp_path / "note.md").write_text(md, encoding="utf-8")
    (doc,) = list(iter_documents(tmp_path / "note.md"))
    assert doc.title == "The Real Title"
    text = doc.text
    for gone in ("**", "~~", "text](", "![", "https://", "<span", "</span>", "```", "&amp;", "## ", "> ", "- item", "[ref]"):
        assert gone not in text, gone
    for kept in (
        "Intro line before the heading.", "The Real Title", "Some bold, italic and struck words",
        "a link text and an alt words image", "snake_case_name and 2*3*4", "Section", "item one",
        "item two", "quoted words", "# not a heading", "x = [1](2)", "Inline code*here* and html & *escaped*.",
    ):
        assert kept in text, kept


def test_markdown_without_heading_uses_stem_and_setext_title() -> None:
    title, body, _ = markdown_to_text("Big Title\n=========\n\nBody text here.")
    assert title == "Big Title" and body == "Big Title\n\nBody text here."
    title, body, meta = markdown_to_text("---\ntitle: From Front Matter\nauthor: Ann\n---\nBody.")
    assert title == "From Front Matter" and body == "Body." and meta == {"author": "Ann"}


def test_markdown_file_without_h1_gets_file_stem(tmp_path: Path) -> None:
    (tmp_path / "my-notes.md").write_text("## Only a subheading\n\nText.", encoding="utf-8")
    (doc,) = list(iter_documents(tmp_path))
    assert doc.title == "my-notes"
    assert doc.text == "Only a subheading\n\nText."


def test_html_visible_text_only(tmp_path: Path) -> None:
    page = """<!DOCTYPE html><html><head><title> Page  Title </title>
    <style>body { color: red }</style><script>var secret = 1;</script><meta name="x" content="meta words"></head>
    <body><nav><a href="/">Home menu</a></nav>
    <h1>Main heading</h1><p>First <b>bold</b> paragraph.<br>After break.</p>
    <!-- a comment --><div hidden>hidden words</div>
    <ul><li>one</li><li>two</li></ul><script>alert("x")</script><noscript>enable js</noscript>
    <p>Last paragraph &amp; entity.</p></body></html>"""
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    (doc,) = list(iter_documents(tmp_path))
    assert doc.title == "Page Title"
    for gone in ("color", "secret", "alert", "Home menu", "a comment", "hidden words", "enable js", "meta words", "<"):
        assert gone not in doc.text, gone
    assert "Main heading\n\nFirst bold paragraph.\nAfter break." in doc.text
    assert "one" in doc.text and "two" in doc.text
    assert doc.text.endswith("Last paragraph & entity.")


def test_html_without_title_uses_stem() -> None:
    title, text = html_to_text("<p>Just text</p>")
    assert title == "" and text == "Just text"


def test_json_array_and_object_forms(tmp_path: Path) -> None:
    records = [{"title": "T0", "text": "Zero."}, {"title": "T1", "text": "One.", "year": 1999}]
    (tmp_path / "arr.json").write_text(json.dumps(records), encoding="utf-8")
    (tmp_path / "obj.json").write_text(
        json.dumps({"version": 2, "docs": [{"id": 7, "name": "Named", "content": "Seven."}]}), encoding="utf-8"
    )
    docs = by_id(list(iter_documents(tmp_path)))
    assert set(docs) == {"arr.json#0", "arr.json#1", "7"}
    one = docs["arr.json#1"]
    assert (one.title, one.text, one.metadata) == ("T1", "One.", {"year": 1999})
    assert one.source == os.path.abspath(tmp_path / "arr.json") + "#1"
    seven = docs["7"]
    assert (seven.title, seven.text) == ("Named", "Seven.")  # title_fields / text_fields / id_fields


def test_jsonl_beir_corpus(tmp_path: Path) -> None:
    lines = [
        {"_id": "d1", "title": "Paper one", "text": "Abstract one.", "metadata": {"year": 2020}},
        {"_id": "d2", "title": "Paper two", "text": "Abstract two.", "venue": "X"},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    docs = list(iter_documents(tmp_path / "corpus.jsonl"))
    assert [d.id for d in docs] == ["d1", "d2"]
    assert docs[0].metadata == {"year": 2020}
    assert docs[1].metadata == {"venue": "X"}
    assert docs[1].source.endswith("corpus.jsonl#1")


def test_config_field_names_are_used(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text(json.dumps({"key": "k1", "head": "H", "body_text": "B."}) + "\n")
    config = Config(text_fields=["body_text"], title_fields=["head"], id_fields=["key"])
    (doc,) = list(iter_documents(tmp_path, config))
    assert (doc.id, doc.title, doc.text) == ("k1", "H", "B.")


def test_pdf_with_pypdf(tmp_path: Path) -> None:
    pytest.importorskip("pypdf", reason="pypdf is the optional 'pdf' extra")
    (tmp_path / "paper.pdf").write_bytes(minimal_pdf("Hello from a PDF page", title="PDF Title"))
    (doc,) = list(iter_documents(tmp_path))
    assert doc.id == "paper.pdf"
    assert doc.title == "PDF Title"
    assert "Hello from a PDF page" in doc.text


def test_pdf_without_pypdf_warns_to_install_extra(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # import pypdf → ImportError
    (tmp_path / "paper.pdf").write_bytes(minimal_pdf("Hello"))
    (tmp_path / "a.txt").write_text("still read")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(tmp_path)
    assert [d.id for d in docs] == ["a.txt"]
    assert "hippograph[pdf]" in caplog.text and "paper.pdf" in caplog.text
    assert report.skipped and report.skipped[0][0].endswith("paper.pdf")


def test_unknown_suffix_ignored_in_folder_but_read_when_named(tmp_path: Path) -> None:
    (tmp_path / "notes.adoc").write_text("AsciiDoc text.")
    (tmp_path / "a.txt").write_text("Plain.")
    docs, report = load_documents(tmp_path)
    assert [d.id for d in docs] == ["a.txt"]
    assert report.ignored == [str(tmp_path / "notes.adoc")]
    (doc,) = list(iter_documents(tmp_path / "notes.adoc"))
    assert doc.text == "AsciiDoc text." and doc.id == "notes.adoc"


# ---------------------------------------------------------------------------- folder walking


def test_include_exclude_globs(tmp_path: Path) -> None:
    for rel in ["a.md", "b.txt", "docs/c.md", "docs/drafts/d.md", "docs/e.txt", "build/f.md"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"text of {rel}")
    ids = lambda cfg: [d.id for d in iter_documents(tmp_path, cfg)]  # noqa: E731
    assert ids(Config()) == ["a.md", "b.txt", "build/f.md", "docs/c.md", "docs/drafts/d.md", "docs/e.txt"]
    assert ids(Config(include=["*.md"])) == ["a.md", "build/f.md", "docs/c.md", "docs/drafts/d.md"]
    assert ids(Config(include=["docs/**"])) == ["docs/c.md", "docs/drafts/d.md", "docs/e.txt"]
    assert ids(Config(include=["docs/*.md"])) == ["docs/c.md"]
    assert ids(Config(include=["**/*.md"], exclude=["**/drafts/**", "build"])) == ["a.md", "docs/c.md"]
    assert ids(Config(exclude=["*.txt", "docs/drafts"])) == ["a.md", "build/f.md", "docs/c.md"]


def test_hidden_files_and_folders_skipped(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("git stuff")
    (tmp_path / ".hidden.txt").write_text("secret")
    (tmp_path / "visible.txt").write_text("shown")
    assert [d.id for d in iter_documents(tmp_path)] == ["visible.txt"]


def test_symlinks_outside_root_and_loops(tmp_path: Path, no_hang) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the root")
    (root / "sub" / "inner.txt").write_text("inner text")
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "leakdir").symlink_to(outside, target_is_directory=True)
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)  # cycle back to the root
    (root / "self").symlink_to(root / "self")  # a self-referencing loop
    (root / "alias.txt").symlink_to(root / "sub" / "inner.txt")  # inside the root: allowed

    docs, report = load_documents(root)
    texts = [d.text for d in docs]
    assert "outside the root" not in texts
    assert texts.count("inner text") == 1  # the same file is read once
    assert [d.id for d in docs] == ["alias.txt"]
    reasons = dict(report.skipped)
    assert "outside the source folder" in reasons[str(root / "leak.txt")]
    assert "outside the source folder" in reasons[str(root / "leakdir")]
    assert "looping" in reasons[str(root / "self")]


def test_order_is_deterministic(tmp_path: Path) -> None:
    for name in ["b.txt", "a.txt", "c/z.txt", "c/a.txt", "B.txt"]:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(name)
    first = [d.id for d in iter_documents(tmp_path)]
    assert first == ["B.txt", "a.txt", "b.txt", "c/a.txt", "c/z.txt"]
    assert first == [d.id for d in iter_documents(tmp_path)]


# ---------------------------------------------------------------------------- bad input


def test_empty_and_whitespace_files_warn(tmp_path: Path, caplog) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.md").write_text("  \n\t\n")
    (tmp_path / "ok.txt").write_text("fine")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(tmp_path)
    assert [d.id for d in docs] == ["ok.txt"]
    skipped = dict(report.skipped)
    assert "empty" in skipped[str(tmp_path / "empty.txt")]
    assert "empty" in skipped[str(tmp_path / "blank.md")]
    assert "empty.txt" in caplog.text and "blank.md" in caplog.text


def test_binary_file_skipped_with_warning(tmp_path: Path, caplog) -> None:
    (tmp_path / "blob.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (tmp_path / "ok.txt").write_text("fine")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(tmp_path)
    assert [d.id for d in docs] == ["ok.txt"]
    assert "blob.txt" in caplog.text and "binary" in caplog.text
    assert report.skipped[0][0] == str(tmp_path / "blob.txt")


def test_latin1_and_bom_files_decoded(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("Un café à Paris, naïve señor.".encode("latin-1"))
    (tmp_path / "bom.txt").write_bytes("\ufeffBOM café".encode("utf-8"))
    (tmp_path / "utf16.txt").write_bytes("wide café".encode("utf-16"))
    docs = by_id(list(iter_documents(tmp_path)))
    assert docs["latin.txt"].text == "Un café à Paris, naïve señor."
    assert docs["bom.txt"].text == "BOM café"
    assert docs["utf16.txt"].text == "wide café"


def test_undecodable_without_fallbacks_is_skipped(tmp_path: Path, caplog) -> None:
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(tmp_path, Config(fallback_encodings=[]))
    assert docs == []
    assert "latin.txt" in caplog.text and "undecodable" in report.skipped[0][1]


def test_malformed_json_warns_and_continues(tmp_path: Path, caplog) -> None:
    (tmp_path / "bad.json").write_text('[{"title": "x", "text": "y"},\n {"title": oops}]')
    (tmp_path / "good.json").write_text(json.dumps([{"text": "good"}]))
    (tmp_path / "nolist.json").write_text(json.dumps({"answer": 42}))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(tmp_path)
    assert [d.id for d in docs] == ["good.json#0"]
    skipped = dict(report.skipped)
    assert "malformed JSON at line 2" in skipped[str(tmp_path / "bad.json")]
    assert "no list of records" in skipped[str(tmp_path / "nolist.json")]
    assert "bad.json" in caplog.text


def test_jsonl_bad_line_skipped_good_lines_kept(tmp_path: Path, caplog) -> None:
    lines = [
        json.dumps({"_id": "1", "text": "one"}),
        '{"_id": "2", "text": ',  # truncated
        "",
        json.dumps(["not", "an", "object"]),
        json.dumps({"_id": "5", "title": "no text"}),
        json.dumps({"_id": "6", "text": "   "}),
        json.dumps({"text": "seven"}),
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(tmp_path)
    assert [d.id for d in docs] == ["1", "c.jsonl#6"]  # no id → 0-based line number
    where = [w for w, _ in report.skipped]
    assert where == [f"{tmp_path / 'c.jsonl'} (line {n})" for n in (2, 4, 5, 6)]
    assert "c.jsonl (line 2): skipped: malformed JSON" in caplog.text
    assert "not an object" in dict(report.skipped)[where[1]]
    assert "no text field" in dict(report.skipped)[where[2]]


def test_json_record_problems_are_named_by_index(tmp_path: Path, caplog) -> None:
    (tmp_path / "r.json").write_text(json.dumps([{"text": "ok"}, 5, {"title": "only title"}]))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(tmp_path)
    assert [d.id for d in docs] == ["r.json#0"]
    assert [w for w, _ in report.skipped] == [f"{tmp_path / 'r.json'} (record 1)", f"{tmp_path / 'r.json'} (record 2)"]
    assert "r.json (record 1)" in caplog.text


def test_oversized_file_skipped(tmp_path: Path, caplog) -> None:
    (tmp_path / "big.txt").write_text("word " * 100)
    (tmp_path / "small.txt").write_text("tiny")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(tmp_path, Config(max_file_bytes=100))
    assert [d.id for d in docs] == ["small.txt"]
    assert "max_file_bytes" in dict(report.skipped)[str(tmp_path / "big.txt")]


def test_empty_folder_yields_nothing(tmp_path: Path) -> None:
    docs, report = load_documents(tmp_path)
    assert docs == [] and report == LoadReport()


def test_missing_path_raises_source_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SourceError, match=f"{missing}: no such file or directory"):
        list(iter_documents(missing))
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(SourceError, match="nope"):  # checked before anything is read
        load_documents([tmp_path / "a.txt", str(missing)])


# ---------------------------------------------------------------------------- dicts


def test_dict_sources_and_mixed_iterables(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("From a file.")
    items = [
        {"id": 42, "title": "Answer", "text": "Forty two.", "metadata": {"lang": "en"}, "source": "db://42", "extra": 1},
        {"title": "Anon", "text": "No id here."},
        tmp_path / "f.txt",
        Document(id="given", title="G", text="Given doc.", source="mem"),
    ]
    docs = list(iter_documents(items))
    assert [d.id for d in docs] == ["42", content_hash("Anon", "No id here."), "f.txt", "given"]
    first = docs[0]
    assert (first.title, first.source, first.metadata) == ("Answer", "db://42", {"lang": "en", "extra": 1})
    assert docs[1].source == docs[1].id  # no source given → the id


def test_bad_dicts_and_duplicate_ids(caplog) -> None:
    items = [{"id": "a", "text": "x"}, {"id": "a", "text": "again"}, {"title": "no text"}, {"text": "  "}]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        docs, report = load_documents(items)
    assert [d.text for d in docs] == ["x"]
    reasons = [r for _, r in report.skipped]
    assert any("duplicate document id 'a'" in r for r in reasons)
    assert any("no string 'text'" in r for r in reasons)
    assert any("empty" in r for r in reasons)
    with pytest.raises(TypeError, match="unsupported source #0"):
        list(iter_documents([3.14]))


# ---------------------------------------------------------------------------- real data


def test_real_musique_corpus_file() -> None:
    corpus = MUSIQUE_DIR / "musique_train_corpus.json"
    if not corpus.is_file():
        pytest.skip(f"benchmark data not present at {corpus}")
    docs, report = load_documents(corpus)
    assert len(docs) == 1890 and report.skipped == []
    raw = json.loads(corpus.read_text(encoding="utf-8"))
    assert [d.id for d in docs[:3]] == ["musique_train_corpus.json#0", "musique_train_corpus.json#1", "musique_train_corpus.json#2"]
    assert all(d.title == r["title"] and d.text == r["text"] for d, r in zip(docs, raw))
