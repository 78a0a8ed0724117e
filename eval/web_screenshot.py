"""Screenshot of the web page for the README (docs/web.png), and the headless Chromium the web tests share.

    python eval/web_screenshot.py URL [--query Q] [--out docs/web.png]

URL is a running `hippograph serve` (e.g. http://127.0.0.1:8000 on the sample index). The
page runs the query, opens the first hit's explanation graph and the neighbourhood of its
first seed entity, then the window is saved as a PNG. Needs selenium and Debian's
chromium + chromium-driver.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DEFAULT_QUERY = "In which town was the founder of Kessel Shipworks born?"
OUT = Path(__file__).resolve().parents[1] / "docs" / "web.png"


def chromium_missing() -> str | None:
    """Why a headless Chromium cannot be started here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'hippograph[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


def start_chromium(profile_dir: str | Path, width: int = 1400, height: int = 1000) -> Any:
    """Headless Debian Chromium driven by its chromedriver: fresh profile, no background network traffic."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-default-apps", "--disable-extensions",
                 f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="base URL of a running `hippograph serve`")
    p.add_argument("--query", default=DEFAULT_QUERY)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    reason = chromium_missing()
    if reason:
        print(f"cannot take the screenshot: {reason}", file=sys.stderr)
        return 1
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="hippograph-chromium-")
    driver = start_chromium(profile, 1400, 1050)
    try:
        query = urllib.parse.urlencode({"q": args.query, "mode": "hybrid", "k": 5})
        driver.get(f"{args.url.rstrip('/')}/?{query}")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".explain-graph[data-ready='1']"))
        # show a second-hop hit's explanation (first hop, bridge entities) instead of the first hit's
        second = driver.find_elements(By.XPATH, "//li[contains(@class,'hit')][.//span[text()='second hop']]")
        if second:
            driver.execute_script("document.querySelector('#hits details.why').open = false")
            second[0].find_element(By.CSS_SELECTOR, "details.why > summary").click()
            wait.until(lambda d: second[0].find_elements(By.CSS_SELECTOR, ".explain-graph[data-ready='1']"))
        chips = driver.find_elements(By.CSS_SELECTOR, ".hit details[open] .chips .chip")
        # the entity of the question's bridge when shown (a richer neighbourhood than a date or a noun)
        chip = next((c for c in chips if c.text == "kessel shipworks"), chips[0])
        chip.click()
        wait.until(lambda d: int(d.find_element(By.ID, "explorer-graph").get_attribute("data-nodes") or 0) > 1)
        driver.execute_script("window.scrollTo(0, 0)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
