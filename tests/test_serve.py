"""``ragsel serve``: the HTTP contract, against a real uvicorn server on 127.0.0.1 (a random
free port) serving in-memory pipelines from ragsel.testing (no models)."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

pytest.importorskip("fastapi")

from ragsel.cli.select_cmd import selection_payload  # noqa: E402
from ragsel.errors import InputError  # noqa: E402
from ragsel.pipeline import Pipeline  # noqa: E402
from ragsel.serve import Served, ServeSettings, create_app  # noqa: E402
from ragsel.serve.server import background_server  # noqa: E402
from ragsel.stages.rationale.query import QueryRationales  # noqa: E402
from ragsel.testing import FakeRetriever, SlowStage  # noqa: E402
from ragsel.types import Query  # noqa: E402

TEXTS = ["alpha beta", "gamma delta", "beta gamma", "epsilon zeta", "beta"]
KEY = "s3cr3t-key-0123456789"


def fake(name: str, *, delay_ms: float = 0.0, error: str | None = None) -> Pipeline:
    return Pipeline.linear(
        [
            ("ret", FakeRetriever(texts=TEXTS, top_k=3)),
            ("slow", SlowStage(delay_ms=delay_ms, error=error)),
        ],
        name=name,
        description=f"{name}: fake retriever, then a pass-through",
    )


def pipelines() -> list[Served]:
    return [
        Served("fake", fake("fake"), aliases=("fake-alias",)),
        Served("sleepy", fake("sleepy", delay_ms=3000)),
        Served("nap", fake("nap", delay_ms=300)),
        Served("buggy", fake("buggy", error="runtime")),
        Served("picky", fake("picky", error="input")),
        Served("down", fake("down", error="backend")),
        Served("late", fake("late", error="backend_timeout")),
        Served("no-evidence", Pipeline.linear([("why", QueryRationales())], name="no-evidence")),
    ]


SETTINGS = ServeSettings(timeout_s=1.0, max_body_bytes=4096, max_query_chars=200, max_batch=4)


@pytest.fixture(scope="module")
def url():
    with background_server(create_app(pipelines(), SETTINGS)) as base:
        yield base


@pytest.fixture(scope="module")
def keyed_url():
    settings = ServeSettings(api_key=KEY)
    with background_server(create_app([Served("fake", fake("fake"))], settings)) as base:
        yield base


_http = httpx.Client(timeout=30)  # one client: a new one per call costs ~50 ms (TLS setup)


def post(url: str, path: str, **kw) -> httpx.Response:
    return _http.post(url + path, **kw)


def get(url: str, **kw) -> httpx.Response:
    return _http.get(url, **kw)


def error_of(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["status"] == status and err["code"] == code, err
    assert "Traceback" not in r.text and 'File "' not in r.text
    return err


def test_select_returns_the_cli_record(url):
    r = post(url, "/v1/pipelines/fake/select", json={"query": "beta gamma", "id": "q1"})
    assert r.status_code == 200, r.text
    data = r.json()
    expected = selection_payload(fake("fake").run(Query("beta gamma", id="q1")))
    assert data["pipeline"] == "fake"
    assert [c["id"] for c in data["chunks"]] == [c["id"] for c in expected["chunks"]]
    assert data["chunks"][0]["text"] == "beta gamma"
    assert data["query"] == expected["query"] == {"text": "beta gamma", "id": "q1", "rewrites": []}
    assert [t["stage"] for t in data["trace"]] == ["ret", "slow"]
    assert {"dropped", "notes", "total_ms", "rationales", "answer"} <= set(data)


def test_alias_and_batch(url):
    r = post(url, "/v1/pipelines/fake-alias/select", json={"query": "epsilon"})
    assert r.status_code == 200 and r.json()["pipeline"] == "fake"
    qs = ["beta", "epsilon zeta", "gamma"]
    r = post(url, "/v1/pipelines/fake/select/batch", json={"queries": [{"query": q} for q in qs]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pipeline"] == "fake"
    assert [x["query"]["text"] for x in body["results"]] == qs


@pytest.mark.parametrize(
    "body,code,needle",
    [
        ({"qeury": "beta"}, "invalid_request", "body.query: Field required"),
        ({"query": 5}, "invalid_request", "body.query"),
        ({"query": ""}, "invalid_request", "body.query"),
        ({"query": "   "}, "invalid_input", "query is empty"),
        ({"query": "x" * 201}, "invalid_request", "at most 200 characters"),
        ([1, 2], "invalid_request", "must be a JSON object"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(url, body, code, needle):
    err = error_of(post(url, "/v1/pipelines/fake/select", json=body), 422, code)
    assert needle in err["message"]


def test_batch_over_the_limit_is_422(url):
    queries = [{"query": "beta"}] * 5
    err = error_of(
        post(url, "/v1/pipelines/fake/select/batch", json={"queries": queries}),
        422,
        "invalid_request",
    )
    assert "at most 4 items" in err["message"]


def test_bad_json_is_400(url):
    r = post(
        url,
        "/v1/pipelines/fake/select",
        content=b'{"query": ',
        headers={"content-type": "application/json"},
    )
    err = error_of(r, 400, "invalid_json")
    assert "not valid JSON" in err["message"]


def test_unknown_pipeline_is_404_listing_the_served_ones(url):
    err = error_of(
        post(url, "/v1/pipelines/nope/select", json={"query": "beta"}), 404, "unknown_pipeline"
    )
    assert "'nope'" in err["message"] and "fake" in err["message"]
    error_of(get(url + "/v1/pipelines/nope"), 404, "unknown_pipeline")
    error_of(get(url + "/no/such/route"), 404, "not_found")
    error_of(get(url + "/v1/pipelines/fake/select"), 405, "method_not_allowed")


def test_oversized_bodies_are_413_before_parsing(url):
    big = {"query": "beta", "metadata": {"pad": "x" * 5000}}
    err = error_of(post(url, "/v1/pipelines/fake/select", json=big), 413, "body_too_large")
    assert "4096" in err["message"]

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(10):
            yield b" " * 1000

    r = post(
        url,
        "/v1/pipelines/fake/select",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    error_of(r, 413, "body_too_large")


def test_timeout_is_504_json(url):
    t0 = time.perf_counter()
    err = error_of(post(url, "/v1/pipelines/sleepy/select", json={"query": "beta"}), 504, "timeout")
    assert time.perf_counter() - t0 < 2.9  # answered at the 1 s timeout, not after the 3 s run
    assert "within 1 s" in err["message"]
    # the server still answers
    assert post(url, "/v1/pipelines/fake/select", json={"query": "beta"}).status_code == 200


def test_stage_failures_map_to_status_codes(url, caplog):
    with caplog.at_level(logging.ERROR, logger="ragsel.serve"):
        err = error_of(
            post(url, "/v1/pipelines/buggy/select", json={"query": "beta"}), 500, "stage_failed"
        )
    assert "stage 'slow' (slow_stage) failed with RuntimeError" in err["message"]
    assert "configured to fail" not in err["message"]  # a foreign error's text stays in the log
    logged = [r for r in caplog.records if err["request_id"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is logged server-side
    err = error_of(
        post(url, "/v1/pipelines/picky/select", json={"query": "beta"}), 422, "invalid_input"
    )
    assert "rejects this input" in err["message"]
    error_of(post(url, "/v1/pipelines/down/select", json={"query": "beta"}), 502, "backend_error")
    with caplog.at_level(logging.ERROR, logger="ragsel.serve"):  # a bug outside any stage
        r = post(url, "/v1/pipelines/no-evidence/select", json={"query": "beta"})
    err = error_of(r, 500, "internal_error")
    assert err["message"] == "pipeline 'no-evidence': internal error; see the server log"
    assert any(err["request_id"] in rec.getMessage() and rec.exc_info for rec in caplog.records)
    error_of(post(url, "/v1/pipelines/late/select", json={"query": "beta"}), 504, "backend_timeout")


def test_concurrent_requests_overlap(url):
    """8 requests to a pipeline that waits 300 ms each finish together, not one after another
    (arun under asyncio: 2.4 s if serialised)."""

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            rs = await asyncio.gather(
                *(
                    client.post("/v1/pipelines/nap/select", json={"query": f"beta {i}"})
                    for i in range(8)
                )
            )
        return [r.status_code for r in rs]

    t0 = time.perf_counter()
    assert asyncio.run(burst()) == [200] * 8
    assert time.perf_counter() - t0 < 1.6


def test_healthz_listing_and_openapi(url):
    r = get(url + "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    listing = get(url + "/v1/pipelines").json()["pipelines"]
    assert [p["name"] for p in listing] == [s.name for s in pipelines()]
    first = listing[0]
    assert first["description"].startswith("fake: fake retriever")
    assert first["aliases"] == ["fake-alias"]
    assert first["stages"] == [
        {"name": "ret", "type": "fake_retriever"},
        {"name": "slow", "type": "slow_stage"},
    ]
    schema = first["input_schema"]
    assert schema["required"] == ["query"] and schema["properties"]["query"]["maxLength"] == 200
    assert get(url + "/v1/pipelines/fake-alias").json()["name"] == "fake"
    spec = get(url + "/openapi.json").json()
    assert {"/v1/pipelines/{name}/select", "/v1/pipelines", "/healthz"} <= set(spec["paths"])
    op = spec["paths"]["/v1/pipelines/{name}/select"]["post"]
    assert [p["name"] for p in op["parameters"]] == ["name"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    declared = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert declared["properties"]["query"]["maxLength"] == 200
    assert get(url + "/docs").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY[:-1]}, {"Authorization": KEY}],
)
def test_missing_or_wrong_key_is_401(keyed_url, headers, caplog):
    with caplog.at_level(logging.DEBUG):
        r = post(keyed_url, "/v1/pipelines/fake/select", json={"query": "beta"}, headers=headers)
        error_of(r, 401, "unauthorized")
        error_of(get(keyed_url + "/v1/pipelines", headers=headers), 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert KEY not in r.text and KEY not in caplog.text


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}])
def test_right_key_is_accepted_and_healthz_needs_none(keyed_url, headers):
    r = post(keyed_url, "/v1/pipelines/fake/select", json={"query": "beta"}, headers=headers)
    assert r.status_code == 200, r.text
    assert get(keyed_url + "/v1/pipelines", headers=headers).status_code == 200
    assert get(keyed_url + "/healthz").status_code == 200


def test_settings_reject_nonsense_and_hide_the_key():
    from ragsel.errors import ConfigError, InputError

    with pytest.raises(ConfigError, match="timeout_s"):
        ServeSettings(timeout_s=0)
    with pytest.raises(ConfigError, match="empty"):
        ServeSettings(api_key="  ")
    assert KEY not in repr(ServeSettings(api_key=KEY))
    with pytest.raises(InputError, match="two pipelines are named 'x'"):
        create_app([Served("x", fake("a")), Served("x", fake("b"))])
    with pytest.raises(InputError, match="cannot be used in a URL"):
        create_app({"a b": fake("a")})


def test_pipelines_are_named_by_name_then_stem_and_renamed_with_name_equals_path(tmp_path):
    from ragsel.serve import load_served

    body = "stages:\n  ret: {type: fake_retriever, texts: [a b]}\n"
    (tmp_path / "with-name.yaml").write_text("version: 1\nname: alpha\n" + body)
    (tmp_path / "no_name.yaml").write_text("version: 1\n" + body)
    served = load_served(
        [
            tmp_path / "with-name.yaml",
            tmp_path / "no_name.yaml",
            f"beta={tmp_path / 'no_name.yaml'}",
        ]
    )
    assert [(s.name, s.aliases) for s in served] == [
        ("alpha", ("with-name",)),  # the YAML's name; the file stem routes to it too
        ("no_name", ()),
        ("beta", ()),
    ]
    with pytest.raises(InputError, match="cannot be used in a URL"):
        load_served([f"a b={tmp_path / 'no_name.yaml'}"])
