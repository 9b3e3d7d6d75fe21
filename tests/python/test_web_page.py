"""The web chat page (GET /) in a real headless Chromium driven by Selenium (Debian's
chromium + chromium-driver, installed by scripts/install-deps.sh), against the server on
the real model: a reply streams in, renders its code block, a follow-up turn keeps the
conversation, and Stop ends a long reply with its slot given back. The same page against
both servers: the Python one and examples/swift-server (built by `make swift-server`)."""
import json
import shutil
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ServerProcess


@pytest.fixture(scope="module", params=["python", "swift"])
def server(model_path, request):
    if request.param == "swift":
        from test_swift_server import SwiftServer   # fails at import when the binary is not built
        s = SwiftServer(model_path, "--parallel", "1", "--queue", "4")
    else:
        s = ServerProcess(model_path, "--parallel", "1", "--queue", "4")
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "chromium and chromedriver are missing: run scripts/install-deps.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def running(server):
    with urllib.request.urlopen(server.url + "/health", timeout=30) as r:
        return json.load(r)["running"]


def send(browser, text):
    box = browser.find_element(By.ID, "input")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "send").click()


def last_reply(browser):
    return browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]


def test_streamed_reply_code_block_follow_up_and_stop(server, browser):
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 120, poll_frequency=0.05)
    wait.until(lambda b: b.find_element(By.ID, "model").text not in ("", "…"))
    browser.find_element(By.CSS_SELECTOR, "#settings summary").click()
    temperature = browser.find_element(By.ID, "temperature")
    temperature.clear()
    temperature.send_keys("0")
    system = browser.find_element(By.ID, "system")
    system.clear()
    system.send_keys("You are a concise coding assistant.")

    # 1. The reply streams: seen partly written while the page is still streaming.
    send(browser, "Write a Python function that adds two numbers. Reply with only a code block.")
    partial = wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "streaming"
                         and last_reply(b).text.strip() and last_reply(b).text)
    wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "idle")
    final = last_reply(browser).text
    assert len(final) > len(partial) or final == partial
    code = last_reply(browser).find_elements(By.CSS_SELECTOR, "pre code")
    assert code and "def " in code[0].text and "return" in code[0].text, last_reply(browser).get_attribute("innerHTML")
    assert "```" not in final

    # 2. A follow-up turn: the page sends the conversation, the reply knows it.
    send(browser, "Now rename the function to plus. Reply with only a code block.")
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 2
               and b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "idle")
    assert "plus" in last_reply(browser).text

    # 3. Stop: a long reply (in a new chat) is cut, marked stopped, and the server frees its slot.
    browser.find_element(By.ID, "clear").click()
    assert not browser.find_elements(By.CSS_SELECTOR, ".msg")
    max_tokens = browser.find_element(By.ID, "max-tokens")
    max_tokens.clear()
    max_tokens.send_keys("2000")
    send(browser, "Write a very long essay about the history of computing.")
    wait.until(lambda b: len(last_reply(b).text) > 40 and running(server) == 1)
    stop = browser.find_element(By.ID, "stop")
    assert stop.is_enabled()
    stop.click()
    wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "stopped")
    assert "(stopped)" in last_reply(browser).text
    assert not browser.find_element(By.ID, "stop").is_enabled()
    deadline = time.monotonic() + 5
    while running(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(server) == 0, server.log()[-2000:]
    assert "(client left; cancelled)" in server.log()
