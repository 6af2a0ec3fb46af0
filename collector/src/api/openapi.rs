//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, generated from [`ENDPOINTS`],
//! the table the API's routes are checked against (a test calls every entry).

use serde_json::{Map, Value, json};

/// One endpoint: method, path, summary, whether it needs the admin token, query parameters
/// (`name: description`), and whether it takes a JSON body.
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path with `{param}` segments.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Needs `Authorization: Bearer <admin token>`.
    pub admin: bool,
    /// Query parameters.
    pub query: &'static [(&'static str, &'static str)],
    /// Takes a JSON body.
    pub body: bool,
    /// Response media type.
    pub produces: &'static str,
}

const J: &str = "application/json";
const VFILTER: &[(&str, &str)] = &[
    ("site", "site"),
    ("host", "host"),
    ("model", "model"),
    ("metric", "latency_ms | ttft_ms | tpot_ms | tokens_per_s"),
    ("rule", "Nelson rule 1..8"),
    ("status", "open | resolved | acknowledged"),
    ("from", "opened at or after (Unix ms or RFC 3339)"),
    ("to", "opened at or before"),
    ("key", "series key"),
    (
        "detector",
        "nelson | cusum | down | error_rate | silent | agent_silent",
    ),
    ("source", "probe | proxy | client | otlp"),
    ("severity", "critical | error | warning | info"),
    ("incident", "incident id (its lead violation's id)"),
    ("limit", "page size 1..1000 (default 100)"),
    ("cursor", "next_cursor of the previous page"),
];

macro_rules! ep {
    ($m:literal, $p:literal, $s:literal, $admin:literal, $q:expr, $body:literal) => {
        Endpoint {
            method: $m,
            path: $p,
            summary: $s,
            admin: $admin,
            query: $q,
            body: $body,
            produces: J,
        }
    };
}

/// Every endpoint of the REST API.
pub const ENDPOINTS: &[Endpoint] = &[
    ep!(
        "get",
        "/api/v1/sites",
        "Sites with host, model and open-violation counts",
        false,
        &[],
        false
    ),
    ep!("post", "/api/v1/sites", "Register a site", true, &[], true),
    ep!(
        "get",
        "/api/v1/hosts",
        "Hosts and when they were last seen",
        false,
        &[("site", "site")],
        false
    ),
    ep!(
        "get",
        "/api/v1/models",
        "Models per site",
        false,
        &[("site", "site")],
        false
    ),
    ep!(
        "get",
        "/api/v1/series",
        "Series with status, baseline, the newest point (last_value, last_ts) and sparkline",
        false,
        &[
            ("site", "site"),
            ("host", "host"),
            ("model", "model"),
            ("metric", "metric")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/overview",
        "Sites × models grid",
        false,
        &[("site", "site")],
        false
    ),
    ep!(
        "get",
        "/api/v1/series/points",
        "Points of a series over a range, downsampled past max_points, every flagged point kept",
        false,
        &[
            ("key", "series key (required)"),
            ("from", "start"),
            ("to", "end"),
            ("max_points", "10..10000, default 2000")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/telemetry",
        "Host and GPU telemetry over a range",
        false,
        &[
            ("site", "site (required)"),
            ("host", "host (required)"),
            ("from", "start"),
            ("to", "end"),
            ("max_points", "default 2000")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/compare",
        "Several series over one range (repeat `key`)",
        false,
        &[
            ("key", "series key, repeatable"),
            ("from", "start"),
            ("to", "end")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/violations",
        "Violations, newest first, paginated",
        false,
        VFILTER,
        false
    ),
    Endpoint {
        method: "get",
        path: "/api/v1/violations.csv",
        summary: "CSV of the violations a filter matches",
        admin: false,
        query: VFILTER,
        body: false,
        produces: "text/csv",
    },
    Endpoint {
        method: "get",
        path: "/api/v1/samples.csv",
        summary: "CSV of samples",
        admin: false,
        query: &[
            ("site", "site"),
            ("host", "host"),
            ("model", "model"),
            ("from", "start"),
            ("to", "end"),
        ],
        body: false,
        produces: "text/csv",
    },
    ep!(
        "get",
        "/api/v1/incidents",
        "Incidents (one per change of a model on a host) with their members, newest first, paginated",
        false,
        VFILTER,
        false
    ),
    ep!(
        "get",
        "/api/v1/incidents/{id}",
        "One incident: its lead and every member",
        false,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/detection",
        "Detector settings and design, and the expected false pages and markers per day per model-host and for the fleet",
        false,
        &[("site", "only this site")],
        false
    ),
    ep!(
        "get",
        "/api/v1/violations/{id}",
        "One violation with its points, frozen baseline and context",
        false,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/violations/{id}/ack",
        "Acknowledge ({by, note})",
        true,
        &[],
        true
    ),
    ep!(
        "post",
        "/api/v1/violations/{id}/resolve",
        "Resolve by hand ({by, note})",
        true,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/baselines",
        "Current baselines (history=true: all)",
        false,
        &[("key", "series key"), ("history", "true for every version")],
        false
    ),
    ep!(
        "post",
        "/api/v1/baselines/rebaseline",
        "Re-baseline matching series from a range",
        true,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/rules",
        "Rule configuration (defaults and overrides)",
        false,
        &[],
        false
    ),
    ep!(
        "put",
        "/api/v1/rules/{scope_kind}/{scope_value}",
        "Set rules for global, a site or a model",
        true,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/channels",
        "Alert channels (no secrets)",
        false,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/channels",
        "Create a channel",
        true,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/channels/{name}",
        "One channel",
        false,
        &[],
        false
    ),
    ep!(
        "put",
        "/api/v1/channels/{name}",
        "Create or replace a channel",
        true,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/channels/{name}",
        "Delete a channel",
        true,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/channels/{name}/test",
        "Send a test notification; returns the receiver's answer",
        true,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/routes",
        "Routes in order, then the default route",
        false,
        &[],
        false
    ),
    ep!("post", "/api/v1/routes", "Add a route", true, &[], true),
    ep!(
        "delete",
        "/api/v1/routes/{id}",
        "Delete a route",
        true,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/silences",
        "Silences",
        false,
        &[("state", "active | pending | expired | all")],
        false
    ),
    ep!(
        "post",
        "/api/v1/silences",
        "Create a silence",
        true,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/silences/{id}",
        "Expire a silence now",
        true,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/deliveries",
        "Alert delivery log",
        false,
        &[("limit", "1..1000")],
        false
    ),
    ep!(
        "get",
        "/api/v1/tokens",
        "Tokens (never the secret)",
        false,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/tokens",
        "Create a token (shown once)",
        true,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/tokens/{id}",
        "Revoke a token",
        true,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/setup",
        "First-run status for the setup wizard",
        false,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/cluster",
        "Replicas on this database; in cluster mode the members, partition owners, what waits in the log and this replica's counters",
        false,
        &[("key", "a series key: its partition and owner")],
        false
    ),
    Endpoint {
        method: "get",
        path: "/api/v1/events",
        summary: "Server-sent events: points, violation",
        admin: false,
        query: &[],
        body: false,
        produces: "text/event-stream",
    },
];

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for e in ENDPOINTS {
        let mut params: Vec<Value> = e
            .query
            .iter()
            .map(|(n, d)| json!({"name": n, "in": "query", "required": false, "description": d, "schema": {"type": "string"}}))
            .collect();
        for seg in e.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        let mut op = json!({
            "summary": e.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {e.produces: {}}},
                "400": {"description": "Bad input", "content": {J: {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if e.admin {
            op["security"] = json!([{"admin": []}]);
            op["responses"]["401"] = json!({"description": "Missing or invalid admin token", "content": {J: {"schema": {"$ref": "#/components/schemas/Error"}}}});
        }
        if e.body {
            op["requestBody"] =
                json!({"required": true, "content": {J: {"schema": {"type": "object"}}}});
            op["responses"]["413"] = json!({"description": "Body larger than 2 MiB", "content": {J: {"schema": {"$ref": "#/components/schemas/Error"}}}});
        }
        paths
            .entry(e.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(e.method.to_owned(), op));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "LLMscope collector API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Statistical process control for LLM inference. Times are Unix milliseconds (from/to between 1970 and 9999). Every error is JSON {error, field}. Reading is open; changes need an admin token. In /api/v1/series, last_value is the newest point's value as of the last rollup."},
        "paths": paths,
        "components": {
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "field": {"type": "string"}}}},
        },
    })
}
