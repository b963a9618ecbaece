"""The dashboard in a real browser: Debian's Chromium driven by Playwright (never Playwright's own
downloaded browsers). Against a serve started by tests/dashboard_browser.rs:

1. the flows list shows every flow with its hooks;
2. a flow page watches its running step's node turn `succeeded` without a reload;
3. the Cancel button of a running flow, and the flow is seen `cancelled`;
4. a child link from a parent's page and back, and the parent link from the child.

Screenshots go to the folder given; the flow page's is also the README's picture when
TASKFLOW_UPDATE_SCREENSHOT names where to write it.

    python dashboard_browser.py URL CHROMIUM SCREENSHOTS PARENT_ID
"""

import json
import os
import sys
import urllib.request

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError as error:
    sys.exit(f"playwright is not installed in this Python ({error}); run the tests through scripts/test")

BASE, CHROMIUM, SHOTS, PARENT = sys.argv[1:5]
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


def api(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def shot(page, name):
    path = os.path.join(SHOTS, name + ".png")
    page.screenshot(path=path, full_page=True)
    print("screenshot", path)
    return path


def main():
    os.makedirs(SHOTS, exist_ok=True)
    api("POST", "/v1/flows", {"id": "watched", "name": "nightly digest", "sync_mode": "mirrored"})
    api("POST", "/v1/flows/watched/report", {
        "status": "running",
        "steps": [{"name": "fetch", "status": "succeeded", "output": "3 pages"},
                  {"name": "summarize", "status": "running"}],
    })
    api("POST", "/v1/flows", {"id": "sleepy", "name": "long job", "spec": {
        "steps": [{"id": "wait", "action": "shell", "with": {"command": "sleep 60"}}]}})

    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.set_default_timeout(TIMEOUT_MS)
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))

        # 1. The list, with the hooks scripts find rows by.
        page.goto(BASE + "/")
        expect(page.locator('tr[data-flow-id="watched"]')).to_have_attribute("data-status", "running")
        expect(page.locator('tr[data-flow-id="sleepy"]')).to_be_visible()
        shot(page, "list")

        # 2. A running step's node turns `succeeded` while the page stays (no reload).
        page.goto(BASE + "/flows/watched")
        node = page.locator('#graph g[data-step="summarize"]')
        expect(node).to_have_attribute("data-status", "running")
        expect(node).to_have_attribute("data-flow-id", "watched")
        page.evaluate("window.__loadedOnce = true")
        page.wait_for_function("document.body.dataset.connected === 'true'")
        api("POST", "/v1/flows/watched/report", {
            "status": "succeeded",
            "steps": [{"name": "summarize", "status": "succeeded", "output": "<script>alert(1)</script>"}],
        })
        expect(page.locator('#graph g[data-step="summarize"]')).to_have_attribute("data-status", "succeeded")
        expect(page.locator("#summary .status")).to_have_attribute("data-status", "succeeded")
        assert page.evaluate("window.__loadedOnce === true"), "the page was reloaded"
        page.locator('details[data-step="summarize"] summary').click()
        expect(page.locator('details[data-step="summarize"] pre[data-part="output"]')).to_have_text(
            "<script>alert(1)</script>")
        shot(page, "flow")
        readme = os.environ.get("TASKFLOW_UPDATE_SCREENSHOT")
        if readme:
            page.set_viewport_size({"width": 900, "height": 700})
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=readme, full_page=False)
            print("README screenshot", readme)

        # 3. Cancel, by keyboard: the button is a real button.
        page.goto(BASE + "/flows/sleepy")
        expect(page.locator("#summary .status")).to_have_attribute("data-status", "running")
        cancel = page.get_by_role("button", name="Cancel", exact=True)
        cancel.focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/flows/sleepy")
        # Sticky cancel: the flow ends once its running step has been stopped.
        expect(page.locator("#summary .status")).to_have_attribute(
            "data-status", "cancelled", timeout=30_000)
        expect(page.locator("#summary .status .word")).to_have_text("cancelled")
        shot(page, "cancelled")

        # 4. From the parent to its child and back, and up from the child.
        page.goto(BASE + "/flows/" + PARENT)
        child_link = page.locator("#steps td a[data-flow-id]").first
        child = child_link.get_attribute("data-flow-id")
        child_link.click()
        page.wait_for_url("**/flows/" + child)
        up = page.locator('#summary a[rel="up"]')
        expect(up).to_have_attribute("data-flow-id", PARENT)
        shot(page, "child")
        page.go_back()
        page.wait_for_url("**/flows/" + PARENT)
        expect(page.locator(f'#steps a[data-flow-id="{child}"]')).to_be_visible()
        page.go_forward()
        page.wait_for_url("**/flows/" + child)
        page.locator('#summary a[rel="up"]').click()
        page.wait_for_url("**/flows/" + PARENT)

        browser.close()
    blocked = [error for error in errors if "Content Security Policy" in error]
    assert not blocked, f"the policy blocked something the pages need: {blocked}"
    assert not errors, f"errors in the browser's console: {errors}"
    print("ok")


if __name__ == "__main__":
    main()
