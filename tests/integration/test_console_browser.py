"""The operator console in a real browser: Debian's chromium, headless, driven by Selenium through
/usr/bin/chromedriver (no Selenium Manager, no downloads), against a gateway with auth on, DynamoDB
Local with seeded usage, and the fake OpenAI upstream. Takes screenshots of the overview and the keys
page: into docs/ (console-overview.png, console-keys.png, which the README shows) when
SKYLANE_SCREENSHOTS=docs (`make screenshots`), else into a temporary folder, so a test run leaves the
tree as it was."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.integration.conftest_dynamo import NewKey, Tables
from tests.integration.console_seed import seed_usage

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"
XSS = "<img src=x onerror=alert(1)>"
USER = [{"role": "user", "content": "hi"}]
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1400,1050"]


def _shots() -> Path:
    """Where screenshots go: docs/ for `make screenshots`, a temporary folder otherwise."""
    if os.environ.get("SKYLANE_SCREENSHOTS") == "docs":
        return ROOT / "docs"
    return Path(tempfile.mkdtemp(prefix="skylane-shots-"))


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM or not Path(CHROMEDRIVER).exists():
        message = ("CONSOLE BROWSER TEST SKIPPED: chromium / chromium-driver are not installed "
                   "(make browser: apt-get install -y chromium chromium-driver)")
        warnings.warn(message, stacklevel=1)
        print("\n" + "!" * 100 + "\n" + message + "\n" + "!" * 100)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="skylane-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except (NoSuchElementException, StaleElementReferenceException):
            pass
        time.sleep(0.05)
    status, login = driver.find_element("id", "status").text, driver.find_element("id", "login-error").text
    raise AssertionError(f"timed out; last value {last!r}; page status: {status!r} {login!r}")


def no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert  # noqa: B018 (raises when there is none)
    except NoAlertPresentException:
        return True
    return False


def sign_in(driver: Any, base: str, key: str) -> None:
    driver.get(f"{base}/console/")
    box = wait(driver, lambda: driver.find_element("id", "login-key"))
    box.clear()
    box.send_keys(key)
    driver.find_element("css selector", "#login-form button").click()


def test_console(browser: Any, auth_gateway: Callable[..., str], make_key: Callable[..., NewKey],
                 dynamo_tables: Tables) -> None:
    from selenium.webdriver.common.by import By

    base = auth_gateway(SKYLANE_AUTH_CACHE_TTL="1")
    admin = make_key("operations", admin=True)
    plain = make_key("mobile-app", rpm=120, credits_micros=25_000_000)
    others = [make_key(name) for name in ("search-backend", "support-bot", "batch-jobs", "data-science", XSS)]
    ids = [plain.key_id, *(k.key_id for k in others)]
    models = ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet-4-5"]
    seeded = seed_usage(dynamo_tables.client, dynamo_tables.limits, ids, models, days=30, now=time.time())
    driver = browser

    # an ordinary key is refused
    sign_in(driver, base, plain.key)
    assert "not an admin key" in wait(driver, lambda: driver.find_element("id", "login-error").text)
    assert driver.find_element("id", "nav").is_displayed() is False

    # the admin key: the overview shows the seeded totals (7 days by default, then 30 days)
    sign_in(driver, base, admin.key)
    week = sum(seeded.requests_by_day[:7])
    wait(driver, lambda: driver.find_element("id", "total-requests").text == f"{week:,}")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#chart svg rect")) >= 7
    driver.find_element(By.CSS_SELECTOR, "button[data-value='30d']").click()
    wait(driver, lambda: driver.find_element("id", "total-requests").text == f"{seeded.requests:,}")
    spend = f"${seeded.cost_micros / 1_000_000:,.2f}"
    assert driver.find_element("id", "total-spend").text == spend
    driver.find_element(By.CSS_SELECTOR, "button[data-value='key']").click()  # split by key
    wait(driver, lambda: XSS in driver.find_element(By.CSS_SELECTOR, "#chart .legend").text)
    assert no_alert(driver) and not driver.find_elements(By.CSS_SELECTOR, "main img")
    driver.save_screenshot(str(_shots() / "console-overview.png"))

    # keys: the XSS name is text, never markup
    driver.get(f"{base}/console/#keys")
    xss_row = f"tr[data-key-id='{others[-1].key_id}'] .key-name"
    cell = wait(driver, lambda: driver.find_element(By.CSS_SELECTOR, xss_row))
    assert cell.text == XSS
    assert not driver.find_elements(By.CSS_SELECTOR, "#keys-table img") and no_alert(driver)

    # create a key (shown once), and it works for a completion
    form = driver.find_element("id", "create-form")
    form.find_element(By.NAME, "name").send_keys("browser-made")
    form.find_element(By.NAME, "credits").send_keys("1")
    form.find_element(By.CSS_SELECTOR, "button[type='submit']").click()
    new_key = wait(driver, lambda: driver.find_element("id", "new-key").text)
    assert new_key.startswith("sk-skylane-")
    new_id = new_key.removeprefix("sk-skylane-").split("-")[0]
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=new_key, max_retries=0)
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    driver.find_element(By.XPATH, "//div[@class='secret']/button[text()='Done']").click()
    wait(driver, lambda: not driver.find_elements("id", "new-key"))

    # top up its credits by $2
    row = f"tr[data-key-id='{new_id}']"
    wait(driver, lambda: driver.find_element(By.CSS_SELECTOR, f"{row} .topup input")).send_keys("2")
    driver.find_element(By.CSS_SELECTOR, f"{row} .topup button").click()
    wait(driver, lambda: driver.find_element(By.CSS_SELECTOR, f"{row} .balance").text.startswith("$2.99")
         or driver.find_element(By.CSS_SELECTOR, f"{row} .balance").text.startswith("$3.00"))
    item = dynamo_tables.key_item(new_id)
    assert int(item["credits_micros"]["N"]) + int(item["spent_micros"]["N"]) == 3_000_000
    driver.save_screenshot(str(_shots() / "console-keys.png"))

    # revoke it: refused within the auth cache TTL (1 s)
    driver.find_element(By.CSS_SELECTOR, f"{row} button.revoke").click()
    wait(driver, lambda: driver.find_element(By.CSS_SELECTOR, f"{row} .pill").text == "revoked")
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)  # type: ignore[arg-type]

    # key detail and models pages render
    driver.get(f"{base}/console/#key/{plain.key_id}")
    wait(driver, lambda: driver.find_element("id", "detail-name").text == "mobile-app")
    assert "of 120" in driver.find_element(By.TAG_NAME, "main").text  # rate-limit headroom
    driver.get(f"{base}/console/#models")
    wait(driver, lambda: "openai/gpt-4o-mini" in driver.find_element("id", "view").text)
    assert no_alert(driver)
    # nothing the page asked for broke the Content-Security-Policy
    logs = driver.get_log("browser") if hasattr(driver, "get_log") else []
    assert not [entry for entry in logs if "Content Security Policy" in entry.get("message", "")], logs
