from __future__ import annotations

from interlock.security.keys import KEY_PREFIX, key_hash, new_key
from tests.support.keystore import SECRET


def test_keys_are_long_random_and_their_hmac_depends_on_the_server_secret() -> None:
    a, b = new_key(), new_key()
    assert a.startswith(KEY_PREFIX) and len(a) >= 35 and a != b
    assert key_hash(SECRET, a) == key_hash(SECRET, a) != key_hash(b"another-secret-value", a)
