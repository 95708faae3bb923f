"""A tiny Hugging Face Hub on loopback for tests: the endpoints the real ``huggingface_hub`` client calls to create a
repo, validate a card, preupload, commit (NDJSON, regular uploads), read model info, resolve files and list models.

In-memory, one thread per request (``ThreadingHTTPServer``), bound to 127.0.0.1. Writes require
``Authorization: Bearer <token>`` equal to the server's token. Every request is logged in ``server.requests``
(method + path, never headers) so tests can show what the client called. Unknown endpoints answer 404 and are logged.

Run standalone for poking at it: ``python -m tests.hub_server`` (prints its URL).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    files: dict[str, bytes] = field(default_factory=dict)
    sha: str = "0" * 40
    tags: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))


def _blob_id(data: bytes) -> str:
    """Git blob id, which the Hub uses as the ETag and tree ``oid`` of regular (non-LFS) files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _tags_from_card(text: str) -> list[str]:
    """The ``tags`` and ``library_name`` of a README's YAML header, as the Hub derives model tags."""
    m = re.match(r"^---\n(.*?)\n---", text, re.S)
    if not m:
        return []
    import yaml

    try:
        d = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError:
        return []
    tags = [str(t) for t in d.get("tags") or []]
    if d.get("library_name"):
        tags.insert(0, str(d["library_name"]))
    return list(dict.fromkeys(tags))


class HubState:
    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet; requests are recorded in state.requests
        pass

    # --- helpers -------------------------------------------------------------------------------------------------
    @property
    def hub(self) -> HubState:
        return self.server.state

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.hub.token}"

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code: int, payload=None, headers: dict | None = None, body: bytes | None = None,
              head: bool = False) -> None:
        if body is None:
            body = json.dumps(payload if payload is not None else {}).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, code: int, msg: str, error_code: str | None = None) -> None:
        headers = {"X-Error-Message": msg}
        if error_code:
            headers["X-Error-Code"] = error_code
        self._send(code, {"error": msg}, headers=headers)

    def _model_info(self, repo: Repo) -> dict:
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": repo.tags,
            "library_name": "segmentation-models-pytorch" if "segmentation-models-pytorch" in repo.tags else None,
            "createdAt": repo.created,
            "lastModified": repo.created,
            "siblings": [{"rfilename": name} for name in sorted(repo.files)],
        }

    # --- routing -------------------------------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        with self.hub.lock:
            self.hub.requests.append(f"{method} {path}")
        body = self._body() if method in ("POST", "PUT") else b""
        try:
            self._dispatch(method, path, query, body)
        except BrokenPipeError:
            pass

    def _dispatch(self, method: str, path: str, query: dict, body: bytes) -> None:
        hub = self.hub
        if method == "POST" and path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if method == "GET" and path == "/api/whoami-v2":
            if not self._authorized():
                return self._error(401, "Invalid credentials in Authorization header")
            return self._send(200, {"type": "user", "name": "tester", "orgs": [], "auth": {"type": "access_token"}})
        if method == "POST" and path == "/api/repos/create":
            if not self._authorized():
                return self._error(401, "Invalid credentials in Authorization header")
            d = json.loads(body or b"{}")
            repo_id = f"{d['organization']}/{d['name']}" if d.get("organization") else d["name"]
            with hub.lock:
                if repo_id in hub.repos:  # the real Hub's 409 carries the url too (create_repo(exist_ok=True) reads it)
                    msg = "You already created this model repo"
                    return self._send(409, {"error": msg, "url": f"http://{self.headers['Host']}/{repo_id}"},
                                      headers={"X-Error-Message": msg})
                hub.repos[repo_id] = Repo(repo_id, private=bool(d.get("private")))
            return self._send(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
        if method == "GET" and path == "/api/models":
            wanted = [f for v in query.get("filter", []) for f in v.split(",")]
            search = (query.get("search") or [""])[0]
            with hub.lock:
                repos = [r for r in hub.repos.values()
                         if not r.private and all(t in r.tags for t in wanted) and search in r.repo_id]
            return self._send(200, [self._model_info(r) for r in repos])
        m = re.match(r"^/api/models/([^/]+/[^/]+)/(preupload|commit)/(.+)$", path)
        if m and method == "POST":
            return self._write(m.group(1), m.group(2), body)
        m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$", path)
        if m and method == "GET":
            repo = self._readable(m.group(1))
            if repo is None:
                return None
            prefix = (m.group(3) or "").strip("/")
            entries = [{"type": "file", "path": name, "size": len(data), "oid": _blob_id(data)}
                       for name, data in sorted(repo.files.items()) if name.startswith(prefix)]
            return self._send(200, entries)
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/(.+))?$", path)
        if m and method == "GET":
            repo = self._readable(m.group(1))
            if repo is None:
                return None
            return self._send(200, self._model_info(repo))
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m and method in ("GET", "HEAD"):
            repo = self._readable(m.group(1))
            if repo is None:
                return None
            name = m.group(3)
            if name not in repo.files:
                return self._error(404, "Entry not found", "EntryNotFound")
            data = repo.files[name]
            headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{_blob_id(data)}"', "Content-Type": "application/octet-stream"}
            return self._send(200, headers=headers, body=data, head=method == "HEAD")
        return self._error(404, f"loopback hub: no endpoint for {method} {path}")

    def _readable(self, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorized()):
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        return repo

    def _write(self, repo_id: str, action: str, body: bytes) -> None:
        hub = self.hub
        if not self._authorized():
            return self._error(401, "Invalid credentials in Authorization header")
        repo = hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        if action == "preupload":
            files = json.loads(body or b"{}").get("files", [])
            # Everything "regular": small files travel base64-encoded inside the commit (no LFS / Xet storage).
            return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files], "commitOid": repo.sha})
        summary = ""
        new_files: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                summary = value.get("summary", "")
            elif key == "file":
                if value.get("encoding") != "base64":
                    return self._error(400, "only base64 regular files are supported")
                new_files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deleted.append(value["path"])
            elif key in ("lfsFile", "deletedFolder", "copyFile"):
                return self._error(400, f"loopback hub does not support {key}")
        with hub.lock:
            for name in deleted:
                repo.files.pop(name, None)
            repo.files.update(new_files)
            repo.sha = hashlib.sha1((repo.sha + summary + str(sorted(repo.files))).encode()
                                    + b"".join(repo.files[k] for k in sorted(repo.files))).hexdigest()
            if "README.md" in repo.files:
                repo.tags = _tags_from_card(repo.files["README.md"].decode("utf-8", "replace"))
        return self._send(200, {"commitUrl": f"http://{self.headers['Host']}/{repo_id}/commit/{repo.sha}",
                                "commitOid": repo.sha, "pullRequestUrl": None})

    def do_GET(self):  # noqa: N802
        self._route("GET")

    def do_HEAD(self):  # noqa: N802
        self._route("HEAD")

    def do_POST(self):  # noqa: N802
        self._route("POST")

    def do_PUT(self):  # noqa: N802
        self._route("PUT")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: HubState) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state


class LoopbackHub:
    """``with LoopbackHub(token) as hub: hub.url ...``: a Hub on 127.0.0.1 served from a background thread."""

    def __init__(self, token: str = "hf_loopback_test_token") -> None:
        self.state = HubState(token)
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[str]:
        return list(self.state.requests)

    def file(self, repo_id: str, name: str) -> bytes:
        return self.state.repos[repo_id].files[name]

    def __enter__(self) -> LoopbackHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":
    with LoopbackHub() as hub:
        print(hub.url, flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print("\n".join(hub.requests))
