//! CPU %, memory and load average via `sysinfo`.

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// One CPU/memory reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuReading {
    /// Utilisation of all cores together since the previous reading, 0..=100.
    pub cpu_pct: f64,
    /// Memory in use, bytes.
    pub mem_used_bytes: u64,
    /// Total memory, bytes.
    pub mem_total_bytes: u64,
    /// One-minute load average.
    pub load1: f64,
}

/// Keeps the `sysinfo` state between readings (CPU % needs two).
pub struct CpuSampler {
    sys: Option<System>,
}

impl CpuSampler {
    /// A sampler with only CPU and memory refreshed.
    pub fn new() -> CpuSampler {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        if let Err(e) = &sys {
            tracing::warn!(error = %e, "cpu and memory telemetry unavailable");
        }
        CpuSampler { sys: sys.ok() }
    }

    /// Reads CPU (since the last call), memory and load.
    pub fn sample(&mut self) -> CpuReading {
        let load1 = System::load_average()
            .map(|l| l.one.max(0.0))
            .unwrap_or(0.0);
        let Some(sys) = &mut self.sys else {
            return CpuReading {
                cpu_pct: 0.0,
                mem_used_bytes: 0,
                mem_total_bytes: 0,
                load1,
            };
        };
        sys.refresh_cpu_usage();
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let pct = f64::from(sys.global_cpu_usage());
        CpuReading {
            cpu_pct: if pct.is_finite() {
                pct.clamp(0.0, 100.0)
            } else {
                0.0
            },
            mem_used_bytes: sys.used_memory(),
            mem_total_bytes: sys.total_memory(),
            load1,
        }
    }
}

impl Default for CpuSampler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_plausible() {
        let mut s = CpuSampler::new();
        let _ = s.sample();
        std::thread::sleep(std::time::Duration::from_millis(250));
        let r = s.sample();
        assert!((0.0..=100.0).contains(&r.cpu_pct));
        assert!(r.mem_total_bytes > 0 && r.mem_used_bytes <= r.mem_total_bytes);
        assert!(r.load1 >= 0.0);
    }
}
