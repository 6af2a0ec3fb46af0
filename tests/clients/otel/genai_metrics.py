"""GenAI metrics the way applications and model servers export them: the OpenTelemetry SDK's
MeterProvider with the OTLP metric exporter (gRPC or HTTP/protobuf), delta or cumulative
temporality, the official OpenAI instrumentation recording gen_ai.client.operation.duration
and gen_ai.client.token.usage (explicit buckets) around the official `openai` client, and a
model server's gen_ai.server.time_to_first_token recorded with exponential buckets.

    python genai_metrics.py --openai http://127.0.0.1:PORT/v1 --protocol grpc \
        --endpoint http://127.0.0.1:7070 --token llms_… --temporality delta --rounds 3 --calls 4

Each round makes `calls` chat calls, records `calls` known TTFT values, then flushes the
reader: one export interval per round. Prints one JSON line: the rounds' calls and TTFT values
(seconds), so the test computes the expected aggregates itself.
"""

import argparse
import json
import sys
import time

from openai import OpenAI
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--openai", required=True)
    ap.add_argument("--protocol", choices=["grpc", "http"], required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--temporality", choices=["delta", "cumulative"], required=True)
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--server-model", default="llama-3-8b")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=4)
    a = ap.parse_args()

    temporality = {
        Histogram: AggregationTemporality.DELTA
        if a.temporality == "delta"
        else AggregationTemporality.CUMULATIVE
    }
    headers = {"authorization": f"Bearer {a.token}"}
    if a.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(
            endpoint=a.endpoint, insecure=True, headers=headers, preferred_temporality=temporality
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(
            endpoint=a.endpoint.rstrip("/") + "/v1/metrics",
            headers=headers,
            preferred_temporality=temporality,
        )
    # exports happen when the test flushes, not on a timer
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": "metrics-app", "host.name": "app-host-2"}),
        metric_readers=[reader],
        views=[
            View(
                instrument_name="gen_ai.server.time_to_first_token",
                aggregation=ExponentialBucketHistogramAggregation(max_size=160),
            )
        ],
    )
    OpenAIInstrumentor().instrument(meter_provider=provider)
    meter = provider.get_meter("model-server")
    ttft = meter.create_histogram(
        "gen_ai.server.time_to_first_token", unit="s", description="Time to generate first token"
    )
    server_attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": a.server_model,
        "server.address": "gpu-7",
    }
    client = OpenAI(base_url=a.openai, api_key="sk-test-not-a-secret")
    rounds = []
    for r in range(a.rounds):
        values = []
        for k in range(a.calls):
            client.chat.completions.create(model=a.model, messages=[{"role": "user", "content": "Say ready"}])
            v = 0.080 + 0.020 * r + 0.003 * k
            ttft.record(v, attributes=server_attrs)
            values.append(v)
        ok = reader.force_flush(30_000)
        if not ok:
            print(json.dumps({"error": f"flush of round {r} failed"}))
            return 1
        rounds.append({"calls": a.calls, "ttft_s": values})
        time.sleep(0.02)
    OpenAIInstrumentor().uninstrument()
    provider.shutdown()
    print(json.dumps({"rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
