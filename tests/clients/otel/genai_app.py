"""An application instrumented the way teams already do it: the official OpenAI client,
instrumented by opentelemetry-instrumentation-openai-v2, exporting spans with the
OpenTelemetry SDK's OTLP exporter (gRPC or HTTP/protobuf) to an LLMscope collector.

    python genai_app.py --openai http://127.0.0.1:PORT/v1 --protocol grpc \
        --endpoint http://127.0.0.1:7070 --token llms_… --streamed 20 --plain 5

Besides the model calls it sends an ordinary HTTP server span (not GenAI: ignored) and a
chat span without a model (ignored as no_model), as real applications do. Prints one JSON
line: what it sent.
"""

import argparse
import json
import sys
import time

from openai import OpenAI
from opentelemetry import trace
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--openai", required=True, help="base URL of the OpenAI-compatible server (…/v1)")
    ap.add_argument("--protocol", choices=["grpc", "http"], required=True)
    ap.add_argument("--endpoint", required=True, help="collector: http://host:grpc-port or http://host:http-port")
    ap.add_argument("--token", required=True)
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--streamed", type=int, default=10)
    ap.add_argument("--plain", type=int, default=0)
    ap.add_argument("--service", default="checkout-assistant")
    a = ap.parse_args()

    headers = {"authorization": f"Bearer {a.token}"}
    if a.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=a.endpoint, insecure=True, headers=headers)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=a.endpoint.rstrip("/") + "/v1/traces", headers=headers)
    provider = TracerProvider(
        resource=Resource.create({"service.name": a.service, "deployment.environment": "e2e", "host.name": "app-host-1"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument()

    client = OpenAI(base_url=a.openai, api_key="sk-test-not-a-secret")
    sent = {"streamed": 0, "plain": 0, "chunks": 0}
    for _ in range(a.streamed):
        stream = client.chat.completions.create(
            model=a.model,
            messages=[{"role": "user", "content": "Say ready"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            sent["chunks"] += 1
        sent["streamed"] += 1
    for _ in range(a.plain):
        client.chat.completions.create(model=a.model, messages=[{"role": "user", "content": "Say ready"}])
        sent["plain"] += 1

    tracer = trace.get_tracer("genai_app")
    with tracer.start_as_current_span("GET /checkout", kind=trace.SpanKind.SERVER):
        time.sleep(0.001)
    with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai"}):
        time.sleep(0.001)
    ok = provider.force_flush(30_000)
    provider.shutdown()
    sent["flushed"] = bool(ok)
    print(json.dumps(sent))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
