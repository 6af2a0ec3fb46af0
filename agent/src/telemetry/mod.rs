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
    gpu: Option<Box<dyn gpu::GpuBackend>>,
}

impl Sampler {
    /// Initialises sysinfo and tries NVML.
    pub fn new() -> Sampler {
        let gpu = match gpu::GpuSampler::init() {
            Ok(g) => {
                tracing::info!(gpus = g.count(), "gpu telemetry on (nvml)");
                Some(Box::new(g) as Box<dyn gpu::GpuBackend>)
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

    /// A sampler reading GPUs from `backend` (a fake in tests).
    pub fn with_backend(backend: Box<dyn gpu::GpuBackend>) -> Sampler {
        Sampler {
            cpu: cpu::CpuSampler::new(),
            gpu: Some(backend),
        }
    }

    /// One snapshot (blocking).
    pub fn sample(&mut self, site: &str, host: &str) -> v1::Telemetry {
        self.sample_with_gpus(site, host).0
    }

    /// One snapshot and the GPU readings behind it, unsupported fields as `None` (blocking).
    pub fn sample_with_gpus(
        &mut self,
        site: &str,
        host: &str,
    ) -> (v1::Telemetry, Vec<gpu::GpuReading>) {
        let c = self.cpu.sample();
        let readings = match &self.gpu {
            Some(g) => g.readings(),
            None => Vec::new(),
        };
        let gpus = readings.iter().map(gpu::to_stats).collect();
        let t = v1::Telemetry {
            ts_unix_nanos: crate::record::now_ns(),
            site: site.to_owned(),
            host: host.to_owned(),
            cpu_pct: c.cpu_pct,
            mem_used_bytes: c.mem_used_bytes,
            mem_total_bytes: c.mem_total_bytes,
            load1: c.load1,
            gpus,
            server_metrics: Vec::new(),
        };
        (t, readings)
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}
