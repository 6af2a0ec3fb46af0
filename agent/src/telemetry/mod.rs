//! Host telemetry: CPU, memory and load through `sysinfo` ([`cpu`]), per-GPU readings through
//! NVML loaded at run time ([`gpu`]). Both are blocking calls: [`Sampler::sample`] is meant to
//! run under `spawn_blocking`. On a host without the NVIDIA driver GPU telemetry is off (logged
//! once) and the rest carries on.

pub mod cpu;
pub mod gpu;

use llmscope_proto::v1;

/// Takes host snapshots.
pub struct Sampler {
    cpu: cpu::CpuSampler,
    gpu: Option<gpu::GpuSampler>,
}

impl Sampler {
    /// Initialises sysinfo and tries NVML.
    pub fn new() -> Sampler {
        let gpu = match gpu::GpuSampler::init() {
            Ok(g) => {
                tracing::info!(gpus = g.count(), "gpu telemetry on (nvml)");
                Some(g)
            }
            Err(e) => {
                tracing::info!(reason = %e, "gpu telemetry off: nvml is not available on this host");
                None
            }
        };
        Sampler {
            cpu: cpu::CpuSampler::new(),
            gpu,
        }
    }

    /// One snapshot (blocking).
    pub fn sample(&mut self, site: &str, host: &str) -> v1::Telemetry {
        let c = self.cpu.sample();
        let gpus = match &self.gpu {
            Some(g) => g.sample(),
            None => Vec::new(),
        };
        v1::Telemetry {
            ts_unix_nanos: crate::record::now_ns(),
            site: site.to_owned(),
            host: host.to_owned(),
            cpu_pct: c.cpu_pct,
            mem_used_bytes: c.mem_used_bytes,
            mem_total_bytes: c.mem_total_bytes,
            load1: c.load1,
            gpus,
        }
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}
