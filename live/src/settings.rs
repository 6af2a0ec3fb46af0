//! Rule configuration resolved per series: global, then per model, then per site (most
//! specific wins). Stored in the `rule_configs` table as JSON objects:
//! `{"params": {"2.run": "7", "4.enabled": "false"}, "scope": "site", "resolve_after": 20}`.

use std::collections::BTreeMap;

use llmscope_spc::nelson::{CompiledRulesRef, NelsonConfig};
use serde::{Deserialize, Serialize};

pub use llmscope_model::Scope;

/// One stored settings object (all fields optional: unset inherits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsDoc {
    /// Rule parameters as `RULE.FIELD` → value (see `NelsonConfig::set_param`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Scope judging the series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Quiet points that resolve an episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_after: Option<u32>,
}

impl SettingsDoc {
    /// Parses and validates (every parameter must apply cleanly).
    pub fn parse(json: &str) -> Result<SettingsDoc, String> {
        let d: SettingsDoc = serde_json::from_str(json).map_err(|e| format!("settings: {e}"))?;
        let mut cfg = NelsonConfig::default();
        for (k, v) in &d.params {
            cfg.set_param(k, v).map_err(|e| e.to_string())?;
        }
        if d.resolve_after == Some(0) {
            return Err("resolve_after must be at least 1".into());
        }
        Ok(d)
    }
}

/// The effective settings of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// Rule parameters.
    pub rules: NelsonConfig,
    /// Compiled form.
    pub compiled: CompiledRulesRef,
    /// Scope.
    pub scope: Scope,
    /// Quiet points that resolve an episode.
    pub resolve_after: u32,
}

/// All stored settings, resolved on demand.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    global: SettingsDoc,
    models: BTreeMap<String, SettingsDoc>,
    sites: BTreeMap<String, SettingsDoc>,
    default_resolve_after: u32,
}

impl Settings {
    /// From the rows of `rule_configs`; invalid rows are skipped with a warning.
    pub fn from_rows(rows: &[(String, String, String)], default_resolve_after: u32) -> Settings {
        let mut s = Settings {
            default_resolve_after,
            ..Default::default()
        };
        for (kind, value, json) in rows {
            let doc = match SettingsDoc::parse(json) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(scope_kind = %kind, scope_value = %value, error = %e, "ignoring invalid rule configuration");
                    continue;
                }
            };
            match kind.as_str() {
                "global" => s.global = doc,
                "model" => {
                    s.models.insert(value.clone(), doc);
                }
                "site" => {
                    s.sites.insert(value.clone(), doc);
                }
                _ => {}
            }
        }
        s
    }

    /// Settings for a series of `site` and `model`.
    pub fn resolve(&self, site: &str, model: &str) -> Effective {
        let mut rules = NelsonConfig::default();
        let mut scope = Scope::Series;
        let mut resolve_after = self.default_resolve_after;
        for doc in [
            Some(&self.global),
            self.models.get(model),
            self.sites.get(site),
        ]
        .into_iter()
        .flatten()
        {
            for (k, v) in &doc.params {
                // validated at parse time; a conflict between levels keeps the earlier value
                let _ = rules.set_param(k, v);
            }
            if let Some(sc) = doc.scope {
                scope = sc;
            }
            if let Some(r) = doc.resolve_after {
                resolve_after = r;
            }
        }
        let compiled = rules.compile_ref();
        Effective {
            rules,
            compiled,
            scope,
            resolve_after,
        }
    }
}
