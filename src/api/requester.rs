//! Who a gRPC request comes from (etcd's `AuthInfoFromCtx`): the simple token in its `token`
//! metadata (or `authorization`, where the gRPC gateway and some clients, etcd-client among
//! them, put it), else the Common Name of its verified client certificate, which the TLS layer puts
//! in the request's extensions.

use tonic::{Request, Status};

use crate::api::identity::ClientCommonName;
use crate::api::status::to_status;
use crate::auth::Requester;
use crate::server::EtcdServer;

/// The metadata keys clients send their token under (etcd's `TokenFieldNameGRPC`, then
/// `TokenFieldNameSwagger`).
const TOKEN_METADATA_KEYS: [&str; 2] = ["token", "authorization"];

pub fn requester<T>(server: &EtcdServer, request: &Request<T>) -> Result<Requester, Status> {
    let token = TOKEN_METADATA_KEYS
        .iter()
        .find_map(|key| request.metadata().get(*key))
        .and_then(|value| value.to_str().ok());
    let common_name = request
        .extensions()
        .get::<ClientCommonName>()
        .map(|name| name.0.as_str());
    server
        .auth()
        .requester(token, common_name)
        .map_err(to_status)
}
