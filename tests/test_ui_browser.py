"""`nnstudies ui` the way a user clicks it, in a real browser: Debian's chromium, headless,
driven by selenium through chromedriver.  The store holds two runs of one stage that differ
in a param; the links `nnstudies ui` prints open the runs table (both runs, the key columns,
best first) and the per-epoch curves, and the clicks docs/compare.md gives reach the runs.
Screenshots are saved under pytest's tmp dir (their paths are printed: `pytest -s`).  Skips,
with the reason, where chromium, chromedriver or selenium cannot be had."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import tool_env
from nnstudies import tracking

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("needs Debian's chromium and chromedriver: apt-get install chromium chromium-driver",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[test]'")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1440,900"]
PAGE_TIMEOUT_S = 90
# exp name: hid, accuracy, epochs_to_100.  The best run is logged first, so that "best first"
# is not the UI's default order (newest first).
RUNS = {"hid8": (8, 1.0, 987), "hid4": (4, 0.889, 1234)}
ON = {"tracking": {"enabled": True, "required": False}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`nnstudies ui` on a free port over a store with two train_checker runs; yields the lines it
    printed (parsed: {(experiment, "runs" | "curves"): url}) and its base URL."""
    root = tmp_path_factory.mktemp("browser-store")
    (root / ".dvc").mkdir()
    with pytest.MonkeyPatch.context() as env:
        for name in ("MLFLOW_TRACKING_URI", "NNSTUDIES_TRACKING", "NNSTUDIES_TRACKING_SYNC"):
            env.delenv(name, raising=False)
        env.setenv("DVC_ROOT", str(root))
        for exp, (hid, accuracy, epochs) in RUNS.items():
            env.setenv("DVC_EXP_NAME", exp)
            with tracking.start("checker", "train_checker",
                                {"hid": hid, "checker": {"train": {"lr": 0.01}}, **ON}) as run:
                for step in range(0, 1001, 100):
                    run.log_metrics({"accuracy": min(accuracy, step / 900 * hid / 8),
                                     "loss": 0.7 / (1 + step * hid / 400)}, step=step)
                run.log_metrics({"accuracy": accuracy, "epochs_to_100": epochs,
                                 "restarts_succeeded": hid}, step=1000)
            time.sleep(0.02)  # distinct start times
        with tracking.start("kmnist", "train_kmnist@lin", ON) as run:  # a second study
            run.log_metrics({"test_accuracy": 0.7})
        assert tracking.flush(root).failed == []
    port = free_port()
    log = root / "ui.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "nnstudies", "ui", "--port", str(port)],
                                  cwd=root, env=tool_env(DVC_ROOT=root), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() - started < 90, log.read_text()[-3000:]
                time.sleep(0.25)
        links = {(name, what): url for name, what, url in
                 re.findall(r"^  (\S+) (runs|curves): +(\S+)$", log.read_text(), re.M)}
        yield f"http://127.0.0.1:{port}", links
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


def open_page(driver, base: str, url: str, shot, *texts: str) -> str:
    """Load ``url`` with the MLflow Assistant panel closed (it opens itself on a first visit
    and would cover the table), wait until the page shows every one of ``texts``, save a
    screenshot; returns the page's text."""
    driver.get(f"{base}/health")  # same origin: set the UI's remembered panel state first
    driver.execute_script("localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
                          "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');")
    driver.get(url)
    body = lambda: driver.find_element(By.TAG_NAME, "body").text  # noqa: E731
    try:
        WebDriverWait(driver, PAGE_TIMEOUT_S).until(lambda _: all(t in body() for t in texts))
    except TimeoutException:
        driver.save_screenshot(str(shot))
        raise AssertionError(f"{url} did not show {texts} within {PAGE_TIMEOUT_S} s (screenshot "
                             f"{shot}); it shows: {body()[:2000]}") from None
    driver.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    return body()


def test_the_printed_runs_link_shows_both_runs_key_columns_best_first(ui, browser, shots):
    base, links = ui
    assert {(n, w) for n, w in links} == {(n, w) for n in ("kmnist", "checker")
                                          for w in ("runs", "curves")}
    text = open_page(browser, base, links["checker", "runs"], shots / "mlflow-runs.png",
                     "train_checker (hid4)", "train_checker (hid8)", "epochs_to_100", "1234", "987")
    assert "Sort: accuracy" in text and "Study 2: the 9-point checkerboard MLP" in text
    rows = {exp: browser.find_element(By.XPATH, f"//a[normalize-space()='train_checker ({exp})']")
            for exp in RUNS}
    assert rows["hid8"].location["y"] < rows["hid4"].location["y"]  # accuracy 1.0 first


def test_the_printed_curves_link_charts_only_the_per_epoch_curves(ui, browser, shots):
    base, links = ui
    text = open_page(browser, base, links["checker", "curves"], shots / "mlflow-compare.png",
                     "train_checker (hid8) (accuracy)", "train_checker (hid4) (accuracy)",
                     "train_checker (hid4) (loss)")
    assert "epochs_to_100" not in text  # a final value, not a curve: no chart of it


def test_the_clicks_in_the_docs_open_an_experiment_on_its_runs(ui, browser, shots):
    """docs/compare.md: on the home page, click "Model training" once (the browser remembers
    it), then the experiment: its runs, not the GenAI overview."""
    base, links = ui
    open_page(browser, base, f"{base}/", shots / "mlflow-home.png", "Model training", "checker")
    browser.find_element(By.XPATH, "//*[normalize-space(text())='Model training']").click()
    browser.find_element(By.XPATH, "//a[normalize-space()='checker']").click()
    runs = links["checker", "runs"].split("#")[1].split("?")[0]
    try:
        WebDriverWait(browser, PAGE_TIMEOUT_S).until(lambda d: f"#{runs}?" in d.current_url)
    except TimeoutException:
        raise AssertionError(f"landed on {browser.current_url}, not {runs}") from None
