//! [`SeriesId`]: which chart a point, a baseline or a violation belongs to. Its text form is
//! written by `Display` and read by `FromStr` here and nowhere else (the SQL that builds it
//! in bulk is [`SeriesId::SQL_SERIES_KEY`], next to them):
//!
//! - `series|SITE|HOST|PROVIDER|MODEL|METRIC`: one host's series;
//! - `site|SITE|PROVIDER|MODEL|METRIC`: pooled over a site's hosts;
//! - `global|PROVIDER|MODEL|METRIC`: pooled over every site.
//!
//! The source is part of the identity (canary probes and real traffic never share a
//! baseline): probe series keep the forms above, other sources append `|SOURCE`
//! (`series|eu|gpu-1|ollama|llama3|ttft_ms|proxy`).
//!
//! The form is unambiguous because no part may contain `|` or a control character: ingest
//! rejects such names with a reason naming the field ([`SeriesId::check_part`]).

use std::fmt;
use std::str::FromStr;

use crate::baseline::Scope;
use crate::metric::Metric;
use crate::sample::Source;

/// A name that cannot be part of a series id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The separator of the id's text form.
    #[error("must not contain `|` (it separates the parts of a series key)")]
    Separator,
    /// A control character (newline, tab, NUL, …).
    #[error("must not contain control characters")]
    Control,
    /// A character that reorders or hides text (bidirectional overrides, zero-width marks).
    #[error(
        "must not contain invisible or direction-changing characters (U+200B–U+200F, U+202A–U+202E, U+2060–U+2069, U+FEFF)"
    )]
    Invisible,
}

/// Whether `c` reorders or hides the text around it when shown: bidirectional embeddings,
/// overrides and isolates, directional marks, zero-width characters and the BOM.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}')
}

/// Why a text is not a series id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a series key: series|site|host|provider|model|metric (or site|site|provider|model|metric, global|provider|model|metric), the metric one of latency_ms, ttft_ms, tpot_ms, tokens_per_s, optionally followed by |proxy, |client or |otlp"
)]
pub struct SeriesIdError(pub String);

/// Identity of a chart: one host's series, or a pooled site or global chart.
///
/// Fields that do not apply to the scope are empty (`host` for site and global charts, `site`
/// for global ones). The same value serves as the key of the baseline pooled at `scope`
/// ([`SeriesId::pooled`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId {
    /// Which kind of chart.
    pub scope: Scope,
    /// Site ("" for global).
    pub site: String,
    /// Host ("" unless `scope` is `series`).
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Metric.
    pub metric: Metric,
    /// Where the samples come from (probe series keep the legacy text form).
    pub source: Source,
}

impl SeriesId {
    /// SQL building the text of a `series` id from the columns `site`, `host`, `provider`,
    /// `model`, `source` and a metric-name expression substituted for `{metric}` (both
    /// backends).
    pub const SQL_SERIES_KEY: &'static str = "'series|' || site || '|' || host || '|' || provider || '|' || model || '|' || {metric} || CASE WHEN source = 'probe' THEN '' ELSE '|' || source END";

    /// The same id for samples of `source`.
    pub fn with_source(mut self, source: Source) -> SeriesId {
        self.source = source;
        self
    }

    /// One host's series.
    pub fn series(site: &str, host: &str, provider: &str, model: &str, metric: Metric) -> Self {
        SeriesId {
            scope: Scope::Series,
            site: site.to_owned(),
            host: host.to_owned(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            metric,
            source: Source::Probe,
        }
    }

    /// A chart pooled over a site's hosts.
    pub fn site_chart(site: &str, provider: &str, model: &str, metric: Metric) -> Self {
        SeriesId {
            scope: Scope::Site,
            site: site.to_owned(),
            host: String::new(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            metric,
            source: Source::Probe,
        }
    }

    /// A chart pooled over every site.
    pub fn global_chart(provider: &str, model: &str, metric: Metric) -> Self {
        SeriesId {
            scope: Scope::Global,
            site: String::new(),
            host: String::new(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            metric,
            source: Source::Probe,
        }
    }

    /// The id this series is pooled into at `scope` (itself for [`Scope::Series`]): the key
    /// of the baseline that judges it under that scope.
    pub fn pooled(&self, scope: Scope) -> SeriesId {
        SeriesId {
            scope,
            site: if scope == Scope::Global {
                String::new()
            } else {
                self.site.clone()
            },
            host: if scope == Scope::Series {
                self.host.clone()
            } else {
                String::new()
            },
            provider: self.provider.clone(),
            model: self.model.clone(),
            metric: self.metric,
            source: self.source,
        }
    }

    /// The same series with another metric.
    pub fn with_metric(&self, metric: Metric) -> SeriesId {
        SeriesId {
            metric,
            ..self.clone()
        }
    }

    /// The site as a routing label: `*` for a global chart.
    pub fn site_label(&self) -> &str {
        if self.scope == Scope::Global {
            "*"
        } else {
            &self.site
        }
    }

    /// The host as a routing label: `*` for a pooled chart.
    pub fn host_label(&self) -> &str {
        if self.scope == Scope::Series {
            &self.host
        } else {
            "*"
        }
    }

    /// Checks that `name` may be part of a series id.
    pub fn check_part(name: &str) -> Result<(), NameError> {
        if name.contains('|') {
            return Err(NameError::Separator);
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::Control);
        }
        if name.chars().any(is_invisible) {
            return Err(NameError::Invisible);
        }
        Ok(())
    }
}

impl fmt::Display for SeriesId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, m, metric) = (&self.provider, &self.model, self.metric.as_str());
        match self.scope {
            Scope::Series => write!(f, "series|{}|{}|{p}|{m}|{metric}", self.site, self.host)?,
            Scope::Site => write!(f, "site|{}|{p}|{m}|{metric}", self.site)?,
            Scope::Global => write!(f, "global|{p}|{m}|{metric}")?,
        }
        if self.source != Source::Probe {
            write!(f, "|{}", self.source)?;
        }
        Ok(())
    }
}

impl FromStr for SeriesId {
    type Err = SeriesIdError;

    fn from_str(s: &str) -> Result<SeriesId, SeriesIdError> {
        let bad = || SeriesIdError(s.to_owned());
        let mut parts: Vec<&str> = s.split('|').collect();
        let metric = |m: &str| m.parse::<Metric>().map_err(|_| bad());
        let want = match parts.first() {
            Some(&"series") => 6,
            Some(&"site") => 5,
            _ => 4,
        };
        let mut source = Source::Probe;
        if parts.len() == want + 1 {
            source = match parts.pop().map(str::parse::<Source>) {
                Some(Ok(s)) if s != Source::Probe => s,
                _ => return Err(bad()),
            };
        }
        let id = match parts.as_slice() {
            ["series", site, host, provider, model, m] => {
                SeriesId::series(site, host, provider, model, metric(m)?)
            }
            ["site", site, provider, model, m] => {
                SeriesId::site_chart(site, provider, model, metric(m)?)
            }
            ["global", provider, model, m] => SeriesId::global_chart(provider, model, metric(m)?),
            _ => return Err(bad()),
        };
        if parts[1..parts.len() - 1]
            .iter()
            .any(|p| p.is_empty() || SeriesId::check_part(p).is_err())
        {
            return Err(bad());
        }
        Ok(id.with_source(source))
    }
}

impl serde::Serialize for SeriesId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SeriesId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SeriesId, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_three_forms() {
        let s = SeriesId::series("eu", "gpu-1", "ollama", "llama3.1:8b", Metric::TtftMs);
        assert_eq!(s.to_string(), "series|eu|gpu-1|ollama|llama3.1:8b|ttft_ms");
        assert_eq!(
            s.pooled(Scope::Site).to_string(),
            "site|eu|ollama|llama3.1:8b|ttft_ms"
        );
        assert_eq!(
            s.pooled(Scope::Global).to_string(),
            "global|ollama|llama3.1:8b|ttft_ms"
        );
        for id in [s.clone(), s.pooled(Scope::Site), s.pooled(Scope::Global)] {
            assert_eq!(id.to_string().parse::<SeriesId>(), Ok(id.clone()));
        }
        assert_eq!(s.pooled(Scope::Global).site_label(), "*");
        let proxy = s.clone().with_source(Source::Proxy);
        assert_eq!(
            proxy.to_string(),
            "series|eu|gpu-1|ollama|llama3.1:8b|ttft_ms|proxy"
        );
        assert_eq!(
            proxy.pooled(Scope::Site).to_string(),
            "site|eu|ollama|llama3.1:8b|ttft_ms|proxy"
        );
        for id in [
            proxy.clone(),
            proxy.pooled(Scope::Site),
            proxy.pooled(Scope::Global),
        ] {
            assert_eq!(id.to_string().parse::<SeriesId>(), Ok(id.clone()));
        }
        assert_ne!(proxy, s);
        assert_eq!(s.pooled(Scope::Site).host_label(), "*");
    }

    #[test]
    fn ambiguous_or_malformed_keys_are_refused() {
        for bad in [
            "series|eu|gpu|ollama|m",
            "series|eu|gpu|ollama|m|latency",
            "series|eu||ollama|m|latency_ms",
            "series|eu|hc|p1|p2|m|latency_ms",
            "chart|eu|ollama|m|latency_ms",
            "series|eu|gpu|ollama|m|latency_ms|probe",
            "series|eu|gpu|ollama|m|latency_ms|robot",
            "global|ollama|m|latency_ms|proxy|x",
            "",
        ] {
            assert!(bad.parse::<SeriesId>().is_err(), "{bad}");
        }
        assert_eq!(SeriesId::check_part("hc|p1"), Err(NameError::Separator));
        assert_eq!(SeriesId::check_part("a\nb"), Err(NameError::Control));
        assert_eq!(SeriesId::check_part("llama3.1:8b"), Ok(()));
    }

    proptest! {
        #[test]
        fn text_round_trips_for_every_valid_name(
            site in "[^|\\p{Cc}]{1,12}", host in "[^|\\p{Cc}]{1,12}",
            provider in "[^|\\p{Cc}]{1,12}", model in "[^|\\p{Cc}]{1,12}", m in 0usize..4,
            src in 0usize..4,
        ) {
            // valid: no separator, no control or invisible character
            for part in [&site, &host, &provider, &model] {
                prop_assume!(SeriesId::check_part(part).is_ok());
            }
            let id = SeriesId::series(&site, &host, &provider, &model, Metric::ALL[m])
                .with_source(Source::ALL[src]);
            prop_assert_eq!(id.to_string().parse::<SeriesId>(), Ok(id));
        }
    }
}
