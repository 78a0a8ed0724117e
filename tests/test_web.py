"""The web page at / in a real browser (headless Debian Chromium via Selenium) against the real server.

Two `hippograph serve` subprocesses start in parallel once per module: one on the sample
index (no token) and one with a token on a tiny index whose passages hold HTML. The
browser tests skip, saying why, only where Chromium, chromedriver or selenium are absent;
the HTTP tests of GET /neighbourhood always run.
"""
from __future__ import annotations

import urllib.parse
import subprocess
import sys

import httpx
import pytest

from eval.web_screenshot import chromium_missing, start_chromium

from .conftest import ROOT
from .test_server import Q1, _start, _wait_ready

TOKEN = "web-t0ken"
HTML_TITLE = "<b>Bold</b> & <i>Co</i>"
HTML_TEXT = (
    "The harbour log of Tessel <script>window.__pwned = 1;</script> mentions the ferry Gull. "
    "<img src=x onerror=\"window.__pwned = 2\"> The ferry Gull sailed from Tessel to Orm in 1901."
)
WAIT = 45


# ---------------------------------------------------------------------------- fixtures
def _build_html_index(path):
    """A tiny index (zero-model embedder, real spaCy) with markup in a title and a passage."""
    from hippograph import Config, HippoGraph

    docs = [
        {"id": "log", "title": HTML_TITLE, "text": HTML_TEXT},
        {"id": "gull", "title": "Gull", "text": "Gull is a ferry. Gull was built in Orm by the Orm Yard in 1899."},
    ]
    HippoGraph.build(docs, path, Config(embedder="tfidf"))
    return path


@pytest.fixture(scope="module")
def servers(sample_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web-servers")
    plain = _start(sample_index, tmp / "plain.log")  # starts while the second index is built
    started = [plain]
    try:
        guarded = _start(_build_html_index(tmp / "html-index"), tmp / "guarded.log", env={"HIPPOGRAPH_TOKEN": TOKEN})
        started.append(guarded)
        _wait_ready(plain)
        _wait_ready(guarded)
        yield {"plain": plain, "guarded": guarded}
    finally:
        for s in started:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(10)


@pytest.fixture(scope="module")
def plain(servers):
    return servers["plain"]


@pytest.fixture(scope="module")
def guarded(servers):
    return servers["guarded"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = chromium_missing()
    if reason:
        pytest.skip(f"no headless Chromium for the web page tests: {reason}")
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def _by():
    from selenium.webdriver.common.by import By

    return By


def _wait(driver, condition, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _hits(driver) -> list:
    return driver.find_elements(_by().CSS_SELECTOR, "#hits > li.hit")


def _count(element, what: str) -> int:
    return int(element.get_attribute(f"data-{what}") or 0)


def _graph_ready(driver, hit):
    graph = hit.find_element(_by().CSS_SELECTOR, ".explain-graph")
    _wait(driver, lambda d: graph.get_attribute("data-ready") == "1")
    return graph


def _click_node(driver, container, selector: str) -> str:
    """Click (a real mouse click on the canvas) the first graph node matching a Cytoscape selector; its id."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", container)
    node_id, x, y = driver.execute_script(
        "const n = arguments[0].cy.$(arguments[1]).first(); const p = n.renderedPosition();"
        "return [n.id(), p.x, p.y];", container, selector)
    size = container.size
    ActionChains(driver).move_to_element_with_offset(container, int(x - size["width"] / 2),
                                                     int(y - size["height"] / 2)).click().perform()
    return node_id


def _csp_violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


# ---------------------------------------------------------------------------- GET /neighbourhood (HTTP)
def test_neighbourhood_of_an_entity_matches_the_index(plain, sample_index):
    from hippograph import HippoGraph

    r = httpx.get(plain.url + "/neighbourhood", params={"entity": "kessel shipworks", "limit": 500}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["centre"] == "entity:kessel shipworks" and body["nodes"][0]["id"] == body["centre"]
    assert not body["truncated"]
    nodes = {n["id"]: n for n in body["nodes"]}
    assert all(e["source"] in nodes and e["target"] in nodes for e in body["edges"])
    with HippoGraph.open(sample_index) as hg:
        conn = hg.snapshot.conn
        e = conn.execute("SELECT idx FROM entities WHERE name = ?", ("kessel shipworks",)).fetchone()[0]
        passages = {r[0] for r in conn.execute(
            "SELECT p.id FROM mentions m JOIN passages p ON p.idx = m.passage_idx WHERE m.entity_idx = ?", (e,))}
        facts = {(r[0], r[1], r[2]) for r in conn.execute(
            "SELECT es.name, f.predicate, eo.name FROM facts f JOIN entities es ON es.idx = f.subject_idx "
            "JOIN entities eo ON eo.idx = f.object_idx WHERE (f.subject_idx = ? OR f.object_idx = ?) "
            "AND f.subject_idx != f.object_idx", (e, e))}
    mentions = {nodes[x["target"]]["passage_id"] for x in body["edges"] if x["kind"] == "mention"}
    assert mentions == passages and len(passages) > 3
    got_facts = {(nodes[x["source"]]["name"], x["label"], nodes[x["target"]]["name"])
                 for x in body["edges"] if x["kind"] == "fact"}
    assert got_facts == facts and ("kessel shipworks", "founded by", "aldous brannock") in facts
    assert all(x["text"] == " ".join(f) for x, f in
               [(x, (nodes[x["source"]]["name"], x["label"], nodes[x["target"]]["name"]))
                for x in body["edges"] if x["kind"] == "fact"])


def test_neighbourhood_of_a_passage_and_the_cap(plain):
    hit = httpx.post(plain.url + "/retrieve", json={"query": Q1, "top_k": 1}, timeout=60).json()["hits"][0]
    body = httpx.get(plain.url + "/neighbourhood", params={"passage": hit["passage_id"]}, timeout=30).json()
    centre = body["nodes"][0]
    assert (centre["kind"], centre["passage_id"], centre["text"]) == ("passage", hit["passage_id"], hit["text"])
    kinds = {e["kind"] for e in body["edges"]}
    assert kinds == {"mention", "fact"}
    assert all(e["target"] == body["centre"] for e in body["edges"] if e["kind"] == "mention")
    capped = httpx.get(plain.url + "/neighbourhood", params={"entity": "kesselby", "limit": 3}, timeout=30).json()
    assert len(capped["nodes"]) == 4 and capped["truncated"] and capped["limit"] == 3
    assert len(capped["edges"]) <= 4 * 3


@pytest.mark.parametrize("params, status, message", [
    ({"entity": "no such entity"}, 404, "no entity named 'no such entity'"),
    ({"passage": "feedfeedfeed"}, 404, "no passage with id 'feedfeedfeed'"),
    ({}, 422, "give exactly one of"),
    ({"entity": "kesselby", "passage": "x"}, 422, "give exactly one of"),
    ({"entity": "kesselby", "limit": 0}, 422, "limit"),
    ({"entity": "kesselby", "limit": 10_000}, 422, "limit"),
])
def test_neighbourhood_bad_requests_are_clear_4xx(plain, params, status, message):
    r = httpx.get(plain.url + "/neighbourhood", params=params, timeout=30)
    assert r.status_code == status, r.text
    assert message in r.text


def test_neighbourhood_needs_the_token_and_page_assets_do_not(guarded):
    assert httpx.get(guarded.url + "/neighbourhood", params={"entity": "gull"}, timeout=30).status_code == 401
    ok = httpx.get(guarded.url + "/neighbourhood", params={"entity": "gull"},
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert ok.status_code == 200 and ok.json()["centre"] == "entity:gull"
    page = httpx.get(guarded.url + "/", timeout=30)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(guarded.url + "/ui/app.js", timeout=30).status_code == 200


def test_page_and_docs_load_nothing_from_elsewhere(plain):
    page = httpx.get(plain.url + "/", timeout=30).text
    docs = httpx.get(plain.url + "/docs", timeout=30).text
    for html in (page, docs):
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
    assert "/ui/vendor/swagger-ui/swagger-ui-bundle.js" in docs
    for asset in ("/ui/vendor/swagger-ui/swagger-ui-bundle.js", "/ui/vendor/swagger-ui/swagger-ui.css",
                  "/ui/vendor/cytoscape/cytoscape.min.js", "/ui/app.css", "/ui/favicon.svg"):
        assert httpx.get(plain.url + asset, timeout=30).status_code == 200, asset
    app_js = (ROOT / "hippograph" / "web" / "static" / "app.js").read_text(encoding="utf-8")
    assert "innerHTML" not in app_js and "insertAdjacentHTML" not in app_js and "document.write" not in app_js


def test_package_build_ships_the_page_and_vendored_files(tmp_path):
    """`build_py` lays out what a wheel holds: the pyproject package-data must bring the page along."""
    proc = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                           "--build-lib", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    web = tmp_path / "hippograph" / "web"
    for name in ("__init__.py", "index.html", "static/app.js", "static/app.css", "static/favicon.svg",
                 "static/vendor/README.md", "static/vendor/cytoscape/cytoscape.min.js", "static/vendor/cytoscape/LICENSE",
                 "static/vendor/swagger-ui/swagger-ui-bundle.js", "static/vendor/swagger-ui/swagger-ui.css",
                 "static/vendor/swagger-ui/LICENSE"):
        assert (web / name).is_file(), name


# ---------------------------------------------------------------------------- the page in Chromium
def test_query_shows_hits_scores_and_explanation_graph(browser, plain):
    By = _by()
    browser.get(plain.url + "/")
    _wait(browser, lambda d: "passages" in d.find_element(By.ID, "summary").text)
    stats = httpx.get(plain.url + "/stats", timeout=30).json()
    summary = browser.find_element(By.ID, "summary").text
    assert f"{stats['passages']} passages" in summary and stats["generation"] in summary and "tfidf" in summary

    browser.find_element(By.ID, "q").send_keys(Q1)
    browser.find_element(By.ID, "k").clear()
    browser.find_element(By.ID, "k").send_keys("5")
    browser.find_element(By.CSS_SELECTOR, "#query-form button[type=submit]").click()
    _wait(browser, lambda d: len(_hits(d)) == 5)
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.current_url).query)
    assert params == {"q": [Q1], "mode": ["hybrid"], "k": ["5"]}

    api = httpx.post(plain.url + "/retrieve", json={"query": Q1, "top_k": 5, "explain": True}, timeout=60).json()
    hits = _hits(browser)
    assert [h.get_attribute("data-passage-id") for h in hits] == [h["passage_id"] for h in api["hits"]]
    first, expected = hits[0], api["hits"][0]
    assert first.find_element(By.CSS_SELECTOR, ".title").text == expected["title"]
    assert first.find_element(By.CSS_SELECTOR, ".score").text == f"{expected['score']:.3f}"
    assert first.find_element(By.CSS_SELECTOR, ".source").text == expected["source"]
    assert first.find_element(By.CSS_SELECTOR, ".span").text == f"span [{expected['span'][0]}, {expected['span'][1]})"
    parts = {row.find_element(By.TAG_NAME, "th").text: row.find_element(By.CSS_SELECTOR, ".num").text
             for row in first.find_elements(By.CSS_SELECTOR, "table.parts tr")}
    scores = expected["explanation"]["scores"]
    assert parts == {"dense": f"{scores['dense']:.4f}", "BM25": f"{scores['bm25']:.4f}",
                     "PPR": f"{scores['ppr']:.4f}", "routed": f"{scores['routed']:.4f}"}

    graph = _graph_ready(browser, first)  # the first explanation opens by itself
    assert _count(graph, "seeds") >= 1 and _count(graph, "passages") >= 1
    ids = set(browser.execute_script("return arguments[0].cy.nodes().map(n => n.id())", graph))
    seeds = [s["entity"] for s in expected["explanation"]["seeds"]]
    assert {"query", f"passage:{expected['passage_id']}", f"entity:{seeds[0]}"} <= ids
    assert expected["explanation"]["bridge"]["role"] == "first hop"
    assert "first hop" in first.find_element(By.CSS_SELECTOR, ".badge").text

    # a second-hop hit draws its first-hop passage and the bridge between them
    second, record = next((h, a["explanation"]["bridge"]) for h, a in zip(hits, api["hits"])
                          if (a["explanation"].get("bridge") or {}).get("role") == "second hop")
    second.find_element(By.CSS_SELECTOR, "details.why > summary").click()
    graph2 = _graph_ready(browser, second)
    first_hop = browser.execute_script("return arguments[0].cy.nodes('.firsthop').map(n => n.id())", graph2)
    assert first_hop == [f"passage:{record['first_hop']}"]  # the top passage or a side of a comparison
    assert browser.execute_script("return arguments[0].cy.edges('.hop').length", graph2) >= 2
    assert _csp_violations(browser) == []


def test_click_an_entity_opens_and_grows_its_neighbourhood(browser, plain):
    By = _by()
    browser.get(plain.url + "/?" + urllib.parse.urlencode({"q": Q1, "mode": "hybrid", "k": 3}))
    _wait(browser, lambda d: len(_hits(d)) == 3)
    graph = _graph_ready(browser, _hits(browser)[0])
    explorer = browser.find_element(By.ID, "explorer-graph")
    assert not browser.find_element(By.ID, "explorer").is_displayed()

    clicked = _click_node(browser, graph, "node.seed")  # a mouse click on the canvas
    _wait(browser, lambda d: _count(explorer, "nodes") > 1)
    assert browser.find_element(By.ID, "explorer").is_displayed()
    centre = browser.execute_script("return arguments[0].cy.nodes('.centre').map(n => n.id())", explorer)
    assert centre == [clicked]
    details = browser.find_element(By.ID, "explorer-details").text
    assert details.startswith("Entity: " + clicked.removeprefix("entity:"))
    before = _count(explorer, "nodes")

    # expand a neighbour: a passage node of the explorer graph
    grown = _click_node(browser, explorer, "node[kind = 'passage']")
    _wait(browser, lambda d: _count(explorer, "nodes") > before)
    assert browser.execute_script("return arguments[0].cy.nodes('.centre').map(n => n.id())", explorer) == [grown]
    after_passage = _count(explorer, "nodes")
    # and further, from the list beside the graph
    browser.find_element(By.CSS_SELECTOR, "#explorer-details button.link").click()
    _wait(browser, lambda d: _count(explorer, "nodes") >= after_passage
          and browser.execute_script("return arguments[0].cy.nodes('.expanded').length", explorer) == 3)
    assert _csp_violations(browser) == []


def test_a_link_with_the_query_in_its_url_runs_it(browser, plain):
    By = _by()
    q = "Which river flows through the town where Tobias Wren was born?"
    browser.get(plain.url + "/?" + urllib.parse.urlencode({"q": q, "mode": "bm25", "k": 3}))
    _wait(browser, lambda d: len(_hits(d)) == 3)
    assert browser.find_element(By.ID, "q").get_attribute("value") == q
    assert browser.find_element(By.ID, "mode").get_attribute("value") == "bm25"
    assert "mode bm25" in browser.find_element(By.ID, "status").text
    api = httpx.post(plain.url + "/retrieve", json={"query": q, "top_k": 3, "mode": "bm25"}, timeout=60).json()
    assert [h.get_attribute("data-passage-id") for h in _hits(browser)] == [h["passage_id"] for h in api["hits"]]
    # back to an earlier URL re-runs that query
    browser.find_element(By.ID, "q").clear()
    browser.find_element(By.ID, "q").send_keys(Q1)
    browser.find_element(By.CSS_SELECTOR, "#query-form button[type=submit]").click()
    _wait(browser, lambda d: "mode=bm25" in d.current_url and urllib.parse.quote_plus(Q1) in d.current_url)
    browser.back()
    _wait(browser, lambda d: d.find_element(By.ID, "q").get_attribute("value") == q)
    _wait(browser, lambda d: [h.get_attribute("data-passage-id") for h in _hits(d)] ==
          [h["passage_id"] for h in api["hits"]])


def test_markup_in_passages_is_shown_as_text_and_the_token_is_sent(browser, guarded):
    By = _by()
    browser.get(guarded.url + "/?" + urllib.parse.urlencode({"q": "harbour log ferry Gull Tessel", "k": 2}))
    _wait(browser, lambda d: "needs a bearer token" in d.find_element(By.ID, "status").text)
    assert _hits(browser) == []
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    _wait(browser, lambda d: len(_hits(d)) == 2)
    assert browser.execute_script("return sessionStorage.getItem('hippograph.token')") == TOKEN
    log = next(h for h in _hits(browser) if h.find_element(By.CSS_SELECTOR, ".title").text == HTML_TITLE)
    text = log.find_element(By.CSS_SELECTOR, ".text").get_attribute("textContent")
    assert "<script>window.__pwned = 1;</script>" in text and '<img src=x onerror="window.__pwned = 2">' in text
    assert browser.find_elements(By.CSS_SELECTOR, "#hits script, #hits img, #hits b, #hits i") == []
    assert browser.execute_script("return window.__pwned === undefined")
    # the neighbourhood list of the passage shows the markup title as text too
    browser.execute_script("arguments[0].open = true", log.find_element(By.CSS_SELECTOR, "details.why"))
    graph = _graph_ready(browser, log)
    _click_node(browser, graph, "node.hit")
    _wait(browser, lambda d: d.find_element(By.ID, "explorer-details").text.startswith("Passage: " + HTML_TITLE))
    assert browser.find_elements(By.CSS_SELECTOR, "#explorer-details script, #explorer-details img") == []
    assert browser.execute_script("return window.__pwned === undefined")
    assert _csp_violations(browser) == []


def test_docs_page_renders_from_vendored_assets(browser, plain):
    By = _by()
    browser.get(plain.url + "/docs")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock-summary-path"))
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/retrieve", "/neighbourhood"} <= paths
