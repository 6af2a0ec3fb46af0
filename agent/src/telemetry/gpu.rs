//! Per-GPU readings through NVML (`nvml-wrapper`), loaded at run time: the agent binary does
//! not link against the driver, so it runs on hosts without one.

use llmscope_proto::v1;
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};

/// Holds the NVML handle.
pub struct GpuSampler {
    nvml: Nvml,
    count: u32,
}

/// Why NVML is unavailable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NvmlUnavailable(String);

impl GpuSampler {
    /// Loads `libnvidia-ml.so.1` and counts devices.
    pub fn init() -> Result<GpuSampler, NvmlUnavailable> {
        let nvml = Nvml::init().map_err(|e| NvmlUnavailable(e.to_string()))?;
        let count = nvml
            .device_count()
            .map_err(|e| NvmlUnavailable(e.to_string()))?;
        Ok(GpuSampler { nvml, count })
    }

    /// Number of GPUs.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The driver version, for `gpu-info`.
    pub fn driver_version(&self) -> String {
        self.nvml
            .sys_driver_version()
            .unwrap_or_else(|e| format!("unknown ({e})"))
    }

    /// One reading per GPU; a field NVML cannot read is 0 (logged at debug).
    pub fn sample(&self) -> Vec<v1::GpuStats> {
        let mut out = Vec::with_capacity(self.count as usize);
        for index in 0..self.count {
            let dev = match self.nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(index, error = %e, "nvml device unavailable");
                    continue;
                }
            };
            let mem = dev.memory_info().ok();
            out.push(v1::GpuStats {
                index,
                uuid: dev.uuid().unwrap_or_default(),
                name: dev.name().unwrap_or_default(),
                util_pct: dev
                    .utilization_rates()
                    .map(|u| f64::from(u.gpu))
                    .unwrap_or(0.0),
                mem_used_bytes: mem.as_ref().map(|m| m.used).unwrap_or(0),
                mem_total_bytes: mem.as_ref().map(|m| m.total).unwrap_or(0),
                temp_c: dev
                    .temperature(TemperatureSensor::Gpu)
                    .map(f64::from)
                    .unwrap_or(0.0),
                power_w: dev
                    .power_usage()
                    .map(|mw| f64::from(mw) / 1000.0)
                    .unwrap_or(0.0),
                sm_clock_mhz: dev.clock_info(Clock::SM).unwrap_or(0),
                throttle_reasons: dev
                    .current_throttle_reasons()
                    .map(|r| r.bits())
                    .unwrap_or(0),
            });
        }
        out
    }
}
