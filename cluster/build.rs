//! Generates the types of the cluster log's messages from `proto/llmscope/cluster/v1/log.proto`
//! with a vendored `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto/llmscope/cluster/v1/log.proto");
    let mut cfg = tonic_prost_build::Config::new();
    cfg.protoc_executable(&protoc);
    cfg.btree_map(["."]);
    tonic_prost_build::configure()
        .out_dir(&out)
        .build_client(false)
        .build_server(false)
        .compile_with_config(cfg, &["proto/llmscope/cluster/v1/log.proto"], &["proto"])?;
    Ok(())
}
