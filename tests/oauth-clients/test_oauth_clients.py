"""The gateway's OAuth 2.0 surface as a real client library sees it: authlib's requests client
against /token (password, refresh and client credentials grants), /oauth2/introspect,
/oauth2/revoke and /.well-known/oauth-authorization-server.

Run by scripts/oauth-clients.sh, which starts auth-svc and the gateway on a fresh database,
creates three service accounts and passes their ids and secrets in the environment:
`gate` (scope introspect), `orders` (scopes orders:read orders:write, audience
OAUTH_ORDERS_AUDIENCE) and `reports` (scope orders:read), the one whose tokens a test revokes:
revoking a client's token also ends its tokens of the same second, which would reach into the
other tests. Each test registers its own users, so the tests are independent.

Assertions name keys, statuses and claims, never a token or a secret: pytest prints the values
of a failed assertion, and the output must stay free of them.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import time
import uuid
from urllib.parse import parse_qsl

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

BASE = os.environ["OAUTH_BASE_URL"]
TOKEN_URL = f"{BASE}/token"
INTROSPECT_URL = f"{BASE}/oauth2/introspect"
REVOKE_URL = f"{BASE}/oauth2/revoke"
METADATA_URL = f"{BASE}/.well-known/oauth-authorization-server"
GATE = (os.environ["OAUTH_GATE_CLIENT_ID"], os.environ["OAUTH_GATE_CLIENT_SECRET"])
ORDERS = (os.environ["OAUTH_ORDERS_CLIENT_ID"], os.environ["OAUTH_ORDERS_CLIENT_SECRET"])
REPORTS = (os.environ["OAUTH_REPORTS_CLIENT_ID"], os.environ["OAUTH_REPORTS_CLIENT_SECRET"])
ORDERS_AUDIENCE = os.environ["OAUTH_ORDERS_AUDIENCE"]
# The same words as the Rust end-to-end suite's, which scripts/check-logs-for-secrets.sh looks
# for in the servers' logs.
PASSWORD = "correct horse battery staple"
WRONG_PASSWORD = "wrong password, on purpose"
# The second step of a login for an account with a second factor (README, "Second factor").
MFA_OTP_GRANT = "urn:auth-svc:params:oauth:grant-type:mfa-otp"
MFA_RECOVERY_CODE_GRANT = "urn:auth-svc:params:oauth:grant-type:mfa-recovery-code"


def jwt_claims(token):
    """The payload of a JWT, unverified: the tests read what was issued, the servers verify."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def recording(session):
    """The token endpoint responses `session` receives, appended to the returned list; authlib's
    OAuthError does not carry the HTTP status or headers."""
    responses = []

    def record(response):
        responses.append(response)
        return response

    for hook in ("access_token_response", "refresh_token_response"):
        session.register_compliance_hook(hook, record)
    return responses


def form_fields(request):
    """The names of the fields of a form `request` sent."""
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    return {name for name, _ in parse_qsl(body)}


def fingerprint(token):
    """What the tests compare tokens by: a failed comparison prints this, not the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@pytest.fixture
def username():
    """A new account with PASSWORD, registered through the tutorial's /signup."""
    name = f"authlib-{uuid.uuid4().hex[:12]}"
    response = requests.post(f"{BASE}/signup", json={"username": name, "password": PASSWORD}, timeout=10)
    assert response.status_code == 200, response.text
    return name


@pytest.fixture
def user_session(username):
    """A public client's session (no client secret) holding the account's token pair."""
    session = OAuth2Session()
    session.fetch_token(TOKEN_URL, username=username, password=PASSWORD)
    return session


def client_session(client, method="client_secret_basic", **kwargs):
    client_id, client_secret = client
    return OAuth2Session(client_id, client_secret, token_endpoint_auth_method=method, **kwargs)


def introspect(token, client=GATE, method="client_secret_basic"):
    """RFC 7662 introspection of `token` by `client`; the HTTP response."""
    return client_session(client, method).introspect_token(INTROSPECT_URL, token=token, timeout=10)


# --- password and refresh grants -----------------------------------------------------------


def test_the_password_grant_gives_a_pair_that_reaches_user_info(username):
    session = OAuth2Session()
    token = session.fetch_token(TOKEN_URL, username=username, password=PASSWORD)

    assert {"access_token", "refresh_token", "token_type", "expires_in"} <= set(token)
    assert token["token_type"] == "bearer"
    assert token["expires_in"] > 0
    # authlib turned expires_in into an absolute time, and holds the token as not expired.
    assert token["expires_at"] > time.time()
    assert not token.is_expired()
    claims = jwt_claims(token["access_token"])
    assert claims["iss"] == BASE
    assert claims["role"] == "user"
    assert isinstance(claims["userId"], int)

    info = session.get(f"{BASE}/user/info", timeout=10)
    assert info.status_code == 200
    assert info.json() == {"id": claims["userId"], "username": username, "role": "user"}


def test_the_refresh_grant_rotates_the_pair(user_session):
    first = dict(user_session.token)
    second = user_session.refresh_token(TOKEN_URL)

    assert {"access_token", "refresh_token", "token_type", "expires_in"} <= set(second)
    assert fingerprint(second["refresh_token"]) != fingerprint(first["refresh_token"])
    assert fingerprint(second["access_token"]) != fingerprint(first["access_token"])
    assert jwt_claims(second["access_token"])["sid"] == jwt_claims(first["access_token"])["sid"]
    # The session now sends the new access token.
    assert fingerprint(user_session.token["access_token"]) == fingerprint(second["access_token"])
    assert user_session.get(f"{BASE}/user/info", timeout=10).status_code == 200


def test_a_wrong_password_raises_invalid_grant_and_stores_no_token(username):
    session = OAuth2Session()
    responses = recording(session)
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(TOKEN_URL, username=username, password=WRONG_PASSWORD)

    assert raised.value.error == "invalid_grant"
    assert raised.value.description
    # The headline bug: the error body used to be taken for a token.
    assert session.token is None
    (response,) = responses
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # The tutorial's field is still there beside RFC 6749's.
    assert response.json()["detail"] == "Incorrect username or password"


def hotp(secret, counter, digits=6):
    """RFC 4226's code of the base32 `secret` at `counter` (SHA-1)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    start = digest[-1] & 0x0F
    value = (struct.unpack(">I", digest[start : start + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{value:0{digits}d}"


def totp(secret, offset=0):
    """RFC 6238's code (30-second steps, 6 digits) of `secret`, `offset` steps from now."""
    return hotp(secret, int(time.time()) // 30 + offset)


def test_the_code_function_computes_rfc_6238s_vectors():
    secret = base64.b32encode(b"12345678901234567890").decode()
    for at, code in [(59, "94287082"), (1111111109, "07081804"), (2000000000, "69279037")]:
        assert hotp(secret, at // 30, digits=8) == code


def enrolled(username):
    """Turns on the second factor of `username` through the go-zero routes; its base32 secret."""
    access = OAuth2Session().fetch_token(TOKEN_URL, username=username, password=PASSWORD)["access_token"]
    bearer = {"authorization": f"Bearer {access}"}
    begun = requests.post(f"{BASE}/user/mfa/totp", json={"password": PASSWORD}, headers=bearer, timeout=10)
    assert begun.status_code == 200, begun.status_code
    secret = begun.json()["secret"]
    confirmed = requests.post(f"{BASE}/user/mfa/totp/confirm", json={"code": totp(secret, -1)}, headers=bearer, timeout=10)
    assert confirmed.status_code == 200, confirmed.status_code
    return secret, confirmed.json()["recoveryCodes"]


def test_an_account_with_a_second_factor_raises_mfa_required_then_the_otp_grant_gives_the_pair(username):
    if int(time.time()) % 30 > 25:
        time.sleep(6)  # the codes below are of this step and the last: stay inside one
    secret, recovery_codes = enrolled(username)
    session = OAuth2Session()
    responses = recording(session)
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(TOKEN_URL, username=username, password=PASSWORD)
    assert raised.value.error == "mfa_required"
    assert session.token is None
    (response,) = responses
    assert response.status_code == 403
    body = response.json()
    assert body["mfa_methods"] == ["totp", "recovery_code"]
    assert 0 < body["expires_in"] <= 300

    token = session.fetch_token(TOKEN_URL, grant_type=MFA_OTP_GRANT, mfa_token=body["mfa_token"], otp=totp(secret))
    assert {"access_token", "refresh_token", "token_type", "expires_in"} <= set(token)
    assert jwt_claims(token["access_token"])["amr"] == ["pwd", "otp"]
    assert session.get(f"{BASE}/user/info", timeout=10).status_code == 200
    # Refreshing keeps how the session was authenticated.
    refreshed = session.refresh_token(TOKEN_URL)
    assert jwt_claims(refreshed["access_token"])["amr"] == ["pwd", "otp"]

    # The challenge is spent, and so is the code.
    with pytest.raises(OAuthError) as replayed:
        OAuth2Session().fetch_token(TOKEN_URL, grant_type=MFA_OTP_GRANT, mfa_token=body["mfa_token"], otp=totp(secret))
    assert replayed.value.error == "invalid_grant"

    # A recovery code works too, once.
    again = recording(session := OAuth2Session())
    with pytest.raises(OAuthError):
        session.fetch_token(TOKEN_URL, username=username, password=PASSWORD)
    challenge = again[0].json()["mfa_token"]
    token = session.fetch_token(
        TOKEN_URL, grant_type=MFA_RECOVERY_CODE_GRANT, mfa_token=challenge, recovery_code=recovery_codes[0]
    )
    assert jwt_claims(token["access_token"])["amr"] == ["pwd", "otp"]


def test_an_access_token_is_no_refresh_token(user_session):
    with pytest.raises(OAuthError) as raised:
        user_session.refresh_token(TOKEN_URL, refresh_token=user_session.token["access_token"])
    assert raised.value.error == "invalid_grant"


# --- client credentials grant -----------------------------------------------------------------


def test_client_credentials_with_http_basic():
    session = client_session(ORDERS, "client_secret_basic")
    responses = recording(session)
    token = session.fetch_token(TOKEN_URL, grant_type="client_credentials", scope="orders:read")

    request = responses[0].request
    assert request.headers["Authorization"].split(" ")[0] == "Basic"
    assert "client_secret" not in form_fields(request)
    assert token["token_type"] == "bearer"
    assert token["scope"] == "orders:read"
    assert token["expires_in"] > 0
    assert "refresh_token" not in set(token)
    claims = jwt_claims(token["access_token"])
    assert (claims["sub"], claims["client_id"], claims["scope"]) == (ORDERS[0], ORDERS[0], "orders:read")
    assert claims["iss"] == BASE
    assert "aud" not in claims
    assert "userId" not in claims


def test_client_credentials_with_form_auth_and_an_audience():
    session = client_session(ORDERS, "client_secret_post")
    responses = recording(session)
    token = session.fetch_token(
        TOKEN_URL, grant_type="client_credentials", scope="orders:read orders:write", audience=ORDERS_AUDIENCE
    )

    request = responses[0].request
    assert "authorization" not in {name.lower() for name in request.headers}
    assert form_fields(request) >= {"client_id", "client_secret", "audience", "scope"}
    assert set(token["scope"].split()) == {"orders:read", "orders:write"}
    assert "refresh_token" not in set(token)
    claims = jwt_claims(token["access_token"])
    assert (claims["sub"], claims["client_id"]) == (ORDERS[0], ORDERS[0])
    assert set(claims["scope"].split()) == {"orders:read", "orders:write"}
    assert claims["aud"] in (ORDERS_AUDIENCE, [ORDERS_AUDIENCE])


def test_client_credentials_with_a_resource_indicator():
    token = client_session(ORDERS).fetch_token(TOKEN_URL, grant_type="client_credentials", resource=ORDERS_AUDIENCE)
    assert jwt_claims(token["access_token"])["aud"] in (ORDERS_AUDIENCE, [ORDERS_AUDIENCE])


def test_client_credentials_without_a_scope_grant_every_scope_of_the_client():
    token = client_session(ORDERS).fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert set(token["scope"].split()) == {"orders:read", "orders:write"}
    assert set(jwt_claims(token["access_token"])["scope"].split()) == {"orders:read", "orders:write"}


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_wrong_client_secret_raises_invalid_client(method):
    session = client_session((ORDERS[0], "not-the-secret"), method)
    responses = recording(session)
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(TOKEN_URL, grant_type="client_credentials")

    assert raised.value.error == "invalid_client"
    assert session.token is None
    (response,) = responses
    assert response.status_code == 401
    challenge = response.headers.get("WWW-Authenticate", "")
    if method == "client_secret_basic":
        # RFC 6749 section 5.2: the scheme the client authenticated with.
        assert challenge.startswith("Basic"), challenge
    else:
        assert challenge, "a 401 carries WWW-Authenticate"


def test_an_unknown_client_raises_invalid_client():
    with pytest.raises(OAuthError) as raised:
        client_session(("no-such-client", "whatever")).fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert raised.value.error == "invalid_client"


@pytest.mark.parametrize(
    "client, scope",
    [(ORDERS, "introspect"), (ORDERS, "orders:read admin"), (GATE, "orders:read")],
    ids=["orders-asks-introspect", "orders-asks-an-unknown-scope", "gate-asks-orders-read"],
)
def test_a_scope_not_granted_raises_invalid_scope(client, scope):
    session = client_session(client)
    responses = recording(session)
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(TOKEN_URL, grant_type="client_credentials", scope=scope)
    assert raised.value.error == "invalid_scope"
    assert responses[0].status_code == 400


def test_an_audience_not_granted_raises_invalid_target():
    with pytest.raises(OAuthError) as raised:
        client_session(ORDERS).fetch_token(
            TOKEN_URL, grant_type="client_credentials", audience="https://elsewhere.example"
        )
    assert raised.value.error == "invalid_target"


# --- introspection --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_introspection_of_a_user_token(user_session, username, method):
    access_token = user_session.token["access_token"]
    response = introspect(access_token, method=method)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    answer = response.json()
    claims = jwt_claims(access_token)
    assert answer["active"] is True
    assert answer["username"] == username
    assert answer["sub"] == claims["sub"]
    assert (answer["exp"], answer["iat"], answer["iss"]) == (claims["exp"], claims["iat"], BASE)
    assert answer["token_type"].lower() == "bearer"
    assert "client_id" not in answer


def test_introspection_of_a_client_token():
    token = client_session(ORDERS).fetch_token(
        TOKEN_URL, grant_type="client_credentials", scope="orders:write", audience=ORDERS_AUDIENCE
    )
    answer = introspect(token["access_token"]).json()

    assert answer["active"] is True
    assert (answer["client_id"], answer["sub"], answer["scope"]) == (ORDERS[0], ORDERS[0], "orders:write")
    assert answer["aud"] in (ORDERS_AUDIENCE, [ORDERS_AUDIENCE])
    assert "username" not in answer


def test_introspection_of_what_is_not_an_active_access_token_says_only_inactive(user_session):
    garbage = introspect("not-a-token")
    assert garbage.status_code == 200
    assert garbage.json() == {"active": False}
    # Refresh tokens are never active at introspection.
    assert introspect(user_session.token["refresh_token"]).json() == {"active": False}


def test_introspection_needs_a_client_with_the_introspect_scope(user_session):
    access_token = user_session.token["access_token"]

    refused = introspect(access_token, client=ORDERS)
    assert refused.status_code == 403
    assert refused.json()["error"] == "unauthorized_client"

    wrong_secret = introspect(access_token, client=(GATE[0], "not-the-secret"))
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"

    anonymous = requests.post(INTROSPECT_URL, data={"token": access_token}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"


# --- revocation -----------------------------------------------------------------------------


def test_revoking_a_refresh_token_ends_its_session(user_session):
    token = dict(user_session.token)
    response = client_session(GATE).revoke_token(
        REVOKE_URL, token=token["refresh_token"], token_type_hint="refresh_token", timeout=10
    )
    assert response.status_code == 200

    with pytest.raises(OAuthError) as raised:
        user_session.refresh_token(TOKEN_URL)
    assert raised.value.error == "invalid_grant"
    # On one replica the revocation is seen at once.
    assert introspect(token["access_token"]).json() == {"active": False}
    assert user_session.get(f"{BASE}/user/info", timeout=10).status_code == 401


def test_revocation_without_client_authentication_ends_the_session(user_session):
    token = dict(user_session.token)
    response = requests.post(REVOKE_URL, data={"token": token["refresh_token"]}, timeout=10)
    assert response.status_code == 200, response.text
    assert introspect(token["access_token"]).json() == {"active": False}


def test_a_public_client_revokes_its_own_access_token(user_session):
    """RFC 7009 with no client secret: the metadata lists `none` for revocation, and authlib's
    `none` method names the client by a form `client_id` (RFC 6749 section 3.2.1 lets a
    public client identify itself so)."""
    token = dict(user_session.token)
    public = OAuth2Session(client_id="tutorial-frontend", token=token)
    response = public.revoke_token(REVOKE_URL, token=token["access_token"], token_type_hint="access_token", timeout=10)
    assert response.status_code == 200, response.text

    assert introspect(token["access_token"]).json() == {"active": False}
    with pytest.raises(OAuthError) as raised:
        user_session.refresh_token(TOKEN_URL)
    assert raised.value.error == "invalid_grant"


def test_a_client_revokes_its_own_token():
    session = client_session(REPORTS)
    token = session.fetch_token(TOKEN_URL, grant_type="client_credentials")

    assert session.revoke_token(REVOKE_URL, token=token["access_token"], timeout=10).status_code == 200
    assert introspect(token["access_token"]).json() == {"active": False}


def test_a_token_fetched_after_a_revocation_stands():
    """auth-svc's documented rule (`Clients::revoke_tokens`): a client's revocation ends its
    tokens issued in the same second or before; tokens issued later stand. A client that
    revokes its token and fetches a new one, as a rotation does, must get a live one."""
    session = client_session(REPORTS)
    old = session.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert session.revoke_token(REVOKE_URL, token=old["access_token"], timeout=10).status_code == 200

    new = session.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert introspect(new["access_token"]).json()["active"] is True


def test_revoking_an_unknown_token_still_answers_200():
    response = client_session(GATE).revoke_token(REVOKE_URL, token="not-a-token", timeout=10)
    assert response.status_code == 200


def test_revocation_with_a_wrong_client_secret_is_refused(user_session):
    response = client_session((GATE[0], "not-the-secret")).revoke_token(
        REVOKE_URL, token=user_session.token["refresh_token"], timeout=10
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    # Nothing was revoked: the refresh still works.
    assert {"access_token", "refresh_token"} <= set(user_session.refresh_token(TOKEN_URL))


# --- server metadata ------------------------------------------------------------------------


def test_the_server_metadata_lists_the_endpoints_and_grants():
    response = requests.get(METADATA_URL, timeout=10)
    assert response.status_code == 200
    metadata = AuthorizationServerMetadata(response.json())
    # authlib's own RFC 8414 checks (loopback http counts as secure transport), all but one:
    # authlib takes the empty response_types_supported for a missing one, and the server has no
    # authorization endpoint, so no response type it could truthfully list.
    assert metadata["response_types_supported"] == []
    for key in metadata.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(metadata, f"validate_{key}")()

    # RFC 8414 section 3.3: the issuer is the URL the document was fetched under.
    assert metadata["issuer"] == BASE
    assert metadata["token_endpoint"] == TOKEN_URL
    assert metadata["introspection_endpoint"] == INTROSPECT_URL
    assert metadata["revocation_endpoint"] == REVOKE_URL
    assert metadata["jwks_uri"] == f"{BASE}/.well-known/jwks.json"
    assert set(metadata["grant_types_supported"]) == {
        "password",
        "refresh_token",
        "client_credentials",
        MFA_OTP_GRANT,
        MFA_RECOVERY_CODE_GRANT,
    }
    assert set(metadata["scopes_supported"]) == {"introspect", "orders:read", "orders:write"}
    for methods in (
        metadata.token_endpoint_auth_methods_supported,
        metadata.introspection_endpoint_auth_methods_supported,
        metadata.revocation_endpoint_auth_methods_supported,
    ):
        assert {"client_secret_basic", "client_secret_post"} <= set(methods)


def test_a_client_configured_from_the_metadata_gets_a_token():
    metadata = requests.get(METADATA_URL, timeout=10).json()
    session = client_session(ORDERS, token_endpoint=metadata["token_endpoint"])
    # No URL: authlib takes the token endpoint from its metadata.
    token = session.fetch_token(grant_type="client_credentials", scope="orders:read")
    assert jwt_claims(token["access_token"])["client_id"] == ORDERS[0]
    answer = introspect(token["access_token"]).json()
    assert (answer["active"], answer["scope"]) == (True, "orders:read")
