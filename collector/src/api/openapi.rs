//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, generated from [`ENDPOINTS`],
//! the table the API's routes are checked against (a test calls every entry).

use serde_json::{Map, Value, json};

use crate::access::Access;

/// One endpoint: method, path, summary, who may call it, query parameters
/// (`name: description`), and whether it takes a JSON body. The access middleware reads the
/// policy from here: a route missing from this table answers 403 to everyone.
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path with `{param}` segments.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
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
        "nelson | cusum | down | error_rate | silent | agent_silent | slo_burn | budget",
    ),
    ("source", "probe | proxy | client | otlp"),
    ("severity", "critical | error | warning | info"),
    ("incident", "incident id (its lead violation's id)"),
    ("limit", "page size 1..1000 (default 100)"),
    ("cursor", "next_cursor of the previous page"),
];

macro_rules! ep {
    ($m:literal, $p:literal, $s:literal, $access:ident, $q:expr, $body:literal) => {
        Endpoint {
            method: $m,
            path: $p,
            summary: $s,
            access: Access::$access,
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
        "/api/v1/openapi.json",
        "This document",
        Public,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/auth/login",
        "Sign in with email and password: sets the session cookie; answers the user and the session's CSRF token",
        Public,
        &[],
        true
    ),
    ep!(
        "post",
        "/api/v1/auth/logout",
        "Sign out: ends the session, clears the cookie",
        Signed,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/auth/me",
        "The caller (user, role, sites, the session's CSRF token) and the sign-in methods",
        Public,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/auth/password",
        "Change your own password (ends your other sessions)",
        Signed,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/auth/tokens",
        "Your personal API tokens",
        Signed,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/auth/tokens",
        "Create a personal API token (shown once; acts with your role and sites)",
        Signed,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/auth/tokens/{id}",
        "Revoke one of your personal tokens",
        Signed,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/auth/oidc/start",
        "Sign in with the OpenID Connect provider: redirects to it",
        Public,
        &[("return_to", "dashboard path to come back to")],
        false
    ),
    ep!(
        "get",
        "/api/v1/auth/oidc/callback",
        "Where the OpenID Connect provider sends the browser back",
        Public,
        &[("code", "authorization code"), ("state", "state")],
        false
    ),
    ep!("get", "/api/v1/users", "Users", ADMIN, &[], false),
    ep!(
        "post",
        "/api/v1/users",
        "Create a local user (a generated password is answered once when none is given)",
        ADMIN,
        &[],
        true
    ),
    ep!("get", "/api/v1/users/{id}", "One user", ADMIN, &[], false),
    ep!(
        "patch",
        "/api/v1/users/{id}",
        "Change a user's name, role, sites, or disable / enable them",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "post",
        "/api/v1/users/{id}/password",
        "Set a user's password (a generated one is answered once when none is given); ends their sessions",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/users/{id}/tokens",
        "A user's personal API tokens",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/users/{id}/tokens",
        "Create a personal API token for a user (shown once)",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/users/{id}/tokens/{token}",
        "Revoke a user's personal token",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/audit",
        "The audit log, newest first, paginated",
        ADMIN,
        &[
            ("actor", "exact actor (email, token:<id>, admin-token, cli)"),
            (
                "action",
                "an action, or a prefix ending in `.` (`channel.`)"
            ),
            ("target", "text the target contains"),
            ("from", "at or after"),
            ("to", "at or before"),
            ("limit", "page size 1..1000 (default 100)"),
            ("cursor", "next_cursor of the previous page")
        ],
        false
    ),
    Endpoint {
        method: "get",
        path: "/api/v1/audit.csv",
        summary: "CSV of the audit entries a filter matches",
        access: Access::ADMIN,
        query: &[
            ("actor", "exact actor"),
            ("action", "action or prefix"),
            ("target", "text the target contains"),
            ("from", "at or after"),
            ("to", "at or before"),
        ],
        body: false,
        produces: "text/csv",
    },
    ep!(
        "get",
        "/api/v1/sites",
        "Sites with host, model and open-violation counts",
        VIEWER,
        &[],
        false
    ),
    ep!("post", "/api/v1/sites", "Register a site", ADMIN, &[], true),
    ep!(
        "get",
        "/api/v1/hosts",
        "Hosts and when they were last seen",
        VIEWER,
        &[("site", "site")],
        false
    ),
    ep!(
        "get",
        "/api/v1/models",
        "Models per site",
        VIEWER,
        &[("site", "site")],
        false
    ),
    ep!(
        "get",
        "/api/v1/series",
        "Series with status, baseline, the newest point (last_value, last_ts) and sparkline",
        VIEWER,
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
        VIEWER,
        &[("site", "site")],
        false
    ),
    ep!(
        "get",
        "/api/v1/series/points",
        "Points of a series over a range, downsampled past max_points, every flagged point kept",
        VIEWER,
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
        VIEWER,
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
        "/api/v1/otlp/series",
        "Interval series from OTLP GenAI metrics (one per instrument, model, host, operation)",
        VIEWER,
        &[("site", "only this site"), ("model", "only this model")],
        false
    ),
    ep!(
        "get",
        "/api/v1/otlp/intervals",
        "One interval series: count, mean, quantiles per export interval, and its X̄ chart of interval means",
        VIEWER,
        &[
            (
                "key",
                "interval series key otlp|site|host|provider|model|operation|instrument|token_type (required)"
            ),
            ("from", "start"),
            ("to", "end"),
            (
                "phase1",
                "intervals the limits are estimated from, 8..1000, default 20"
            )
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/compare",
        "Several series over one range (repeat `key`)",
        VIEWER,
        &[
            ("key", "series key, repeatable"),
            ("from", "start"),
            ("to", "end")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/abtest",
        "A/B verdict between two series over one range, or two periods of one series: Welch on ln values, Mann-Whitney U, Hodges-Lehmann shift, ratio of geometric means, effective sample size",
        VIEWER,
        &[
            ("a", "series key of A (with b)"),
            ("b", "series key of B (with a)"),
            ("from", "start (with a and b)"),
            ("to", "end (with a and b)"),
            ("key", "one series key (with a_from, a_to, b_from, b_to)"),
            ("a_from", "start of period A"),
            ("a_to", "end of period A"),
            ("b_from", "start of period B"),
            ("b_to", "end of period B")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/capability",
        "Process capability against an SLO limit on the ln scale: Cp, Cpk, Pp, Ppk with 95 % intervals, percentile Ppk, histogram with the fitted curve",
        VIEWER,
        &[
            ("key", "series key (required)"),
            ("from", "start"),
            ("to", "end"),
            (
                "usl",
                "upper limit, the SLO, in the metric's unit (required)"
            ),
            ("lsl", "lower limit (optional; gives Cp and Pp)"),
            ("bins", "histogram bins, 5..200, default 40")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/trend",
        "Daily p95 of a series with its Theil-Sen slope and Holt forecast; days until the SLO",
        VIEWER,
        &[
            ("key", "series key (required)"),
            ("days", "days back, 3..400, default 30"),
            ("slo", "limit for the days-to-SLO estimate"),
            ("horizon", "days to forecast, 1..365, default 90"),
            ("format", "json | csv (the daily rows)")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/slos",
        "SLOs with attainment over their window, error budget left, burn rates (5m, 30m, 1h, 6h) and the open burn alert",
        VIEWER,
        &[("format", "json | csv")],
        false
    ),
    ep!(
        "post",
        "/api/v1/slos",
        "Create an SLO (back-filled from the raw samples kept)",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "put",
        "/api/v1/slos/{id}",
        "Change an SLO made through the API",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/slos/{id}",
        "Delete an SLO made through the API",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/prices",
        "Prices per provider and model",
        VIEWER,
        &[("format", "json | csv")],
        false
    ),
    ep!(
        "put",
        "/api/v1/prices",
        "Set the price of a provider's model",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/prices/{provider}/{model}",
        "Delete a price set through the API",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/cost",
        "Cost per site, model and day (or hour): calls, tokens, host-hours, cost, per call, per 1 000 tokens; the month's forecast",
        VIEWER,
        &[
            ("from", "start (default 30 days ago)"),
            ("to", "end"),
            ("period", "day | hour"),
            ("site", "site"),
            ("model", "model"),
            ("format", "json | csv")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/budgets",
        "Monthly budgets with spend so far, the 7-day daily rate, the month's forecast and the open alert",
        VIEWER,
        &[("format", "json | csv")],
        false
    ),
    ep!(
        "post",
        "/api/v1/budgets",
        "Create a monthly budget",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "put",
        "/api/v1/budgets/{id}",
        "Change a budget made through the API",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/budgets/{id}",
        "Delete a budget made through the API",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/capacity",
        "Capacity headroom per model on each host and site: tokens/s against TTFT p95 and GPU utilisation",
        VIEWER,
        &[
            ("days", "days of hours to fit, 1..30, default 7"),
            ("site", "site"),
            (
                "slo_ms",
                "TTFT limit in ms (default: the tightest ttft_ms SLO)"
            ),
            ("format", "json | csv")
        ],
        false
    ),
    ep!(
        "get",
        "/api/v1/violations",
        "Violations, newest first, paginated",
        VIEWER,
        VFILTER,
        false
    ),
    Endpoint {
        method: "get",
        path: "/api/v1/violations.csv",
        summary: "CSV of the violations a filter matches",
        access: Access::VIEWER,
        query: VFILTER,
        body: false,
        produces: "text/csv",
    },
    Endpoint {
        method: "get",
        path: "/api/v1/samples.csv",
        summary: "CSV of samples",
        access: Access::VIEWER,
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
        VIEWER,
        VFILTER,
        false
    ),
    ep!(
        "get",
        "/api/v1/incidents/{id}",
        "One incident: its lead and every member",
        VIEWER,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/detection",
        "Detector settings and design, and the expected false pages and markers per day per model-host and for the fleet",
        VIEWER,
        &[("site", "only this site")],
        false
    ),
    ep!(
        "get",
        "/api/v1/violations/{id}",
        "One violation with its points, frozen baseline and context",
        VIEWER,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/violations/{id}/ack",
        "Acknowledge ({by, note})",
        EDITOR,
        &[],
        true
    ),
    ep!(
        "post",
        "/api/v1/violations/{id}/resolve",
        "Resolve by hand ({by, note})",
        EDITOR,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/baselines",
        "Current baselines (history=true: all)",
        VIEWER,
        &[("key", "series key"), ("history", "true for every version")],
        false
    ),
    ep!(
        "post",
        "/api/v1/baselines/rebaseline",
        "Re-baseline matching series from a range",
        EDITOR,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/rules",
        "Rule configuration (defaults and overrides)",
        VIEWER,
        &[],
        false
    ),
    ep!(
        "put",
        "/api/v1/rules/{scope_kind}/{scope_value}",
        "Set rules for global, a site or a model",
        EDITOR,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/channels",
        "Alert channels (no secrets)",
        VIEWER,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/channels",
        "Create a channel",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "get",
        "/api/v1/channels/{name}",
        "One channel",
        VIEWER,
        &[],
        false
    ),
    ep!(
        "put",
        "/api/v1/channels/{name}",
        "Create or replace a channel",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/channels/{name}",
        "Delete a channel",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/channels/{name}/test",
        "Send a test notification; returns the receiver's answer",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/routes",
        "Routes in order, then the default route",
        VIEWER,
        &[],
        false
    ),
    ep!("post", "/api/v1/routes", "Add a route", ADMIN, &[], true),
    ep!(
        "delete",
        "/api/v1/routes/{id}",
        "Delete a route",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/silences",
        "Silences",
        VIEWER,
        &[("state", "active | pending | expired | all")],
        false
    ),
    ep!(
        "post",
        "/api/v1/silences",
        "Create a silence",
        EDITOR,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/silences/{id}",
        "Expire a silence now",
        EDITOR,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/deliveries",
        "Alert delivery log",
        ADMIN,
        &[("limit", "1..1000")],
        false
    ),
    ep!(
        "get",
        "/api/v1/tokens",
        "Tokens (never the secret)",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "post",
        "/api/v1/tokens",
        "Create a token (shown once)",
        ADMIN,
        &[],
        true
    ),
    ep!(
        "delete",
        "/api/v1/tokens/{id}",
        "Revoke a token",
        ADMIN,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/setup",
        "First-run status for the setup wizard",
        VIEWER,
        &[],
        false
    ),
    ep!(
        "get",
        "/api/v1/cluster",
        "Replicas on this database; in cluster mode the members, partition owners, what waits in the log and this replica's counters",
        VIEWER,
        &[("key", "a series key: its partition and owner")],
        false
    ),
    Endpoint {
        method: "get",
        path: "/api/v1/events",
        summary: "Server-sent events: points, violation",
        access: Access::VIEWER,
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
        op["x-llmscope-access"] = json!(e.access.as_str());
        if e.access != Access::Public {
            op["security"] = json!([{"bearer": []}, {"session": []}]);
            op["responses"]["401"] = json!({"description": "Not signed in, or an unknown, revoked or expired token or session", "content": {J: {"schema": {"$ref": "#/components/schemas/Error"}}}});
            op["responses"]["403"] = json!({"description": "The caller's role is too low, or a cookie-authenticated change without its CSRF token", "content": {J: {"schema": {"$ref": "#/components/schemas/Error"}}}});
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
            "description": "Statistical process control for LLM inference. Times are Unix milliseconds (from/to between 1970 and 9999). Every error is JSON {error, field}. Every route needs a signed-in user (session cookie; changes also send X-CSRF-Token) or a token (Authorization: Bearer: a personal token, an admin token) unless marked public, or unless [auth] anonymous_role lets anonymous callers read; x-llmscope-access names the role a route needs (viewer < editor < admin). A user limited to sites sees only those: another site's objects answer 404. In /api/v1/series, last_value is the newest point's value as of the last rollup."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}, "session": {"type": "apiKey", "in": "cookie", "name": "llmscope_session"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "field": {"type": "string"}}}},
        },
    })
}
