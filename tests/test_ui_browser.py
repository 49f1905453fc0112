"""The MLflow UI the way a user clicks it, in a real browser: Debian's chromium, headless,
driven by selenium through chromedriver, each browser with a fresh profile.  The store holds
two DVC experiments of one stage that differ in `hid` (with DVC's automatic names); a third
study-less stage shows nothing here.

- `nnstudies ui`: the links it prints show the runs table (both runs, named by what differs,
  the differing param in the first param column, best first) and the per-epoch curves.
- Plain `mlflow ui --backend-store-uri sqlite:///mlflow.db --workers 1` (README): the home
  page, then, as docs/compare.md says, one click on "Model training", and from there the
  study, two runs ticked, Compare, Experiments and the study again: none shows the GenAI
  overview.  Without that click (a fresh browser) the study opens on the GenAI overview:
  the one thing the server cannot set, checked so that the docs' claim stays true.

Screenshots go under pytest's tmp dir (`pytest -s` prints their paths), and the docs' ones
(``mlflow-*.png``) also into ``$NNSTUDIES_SCREENSHOTS`` when set: `NNSTUDIES_SCREENSHOTS=docs/images pytest
tests/test_ui_browser.py` makes the docs' images.  Skips, with the reason, where chromium,
chromedriver or selenium cannot be had."""

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
from pathlib import Path

import pytest

from conftest import CHROMEDRIVER as DRIVER
from conftest import CHROMIUM, HEADLESS, tool_env, webdriver_or_skip
from nnstudies import tracking

webdriver = webdriver_or_skip()
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAGS = [*HEADLESS, "--window-size=1440,900"]
PAGE_TIMEOUT_S = 90
# DVC's automatic exp name: hid, accuracy, epochs_to_100.  The best run is logged first, so
# that "best first" is not the UI's default order (newest first).  params.yaml says hid: 6.
RUNS = {"azure-nosh": (8, 1.0, 987), "lofty-dado": (4, 0.889, 1234)}
NAMES = {exp: f"train_checker hid={hid}" for exp, (hid, _, _) in RUNS.items()}
ON = {"tracking": {"enabled": True, "required": False}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A project (git, params.yaml) whose mlflow.db holds two train_checker runs and a KMNIST
    one, as the stages leave it; ``plain/mlflow.db`` is a copy of it for plain `mlflow ui`
    (`nnstudies ui` adds its saved views to the store it serves)."""
    root = tmp_path_factory.mktemp("browser-store")
    (root / ".dvc").mkdir()
    (root / "params.yaml").write_text("hid: 6\ncheckpoint: none\nchecker:\n  train:\n    lr: 0.01\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "params.yaml"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "params"], cwd=root, check=True)
    with pytest.MonkeyPatch.context() as env:
        for name in ("MLFLOW_TRACKING_URI", "NNSTUDIES_TRACKING", "NNSTUDIES_TRACKING_SYNC",
                     "DVC_EXP_BASELINE_REV"):
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
        env.setenv("DVC_EXP_NAME", "")
        with tracking.start("kmnist", "train_kmnist@lin", ON) as run:  # a second study
            run.log_metrics({"test_accuracy": 0.7})
        assert tracking.flush(root).failed == []
    (root / "plain").mkdir()
    shutil.copyfile(root / "mlflow.db", root / "plain" / "mlflow.db")
    return root


def serve(command: list[str], cwd, log) -> subprocess.Popen:
    """Start a UI server on the ``--port`` in ``command``; returns once /health answers."""
    port = command[command.index("--port") + 1]
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=cwd, env=tool_env(DVC_ROOT=cwd), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() - started > 90:
                stop(server)
                raise AssertionError(log.read_text()[-3000:]) from None
            time.sleep(0.25)


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)  # the server and its worker, by process group
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def ui(store):
    """`nnstudies ui` on a free port; yields its base URL and the links it printed, parsed:
    {(experiment, "runs" | "curves"): url}."""
    port, log = free_port(), store / "ui.log"
    server = serve([sys.executable, "-m", "nnstudies", "ui", "--port", str(port)], store, log)
    try:
        links = {(name, what): url for name, what, url in
                 re.findall(r"^  (\S+) (runs|curves): +(\S+)$", log.read_text(), re.M)}
        yield f"http://127.0.0.1:{port}", links
    finally:
        stop(server)


@pytest.fixture(scope="module")
def plain_ui(store):
    """What the README tells a user who has only MLflow: `mlflow ui` over the repo's store."""
    port, cwd = free_port(), store / "plain"
    mlflow = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", "sqlite:///mlflow.db",
              "--workers", "1", "--port", str(port)]
    server = serve(mlflow, cwd, cwd / "ui.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def new_browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = new_browser(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture
def fresh_browser(tmp_path):
    driver = new_browser(tmp_path / "chromium-profile")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


def shoot(driver, path) -> None:
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    if os.environ.get("NNSTUDIES_SCREENSHOTS") and path.name.startswith("mlflow-"):  # the docs' ones
        shutil.copyfile(path, Path(os.environ["NNSTUDIES_SCREENSHOTS"]) / path.name)


def text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def close_assistant(driver, base: str) -> None:
    """The MLflow Assistant panel opens itself on a first visit and covers a quarter of the
    page: set the UI's remembered panel state (same origin) before the page loads."""
    driver.get(f"{base}/health")
    driver.execute_script("localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
                          "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');")


def wait_for(driver, shot, *texts: str) -> str:
    """Wait until the page shows every one of ``texts``, save a screenshot; returns the text."""
    try:
        WebDriverWait(driver, PAGE_TIMEOUT_S).until(lambda _: all(t in text(driver) for t in texts))
    except TimeoutException:
        driver.save_screenshot(str(shot))
        raise AssertionError(f"{driver.current_url} did not show {texts} within {PAGE_TIMEOUT_S} s "
                             f"(screenshot {shot}); it shows: {text(driver)[:2000]}") from None
    time.sleep(1)  # the last cells and charts draw
    shoot(driver, shot)
    return text(driver)


def open_page(driver, base: str, url: str, shot, *texts: str) -> str:
    close_assistant(driver, base)
    driver.get(url)
    return wait_for(driver, shot, *texts)


def click(driver, xpath: str) -> None:
    WebDriverWait(driver, PAGE_TIMEOUT_S).until(lambda d: d.find_elements(By.XPATH, xpath))
    driver.find_element(By.XPATH, xpath).click()


def genai(driver) -> str | None:
    """Why the page is in the UI's GenAI mode (an experiment's overview of traces, token
    usage and cost, or the GenAI sidebar), or None for the Model training view."""
    if "/overview" in driver.current_url or "workflowType=genai" in driver.current_url:
        return f"GenAI URL {driver.current_url}"
    found = [t for t in ("Observability", "Token Usage", "Total Cost") if t in text(driver)]
    return f"GenAI page ({', '.join(found)}) at {driver.current_url}" if found else None


def param_columns(driver) -> list[str]:
    """The runs table's param columns, left to right."""
    cells = driver.find_elements(By.CSS_SELECTOR, ".ag-header-cell[col-id^='params.']")
    return [c.get_attribute("col-id") for c in sorted(cells, key=lambda c: c.location["x"])]


def test_the_printed_runs_link_shows_both_runs_differing_param_first_best_first(ui, browser, shots):
    base, links = ui
    assert {(n, w) for n, w in links} == {(n, w) for n in ("kmnist", "checker")
                                          for w in ("runs", "curves")}
    page = open_page(browser, base, links["checker", "runs"], shots / "mlflow-runs.png",
                     *NAMES.values(), "epochs_to_100", "1234", "987")
    assert "Sort: accuracy" in page and "Study 2: the 9-point checkerboard MLP" in page
    assert genai(browser) is None
    rows = {exp: browser.find_element(By.XPATH, f"//a[normalize-space()='{name}']")
            for exp, name in NAMES.items()}
    assert rows["azure-nosh"].location["y"] < rows["lofty-dado"].location["y"]  # accuracy 1.0 first
    assert param_columns(browser)[:2] == ["params.`hid`", "params.`checker.train.lr`"]


def test_the_printed_curves_link_charts_only_the_per_epoch_curves(ui, browser, shots):
    base, links = ui
    page = open_page(browser, base, links["checker", "curves"], shots / "mlflow-compare.png",
                     *(f"{name} (accuracy)" for name in NAMES.values()), f"{NAMES['lofty-dado']} (loss)")
    assert "epochs_to_100" not in page  # a final value, not a curve: no chart of it
    assert genai(browser) is None


def test_plain_mlflow_ui_opens_a_study_on_its_genai_overview_until_model_training_is_clicked(
        plain_ui, fresh_browser, tmp_path, shots):
    """What remains for plain `mlflow ui` (README, docs/compare.md): MLflow 3.17 takes the
    mode from the URL or the browser's stored choice, never from the experiment's kind tag."""
    open_page(fresh_browser, plain_ui, f"{plain_ui}/", tmp_path / "home.png", "Model training", "checker")
    click(fresh_browser, "//a[normalize-space()='checker']")
    WebDriverWait(fresh_browser, PAGE_TIMEOUT_S).until(lambda d: "/overview" in d.current_url)
    wait_for(fresh_browser, shots / "mlflow-genai-overview.png", "Token Usage")


def test_plain_mlflow_ui_after_one_click_on_model_training_stays_on_training_runs(
        plain_ui, fresh_browser, shots):
    """Home, one click on "Model training", the study, tick two runs, Compare, Experiments,
    the study: no page in GenAI mode, the study always on its runs."""
    driver, base = fresh_browser, plain_ui
    open_page(driver, base, f"{base}/", shots / "mlflow-home.png", "Model training", "checker")
    assert "/overview" not in driver.current_url and "Token Usage" not in text(driver)  # home
    click(driver, "//*[normalize-space(text())='Model training']")
    for visit in (1, 2):
        click(driver, "//a[normalize-space()='checker']")
        wait_for(driver, shots / f"plain-runs-{visit}.png", *NAMES.values())
        assert "/runs" in driver.current_url and genai(driver) is None, genai(driver)
        if visit == 2:
            break
        for box in driver.find_elements(By.CSS_SELECTOR, "input[aria-label^='Press Space to toggle row"
                                                         " selection']")[:2]:
            box.find_element(By.XPATH, "./..").click()
        click(driver, "//button[normalize-space()='Compare']")
        wait_for(driver, shots / "mlflow-compare-runs.png", "Comparing 2 Runs from 1 Experiment",
                 *NAMES.values())
        assert genai(driver) is None and "Runs" in text(driver), genai(driver)  # the sidebar
        click(driver, "//a[substring(@href, string-length(@href) - 13) = '#/experiments']")
        wait_for(driver, shots / "plain-experiments.png", "checker", "kmnist")
        assert genai(driver) is None, genai(driver)
