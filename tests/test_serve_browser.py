"""The ``vsent serve`` web page in a real browser: Debian's chromium driven by Selenium.

Uploads an image through the page's file input and reads the label and the probability the page
shows, compared with :class:`vsent.predict.Predictor` on the same file; checks that the page
fits a phone screen. Skipped, with the reason, when chromium or chromedriver is missing
(``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytest.importorskip("uvicorn", reason="vsent serve needs the serve extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")
if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
    pytest.skip(f"browser test needs {CHROMIUM} and {CHROMEDRIVER} "
                "(apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from test_serve import (  # noqa: E402
    expected_probs,
    image_bytes,
    make_checkpoint,
    post,
    running_server,
)


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=390,844"):  # a phone's screen width
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_uploads_an_image_and_shows_label_and_probability(tmp_path, browser):
    ckpt = make_checkpoint(tmp_path / "model.pt")
    picture = tmp_path / "sunset.jpg"
    picture.write_bytes(image_bytes(7, (80, 60), tint=(1.0, 0.6, 0.3)))
    want = float(expected_probs(ckpt, [picture.read_bytes()])[0])
    with running_server(ckpt) as server:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 60)
        # the model card line is filled in from /v1/model
        wait.until(lambda d: "smallcnn" in d.find_element(By.ID, "model-info").text)
        browser.find_element(By.ID, "file-input").send_keys(str(picture))
        card = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".result")))
        label = card.find_element(By.CSS_SELECTOR, ".label").text.strip().lower()
        prob = card.find_element(By.CSS_SELECTOR, ".prob")
        shown = float(prob.text)
        assert card.find_element(By.CSS_SELECTOR, ".name").text == "sunset.jpg"
        assert label == ("positive" if want > 0.5 else "negative")
        assert shown == pytest.approx(want, abs=6e-4)  # the page rounds to 3 decimals
        assert float(prob.get_attribute("data-value")) == pytest.approx(want, abs=1e-5)
        # the bar's fill is the probability
        fill = card.find_element(By.CSS_SELECTOR, ".bar > span")
        bar = card.find_element(By.CSS_SELECTOR, ".bar")
        assert fill.size["width"] / bar.size["width"] == pytest.approx(want, abs=0.02)
        # the heat map (checked by default) replaced the picture with a PNG overlay
        src = card.find_element(By.TAG_NAME, "img").get_attribute("src")
        assert src.startswith("data:image/png;base64,")
        # an all-zero map is said under the picture, as the API's heatmap_empty says
        (row,) = post(server.url, [("sunset.jpg", picture.read_bytes())],
                      explain="true").json()["results"]
        noted = "empty heat map" in card.text
        assert noted is row["heatmap_empty"]
        # usable at a phone's width: nothing wider than the screen
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0


def test_page_splits_a_large_drop_and_switches_off_what_the_model_cannot_do(tmp_path, browser):
    import dataclasses

    from vsent.models.checkpoint import load_checkpoint
    from vsent.predict import Predictor
    from vsent.serve import Limits, ServeConfig

    ckpt = make_checkpoint(tmp_path / "model.pt")
    model, _ = load_checkpoint(ckpt)
    model.info = dataclasses.replace(model.info, cam_layer="")  # no Grad-CAM layer
    pictures = []
    for i in range(5):
        pictures.append(tmp_path / f"p{i}.jpg")
        pictures[-1].write_bytes(image_bytes(20 + i, (60, 50)))
    want = expected_probs(ckpt, [p.read_bytes() for p in pictures])
    config = ServeConfig(limits=Limits(max_images=2))  # 5 images: three requests
    with running_server(ckpt, config=config, predictor=Predictor(model, device="cpu")) as server:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: "smallcnn" in d.find_element(By.ID, "model-info").text)
        box = browser.find_element(By.ID, "opt-explain")
        assert not box.is_selected() and not box.is_enabled()  # heat map: not for this model
        browser.find_element(By.ID, "file-input").send_keys("\n".join(map(str, pictures)))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result")) == 5)
        wait.until(lambda d: d.find_element(By.ID, "status").text == "")
        cards = browser.find_elements(By.CSS_SELECTOR, ".result")
        shown = {c.find_element(By.CSS_SELECTOR, ".name").text:
                 float(c.find_element(By.CSS_SELECTOR, ".prob").get_attribute("data-value"))
                 for c in cards}
        assert not [c.find_element(By.CSS_SELECTOR, ".error") for c in cards
                    if c.find_elements(By.CSS_SELECTOR, ".error")]
        for p, w in zip(pictures, want, strict=True):
            assert shown[p.name] == pytest.approx(w, abs=1e-5)
        # the pictures are shown, and their object URLs released once they are
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.result img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"))
        released = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.all([...document.querySelectorAll('.result img')].map("
            "  i => fetch(i.src).then(() => false, () => true))).then(done);")
        assert released == [True] * 5
        metrics = server.app.state.service.responses
        assert metrics == {200: 3}  # split by the page into requests of at most 2 images


def test_api_docs_render_without_the_internet(tmp_path, browser):
    """/docs (Swagger UI) and /redoc draw the API from the service's own scripts: this machine
    reaches no CDN, so a page that needed one would stay blank."""
    ckpt = make_checkpoint(tmp_path / "model.pt")
    with running_server(ckpt) as server:
        wait = WebDriverWait(browser, 60)
        browser.get(server.url + "/docs")
        op = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, ".opblock-summary-path[data-path='/v1/predict']")))
        assert "/v1/predict" in op.text
        browser.get(server.url + "/redoc")
        wait.until(lambda d: "Score images" in d.find_element(By.TAG_NAME, "body").text)


def test_page_answers_a_dropped_file_that_is_no_picture(tmp_path, browser):
    """A .txt picked with the pictures (or alone) gets its own card with the service's reason;
    the page used to drop it without a word (alone: nothing happened at all)."""
    ckpt = make_checkpoint(tmp_path / "model.pt")
    picture = tmp_path / "a.jpg"
    picture.write_bytes(image_bytes(3))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with running_server(ckpt) as server:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: "smallcnn" in d.find_element(By.ID, "model-info").text)
        browser.find_element(By.ID, "file-input").send_keys(f"{picture}\n{notes}")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result")) == 2)
        errors = {c.find_element(By.CSS_SELECTOR, ".name").text:
                  [e.text for e in c.find_elements(By.CSS_SELECTOR, ".error")]
                  for c in browser.find_elements(By.CSS_SELECTOR, ".result")}
        assert errors == {"a.jpg": [],
                          "notes.txt": ["notes.txt (part 2): cannot identify image file"]}
        browser.find_element(By.ID, "file-input").send_keys(str(notes))  # alone
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result")) == 3)
        wait.until(lambda d: "cannot identify image file" in d.find_element(By.ID, "status").text)
        assert server.app.state.service.responses == {200: 1, 422: 1}
