//! Compiles the Yunhu protobuf schemas with prost-build, parsing them with protox (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/yunhu/common.proto", "proto/yunhu/msg.proto", "proto/yunhu/user.proto", "proto/yunhu/ws.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
