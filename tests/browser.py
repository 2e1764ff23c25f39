"""Headless Chromium for the browser tests and the benchmarks: the system Chromium (`make setup`
installs it with apt), driven by Playwright's sync API; never `playwright install`."""

import os

CHROMIUM = os.environ.get("MWE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_page(browser, *, timeout_ms: int, **context_options):
    """A page in a fresh context that records uncaught script errors (`page.js_errors`) and what the
    Content Security Policy blocked (`page.csp_violations`), so every browser test can check the site
    works under the policy it serves. Close `page.context` when done."""
    context = browser.new_context(**context_options)
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    page.js_errors = []
    page.csp_violations = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    page.on(
        "console",
        lambda message: (
            page.csp_violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    # Chromium reports some refusals (an eval in plotly's WebGL code, for one) only as a
    # securitypolicyviolation event, never on the console: listen for the event in every document.
    # The binding and the init script come from the browser itself, so the policy does not apply.
    context.expose_binding(
        "__mweReportCspViolation", lambda source, violation: page.csp_violations.append(violation)
    )
    context.add_init_script(CSP_LISTENER)
    return page


CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (event) {
  window.__mweReportCspViolation(
    event.violatedDirective + " blocked " + (event.blockedURI || "(inline)") + " in " +
    event.sourceFile + ":" + event.lineNumber + " " + (event.sample || "")
  );
}, true);
"""
