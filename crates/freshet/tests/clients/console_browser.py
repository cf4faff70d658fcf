"""Loads every page of the web console in headless chromium (Playwright).

Run by crates/freshet/tests/web_console.rs against a server with the
mission's pipeline. Environment: CONSOLE_URL, CONSOLE_USER,
CONSOLE_PASSWORD, CONSOLE_SCREENSHOTS (a directory), CONSOLE_PG_DSN (the
server's wire address, for the statement the sessions page cancels),
CHROMIUM (the executable; Playwright's own browser downloads are not used).

Prints "console: all checks passed" at the end; any failed check raises.
"""

import os
import sys
import threading
from urllib.parse import quote

import psycopg2

from playwright.sync_api import expect, sync_playwright

URL = os.environ["CONSOLE_URL"].rstrip("/")
USER = os.environ["CONSOLE_USER"]
PASSWORD = os.environ["CONSOLE_PASSWORD"]
SHOTS = os.environ["CONSOLE_SCREENSHOTS"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PG_DSN = os.environ["CONSOLE_PG_DSN"]
TIMEOUT_MS = 30_000

RAW = "freshet.public.logins_raw"
PREDICTIONS = "freshet.public.logins_with_predictions"
MODEL = "model:ml.registry.mymodel"
ODD_DYNAMIC = 'dt "q" <i>é'


def css_string(value):
    """A CSS attribute-selector string literal for value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node(page, node_id):
    return page.locator(f"#graph g.node[data-id={css_string(node_id)}]")


def main():
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        # Without credentials the server asks for them and serves nothing. A
        # headless page cannot answer the prompt (its navigation fails with
        # ERR_INVALID_AUTH_CREDENTIALS), so the browser context's own HTTP
        # client makes the request.
        anonymous = browser.new_context()
        response = anonymous.request.get(URL + "/")
        assert response.status == 401, response.status
        assert response.headers.get("www-authenticate", "").startswith("Basic"), response.headers
        anonymous.close()

        context = browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )

        # The graph: both tables, the dynamic table and the model, with edges.
        response = page.goto(URL + "/#/")
        assert response.status == 200, response.status
        for node_id in (RAW, PREDICTIONS, MODEL):
            expect(node(page, node_id)).to_have_count(1)
        expect(page.locator(f"#graph path.edge[data-from={css_string(RAW)}][data-to={css_string(PREDICTIONS)}]")).to_have_count(1)
        expect(page.locator(f"#graph path.edge[data-from={css_string(MODEL)}][data-to={css_string(PREDICTIONS)}]")).to_have_count(1)
        expect(node(page, PREDICTIONS)).to_have_attribute("data-status", "ok")
        expect(node(page, "freshet.public." + ODD_DYNAMIC)).to_have_attribute("data-status", "suspended")
        # The odd name is shown as text: no <i> or <b> element came from it.
        expect(page.locator("#graph-page i, #graph-page b")).to_have_count(0)
        expect(page.locator("#dynamic-tables")).to_contain_text(ODD_DYNAMIC)
        assert page.locator("#whoami").inner_text() == f"signed in as {USER}"
        page.screenshot(path=os.path.join(SHOTS, "graph.png"), full_page=True)

        # One dynamic table, reached by clicking its node: a lag chart with
        # points and the refresh history with rows.
        node(page, PREDICTIONS).click()
        expect(page.locator("#table-page h1")).to_contain_text("logins_with_predictions")
        points = page.locator("#lag-chart circle.point")
        expect(points).to_have_count(4)
        expect(page.locator("#lag-chart line.target, #lag-chart text.target-note")).to_have_count(1)
        history = page.locator("#history tbody tr")
        expect(page.locator('#history tbody tr[data-state="SUCCEEDED"]')).to_have_count(2)
        assert history.count() >= 2, history.count()
        expect(page.locator('#history tbody tr[data-state="SUCCEEDED"]').first).to_contain_text("MANUAL")
        page.screenshot(path=os.path.join(SHOTS, "table.png"), full_page=True)

        # The failed refresh is highlighted with its message.
        page.goto(URL + "/#/table/freshet/public/inverses")
        failed = page.locator('#history tbody tr.failed[data-state="FAILED"]')
        expect(failed.first).to_contain_text("division by zero")

        # A name needing quotes, via its encoded address.
        page.goto(URL + "/#/table/freshet/public/" + quote(ODD_DYNAMIC, safe=""))
        expect(page.locator("#table-page h1")).to_contain_text("freshet.public." + ODD_DYNAMIC)
        expect(page.locator("#table-page h1 .badge")).to_have_attribute("data-status", "suspended")
        expect(page.locator("#table-page i, #table-page h1 b")).to_have_count(0)
        page.screenshot(path=os.path.join(SHOTS, "odd-table.png"), full_page=True)

        # Models: the model, its default version and its versions.
        page.goto(URL + "/#/models")
        model = page.locator('section.model[data-id="ml.registry.mymodel"]')
        expect(model).to_have_count(1)
        expect(model.locator(".default-version")).to_have_text("v1")
        expect(model.locator('tr[data-version="v1"]')).to_contain_text("default")
        expect(model.locator('tr[data-version="v1"]')).to_contain_text("predict_proba")
        page.screenshot(path=os.path.join(SHOTS, "models.png"), full_page=True)

        # Sessions: a long statement from a client shows as active, and its
        # Cancel button stops it (the client gets 57014).
        marker = "console-cancel-me"
        long_query = (
            f"SELECT count(*) AS {marker.replace('-', '_')} FROM generate_series(1, 100000) AS a(x), "
            "generate_series(1, 100000) AS b(y) WHERE a.x + b.y = -1"
        )
        outcome = {}

        def run_long():
            conn = psycopg2.connect(PG_DSN, application_name="console-test")
            try:
                with conn.cursor() as cur:
                    cur.execute(long_query)
                outcome["result"] = "finished"
            except psycopg2.Error as e:
                outcome["result"] = e.pgcode
            finally:
                conn.close()

        worker = threading.Thread(target=run_long)
        worker.start()
        page.goto(URL + "/#/sessions")
        row = page.locator('#sessions tbody tr[data-state="active"]', has_text=marker.replace("-", "_"))
        # The page reloads every 5 s: the statement may start after a load.
        expect(row).to_have_count(1, timeout=TIMEOUT_MS)
        expect(row).to_contain_text("console-test")
        page.screenshot(path=os.path.join(SHOTS, "sessions.png"), full_page=True)
        row.locator("button.cancel").click()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the cancelled statement is still running"
        assert outcome.get("result") == "57014", outcome
        expect(page.locator('#sessions tbody tr[data-state="active"]', has_text=marker.replace("-", "_"))).to_have_count(0, timeout=TIMEOUT_MS)

        context.close()
        browser.close()
    if errors:
        raise AssertionError("the page reported errors:\n" + "\n".join(errors))
    print("console: all checks passed")


if __name__ == "__main__":
    sys.exit(main())
