"""LLM backends: template rules, transformers with a tiny random local model, vLLM / ray.data.llm request
construction (fake modules record what we build; vLLM is a GPU-only extra), and the OpenAI-compatible
HTTP client against a local test server on 127.0.0.1 (retries, timeouts, malformed replies, concurrency)."""
from __future__ import annotations

import json
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slmfactory.synth.llm import GenParams, LlmError, generate_validated, make_llm
from slmfactory.synth.llm_openai import OpenAiLlm
from slmfactory.synth.llm_ray import ray_data_llm_processor
from slmfactory.synth.llm_template import TemplateLlm
from slmfactory.synth.llm_transformers import TransformersLlm
from slmfactory.synth.llm_vllm import VllmLlm, build_sampling_params
from slmfactory.synth.prompts import (QA_SCHEMA, REWRITE_SCHEMA, ParseError, Prompt, paraphrase_prompt, parse_json,
                                      rewrite_prompt, sqa_prompt)
from slmfactory.synth.tiny import make_tiny_llm
from slmfactory.synth.tts import TtsError, make_tts


# --- template + parsing ---------------------------------------------------------------------------------
def test_template_backend_answers_every_task_with_schema_valid_json():
    llm = TemplateLlm()
    ps = [rewrite_prompt("Give three tips for staying healthy.", "", "Eat well. Sleep. Walk daily. Drink water."),
          sqa_prompt("the birch canoe slid on the smooth planks. the boy was there when the sun rose.", 3),
          paraphrase_prompt("Say this sentence aloud: {text}", 2)]
    a, b, c = [json.loads(x) for x in llm.generate(ps, GenParams())]
    assert a["instruction"] == "Could you give three tips for staying healthy?"
    assert a["answer"].startswith("Eat well.")
    parse_json(json.dumps(a), REWRITE_SCHEMA)
    assert len(b["pairs"]) == 3 and all(p["question"].endswith("?") for p in b["pairs"])
    parse_json(json.dumps(b), QA_SCHEMA)
    assert len(c["paraphrases"]) == 2 and all("{text}" in s for s in c["paraphrases"])
    with pytest.raises(LlmError, match="no rule"):
        llm.generate([Prompt("poem", "write a poem")])


def test_unknown_backend_names_say_did_you_mean():
    """LLM and TTS backends are looked up by name in the registry; a typo gets the closest known name."""
    with pytest.raises(LlmError, match="(?i)did you mean"):
        make_llm("vlm")
    with pytest.raises(TtsError, match="(?i)did you mean"):
        make_tts("espeek")


def test_parse_json_tolerates_fences_and_rejects_schema_violations():
    assert parse_json('Sure!\n```json\n{"instruction": "a", "answer": "b"}\n```', REWRITE_SCHEMA)["answer"] == "b"
    for bad, msg in [("", "empty"), ("no json here", "no JSON"), ('{"instruction": "a"', "invalid JSON"),
                     ('{"instruction": "a"}', "missing key 'answer'"), ('{"instruction": "a", "answer": " "}', "empty"),
                     ('{"pairs": []}', "at least 1"),
                     ('{"pairs": [{"question": 3, "answer": "x"}]}', "expected string")]:
        with pytest.raises(ParseError, match=msg):
            parse_json(bad, QA_SCHEMA if "pairs" in bad else REWRITE_SCHEMA)


class Scripted:
    """A backend double replaying recorded model outputs in order (what a real model said once)."""

    name, model = "scripted", "recorded"

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def generate(self, prompts, params):
        self.calls.append((len(prompts), params.seed))
        return [self.replies.pop(0) for _ in prompts]


def test_generate_validated_retries_only_failures_then_reports_raw():
    ps = [rewrite_prompt("a"), rewrite_prompt("b")]
    llm = Scripted(['{"instruction": "x", "answer": "y"}', "I cannot do JSON",  # attempt 1: item 2 fails
                    '{"instruction": "x"',  # attempt 2: item 2 fails again
                    '```json\n{"instruction": "p", "answer": "q"}```'])  # attempt 3: ok
    out = generate_validated(llm, ps, GenParams(seed=7), lambda p, raw: parse_json(raw, p.schema), attempts=3)
    assert [o.value for o in out] == [{"instruction": "x", "answer": "y"}, {"instruction": "p", "answer": "q"}]
    assert [o.attempts for o in out] == [1, 3]
    assert llm.calls == [(2, 7), (1, 8), (1, 9)]  # a new seed per re-ask
    llm = Scripted(["nope", "still nope"])
    (o,) = generate_validated(llm, ps[:1], GenParams(), lambda p, raw: parse_json(raw, p.schema), attempts=2)
    assert o.value is None and o.raw == "still nope" and "no JSON" in o.error and o.attempts == 2


# --- transformers ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialised 2-layer Llama + a BPE tokenizer trained here, saved to tmp and loaded from it."""
    return str(make_tiny_llm(tmp_path_factory.mktemp("tiny_llm")))


def test_transformers_backend_generates_deterministically(tiny_model):
    """Tiny random local Llama: batched generation, greedy and seeded sampling are reproducible."""
    llm = TransformersLlm(tiny_model, batch_size=2)
    ps = [sqa_prompt("the birch canoe slid", 2), rewrite_prompt("say hello"), Prompt("raw", "hi")]
    a = llm.generate(ps, GenParams(max_tokens=12))
    b = llm.generate(ps, GenParams(max_tokens=12))
    assert a == b and len(a) == 3 and all(isinstance(x, str) for x in a)
    s1 = llm.generate(ps, GenParams(max_tokens=12, temperature=1.0, seed=3))
    s2 = llm.generate(ps, GenParams(max_tokens=12, temperature=1.0, seed=3))
    assert s1 == s2
    assert llm.stats["completion_tokens"] > 0 and llm.stats["prompt_tokens"] > llm.stats["completion_tokens"]
    with pytest.raises(LlmError, match="not a local folder"):
        TransformersLlm("org/some-hub-model")


# --- vLLM request construction ------------------------------------------------------------------------
def fake_vllm(new_api: bool):
    """A stand-in `vllm` module that records SamplingParams / LLM calls (vLLM itself needs a GPU)."""
    mod = types.SimpleNamespace(created=[])

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class Guided:
        def __init__(self, json=None):
            self.json = json

    class Out:
        def __init__(self, text):
            self.outputs = [types.SimpleNamespace(text=text)]

    class LLM:
        def __init__(self, **kw):
            mod.created.append(kw)
            self.chats = []

        def chat(self, conversations, sp, use_tqdm=False):
            self.chats.append((conversations, sp))
            return [Out('{"instruction": "i", "answer": "a"}') for _ in conversations]

    name = "StructuredOutputsParams" if new_api else "GuidedDecodingParams"
    sp_mod = types.SimpleNamespace(**{name: Guided})
    mod.SamplingParams, mod.LLM, mod.sampling_params = SamplingParams, LLM, sp_mod
    return mod


@pytest.mark.parametrize("new_api", [True, False])
def test_vllm_sampling_params_and_guided_json(new_api):
    v = fake_vllm(new_api)
    sp = build_sampling_params(v, GenParams(max_tokens=50, temperature=0.7, top_p=0.9, seed=4, stop=["\n\n"],
                                            json_schema=QA_SCHEMA))
    key = "structured_outputs" if new_api else "guided_decoding"
    assert sp.kw[key].json == QA_SCHEMA
    assert {k: sp.kw[k] for k in ("max_tokens", "temperature", "top_p", "seed", "stop")} == \
        {"max_tokens": 50, "temperature": 0.7, "top_p": 0.9, "seed": 4, "stop": ["\n\n"]}
    assert "guided_decoding" not in build_sampling_params(v, GenParams()).kw


def test_vllm_backend_builds_engine_and_chat_requests(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(True))
    llm = VllmLlm(str(tmp_path), tensor_parallel_size=2, max_model_len=2048)
    assert sys.modules["vllm"].created[0]["model"] == str(tmp_path)
    assert sys.modules["vllm"].created[0]["tensor_parallel_size"] == 2
    assert sys.modules["vllm"].created[0]["trust_remote_code"] is False
    p = rewrite_prompt("say hi")
    out = llm.generate([p, p], GenParams(json_schema=p.schema))
    assert out == ['{"instruction": "i", "answer": "a"}'] * 2
    convs, sp = llm.llm.chats[0]
    assert convs[0][0]["role"] == "system" and convs[0][1]["content"] == p.user
    assert sp.kw["structured_outputs"].json == REWRITE_SCHEMA


def test_vllm_missing_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(LlmError, match=r"slmfactory\[vllm\]"):
        VllmLlm(str(tmp_path))


def test_ray_data_llm_processor_config(monkeypatch):
    """A recording stand-in for ray.data.llm (needs vLLM): checks the config and the row pre/post-processing."""
    seen = {}

    class Cfg:
        def __init__(self, **kw):
            seen["config"] = kw

    def build(config, preprocess, postprocess):
        seen["pre"], seen["post"] = preprocess, postprocess
        return "processor"

    monkeypatch.setitem(sys.modules, "ray.data.llm", types.SimpleNamespace(vLLMEngineProcessorConfig=Cfg,
                                                                          build_llm_processor=build))
    proc = ray_data_llm_processor("/models/q", {"max_tokens": 64, "json_schema": QA_SCHEMA}, concurrency=4,
                                  batch_size=16, engine_kwargs={"max_model_len": 4096})
    assert proc == "processor"
    assert seen["config"] == {"model_source": "/models/q", "engine_kwargs": {"max_model_len": 4096},
                              "concurrency": 4, "batch_size": 16}
    msgs = sqa_prompt("t").messages()
    req = seen["pre"]({"prompt_messages": msgs})
    assert req["messages"] == msgs and req["sampling_params"]["max_tokens"] == 64
    assert req["sampling_params"]["guided_decoding"] == {"json": QA_SCHEMA}
    assert seen["post"]({"id": "a", "generated_text": "x"})["llm_output"] == "x"


# --- OpenAI-compatible HTTP -------------------------------------------------------------------------------
class Server:
    """A local chat-completions server whose replies are scripted per request (status, body, delay)."""

    def __init__(self, script):
        self.script, self.requests, self.inflight, self.max_inflight = list(script), [], 0, 0
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append((self.path, dict(self.headers), body))
                    step = outer.script.pop(0) if outer.script else (200, "default", 0)
                    outer.inflight += 1
                    outer.max_inflight = max(outer.max_inflight, outer.inflight)
                status, content, delay = step
                time.sleep(delay)
                with outer.lock:
                    outer.inflight -= 1
                payload = content if isinstance(content, bytes) else json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": content}}]} if status == 200
                    else {"error": content}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request):
    s = Server(getattr(request, "param", []))
    yield s
    s.close()


def client(s, **kw):
    return OpenAiLlm(s.url, "local-model", api_key_env="SLMF_TEST_KEY", **{"backoff": 0.01, "timeout": 2.0, **kw})


@pytest.mark.parametrize("server", [[(200, '{"instruction": "i", "answer": "a"}', 0)]], indirect=True)
def test_openai_request_body_and_reply(server, monkeypatch):
    monkeypatch.setenv("SLMF_TEST_KEY", "sk-test")
    p = rewrite_prompt("say hi")
    assert client(server).generate([p], GenParams(max_tokens=40, seed=5, json_schema=p.schema)) == \
        ['{"instruction": "i", "answer": "a"}']
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "local-model" and body["max_tokens"] == 40 and body["seed"] == 5
    assert body["messages"] == p.messages()
    assert body["response_format"]["json_schema"]["schema"] == REWRITE_SCHEMA


@pytest.mark.parametrize("server", [[(503, "busy", 0), (429, "slow down", 0), (200, "ok", 0)]], indirect=True)
def test_openai_retries_on_5xx_and_429(server):
    c = client(server, retries=3)
    assert c.generate(["hi"]) == ["ok"]
    assert len(server.requests) == 3 and c.stats["retries"] == 2


@pytest.mark.parametrize("server", [[(400, "bad model", 0), (200, "never", 0)]], indirect=True)
def test_openai_does_not_retry_client_errors(server):
    with pytest.raises(LlmError, match="HTTP 400.*not retried"):
        client(server, retries=3).generate(["hi"])
    assert len(server.requests) == 1


@pytest.mark.parametrize("server", [[(200, "late", 1.0), (200, "late", 1.0)]], indirect=True)
def test_openai_timeout_then_gives_up(server):
    with pytest.raises(LlmError, match="gave up after 2 attempts"):
        client(server, timeout=0.2, retries=1).generate(["hi"])
    assert len(server.requests) == 2


@pytest.mark.parametrize("server", [[(200, b"<html>proxy error</html>", 0), (200, b'{"choices": []}', 0),
                                     (200, "fine", 0)]], indirect=True)
def test_openai_malformed_responses_are_retried(server):
    assert client(server, retries=2).generate(["hi"]) == ["fine"]
    assert len(server.requests) == 3


@pytest.mark.parametrize("server", [[(200, f"r{i}", 0.15) for i in range(6)]], indirect=True)
def test_openai_concurrency_limit(server):
    out = client(server, concurrency=2).generate([f"p{i}" for i in range(6)])
    assert sorted(out) == [f"r{i}" for i in range(6)] and 1 <= server.max_inflight <= 2
