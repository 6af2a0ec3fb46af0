//! GPU code paths behind a fake NVML backend: every GPU becomes telemetry, every GPU and MIG
//! instance reaches the agent's `/metrics`, which carries them under the DCGM exporter's names and labels with
//! unsupported fields left out (never exported as 0).

#![allow(clippy::unwrap_used)]

use llmscope_agent::metrics::Metrics;
use llmscope_agent::telemetry::Sampler;
use llmscope_agent::telemetry::gpu::{GpuBackend, GpuReading, throttle_names};

struct FakeNvml(Vec<GpuReading>);

impl GpuBackend for FakeNvml {
    fn driver_version(&self) -> String {
        "550.54.15".into()
    }
    fn readings(&self) -> Vec<GpuReading> {
        self.0.clone()
    }
}

fn h100() -> GpuReading {
    GpuReading {
        index: 0,
        mig_index: None,
        uuid: "GPU-aaaa".into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        util_pct: Some(87.0),
        mem_used_bytes: Some(40 << 30),
        mem_total_bytes: Some(80 << 30),
        temp_c: Some(64.0),
        power_w: Some(512.5),
        sm_clock_mhz: Some(1980),
        throttle_reasons: Some(0x4),
        throttle: throttle_names(0x4),
        ecc_corrected_volatile: Some(3),
        ecc_uncorrected_volatile: Some(0),
        xid_errors: vec![79],
        xid_last: Some(79),
    }
}

#[test]
fn gpus_and_mig_instances_reach_telemetry_and_dcgm_named_gauges() {
    // a MIG instance: its own memory and UUID, nothing else supported
    let mig = GpuReading {
        index: 0,
        mig_index: Some(1),
        uuid: "MIG-bbbb".into(),
        name: "NVIDIA H100 80GB HBM3 MIG 1g.10gb".into(),
        mem_used_bytes: Some(1 << 30),
        mem_total_bytes: Some(10 << 30),
        ..GpuReading::default()
    };
    // a consumer GPU without ECC
    let consumer = GpuReading {
        index: 1,
        uuid: "GPU-cccc".into(),
        name: "NVIDIA GeForce RTX 4090".into(),
        util_pct: Some(5.0),
        ..GpuReading::default()
    };
    let mut s = Sampler::with_backend(Box::new(FakeNvml(vec![h100(), mig, consumer])));
    let (t, readings) = s.sample_with_gpus("lab", "gpu-node-1");
    assert_eq!(readings.len(), 3, "every GPU and MIG instance is read");
    // every GPU and MIG instance goes on the wire; a MIG instance is keyed by its GPU's
    // index and its own mig_index; what a device does not support stays absent
    assert_eq!(t.gpus.len(), 3);
    assert_eq!(
        (
            t.gpus[0].util_pct,
            t.gpus[0].sm_clock_mhz,
            t.gpus[0].mig_index
        ),
        (Some(87.0), Some(1980), None)
    );
    assert_eq!(t.gpus[0].xid_errors, vec![79]);
    assert_eq!(t.gpus[0].ecc_corrected_volatile, Some(3));
    let wire_mig = &t.gpus[1];
    assert_eq!(
        (wire_mig.index, wire_mig.mig_index, wire_mig.uuid.as_str()),
        (0, Some(1), "MIG-bbbb")
    );
    assert_eq!(
        (wire_mig.util_pct, wire_mig.temp_c, wire_mig.power_w),
        (None, None, None),
        "a MIG instance has no utilisation, temperature or power of its own"
    );
    assert_eq!(wire_mig.mem_total_bytes, Some(10 << 30));
    assert_eq!(t.gpus[2].uuid, "GPU-cccc");
    assert_eq!(
        (t.gpus[2].ecc_corrected_volatile, t.gpus[2].mem_used_bytes),
        (None, None),
        "the consumer GPU's missing ECC and memory readings are absent, not 0"
    );
    assert_eq!(readings[0].throttle, vec!["sw_power_cap"]);

    let m = Metrics::new();
    m.set_gpus("gpu-node-1", &readings);
    let text = m.render();
    let gpu0 = r#"gpu="0",UUID="GPU-aaaa",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1""#;
    for (name, value) in [
        ("DCGM_FI_DEV_GPU_UTIL", "87.0"),
        ("DCGM_FI_DEV_FB_USED", "40960.0"),
        ("DCGM_FI_DEV_FB_FREE", "40960.0"),
        ("DCGM_FI_DEV_GPU_TEMP", "64.0"),
        ("DCGM_FI_DEV_POWER_USAGE", "512.5"),
        ("DCGM_FI_DEV_SM_CLOCK", "1980.0"),
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "4.0"),
        ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "3.0"),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "0.0"),
        ("DCGM_FI_DEV_XID_ERRORS", "79.0"),
    ] {
        let line = format!("{name}{{{gpu0}}} {value}");
        assert!(text.contains(&line), "missing `{line}` in\n{text}");
    }
    // the MIG instance: memory under its own UUID and GPU_I_ID, no utilisation of its own
    assert!(
        text.contains(r#"DCGM_FI_DEV_FB_USED{gpu="0",UUID="MIG-bbbb",modelName="NVIDIA H100 80GB HBM3 MIG 1g.10gb",Hostname="gpu-node-1",GPU_I_ID="1"} 1024.0"#),
        "{text}"
    );
    for line in text.lines().filter(|l| l.contains("MIG-bbbb")) {
        assert!(
            line.starts_with("DCGM_FI_DEV_FB_"),
            "an unsupported field exported for the MIG instance: {line}"
        );
    }
    // the consumer GPU has no ECC: no ECC series for it at all
    assert!(
        !text
            .lines()
            .any(|l| l.contains("GPU-cccc") && l.contains("ECC")),
        "{text}"
    );
}
