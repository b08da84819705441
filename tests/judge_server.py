"""A small OpenAI-compatible chat-completions server for the API judge's tests, on 127.0.0.1.

It serves a tiny causal LM (a word-level tokenizer with a chat template, built here) the way vLLM
or llama.cpp's server would: the messages through the chat template, the next token's
log-probabilities by `log_softmax` of the model's logits, the `top_logprobs` most likely returned,
greedy tokens as the reply. It counts every request (by its messages and settings, so a repeated
question is seen), checks a bearer key when given one, and plays a queue of faults, one per request:

    ("429", seconds)   HTTP 429 with Retry-After: seconds
    ("500",)           HTTP 500
    ("sleep", seconds) the reply only after `seconds` (past the client's timeout)
    ("garbage",)       HTTP 200 whose body is not JSON
    ("text", words)    a reply whose text is `words`, without log-probabilities
    ("kill", seconds)  the connection dropped unanswered, the server down for `seconds`, then
    restarted

Standalone (for a `prefsift run` by hand): `python -m tests.judge_server --port 8765` serves
`tiny-judge` until interrupted, and prints how many requests it answered.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from prefsift.eval.api_settings import ALPACA, ALPACA_SYSTEM, PREFSIFT

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}assistant :{% endif %}")
LAB_WORDS = ["copy", "reverse", "increment", "sort", ":", "=", *map(str, range(10))]


def judge_tokenizer():
    """A word-level tokenizer over the judge templates' words, the labels, the lab's words and a few
    answer words (anything else is <unk>), with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    words = (PREFSIFT + " " + ALPACA + " " + ALPACA_SYSTEM).split() + ["A", "B", "user",
                                                                     "assistant", "system", "good",
                                                                     "bad", "yes", "no",
                                                                     "maybe"] + LAB_WORDS
    vocab = {t: i for i, t in enumerate(specials + list(dict.fromkeys(w for w in words
                                                                      if w not in specials)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    out = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                  eos_token="<eos>", unk_token="<unk>")
    out.chat_template = CHAT_TEMPLATE
    return out


def judge_model(tokenizer, seed: int = 1, sharpness: float = 30.0):
    """A tiny Llama over `tokenizer`, its output layer scaled by `sharpness` so that its one-order
    verdicts spread (seed 1: from about 0.38 to 0.54 on the tests' questions) instead of all sitting
    near ½, as a random model's near-uniform next token would. (In both orders they stay near ½: a
    random model reads the two answers nearly as a bag of words, whichever comes first.)"""
    from tests.tiny import llama

    model = llama(len(tokenizer), seed, max_position_embeddings=256, pad_token_id=0).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpness)
    return model


def fingerprint(body: dict) -> str:
    """What makes two requests the same question."""
    keep = {k: body.get(k) for k in ("model", "messages", "max_tokens", "temperature", "logprobs",
                                     "top_logprobs", "seed")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


class JudgeServer:
    def __init__(self, model, tokenizer, name: str = "tiny-judge", key: str | None = None,
                 port: int | None = None):
        self.model, self.tok, self.name, self.key = model, tokenizer, name, key
        self.faults: deque = deque()
        self.received: list[str] = []  # fingerprints of every completion request, in order
        self.answered: list[str] = []  # those that got a verdict reply
        self.keys_seen: set = set()
        # called with the request count before each reply; True drops the request
        self.on_request = None
        self.lock, self.model_lock = threading.Lock(), threading.Lock()
        self.port = port or _free_port()
        self._server = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self):
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        self._server = server

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def kill_for(self, seconds: float):
        """Down now (new connections refused), up again after `seconds`."""
        def cycle():
            self.stop()
            time.sleep(seconds)
            self.start()

        threading.Thread(target=cycle, daemon=True).start()

    def reset(self):
        with self.lock:
            self.faults.clear()
            self.received.clear()
            self.answered.clear()

    def next_fault(self):
        with self.lock:
            return self.faults.popleft() if self.faults else None

    @torch.no_grad()
    def complete(self, body: dict) -> dict:
        """The reply vLLM would give: greedy tokens, with the top log-probabilities of each."""
        enc = self.tok.apply_chat_template(body["messages"], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
        ids = enc["input_ids"]
        k = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        content, text = [], []
        for _ in range(int(body.get("max_tokens") or 1)):
            with self.model_lock:
                logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0,
                        -1].float()
            lp = torch.log_softmax(logits, dim=-1)
            best = int(lp.argmax())
            top = torch.topk(lp, min(k, lp.numel()))
            name = self.tok.convert_ids_to_tokens
            content.append({"token": name(best), "logprob": float(lp[best]), "bytes": None,
                            "top_logprobs": [{"token": name(int(i)), "logprob": float(v),
                                              "bytes": None}
                                             for v, i in zip(top.values.tolist(),
                                                             top.indices.tolist())]})
            text.append(name(best))
            ids = torch.cat([ids, torch.tensor([[best]])], dim=1)
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"], "choices": [{"index": 0, "message": {"role": "assistant",
                "content": " ".join(text)},
                             "logprobs": {"content": content} if k else None,
                             "finish_reason": "length"}],
                "usage": {"prompt_tokens": int(enc["input_ids"].shape[1]),
                          "completion_tokens": len(text),
                          "total_tokens": int(enc["input_ids"].shape[1]) + len(text)}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _handler(server: JudgeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, payload, headers=None):
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            given = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            server.keys_seen.add(given)
            if server.key is not None and given != server.key:
                self._send(401, {"error": {"message": "invalid key",
                                           "type": "invalid_request_error"}})
                return False
            return True

        def do_GET(self):
            if self._authorized():
                self._send(200, {"object": "list",
                                 "data": [{"id": server.name, "object": "model"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if not self._authorized():
                return
            if body.get("model") != server.name:
                return self._send(404,
                                  {"error": {"message": f"model {body.get('model')} not found"}})
            fp = fingerprint(body)
            with server.lock:
                server.received.append(fp)
                count = len(server.received)
            if server.on_request is not None and server.on_request(count):
                self.close_connection = True
                return
            fault = server.next_fault()
            kind = fault[0] if fault else None
            if kind == "429":
                return self._send(429, {"error": {"message": "rate limited"}},
                                  {"Retry-After": str(fault[1])})
            if kind == "500":
                return self._send(500, {"error": {"message": "internal error"}})
            if kind == "garbage":
                return self._send(200, b'{"choices": [{"index": 0, "message": ')
            if kind == "kill":
                self.close_connection = True
                # no reply, as a crashed server gives none
                self.connection.shutdown(socket.SHUT_RDWR)
                return server.kill_for(fault[1])
            if kind == "sleep":
                time.sleep(fault[1])
            reply = server.complete(body)
            if kind == "text":
                reply["choices"][0].update(message={"role": "assistant", "content": fault[1]},
                                           logprobs=None)
            try:
                self._send(200, reply)
            except OSError:  # the client is gone (killed, or it timed out)
                return
            with server.lock:
                server.answered.append(fp)

    return Handler


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="serve the tests' tiny judge model on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", default=None, help="the bearer key to require (default: none)")
    args = parser.parse_args()
    tok = judge_tokenizer()
    served = JudgeServer(judge_model(tok), tok, key=args.key, port=args.port)
    print(f"serving tiny-judge at {served.url} (vocabulary {len(tok)}); Ctrl-C stops", flush=True)
    seen = -1
    try:
        while True:
            time.sleep(5)
            if len(served.received) != seen:
                seen = len(served.received)
                print(f"{seen} requests, {len(served.answered)} answered, "
                      f"{seen - len(set(served.received))} "
                      "repeated", flush=True)
    except KeyboardInterrupt:
        served.stop()
