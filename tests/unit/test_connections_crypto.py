"""Secrets at rest (Fernet) and the permission table."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from shared.connections.crypto import MISSING_KEY, decrypt_secret, encrypt_secret, generate_key
from shared.errors import ConfigurationError
from shared.harvest.sandbox.seed import ALL_SCOPES
from shared.harvest.scopes import REQUIRED, REQUIRED_SCOPES, missing_message


def test_round_trip_and_ciphertext_hides_the_secret() -> None:
    key = SecretStr(generate_key())
    token = encrypt_secret(SecretStr("s3cret-value"), key)
    assert "s3cret-value" not in token
    assert encrypt_secret(SecretStr("s3cret-value"), key) != token  # random IV
    plain = decrypt_secret(token, key, connection="acme")
    assert plain.get_secret_value() == "s3cret-value"
    assert "s3cret" not in repr(plain)


@pytest.mark.parametrize("key", [None, SecretStr(""), SecretStr("  ")])
def test_missing_key_says_how_to_generate_one(key: SecretStr | None) -> None:
    with pytest.raises(ConfigurationError) as err:
        encrypt_secret(SecretStr("x"), key)
    assert str(err.value) == MISSING_KEY
    assert "ghexport keygen" in str(err.value)


def test_invalid_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a valid Fernet key"):
        encrypt_secret(SecretStr("x"), SecretStr("too-short"))


def test_wrong_key_names_the_connection() -> None:
    token = encrypt_secret(SecretStr("x"), SecretStr(generate_key()))
    with pytest.raises(ConfigurationError) as err:
        decrypt_secret(token, SecretStr(generate_key()), connection="acme")
    assert str(err.value) == "cannot decrypt the stored secret of connection acme: GHX_SECRET_KEY changed?"


def test_wiped_secret_asks_to_connect_again() -> None:
    with pytest.raises(ConfigurationError, match="has no stored secret"):
        decrypt_secret("", SecretStr(generate_key()), connection="acme")


def test_generated_key_is_a_fernet_key() -> None:
    Fernet(generate_key().encode())


def test_permission_table_covers_the_export_with_known_scopes() -> None:
    assert len(REQUIRED_SCOPES) == len(REQUIRED)  # one permission per scope
    assert set(REQUIRED_SCOPES) <= set(ALL_SCOPES)
    for scope in (
        "harvest:candidates:create",
        "harvest:candidates:merge",
        "harvest:candidates:anonymize",
        "harvest:candidates:destroy",
        "harvest:applications:update",
        "harvest:attachments:create",
        "harvest:candidate_educations:destroy",
        "harvest:candidate_employments:destroy",
        "harvest:applied_candidate_tags:create",
        "harvest:prospect_pool_stages:list",
        "harvest:custom_field_options:list",
        "harvest:close_reasons:list",
    ):
        assert scope in REQUIRED_SCOPES
    for perm in REQUIRED:
        assert perm.path.startswith("/") and not perm.path.startswith("/v3")
        resource = perm.scope.split(":")[1]
        assert perm.path.split("/")[1] == resource
        if perm.method in ("PATCH", "DELETE"):
            assert "/0" in perm.path  # a nonexistent id: no side effect


def test_missing_message_lists_labels() -> None:
    add, merge = REQUIRED[0], REQUIRED[3]
    message = missing_message("cid", [add, merge])
    assert "credential cid lacks 2 permissions" in message
    assert "Add Candidate (harvest:candidates:create), Merge Candidates (harvest:candidates:merge)" in message
