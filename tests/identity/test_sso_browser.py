"""Single sign-on in a real Chromium against a real OpenID provider (node-oidc-provider, started
here on 127.0.0.1): code flow with PKCE and nonce, people created at first sign-in, a group
mapping of `sme` confirmed by an sme holder and then granting and revoking sme at sign-in,
password sign-in turned off, forged state and reused codes."""

import json
import os
import secrets
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc.jwk import RSAKey

from releasegate.accounts.selectors import roles_for
from releasegate.identity.models import ExternalIdentity, GroupMapping, IdpRoleGrant
from tests.browser.test_story import CHROMIUM, CHROMIUM_ARGS
from tests.builders import submitted_release
from tests.conftest import make_personas, missing

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

OP_DIR = Path(__file__).resolve().parent / "op"
CLIENT_ID = "releasegate-test"
CLIENT_SECRET = "a-client-secret-for-the-test-provider"
# Seconds the provider has to say it listens (it starts in well under one).
PROVIDER_START_SECONDS = 30


class Provider:
    def __init__(self, accounts_file: Path, process: subprocess.Popen[str], issuer: str):
        self.accounts_file = accounts_file
        self.process = process
        self.issuer = issuer

    def people(self, accounts: dict[str, dict[str, Any]]) -> None:
        self.accounts_file.write_text(json.dumps(accounts))


@pytest.fixture(scope="module")
def provider(live_server: Any, tmp_path_factory: Any) -> Iterator[Provider]:
    node = shutil.which("node")
    if node is None:
        missing("needs Node.js for the test OpenID provider")
    if not (OP_DIR / "node_modules" / "oidc-provider").is_dir():
        missing(f"needs `npm ci` in {OP_DIR}")
    accounts = tmp_path_factory.mktemp("op") / "accounts.json"
    accounts.write_text("{}")
    env = {
        **os.environ,
        "RP_REDIRECT_URI": f"{live_server.url}/sso/callback/",
        "RP_POST_LOGOUT_URI": f"{live_server.url}/login/",
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "ACCOUNTS_FILE": str(accounts),
        "SIGNING_JWK": json.dumps(
            {
                **RSAKey.generate_key(2048, private=True).as_dict(private=True),
                "kid": secrets.token_hex(8),
                "use": "sig",
                "alg": "RS256",
            }
        ),
    }
    process = subprocess.Popen(
        [str(node), "server.mjs"],
        cwd=OP_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(accounts.parent / "op.log").open("w"),
        text=True,
    )
    assert process.stdout is not None
    # A provider that hangs fails the test in seconds rather than holding the run.
    ready, _, _ = select.select([process.stdout], [], [], PROVIDER_START_SECONDS)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        log = (accounts.parent / "op.log").read_text()
        pytest.fail(f"the test OpenID provider did not start in {PROVIDER_START_SECONDS} s:\n{log}")
    yield Provider(accounts, process, json.loads(line)["issuer"])
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        missing(f"needs Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def sso(provider: Provider, settings: Any) -> Provider:
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.RELEASEGATE_OIDC_ALLOW_LOOPBACK_HTTP = True
    return provider


@pytest.fixture
def people(transactional_db: Any) -> Any:
    return make_personas()


def new_page(browser: Any) -> Any:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    return context.new_page()


def sign_in_at_idp(page: Any, base: str, login: str) -> None:
    """From releasegate's sign-in page through the provider's login form and back."""
    page.goto(f"{base}/login/")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any-password")
    page.locator("button[type=submit]").click()
    page.wait_for_url(f"{base}/")


def sign_in_with_password(browser: Any, base: str, username: str) -> Any:
    page = new_page(browser)
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-password-123")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page


def test_a_confirmed_group_mapping_grants_sme_at_sign_in_and_a_later_sign_in_revokes_it(
    browser, live_server, people, sso
):
    from playwright.sync_api import expect

    base = live_server.url
    identities = f"{base}/projects/support-assistant/identities/"
    release = submitted_release(people.project, people.requester)

    # The admin maps ml-experts to sme: a guarded role, so the mapping waits for an sme holder.
    admin = sign_in_with_password(browser, base, "admin")
    admin.goto(identities)
    admin.get_by_role("textbox", name="IdP group").fill("ml-experts")
    admin.get_by_role("combobox", name="Role").select_option("sme")
    admin.get_by_role("button", name="Map", exact=True).click()
    expect(admin.locator("main")).to_contain_text("waits for a sme holder other than you")
    assert not GroupMapping.objects.exists()
    admin.goto(f"{base}/projects/support-assistant/")
    waiting = admin.locator(".pending-change").filter(has_text="IdP group ml-experts to sme")
    expect(waiting).to_be_visible()
    assert waiting.get_by_role("button", name="Confirm", exact=True).count() == 0  # its author

    # Erin, who holds sme, confirms it on the project page.
    erin = sign_in_with_password(browser, base, "sme")
    erin.goto(f"{base}/projects/support-assistant/")
    card = erin.locator(".pending-change").filter(has_text="IdP group ml-experts to sme")
    card.get_by_role("button", name="Confirm", exact=True).click()
    expect(erin.locator("main")).to_contain_text("Confirmed and applied.")
    assert GroupMapping.objects.get().confirmed_by == people.sme

    # Nina's first sign-in creates her and grants sme, with no further confirmation.
    nina_at_idp = {"email": "nina@example.com", "preferred_username": "nina"}
    sso.people({"sub-nina": {**nina_at_idp, "groups": ["ml-experts"]}})
    page = new_page(browser)
    sign_in_at_idp(page, base, "sub-nina")
    assert page.locator(".who").inner_text() == "nina"
    identity = ExternalIdentity.objects.select_related("user").get(subject="sub-nina")
    assert identity.issuer == sso.issuer and identity.user.username == "nina"
    assert "sme" in roles_for(identity.user, people.project)

    # The admin sees nina's sme as coming from the IdP group, apart from the hand grants.
    admin.goto(identities)
    row = admin.locator("#roles-from-idp tbody tr").filter(has_text="nina")
    assert "ml-experts" in row.inner_text() and "sme" in row.inner_text()
    assert "nina" not in admin.locator("#roles-by-hand").inner_text()
    admin.goto(f"{base}/projects/support-assistant/")
    expect(admin.locator("main")).to_contain_text("from the IdP group ml-experts")

    # The role works: nina approves the release as sme.
    page.goto(f"{base}/releases/{release.pk}/")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("main")).to_contain_text("Approved as sme.")

    # Nina leaves the group at the IdP; her next sign-in revokes the role.
    sso.people({"sub-nina": {**nina_at_idp, "groups": []}})
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(lambda url: url.startswith(sso.issuer))  # the IdP's end-session page
    assert all(c["name"] != "sessionid" for c in page.context.cookies(base))
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login/")
    again = new_page(browser)
    sign_in_at_idp(again, base, "sub-nina")
    assert "sme" not in roles_for(identity.user, people.project)
    assert not IdpRoleGrant.objects.exists()
    admin.goto(identities)
    assert "nina" not in admin.locator("#roles-from-idp").inner_text()
    again.goto(f"{base}/releases/{release.pk}/")
    assert again.get_by_role("button", name="Approve").count() == 0


def test_local_login_off_offers_only_single_sign_on(browser, live_server, people, sso, settings):
    settings.RELEASEGATE_LOCAL_LOGIN = False
    sso.people({"sub-sam2": {"preferred_username": "sam2", "groups": []}})
    page = new_page(browser)
    page.goto(f"{live_server.url}/login/")
    assert page.locator("input[type=password]").count() == 0
    sign_in_at_idp(page, live_server.url, "sub-sam2")
    assert page.locator(".who").inner_text() == "sam2"


def test_forged_state_is_refused(browser, live_server, people, sso):
    page = new_page(browser)
    page.goto(f"{live_server.url}/sso/login/")  # a real state in this session, then a forged one
    response = page.goto(f"{live_server.url}/sso/callback/?code=abc&state=forged")
    assert response.status == 400
    assert "Sign-in failed" in page.content()
    page.goto(f"{live_server.url}/")
    assert page.url.startswith(f"{live_server.url}/login/")


def test_reused_code_is_refused(browser, live_server, people, sso):
    sso.people({"sub-rita": {"preferred_username": "rita", "groups": []}})
    first = new_page(browser)
    callbacks: list[str] = []
    first.on("request", lambda r: callbacks.append(r.url) if "/sso/callback/" in r.url else None)
    sign_in_at_idp(first, live_server.url, "sub-rita")
    used = parse_qs(urlsplit(callbacks[0]).query)

    # The same callback again in the same browser: its state was spent.
    again = first.goto(callbacks[0])
    assert again.status == 400

    # Another browser starts a sign-in (so its session holds a fresh, unspent state) and is
    # then sent back with the spent code: the state passes, the provider refuses the code.
    second = new_page(browser)
    asked: list[str] = []
    second.on("request", lambda r: asked.append(r.url) if r.url.startswith(sso.issuer) else None)
    second.goto(f"{live_server.url}/sso/login/")
    fresh = parse_qs(urlsplit(asked[0]).query)
    replay = {"code": used["code"][0], "state": fresh["state"][0], "iss": sso.issuer}
    answer = second.goto(f"{live_server.url}/sso/callback/?{urlencode(replay)}")
    assert answer.status == 400
    assert "Sign-in failed" in second.content()
    second.goto(f"{live_server.url}/")
    assert second.url.startswith(f"{live_server.url}/login/")
