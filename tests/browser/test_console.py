"""The admin console in Chromium, by the contract's accessible names and roles.

Run with `make test-browser` (part of `make test`). The tests run in file order on one stack:
the seed flow (TestSeedFlow, one step per test) creates the profile and the subscriptions that
the access tests then read; those tests also create what they need through the JSON API when
run alone (`-k`). The last test checks axe-core's findings over every page and dialog captured.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from conftest import CAPTURES, DEMO_PASSWORD, Console

PRO = re.compile(r"^Pro(?![+\w])")
PRO_PLUS = re.compile(r"^Pro\+")
POWER = re.compile(r"^Power")
# Change buttons a viewer must not get.
CHANGE_BUTTONS = ("Add user", "Add group", "Change plan", "Deactivate plan", "Run audit")
# What a page must never show of an error: stack traces, debug formatting, internal names.
LEAKS = re.compile(
    r"stack backtrace|panicked at|RUST_BACKTRACE|Traceback|\bat src/|\.rs:\d+|SdkError|ServiceError|"
    r"DispatchFailure|\w+Exception\b|Error \{|\bSome\(|InternalError",
)


# --------------------------------------------------------------------------------- helpers


def tab(page: Page, name: str) -> Locator:
    """Tabs are `tab`s or links (contract): either, named exactly."""
    return page.get_by_role("tab", name=name, exact=True).or_(page.get_by_role("link", name=name, exact=True))


def nav(page: Page, name: str) -> None:
    """Follow a navigation link, and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("link", name=name, exact=True).click()


def user_row(page: Page, name: str) -> Locator:
    """The table row whose row header is `name` (a user on the Users tab, a group on Groups)."""
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name, exact=True))


def open_users(page: Page, which: str = "Users") -> None:
    if urlsplit(page.url).path not in ("/console/users", "/console/groups"):
        nav(page, "Users & Groups")
    with page.expect_navigation():
        tab(page, which).click()


def reload_until(page: Page, locator: Locator, *, timeout: float = 30, gone: bool = False) -> None:
    """Reload until `locator` shows (or, gone=True, no longer matches): work finished on the bus."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if gone:
                expect(locator).to_have_count(0, timeout=1_000)
            else:
                expect(locator.first).to_be_visible(timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        page.reload()


def submit(page: Page, button: Locator) -> None:
    """Click a button that submits a form, and wait for the page it leads to."""
    with page.expect_navigation():
        button.click()


def seat_names(page: Page) -> set[str]:
    """The users the seats table shows (its row headers)."""
    return set(page.get_by_role("table").locator("tbody").get_by_role("rowheader").all_inner_texts())


def table_by_rows(page: Page, row_name: str) -> dict[str, dict[str, str]]:
    """The table that has a row headed `row_name`, as {row header: {column header: cell text}}."""
    table = page.get_by_role("table").filter(has=page.get_by_role("rowheader", name=row_name, exact=True))
    expect(table).to_have_count(1)
    columns = [c.strip() for c in table.get_by_role("columnheader").all_inner_texts()]
    out = {}
    for row in table.get_by_role("row").filter(has=page.get_by_role("rowheader")).all():
        head = row.get_by_role("rowheader").inner_text().strip()
        cells = [c.strip() for c in row.get_by_role("cell").all_inner_texts()]
        out[head] = dict(zip(columns[1:], cells))
    return out


def forms(page: Page) -> list[dict[str, Any]]:
    """Every form of the page: its action, method, text and the fields it would submit."""
    return page.evaluate(
        """() => [...document.forms].map(f => ({
            action: f.action,
            method: (f.getAttribute('method') || 'get').toLowerCase(),
            text: f.innerText,
            fields: Object.fromEntries([...new FormData(f)].filter(([, v]) => typeof v === 'string')),
        }))"""
    )


def csrf_field(fields: dict[str, str]) -> str:
    names = [n for n in fields if "csrf" in n.lower()]
    assert names, f"no field named *csrf* in a console form: {sorted(fields)}"
    return names[0]


def first_of_next_month(today: dt.date) -> dt.date:
    return (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def next_month_words(today: dt.date) -> re.Pattern[str]:
    """Ways to say "the first of next month" (the date in words or ISO, or those very words)."""
    d = first_of_next_month(today)
    month = f"(?:{d.strftime('%B')}|{d.strftime('%b')})"
    return re.compile(
        rf"first of next month|1st of next month|\b1 {month}\b|\b{month} 1(st)?\b|{d.isoformat()}",
        re.IGNORECASE,
    )


def no_leaks(text: str) -> None:
    m = LEAKS.search(text)
    assert m is None, f"an error page shows internals ({m.group(0)!r}):\n{text[:2000]}"


def pick(dialog: Locator, page: Page, label: str, typed: str, option: str, on_suggest: Any = None) -> None:
    """Type into the dialog's search combobox and pick the suggested option naming `option`;
    `on_suggest(page)` runs while the suggestions show."""
    box = dialog.get_by_role("combobox", name=label)
    box.fill("")
    box.press_sequentially(typed, delay=60)
    choice = page.get_by_role("option", name=re.compile(rf"^{re.escape(option)}\b"))
    expect(choice.first).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    if on_suggest:
        on_suggest(page)
    choice.first.click()
    # Picked: it shows among the chosen ones, checked, and the suggestions close.
    expect(dialog.get_by_role("checkbox", name=re.compile(rf"^{re.escape(option)}\b"))).to_be_checked()


# ------------------------------------------------------------------------------ signed out


def test_signed_out_page_offers_sign_in(console: Console, fresh: Any) -> None:
    """Without a session a console page shows Sign in; it does not redirect to the issuer."""
    page = fresh().new_page()
    response = page.goto("/console")
    assert response is not None and response.status == 200, response and response.status
    assert urlsplit(page.url).port == urlsplit(console.stack.api).port, page.url
    expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    for path in ("/console/users", "/console/audits", "/console/settings"):
        page.goto(path)
        expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    headers = response.headers
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, csp
    script_src = re.search(r"script-src([^;]*)", csp) or re.search(r"default-src([^;]*)", csp)
    assert script_src and "unsafe-inline" not in script_src.group(1), csp
    assert headers.get("x-content-type-options") == "nosniff", headers
    page.goto("/console")
    console.capture(page, "signed-out")


# ------------------------------------------------------------------------------- seed flow


@pytest.fixture(scope="class")
def alice(console: Console) -> Page:
    """Alice (KiroAdmins) signed in through the OIDC provider's form, for the whole flow."""
    return console.sign_in("alice")


@pytest.mark.flow
@pytest.mark.incremental
class TestSeedFlow:
    """The admin's first visit, from Sign up for Kiro to an audit report, by names and roles."""

    def test_sign_in_sets_a_strict_session_cookie(self, console: Console, alice: Page) -> None:
        for name in ("Dashboard", "Users & Groups", "Audits", "Settings"):
            expect(alice.get_by_role("link", name=name, exact=True)).to_be_visible()
        session = [c for c in alice.context.cookies(console.stack.console) if c["path"].startswith("/console")]
        assert session, f"no console cookie after sign-in: {alice.context.cookies()}"
        for c in session:
            assert c["httpOnly"] and c["secure"] and c["sameSite"] == "Lax", c

    def test_sign_up_for_kiro_creates_the_profile(self, console: Console, alice: Page) -> None:
        alice.goto("/console")
        console.capture(alice, "welcome")
        alice.get_by_role("button", name="Sign up for Kiro").click()
        dialog = alice.get_by_role("dialog", name="Create Kiro profile")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("us-east-1")
        instance = dialog.get_by_label("IAM Identity Center instance")
        expect(instance).to_be_visible()
        assert instance.evaluate("e => e.tagName") == "SELECT"
        expect(instance).to_contain_text("d-1234567890")
        dialog.get_by_label("Name", exact=True).fill("Platform team")
        dialog.get_by_label("Description", exact=True).fill("Kiro for the platform organisation")
        console.capture(alice, "create-profile")
        dialog.get_by_role("button", name="Enable").click()
        expect(alice.get_by_role("button", name="Sign up for Kiro")).to_have_count(0)
        status, profile = console.stack.api_json("GET", "/profile")
        assert status == 200 and profile["name"] == "Platform team", (status, profile)
        assert profile["identityStoreId"] == "d-1234567890", profile

    def test_add_group_engineering_at_pro(self, console: Console, alice: Page) -> None:
        open_users(alice, "Groups")
        alice.get_by_role("button", name="Add group").click()
        dialog = alice.get_by_role("dialog")
        expect(dialog).to_be_visible()
        # Each tier choice names its monthly credits and price (the defaults of the contract).
        for tier, credits, price in ((PRO, "1,000", "$20"), (PRO_PLUS, "2,000", "$40"), (POWER, "10,000", "$200")):
            radio = dialog.get_by_role("radio", name=tier)
            expect(radio).to_have_count(1)
            expect(radio).to_have_accessible_name(re.compile(rf"{re.escape(credits)} credits.*{re.escape(price)}\b"))
        dialog.get_by_role("radio", name=PRO).check()
        console.capture(alice, "add-group-tier")
        dialog.get_by_role("button", name="Continue").click()
        pick(dialog, alice, "Search groups", "eng", "engineering",
             on_suggest=lambda page: console.capture(page, "add-group-search"))
        dialog.get_by_role("button", name="Assign").click()
        expect(alice.get_by_role("dialog")).to_have_count(0)
        expect(user_row(alice, "engineering")).to_be_visible()
        groups = table_by_rows(alice, "engineering")
        assert re.match(r"Pro(?!\+)", groups["engineering"]["Tier"]), groups
        assert groups["engineering"]["Seats"] == "3", groups  # alice, bob, erin
        console.capture(alice, "groups")

    def test_members_of_engineering_hold_seats(self, console: Console, alice: Page) -> None:
        open_users(alice, "Users")
        for member in ("alice", "bob", "erin"):
            # The seat's userName is filled through the bus (Seat Names Requested).
            reload_until(alice, user_row(alice, member))
            expect(user_row(alice, member)).to_contain_text("Pro")
        expect(user_row(alice, "carol")).to_have_count(0)

    def test_add_user_power_for_two_users_at_once(self, console: Console, alice: Page) -> None:
        open_users(alice, "Users")
        alice.get_by_role("button", name="Add user").click()
        dialog = alice.get_by_role("dialog")
        dialog.get_by_role("radio", name=POWER).check()
        console.capture(alice, "add-user-tier")
        dialog.get_by_role("button", name="Continue").click()
        pick(dialog, alice, "Search users", "car", "carol")
        pick(dialog, alice, "Search users", "da", "dave")
        console.capture(alice, "add-user-search")
        dialog.get_by_role("button", name="Assign").click()
        expect(alice.get_by_role("dialog")).to_have_count(0)
        for user in ("carol", "dave"):
            expect(user_row(alice, user)).to_be_visible()
            expect(user_row(alice, user)).to_contain_text("Power")
        console.capture(alice, "users")

    def test_users_table_search_and_filters(self, console: Console, alice: Page) -> None:
        open_users(alice, "Users")
        apply = alice.get_by_role("button", name="Apply filters")
        alice.get_by_label("Tier", exact=True).select_option(label="Power")
        submit(alice, apply)
        assert seat_names(alice) == {"carol", "dave"}
        alice.get_by_label("Tier", exact=True).select_option(label="Any tier")
        alice.get_by_role("searchbox").fill("eri")
        submit(alice, apply)
        assert seat_names(alice) == {"erin"}
        alice.get_by_role("searchbox").fill("")
        alice.get_by_label("Status", exact=True).select_option(label="Canceled")
        submit(alice, apply)
        assert seat_names(alice) == set()
        # Granted, never used yet: Pending (not billed) until Kiro reports activity.
        alice.get_by_label("Status", exact=True).select_option(label="Pending")
        submit(alice, apply)
        assert seat_names(alice) == {"alice", "bob", "carol", "dave", "erin"}
        alice.get_by_label("Status", exact=True).select_option(label="Active")
        submit(alice, apply)
        assert seat_names(alice) == set()

    def test_change_plan_upgrade_takes_effect_now(self, console: Console, alice: Page) -> None:
        open_users(alice, "Groups")
        user_row(alice, "engineering").get_by_role("button", name="Change plan").click()
        dialog = alice.get_by_role("dialog")
        expect(dialog).to_be_visible()
        choice = dialog.get_by_role("radio", name=PRO_PLUS)
        choice.check()
        # The choice itself says when it applies (its description), not only the dialog's prose.
        expect(choice).to_have_accessible_description(
            re.compile(r"\b(now|immediately|at once|right away)\b", re.IGNORECASE)
        )
        console.capture(alice, "change-plan-upgrade")
        dialog.get_by_role("button", name="Continue").click()
        expect(alice.get_by_role("dialog")).to_have_count(0)
        expect(user_row(alice, "engineering")).to_contain_text("Pro+")
        open_users(alice, "Users")
        expect(user_row(alice, "erin")).to_contain_text("Pro+")

    def test_change_plan_downgrade_waits_for_next_month(self, console: Console, alice: Page) -> None:
        open_users(alice, "Users")
        user_row(alice, "carol").get_by_role("button", name="Change plan").click()
        dialog = alice.get_by_role("dialog")
        choice = dialog.get_by_role("radio", name=PRO)
        choice.check()
        expect(choice).to_have_accessible_description(next_month_words(dt.datetime.now(dt.timezone.utc).date()))
        console.capture(alice, "change-plan-downgrade")
        dialog.get_by_role("button", name="Continue").click()
        expect(alice.get_by_role("dialog")).to_have_count(0)
        # Still Power until then; the row says what comes, and when.
        carol = user_row(alice, "carol")
        expect(carol).to_contain_text("Power")
        expect(carol).to_contain_text(next_month_words(dt.datetime.now(dt.timezone.utc).date()))
        status, sub = console.stack.api_json("GET", f"/subscriptions/USER/{console.stack.directory['users']['carol']}")
        assert status == 200 and sub["tier"] == "POWER" and sub.get("pendingTier") == "PRO", sub

    def test_deactivate_plan_cancels_the_seat(self, console: Console, alice: Page) -> None:
        open_users(alice, "Users")
        user_row(alice, "dave").get_by_role("button", name="Deactivate plan").click()
        dialog = alice.get_by_role("dialog")
        expect(dialog).to_be_visible()
        console.capture(alice, "deactivate-plan")
        dialog.get_by_role("button", name="Unsubscribe").click()
        expect(alice.get_by_role("dialog")).to_have_count(0)
        # Either the row stays, Canceled and with nothing left to deactivate, or it leaves the list.
        dave = user_row(alice, "dave")
        if dave.count():
            expect(dave).to_contain_text("Canceled")
            expect(dave.get_by_role("button", name="Deactivate plan")).to_have_count(0)
        status, _ = console.stack.api_json("GET", f"/subscriptions/USER/{console.stack.directory['users']['dave']}")
        assert status == 404, status

    @pytest.mark.side_step
    def test_settings_rename_the_profile(self, console: Console, alice: Page) -> None:
        nav(alice, "Settings")
        name = alice.get_by_label("Name", exact=True)
        expect(name).to_have_value("Platform team")
        name.fill("Platform engineering")
        alice.get_by_label("Description", exact=True).fill("Kiro seats of the platform teams")
        console.capture(alice, "settings")
        submit(alice, alice.get_by_role("button", name="Save"))
        expect(alice.get_by_role("status")).to_contain_text("saved")
        status, profile = console.stack.api_json("GET", "/profile")
        assert status == 200 and profile["name"] == "Platform engineering", profile
        # The page shows what was saved, now and after a reload.
        expect(alice.get_by_label("Name", exact=True)).to_have_value("Platform engineering")
        alice.reload()
        expect(alice.get_by_label("Name", exact=True)).to_have_value("Platform engineering")

    @pytest.mark.side_step
    def test_run_audit_stores_a_report(self, console: Console, alice: Page) -> None:
        nav(alice, "Audits")
        rows = alice.get_by_role("table").get_by_role("row")
        before = rows.count()
        submit(alice, alice.get_by_role("button", name="Run audit"))
        # The audit runs through the bus (Audit Requested -> sync-group): poll the list.
        reload_until(alice, alice.get_by_role("table").get_by_role("row").nth(max(before, 1)), timeout=45)
        console.capture(alice, "audits")

    def test_export_csv_downloads_the_rows_shown(self, console: Console, alice: Page) -> None:
        open_users(alice, "Users")
        table = alice.get_by_role("table")
        shown = set(table.locator("tbody").get_by_role("rowheader").all_inner_texts())
        assert shown >= {"alice", "bob", "carol", "erin"}, shown
        with alice.expect_download() as download:
            alice.get_by_role("button", name="Export CSV").or_(
                alice.get_by_role("link", name="Export CSV")
            ).click()
        text = open(download.value.path(), encoding="utf-8-sig").read()
        assert download.value.suggested_filename.endswith(".csv"), download.value.suggested_filename
        records = list(csv.reader(io.StringIO(text)))
        header, body = records[0], [r for r in records[1:] if r]
        # The column of user names (userName, "User name" or "User"), not of ids.
        user_col = next((i for i, h in enumerate(header) if re.fullmatch(r"user[ _]?name|user", h.strip(), re.I)), None)
        assert user_col is not None, f"no user name column in the CSV header {header}"
        exported = {r[user_col] for r in body}
        assert exported == shown, (exported, shown)
        body_rows = table.locator("tbody").get_by_role("row")
        assert len(body) == body_rows.count(), (len(body), body_rows.count())

    def test_dashboard_shows_the_seats(self, console: Console, alice: Page) -> None:
        nav(alice, "Dashboard")
        main = alice.get_by_role("main")
        # alice, bob, erin at Pro+ (engineering), carol at Power until next month, all Pending
        # (no activity reported yet); dave canceled.
        seats = table_by_rows(alice, "Total")
        assert seats.get("Pro+", {}).get("Pending") == "3", seats
        assert seats.get("Power", {}).get("Pending") == "1", seats
        assert seats.get("Pro", {}).get("Pending") == "0", seats
        assert seats.get("Total", {}).get("Pending") == "4", seats
        assert {row.get("Active") for row in seats.values()} == {"0"}, seats
        groups = table_by_rows(alice, "engineering")
        assert groups.get("engineering", {}).get("Tier") == "Pro+", groups
        assert groups.get("engineering", {}).get("Seats") == "3", groups
        # Pending seats are not billed: nothing to pay yet (not even the $0.04 overage price).
        expect(main).to_contain_text(re.compile(r"\$0(?![.\d])"))
        expect(main.get_by_text(re.compile(r"^\s*1 canceled seat"))).to_be_visible()
        console.capture(alice, "dashboard")


# ----------------------------------------------------------------------------------- access


def seeded(console: Console) -> None:
    """What the access tests need, whether or not the flow ran before them."""
    console.ensure_profile()
    console.ensure_subscription("GROUP", "engineering", "PRO")
    console.ensure_subscription("USER", "carol", "POWER")


def deactivate_form_of(console: Console, page: Page, principal: str) -> dict[str, Any]:
    """The POST that Deactivate plan of `principal`'s row finally sends, as the page serves it."""
    open_users(page, "Groups" if principal == "engineering" else "Users")
    row = user_row(page, principal)
    row.get_by_role("button", name="Deactivate plan").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Unsubscribe")).to_be_visible()
    form = dialog.locator("form").filter(has=page.get_by_role("button", name="Unsubscribe"))
    spec = form.evaluate(
        """f => ({action: f.action, method: (f.getAttribute('method') || 'get').toLowerCase(),
                  fields: Object.fromEntries([...new FormData(f)].filter(([, v]) => typeof v === 'string'))})"""
    )
    page.keyboard.press("Escape")
    assert spec["method"] == "post", spec
    csrf_field(spec["fields"])
    return spec


@pytest.mark.access
def test_user_in_neither_console_group_gets_no_session(console: Console, fresh: Any) -> None:
    """carol is in the directory but in neither KiroAdmins nor KiroViewers: 403 at the callback."""
    seeded(console)
    ctx = fresh()
    page = ctx.new_page()
    page.goto("/console")
    page.get_by_role("link", name="Sign in", exact=True).click()
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    with page.expect_response(lambda r: "/console/auth/callback" in r.url) as callback:
        page.get_by_role("button", name="Sign in", exact=True).click()
    assert callback.value.status == 403, callback.value.status
    expect(page.get_by_role("alert")).to_be_visible()
    no_leaks(page.inner_text("body"))
    console.capture(page, "refused-sign-in")
    page.goto("/console")
    expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


@pytest.mark.access
def test_viewer_sees_no_change_and_cannot_forge_one(console: Console, fresh: Any) -> None:
    seeded(console)
    admin = console.sign_in("alice", fresh())
    target = deactivate_form_of(console, admin, "engineering")

    bob = console.sign_in("bob", fresh())
    for where in ("Users", "Groups"):
        open_users(bob, where)
        expect(bob.get_by_role("table")).to_be_visible()
        expect(bob.get_by_role("table").get_by_role("row").nth(1)).to_be_visible()
        for name in CHANGE_BUTTONS:
            expect(bob.get_by_role("button", name=name)).to_have_count(0)
        if where == "Users":
            console.capture(bob, "viewer-users")
    nav(bob, "Audits")
    expect(bob.get_by_role("button", name="Run audit")).to_have_count(0)
    nav(bob, "Settings")
    expect(bob.get_by_role("button", name="Save")).to_have_count(0)

    # His own valid token, from the one form a viewer has (Sign out).
    own = [f for f in forms(bob) if f["method"] == "post" and any("csrf" in n.lower() for n in f["fields"])]
    assert own, "a viewer's page has no form with a csrf field (Sign out should be one)"
    fields = dict(target["fields"])
    name = csrf_field(fields)
    fields[name] = own[0]["fields"][csrf_field(own[0]["fields"])]
    answer = bob.request.post(target["action"], form=fields, max_redirects=0)
    assert answer.status == 403, (answer.status, answer.text()[:500])
    no_leaks(answer.text())
    group = console.stack.directory["groups"]["engineering"]
    status, _ = console.stack.api_json("GET", f"/subscriptions/GROUP/{group}")
    assert status == 200, "a viewer's forged POST removed the subscription"


@pytest.mark.access
def test_post_without_csrf_token_is_refused(console: Console, fresh: Any) -> None:
    seeded(console)
    admin = console.sign_in("alice", fresh())
    target = deactivate_form_of(console, admin, "engineering")
    fields = dict(target["fields"])
    token_name = csrf_field(fields)
    token = fields.pop(token_name)

    answer = admin.request.post(target["action"], form=fields, max_redirects=0)
    assert answer.status == 403, (answer.status, answer.text()[:500])
    no_leaks(answer.text())
    wrong = admin.request.post(target["action"], form={**fields, token_name: token[::-1] + "x"}, max_redirects=0)
    assert wrong.status == 403, (wrong.status, wrong.text()[:500])
    as_json = admin.request.post(target["action"], data=fields, headers={"content-type": "application/json"},
                                 max_redirects=0)
    assert as_json.status == 403, (as_json.status, as_json.text()[:500])

    group = console.stack.directory["groups"]["engineering"]
    status, _ = console.stack.api_json("GET", f"/subscriptions/GROUP/{group}")
    assert status == 200, "a POST without a valid csrf token changed something"
    open_users(admin, "Groups")
    expect(user_row(admin, "engineering")).to_be_visible()


@pytest.mark.access
def test_sign_out_ends_the_session_on_the_server(console: Console, fresh: Any) -> None:
    seeded(console)
    page = console.sign_in("alice", fresh())
    old = [c for c in page.context.cookies(console.stack.console) if c["path"].startswith("/console")]
    assert old, page.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(rf"^{re.escape(console.stack.console)}"))
    expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()

    replay = fresh()
    replay.add_cookies(old)
    again = replay.new_page()
    again.goto("/console/users")
    expect(again.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    expect(again.get_by_role("button", name="Sign out")).to_have_count(0)
    expect(again.get_by_role("button", name="Add user")).to_have_count(0)


@pytest.mark.access
def test_admin_removed_from_the_admin_group_loses_change_rights(console: Console, fresh: Any) -> None:
    seeded(console)
    page = console.sign_in("alice", fresh())
    nav(page, "Settings")
    status, before = console.stack.api_json("GET", "/profile")
    assert status == 200, before

    ids = console.stack.identitystore()
    store = console.stack.directory["identityStoreId"]
    admins = ids.get_group_id(
        IdentityStoreId=store,
        AlternateIdentifier={"UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": "KiroAdmins"}},
    )["GroupId"]
    alice_id = console.stack.directory["users"]["alice"]
    # (moto answers GetGroupMembershipId with a 500: look the membership up in the group's list.)
    memberships = [
        m["MembershipId"]
        for page_ in ids.get_paginator("list_group_memberships").paginate(IdentityStoreId=store, GroupId=admins)
        for m in page_["GroupMemberships"]
        if m["MemberId"].get("UserId") == alice_id
    ]
    assert memberships, "alice is not in KiroAdmins to begin with"
    for membership in memberships:
        ids.delete_group_membership(IdentityStoreId=store, MembershipId=membership)
    try:
        page.get_by_label("Name", exact=True).fill("Renamed by a former admin")
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.get_by_role("button", name="Save").click()
        assert posted.value.status == 403, posted.value.status
        expect(page.get_by_role("alert")).to_be_visible()  # why, in plain words
        no_leaks(page.inner_text("body"))
        console.capture(page, "forbidden")
        status, after = console.stack.api_json("GET", "/profile")
        assert after == before, f"a removed admin's change was applied: {after}"
    finally:
        ids.create_group_membership(IdentityStoreId=store, GroupId=admins, MemberId={"UserId": alice_id})


@pytest.mark.access
def test_assigning_a_user_deleted_meanwhile_says_so_in_plain_words(console: Console, fresh: Any) -> None:
    seeded(console)
    ids = console.stack.identitystore()
    store = console.stack.directory["identityStoreId"]
    gina = ids.create_user(
        IdentityStoreId=store,
        UserName="gina",
        DisplayName="Gina Short-Lived",
        Name={"GivenName": "Gina", "FamilyName": "Short-Lived"},
        Emails=[{"Value": "gina@example.com", "Type": "work", "Primary": True}],
    )["UserId"]
    page = console.sign_in("alice", fresh())
    open_users(page, "Users")
    page.get_by_role("button", name="Add user").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("radio", name=PRO).check()
    dialog.get_by_role("button", name="Continue").click()
    pick(dialog, page, "Search users", "gin", "gina")
    ids.delete_user(IdentityStoreId=store, UserId=gina)  # gone between the search and Assign
    dialog.get_by_role("button", name="Assign").click()

    alert = page.get_by_role("alert")
    expect(alert.first).to_be_visible()
    expect(alert.first).to_contain_text(
        re.compile(r"gina|deleted|no longer|any more|not found|does not exist", re.IGNORECASE)
    )
    no_leaks(page.inner_text("body"))
    console.capture(page, "error-deleted-user")
    # Nothing half-done: no subscription, no seat.
    status, subs = console.stack.api_json("GET", "/subscriptions?principalType=USER&limit=100")
    assert status == 200 and gina not in {s["principalId"] for s in subs["items"]}, subs
    status, _ = console.stack.api_json("GET", f"/seats/{gina}")
    assert status == 404, status


# ---------------------------------------------------------------------------- accessibility

# Every page and dialog of the console the tests above capture (docs/console/<name>.png).
EXPECTED_CAPTURES = {
    "signed-out", "welcome", "create-profile", "add-group-tier", "add-group-search", "groups",
    "add-user-tier", "add-user-search", "users", "change-plan-upgrade", "change-plan-downgrade",
    "deactivate-plan", "settings", "audits", "dashboard", "viewer-users", "forbidden",
    "error-deleted-user", "refused-sign-in",
}


@pytest.mark.a11y
def test_axe_finds_nothing_serious_on_any_page_or_dialog() -> None:
    captured = CAPTURES.by_name
    missing = EXPECTED_CAPTURES - set(captured)
    blocking = {
        name: [f"{v['impact']} {v['id']} ({v['count']}): {v['help']} {v['targets'][:3]}" for v in cap.blocking()]
        for name, cap in captured.items()
        if cap.blocking()
    }
    assert not blocking, f"serious or critical axe-core violations: {blocking}"
    assert not missing, f"pages or dialogs never reached, so never checked: {sorted(missing)}"
