//! The names of everything this installation keeps in NATS, all starting with the prefix,
//! and the partition a model on a host belongs to.

/// Names derived from `cluster.nats_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (validated by the config).
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream holding the accepted batches: `<prefix>-ingest`.
    pub fn stream(&self) -> String {
        format!("{}-ingest", self.prefix)
    }

    /// Subject of partition `p`'s samples: `<prefix>.samples.<p>`.
    pub fn samples(&self, p: u16) -> String {
        format!("{}.samples.{p}", self.prefix)
    }

    /// Subject of partition `p`'s telemetry: `<prefix>.telemetry.<p>`.
    pub fn telemetry(&self, p: u16) -> String {
        format!("{}.telemetry.{p}", self.prefix)
    }

    /// The stream's subjects.
    pub fn subjects(&self) -> Vec<String> {
        vec![
            format!("{}.samples.*", self.prefix),
            format!("{}.telemetry.*", self.prefix),
        ]
    }

    /// The durable consumer that writes everything to the database, shared by the replicas.
    pub fn store_consumer(&self) -> String {
        format!("{}-store", self.prefix)
    }

    /// The durable consumer of partition `p`'s samples, read by its owner.
    pub fn spc_consumer(&self, p: u16) -> String {
        format!("{}-spc-{p}", self.prefix)
    }

    /// KV bucket of members and partition leases (entries live `lease_ttl`).
    pub fn cluster_bucket(&self) -> String {
        format!("{}-cluster", self.prefix)
    }

    /// KV bucket of settings every replica must agree on (the partition count).
    pub fn meta_bucket(&self) -> String {
        format!("{}-meta", self.prefix)
    }

    /// KV bucket of channel rate limits.
    pub fn rates_bucket(&self) -> String {
        format!("{}-rates", self.prefix)
    }

    /// Core NATS subject of the live events every replica's dashboards follow.
    pub fn events(&self) -> String {
        format!("{}.events", self.prefix)
    }
}

/// Key of a member in the cluster bucket.
pub fn member_key(id: &str) -> String {
    format!("member.{id}")
}

/// Key of partition `p`'s lease in the cluster bucket.
pub fn lease_key(p: u16) -> String {
    format!("lease.{p}")
}

/// The partition of a model on a host: FNV-1a (64 bit) of `site`, `host`, `provider` and
/// `model` separated by U+001F, modulo `partitions`. Stable across versions and processes;
/// every metric and source of one model-host falls in one partition, and an agent's own
/// detectors (`agent silent`) in the partition of `(site, host, "*", "*")`.
pub fn partition_of(site: &str, host: &str, provider: &str, model: &str, partitions: u16) -> u16 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for (i, part) in [site, host, provider, model].iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(PRIME);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    (h % u64::from(partitions.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // pinned: a change would move every series to another owner during an upgrade
        assert_eq!(partition_of("eu", "gpu-1", "ollama", "llama3", 64), {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in "eu\u{1f}gpu-1\u{1f}ollama\u{1f}llama3".bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100_0000_01b3);
            }
            (h % 64) as u16
        });
        assert_ne!(
            partition_of("ab", "c", "p", "m", 1024),
            partition_of("a", "bc", "p", "m", 1024),
            "the separator keeps parts apart"
        );
        let mut counts = [0u32; 64];
        for i in 0..6400 {
            counts[usize::from(partition_of("s", &format!("h{i}"), "p", "m", 64))] += 1;
        }
        let (min, max) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        assert!(min > 60 && max < 150, "{min}..{max}");
    }

    #[test]
    fn names_start_with_the_prefix() {
        let n = Names::new("t1");
        assert_eq!(n.samples(7), "t1.samples.7");
        assert_eq!(n.stream(), "t1-ingest");
        assert_eq!(n.spc_consumer(3), "t1-spc-3");
        assert_eq!(n.cluster_bucket(), "t1-cluster");
        assert!(n.subjects().iter().all(|s| s.starts_with("t1.")));
    }
}
