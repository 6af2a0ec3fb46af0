//! Incidents: one per change of a model on a host.
//!
//! Rules, applied point by point as the engine judges (so one series gives the same
//! incidents whatever the batching, and `analyze` can predict them):
//! - a **page** (a violation of severity `critical` or `error`) joins the open incident of its
//!   (site, host, provider, model) — a model's `silent` also its agent's `agent silent` one;
//!   without one it opens a new incident and leads it (the incident's id is the lead's);
//! - a **marker** (`warning`, `info`) that opens while an incident of its model and host is
//!   open joins it; markers still open when an incident begins are attached to it;
//! - an incident ends when its last open page resolves (a lead whose own detector went quiet
//!   stays open until then: see `llmscope-store`'s violations). Only the lead notifies.
//!
//! The engine keeps the open incidents with their open pages ([`Incidents`]), reloaded from
//! the database at every settings refresh, so restarts and replicas agree. A lead opened in a
//! batch is checked against the database before the batch is written: when another process
//! opened an incident for the same model and host meanwhile, the new page joins that one.
//! Within one batch, series are judged one after another, so a marker of another series of
//! the same model and host is attached to a new incident when it is still open at the end
//! of the batch.

use std::collections::{HashMap, HashSet};

use llmscope_model::{Detector, SeriesId, Violation};
use llmscope_store::StoreError;
use llmscope_store::violations::ViolationOp;

use crate::engine::Engine;

/// (site, host, provider, model): what one incident is about.
pub type HostKey = (String, String, String, String);

/// The incident key of a series (`*` for pooled charts' host).
pub fn host_key(s: &SeriesId) -> HostKey {
    (
        s.site_label().to_owned(),
        s.host_label().to_owned(),
        s.provider.clone(),
        s.model.clone(),
    )
}

/// The key of an agent's incidents on a host.
pub fn agent_key(site: &str, host: &str) -> HostKey {
    (site.to_owned(), host.to_owned(), "*".into(), "*".into())
}

/// One open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    /// Its lead violation's id (the incident's id).
    pub lead: String,
    /// Its open pages (the lead while its own detector fires, and the paging members).
    pub pages: HashSet<String>,
}

/// The open incidents of the model-hosts this engine judges.
#[derive(Debug, Default)]
pub struct Incidents {
    open: HashMap<HostKey, OpenIncident>,
    /// Incidents opened since the last [`Incidents::take_fresh`]: (key, lead).
    fresh: Vec<(HostKey, String)>,
}

impl Incidents {
    /// The open incident of `key`.
    pub fn get(&self, key: &HostKey) -> Option<&OpenIncident> {
        self.open.get(key)
    }

    /// Replaces what is known with the database's view.
    pub fn replace(&mut self, open: HashMap<HostKey, OpenIncident>) {
        self.open = open;
    }

    /// The key under which a page of `v` finds its incident: its model-host's, else (for a
    /// model's silence) its agent's.
    fn key_of(&self, v: &Violation) -> HostKey {
        let hk = host_key(&v.series);
        if !self.open.contains_key(&hk) && v.detector == Detector::Silent {
            let ak = agent_key(&v.series.site, &v.series.host);
            if self.open.contains_key(&ak) {
                return ak;
            }
        }
        hk
    }

    /// A page opens: it joins the open incident of its model and host or leads a new one
    /// (sets `v.incident`); returns whether it leads.
    pub fn page(&mut self, v: &mut Violation) -> bool {
        let hk = self.key_of(v);
        if let Some(inc) = self.open.get_mut(&hk) {
            inc.pages.insert(v.id.clone());
            v.incident = Some(inc.lead.clone());
            return false;
        }
        v.incident = Some(v.id.clone());
        self.open.insert(
            hk.clone(),
            OpenIncident {
                lead: v.id.clone(),
                pages: HashSet::from([v.id.clone()]),
            },
        );
        self.fresh.push((hk, v.id.clone()));
        true
    }

    /// A marker opens: it joins the open incident of its model and host, if any.
    pub fn marker(&self, v: &mut Violation) {
        v.incident = self.open.get(&host_key(&v.series)).map(|i| i.lead.clone());
    }

    /// A finding opens: a page ([`Incidents::page`]) or a marker ([`Incidents::marker`]).
    /// Returns whether it leads a new incident.
    pub fn opened(&mut self, v: &mut Violation) -> bool {
        if v.severity.is_page() {
            self.page(v)
        } else {
            self.marker(v);
            false
        }
    }

    /// A page of `series` resolved: it leaves its incident, which ends with its last page.
    pub fn page_resolved(&mut self, series: &SeriesId, id: &str) {
        let keys = [
            host_key(series),
            agent_key(series.site_label(), series.host_label()),
        ];
        for k in keys {
            if let Some(inc) = self.open.get_mut(&k)
                && inc.pages.remove(id)
            {
                if inc.pages.is_empty() {
                    self.open.remove(&k);
                }
                return;
            }
        }
    }

    /// Forgets the incident led by `lead` (it was resolved, e.g. by hand).
    pub fn closed(&mut self, lead: &str) {
        self.open.retain(|_, i| i.lead != lead);
    }

    /// The incidents opened since the last call.
    pub fn take_fresh(&mut self) -> Vec<(HostKey, String)> {
        std::mem::take(&mut self.fresh)
    }

    /// The incident `from` turned out to belong to `to` (opened elsewhere first).
    fn merge(&mut self, key: &HostKey, from: &str, to: &str) {
        if let Some(inc) = self.open.get_mut(key)
            && inc.lead == from
        {
            inc.lead = to.to_owned();
        }
    }
}

impl Engine {
    /// Reloads the open incidents (with their open pages) from the database.
    pub(crate) async fn reload_incidents(&mut self) -> Result<(), StoreError> {
        let mut map = HashMap::new();
        for k in self.store.open_incidents().await? {
            map.insert(
                (k.site, k.host, k.provider, k.model),
                OpenIncident {
                    lead: k.lead,
                    pages: k.pages.into_iter().collect(),
                },
            );
        }
        self.incidents.replace(map);
        Ok(())
    }

    /// Finishes the incidents opened by this batch's operations: a new lead whose model and
    /// host already has an open incident in the database (another process opened it) joins
    /// that one instead; open markers of the model and host without an incident are attached.
    pub(crate) async fn finish_incidents(
        &mut self,
        ops: &mut Vec<ViolationOp>,
    ) -> Result<(), StoreError> {
        for (hk, lead) in self.incidents.take_fresh() {
            let mut incident = lead.clone();
            if let Some(other) = self
                .store
                .open_incident(&hk.0, &hk.1, &hk.2, &hk.3)
                .await?
                .filter(|o| *o != lead)
            {
                for op in ops.iter_mut() {
                    match op {
                        ViolationOp::Open(v) if v.incident.as_deref() == Some(&lead) => {
                            v.incident = Some(other.clone());
                        }
                        ViolationOp::Attach { incident, .. } if *incident == lead => {
                            *incident = other.clone();
                        }
                        _ => {}
                    }
                }
                self.incidents.merge(&hk, &lead, &other);
                incident = other;
            }
            // markers of other series, still open, join an incident that is still open
            let still_open = self.incidents.get(&hk).is_some_and(|i| i.lead == incident);
            let mut ids = Vec::new();
            for (k, st) in self.series.iter_mut() {
                if host_key(k) != hk {
                    continue;
                }
                for ep in st.open.iter_mut().chain(st.cusum.as_deref_mut()) {
                    if ep.incident.as_deref() == Some(&lead) {
                        ep.incident = Some(incident.clone());
                    } else if ep.incident.is_none() && !ep.page && still_open {
                        ids.push(ep.id.clone());
                        ep.incident = Some(incident.clone());
                    }
                }
            }
            for (k, st) in self.calls.iter_mut() {
                if host_key(k) != hk {
                    continue;
                }
                for ep in st.down.iter_mut().chain(st.errors.iter_mut()) {
                    if ep.incident.as_deref() == Some(&lead) {
                        ep.incident = Some(incident.clone());
                    }
                }
            }
            if !ids.is_empty() {
                ops.push(ViolationOp::Attach { incident, ids });
            }
        }
        Ok(())
    }
}
