//! `etcdserverpb.Cluster` through the proxy: forwarded to the cluster as it is. A read-only
//! proxy refuses membership changes.

use super::forwarding_service;
use super::upstream::RESPONSE_BYTES_MAX;
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};

forwarding_service! {
    ClusterProxy: Cluster via ClusterClient {
        reads {
            member_list(MemberListRequest) -> MemberListResponse;
        }
        writes {
            member_add(MemberAddRequest) -> MemberAddResponse;
            member_remove(MemberRemoveRequest) -> MemberRemoveResponse;
            member_update(MemberUpdateRequest) -> MemberUpdateResponse;
            member_promote(MemberPromoteRequest) -> MemberPromoteResponse;
        }
    }
}
