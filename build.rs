//! Generates the etcd v3 API (and detcd's internal records) from `proto/`.
//! madsim-tonic-build emits both the real tonic code and the simulator variant; `include_proto!` picks one.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos_with_config(
            config,
            &[
                "proto/rpc.proto",
                "proto/kv.proto",
                "proto/raft_request.proto",
                "proto/auth.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
