//! Incidents: one per change of a model on a host. A violation of severity `critical` or
//! `error` (a page) opens an incident unless one is open for its (site, host, provider,
//! model) — then it joins it; a model's `silent` joins its agent's `agent silent` incident.
//! Chart markers (`warning`, `info`) join the open incident of their model and host, if any;
//! markers already open when an incident begins are attached to it. The incident's id is
//! its lead violation's; only the lead notifies (see `llmscope-store`'s violations).
//!
//! The open incidents are known from the database (read at each settings refresh and, for a
//! page, at the moment it opens), so replicas and restarts agree on them.

use std::collections::HashMap;

use llmscope_model::{Detector, SeriesId};
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

impl Engine {
    /// Reloads the open incidents from the database.
    pub(crate) async fn reload_incidents(&mut self) -> Result<(), StoreError> {
        let mut map = HashMap::new();
        for k in self.store.open_incidents().await? {
            map.insert((k.site, k.host, k.provider, k.model), k.lead);
        }
        self.incidents = map;
        Ok(())
    }

    /// Assigns the incident of every violation this batch opens (see the module docs) and
    /// appends the attachments of already open markers to new incidents.
    pub(crate) async fn assign_incidents(
        &mut self,
        ops: &mut Vec<ViolationOp>,
    ) -> Result<(), StoreError> {
        let mut waiting: HashMap<HostKey, Vec<usize>> = HashMap::new();
        let mut attach = Vec::new();
        for i in 0..ops.len() {
            let ViolationOp::Open(v) = &ops[i] else {
                continue;
            };
            let hk = host_key(&v.series);
            let page = v.severity.is_page();
            let mut lead = self.incidents.get(&hk).cloned();
            if lead.is_none() && v.detector == Detector::Silent {
                lead = self
                    .incidents
                    .get(&agent_key(&v.series.site, &v.series.host))
                    .cloned();
            }
            if lead.is_none() && page {
                lead = self.store.open_incident(&hk.0, &hk.1, &hk.2, &hk.3).await?;
                if let Some(l) = &lead {
                    self.incidents.insert(hk.clone(), l.clone());
                }
            }
            let id = v.id.clone();
            match (lead, page) {
                (Some(l), _) => set_incident(&mut ops[i], l),
                (None, true) => {
                    set_incident(&mut ops[i], id.clone());
                    for j in waiting.remove(&hk).unwrap_or_default() {
                        set_incident(&mut ops[j], id.clone());
                    }
                    let open: Vec<String> = self
                        .series
                        .iter()
                        .filter(|(k, _)| host_key(k) == hk)
                        .flat_map(|(_, st)| st.open.iter().map(|e| e.id.clone()))
                        .collect();
                    if !open.is_empty() {
                        attach.push(ViolationOp::Attach {
                            incident: id.clone(),
                            ids: open,
                        });
                    }
                    self.incidents.insert(hk, id);
                }
                (None, false) => waiting.entry(hk).or_default().push(i),
            }
        }
        ops.extend(attach);
        Ok(())
    }

    /// Forgets incidents whose lead resolved.
    pub(crate) fn incidents_closed<'a>(&mut self, leads: impl Iterator<Item = &'a str>) {
        for lead in leads {
            self.incidents.retain(|_, l| l != lead);
        }
    }
}

fn set_incident(op: &mut ViolationOp, incident: String) {
    if let ViolationOp::Open(v) = op {
        v.incident = Some(incident);
    }
}
