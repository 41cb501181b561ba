//! The `user.v1` API generated from `proto/user/v1/user.proto`, shared by auth-svc, the
//! gateway and every client, plus the encoded descriptor set that server reflection serves.

pub mod codec;

pub mod user {
    pub mod v1 {
        tonic::include_proto!("user.v1");

        /// Encoded `FileDescriptorSet` of `user.v1`, for `tonic-reflection`.
        pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("user_v1_descriptor");
    }
}
