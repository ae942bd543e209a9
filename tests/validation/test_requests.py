"""The guard on requests built directly: each class of violation refused with its status,
code and pointer, and valid requests allowed. (tests/validation/test_gateway.py runs the same
guard in the real engine.)"""

from __future__ import annotations

import pytest

from bastion.validation.guard import ValidationGuard
from tests.validation.helpers import (
    PETS_30,
    PETS_31,
    allowed,
    guard_for,
    json_request,
    pointers,
    refusal,
    request,
)

PET = {"name": "Rex", "age": 3, "tags": ["good"], "owner": {"email": "a@example.com"}}


@pytest.fixture(scope="module")
def guard() -> ValidationGuard:
    return guard_for(PETS_30)


@pytest.fixture(scope="module")
def strict() -> ValidationGuard:
    return guard_for(PETS_30, strict=True)


def test_valid_requests_are_allowed(guard: ValidationGuard) -> None:
    assert allowed(guard.check(request("GET", "/v1/pets")))
    assert allowed(guard.check(request("GET", "/v1/pets?limit=10&tags=a&tags=b&ids=1,2,3")))
    assert allowed(guard.check(request("GET", "/v1/pets?filter[kind]=cat&filter[age]=2")))
    assert allowed(guard.check(request("GET", "/v1/pets", [("x-trace", "deadbeef")])))
    assert allowed(guard.check(request("GET", "/v1/pets", [("cookie", "a=b; session=abcd")])))
    assert allowed(guard.check(request("GET", "/v1/pets/7")))
    assert allowed(guard.check(request("HEAD", "/v1/pets/7")))
    assert allowed(guard.check(request("GET", "/v1/pets/7/photos/front.png")))
    assert allowed(guard.check(request("DELETE", "/v1/pets/7", [("x-reason", "sold")])))
    assert allowed(guard.check(json_request("POST", "/v1/pets", PET)))
    assert allowed(guard.check(json_request("POST", "/v1/pets", {"name": "n", "age": None})))
    assert allowed(guard.check(json_request("POST", "/v1/pets", {"name": "n", "owner": None})))


def test_the_server_base_path_is_part_of_every_path(guard: ValidationGuard) -> None:
    assert refusal(guard.check(request("GET", "/pets")))["code"] == "validation.not_found"
    assert refusal(guard.check(request("GET", "/v1")))["status"] == 404
    assert refusal(guard.check(request("GET", "/v1/pets/")))["status"] == 404


def test_a_concrete_path_wins_over_a_template(guard: ValidationGuard) -> None:
    # /pets/mine is its own operation; as /pets/{petId} it would be an invalid integer
    assert allowed(guard.check(request("GET", "/v1/pets/mine")))
    assert pointers(guard.check(request("GET", "/v1/pets/other"))) == {
        "/path/petId": "expected integer"
    }


def test_an_undocumented_method_is_405_with_allow(guard: ValidationGuard) -> None:
    decision = guard.check(request("PATCH", "/v1/pets/7"))
    problem = refusal(decision)
    assert problem["status"] == 405
    assert problem["code"] == "validation.method_not_allowed"
    assert dict(decision.headers)["allow"] == "GET, DELETE, HEAD"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("target", "headers", "expected"),
    [
        ("/v1/pets/0", [], {"/path/petId": "must be at least 1"}),
        ("/v1/pets/7/photos/front.gif", [], {"/path/ext": "expected one of the documented"
                                              " values ('png', 'jpg')"}),
        ("/v1/pets?limit=0", [], {"/query/limit": "must be at least 1"}),
        ("/v1/pets?limit=ten", [], {"/query/limit": "expected integer"}),
        ("/v1/pets?ids=1,x", [], {"/query/ids/1": "expected integer"}),
        ("/v1/pets?filter[kind]=cow", [], {"/query/filter/kind": "expected one of the documented"
                                           " values ('cat', 'dog')"}),
        ("/v1/pets", [("x-trace", "nothex!!")], {"/header/X-Trace": "must match the documented"
                                                  " pattern ^[a-f0-9]{8}$"}),
        ("/v1/pets", [("cookie", "session=ab")], {"/cookie/session": "must be at least 4"
                                                  " characters long"}),
        ("/v1/search", [], {"/query/q": "is required"}),
        ("/v1/search?q=x&coords={\"lng\":1}", [], {"/query/coords/lat": "is required"}),
        ("/v1/search?q=x&coords=nope", [], {"/query/coords": "is not valid JSON"}),
    ],
)  # fmt: skip
def test_parameter_violations_name_their_pointer(
    guard: ValidationGuard, target: str, headers: list[tuple[str, str]], expected: dict[str, str]
) -> None:
    decision = guard.check(request("GET", target, headers))
    assert refusal(decision)["code"] == "validation.parameter_invalid"
    assert refusal(decision)["status"] == 400
    assert pointers(decision) == expected


def test_a_required_header_is_enforced(guard: ValidationGuard) -> None:
    decision = guard.check(request("DELETE", "/v1/pets/7"))
    assert pointers(decision) == {"/header/X-Reason": "is required"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"/body/name": "is required"}),
        ({"name": ""}, {"/body/name": "must be at least 1 characters long"}),
        ({"name": "n", "age": 0}, {"/body/age": "must be greater than 0"}),
        ({"name": "n", "tags": ["a", "b", "c", "d"]}, {"/body/tags": "must have at most 3 items"}),
        ({"name": "n", "owner": {"email": "x"}}, {"/body/owner/email": "must be a valid email"}),
        ({"name": 5}, {"/body/name": "expected string"}),
        ([], {"/body": "expected object"}),
    ],
)  # fmt: skip
def test_body_violations_name_their_pointer(
    guard: ValidationGuard, body: object, expected: dict[str, str]
) -> None:
    decision = guard.check(json_request("POST", "/v1/pets", body))
    assert refusal(decision)["code"] == "validation.body_invalid"
    assert pointers(decision) == expected


def test_read_only_properties_are_refused_in_requests(guard: ValidationGuard) -> None:
    """Mass assignment: the client may not choose the id the server assigns (it is also no
    longer required in requests, though the schema lists it as required)."""
    decision = guard.check(json_request("POST", "/v1/pets", {"id": 1, "name": "n"}))
    assert pointers(decision) == {"/body/id": "is read-only; a request cannot set it"}
    assert allowed(guard.check(json_request("POST", "/v1/pets", {"name": "n"})))


def test_read_only_in_31_and_across_files() -> None:
    guard = guard_for(PETS_31)
    assert allowed(guard.check(json_request("POST", "/pets", {"name": "n", "nickname": None})))
    nested = {"name": "n", "parent": {"name": "p", "id": 3}}
    assert pointers(guard.check(json_request("POST", "/pets", nested))) == {
        "/body/parent/id": "is read-only; a request cannot set it"
    }
    extra = {"name": "n", "owner": {"email": "a@b.example", "admin": True}}
    assert pointers(guard.check(json_request("POST", "/pets", extra))) == {
        "/body/owner/admin": "is not a documented property"
    }
    assert pointers(guard.check(request("GET", "/pets/0"))) == {"/path/petId": "must be at least 1"}


def test_messages_never_echo_the_submitted_value(guard: ValidationGuard) -> None:
    secret = "hunter2-<script>alert(1)</script>"
    bodies = [{"name": secret * 3}, {"name": "n", "age": secret}, {"name": "n", "tags": secret}]
    for body in bodies:
        text = str(refusal(guard.check(json_request("POST", "/v1/pets", body))))
        assert "hunter2" not in text
    text = str(refusal(guard.check(request("GET", f"/v1/pets?limit={secret}"))))
    assert "hunter2" not in text


def test_strict_mode_refuses_undocumented_properties_and_query_parameters(
    guard: ValidationGuard, strict: ValidationGuard
) -> None:
    body = {"name": "n", "isAdmin": True, "owner": {"email": "a@b.example", "role": "root"}}
    assert allowed(guard.check(json_request("POST", "/v1/pets", body)))
    assert pointers(strict.check(json_request("POST", "/v1/pets", body))) == {
        "/body/isAdmin": "is not a documented property",
        "/body/owner/role": "is not a documented property",
    }
    assert allowed(guard.check(request("GET", "/v1/pets?debug=1")))
    assert pointers(strict.check(request("GET", "/v1/pets?debug=1&limit=2"))) == {
        "/query/debug": "is not a documented parameter"
    }
    assert allowed(strict.check(request("GET", "/v1/pets?filter[kind]=cat&tags=a")))


def test_strict_mode_keeps_composed_objects_whole(tmp_path: object) -> None:
    """allOf parts each document some properties; strict mode must accept all of them."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        """
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    post:
      requestBody:
        content:
          application/json:
            schema:
              allOf:
                - {$ref: "#/components/schemas/Base"}
                - {type: object, properties: {size: {type: integer}}}
      responses: {"200": {description: ok}}
components:
  schemas:
    Base: {type: object, properties: {name: {type: string}}}
"""
    )
    strict = guard_for(spec, strict=True)
    assert allowed(strict.check(json_request("POST", "/things", {"name": "a", "size": 1})))
    assert pointers(strict.check(json_request("POST", "/things", {"name": "a", "x": 1}))) == {
        "/body/x": "is not a documented property"
    }


def test_bodies_in_the_wrong_media_type_are_415(guard: ValidationGuard) -> None:
    decision = guard.check(request("POST", "/v1/pets", [("content-type", "text/xml")], b"<a/>"))
    problem = refusal(decision)
    assert problem["status"] == 415
    assert problem["code"] == "validation.unsupported_media_type"
    assert "application/json" in problem["detail"]
    assert refusal(guard.check(request("POST", "/v1/pets", [], b"{}")))["status"] == 415


def test_a_required_body_is_enforced_and_an_undocumented_one_refused(
    guard: ValidationGuard,
) -> None:
    assert pointers(guard.check(request("POST", "/v1/pets"))) == {"/body": "is required"}
    decision = guard.check(request("GET", "/v1/pets", [("content-type", "text/plain")], b"x"))
    assert pointers(decision) == {"/body": "this operation takes no request body"}


def test_malformed_json_is_refused(guard: ValidationGuard) -> None:
    decision = guard.check(request("POST", "/v1/pets", [("content-type", "application/json")],
                                   b'{"name": '))  # fmt: skip
    assert pointers(decision) == {"/body": "is not valid JSON"}


def test_the_depth_limit_counts_nesting_not_brackets() -> None:
    """At the limit passes, one level past is refused; brackets inside strings and side by
    side (more of them than the limit, on the quick check's slow path) do not nest."""
    guard = guard_for(PETS_30, limits={"json_max_depth": 3})
    headers = [("content-type", "application/json")]

    def check(body: bytes) -> object:
        return guard.check(request("POST", "/v1/pets", headers, body))

    # {"owner": {...}} is depth 2; the tags array and a "[" string make 3
    assert allowed(check(b'{"name": "[{[{", "owner": {"email": "a@example.com"}, "tags": ["["]}'))
    assert allowed(check(b'{"name": "' + b"{[" * 10 + b'", "tags": []}'))
    assert pointers(check(b'{"name": "x", "tags": [[["a"]]]}')) == {
        "/body": "nests deeper than 3 levels"
    }


def test_integer_parameters_are_read_as_json_integers(guard: ValidationGuard) -> None:
    assert allowed(guard.check(request("GET", "/v1/pets/7")))
    for text in ("07", "+7", "7%0A", "%E0%A5%AD", "0x7", "7.0"):  # Devanagari 7 among them
        assert pointers(guard.check(request("GET", f"/v1/pets/{text}"))) == {
            "/path/petId": "expected integer"
        }, text


def test_form_bodies_are_coerced_and_validated(guard: ValidationGuard) -> None:
    form = [("content-type", "application/x-www-form-urlencoded")]
    assert allowed(guard.check(request("POST", "/v1/pets", form, b"name=Rex&age=3&tags=a&tags=b")))
    decision = guard.check(request("POST", "/v1/pets", form, b"name=Rex&age=old"))
    assert pointers(decision) == {"/body/age": "expected null or integer"}
    decision = guard.check(request("POST", "/v1/pets", form, b"name=Rex&id=4"))
    assert pointers(decision) == {"/body/id": "is read-only; a request cannot set it"}


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[list[tuple[str, str]], bytes]:
    boundary = "XyZboundary42"
    chunks = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content
        )
    body = b"\r\n".join(chunks) + f"\r\n--{boundary}--\r\n".encode()
    return [("content-type", f"multipart/form-data; boundary={boundary}")], body


def test_multipart_bodies_are_validated(guard: ValidationGuard) -> None:
    headers, body = multipart([("name", None, b"Rex"), ("age", None, b"2"),
                               ("photo", "rex.png", b"\x89PNG\x00\xff")])  # fmt: skip
    assert allowed(guard.check(request("POST", "/v1/pets", headers, body)))
    headers, body = multipart([("name", None, b"Rex"), ("age", None, b"-1"),
                               ("photo", "big.png", b"\x00" * 1001)])  # fmt: skip
    assert pointers(guard.check(request("POST", "/v1/pets", headers, body))) == {
        "/body/age": "must be at least 0",
        "/body/photo": "must be at most 1000 characters long",
    }
    headers, body = multipart([("name", None, b"Rex")])
    assert pointers(guard.check(request("POST", "/v1/pets", headers, body))) == {
        "/body/photo": "is required"
    }
    broken = request("POST", "/v1/pets", headers, b"garbage")
    assert pointers(guard.check(broken)) == {"/body": "is not valid multipart/form-data"}


def test_status_422_when_configured() -> None:
    guard = guard_for(PETS_30, status=422)
    problem = refusal(guard.check(json_request("POST", "/v1/pets", {})))
    assert (problem["status"], problem["title"]) == (422, "Unprocessable Content")


def test_monitor_mode_records_instead_of_refusing() -> None:
    guard = guard_for(PETS_30, mode="monitor")
    decision = guard.check(json_request("POST", "/v1/pets", {"id": 1, "name": "n"}))
    assert allowed(decision)
    assert decision.event == "validation.body_invalid"  # type: ignore[union-attr]
    assert decision.fields["pointers"] == ["/body/id"]  # type: ignore[union-attr]
    assert allowed(guard.check(request("GET", "/nowhere")))


def test_templates_differing_only_by_variable_names_share_a_path(tmp_path: object) -> None:
    """GitHub documents DELETE /attestations/{attestation_id} and GET
    /attestations/{subject_digest}: each method keeps its own operation and parameter name."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        """
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a/{id}:
    delete:
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses: {"204": {description: ok}}
  /a/{digest}:
    get:
      parameters: [{name: digest, in: path, required: true, schema: {type: string, pattern: "^s"}}]
      responses: {"200": {description: ok}}
"""
    )
    guard = guard_for(spec)
    assert allowed(guard.check(request("DELETE", "/a/5")))
    assert pointers(guard.check(request("DELETE", "/a/x"))) == {"/path/id": "expected integer"}
    assert allowed(guard.check(request("GET", "/a/sha1")))
    assert list(pointers(guard.check(request("GET", "/a/md5")))) == ["/path/digest"]
    assert dict(guard.check(request("PUT", "/a/5")).headers)["allow"] == "DELETE, GET, HEAD"  # type: ignore[union-attr]


def test_messages_for_composed_and_other_keywords(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        """
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /x:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                one: {oneOf: [{type: number}, {type: integer}]}
                any: {anyOf: [{type: string}, {type: boolean}]}
                never: false
                code: {const: 7}
                set: {type: array, uniqueItems: true}
      responses: {"200": {description: ok}}
"""
    )
    guard = guard_for(spec)
    body = {"one": 3, "any": 1, "never": 1, "code": 8, "set": [1, 1]}
    assert pointers(guard.check(json_request("POST", "/x", body))) == {
        "/body/one": "matches more than one of the documented alternatives",
        "/body/any": "does not match any of the documented alternatives",
        "/body/never": "is not allowed here",
        "/body/code": "expected the documented constant value",
        "/body/set": "items must be unique",
    }
    assert pointers(guard.check(json_request("POST", "/x", {"one": "a"}))) == {
        "/body/one": "does not match any of the documented alternatives"
    }


def test_the_body_limit_is_413() -> None:
    guard = guard_for(PETS_30, limits={"max_body_bytes": "64B"})
    problem = refusal(guard.check(json_request("POST", "/v1/pets", {"name": "x" * 80})))
    assert (problem["status"], problem["code"]) == (413, "validation.body_too_large")


def test_a_single_valued_parameter_sent_twice_is_refused(guard: ValidationGuard) -> None:
    """HTTP parameter pollution: bastion would check one copy and the upstream might read the
    other, so a value the document describes once must come once."""
    repeated = "is repeated; the document describes one value"
    assert pointers(guard.check(request("GET", "/v1/pets?limit=5&limit=500"))) == {
        "/query/limit": repeated
    }
    assert pointers(guard.check(request("GET", "/v1/pets?filter[kind]=cat&filter[kind]=x"))) == {
        "/query/filter[kind]": repeated
    }
    headers = [("x-trace", "deadbeef"), ("x-trace", "deadbeef")]
    assert pointers(guard.check(request("GET", "/v1/pets", headers))) == {
        "/header/X-Trace": repeated
    }
    cookies = [("cookie", "session=abcd; session=<other>")]
    assert pointers(guard.check(request("GET", "/v1/pets", cookies))) == {
        "/cookie/session": repeated
    }
    form = [("content-type", "application/x-www-form-urlencoded")]
    decision = guard.check(request("POST", "/v1/pets", form, b"name=Rex&name=admin"))
    assert pointers(decision) == {"/body/name": repeated}
    assert allowed(guard.check(request("GET", "/v1/pets?tags=a&tags=b&tags=a")))  # an array


def test_integer_formats_bound_the_value(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        """
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x/{n}:
    post:
      parameters: [{name: n, in: path, required: true, schema: {type: integer, format: int32}}]
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                big: {type: integer, format: int64}
                small: {type: integer, format: int32, minimum: 5}
      responses: {"200": {description: ok}}
"""
    )
    guard = guard_for(spec)
    assert allowed(guard.check(json_request("POST", "/x/2147483647", {"big": 2**63 - 1})))
    assert pointers(guard.check(json_request("POST", "/x/2147483648", {}))) == {
        "/path/n": "must be at most 2147483647"
    }
    assert pointers(guard.check(json_request("POST", "/x/1", {"big": 2**63, "small": 4}))) == {
        "/body/big": "must be at most 9223372036854775807",
        "/body/small": "must be at least 5",
    }


def test_later_guards_find_the_operation_and_the_parsed_body(guard: ValidationGuard) -> None:
    from bastion.validation.guard import BODY_VALUE, OPERATION

    sent = json_request("POST", "/v1/pets", PET)
    assert allowed(guard.check(sent))
    assert sent.state[BODY_VALUE] == PET
    assert (sent.state[OPERATION].method, sent.state[OPERATION].template) == ("POST", "/pets")
    form = request("POST", "/v1/pets", [("content-type", "application/x-www-form-urlencoded")],
                   b"name=Rex&age=3")  # fmt: skip
    assert allowed(guard.check(form))
    assert form.state[BODY_VALUE] == {"name": "Rex", "age": 3}


def test_bastions_own_endpoints_and_uncovered_routes_are_not_validated() -> None:
    from bastion.config.models import BastionConfig
    from bastion.observability.events import MemorySink
    from bastion.pipeline.response import FunctionEndpoint, Response
    from bastion.pipeline.routing import ROUTE, Route
    from bastion.validation.assembly import validation_guards

    config = BastionConfig.model_validate(
        {
            "openapi": str(PETS_30),
            "routes": [
                {"name": "pets", "upstream": "http://127.0.0.1:1", "path_prefix": "/v1"},
                {"name": "other", "upstream": "http://127.0.0.1:2", "path_prefix": "/other"},
            ],
            "validation": {"enabled": True, "routes": ["pets"]},
        }
    )
    [guard] = validation_guards(config, MemorySink())

    async def token(request: object) -> Response:
        return Response(200, (), b"")

    own = Route(name="token", path_prefix="/oauth/token", endpoint=FunctionEndpoint(token))
    cases = [
        (Route.from_config(config.routes[1]), "/other/anything", True),
        (own, "/oauth/token", True),
        (Route.from_config(config.routes[0]), "/v1/anything", False),
    ]
    for route, path, passes in cases:
        sent = request("POST", path, [("content-type", "text/plain")], b"x")
        sent.state[ROUTE] = route
        assert allowed(guard.check(sent)) is passes, path


def test_multipart_edge_cases(guard: ValidationGuard) -> None:
    quoted = [("content-type", 'multipart/form-data; boundary="a b"')]
    body = (
        b'--a b\r\nContent-Disposition: form-data; name="name"\r\n\r\nRex\r\n'
        b'--a b\r\nContent-Disposition: form-data; name="photo"; filename="p.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x00\x01\r\n--a b--\r\n"
    )
    assert allowed(guard.check(request("POST", "/v1/pets", quoted, body)))
    unterminated = body.replace(b"--a b--", b"--a b")
    assert pointers(guard.check(request("POST", "/v1/pets", quoted, unterminated))) == {
        "/body": "is not valid multipart/form-data"
    }
    no_boundary = [("content-type", "multipart/form-data")]
    assert pointers(guard.check(request("POST", "/v1/pets", no_boundary, body))) == {
        "/body": "is not valid multipart/form-data"
    }
    not_utf8 = body.replace(b"Rex", b"R\xffx")
    assert pointers(guard.check(request("POST", "/v1/pets", quoted, not_utf8))) == {
        "/body": "is not valid multipart/form-data"
    }


def test_malformed_form_bodies_are_refused(guard: ValidationGuard) -> None:
    form = [("content-type", "application/x-www-form-urlencoded; charset=utf-8")]
    for body in (b"name=%FF%FE", "name=caf\u00e9".encode()):
        assert pointers(guard.check(request("POST", "/v1/pets", form, body))) == {
            "/body": "is not valid application/x-www-form-urlencoded data"
        }
    assert allowed(guard.check(request("POST", "/v1/pets", form, b"name=caf%C3%A9+noir")))
