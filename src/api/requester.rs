//! Who a gRPC request comes from (etcd's `AuthInfoFromCtx`): the simple token in its `token`
//! metadata, else the Common Name of its verified client certificate, which the TLS layer puts
//! in the request's extensions.

use tonic::{Request, Status};

use crate::api::identity::ClientCommonName;
use crate::api::status::to_status;
use crate::auth::Requester;
use crate::server::EtcdServer;

/// The metadata key clients send their token under (etcd's `TokenFieldNameGRPC`).
pub const TOKEN_METADATA_KEY: &str = "token";

pub fn requester<T>(server: &EtcdServer, request: &Request<T>) -> Result<Requester, Status> {
    let token = request
        .metadata()
        .get(TOKEN_METADATA_KEY)
        .and_then(|value| value.to_str().ok());
    let common_name = request
        .extensions()
        .get::<ClientCommonName>()
        .map(|name| name.0.as_str());
    server.requester(token, common_name).map_err(to_status)
}
