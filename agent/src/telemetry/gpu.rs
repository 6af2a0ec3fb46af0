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
    /// XID error codes the driver reported since the previous reading, oldest first.
    pub xid_errors: Vec<u32>,
    /// The most recent XID error code seen since the agent started (DCGM's
    /// `DCGM_FI_DEV_XID_ERRORS`), `None` before the first.
    pub xid_last: Option<u32>,
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

/// Most XID codes kept per GPU between two readings (the wire's limit).
pub const MAX_XIDS: usize = 32;

/// The wire form of a reading: unsupported fields stay absent, a MIG instance carries its
/// GPU's index and its own `mig_index`.
pub fn to_stats(r: &GpuReading) -> v1::GpuStats {
    v1::GpuStats {
        index: r.index,
        uuid: r.uuid.clone(),
        name: r.name.clone(),
        util_pct: r.util_pct,
        mem_used_bytes: r.mem_used_bytes,
        mem_total_bytes: r.mem_total_bytes,
        temp_c: r.temp_c,
        power_w: r.power_w,
        sm_clock_mhz: r.sm_clock_mhz,
        throttle_reasons: r.throttle_reasons,
        mig_index: r.mig_index,
        ecc_corrected_volatile: r.ecc_corrected_volatile,
        ecc_uncorrected_volatile: r.ecc_uncorrected_volatile,
        xid_errors: r.xid_errors.iter().take(MAX_XIDS).copied().collect(),
    }
}

/// XID errors as the watcher thread collects them: per GPU index, the codes not yet read and
/// the last one seen.
#[derive(Debug, Default)]
struct Xids {
    pending: std::collections::BTreeMap<u32, Vec<u32>>,
    last: std::collections::BTreeMap<u32, u32>,
}

/// Holds the NVML handle (for the life of the process: the XID watcher thread borrows it).
pub struct GpuSampler {
    nvml: &'static Nvml,
    count: u32,
    xids: std::sync::Arc<std::sync::Mutex<Xids>>,
}

/// Why NVML is unavailable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NvmlUnavailable(String);

impl GpuSampler {
    /// Loads `libnvidia-ml.so.1` and counts devices.
    /// Also starts a thread that waits for XID error events (when the driver supports them).
    pub fn init() -> Result<GpuSampler, NvmlUnavailable> {
        let nvml = Nvml::init().map_err(|e| NvmlUnavailable(e.to_string()))?;
        let count = nvml
            .device_count()
            .map_err(|e| NvmlUnavailable(e.to_string()))?;
        // one NVML handle per process, never unloaded: leaking it lets the watcher thread
        // hold the event set, which borrows the handle
        let nvml: &'static Nvml = Box::leak(Box::new(nvml));
        let xids = std::sync::Arc::new(std::sync::Mutex::new(Xids::default()));
        watch_xids(nvml, count, xids.clone());
        Ok(GpuSampler { nvml, count, xids })
    }

    /// Number of GPUs.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// One reading per GPU and MIG instance, in wire form.
    pub fn sample(&self) -> Vec<v1::GpuStats> {
        self.readings().iter().map(to_stats).collect()
    }
}

/// Registers every GPU for critical XID events and collects them on a thread of its own
/// (`nvmlEventSetWait` blocks). Logs and gives up where the driver does not support events.
fn watch_xids(nvml: &'static Nvml, count: u32, xids: std::sync::Arc<std::sync::Mutex<Xids>>) {
    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enums::event::XidError;
    use nvml_wrapper::error::NvmlError;
    let mut set = match nvml.create_event_set() {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(error = %e, "xid events off: nvml event sets are not supported");
            return;
        }
    };
    let mut registered = 0;
    for index in 0..count {
        let Ok(dev) = nvml.device_by_index(index) else {
            continue;
        };
        match dev.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
            Ok(s) => {
                set = s;
                registered += 1;
            }
            Err(e) => {
                // the failed registration consumed the set: start a new one (the GPUs
                // registered so far are lost with it; the rest are tried)
                tracing::info!(index, error = %e.error, "xid events off for this gpu");
                registered = 0;
                set = match nvml.create_event_set() {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
        }
    }
    if registered == 0 {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("xid-watch".into())
        .spawn(move || {
            loop {
                match set.wait(5_000) {
                    Ok(ev) => {
                        let index = ev.device.index().unwrap_or(u32::MAX);
                        let code = match ev.event_data {
                            Some(XidError::Value(v)) => u32::try_from(v).unwrap_or(u32::MAX),
                            _ => 0,
                        };
                        tracing::warn!(gpu = index, xid = code, "gpu xid error");
                        if let Ok(mut x) = xids.lock() {
                            let p = x.pending.entry(index).or_default();
                            if p.len() < MAX_XIDS {
                                p.push(code);
                            }
                            x.last.insert(index, code);
                        }
                    }
                    Err(NvmlError::Timeout) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "xid watch stopped");
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "xid watch thread not started");
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
        xid_errors: Vec::new(),
        xid_last: None,
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
        let (mut pending, last) = match self.xids.lock() {
            Ok(mut x) => (std::mem::take(&mut x.pending), x.last.clone()),
            Err(_) => Default::default(),
        };
        for index in 0..self.count {
            let dev = match self.nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(index, error = %e, "nvml device unavailable");
                    continue;
                }
            };
            let mut r = read(&dev, index, None);
            r.xid_errors = pending.remove(&index).unwrap_or_default();
            r.xid_last = last.get(&index).copied();
            out.push(r);
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
    fn throttle_bits_are_named_and_unsupported_fields_stay_absent_on_the_wire() {
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
        assert_eq!(
            (s.util_pct, s.mem_used_bytes, s.temp_c),
            (None, Some(5), None)
        );
        assert_eq!((s.index, s.mig_index), (0, Some(1)));
    }
}
