"""Fixtures of the console's browser tests: one local stack and one Chromium for the session.

The stack is `scripts/dev.sh start` on free ports with a LOCAL_DIR of its own (a developer's
`make dev` keeps running beside it): moto with the demo directory, the local OpenID Connect
provider, the functions under `cargo lambda watch` and the local HTTP API. The browser is
Debian's /usr/bin/chromium driven by Playwright (Playwright's own browser download is not used).

Every page and open dialog a test reaches is handed to `Console.capture`: axe-core runs on it
and a full-page screenshot goes to docs/console/<name>.png. The last test of test_console.py
fails on any serious or critical violation; the terminal summary lists every finding.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
AXE_JS = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", ROOT / "docs" / "console"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Quiet and offline apart from the pages under test: no sandbox (containers, root), no GPU, no
# background or component-update traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# scripts/oidc/server.mjs: every demo user signs in with this password (OIDC_DEMO_PASSWORD).
DEMO_PASSWORD = "demo"
IDENTITY_STORE_ID = "d-1234567890"
REGION = "us-east-1"
# axe-core impacts that fail the suite.
BLOCKING_IMPACTS = ("serious", "critical")

expect.set_options(timeout=15_000)


# ------------------------------------------------------------------------------------ stack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    api: str
    moto: str
    issuer: str
    local_dir: Path
    directory: dict[str, Any]

    @property
    def console(self) -> str:
        return f"{self.api}/console"

    def identitystore(self) -> Any:
        import boto3  # comes with moto, in .venv

        return boto3.client(
            "identitystore",
            endpoint_url=self.moto,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def api_json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The JSON API behind the same gateway (which signs nothing locally): test set-up only."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.api}{path}", data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for log in sorted((self.local_dir / "logs").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(out)


def _stack_env(local_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    env = dict(os.environ)
    env["LOCAL_DIR"] = str(local_dir)
    env.update({name: str(port) for name, port in ports.items()})
    return env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    local_dir = tmp_path_factory.mktemp("console-stack")
    ports = {
        name: _free_port() for name in ("MOTO_PORT", "LAMBDA_PORT", "API_PORT", "OIDC_PORT", "SSO_ADMIN_PORT")
    }
    env = _stack_env(local_dir, ports)
    dev = [str(ROOT / "scripts" / "dev.sh")]
    start_log = local_dir / "dev-start.log"
    try:
        with start_log.open("w") as out:
            # Returns once the stack answers; builds the functions first when they are stale.
            started = subprocess.run([*dev, "start"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                     timeout=900)
        if started.returncode != 0:
            tail = "\n".join(start_log.read_text(errors="replace").splitlines()[-60:])
            pytest.exit(f"scripts/dev.sh start failed (exit {started.returncode}):\n{tail}", returncode=3)
        directory = json.loads((local_dir / "demo-directory.json").read_text())
        STACK_DIRS.append(local_dir)
        yield Stack(
            api=f"http://127.0.0.1:{ports['API_PORT']}",
            moto=f"http://127.0.0.1:{ports['MOTO_PORT']}",
            issuer=f"http://127.0.0.1:{ports['OIDC_PORT']}",
            local_dir=local_dir,
            directory=directory,
        )
    finally:
        subprocess.run([*dev, "down"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120, check=False)


# ------------------------------------------------------------------------------- accessibility


@dataclass
class Capture:
    name: str
    url: str
    violations: list[dict[str, Any]]

    def blocking(self) -> list[dict[str, Any]]:
        return [v for v in self.violations if v["impact"] in BLOCKING_IMPACTS]


@dataclass
class Captures:
    by_name: dict[str, Capture] = field(default_factory=dict)


CAPTURES = Captures()
# The running stack's LOCAL_DIR, named in the summary of a run that failed (its logs/ stay).
STACK_DIRS: list[Path] = []

_AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
    count: v.nodes.length,
  }));
}"""


def run_axe(page: Page) -> list[dict[str, Any]]:
    # The console's Content-Security-Policy forbids inline scripts (contract), so
    # page.add_script_tag cannot add axe without bypass_csp, which would also hide a console
    # script that broke its own policy. Evaluating axe's source through the DevTools protocol is
    # not subject to the page's CSP, and leaves the policy in force for everything else.
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_JS.read_text())
    return page.evaluate(_AXE_RUN)


# ------------------------------------------------------------------------------------- console


class Console:
    """The console under test: browser contexts, the OIDC sign-in, captures."""

    def __init__(self, stack: Stack, browser: Browser) -> None:
        self.stack = stack
        self.browser = browser
        self._contexts: list[BrowserContext] = []

    # -- browser

    def context(self, **options: Any) -> BrowserContext:
        ctx = self.browser.new_context(
            base_url=self.stack.api,
            viewport={"width": 1280, "height": 800},
            locale="en-US",
            timezone_id="UTC",
            color_scheme="light",
            reduced_motion="reduce",
            accept_downloads=True,
            **options,
        )
        ctx.set_default_timeout(30_000)
        self._contexts.append(ctx)
        return ctx

    def close(self) -> None:
        for ctx in self._contexts:
            try:
                ctx.close()
            except Exception:  # noqa: BLE001 - already gone with its browser
                pass
        self._contexts.clear()

    def sign_in(self, user: str, ctx: BrowserContext | None = None) -> Page:
        """Sign in through the real OpenID Connect form; returns a page on /console."""
        page = (ctx or self.context()).new_page()
        page.goto("/console")
        page.get_by_role("link", name="Sign in", exact=True).click()
        page.wait_for_url(f"{self.stack.issuer}/**")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(re.compile(rf"^{re.escape(self.stack.console)}(/|\?|$)"))
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    # -- accessibility and screenshots

    def capture(self, page: Page, name: str) -> Capture:
        """axe-core on the page as it is now (an open dialog included), and a full-page screenshot."""
        assert re.fullmatch(r"[a-z0-9-]+", name), name
        page.wait_for_load_state("load")
        violations = run_axe(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled", caret="hide")
        url = urlsplit(page.url)
        # The callback's query carries the authorization code: keep it out of the report.
        shown = url.path + (f"?{url.query}" if url.query and not url.path.startswith("/console/auth/") else "")
        cap = Capture(name=name, url=shown, violations=violations)
        CAPTURES.by_name[name] = cap
        return cap

    # -- set-up through the JSON API, for tests that do not follow the seed flow

    def ensure_profile(self) -> None:
        status, _ = self.stack.api_json("GET", "/profile")
        if status == 404:
            status, body = self.stack.api_json(
                "POST", "/profile", {"name": "Platform team", "identityStoreId": IDENTITY_STORE_ID}
            )
        assert status in (200, 201, 409), (status, body if status != 200 else None)

    def ensure_subscription(self, principal_type: str, name: str, tier: str) -> None:
        key = "userName" if principal_type == "USER" else "displayName"
        status, body = self.stack.api_json(
            "POST", "/subscriptions", {"principalType": principal_type, key: name, "tier": tier}
        )
        # 409 SubscriptionExists: the flow already subscribed it, at another tier.
        assert status in (200, 201, 202, 409), (status, body)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.exit(f"{CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM)", returncode=3)
    if not AXE_JS.is_file():
        pytest.exit(f"{AXE_JS} is missing: (cd tests/browser && npm ci)", returncode=3)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def console(stack: Stack, browser: Browser) -> Iterator[Console]:
    c = Console(stack, browser)
    yield c
    c.close()


@pytest.fixture
def fresh(console: Console) -> Iterator[Callable[..., BrowserContext]]:
    """Contexts closed at the end of the test."""
    made: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        ctx = console.context(**options)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


# ----------------------------------------------------------------------------- ordered steps


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    # In an `incremental` class, a failed step marks the class: the later steps (which need the
    # state it should have left) are reported as xfail with its name, not as a cascade of failures.
    # A `side_step` leaves nothing the later steps need: its failure is its own.
    if (
        "incremental" in item.keywords
        and "side_step" not in item.keywords
        and call.excinfo is not None
        and not call.excinfo.errisinstance(pytest.skip.Exception)
    ):
        item.parent._failed_step = item.name  # type: ignore[union-attr]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "incremental" in item.keywords:
        failed = getattr(item.parent, "_failed_step", None)
        if failed is not None:
            pytest.xfail(f"an earlier step failed: {failed}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "incremental: ordered steps; a failed step xfails the rest")
    config.addinivalue_line("markers", "side_step: a step of an incremental class whose failure spares the rest")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    tr = terminalreporter
    if exitstatus != 0 and STACK_DIRS:
        tr.write_line(f"the stack's logs: {STACK_DIRS[0] / 'logs'}")
    if not CAPTURES.by_name:
        return
    tr.section("axe-core (every page and dialog captured)")
    for cap in CAPTURES.by_name.values():
        if not cap.violations:
            tr.write_line(f"{cap.name:28} {cap.url:34} no violations")
            continue
        for v in cap.violations:
            tr.write_line(
                f"{cap.name:28} {cap.url:34} {v['impact']:9} {v['id']} ({v['count']}): {v['help']}  {v['targets'][:3]}"
            )
    tr.write_line(f"screenshots: {SCREENSHOTS.relative_to(ROOT) if SCREENSHOTS.is_relative_to(ROOT) else SCREENSHOTS}/")
