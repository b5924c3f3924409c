"""The inspector page in a real headless Chromium (Debian's chromium + chromium-driver, Selenium).

A service runs on 127.0.0.1 (uvicorn in a thread) over a seeded memory; the tests use the page as
a person would: token, procedures, search, one procedure with its versions and diff, deprecate and
restore, deprecations, experiments, keyboard, a narrow screen. Screenshots go to
tests/server/artifacts/; MEMP_UPDATE_SCREENSHOT=1 also refreshes docs/inspector.png.

They skip only when the browser is missing and MEMP_REQUIRE_BROWSER is unset (CI sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"


def _missing() -> str | None:
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if absent:
        return f"{' and '.join(absent)} not installed (run scripts/install-browser.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[browser]')"
    return None


_why = _missing()
if _why and os.environ.get("MEMP_REQUIRE_BROWSER"):
    raise RuntimeError(f"MEMP_REQUIRE_BROWSER is set but the browser tests cannot run: {_why}")
if _why:
    pytest.skip(f"browser tests skipped: {_why}", allow_module_level=True)

import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from memp.embed import HashingEmbedder  # noqa: E402
from memp.server.rest import ServiceConfig, create_app  # noqa: E402
from memp.store import SQLiteStore  # noqa: E402
from memp.types import Procedure  # noqa: E402
from tests.server.conftest import TOKEN_A, TOKEN_B, TOKENS  # noqa: E402
from tests.server.test_inspector_api import seed  # noqa: E402

pytestmark = pytest.mark.slow
WAIT = 15


# -- fixtures: a live service and a browser -------------------------------------------------------


def _experiments(root: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = root / "demo"
    d.mkdir(parents=True)
    results = {"seed": 0, "build": {"no memory": {"n": 10, "success_rate": 0.4, "avg_steps": 21.5},
                                    "proceduralization": {"n": 10, "success_rate": 0.8, "avg_steps": 12.0}}}
    (d / "results.json").write_text(json.dumps(results))
    (d / "report.md").write_text("# Demo run\n\nTen unseen games.\n\n| condition | success |\n|---|---|\n"
                                 "| no memory | 0.40 |\n| proceduralization | 0.80 |\n\n![build](build.png)\n")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(["none", "proc."], [0.4, 0.8])
    fig.savefig(d / "build.png", dpi=60)
    plt.close(fig)
    return root


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(base url, store, ids) of a service on a free loopback port."""
    tmp = tmp_path_factory.mktemp("inspector")
    store = SQLiteStore(tmp / "memp.db")
    ids = seed(store)
    for i in range(120):  # team-b: enough for three pages
        store.put(Procedure(namespace="team-b", key=f"task {i:03d} of a larger memory", builder="script"))
    config = ServiceConfig(store=store, tokens=TOKENS, embedder=HashingEmbedder(),
                           experiments=_experiments(tmp / "experiments"))
    server = uvicorn.Server(uvicorn.Config(create_app(config),
                                           host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start on loopback")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]  # port 0: the OS picked a free one
    yield f"http://127.0.0.1:{port}", store, ids
    server.should_exit = True
    thread.join(10)
    store.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def page(service, browser):
    """A fresh tab state: the page loaded, no token yet."""
    base, _, _ = service
    browser.set_window_size(1200, 900)
    # Forget the token on a same-origin page that runs no script, so no login still in flight
    # from the previous test can store it again.
    browser.get(base + "/v1/health")
    browser.execute_script("sessionStorage.clear()")
    browser.get(base + "/")
    _wait(browser, EC.visibility_of_element_located((By.ID, "token")))
    return browser


def _wait(driver, condition, timeout: float = WAIT):
    # A view re-renders as a whole, so an element found a moment ago may be gone: look again.
    return WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(condition)


def _heading(driver, text: str):
    _wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main h1"), text))


def _login(driver, token: str = TOKEN_A) -> None:
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token, Keys.ENTER)


def _idle(driver) -> None:
    """The status line says Loading… while a view fetches; wait until it is done."""
    _wait(driver, lambda d: "Loading" not in d.find_element(By.ID, "status").text)


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


# -- tests ----------------------------------------------------------------------------------------


def test_wrong_token_shows_a_clear_message_and_no_data(page):
    _login(page, "this-is-not-the-token-0000")
    error = _wait(page, EC.visibility_of_element_located((By.ID, "login-error")))
    assert "refused this token" in error.text and "401" in error.text
    body = page.find_element(By.TAG_NAME, "body").text
    assert "put a clean" not in body and "team-a" not in body
    assert not page.find_element(By.ID, "nav").is_displayed()
    assert page.execute_script("return sessionStorage.getItem('memp.token')") is None
    _screenshot(page, "inspector-wrong-token.png")


def test_procedures_table_filters_sorts_and_pages(page, service):
    _, _, ids = service
    _login(page)
    _heading(page, "Procedures")
    _idle(page)
    assert "namespace: team-a" in page.find_element(By.ID, "namespace").text
    rows = page.find_elements(By.CSS_SELECTOR, "main tbody tr")
    assert len(rows) == 3
    page.find_element(By.XPATH, "//th//button[starts-with(normalize-space(), 'Uses')]").click()
    # Re-rendered when the sorted column says so; the mug procedure, used twice, comes first.
    _wait(page, lambda d: d.find_element(By.XPATH, "//th[@aria-sort='descending']").text.startswith("Uses"))
    assert "sort=uses" in page.current_url
    assert "mug" in page.find_element(By.CSS_SELECTOR, "main tbody tr td a").text
    status = page.find_element(By.NAME, "status")
    status.send_keys("deprecated")
    page.find_element(By.XPATH, "//button[text()='Apply filters']").click()
    _wait(page, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "nav.pager"), "1–1 of 1"))
    assert "status=deprecated" in page.current_url
    rows = page.find_elements(By.CSS_SELECTOR, "main tbody tr")
    assert len(rows) == 1 and "egg" in rows[0].text


def test_pages_come_from_the_api(page):
    _login(page, TOKEN_B)
    _heading(page, "Procedures")
    _idle(page)
    pager = page.find_element(By.CSS_SELECTOR, "nav.pager")
    assert "1–50 of 120" in pager.text and "Previous" not in pager.text
    pager.find_element(By.LINK_TEXT, "Next →").click()
    _wait(page, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "nav.pager"), "51–100 of 120"))
    assert "offset=50" in page.current_url
    assert len(page.find_elements(By.CSS_SELECTOR, "main tbody tr")) == 50
    # The namespace is the token's: team-b sees none of team-a's procedures.
    assert "namespace: team-b" in page.find_element(By.ID, "namespace").text
    assert "put a clean" not in page.find_element(By.TAG_NAME, "main").text


def test_search_open_procedure_diff_deprecate_and_restore(page, service):
    base, store, ids = service
    _login(page)
    _heading(page, "Procedures")
    page.find_element(By.LINK_TEXT, "Search").click()
    _heading(page, "Search")
    task = page.find_element(By.ID, "task")
    task.send_keys("put a clean apple in the fridge", Keys.ENTER)
    hit = _wait(page, EC.visibility_of_element_located((By.CSS_SELECTOR, "li.hit")))
    score = float(hit.find_element(By.CSS_SELECTOR, ".score").text)
    assert 0 < score <= 1
    assert "apple" in hit.find_element(By.CSS_SELECTOR, "h3 a").text
    hit.find_element(By.CSS_SELECTOR, "h3 a").click()

    _heading(page, "put a clean apple in fridge.")
    _idle(page)
    text = page.find_element(By.TAG_NAME, "main").text
    for section in ("Keywords", "Script", "Trajectory excerpt", "Pitfalls", "Provenance", "Versions (2)",
                    "Changes from v1 to v2", "Events"):
        assert section in text, section
    added = page.find_elements(By.CSS_SELECTOR, "#diff li.added")
    assert added, "the diff shows no added line"
    assert all(li.text.startswith("+ ") for li in added)
    assert page.find_elements(By.CSS_SELECTOR, "a[href^='#/trajectory/']"), "no provenance link"
    _screenshot(page, "inspector-procedure.png")
    page.execute_script("document.getElementById('versions-h').scrollIntoView()")
    _screenshot(page, "inspector.png")  # versions and the diff: what the README shows
    if os.environ.get("MEMP_UPDATE_SCREENSHOT"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(ARTIFACTS / "inspector.png", ROOT / "docs" / "inspector.png")

    # Provenance: the source trajectory opens.
    page.find_element(By.CSS_SELECTOR, "dl.facts a[href^='#/trajectory/']").click()
    _heading(page, "Trajectory: put a clean apple")
    assert "take apple 1 from countertop 2" in page.find_element(By.TAG_NAME, "main").text
    page.back()
    _heading(page, "put a clean apple in fridge.")

    # Deprecate from the page.
    action = _wait(page, EC.element_to_be_clickable((By.ID, "status-action")))
    assert action.text == "Deprecate"
    action.click()
    _wait(page, EC.text_to_be_present_in_element((By.ID, "status-action"), "Restore"))
    assert store.get("team-a", ids["apple"]).status == "deprecated"
    assert "Deprecated" in page.find_element(By.ID, "status").text

    # The deprecations view lists it, with its evidence; restore from there.
    page.find_element(By.LINK_TEXT, "Deprecations").click()
    _heading(page, "Deprecations")
    _idle(page)
    row = page.find_element(By.XPATH, "//tbody/tr[.//a[contains(., 'apple')]]")
    assert "deprecated from the inspector" in row.text and "0 of 1 uses succeeded" in row.text
    row.find_element(By.CSS_SELECTOR, "button.restore").click()
    _wait(page, lambda d: store.get("team-a", ids["apple"]).status == "active")
    _wait(page, EC.text_to_be_present_in_element(
        (By.XPATH, "//tbody/tr[.//a[contains(., 'apple')]]"), "active"))
    events = [e.kind for e in store.events("team-a", ids["apple"])]
    assert events[-2:] == ["deprecated", "restored"]


def test_experiment_tables_report_and_plot(page):
    _login(page)
    _heading(page, "Procedures")
    page.find_element(By.LINK_TEXT, "Experiments").click()
    _heading(page, "Experiments")
    page.find_element(By.LINK_TEXT, "demo").click()
    _heading(page, "Experiment: demo")
    _idle(page)
    main = page.find_element(By.TAG_NAME, "main")
    assert "Demo run" in main.text and "proceduralization" in main.text
    headers = [th.text for th in main.find_elements(By.CSS_SELECTOR, "th")]
    assert "success_rate" in headers and "avg_steps" in headers  # results.json as a table
    img = main.find_element(By.CSS_SELECTOR, "img.plot")
    _wait(page, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img))
    assert img.get_attribute("src").startswith("blob:")
    _screenshot(page, "inspector-experiment.png")


def test_keyboard_reaches_every_view_with_visible_focus(page):
    _login(page)
    _heading(page, "Procedures")
    _idle(page)
    # Focus lands on the new view's heading; from the page start, Tab walks skip link then nav.
    assert page.switch_to.active_element.tag_name == "h1"
    first = page.execute_script("return document.querySelector('a[href], button, input, select')")
    assert first.text == "" and first.get_attribute("class") == "skip"  # hidden until focused
    page.execute_script("arguments[0].focus()", first)
    seen = []
    for _ in range(8):
        el = page.switch_to.active_element
        seen.append(el.text)
        if el.text == "Deprecations":
            outline = page.execute_script("return getComputedStyle(arguments[0]).outlineStyle", el)
            assert outline != "none", "focused link has no visible outline"
            el.send_keys(Keys.ENTER)
            break
        el.send_keys(Keys.TAB)
    assert seen[0] == "Skip to content" and "Procedures" in seen and "Search" in seen
    _heading(page, "Deprecations")


def test_narrow_screen_has_no_sideways_scrolling(page):
    page.set_window_size(390, 844)
    _login(page)
    _heading(page, "Procedures")
    _idle(page)
    overflow = page.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    assert page.find_element(By.LINK_TEXT, "Search").is_displayed()
    _screenshot(page, "inspector-narrow.png")
