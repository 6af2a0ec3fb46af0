//! Generates the public client/server code from `llmscope/v1/ingest.proto` and the
//! server-side wire variant from `wire/ingest_wire.proto`, with a vendored `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=llmscope/v1/ingest.proto");
    println!("cargo:rerun-if-changed=wire/ingest_wire.proto");

    let public = out.join("public");
    std::fs::create_dir_all(&public)?;
    let mut cfg = tonic_prost_build::Config::new();
    cfg.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .out_dir(&public)
        .file_descriptor_set_path(out.join("llmscope_v1_descriptor.bin"))
        .compile_with_config(cfg, &["llmscope/v1/ingest.proto"], &["."])?;

    let wire = out.join("wire");
    std::fs::create_dir_all(&wire)?;
    let mut cfg = tonic_prost_build::Config::new();
    cfg.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .out_dir(&wire)
        .build_client(false)
        .compile_with_config(cfg, &["wire/ingest_wire.proto"], &["."])?;
    Ok(())
}
