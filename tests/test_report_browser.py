"""The committed report.html as headless chromium lays it out (element positions read from the
rendered page, not a saved picture): the summary and the contents lie within the first screen
of 1280 x 800, and every figure's caption names the stage that made it."""

import pytest
import yaml

from conftest import CHROMEDRIVER, CHROMIUM, HEADLESS, ROOT, webdriver_or_skip

webdriver = webdriver_or_skip()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in HEADLESS + [f"--user-data-dir={tmp_path_factory.mktemp('profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        driver.get((ROOT / "reports/report.html").as_uri())
        yield driver
    finally:
        driver.quit()


def test_the_summary_and_the_contents_are_in_the_first_screen(page):
    box = page.execute_script("""
        const after = (id) => document.getElementById(id).nextElementSibling;
        return {height: window.innerHeight, width: window.innerWidth,
                summary: after('summary').getBoundingClientRect().bottom,
                items: after('summary').querySelectorAll('li').length,
                contents: after('contents').getBoundingClientRect().bottom,
                links: after('contents').querySelectorAll('a').length};""")
    assert (box["width"], box["height"]) == (1280, 800)
    assert box["items"] >= 7 and box["links"] >= 8  # a line per question, a link per section
    assert box["summary"] <= box["contents"] <= 800, box


def test_every_figure_caption_names_its_stage(page):
    stages = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    captions = page.execute_script("""
        return [...document.querySelectorAll('figure')].map(f => {
            const codes = f.querySelectorAll('figcaption code');
            return codes.length ? codes[codes.length - 1].textContent : '';});""")
    assert len(captions) > 20
    assert all(c in stages for c in captions), [c for c in captions if c not in stages]
