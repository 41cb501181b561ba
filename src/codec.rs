//! The protobuf codec of the generated `user.v1` code: prost's, except that a message that
//! does not decode (bad wire format, invalid UTF-8 in a string field) is the caller's fault,
//! INVALID_ARGUMENT, instead of tonic-prost's INTERNAL carrying prost's error text.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Code, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Message of the status for an undecodable request.
pub const MALFORMED_MESSAGE: &str = "malformed protobuf message";

pub struct StrictProstCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        Self { inner: ProstCodec::default() }
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictProstDecoder { inner: self.inner.decoder(), _message: PhantomData }
    }
}

pub struct StrictProstDecoder<U> {
    inner: ProstDecoder<U>,
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StrictProstDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| match status.code() {
            Code::Internal => Status::invalid_argument(MALFORMED_MESSAGE),
            _ => status,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
