"""An OTLP/HTTP logs receiver for agent/tests/otlp.rs, decoding with the OpenTelemetry
project's own Python bindings (the `opentelemetry-proto` package), not with the agent's code.

Every POST is decompressed (gzip or zstd, by Content-Encoding), decoded by Content-Type
(application/x-protobuf: ExportLogsServiceRequest.FromString; application/json: protobuf's
strict json_format.Parse, which refuses unknown or misspelled fields), and appended to --out as
one JSON line: the path, the headers that matter, the arrival time and the request as
MessageToDict(preserving_proto_field_name=True, use_integers_for_enums=True).

Answers come from --replies (a JSON list, used in order, one per request), then 200 with an
empty ExportLogsServiceResponse. A reply: {"status": 429, "headers": {"Retry-After": "2"}},
{"status": 200, "partial": [1, "message"]}, {"status": 400}. A body that does not decode gets
400 and an "error" line in --out.

Usage: python otlp_receiver.py --cert C --key K --out FILE --port-file FILE [--replies FILE]
"""

import argparse
import gzip
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import zstandard
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

LOCK = threading.Lock()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--replies")
    args = p.parse_args()
    replies = []
    if args.replies:
        with open(args.replies) as f:
            replies = json.load(f)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            ctype = self.headers.get("Content-Type", "")
            cenc = self.headers.get("Content-Encoding")
            line = {
                "at": time.time(),
                "path": self.path,
                "content_type": ctype,
                "content_encoding": cenc,
                "authorization": self.headers.get("Authorization"),
            }
            try:
                if cenc == "gzip":
                    body = gzip.decompress(raw)
                elif cenc == "zstd":
                    body = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
                elif cenc is None:
                    body = raw
                else:
                    raise ValueError("unknown Content-Encoding " + cenc)
                if ctype == "application/x-protobuf":
                    req = ExportLogsServiceRequest.FromString(body)
                elif ctype == "application/json":
                    req = json_format.Parse(body, ExportLogsServiceRequest())
                else:
                    raise ValueError("unknown Content-Type " + ctype)
                line["request"] = json_format.MessageToDict(
                    req, preserving_proto_field_name=True, use_integers_for_enums=True
                )
            except Exception as e:  # the test reads the error from --out
                line["error"] = repr(e)
            with LOCK:
                reply = replies.pop(0) if replies else {"status": 200}
                with open(args.out, "a") as f:
                    f.write(json.dumps(line) + "\n")
            status = 400 if "error" in line else reply.get("status", 200)
            resp = ExportLogsServiceResponse()
            if "partial" in reply:
                resp.partial_success.rejected_log_records = reply["partial"][0]
                resp.partial_success.error_message = reply["partial"][1]
            if ctype == "application/json":
                out = json_format.MessageToJson(resp).encode()
            else:
                out = resp.SerializeToString()
            if status >= 300:
                out = b"scripted " + str(status).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype or "text/plain")
            for k, v in reply.get("headers", {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
