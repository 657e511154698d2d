"""The console's browser flows in real headless Chromium (Selenium), against the real
gateway in front of MapProxy and pygeoapi. Started by tests/integration/console.rs,
which passes:

  TG_BASE          the gateway's URL (http://127.0.0.1:PORT)
  TG_ROOT          a token with admin on `maps` and `places`
  TG_VIEWER        a token with view/viewPlus only (not share anywhere)
  TG_SHOTS         where screenshots go (target/console-screenshots)
  TG_CHROMEDRIVER  the chromedriver binary

Prints one line per step and `ALL FLOWS PASSED` at the end; any failure raises.
"""

import calendar
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["TG_BASE"].rstrip("/")
ROOT = os.environ["TG_ROOT"]
VIEWER = os.environ["TG_VIEWER"]
SHOTS = os.environ["TG_SHOTS"]
WAIT = 30  # seconds: generous bounds, polled


START = time.time()


def step(msg):
    print("step: [%5.1fs] %s" % (time.time() - START, msg), flush=True)


def http(method, path, token=None, body=None):
    """(status, parsed JSON or text) of a request straight to the gateway."""
    url = path if path.startswith("http") else BASE + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def browser():
    opts = webdriver.ChromeOptions()
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1000",
        "--user-data-dir=" + tempfile.mkdtemp(prefix="tg-chromium-"),
    ):
        opts.add_argument(flag)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(os.environ["TG_CHROMEDRIVER"]), options=opts)


def shot(d, name):
    path = os.path.join(SHOTS, name + ".png")
    d.save_screenshot(path)
    step("screenshot " + path)


def wait(d, cond, what):
    try:
        return WebDriverWait(d, WAIT, poll_frequency=0.2).until(cond)
    except Exception:
        shot(d, "failed-" + what.replace(" ", "-"))
        raise AssertionError("timed out waiting for " + what + "; console log: " + json.dumps(d.get_log("browser")))


def visible(d, el_id):
    return wait(d, EC.visibility_of_element_located((By.ID, el_id)), "#" + el_id + " visible")


def text_in(d, el_id, text):
    wait(d, EC.text_to_be_present_in_element((By.ID, el_id), text), repr(text) + " in #" + el_id)


def sign_in(d, token):
    d.get(BASE + "/admin/")
    d.execute_script("sessionStorage.clear()")
    d.get(BASE + "/admin/")
    visible(d, "token-input").send_keys(token)
    d.find_element(By.ID, "signin-button").click()


def click_lonlat(d, lon, lat):
    """Clicks the create map at a place (the canvas is drawn scaled by CSS)."""
    canvas = d.find_element(By.ID, "c-map")
    x, y = d.execute_script(
        """const m = window.tilegateCreateMap, c = m.canvas, r = c.getBoundingClientRect();
        const [sx, sy] = m.toScreen(...window.TileMapProject(arguments[0], arguments[1]));
        return [sx * r.width / c.width - r.width / 2, sy * r.height / c.height - r.height / 2];""",
        lon, lat)
    ActionChains(d).move_to_element_with_offset(canvas, int(x), int(y)).click().perform()


def selected_tiles(d):
    return d.execute_script("return window.tilegateCreateMap.getTiles()")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    d = browser()
    try:
        flows(d)
    finally:
        logs = [l for l in d.get_log("browser") if l.get("level") == "SEVERE"]
        d.quit()
    # A console that violates its own CSP, or throws, logs SEVERE entries.
    bad = [l for l in logs if "Content Security Policy" in l.get("message", "") or "Uncaught" in l.get("message", "")]
    assert not bad, "console errors: " + json.dumps(bad)
    print("ALL FLOWS PASSED", flush=True)


def flows(d):
    # -- malformed paste: a clear error, and the paste is not kept ---------------------
    step("malformed paste")
    sign_in(d, "tg_not-a-token")
    text_in(d, "signin-error", "not a tilegate token")
    assert d.find_element(By.ID, "app").get_attribute("hidden") is not None
    assert d.execute_script("return sessionStorage.length") == 0
    shot(d, "01-signin-malformed")

    # -- sign in -------------------------------------------------------------------
    step("sign in")
    sign_in(d, ROOT)
    visible(d, "app")
    assert ROOT not in d.page_source, "the signed-in token is shown in the page"
    assert d.get_cookies() == [], "the console set a cookie"
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tree .node")) >= 3, "the path tree")
    ids = [n.text for n in d.find_elements(By.CSS_SELECTOR, "#tree .node")]
    assert ids == ["maps", "basemap", "places"], ids

    # -- Integrate: every URL the panel offers answers through the gateway -------------
    for layer in ("basemap", "places"):
        step("integrate " + layer)
        d.find_element(By.CSS_SELECTOR, '#tree .node[data-path="%s"]' % layer).click()
        text_in(d, "integrate", "Integrate: " + layer)
        rows = d.find_elements(By.CSS_SELECTOR, "#integrate tr.integration")
        assert rows, "no Integrate URLs for " + layer
        for row in rows:
            check = row.get_attribute("data-check")
            status, body = http("GET", check, ROOT)
            assert status == 200, (row.get_attribute("data-protocol"), check, status, str(body)[:300])
            shown = [i.get_attribute("value") for i in row.find_elements(By.CSS_SELECTOR, "input")]
            assert any("token=YOUR_TOKEN" in s for s in shown), shown
            assert not any(ROOT in s for s in shown)
            step("  %s %s -> %d" % (row.get_attribute("data-protocol"), check, status))
        shot(d, "02-integrate-" + layer)

    # -- create a fenced, property-fenced, one-week token by clicking tiles -------------
    step("create a fenced token")
    d.find_element(By.CSS_SELECTOR, '.tab[data-view="create-view"]').click()
    visible(d, "create-form")
    Select(d.find_element(By.ID, "c-path")).select_by_value("places")
    Select(d.find_element(By.ID, "c-tier")).select_by_value("share")
    d.find_element(By.ID, "c-desc").send_keys("e2e partner, western Europe")
    assert Select(d.find_element(By.ID, "c-life")).first_selected_option.get_attribute("value") == "604800"
    pick = d.find_element(By.ID, "c-pick-zoom")
    pick.clear()
    pick.send_keys("4")
    d.find_element(By.ID, "c-desc").click()  # change event
    d.execute_script("window.tilegateCreateMap.setZoom(3); window.tilegateCreateMap.cx = 0.52; window.tilegateCreateMap.cy = 0.33;"
                     "window.tilegateCreateMap.draw()")
    time.sleep(0.3)
    click_lonlat(d, 2.35, 48.86)    # Paris: tile 4/8/5
    click_lonlat(d, -3.0, 51.0)     # 4/7/5 (London's) ...
    click_lonlat(d, -3.5, 50.5)     # ... clicked again: toggled off
    tiles = selected_tiles(d)
    assert tiles == [{"tileX": 8, "tileY": 5, "zoom": 4}], tiles
    assert d.find_element(By.ID, "c-fence-on").is_selected()
    d.find_element(By.ID, "c-props-on").click()
    d.find_element(By.CSS_SELECTOR, '#c-props input[data-prop="secret_note"]').click()
    text_in(d, "c-tilecount", "1 tile selected")
    shot(d, "03-create-fence")

    # A too-wide request is refused with the API's own message next to the form.
    life = Select(d.find_element(By.ID, "c-life"))
    d.find_element(By.ID, "c-maxzoom-on").click()
    d.execute_script("document.getElementById('c-maxzoom').max = '30'; document.getElementById('c-maxzoom').value = '30'")
    d.find_element(By.ID, "c-submit").click()
    text_in(d, "c-error", "maxZoom")
    assert d.find_elements(By.CSS_SELECTOR, ".field-error"), "the problem is shown next to its field"
    shot(d, "04-create-refused")
    d.find_element(By.ID, "c-maxzoom-on").click()
    life.select_by_value("604800")
    d.find_element(By.ID, "c-submit").click()
    visible(d, "c-result")
    token = d.find_element(By.ID, "c-token").get_attribute("value")
    assert token.startswith("tg_") and len(token) == 52, token
    text_in(d, "c-result", "shown this once")
    assert d.find_elements(By.CSS_SELECTOR, "#c-result-integrate tr.integration")
    shot(d, "05-created")

    status, me = http("GET", "/account/security/paths", token)
    assert status == 200, me
    fenced = [p for p in me["paths"] if p["id"] == "places"][0]["access"]
    assert fenced["geoFence"]["tiles"] == [{"tileX": 8, "tileY": 5, "zoom": 4}], fenced
    assert "secret_note" not in (fenced["propertyFence"] or []), fenced
    exp = calendar.timegm(time.strptime(me["token"]["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(exp - (time.time() + 604800)) < 600, me["token"]

    # -- use it: inside 200 (no hidden property), outside 403 ---------------------------
    step("use the new token")
    items = "/ogc/api/places/collections/places/items?f=json&bbox="
    status, inside = http("GET", items + "2,48,3,49", token)
    assert status == 200, inside
    names = [f["properties"].get("name") for f in inside["features"]]
    assert "Paris" in names, names
    assert all("secret_note" not in f["properties"] for f in inside["features"]), inside
    status, outside = http("GET", items + "-1,51,-0.5,52", token)
    assert status == 403, (status, outside)
    step("  inside 200 %s, outside %d %s" % (names, status, outside.get("reason") if isinstance(outside, dict) else ""))

    # A child made from it, for the cascade.
    status, child = http("POST", "/account/security/accessToken", token, {
        "description": "e2e child of the partner", "validFor": 3600,
        "accessList": [{"pathId": "places", "access": {"accessTier": "view"}}]})
    assert status == 201, child

    # -- the list: last used after a request (when the API reports usage) ---------------
    step("token list")
    d.find_element(By.CSS_SELECTOR, '.tab[data-view="tokens-view"]').click()
    row_sel = 'tr[data-description="e2e partner, western Europe"]'
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, row_sel)), "the new token in the list")
    status, listed = http("GET", "/account/security/accessToken?pageSize=100", ROOT)
    mine = [t for t in listed["result"] if t["description"] == "e2e partner, western Europe"][0]
    assert "lastUsedAt" in mine and "requestCount" in mine, mine
    deadline = time.time() + WAIT
    while True:
        d.find_element(By.ID, "t-refresh").click()
        time.sleep(0.5)
        cell = d.find_element(By.CSS_SELECTOR, row_sel + " td.last-used").text
        if cell not in ("never", "—", ""):
            break
        assert time.time() < deadline, "last used never shown: " + cell
        time.sleep(1)
    assert "127.0.0.1" in cell, cell
    count = d.find_element(By.CSS_SELECTOR, row_sel + " td.requests").text
    assert count.isdigit() and int(count) >= 1, count
    step("  last used " + cell + ", " + count + " requests")
    assert "1 tile" in d.find_element(By.CSS_SELECTOR, row_sel).text
    d.find_element(By.CSS_SELECTOR, row_sel + " button.preview").click()
    text_in(d, "t-preview-label", "1 tile")
    tree = d.find_element(By.ID, "t-tree").text
    assert "e2e child of the partner" in tree, tree
    shot(d, "06-token-list")

    # -- revoke it: the confirmation names the child; both stop working -----------------
    step("revoke with cascade")
    d.find_element(By.CSS_SELECTOR, row_sel + " button.revoke").click()
    visible(d, "confirm")
    text_in(d, "confirm-body", "e2e child of the partner")
    shot(d, "07-revoke-confirm")
    d.find_element(By.ID, "confirm-ok").click()
    wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, row_sel), "the revoked token gone from the list")
    for t in (token, child["token"]):
        status, body = http("GET", items + "2,48,3,49", t)
        assert status == 401 and body.get("reason") == "revoked_token", (status, body)
    step("  both refused 401 revoked_token")

    # -- a token that is not share anywhere: a clear message, no form ------------------
    step("not share")
    d.find_element(By.ID, "signout").click()
    sign_in(d, VIEWER)
    visible(d, "app")
    text_in(d, "notice", "cannot create tokens")
    d.find_element(By.CSS_SELECTOR, '.tab[data-view="create-view"]').click()
    visible(d, "no-share")
    assert not d.find_element(By.ID, "create-form").is_displayed()
    shot(d, "08-not-share")

    # -- a session whose token is revoked returns to sign-in at the next call ------------
    step("revoked session")
    status, victim = http("POST", "/account/security/accessToken", ROOT, {
        "description": "e2e session to revoke", "validFor": 3600,
        "accessList": [{"pathId": "places", "access": {"accessTier": "share"}}]})
    assert status == 201, victim
    d.find_element(By.ID, "signout").click()
    sign_in(d, victim["token"])
    visible(d, "app")
    assert http("DELETE", "/account/security/accessToken/" + victim["id"], ROOT)[0] == 204
    d.find_element(By.CSS_SELECTOR, '.tab[data-view="tokens-view"]').click()
    visible(d, "signin")
    text_in(d, "signin-error", "revoked")
    assert d.execute_script("return sessionStorage.length") == 0

    # -- an expired session returns to sign-in ----------------------------------------
    step("expired session")
    status, short = http("POST", "/account/security/accessToken", ROOT, {
        "description": "e2e short session", "validFor": 8,
        "accessList": [{"pathId": "places", "access": {"accessTier": "share"}}]})
    assert status == 201, short
    SHORT = short["token"]
    sign_in(d, SHORT)
    visible(d, "app")
    status, me = http("GET", "/account/security/paths", SHORT)
    assert status == 200, me
    left = calendar.timegm(time.strptime(me["token"]["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")) - time.time()
    step("  waiting %.0f s for the token to expire" % max(left, 0))
    time.sleep(max(left, 0) + 1.5)
    visible(d, "signin")
    text_in(d, "signin-error", "expired")
    # And a reload with the stale session finds the API's 401 the same way.
    d.execute_script("sessionStorage.setItem('tilegate.console.token', arguments[0])", SHORT)
    d.get(BASE + "/admin/")
    text_in(d, "signin-error", "expired")
    shot(d, "09-expired")

    # -- the README's picture: a fence drawn by a rectangle and clicks ------------------
    step("docs screenshot")
    d.set_window_size(1400, 1150)
    sign_in(d, ROOT)
    visible(d, "app")
    d.find_element(By.CSS_SELECTOR, '.tab[data-view="create-view"]').click()
    visible(d, "create-form")
    Select(d.find_element(By.ID, "c-path")).select_by_value("places")
    Select(d.find_element(By.ID, "c-tier")).select_by_value("viewPlus")
    d.find_element(By.ID, "c-desc").send_keys("Partner X: Benelux and the Rhine, z <= 14")
    pick = d.find_element(By.ID, "c-pick-zoom")
    pick.clear()
    pick.send_keys("6")
    d.find_element(By.ID, "c-desc").click()
    d.execute_script("const m = window.tilegateCreateMap; m.setZoom(4); m.cx = 0.515; m.cy = 0.335; m.draw()")
    time.sleep(0.3)
    d.find_element(By.CSS_SELECTOR, 'input[name=c-mode][value=rect]').click()
    canvas = d.find_element(By.ID, "c-map")
    point = lambda lon, lat: d.execute_script(
        """const m = window.tilegateCreateMap, c = m.canvas, r = c.getBoundingClientRect();
        const [sx, sy] = m.toScreen(...window.TileMapProject(arguments[0], arguments[1]));
        return [Math.round(sx * r.width / c.width - r.width / 2), Math.round(sy * r.height / c.height - r.height / 2)];""",
        lon, lat)
    (x0, y0), (x1, y1) = point(3.0, 53.0), point(8.0, 49.5)
    ActionChains(d).move_to_element_with_offset(canvas, x0, y0).click_and_hold().move_by_offset(
        (x1 - x0) // 2, (y1 - y0) // 2).move_by_offset(x1 - x0 - (x1 - x0) // 2, y1 - y0 - (y1 - y0) // 2).release().perform()
    d.find_element(By.CSS_SELECTOR, 'input[name=c-mode][value=toggle]').click()
    click_lonlat(d, 12.5, 41.9)   # Rome
    click_lonlat(d, 12.57, 55.68)  # Copenhagen
    d.find_element(By.ID, "c-maxzoom-on").click()
    d.execute_script("const s = document.getElementById('c-maxzoom'); s.value = '14'; s.dispatchEvent(new Event('input'))")
    d.find_element(By.ID, "c-props-on").click()
    d.find_element(By.CSS_SELECTOR, '#c-props input[data-prop="secret_note"]').click()
    n = len(selected_tiles(d))
    assert n == 6, selected_tiles(d)  # 2 x 2 from the rectangle, 2 clicked
    text_in(d, "c-tilecount", "%d tiles selected" % n)
    shot(d, "create-fence")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, file=sys.stderr, flush=True)
        raise
