"""``up2 demo`` in a real browser: headless Chromium (Debian's package) driven by Playwright
uploads an image and sees every task's output; the screenshot is kept in test-output/."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ARTIFACTS, UP2

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason='no Chromium on this machine (Debian: apt-get '
                                                'install chromium; .ci/run installs it)'),
]
# Flags for a machine without a display or network: no sandbox as root, no GPU, and none of
# the background connections a closed network refuses.
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--disable-dev-shm-usage']


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture(scope='module')
def demo_url(tiny_generalist, tmp_path_factory):
    """``up2 demo`` started as a user would, on a free port of 127.0.0.1."""
    config, checkpoint, _ = tiny_generalist
    port = _free_port()
    log = (tmp_path_factory.mktemp('demo') / 'server.log').open('w')
    env = {k: v for k, v in os.environ.items() if not k.startswith('UP2_')}
    server = subprocess.Popen([str(UP2), 'demo', str(config), str(checkpoint), '--port',
                               str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    deadline = time.time() + 300
    while time.time() < deadline:
        if server.poll() is not None:
            pytest.fail(f'up2 demo exited with {server.returncode}: see {log.name}')
        try:
            with urllib.request.urlopen(url + '/api/info', timeout=5):
                break
        except OSError:
            time.sleep(1)
    else:
        pytest.fail(f'up2 demo did not answer within 300 s: see {log.name}')
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.fixture
def page():
    playwright_api = pytest.importorskip('playwright.sync_api',
                                         reason="Playwright is not installed (pip install "
                                                "'up2[dev]')")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={'width': 1280, 'height': 900})
        finally:
            browser.close()


def test_upload_shows_a_caption_and_drawn_boxes_and_saves_a_screenshot(demo_url, page,
                                                                     tiny_generalist):
    image = sorted(tiny_generalist[2].glob('*.png'))[1]
    page.goto(demo_url)
    page.wait_for_selector('#examples img')  # the page asked the server for its examples
    # what the model was trained on, above its answers (the checkpoint's data card)
    assert page.inner_text('#card').startswith("Trained on 'shapes_generalist_e2e'")
    page.set_input_files('#file', str(image))
    page.fill('#texts', 'a large red circle.\ntwo small blue squares.')
    page.fill('#threshold', '0')  # 4 training steps: draw every region, however unsure
    page.click('#run')
    page.wait_for_selector('.task[data-task=captioning] .caption', timeout=120_000)
    caption = page.inner_text('.task[data-task=captioning] .caption').strip()
    assert caption
    assert page.locator('.task[data-task=detection] svg rect.box').count() >= 1
    assert page.locator('.task[data-task=segmentation] img.masks').count() == 1
    assert page.locator('.task[data-task=classification] table.ranking tr').count() == 5
    assert page.locator('.task[data-task=retrieval] table.ranking tr').count() == 2
    assert 'image encoding' in page.inner_text('#timings')
    assert page.inner_text('#error') == ''
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / 'demo_browser.png'
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    print(f'\nscreenshot: {shot}', file=sys.stderr)


def test_a_file_that_is_not_an_image_gets_a_message_on_the_page(demo_url, page, tmp_path):
    notes = tmp_path / 'notes.png'
    notes.write_text('not really a picture')
    page.goto(demo_url)
    page.set_input_files('#file', str(notes))
    page.click('#run')
    page.wait_for_function("document.getElementById('error').textContent.length > 0",
                           timeout=60_000)
    assert page.inner_text('#error') == \
        "'notes.png' is not an image PIL can read (PNG, JPEG, BMP, WebP, TIFF...)"
