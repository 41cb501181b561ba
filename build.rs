//! Compiles `proto/` into the `user.v1` Rust types and a descriptor set for server reflection.
//!
//! The machines have no system `protoc`; the vendored one from crates.io is used unless the
//! caller already points `PROTOC` somewhere.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded; nothing else reads the environment now.
        unsafe { env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    // `google/protobuf/timestamp.proto` and the other well-known types ship with the vendored protoc.
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Undecodable requests are INVALID_ARGUMENT, not tonic-prost's INTERNAL (src/codec.rs).
        .codec_path("crate::codec::StrictProstCodec")
        .file_descriptor_set_path(out_dir.join("user_v1_descriptor.bin"))
        .compile_protos(&[PathBuf::from("proto/user/v1/user.proto")], &[PathBuf::from("proto"), well_known])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
