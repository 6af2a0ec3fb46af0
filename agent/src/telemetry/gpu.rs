//! Per-GPU readings through NVML (`nvml-wrapper`), loaded at run time: the agent binary does
//! not link against the driver, so it runs on hosts without one.
//!
//! Reading and using are apart: a [`GpuBackend`] yields [`GpuReading`]s — every GPU and, when
//! MIG is on, every MIG instance, with `None` for what the device does not support — and
//! [`to_stats`] turns one into the wire's `GpuStats`. Tests drive the rest with a fake backend.

use llmscope_proto::v1;
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};

/// One GPU or MIG instance as NVML reads it; `None` where the device does not support a field
/// (a MIG instance has no utilisation, temperature or power of its own, a consumer GPU no ECC).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GpuReading {
    /// NVML index of the GPU (of the parent GPU for a MIG instance).
    pub index: u32,
    /// Index of the MIG instance under its GPU, when this is one.
    pub mig_index: Option<u32>,
    /// Device UUID (`GPU-…`, or `MIG-…` for an instance).
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Utilisation, %.
    pub util_pct: Option<f64>,
    /// Frame-buffer memory used, bytes.
    pub mem_used_bytes: Option<u64>,
    /// Frame-buffer memory, bytes.
    pub mem_total_bytes: Option<u64>,
    /// Temperature, °C.
    pub temp_c: Option<f64>,
    /// Power draw, W.
    pub power_w: Option<f64>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// NVML clock-throttle reason bits.
    pub throttle_reasons: Option<u64>,
    /// The throttle reasons in words (see [`throttle_names`]).
    pub throttle: Vec<&'static str>,
    /// Corrected (single-bit) ECC errors since the driver loaded.
    pub ecc_corrected_volatile: Option<u64>,
    /// Uncorrected (double-bit) ECC errors since the driver loaded.
    pub ecc_uncorrected_volatile: Option<u64>,
}

/// Where readings come from: NVML on a GPU host, a fake in tests.
pub trait GpuBackend: Send {
    /// The driver version.
    fn driver_version(&self) -> String;
    /// One reading per GPU and MIG instance.
    fn readings(&self) -> Vec<GpuReading>;
}

/// NVML's clock-throttle reason bits, in words.
pub fn throttle_names(bits: u64) -> Vec<&'static str> {
    const NAMES: &[(u64, &str)] = &[
        (0x1, "gpu_idle"),
        (0x2, "applications_clocks_setting"),
        (0x4, "sw_power_cap"),
        (0x8, "hw_slowdown"),
        (0x10, "sync_boost"),
        (0x20, "sw_thermal_slowdown"),
        (0x40, "hw_thermal_slowdown"),
        (0x80, "hw_power_brake_slowdown"),
        (0x100, "display_clock_setting"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The wire form of a reading. The protocol's GPU fields are not optional yet: a field the
/// device does not support is sent as 0 (the agent's `/metrics` and `gpu-info --json` leave it
/// out).
pub fn to_stats(r: &GpuReading) -> v1::GpuStats {
    v1::GpuStats {
        index: r.index,
        uuid: r.uuid.clone(),
        name: r.name.clone(),
        util_pct: r.util_pct.unwrap_or(0.0),
        mem_used_bytes: r.mem_used_bytes.unwrap_or(0),
        mem_total_bytes: r.mem_total_bytes.unwrap_or(0),
        temp_c: r.temp_c.unwrap_or(0.0),
        power_w: r.power_w.unwrap_or(0.0),
        sm_clock_mhz: r.sm_clock_mhz.unwrap_or(0),
        throttle_reasons: r.throttle_reasons.unwrap_or(0),
    }
}

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

    /// One reading per GPU, in wire form.
    pub fn sample(&self) -> Vec<v1::GpuStats> {
        self.readings().iter().map(to_stats).collect()
    }
}

fn read(dev: &nvml_wrapper::Device<'_>, index: u32, mig_index: Option<u32>) -> GpuReading {
    let mem = dev.memory_info().ok();
    let throttle_reasons = dev.current_throttle_reasons().ok().map(|r| r.bits());
    GpuReading {
        index,
        mig_index,
        uuid: dev.uuid().unwrap_or_default(),
        name: dev.name().unwrap_or_default(),
        util_pct: dev.utilization_rates().ok().map(|u| f64::from(u.gpu)),
        mem_used_bytes: mem.as_ref().map(|m| m.used),
        mem_total_bytes: mem.as_ref().map(|m| m.total),
        temp_c: dev.temperature(TemperatureSensor::Gpu).ok().map(f64::from),
        power_w: dev.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
        sm_clock_mhz: dev.clock_info(Clock::SM).ok(),
        throttle: throttle_reasons.map(throttle_names).unwrap_or_default(),
        throttle_reasons,
        ecc_corrected_volatile: dev
            .total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
            .ok(),
        ecc_uncorrected_volatile: dev
            .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
            .ok(),
    }
}

impl GpuBackend for GpuSampler {
    fn driver_version(&self) -> String {
        self.nvml
            .sys_driver_version()
            .unwrap_or_else(|e| format!("unknown ({e})"))
    }

    fn readings(&self) -> Vec<GpuReading> {
        let mut out = Vec::with_capacity(self.count as usize);
        for index in 0..self.count {
            let dev = match self.nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(index, error = %e, "nvml device unavailable");
                    continue;
                }
            };
            out.push(read(&dev, index, None));
            // MIG on: each instance is a device of its own (memory, UUID); NVML reports no
            // utilisation, temperature or power per instance
            if dev.mig_mode().is_ok_and(|m| m.current == 1) {
                let n = dev.mig_device_count().unwrap_or(0);
                for i in 0..n {
                    if let Ok(mig) = dev.mig_device_by_index(i) {
                        out.push(read(&mig, index, Some(i)));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_bits_are_named_and_unsupported_fields_become_zero_on_the_wire() {
        assert_eq!(
            throttle_names(0x4 | 0x40),
            vec!["sw_power_cap", "hw_thermal_slowdown"]
        );
        assert!(throttle_names(0).is_empty());
        let mig = GpuReading {
            index: 0,
            mig_index: Some(1),
            uuid: "MIG-1".into(),
            mem_used_bytes: Some(5),
            mem_total_bytes: Some(10),
            ..GpuReading::default()
        };
        let s = to_stats(&mig);
        assert_eq!((s.util_pct, s.mem_used_bytes, s.temp_c), (0.0, 5, 0.0));
    }
}
