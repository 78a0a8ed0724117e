"""Docs that run: regenerate (or `--check`) every output block in README.md and docs/*.md.

    python docs/regen.py            # rebuild the sample index, run the examples, rewrite the output blocks
    python docs/regen.py --check    # the same, but only report stale blocks (exit 1); tests/test_docs.py runs it

A fenced code block preceded by ``<!-- docs: run NAME -->`` is an example: a ``python`` block runs as
a script, a ``bash`` block is run line by line (a ``hippograph ...`` line through the CLI, a
``curl ... localhost:8000/...`` line as the same HTTP request to a real ``hippograph serve``). They run
in a scratch directory holding ``my-index``: the bundled sample corpus (data/corpus) indexed with the
default configuration, exactly as the docs tell readers to build it. The block after
``<!-- docs: output NAME -->`` is what the example printed (JSON answers abbreviated: passage texts cut
to 60 characters, timings masked). So a change that alters results either updates the docs (run this
script and commit) or fails the test.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- docs: (run|output) ([\w.-]+) -->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
TEXT_CHARS = 60
VOLATILE = re.compile(r'("took_ms": )[0-9.]+')
"""Values that differ run to run; masked on both sides when checking."""
NUMBER = re.compile(r"-?\d+\.\d+")
TOLERANCE = 0.0025
"""Decimals may differ by this much between a check and the docs: MiniLM runs bfloat16 on CPUs with
native bf16 and float32 elsewhere (cosine agreement ≥ 0.9999), and bf16 kernels differ between CPUs
(Intel AMX vs AMD AVX512-BF16 moved a score by 0.0015, shown as 0.668 vs 0.670 at three decimals)."""
CHECKOUT = "/path/to/hippograph"
"""Shown in place of this checkout's absolute path (document sources are absolute paths)."""


# ---- markdown ----------------------------------------------------------------------------------
def blocks(text: str) -> list[dict]:
    """Marked fenced blocks of a page: kind (run/output), name, language, and line range of the body."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if m:
            j = i + 1
            fence = FENCE.match(lines[j]) if j < len(lines) else None
            if not fence:
                raise SystemExit(f"docs marker without a code block after it: {lines[i]}")
            end = j + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            out.append({"kind": m.group(1), "name": m.group(2), "lang": fence.group(1),
                        "start": j + 1, "end": end, "body": "\n".join(lines[j + 1:end])})
            i = end
        i += 1
    return out


def unmarked_output(text: str) -> list[str]:
    """Lines of unmarked code blocks that look like printed output (a ``# {...}`` JSON comment)."""
    bad, marked_next, in_block, marked = [], False, False, False
    for line in text.split("\n"):
        if not in_block and MARKER.match(line):
            marked_next = True
            continue
        if FENCE.match(line) and not in_block:
            in_block, marked, marked_next = True, marked_next, False
            continue
        if line.strip() == "```" and in_block:
            in_block = False
            continue
        if in_block and not marked and re.search(r"(^|\s)#\s*[{\[]", line):
            bad.append(line.strip())
    return bad


# ---- running examples --------------------------------------------------------------------------
class Sandbox:
    """A scratch directory with `my-index`, and (on first use) a `hippograph serve` on a free port."""

    def __init__(self, workdir: Path, index: Path | None):
        self.dir = workdir
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        target = self.dir / "my-index"
        if index is None:
            self._cli("index", str(ROOT / "data" / "corpus"), "--index", str(target), "--quiet")
        else:
            target.symlink_to(Path(index).resolve())
        self.server: subprocess.Popen | None = None
        self.port = 0

    def _cli(self, *args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "hippograph.cli", *args], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"hippograph {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def python(self, code: str) -> str:
        proc = subprocess.run([sys.executable, "-c", code], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"docs example failed:\n{code}\n{proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def bash(self, code: str) -> str:
        out = []
        for command in code.replace("\\\n", " ").split("\n"):
            command = command.split("  #")[0].strip()
            if not command or command.startswith("#"):
                continue
            argv = shlex.split(command)
            if argv[0] == "hippograph":
                out.append(self._cli(*argv[1:]))
            elif argv[0] == "curl":
                out.append(self.http(argv))
            else:
                raise SystemExit(f"docs: cannot run {command!r} (only hippograph and curl lines)")
        return "".join(out)

    def http(self, argv: list[str]) -> str:
        url = next(a for a in argv if "localhost:8000" in a)
        body = argv[argv.index("-d") + 1].encode() if "-d" in argv else None
        method = argv[argv.index("-X") + 1] if "-X" in argv else ("POST" if body else "GET")
        req = urllib.request.Request(f"http://127.0.0.1:{self.serve()}{url.split('localhost:8000', 1)[1]}",
                                     data=body, method=method, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.read().decode() + "\n"

    def serve(self) -> int:
        if self.server is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self.server = subprocess.Popen(
                [sys.executable, "-m", "hippograph.cli", "serve", "my-index", "--port", str(self.port)],
                cwd=self.dir, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5).read()
                    break
                except OSError:
                    if self.server.poll() is not None:
                        raise SystemExit(f"hippograph serve failed: {self.server.stderr.read().decode()[-2000:]}")
                    time.sleep(0.5)
            else:
                raise SystemExit("hippograph serve did not answer /health within 300 s")
        return self.port

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=60)


def abbreviate(output: str) -> str:
    """JSON lines shown readably: one key per line, one hit per line, passage texts cut short,
    floats to 4 decimals, this checkout's path as `CHECKOUT`."""
    lines = []
    for line in output.replace(str(ROOT), CHECKOUT).strip().split("\n"):
        try:
            data = json.loads(line)
        except ValueError:
            lines.append(line.rstrip())
            continue
        lines.append(_render(data))
    return "\n".join(lines)


def _short(value):
    if isinstance(value, dict):
        return {k: (v[:TEXT_CHARS] + "…" if k == "text" and isinstance(v, str) and len(v) > TEXT_CHARS else _short(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    if isinstance(value, float):
        return round(value, 4)
    return value


def _render(data) -> str:
    data = _short(data)
    if not isinstance(data, dict):
        return json.dumps(data, ensure_ascii=False)
    parts = []
    for k, v in data.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            items = ",\n".join(f"    {json.dumps(x, ensure_ascii=False)}" for x in v)
            parts.append(f'  "{k}": [\n{items}\n  ]')
        else:
            parts.append(f'  "{k}": {json.dumps(v, ensure_ascii=False)}')
    return "{\n" + ",\n".join(parts) + "\n}"


# ---- regenerate / check ------------------------------------------------------------------------
def same(old: str, new: str) -> bool:
    """Equal up to volatile values and decimals within `TOLERANCE`."""
    old, new = VOLATILE.sub(r"\1…", old), VOLATILE.sub(r"\1…", new)
    if NUMBER.split(old) != NUMBER.split(new):
        return False
    a, b = NUMBER.findall(old), NUMBER.findall(new)
    return len(a) == len(b) and all(abs(float(x) - float(y)) <= TOLERANCE for x, y in zip(a, b))


def regenerate(sandbox: Sandbox, page: Path) -> tuple[str, str]:
    """(current text, regenerated text) of one page."""
    text = page.read_text(encoding="utf-8")
    found = blocks(text)
    outputs: dict[str, str] = {}
    for b in found:
        if b["kind"] == "run":
            runner = {"python": sandbox.python, "bash": sandbox.bash}.get(b["lang"])
            if runner is None:
                raise SystemExit(f"{page.name}: cannot run a {b['lang'] or 'plain'} block ({b['name']})")
            outputs[b["name"]] = abbreviate(runner(b["body"]))
    lines = text.split("\n")
    for b in reversed([b for b in found if b["kind"] == "output"]):
        if b["name"] not in outputs:
            raise SystemExit(f"{page.name}: output block {b['name']!r} has no run block before it")
        lines[b["start"]:b["end"]] = outputs[b["name"]].split("\n")
    return text, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="report stale output blocks instead of rewriting them")
    ap.add_argument("--index", metavar="DIR", help="use this sample index instead of building one")
    args = ap.parse_args(argv)
    stale = []
    for page in PAGES:
        bad = unmarked_output(page.read_text(encoding="utf-8"))
        if bad:
            stale.append(f"{page.relative_to(ROOT)}: output shown outside a generated block: {bad[0]}")
    with tempfile.TemporaryDirectory(prefix="hippograph-docs-") as tmp:
        sandbox = Sandbox(Path(tmp), Path(args.index) if args.index else None)
        try:
            for page in PAGES:
                if "<!-- docs: run" not in page.read_text(encoding="utf-8"):
                    continue
                old, new = regenerate(sandbox, page)
                if same(old, new):
                    continue
                if args.check:
                    diff = difflib.unified_diff(old.split("\n"), new.split("\n"), str(page.relative_to(ROOT)),
                                                "regenerated", lineterm="", n=1)
                    stale.append("\n".join(diff))
                else:
                    page.write_text(new, encoding="utf-8")
                    print(f"updated {page.relative_to(ROOT)}")
        finally:
            sandbox.close()
    if stale:
        print("stale docs (run `python docs/regen.py` and commit):\n" + "\n".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
