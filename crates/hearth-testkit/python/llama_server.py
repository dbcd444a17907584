"""llama.cpp's OpenAI-compatible server (llama-cpp-python's), as the reasoning tests' provider.

    python llama_server.py --model M.gguf --port P --api-key K --requests LOG.jsonl

The server itself is unchanged; an ASGI layer around it writes every request it receives (method, path, whether
a bearer token came, the body) as one JSON line to LOG, so a test can prove what hearth sent and what it did not.
`POST /_test/behaviour {"delay_seconds", "chunk_delay_seconds"}` makes it slow before answering or between the
chunks of a stream, to test timeouts and a provider killed mid-stream.
"""

import argparse
import asyncio
import json

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings


class Recorder:
    def __init__(self, app, log_path):
        self.app = app
        self.log_path = log_path
        self.delay = 0.0
        self.chunk_delay = 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/_test/behaviour":
            settings = json.loads(body or b"{}")
            self.delay = float(settings.get("delay_seconds", 0))
            self.chunk_delay = float(settings.get("chunk_delay_seconds", 0))
            await send({"type": "http.response.start", "status": 204, "headers": []})
            return await send({"type": "http.response.body", "body": b""})
        headers = dict(scope["headers"])
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({
                "method": scope["method"],
                "path": scope["path"],
                "bearer": headers.get(b"authorization", b"").startswith(b"Bearer "),
                "body": body.decode("utf-8", "replace"),
            }) + "\n")
        if self.delay:
            await asyncio.sleep(self.delay)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def paced(message):
            if message["type"] == "http.response.body" and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            await send(message)

        await self.app(scope, replay, paced)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--alias", default="hearth-test-tiny")
    parser.add_argument("--requests", required=True)
    args = parser.parse_args()
    server = ServerSettings(host="127.0.0.1", port=args.port, api_key=args.api_key)
    model = ModelSettings(model=args.model, model_alias=args.alias, n_ctx=8192, n_threads=1, verbose=False)
    app = Recorder(create_app(server_settings=server, model_settings=[model]), args.requests)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
