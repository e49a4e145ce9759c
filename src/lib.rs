pub mod pb {
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod detcdpb {
        tonic::include_proto!("detcdpb");
    }
}
pub mod storage;
