"""Hostile POST /data bodies, against both daemons.

Every case must get a clear JSON error (or, for the transport-level ones, a
clean close); afterwards the daemon still answers /health with 200 and GET /data
is byte for byte what was stored before (plus what the case was meant to store).
"""

import pytest

from hostile_util import (
    MiB, assert_json_error_or_close, expect_error, expect_json, post_json, raw_send,
)

MALFORMED = {
    "unclosed object": b'{"a":',
    "trailing comma": b'{"a":1,}',
    "bare key": b"{a:1}",
    "single quotes": b"{'a':1}",
    "extra brace": b'{"a":1}}',
    "text after object": b'{"a":1} x',
    "two objects": b'{"a":1}{"b":2}',
    "bad literal": b'{"a":tru}',
    "leading zero": b'{"a":01}',
    "hex number": b'{"a":0x10}',
    "NaN": b'{"a":NaN}',
    "Infinity": b'{"a":Infinity}',
    "plus sign": b'{"a":+1}',
    "lone minus": b'{"a":-}',
    "comment": b'{"a":1 /* c */}',
    "bad escape": b'{"a":"\\x41"}',
    "short unicode escape": b'{"a":"\\u12"}',
    "lone low surrogate": b'{"a":"\\udc00"}',
    "lone high surrogate": b'{"a":"\\ud800x"}',
    "raw tab in string": b'{"a":"x\ty"}',
    "raw newline in string": b'{"a":"x\ny"}',
    "missing colon": b'{"a" 1}',
    "missing value": b'{"a":}',
    "number key": b"{1:2}",
    "garbage": b"\x01\x02\x03 not json at all",
    "BOM then object": b'\xef\xbb\xbf{"a":1}',
}

TRUNCATED = {
    "open brace": b"{",
    "open string": b'{"a":"abc',
    "open array": b'{"a":[1,2',
    "open nested": b'{"a":{"b":',
    "half escape": b'{"a":"\\',
    "half unicode escape": b'{"a":"\\u00',
    "half literal": b'{"a":fal',
    "half exponent": b'{"a":1e',
    "half fraction": b'{"a":1.',
}

NOT_OBJECT = {
    "array": b"[1,2,3]",
    "empty array": b"[]",
    "string": b'"text"',
    "number": b"42",
    "true": b"true",
    "null": b"null",
}

INVALID_UTF8 = {
    "0xff in value": b'{"a":"\xff"}',
    "0xff in key": b'{"\xff":1}',
    "continuation byte alone": b'{"a":"\x80"}',
    "overlong slash": b'{"a":"\xc0\xaf"}',
    "overlong 3-byte": b'{"a":"\xe0\x80\xaf"}',
    "UTF-16 surrogate encoded": b'{"a":"\xed\xa0\x80"}',
    "past U+10FFFF": b'{"a":"\xf4\x90\x80\x80"}',
    "truncated 3-byte": b'{"a":"\xe2\x82"}',
    "truncated at end of body": b'{"a":"\xe2',
    "latin-1 text": b'{"caf\xe9":"cr\xe8me"}',
}

NUL_BYTES = {
    "escaped NUL in value": b'{"a":"x\\u0000y"}',
    "escaped NUL in key": b'{"x\\u0000y":1}',
    "escaped NUL alone": b'{"a":"\\u0000"}',
    "raw NUL in value": b'{"a":"x\x00y"}',
    "raw NUL in key": b'{"x\x00y":1}',
    "raw NUL after object": b'{"a":1}\x00',
    "raw NUL before object": b'\x00{"a":1}',
    "NUL only": b"\x00",
}

DUPLICATE_KEYS = {
    "top level": b'{"a":1,"a":2}',
    "same value": b'{"a":1,"a":1}',
    "nested": b'{"o":{"k":1,"k":1}}',
    "in array member": b'{"l":[{"k":1,"k":2}]}',
    "escaped spelling": b'{"a":1,"\\u0061":2}',
}

HUGE_REFUSED = {
    "1e999": b'{"n":1e999}',
    "-1e999": b'{"n":-1e999}',
    "1.5E+400": b'{"n":1.5E+400}',
    "nested 1e999": b'{"l":[1,2,{"n":1e999}]}',
}

DEPTH = 100_000


def deep_bodies():
    return {
        "100000 open brackets": b'{"a":' + b"[" * DEPTH + b"}",
        "100000 balanced brackets": b'{"a":' + b"[" * DEPTH + b"]" * DEPTH + b"}",
        "100000 nested objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
        "100000 open braces": b"{" * DEPTH,
    }


def check_400(target, body):
    r = post_json(target.port, body, timeout=10)
    msg = expect_error(r, 400)
    assert len(msg) < 4096, f"error message unreasonably long: {len(msg)} chars"
    return msg


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_json(target, name):
    check_400(target, MALFORMED[name])
    target.check()


@pytest.mark.parametrize("name", sorted(TRUNCATED))
def test_truncated_json(target, name):
    check_400(target, TRUNCATED[name])
    target.check()


@pytest.mark.parametrize("name", sorted(NOT_OBJECT))
def test_json_that_is_not_an_object(target, name):
    check_400(target, NOT_OBJECT[name])
    target.check()


@pytest.mark.parametrize("body", [b"", b"{}", b"{ }", b" \r\n\t{}\n"])
def test_empty_body_and_empty_object(target, body):
    r = post_json(target.port, body)
    assert expect_error(r, 400) == "No data provided"
    target.check()


@pytest.mark.parametrize("body", [b" ", b"\r\n", b" \t \n "])
def test_white_space_only_body(target, body):
    check_400(target, body)
    target.check()


@pytest.mark.parametrize("name", sorted(deep_bodies()))
def test_100000_deep_nesting(target, name):
    check_400(target, deep_bodies()[name])
    target.check()


@pytest.mark.parametrize("name", sorted(INVALID_UTF8))
def test_invalid_utf8(target, name):
    check_400(target, INVALID_UTF8[name])
    target.check()


@pytest.mark.parametrize("name", sorted(NUL_BYTES))
def test_nul_bytes(target, name):
    check_400(target, NUL_BYTES[name])
    target.check()


@pytest.mark.parametrize("name", sorted(DUPLICATE_KEYS))
def test_duplicate_keys(target, name):
    check_400(target, DUPLICATE_KEYS[name])
    target.check()


@pytest.mark.parametrize("name", sorted(HUGE_REFUSED))
def test_huge_real_refused(target, name):
    check_400(target, HUGE_REFUSED[name])
    target.check()


@pytest.mark.parametrize("digits", [30, 300])
@pytest.mark.parametrize("sign", ["", "-"])
def test_huge_integer_stored_as_sent(target, digits, sign):
    """Integers past 64 bits but within a double's range are accepted and stored with every digit."""
    body = b'{"n":' + sign.encode() + b"9" * digits + b',"tag":"int%d%s"}' % (digits, sign.encode())
    r = post_json(target.port, body)
    if r.status == 201:
        target.accepted(body)
    got = expect_json(r, 201)
    assert r.body.endswith(b'"stored_data":' + body + b"}"), r
    assert got["stored_data"]["tag"] == f"int{digits}{sign}"
    target.check()


@pytest.mark.parametrize("sign", ["", "-"])
def test_integer_beyond_double_range_refused(target, sign):
    """The README's documented limit: a number beyond a double's range (about 1.8e308) gets a clear 400."""
    body = b'{"n":' + sign.encode() + b"9" * 400 + b'}'
    msg = check_400(target, body)
    assert "overflow" in msg, msg
    target.check()


def test_tiny_and_precise_reals_stored_as_sent(target):
    body = b'{"tiny":1e-999,"pi":3.14159265358979323846264338327950288,"neg0":-0.0,"e":1E+2}'
    r = post_json(target.port, body)
    if r.status == 201:
        target.accepted(body)
    expect_json(r, 201)
    assert r.body.endswith(b'"stored_data":' + body + b"}"), r
    target.check()


def test_refused_body_after_valid_prefix_is_not_half_stored(target):
    """A body whose first object is fine but which is invalid as a whole stores nothing."""
    check_400(target, b'{"a":1},{"b":2}')
    check_400(target, b'{"a":1}\n{"b":2}\n')
    target.check()


def test_body_just_over_the_limit_is_refused(target):
    """BODY_MAX_BYTES (default 1 MiB) + 1 byte of valid JSON: 413 JSON error or a clean close."""
    pad = 1 * MiB + 1 - len(b'{"p":""}')
    body = b'{"p":"' + b"x" * pad + b'"}'
    assert len(body) == MiB + 1
    head = (b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    out = raw_send(target.port, [head, body], timeout=10)
    assert_json_error_or_close(out, statuses={413})
    target.check()


def test_body_at_the_limit_is_stored(target):
    """Exactly BODY_MAX_BYTES of valid JSON is accepted (the limit is inclusive)."""
    pad = MiB - len(b'{"p":""}')
    body = b'{"p":"' + b"y" * pad + b'"}'
    assert len(body) == MiB
    r = post_json(target.port, body, timeout=10)
    if r.status == 201:
        target.accepted(body)
    expect_json(r, 201)
    target.check()
